package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	_ "embed"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/selfsign"
	"github.com/wskit/wskit/wsraw"
)

//go:embed static/index.html
var indexHTML []byte

// shutdownGrace bounds the graceful part of a shutdown: stopping the
// listener, then closing the sessions with 1001.
const shutdownGrace = 5 * time.Second

// serveConfig holds the flags of wskit serve.
type serveConfig struct {
	addr       string
	engine     string
	maxMessage int64
	ping       time.Duration
	timeout    time.Duration
	deflate    bool
	chatReplay int
	tlsCert    string // PEM files of the certificate chain and key
	tlsKey     string
	selfSigned bool // an in-memory certificate for localhost
	http2      bool // WebSockets over HTTP/2 (RFC 8441) too
	logLevel   slog.Level
	logFormat  string // text or json
	ext        *Extension
	broker     wskit.Broker // the Extension's, once started
	// metrics is the address of /debug/vars (see metrics.go), or "".
	metrics string
}

// options returns the server's Options for c.
func (c serveConfig) options(log *slog.Logger) wskit.Options {
	o := wskit.DefaultOptions()
	o.Engine, _ = wskit.ParseEngine(c.engine)
	o.MaxFrameSize = c.maxMessage
	o.MaxMessageSize = c.maxMessage
	o.PingPeriod = c.ping
	o.Timeout = c.timeout
	if c.timeout == 0 {
		o.Timeout = -1 // -timeout 0 waits forever
	}
	o.Logger = log
	o.HTTP2 = c.http2
	if c.deflate {
		o.Extensions = []codec.Extension{&codec.PerMessageDeflate{}}
	}
	return o
}

// chatOptions returns the options of /chat's hub for c. With a broker the
// hub is the topic "chat" on it and, when the broker keeps history, its
// messages carry their sequence (see chatStamp).
func (c serveConfig) chatOptions() wskit.HubOptions {
	o := wskit.HubOptions{Replay: c.chatReplay, Buffer: chatBuffer, Overflow: wskit.OverflowCloseTryAgain}
	if c.broker != nil {
		o.Broker, o.Topic = c.broker, "chat"
		if bh, ok := c.broker.(wskit.BrokerHistory); ok && bh.KeepsHistory() {
			o.Stamp = chatStamp
		}
	}
	return o
}

// chatStamp is the chat's HubOptions.Stamp with a broker that keeps
// history: "<sequence> <text>". The page keeps the sequence of the last
// message of its room, and gives it back in ?after= when it joins again,
// to any node, to receive what it missed.
func chatStamp(dst []byte, seq uint64, p []byte) []byte {
	dst = strconv.AppendUint(dst, seq, 10)
	return append(append(dst, ' '), p...)
}

func parseServeFlags(args []string, stdout, stderr io.Writer) (serveConfig, error) {
	return parseServeFlagsWith(args, stdout, stderr, nil)
}

