package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wskit/wskit"
)

// servedProcess is wskit serve running in process, as runServe.
type servedProcess struct {
	addr   string
	stderr *syncBuffer
	cancel context.CancelFunc
	exit   chan int
}

// startServe runs wskit serve with args on a free port of 127.0.0.1 until
// stop.
func startServe(t *testing.T, args ...string) *servedProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &servedProcess{stderr: &syncBuffer{}, cancel: cancel, exit: make(chan int, 1)}
	go func() {
		p.exit <- runServe(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), io.Discard, p.stderr)
	}()
	t.Cleanup(func() { p.stop(t) })
	waitFor(t, "the listen address", func() bool {
		p.addr = listenAddr(p.stderr.String())
		return p.addr != ""
	})
	return p
}

// stop ends the server, as SIGINT does, and checks that it exited with 0.
func (p *servedProcess) stop(t *testing.T) {
	t.Helper()
	p.cancel()
	select {
	case code, ok := <-p.exit:
		if ok && code != 0 {
			t.Errorf("wskit serve exited with %d; stderr:\n%s", code, p.stderr.String())
		}
		if ok {
			close(p.exit)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("wskit serve did not stop; stderr:\n%s", p.stderr.String())
	}
}

// logMessages returns the msg of each line of a text log.
func logMessages(log string) []string {
	var msgs []string
	for line := range strings.Lines(log) {
		msg := "(no msg) " + line
		if _, rest, ok := strings.Cut(line, " msg="); ok {
			if strings.HasPrefix(rest, `"`) {
				end := strings.Index(rest[1:], `"`)
				msg = rest[1 : end+1]
			} else {
				msg, _, _ = strings.Cut(rest, " ")
			}
		}
		msgs = append(msgs, strings.TrimSpace(msg))
	}
	return msgs
}

// countLines counts the lines of log with msg and the attribute path=path.
func countLines(log, msg, path string) int {
	n := 0
	for line := range strings.Lines(log) {
		if strings.Contains(line, " msg=\""+msg+"\" ") && strings.Contains(line, " path="+path+" ") {
			n++
		}
	}
	return n
}

// TestServeLogPolicy puts load on four routes of wskit serve, 50
// connections each (wskit bench's echo on /echo, /events and /raw, its
// broadcast on /chat: 50 subscribers and a publisher), on each engine and at
// two log levels. At the default level, info, the log has the listening
// line and the two of the stop, and nothing for the sessions; at debug it
// has an open and a close for every session. Neither has a warning.
func TestServeLogPolicy(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("wskit bench needs Linux")
	}
	if testing.Short() {
		t.Skip("puts load on the server")
	}
	runs := []struct{ path, scenario string }{
		{"/echo", "echo"}, {"/events", "echo"}, {"/raw", "echo"}, {"/chat", "broadcast"},
	}
	const conns = 50
	for _, engine := range engines() {
		for _, level := range []string{"info", "debug"} {
			t.Run(engine+"/"+level, func(t *testing.T) {
				args := []string{"-engine", engine}
				if level != "info" {
					args = append(args, "-log-level", level)
				}
				srv := startServe(t, args...)
				for _, r := range runs {
					var stdout, stderr syncBuffer
					bench := []string{"bench", "-scenario", r.scenario, "-c", fmt.Sprint(conns), "-d", "200ms", "-rate", "200", "ws://" + srv.addr + r.path}
					if code := run(context.Background(), bench, nil, &stdout, &stderr); code != 0 {
						t.Fatalf("wskit %s: exit %d\n%s%s", strings.Join(bench, " "), code, stdout.String(), stderr.String())
					}
				}
				// The bench closes its connections before it returns; the
				// server logs a close when the session's handler has
				// returned, which may be a little later.
				if level == "debug" {
					waitFor(t, "every close to be logged", func() bool {
						log := srv.stderr.String()
						for _, r := range runs {
							want := conns
							if r.scenario == "broadcast" {
								want++
							}
							if countLines(log, "session closed", r.path) < want {
								return false
							}
						}
						return true
					})
				}
				srv.stop(t)
				log := srv.stderr.String()
				if strings.Contains(log, "level=WARN") || strings.Contains(log, "level=ERROR") {
					t.Errorf("a warning or an error in the log:\n%s", log)
				}
				if level == "info" {
					if got, want := logMessages(log), []string{"listening", "shutting down", "stopped"}; !equalStrings(got, want) {
						t.Errorf("info log has %q, want %q; the log:\n%s", got, want, log)
					}
					return
				}
				for _, r := range runs {
					want := conns
					if r.scenario == "broadcast" {
						want++ // the publisher
					}
					opened, closed := countLines(log, "session open", r.path), countLines(log, "session closed", r.path)
					if opened != want || closed != want {
						t.Errorf("%s: %d opens and %d closes logged, want %d of each", r.path, opened, closed, want)
					}
				}
				if n := strings.Count(log, "code=1000"); n != 4*conns+1 {
					t.Errorf("%d closes with code=1000, want %d", n, 4*conns+1)
				}
			})
		}
	}
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

// refuse makes requests that the demo routes refuse: two plain GETs of
// /echo (426) and a /chat/{room} upgrade with a bad room name (400).
func refuse(t *testing.T, addr string) {
	t.Helper()
	for range 2 {
		resp, err := http.Get("http://" + addr + "/echo")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUpgradeRequired {
			t.Fatalf("GET /echo: %s, want 426", resp.Status)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := wskit.Dial(ctx, "ws://"+addr+"/chat/no%20spaces", nil)
	var herr *wskit.HandshakeError
	if !errors.As(err, &herr) || herr.StatusCode != http.StatusBadRequest {
		t.Fatalf("dial a bad room: %v, want a 400", err)
	}
}

const (
	upgradeMissing = "426 this endpoint speaks WebSocket only: Upgrade: websocket is missing"
	badRoom        = "400 a room's name is 1 to 64 letters, digits, '-', '_' or '.'"
)

// TestRefusalLog checks how refused upgrades are logged: at debug level
// each with its reason, and at info level only in the summary, which a
// stopping server writes at once.
func TestRefusalLog(t *testing.T) {
	for _, engine := range engines() {
		t.Run(engine, func(t *testing.T) {
			srv := startServe(t, "-engine", engine)
			refuse(t, srv.addr)
			srv.stop(t)
			log := srv.stderr.String()
			want := []string{"listening", "shutting down", "refused 3 upgrades in the last 1s", "stopped"}
			if got := logMessages(log); !equalStrings(got, want) {
				t.Fatalf("log has %q, want %q; the log:\n%s", got, want, log)
			}
			wantReasons := fmt.Sprintf("by_reason=%q", upgradeMissing+": 2; "+badRoom+": 1")
			if !strings.Contains(log, " level=INFO msg=\"refused 3 upgrades in the last 1s\" "+wantReasons+"\n") {
				t.Errorf("the summary is not at INFO with %s:\n%s", wantReasons, log)
			}

			srv = startServe(t, "-engine", engine, "-log-level", "debug")
			refuse(t, srv.addr)
			srv.stop(t)
			log = srv.stderr.String()
			if n := strings.Count(log, `level=DEBUG msg="wskit: upgrade refused" status=426 reason="wskit: this endpoint speaks WebSocket only: Upgrade: websocket is missing"`); n != 2 {
				t.Errorf("%d refusals with 426 logged at debug, want 2:\n%s", n, log)
			}
			if n := strings.Count(log, `level=DEBUG msg="wskit: upgrade refused" status=400 reason="a room's name`); n != 1 {
				t.Errorf("%d refusals with 400 logged at debug, want 1:\n%s", n, log)
			}
			if !strings.Contains(log, `msg="refused 3 upgrades in the last 1s"`) {
				t.Errorf("no summary at debug level:\n%s", log)
			}
		})
	}
}

// TestRefusalSummary checks the summary's window: refusals within one are
// summed up once, when it ends, and the next refusal opens another.
func TestRefusalSummary(t *testing.T) {
	var out syncBuffer
	logs, err := newServeLogs(&out, slog.LevelInfo, "text")
	if err != nil {
		t.Fatal(err)
	}
	logs.refusals.every = 200 * time.Millisecond
	lib := logs.lib
	if !lib.Enabled(context.Background(), slog.LevelDebug) {
		t.Fatal("the library's logger drops DEBUG records: it would not see the refusals")
	}
	refused := func(status int, reason string) {
		lib.Debug(refusedMessage, "status", status, "reason", reason, "remote", "127.0.0.1:1", "path", "/echo")
	}
	start := time.Now()
	for range 3 {
		refused(426, "wskit: Upgrade: websocket is missing")
	}
	refused(403, "wskit: origin not allowed")
	lib.Debug("wskit: TLS handshake failed", "err", "EOF") // not a refusal; below the level
	if out.String() != "" {
		t.Fatalf("logged before the window ended: %s", out.String())
	}
	waitFor(t, "the first summary", func() bool { return out.String() != "" })
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("summary after %v, before the window of 200ms ended", d)
	}
	want := `level=INFO msg="refused 4 upgrades in the last 200ms" by_reason="426 Upgrade: websocket is missing: 3; 403 origin not allowed: 1"` + "\n"
	if got := out.String(); !strings.HasSuffix(got, want) || strings.Count(got, "\n") != 1 {
		t.Errorf("log %q, want one line ending %q", got, want)
	}

	mark := len(out.String())
	since := func() string { return out.String()[mark:] }
	refused(400, "bad")
	waitFor(t, "the second summary", func() bool { return since() != "" })
	if want := `msg="refused 1 upgrade in the last 200ms" by_reason="400 bad: 1"`; !strings.Contains(since(), want) {
		t.Errorf("log %q, want %q", since(), want)
	}
	mark = len(out.String())
	logs.refusals.flush() // no window under way
	time.Sleep(300 * time.Millisecond)
	if since() != "" {
		t.Errorf("logged without refusals: %q", since())
	}
}

func TestFormatReasons(t *testing.T) {
	by := map[string]int{"a": 1, "b": 5, "c": 2, "d": 2, "e": 1, "f": 1, "g": 9}
	if got, want := formatReasons(by), "g: 9; b: 5; c: 2; d: 2; a: 1; 2 more reasons"; got != want {
		t.Errorf("formatReasons = %q, want %q", got, want)
	}
}

// TestServeLogJSON checks -log-format json: every line is a JSON object,
// and the listening line has the address.
func TestServeLogJSON(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- runServe(ctx, []string{"-addr", "127.0.0.1:0", "-log-format", "json", "-log-level", "debug"}, io.Discard, &stderr)
	}()
	var addr string
	waitFor(t, "the listening line", func() bool {
		for line := range strings.Lines(stderr.String()) {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				addr = rec.Addr
				return true
			}
		}
		return false
	})
	s, err := wskit.Dial(ctx, "ws://"+addr+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close(wskit.CloseNormal, "bye")
	waitFor(t, "the close", func() bool { return strings.Contains(stderr.String(), `"msg":"session closed"`) })
	cancel()
	if code := <-exit; code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	var msgs []string
	for line := range strings.Lines(stderr.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		msgs = append(msgs, fmt.Sprint(rec["msg"]))
		if rec["msg"] == "session closed" && (rec["code"] != float64(1000) || rec["reason"] != "bye" || rec["path"] != "/echo") {
			t.Errorf("close logged as %v", rec)
		}
	}
	if want := []string{"listening", "session open", "session closed", "shutting down", "stopped"}; !equalStrings(msgs, want) {
		t.Errorf("messages %q, want %q", msgs, want)
	}
}

// TestLogCloseLevel checks which ends of a session are worth a warning.
func TestLogCloseLevel(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, "DEBUG"},
		{io.EOF, "DEBUG"},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), "DEBUG"},
		{io.ErrUnexpectedEOF, "DEBUG"},
		{wskit.ErrPongTimeout, "WARN"},
		{errors.New("frame too large"), "WARN"},
	}
	for _, tt := range tests {
		var out syncBuffer
		log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
		logClose(log, requestInfo{remote: "127.0.0.1:1", path: "/echo"}, 1006, "", tt.err)
		if !strings.Contains(out.String(), "level="+tt.want+" ") {
			t.Errorf("close with %v logged as %q, want level %s", tt.err, out.String(), tt.want)
		}
	}
}
