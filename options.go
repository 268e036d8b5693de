package wskit

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/wskit/wskit/codec"
)

// QueuePolicy says what a send does when the outgoing queue is full.
type QueuePolicy uint8

const (
	// QueueBlock makes the sender wait for the queue to drain, for at most
	// Options.Timeout; then the send fails with ErrQueueTimeout.
	QueueBlock QueuePolicy = iota
	// QueueCloseTryAgain closes the session with 1013 Try Again Later.
	QueueCloseTryAgain
	// QueueClosePolicy closes the session with 1008 Policy Violation.
	QueueClosePolicy
)

// String returns the policy's name, such as "block".
func (p QueuePolicy) String() string {
	switch p {
	case QueueBlock:
		return "block"
	case QueueCloseTryAgain:
		return "close 1013"
	case QueueClosePolicy:
		return "close 1008"
	}
	return fmt.Sprintf("QueuePolicy(%d)", uint8(p))
}

// Options configure a Server's sessions, or a client's through DialOptions.
// The zero value is ready to use, as net/http's Server is: a zero field
// means its default (the values DefaultOptions returns), and a negative
// duration means no bound. Fields marked as a server's are ignored by Dial.
//
// Ktor's WebSocketOptions map onto these fields as follows.
//
//   - pingPeriod (Ktor: off) → PingPeriod, off by default.
//   - timeout (Ktor: 15 s, for the pinger only) → Timeout, 15 s, which bounds
//     the wait for a pong, for the peer's close frame after ours, for a stuck
//     write and for a sender blocked on a full queue.
//   - maxFrameSize (Ktor: Long.MAX_VALUE) → MaxFrameSize, 16 MiB; and
//     MaxMessageSize, 16 MiB, for the defragmented message (Ktor checks the
//     frame limit on the total as well).
//   - masking (Ktor: false) → not an option: RFC 6455 §5.1 fixes it by role.
//     Dial masks every frame with a fresh key; a server never masks, and
//     closes with 1002 on an unmasked client frame.
//   - contentConverter (Ktor: none) → Converter, JSON.
//   - extensions (Ktor: none) → Extensions, none: install
//     &codec.PerMessageDeflate{} for compression, or an extension of your
//     own (codec.Extension). Raw routes never negotiate them.
//   - channels.outgoing (Ktor: unlimited, bounded since 3.4) → MaxQueue, 4 MiB,
//     with QueuePolicy; channels.incoming → IncomingQueue, 1 MiB.
type Options struct {
	// PingPeriod is how often a keepalive ping is sent; 0 (or a negative
	// value) sends none.
	PingPeriod time.Duration
	// Timeout bounds the wait for a pong after a keepalive ping (then the
	// session closes with 1011), for the peer's close frame after ours, for
	// one write to the network and for a send blocked by a full queue.
	// 0 means 15 s; a negative value means no bound.
	Timeout time.Duration
	// HandshakeTimeout bounds the opening handshake: under Server.Serve, the
	// wait for a request head from the connection's start or from the
	// previous response, and writing the 101; on a client, the whole dial
	// (connecting, a proxy's tunnel, TLS, the request and the response).
	// 0 means 10 s; a negative value means no bound. A route mounted on an
	// http.Server of your own relies on that server's ReadHeaderTimeout,
	// IdleTimeout and MaxHeaderBytes.
	HandshakeTimeout time.Duration
	// MaxFrameSize is the largest frame payload accepted; a larger frame
	// closes the session with 1009 as soon as its header arrives. 0 means
	// 16 MiB.
	MaxFrameSize int64
	// MaxMessageSize is the largest message accepted after defragmentation;
	// larger closes with 1009, as soon as the frame that passes it
	// announces its length, also while Session.Reader streams the message.
	// 0 means 16 MiB.
	MaxMessageSize int64
	// MaxQueue is how many bytes of output may wait while a write is in
	// progress before QueuePolicy applies. A single message larger than it
	// is still sent once the queue is empty. 0 means 4 MiB.
	MaxQueue int
	// QueuePolicy says what a send does when the queue is full.
	QueuePolicy QueuePolicy
	// IncomingQueue is how many bytes of received messages a default
	// session holds for a handler that is not waiting in Receive; when they
	// are full, reading pauses, which pushes back on the peer. A message
	// larger than it is still held when the queue is empty. 0 means 1 MiB.
	IncomingQueue int
	// ReadBufferSize is the size of the buffer each connection reads into.
	// 0 means 4 KiB.
	ReadBufferSize int
	// FragmentSize, when positive, splits outgoing messages into frames of
	// at most that many payload bytes.
	FragmentSize int
	// Subprotocols the server accepts, in order of preference: an offered
	// protocol that is not listed is not selected, and a route may also
	// require its own (see Protocols). Dial offers them, in this order.
	Subprotocols []string
	// OriginPatterns, a server's, lists the hosts, besides the request's own, whose pages
	// may open sessions: path.Match patterns against the Origin's host
	// (and port), such as "example.com" or "*.example.com". Requests without
	// an Origin header (non-browser clients) are always allowed.
	OriginPatterns []string
	// CheckOrigin, a server's, when set, replaces the Origin policy: it returns whether
	// the upgrade may proceed (else 403). Like the accept hooks, it may
	// block: on the poll engine it runs off the event loop.
	CheckOrigin func(r *http.Request) bool
	// Accept, a server's, when set, runs for every upgrade to the server's routes once
	// the handshake's checks pass, before the route's own OnAccept: to
	// authenticate, refuse (return a *Refusal), add headers to the 101 or
	// attach values to the session (see Handshake). A panic in it refuses
	// the upgrade with 500 and is logged.
	Accept func(h *Handshake) error
	// Extensions are offered by Dial and accepted by a server from a
	// client's offer, in this order (which is the order they process
	// outgoing messages; incoming ones are undone in reverse). Two may not
	// share an RSV bit. Raw routes negotiate none.
	Extensions []codec.Extension
	// Converter encodes values for SendValue and ReceiveValue; nil means
	// JSON.
	Converter Converter
	// Logger receives handler panics, handshake refusals, and what the
	// http.Server of Server.Serve logs (its ErrorLog, at WARN), but failed
	// TLS handshakes, which any client can cause, go at DEBUG on both
	// engines; nil means slog.Default().
	Logger *slog.Logger

	// Engine is the transport Server.Serve runs on; EngineAuto picks the
	// poll engine where there is one.
	Engine Engine
	// TLSConfig, a server's (a client's is DialOptions.TLSConfig), when
	// set, makes Server.Serve speak TLS (wss://) on both
	// engines, as ServeTLS does; ALPN offers http/1.1 unless NextProtos
	// says otherwise. On the poll engine crypto/tls does each handshake on a
	// goroutine of its own.
	TLSConfig *tls.Config
	// HTTP2, a server's (a client's is DialOptions.HTTP2), makes
	// Server.Serve take WebSockets over HTTP/2 (RFC 8441)
	// beside HTTP/1.1 upgrades, on both engines: with TLS, ALPN offers h2
	// first; without it, HTTP/2 with prior knowledge (h2c) is accepted.
	// net/http then advertises extended CONNECT only if the program
	// imports github.com/wskit/wskit/xconnect (or runs with
	// GODEBUG=http2xconnect=1); Serve fails otherwise. Browsers then open
	// their wss:// sessions to the origin as streams of the HTTP/2
	// connection they hold, which net/http serves with a goroutine per
	// stream, also on the poll engine. A reverse proxy in front must support
	// RFC 8441 too.
	HTTP2 bool
	// ConfigureHTTP, a server's, when set, is called by Server.Serve on the http.Server
	// it runs for plain HTTP requests (and, on the std engine, for the
	// upgrades), before it starts: to change its timeouts (set from
	// HandshakeTimeout and Timeout, see Server.Serve), ErrorLog, ConnState,
	// BaseContext or ConnContext. Its Handler is Serve's.
	ConfigureHTTP func(*http.Server)
	// MaxHandshakeSize bounds the request line and headers of an opening
	// handshake read by Server.Serve; larger is answered 431. A browser's is
	// under 2 KiB. On a client it bounds the response head Dial reads (the
	// status line and headers, and those of a proxy's answer to CONNECT):
	// a larger one fails the dial with an error naming the bound. 0 means
	// 16 KiB.
	MaxHandshakeSize int
	// Loops, a server's, is the number of event loops of the poll engine;
	// 0 means one per CPU (GOMAXPROCS).
	Loops int
	// BlockingLoops, a server's, makes the poll engine's loops wait for events blocked in
	// the epoll_wait system call instead of parked in the Go runtime's
	// network poller. It saves a system call per wake-up, but a blocked loop
	// keeps its P until the runtime takes it back, which slows the
	// goroutines of default sessions when CPUs are few (see the README's
	// one-CPU figures). Leave it off unless loops have their CPUs to
	// themselves.
	BlockingLoops bool
	// TCPKeepAlive, a server's, sets TCP keep-alive on the connections Server.Serve
	// accepts, so that a peer that vanished without a FIN is dropped by the
	// kernel even with PingPeriod off: 0 means Go's defaults (probes after
	// 15 s idle, every 15 s, 9 of them), a positive value sets the idle time
	// and the interval, and a negative one turns keep-alive off.
	TCPKeepAlive time.Duration
	// Workers, a server's, when positive, runs the Events callbacks of the poll engine
	// on a pool of that many goroutines instead of on the event loop: for
	// callbacks that may block. A connection's callbacks still run one at a
	// time and in order. 0 runs them on the loop, which must then never
	// block in them.
	Workers int
}