// parseServeFlagsWith parses the flags of wskit serve, and those of ext
// when not nil.
func parseServeFlagsWith(args []string, stdout, stderr io.Writer, ext *Extension) (serveConfig, error) {
	c := serveConfig{maxMessage: 64 << 20, deflate: true, logLevel: slog.LevelInfo, logFormat: "text", ext: ext}
	engineHelp := "transport `engine`: poll (epoll loops), std (net/http), or auto: poll on Linux"
	fs := newFlagSet("serve", "wskit serve [flags]", stdout, stderr)
	fs.StringVar(&c.addr, "addr", ":8080", "listen `address` (port 0 picks a free port)")
	fs.StringVar(&c.engine, "engine", "auto", engineHelp)
	fs.Var((*sizeValue)(&c.maxMessage), "max-message", "largest frame and message accepted, such as 64MiB, 1KiB or 512 (bytes)")
	fs.DurationVar(&c.ping, "ping", 0, "keepalive ping `period`; 0 sends none")
	fs.DurationVar(&c.timeout, "timeout", 15*time.Second, "wait for a pong, a close reply or a write; 0 waits forever")
	fs.BoolVar(&c.deflate, "deflate", true, "accept permessage-deflate compression (RFC 7692) on every endpoint but /raw")
	fs.IntVar(&c.chatReplay, "chat-replay", 0, "how many of the last `N` /chat messages each new member receives")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "serve TLS (https, wss) with the certificate chain in this PEM `file`; needs -tls-key")
	fs.StringVar(&c.tlsKey, "tls-key", "", "the private key, in this PEM `file`, of -tls-cert")
	fs.BoolVar(&c.selfSigned, "tls-self-signed", false, "serve TLS with a certificate made at start for localhost, 127.0.0.1 and ::1 (printed with its fingerprint)")
	fs.BoolVar(&c.http2, "http2", false, "serve HTTP/2 too (h2 by ALPN with TLS, h2c without), and WebSockets over it (RFC 8441): browsers then open wss:// sessions as streams of the connection they hold")
	fs.StringVar(&c.metrics, "metrics", "", "serve /debug/vars (the server's counters, expvar) on this `address`, apart from -addr, and /metrics where built with Prometheus (wskit-prometheus)")
	fs.Var((*levelValue)(&c.logLevel), "log-level", "log records of this `level` and above: debug (every session open and close, every refused upgrade), info (start, stop, refusals summed up every 10s), warn (sessions that ended with an error) or error")
	fs.StringVar(&c.logFormat, "log-format", c.logFormat, "log `format`: text (key=value) or json (one object per line)")
	if ext != nil && ext.Flags != nil {
		ext.Flags(fs.FlagSet)
	}
	rest, err := fs.parse(args)
	switch {
	case err != nil:
		return c, err
	case len(rest) > 0:
		return c, fmt.Errorf("unexpected argument %q", rest[0])
	case !validEngine(c.engine):
		_, err := wskit.ParseEngine(c.engine)
		return c, err
	case c.maxMessage <= 0:
		return c, errors.New("-max-message must be positive")
	case c.ping < 0:
		return c, errors.New("-ping must not be negative")
	case c.timeout < 0:
		return c, errors.New("-timeout must not be negative")
	case c.chatReplay < 0:
		return c, errors.New("-chat-replay must not be negative")
	case (c.tlsCert == "") != (c.tlsKey == ""):
		return c, errors.New("-tls-cert and -tls-key go together")
	case c.selfSigned && c.tlsCert != "":
		return c, errors.New("-tls-self-signed and -tls-cert exclude each other")
	case c.logFormat != "text" && c.logFormat != "json":
		return c, fmt.Errorf("-log-format %q: want text or json", c.logFormat)
	case ext != nil && ext.Check != nil:
		return c, ext.Check()
	}
	return c, nil
}

// runServe runs wskit serve until ctx ends and returns the exit code.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runServeWith(ctx, args, stdout, stderr, nil)
}

// runServeWith runs wskit serve with ext, which may be nil.
func runServeWith(ctx context.Context, args []string, stdout, stderr io.Writer, ext *Extension) int {
	c, err := parseServeFlagsWith(args, stdout, stderr, ext)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "wskit serve: %v\n", err)
		return 2
	}
	logs, err := newServeLogs(stderr, c.logLevel, c.logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "wskit serve: %v\n", err)
		return 2
	}
	log := logs.app
	if ext != nil && ext.Start != nil {
		broker, stop, err := ext.Start(ctx, log)
		if err != nil {
			fmt.Fprintf(stderr, "wskit serve: %v\n", err)
			return 1
		}
		defer stop()
		c.broker = broker
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		fmt.Fprintf(stderr, "wskit serve: %v\n", err)
		return 1
	}
	opts := c.options(logs.lib)
	if c.broker != nil && opts.Workers == 0 {
		// Subscribing and publishing wait for the broker: not on the loop.
		opts.Workers = brokerWorkers
	}
	opts.TLSConfig, err = c.tlsConfig(stderr)
	var srv *wskit.Server
	if err == nil {
		srv, err = wskit.NewServer(opts)
	}
	if err != nil {
		ln.Close()
		fmt.Fprintf(stderr, "wskit serve: %v\n", err)
		return 1
	}
	log.Info("listening", "addr", ln.Addr().String(), "page", pageURL(ln.Addr(), opts.TLSConfig != nil), "engine", srv.ResolvedEngine(),
		"max_message", formatSize(c.maxMessage), "ping", c.ping, "timeout", c.timeout, "deflate", c.deflate,
		"chat_replay", c.chatReplay, "http2", c.http2)
	var started []func(*wskit.Server, *wskit.Hub)
	if c.metrics != "" {
		mln, err := net.Listen("tcp", c.metrics)
		if err != nil {
			ln.Close()
			fmt.Fprintf(stderr, "wskit serve: -metrics: %v\n", err)
			return 1
		}
		var metrics func(*wskit.Server, *wskit.Hub) http.Handler
		if ext != nil {
			metrics = ext.Metrics
		}
		started = append(started, func(srv *wskit.Server, chat *wskit.Hub) { serveMetrics(ctx, mln, srv, chat, metrics, log) })
	}
	err = serve(ctx, srv, ln, c.chatOptions(), log, started...)
	logs.refusals.flush()
	if err != nil {
		log.Error("serve failed", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// tlsConfig returns the TLS configuration the flags ask for, or nil. With
// -tls-self-signed it prints the certificate, for a client's -ca, and its
// fingerprint.
func (c serveConfig) tlsConfig(stderr io.Writer) (*tls.Config, error) {
	switch {
	case c.tlsCert != "":
		cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
		if err != nil {
			return nil, err
		}
		return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
	case c.selfSigned:
		cert, err := selfsign.New()
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "self-signed certificate for localhost, 127.0.0.1 and ::1, SHA-256 fingerprint %s\n%s",
			cert.Fingerprint, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Leaf.Raw}))
		return cert.ServerConfig(), nil
	}
	return nil, nil
}

