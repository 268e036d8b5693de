package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wskit/wskit"
)

// wskit serve logs by one policy on every route:
//
//   - INFO: the server starting and stopping, and at most once per
//     refusalWindow a summary of the upgrades refused in it;
//   - DEBUG: each session's open and close, each refused upgrade with its
//     reason (the library logs those), and what the library has to say;
//   - WARN: a session that ended with an error other than its peer going
//     away (a protocol violation, a message over -max-message, a pong or
//     write timeout), and a shutdown that had to cut connections;
//   - ERROR: a server that could not serve, and a handler's panic.
//
// So a busy server at the default level logs nothing per connection, and
// -log-level debug shows every session.

// refusalWindow is how often, at most, the summary of refused upgrades is
// logged.
const refusalWindow = 10 * time.Second

// refusedMessage is the message of the library's DEBUG record for an
// upgrade it refused, with the attributes status and reason.
const refusedMessage = "wskit: upgrade refused"

// levelValue is a flag.Value for -log-level.
type levelValue slog.Level

var levelNames = []struct {
	name  string
	level slog.Level
}{{"debug", slog.LevelDebug}, {"info", slog.LevelInfo}, {"warn", slog.LevelWarn}, {"error", slog.LevelError}}

func (v *levelValue) String() string {
	for _, l := range levelNames {
		if l.level == slog.Level(*v) {
			return l.name
		}
	}
	return slog.Level(*v).String()
}

func (v *levelValue) Set(s string) error {
	for _, l := range levelNames {
		if strings.EqualFold(s, l.name) {
			*v = levelValue(l.level)
			return nil
		}
	}
	return fmt.Errorf("log level %q: want debug, info, warn or error", s)
}

// serveLogs are the loggers of wskit serve.
type serveLogs struct {
	// app is the routes' logger.
	app *slog.Logger
	// lib is the library's (Options.Logger): app's handler, behind one that
	// counts the refused upgrades.
	lib *slog.Logger
	// refusals logs the summary of refused upgrades.
	refusals *refusalSummary
}

// newServeLogs returns loggers that write to w in format ("text" or
// "json") the records at level and above, and the summary of refused
// upgrades once per refusalWindow at most.
func newServeLogs(w io.Writer, level slog.Level, format string) (*serveLogs, error) {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("log format %q: want text or json", format)
	}
	app := slog.New(h)
	sum := &refusalSummary{log: app, every: refusalWindow}
	return &serveLogs{app: app, lib: slog.New(refusalCounter{next: h, sum: sum}), refusals: sum}, nil
}

// refusalCounter is a slog.Handler that counts the library's records of
// refused upgrades in a refusalSummary and passes every record its next
// handler takes on to it.
type refusalCounter struct {
	next slog.Handler
	sum  *refusalSummary
}

// Enabled takes DEBUG records whatever next's level, for the refusals among
// them; the library logs little at DEBUG.
func (h refusalCounter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelDebug || h.next.Enabled(ctx, l)
}

func (h refusalCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == refusedMessage {
		var status int64
		var reason string
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "status":
				status = a.Value.Int64()
			case "reason":
				reason = a.Value.String()
			}
			return true
		})
		h.sum.add(status, reason)
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h refusalCounter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return refusalCounter{next: h.next.WithAttrs(attrs), sum: h.sum}
}

func (h refusalCounter) WithGroup(name string) slog.Handler {
	return refusalCounter{next: h.next.WithGroup(name), sum: h.sum}
}

// maxRefusalReasons bounds the reasons a summary counts apart; the others
// are counted together.
const maxRefusalReasons = 32

// refusalSummary counts refused upgrades and logs them at INFO, at most once
// per every: the first refusal after a quiet spell starts a window, and the
// window's end logs how many were refused in it, by reason.
type refusalSummary struct {
	log   *slog.Logger
	every time.Duration

	mu       sync.Mutex
	timer    *time.Timer // ends the window; nil between windows
	window   uint64      // numbers the windows
	start    time.Time   // of the window
	total    int
	byReason map[string]int
}