// Engine is a transport under the same routes and sessions.
type Engine uint8

const (
	// EngineAuto is EnginePoll on Linux and EngineStd elsewhere.
	EngineAuto Engine = iota
	// EngineStd is net/http: a goroutine per connection.
	EngineStd
	// EnginePoll is epoll event loops (Linux): an idle connection holds no
	// goroutine and no buffer, and Events callbacks run on the loop.
	EnginePoll
)

// String returns the engine's name: "auto", "std" or "poll".
func (e Engine) String() string {
	switch e {
	case EngineAuto:
		return "auto"
	case EngineStd:
		return "std"
	case EnginePoll:
		return "poll"
	}
	return fmt.Sprintf("Engine(%d)", uint8(e))
}

// ParseEngine returns the Engine called name: auto, std or poll.
func ParseEngine(name string) (Engine, error) {
	for e := EngineAuto; e <= EnginePoll; e++ {
		if e.String() == name {
			return e, nil
		}
	}
	return 0, fmt.Errorf("wskit: unknown engine %q (want auto, std or poll)", name)
}

// DefaultOptions returns the defaults described on Options: what a zero
// Options means, with every default filled in.
func DefaultOptions() Options {
	return Options{
		Timeout:          15 * time.Second,
		HandshakeTimeout: 10 * time.Second,
		MaxFrameSize:     16 << 20,
		MaxMessageSize:   16 << 20,
		MaxQueue:         4 << 20,
		QueuePolicy:      QueueBlock,
		IncomingQueue:    1 << 20,
		ReadBufferSize:   4096,
		Converter:        JSON{},
		MaxHandshakeSize: 16 << 10,
	}
}