// pageURL returns the demo page's URL for a listener's address.
func pageURL(addr net.Addr, secure bool) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	scheme := "http://"
	if secure {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(host, port) + "/"
}

// brokerWorkers is Options.Workers with a broker: the chat's callbacks
// wait for it, the poll engine's loops do not.
const brokerWorkers = 64

// validEngine reports whether name is an engine wskit serve knows.
func validEngine(name string) bool {
	_, err := wskit.ParseEngine(name)
	return err == nil
}

// serve runs the demo routes of srv on ln until ctx ends, then shuts
// down: sessions get 1001 Going Away. Each of started runs with the server
// and the chat hub before Serve.
func serve(ctx context.Context, srv *wskit.Server, ln net.Listener, chatOpts wskit.HubOptions, log *slog.Logger, started ...func(*wskit.Server, *wskit.Hub)) error {
	chat, err := wskit.NewHub(chatOpts)
	if err != nil {
		ln.Close()
		return err
	}
	defer chat.Close()
	feed := newStatsFeed(srv, statsPeriod)
	defer feed.Close() // after the shutdown: its ticker stops
	for _, f := range started {
		f(srv, chat)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, newMux(srv, chat, feed, log)) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "sessions", srv.Sessions())
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err = srv.Shutdown(sctx)
	<-served
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("shutdown deadline passed; remaining connections were cut", "grace", shutdownGrace)
		return nil
	}
	return err
}

// newMux returns the demo routes: /echo, /events, /raw, /hello, /chat (on
// the chat hub), /chat/{room} (rooms of chat's options), /stats (the
// snapshots of feed) and the page at /.
func newMux(srv *wskit.Server, chat *wskit.Hub, feed *statsFeed, log *slog.Logger) http.Handler {
	ro := chat.Options()
	if ro.Broker != nil {
		ro.Topic = "room." // each room is the topic "room.<name>"
	}
	rooms, err := wskit.NewTopics(ro)
	if err != nil {
		panic(err) // the lobby's options are valid
	}
	mux := http.NewServeMux()
	mux.Handle("/echo", srv.WebSocket(logged(log, echo)))
	mux.Handle("/events", srv.WebSocketEvents(echoEvents(log)))
	mux.Handle("/chat", srv.WebSocketEvents(chatEvents(chat, rooms, log)))
	mux.Handle("/chat/{room}", srv.WebSocketEvents(chatEvents(chat, rooms, log), wskit.OnAccept(acceptRoom)))
	mux.Handle("/hello", srv.WebSocket(logged(log, hello)))
	mux.Handle("/raw", srv.WebSocketRaw(loggedRaw(log, rawEcho)))
	mux.Handle("/stats", srv.WebSocketEvents(feed.events(log)))
	page := indexHTML
	if ro.Stamp != nil {
		// The page reads the sequences and asks for what it missed.
		page = bytes.Replace(page, []byte("<body>"), []byte(`<body data-chat-seq="">`), 1)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { serveIndex(w, page) })
	return mux
}