func (s *refusalSummary) add(status int64, reason string) {
	reason = strings.TrimPrefix(reason, "wskit: ")
	if status != 0 {
		reason = fmt.Sprintf("%d %s", status, reason)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer == nil {
		s.byReason = make(map[string]int)
		s.start = time.Now()
		s.window++
		window := s.window
		s.timer = time.AfterFunc(s.every, func() { s.end(window) })
	}
	s.total++
	if _, ok := s.byReason[reason]; !ok && len(s.byReason) == maxRefusalReasons {
		reason = "other reasons"
	}
	s.byReason[reason]++
}

// end ends the window numbered window, unless it was flushed already, and
// logs it.
func (s *refusalSummary) end(window uint64) {
	s.mu.Lock()
	if s.timer == nil || s.window != window {
		s.mu.Unlock()
		return
	}
	total, byReason := s.take()
	s.mu.Unlock()
	s.write(total, byReason, s.every)
}

// flush logs the refusals of the window under way at once, for a server
// that stops. The window it names is as long as it was, in whole seconds
// rounded up.
func (s *refusalSummary) flush() {
	s.mu.Lock()
	if s.timer == nil {
		s.mu.Unlock()
		return
	}
	s.timer.Stop()
	window := min(time.Since(s.start).Truncate(time.Second)+time.Second, s.every)
	total, byReason := s.take()
	s.mu.Unlock()
	s.write(total, byReason, window)
}

// take ends the window, with s.mu held, and returns its counts.
func (s *refusalSummary) take() (int, map[string]int) {
	total, byReason := s.total, s.byReason
	s.total, s.byReason, s.timer = 0, nil, nil
	return total, byReason
}

func (s *refusalSummary) write(total int, byReason map[string]int, window time.Duration) {
	upgrades := "upgrades"
	if total == 1 {
		upgrades = "upgrade"
	}
	s.log.Info(fmt.Sprintf("refused %d %s in the last %v", total, upgrades, window), "by_reason", formatReasons(byReason))
}

// formatReasons writes counts by reason, the largest first: "426 this
// endpoint speaks WebSocket only: 3; 400 ...: 1".
func formatReasons(byReason map[string]int) string {
	reasons := make([]string, 0, len(byReason))
	for r := range byReason {
		reasons = append(reasons, r)
	}
	slices.SortFunc(reasons, func(a, b string) int {
		if d := byReason[b] - byReason[a]; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	const show = 5
	var b strings.Builder
	for i, r := range reasons {
		if i == show {
			fmt.Fprintf(&b, "; %d more reasons", len(reasons)-show)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %d", r, byReason[r])
	}
	return b.String()
}

// logOpen logs a session's open, at DEBUG, with the protocol its request
// came over: HTTP/1.1 for an upgrade, HTTP/2.0 for a stream (RFC 8441).
func logOpen(log *slog.Logger, r requestInfo, attrs ...any) {
	log.Debug("session open", append([]any{"remote", r.remote, "path", r.path, "proto", r.proto}, attrs...)...)
}

// logClose logs a session's close: at DEBUG, or at WARN when it ended with
// an error other than its peer going away.
func logClose(log *slog.Logger, r requestInfo, code int, reason string, err error) {
	attrs := []any{"remote", r.remote, "path", r.path, "code", code, "reason", reason}
	level := slog.LevelDebug
	if err != nil {
		attrs = append(attrs, "err", err)
		if !peerWentAway(err) {
			level = slog.LevelWarn
		}
	}
	log.Log(context.Background(), level, "session closed", attrs...)
}

// requestInfo is what the log says of a session's request.
type requestInfo struct{ remote, path, proto string }

// newRequestInfo returns what the log says of r.
func newRequestInfo(r *http.Request) requestInfo {
	return requestInfo{remote: r.RemoteAddr, path: r.URL.Path, proto: r.Proto}
}

// sessionRequest returns what the log says of s's request.
func sessionRequest(s *wskit.Session) requestInfo { return newRequestInfo(s.Request()) }

// peerWentAway reports whether err says only that the peer closed or lost
// the connection without a close frame: a tab closed, a network gone.
func peerWentAway(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ETIMEDOUT)
}