// ErrInvalidOptions is matched by every error Validate returns.
var ErrInvalidOptions = errors.New("wskit: invalid options")

// Validate reports the first option that cannot work: a negative size, an
// unknown enum value, a subprotocol that is not a token, extensions that
// clash or whose own Validate fails, a bad origin pattern. NewServer and
// Dial call it.
func (o *Options) Validate() error {
	sizes := []struct {
		name string
		n    int64
	}{
		{"MaxFrameSize", o.MaxFrameSize}, {"MaxMessageSize", o.MaxMessageSize},
		{"MaxQueue", int64(o.MaxQueue)}, {"IncomingQueue", int64(o.IncomingQueue)},
		{"ReadBufferSize", int64(o.ReadBufferSize)}, {"MaxHandshakeSize", int64(o.MaxHandshakeSize)},
		{"FragmentSize", int64(o.FragmentSize)},
	}
	for _, s := range sizes {
		if s.n < 0 {
			return fmt.Errorf("%w: %s is negative (%d); 0 means the default", ErrInvalidOptions, s.name, s.n)
		}
	}
	if o.Engine > EnginePoll {
		return fmt.Errorf("%w: unknown Engine %d", ErrInvalidOptions, o.Engine)
	}
	if o.Loops < 0 || o.Workers < 0 {
		return fmt.Errorf("%w: Loops and Workers must not be negative", ErrInvalidOptions)
	}
	if o.QueuePolicy > QueueClosePolicy {
		return fmt.Errorf("%w: unknown QueuePolicy %d", ErrInvalidOptions, o.QueuePolicy)
	}
	for _, p := range o.Subprotocols {
		if !isToken(p) {
			return fmt.Errorf("%w: subprotocol %q is not an HTTP token", ErrInvalidOptions, p)
		}
	}
	if err := codec.CheckExtensions(o.Extensions); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidOptions, err)
	}
	for _, e := range o.Extensions {
		if v, ok := e.(interface{ Validate() error }); ok {
			if err := v.Validate(); err != nil {
				return fmt.Errorf("%w: %v", ErrInvalidOptions, err)
			}
		}
	}
	for _, p := range o.OriginPatterns {
		if _, err := matchHost(p, ""); err != nil {
			return fmt.Errorf("%w: origin pattern %q: %v", ErrInvalidOptions, p, err)
		}
	}
	return nil
}

// withDefaults returns o with its zero fields set to their defaults, and
// its lists copied so that the caller's may change.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Timeout == 0 {
		o.Timeout = d.Timeout
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = d.HandshakeTimeout
	}
	setSize(&o.MaxFrameSize, d.MaxFrameSize)
	setSize(&o.MaxMessageSize, d.MaxMessageSize)
	setSize(&o.MaxQueue, d.MaxQueue)
	setSize(&o.IncomingQueue, d.IncomingQueue)
	setSize(&o.ReadBufferSize, d.ReadBufferSize)
	setSize(&o.MaxHandshakeSize, d.MaxHandshakeSize)
	if o.Converter == nil {
		o.Converter = d.Converter
	}
	o.Subprotocols = slices.Clone(o.Subprotocols)
	o.OriginPatterns = slices.Clone(o.OriginPatterns)
	o.Extensions = slices.Clone(o.Extensions)
	return o
}

func setSize[T int | int64](n *T, def T) {
	if *n == 0 {
		*n = def
	}
}

func (o *Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}