func serveIndex(w http.ResponseWriter, page []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(page)
}

// echo sends every message back with its type.
func echo(s *wskit.Session) {
	for m := range s.Messages() {
		if s.Send(m.Type, m.Payload) != nil {
			return
		}
	}
}

// echoEvents echoes every message from Events callbacks: on the poll engine
// they run on the event loop, and an idle session holds no goroutine.
func echoEvents(log *slog.Logger) wskit.Events {
	return wskit.Events{
		OnOpen: func(s *wskit.Session) {
			logOpen(log, sessionRequest(s), "subprotocol", s.Subprotocol())
		},
		OnMessage: func(s *wskit.Session, m wskit.Message) {
			s.Send(m.Type, m.Payload)
		},
		OnClose: func(s *wskit.Session, r wskit.CloseReason) {
			logClose(log, sessionRequest(s), int(r.Code), r.Reason, s.Err())
		},
	}
}

// chatGreeting is the first message of every /chat session.
const chatGreeting = "You are connected to WebSocket!"

// chatBuffer is how many messages the hub holds back for a /chat member
// whose connection already has MaxQueue bytes unwritten; one more closes it
// with 1013, so that it never slows the others. So does a text that would
// take the texts it has not read past the hub's default of 1 MiB, each
// counted at its size after inflating, with its copies.
const chatBuffer = 256

// chatEvents is the Ktor guide's chat over a SharedFlow: every text message
// goes to every member of the session's room, its sender included, in one
// order for all; binary messages are ignored. The room is /chat's lobby, or
// the one a /chat/{room} session's accept hook put under roomKey. Publish
// never waits with OverflowCloseTryAgain, so the callbacks may run on the
// poll engine's loop.
func chatEvents(lobby *wskit.Hub, rooms *wskit.Topics, log *slog.Logger) wskit.Events {
	return wskit.Events{
		OnOpen: func(s *wskit.Session) {
			room, inRoom := roomKey.Get(s)
			logOpen(log, sessionRequest(s), "subprotocol", s.Subprotocol())
			// Greeted before it subscribes, as in Ktor, so that the replay
			// follows the greeting; a text published in between misses it.
			if s.SendText(chatGreeting) != nil {
				return
			}
			var err error
			if a := s.Request().URL.Query().Get("after"); a != "" && lobby.Options().Stamp != nil {
				// A member back with the sequence of the last message it
				// received: what it missed first.
				after, _ := strconv.ParseUint(a, 10, 64)
				ctx, cancel := context.WithTimeout(context.Background(), chatRecoverWait)
				var all bool
				if inRoom {
					all, err = rooms.SubscribeAfter(ctx, room, s, after)
				} else {
					all, err = lobby.SubscribeAfter(ctx, s, after)
				}
				cancel()
				log.Debug("chat rejoined", "remote", s.RemoteAddr().String(), "path", s.Request().URL.Path, "after", after, "recovered_all", all)
			} else if inRoom {
				err = rooms.Subscribe(room, s)
			} else {
				err = lobby.Subscribe(s)
			}
			if err != nil {
				r := sessionRequest(s)
				log.Warn("chat subscribe", "remote", r.remote, "path", r.path, "err", err)
				s.Close(wskit.CloseGoingAway, "chat closed")
			}
		},
		OnMessage: func(s *wskit.Session, m wskit.Message) {
			if m.Type != wskit.Text {
				return
			}
			// Publish copies m.Payload.
			if room, ok := roomKey.Get(s); ok {
				rooms.Publish(context.Background(), room, wskit.Text, m.Payload)
				return
			}
			lobby.Publish(context.Background(), wskit.Text, m.Payload)
		},
		OnClose: func(s *wskit.Session, r wskit.CloseReason) {
			logClose(log, sessionRequest(s), int(r.Code), r.Reason, s.Err())
		},
	}
}

// chatRecoverWait bounds the fetch of what a member missed.
const chatRecoverWait = 10 * time.Second

// roomKey is the room of a /chat/{room} session.
var roomKey = wskit.NewKey[string]("room")

// acceptRoom checks the room a /chat/{room} session asks for and attaches
// it to the session.
func acceptRoom(h *wskit.Handshake) error {
	room := h.Request.PathValue("room")
	if len(room) == 0 || len(room) > 64 || strings.ContainsFunc(room, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || unicode.IsLetter(r) || unicode.IsDigit(r))
	}) {
		return wskit.Refuse(http.StatusBadRequest, "a room's name is 1 to 64 letters, digits, '-', '_' or '.'")
	}
	roomKey.Set(h, room)
	return nil
}

// hello is the Ktor guide's example: it asks for a name and greets each
// text message until told "bye".
func hello(s *wskit.Session) {
	if s.SendText("Please enter your name") != nil {
		return
	}
	for m := range s.Messages() {
		if m.Type != wskit.Text {
			continue
		}
		text := m.Text()
		if strings.EqualFold(text, "bye") {
			s.Close(wskit.CloseNormal, "Client said BYE")
			return
		}
		if s.SendText("Hi, "+text+"!") != nil {
			return
		}
	}
}

// rawEcho writes every data frame back as it came (fragments stay
// fragments), answers pings and echoes the close frame.
func rawEcho(s *wsraw.Session) {
	for f := range s.Frames() {
		h := frame.Header{Fin: true, Op: f.Op}
		switch f.Op {
		case frame.OpPong:
			continue
		case frame.OpPing:
			h.Op = frame.OpPong
		case frame.OpClose:
		default:
			h.Fin, h.Rsv = f.Fin, f.Rsv
		}
		if s.SendFrame(h, f.Payload) != nil || f.Op == frame.OpClose {
			return
		}
	}
}

// logged wraps a default session's handler to log its open and close.
func logged(log *slog.Logger, handler func(*wskit.Session)) func(*wskit.Session) {
	return func(s *wskit.Session) {
		logSessionOpen(log, s)
		handler(s)
		logSessionClose(log, s)
	}
}

// logSessionOpen logs a default session's open. The request is read only
// to log: on the poll engine Request parses the head again, which an idle
// session need not pay for. It and logSessionClose are apart from logged,
// so that the frame under an idle handler stays small.
//
//go:noinline
func logSessionOpen(log *slog.Logger, s *wskit.Session) {
	if log.Enabled(context.Background(), slog.LevelDebug) {
		logOpen(log, sessionRequest(s), "subprotocol", s.Subprotocol())
	}
}

// logSessionClose closes a default session whose handler has returned and
// logs its close.
//
//go:noinline
func logSessionClose(log *slog.Logger, s *wskit.Session) {
	s.Close(wskit.CloseNormal, "") // a no-op when the session has ended
	reason, _ := s.CloseReason()
	logClose(log, sessionRequest(s), int(reason.Code), reason.Reason, s.Err())
}

// loggedRaw wraps a raw session's handler to log its open and close.
func loggedRaw(log *slog.Logger, handler func(*wsraw.Session)) func(*wsraw.Session) {
	return func(s *wsraw.Session) {
		r := newRequestInfo(s.Request())
		logOpen(log, r, "subprotocol", s.Subprotocol(), "raw", true)
		handler(s)
		reason, ok := s.CloseReason()
		if !ok {
			reason.Code = frame.CloseAbnormal
		}
		logClose(log, r, int(reason.Code), reason.Reason, s.Err())
	}
}

// sizeValue is a flag.Value for byte sizes such as 64MiB.
type sizeValue int64

func (v *sizeValue) String() string { return formatSize(int64(*v)) }

func (v *sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*v = sizeValue(n)
	return nil
}

var sizeUnits = []struct {
	name  string
	shift uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// parseSize parses a byte count: plain digits, or digits followed by B,
// KiB, MiB, GiB or TiB (any case, a space allowed before the unit).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("size %q: want a number of bytes such as 1024, 64KiB or 16MiB", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	unit := strings.TrimSpace(t[i:])
	if unit == "" {
		return n, nil
	}
	for _, u := range sizeUnits {
		if strings.EqualFold(unit, u.name) {
			if n > (1<<63-1)>>u.shift {
				return 0, fmt.Errorf("size %q is too large", s)
			}
			return n << u.shift, nil
		}
	}
	return 0, fmt.Errorf("size %q: unknown unit %q (use B, KiB, MiB, GiB or TiB)", s, unit)
}

// formatSize writes n with the largest unit that divides it exactly.
func formatSize(n int64) string {
	for _, u := range sizeUnits {
		if n != 0 && u.shift > 0 && n&(1<<u.shift-1) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}
