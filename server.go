package wskit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/internal/rawhook"
	"github.com/wskit/wskit/internal/wsconn"
	"github.com/wskit/wskit/wsraw"
)

// Server holds the Options shared by its routes (Ktor's install(WebSockets))
// and the sessions they opened, so that Shutdown can close them all.
type Server struct {
	opts Options

	mu       sync.Mutex
	sessions map[liveSession]struct{}
	closing  bool
	drained  chan struct{}  // made by Shutdown; closed once no session is tracked
	https    []*http.Server // of Serve
	polls    []*pollEngine

	shards    []shard // the counters of sessions on goroutines (see Stats)
	nextShard atomic.Uint32
}

// liveSession is what Shutdown needs of a default or raw session.
type liveSession interface {
	goingAway()
	kill()
}

// NewServer validates opts and returns a Server whose sessions use them,
// with defaults for the zero fields.
func NewServer(opts Options) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.Subprotocols = append([]string(nil), opts.Subprotocols...)
	return &Server{opts: opts.withDefaults(), sessions: make(map[liveSession]struct{}), shards: newShards()}, nil
}

// Options returns the server's options, with defaults filled in.
func (srv *Server) Options() Options { return srv.opts }

// WebSocket returns an http.Handler that upgrades requests to default
// sessions and runs handler on each (Ktor's webSocket(path, protocol)).
// Mount it on any mux, behind any middleware:
// mux.Handle("GET /echo", srv.WebSocket(echo)). Protocols and OnAccept
// configure the route.
//
// Returning from handler closes the session with 1000 Normal Closure; a
// panic closes it with 1011 Internal Error and is logged.
func (srv *Server) WebSocket(handler func(*Session), opts ...RouteOption) http.Handler {
	rt := srv.newRoute(routeSession, opts)
	rt.session = handler
	return rt
}

// WebSocketEvents returns an http.Handler that upgrades requests and runs
// the lifecycle callbacks of ev on each session (see Events). On the poll
// engine they run on the event loop, with no goroutine per session (see
// Options.Workers).
func (srv *Server) WebSocketEvents(ev Events, opts ...RouteOption) http.Handler {
	rt := srv.newRoute(routeEvents, opts)
	rt.events = ev
	return rt
}

// WebSocketRaw returns an http.Handler that upgrades requests to raw
// sessions (Ktor's webSocketRaw). Returning from handler closes the TCP
// connection; write a close frame first for a clean close. A panic is logged
// and sends a 1011 close frame.
func (srv *Server) WebSocketRaw(handler func(*wsraw.Session), opts ...RouteOption) http.Handler {
	rt := srv.newRoute(routeRaw, opts)
	rt.raw = handler
	return rt
}

func (srv *Server) newRoute(kind routeKind, opts []RouteOption) *route {
	rt := &route{srv: srv, kind: kind}
	for _, o := range opts {
		o(&rt.cfg)
	}
	return rt
}

// routeKind says what kind of session a route opens.
type routeKind uint8

const (
	routeSession routeKind = iota
	routeRaw
	routeEvents
)

// route is the http.Handler of a WebSocket endpoint. The poll engine finds
// routes in the handler it serves and opens their sessions on its loops.
type route struct {
	srv     *Server
	kind    routeKind
	cfg     routeConfig
	session func(*Session)
	raw     func(*wsraw.Session)
	events  Events
}

// hooked reports whether an accept hook must see the route's upgrades,
// which the poll engine then leaves to net/http's goroutines: a hook may
// block.
func (rt *route) hooked() bool {
	o := &rt.srv.opts
	return rt.cfg.accept != nil || o.Accept != nil || o.CheckOrigin != nil
}

// ServeHTTP upgrades the request, on the goroutine net/http serves it on,
// and returns once the session is open.
func (rt *route) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p, ok := w.(*routeProbe); ok {
		p.rt, p.r = rt, r // the poll engine looking for its routes
		return
	}
	u, herr := rt.srv.accept(w, r, rt.kind, &rt.cfg)
	if herr != nil {
		return
	}
	if rt.kind == routeEvents && u.poll != nil {
		u.poll.attach(u, rt) // back to the loop: this goroutine ends
		return
	}
	if u.h2 {
		rt.serveConn(u) // the stream ends when this handler returns
		u.nc.Close()    // no write after it
		return
	}
	if err := writeAccept(u.nc, u.key, u.protocol, u.exts, u.header, rt.srv.opts.HandshakeTimeout); err != nil {
		codec.ReleaseExtensions(u.exts)
		u.nc.Close()
		return
	}
	// The session runs on a goroutine of its own and ServeHTTP returns, so
	// that net/http's goroutine, its buffers and the chain's frames are not
	// kept for the session's life. The request's context then keeps its
	// values, not its cancellation, which net/http brings when ServeHTTP
	// returns.
	u.r = r.WithContext(context.WithoutCancel(r.Context()))
	rt.start(u)
}

// start runs the session of u on a goroutine of its own. A default
// session is made here, on the caller's goroutine, which must not block:
// the new goroutine then only runs the handler, and one whose handler waits
// for a message parks with a stack that never grew past the smallest
// (the runtime cannot shrink it back to that once it has).
func (rt *route) start(u *upgraded) {
	if rt.kind != routeSession || u.writeAccept {
		go rt.serveConn(u)
		return
	}
	sh := rt.srv.pickShard()
	s := rt.srv.newServerSession(u, sh)
	if !rt.srv.track(s) {
		go func() {
			s.Close(CloseGoingAway, "server shutting down")
			s.releaseBuffers()
		}()
		return
	}
	sh.opened(u.onPoll, rt.kind)
	if len(u.unsent) > 0 {
		go func() {
			if t := rt.srv.opts.HandshakeTimeout; t > 0 {
				u.nc.SetWriteDeadline(time.Now().Add(t))
			}
			if _, err := u.nc.Write(u.unsent); err != nil {
				s.out().Abort()
			}
			u.nc.SetWriteDeadline(time.Time{})
			rt.runSession(s, u.onPoll)
		}()
		return
	}
	go rt.runSession(s, u.onPoll)
}

// runSession runs the handler of s, a tracked default session, until it
// has ended. It is runHandler and the end of serveConn in one frame: its
// goroutine idles under it.
func (rt *route) runSession(s *Session, onPoll bool) {
	defer rt.untrack(s, onPoll)
	defer s.endHandler()
	rt.session(s)
}

// untrack forgets s, a default session of rt that has ended.
func (rt *route) untrack(s *Session, onPoll bool) {
	rt.srv.untrack(s)
	s.meter.closed(onPoll, rt.kind)
}

// serveConn runs a session on an upgraded connection, until it ends,
// writing the 101 first when u says so.
func (rt *route) serveConn(u *upgraded) {
	if u.writeAccept {
		if err := writeAccept(u.nc, u.key, u.protocol, u.exts, nil, rt.srv.opts.HandshakeTimeout); err != nil {
			codec.ReleaseExtensions(u.exts)
			u.nc.Close()
			return
		}
	}
	if rt.kind == routeRaw {
		rt.serveRaw(u)
		return
	}
	s := rt.openSession(u)
	if s == nil {
		return
	}
	handler := rt.session
	if rt.kind == routeEvents {
		handler = rt.events.Run
	}
	runHandler(s, handler)
	rt.srv.untrack(s)
	s.meter.closed(u.onPoll, rt.kind)
}

// openSession makes and tracks the default session of u, counted in a
// shard of the server; nil when the server is shutting down.
func (rt *route) openSession(u *upgraded) *Session {
	srv := rt.srv
	sh := srv.pickShard()
	s := srv.newServerSession(u, sh)
	if !srv.track(s) {
		s.Close(CloseGoingAway, "server shutting down")
		s.releaseBuffers()
		return nil
	}
	sh.opened(u.onPoll, rt.kind)
	return s
}

// serveRaw runs a raw session on u until it ends.
func (rt *route) serveRaw(u *upgraded) {
	srv := rt.srv
	sh := srv.pickShard()
	c := wsconn.New(u.nc, u.buffered, srv.connConfig(codec.Server, true, sh))
	rs := &rawSession{Session: newRawSession(c, u.r, u.protocol, false, nil), c: c}
	if srv.track(rs) {
		sh.opened(u.onPoll, routeRaw)
		defer sh.closed(u.onPoll, routeRaw)
		defer srv.untrack(rs)
		srv.runRaw(rs, rt.raw)
	} else {
		rs.goingAway()
	}
	c.Close()
	c.Release()
}

// newServerSession makes the default session of an upgraded connection,
// counted in sh.
func (srv *Server) newServerSession(u *upgraded, sh *shard) *Session {
	cfg := srv.connConfig(codec.Server, false, sh)
	cfg.Codec.Extensions = u.exts
	s := newSession(wsconn.New(u.nc, u.buffered, cfg), &srv.opts, u.r, u.protocol, false)
	// Under the lock: the grace timer, already running, may start the
	// background reader, which reads them.
	s.mu.Lock()
	s.kept = u.kept
	s.meter = sh
	s.engine = EngineStd
	if u.onPoll {
		s.engine = EnginePoll
	}
	s.vals = u.vals
	s.mu.Unlock()
	return s
}

func (srv *Server) runRaw(rs *rawSession, handler func(*wsraw.Session)) {
	defer func() {
		if v := recover(); v != nil {
			logPanic(&srv.opts, rs.Request(), v)
			rs.c.WriteClose(CloseInternalError, "internal error")
		}
	}()
	handler(rs.Session)
}

// newRawSession makes the raw session of an upgraded connection.
func newRawSession(c *wsconn.Conn, r *http.Request, protocol string, owned bool, onClose func()) *wsraw.Session {
	return rawhook.NewSession(c, r, protocol, owned, onClose).(*wsraw.Session)
}

type rawSession struct {
	*wsraw.Session
	c *wsconn.Conn
}

func (rs *rawSession) goingAway() { rs.c.WriteClose(CloseGoingAway, "server shutting down") }
func (rs *rawSession) kill()      { rs.c.Abort() }

func (s *Session) goingAway() {
	if s.lc != nil {
		s.lc.close(CloseGoingAway, "server shutting down")
		return
	}
	go s.Close(CloseGoingAway, "server shutting down")
}

func (s *Session) kill() { s.out().Abort() }

// runHandler runs a default session's handler and closes the session after
// it: 1000 when it returns, 1011 when it panics.
func runHandler(s *Session, handler func(*Session)) {
	defer s.endHandler()
	handler(s)
}

// endHandler closes the session once its handler has returned or
// panicked, and returns its buffers.
func (s *Session) endHandler() {
	if v := recover(); v != nil {
		logPanic(s.opts, s.Request(), v)
		s.closeWith(CloseInternalError, "internal error", ErrHandlerPanic)
	} else {
		s.Close(CloseNormal, "")
	}
	s.releaseBuffers()
}

// logPanic logs v, recovered from a session's handler or callback; call it
// from the deferred function that recovered v.
func logPanic(opts *Options, r *http.Request, v any) {
	logRecovered(opts, r, codec.Recovered(v, "session handler"), "closing with 1011")
}

// logIfPanic logs err if it is a panic recovered from an extension; outcome
// says what followed. s gives the request, only then.
func logIfPanic(s *Session, err error, outcome string) {
	var pan *codec.PanicError
	if err != nil && errors.As(err, &pan) {
		logRecovered(s.opts, s.Request(), pan, outcome)
	}
}

// logRecovered logs a panic recovered from the application's code, and
// what was done about it.
func logRecovered(opts *Options, r *http.Request, pan *codec.PanicError, outcome string) {
	attrs := []any{"panic", fmt.Sprint(pan.Value), "stack", string(pan.Stack)}
	if r != nil {
		attrs = append(attrs, "remote", r.RemoteAddr, "path", r.URL.Path)
	}
	opts.logger().Error("wskit: "+pan.Func+" panicked; "+outcome, attrs...)
}

func mustTokens(protocols []string) {
	for _, p := range protocols {
		if !isToken(p) {
			panic(fmt.Sprintf("wskit: subprotocol %q is not an HTTP token", p))
		}
	}
}

// upgraded is a connection whose opening handshake has been accepted; the
// 101 is still to be written.
type upgraded struct {
	nc       net.Conn
	buffered []byte // read past the request
	r        *http.Request
	key      string
	protocol string
	exts     []codec.Negotiated
	header   http.Header // fields for the 101 beyond the handshake's own
	vals     *valueSet
	poll     *pollEngine // the poll engine whose loop nc can go back to, if any
	onPoll   bool        // nc comes from a poll engine (over TLS, it stays on a goroutine)
	h2       bool        // nc is an HTTP/2 stream, answered already: it ends with the handler

	writeAccept bool         // the session's goroutine writes the 101 first
	unsent      []byte       // the end of a 101 the loop could not write at once
	kept        *keptRequest // on the poll engine, the head kept for r
}

// accept carries out the server's side of an opening handshake on a
// connection of net/http: the protocol's checks, the accept hooks, the
// negotiation, and taking the connection over. On failure it has answered
// the request and returns the refusal it sent.
func (srv *Server) accept(w http.ResponseWriter, r *http.Request, kind routeKind, cfg *routeConfig) (*upgraded, *handshakeError) {
	key, protocol, herr := srv.checkUpgrade(r, cfg.protocols)
	var hs *Handshake
	if herr == nil && (srv.opts.Accept != nil || cfg.accept != nil) {
		hs = &Handshake{Request: r, Header: w.Header(), Subprotocol: protocol}
		herr = srv.runAccept(hs, cfg.accept)
	}
	var exts []codec.Negotiated
	if herr == nil {
		exts, herr = srv.opts.negotiate(r, kind)
	}
	sh := srv.pickShard()
	if herr != nil {
		srv.opts.logger().Debug("wskit: upgrade refused", "status", herr.status, "reason", herr.msg, "remote", r.RemoteAddr, "path", r.URL.Path)
		herr.write(w)
		sh.refused[herr.why].Add(1)
		return nil, herr
	}
	if isH2WebSocket(r) {
		nc, err := acceptH2(w, r, protocol, exts)
		if err != nil {
			// The 200 is out or the stream is gone: nothing more to answer.
			codec.ReleaseExtensions(exts)
			sh.refused[refusedOther].Add(1)
			return nil, refuse(refusedOther, http.StatusInternalServerError, err.Error())
		}
		sh.accepted.Add(1)
		u := &upgraded{nc: nc, r: r, protocol: protocol, exts: exts, h2: true}
		if hs != nil {
			u.vals = hs.vals
		}
		if pc, ok := r.Context().Value(replayKey{}).(*prefixConn); ok && pc.pe.srv == srv {
			u.onPoll = true
		}
		return u, nil
	}
	var nc net.Conn
	var buffered []byte
	var err error
	if cw, ok := w.(*chainWriter); ok {
		nc, err = cw.hijack()
	} else {
		var rw *bufio.ReadWriter
		if nc, rw, err = http.NewResponseController(w).Hijack(); err == nil {
			buffered = peekBuffered(rw.Reader)
		}
	}
	if err != nil {
		codec.ReleaseExtensions(exts)
		herr = refuse(refusedOther, http.StatusInternalServerError, "wskit: the connection cannot be taken over: "+err.Error())
		herr.write(w)
		sh.refused[herr.why].Add(1)
		return nil, herr
	}
	sh.accepted.Add(1)
	nc = unwrapMetered(nc)
	nc.SetDeadline(time.Time{}) // drop the HTTP server's deadlines
	u := &upgraded{nc: nc, buffered: buffered, r: r, key: key, protocol: protocol, exts: exts, header: w.Header()}
	if hs != nil {
		u.vals = hs.vals
	}
	if pc, ok := nc.(*prefixConn); ok && pc.pe.srv == srv {
		u.onPoll = true
		if pc.tls == nil {
			u.poll = pc.pe
		}
	}
	return u, nil
}

// checkUpgrade applies the handshake rules and the Origin policy to r, and
// selects the subprotocol: required lists a route's own.
func (srv *Server) checkUpgrade(r *http.Request, required []string) (key, protocol string, herr *handshakeError) {
	if isH2WebSocket(r) {
		herr = checkH2Request(r)
	} else {
		key, herr = checkRequest(r)
	}
	if herr == nil {
		herr = srv.opts.checkOrigin(r)
	}
	if herr != nil {
		return "", "", herr
	}
	if len(required) > 0 {
		if protocol = selectProtocol(r, required); protocol == "" {
			return "", "", refuse(refusedSubprotocol, http.StatusBadRequest, fmt.Sprintf("wskit: this endpoint requires one of the subprotocols %q", required))
		}
		return key, protocol, nil
	}
	return key, selectProtocol(r, srv.opts.Subprotocols), nil
}

// peekBuffered returns bytes the client sent after its request, already read
// by the HTTP server.
func peekBuffered(br *bufio.Reader) []byte {
	if br == nil || br.Buffered() == 0 {
		return nil
	}
	b, _ := br.Peek(br.Buffered())
	return b
}

// connConfig returns the configuration of a server's connection, counted
// in sh.
func (srv *Server) connConfig(role codec.Role, raw bool, sh *shard) wsconn.Config {
	cfg := connConfig(&srv.opts, role, raw)
	cfg.Codec.Counters = &sh.proto
	cfg.Meter = &sh.queue
	return cfg
}

func connConfig(o *Options, role codec.Role, raw bool) wsconn.Config {
	cfg := wsconn.Config{
		Codec: codec.Config{
			Role:           role,
			MaxFrameSize:   o.MaxFrameSize,
			MaxMessageSize: o.MaxMessageSize,
			FragmentSize:   o.FragmentSize,
			Raw:            raw,
		},
		ReadBufferSize: o.ReadBufferSize,
		WriteTimeout:   o.Timeout,
		MaxQueue:       o.MaxQueue,
		Policy:         wsconn.Policy(o.QueuePolicy),
	}
	if !raw {
		cfg.Codec.PingPeriod = o.PingPeriod
		cfg.Codec.Timeout = o.Timeout
	}
	return cfg
}

func (srv *Server) track(s liveSession) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.closing {
		return false
	}
	srv.sessions[s] = struct{}{}
	return true
}

func (srv *Server) untrack(s liveSession) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if _, ok := srv.sessions[s]; !ok {
		return
	}
	delete(srv.sessions, s)
	if len(srv.sessions) == 0 && srv.drained != nil {
		close(srv.drained) // no session is tracked once closing: closed once
	}
}

// sessionsDrained returns a channel closed once no session is tracked.
// srv is closing: none can be added.
func (srv *Server) sessionsDrained() <-chan struct{} {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.drained == nil {
		srv.drained = make(chan struct{})
		if len(srv.sessions) == 0 {
			close(srv.drained)
		}
	}
	return srv.drained
}

// Sessions returns the number of open sessions.
func (srv *Server) Sessions() int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	n := len(srv.sessions)
	for _, pe := range srv.polls {
		n += int(pe.sessions.Load())
	}
	return n
}

// Shutdown stops Serve from accepting, closes every session with 1001
// Going Away, refuses new ones, and waits for their handlers to return.
// Plain HTTP requests under Serve get a second to finish. When ctx ends
// first, the remaining connections are cut and ctx's error is returned. An
// http.Server of your own must be shut down by you, first: its Shutdown
// does not see upgraded connections.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.mu.Lock()
	srv.closing = true
	srv.mu.Unlock()
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.stopServing(ctx) }()
	srv.mu.Lock()
	live := make([]liveSession, 0, len(srv.sessions))
	for s := range srv.sessions {
		live = append(live, s)
	}
	srv.mu.Unlock()
	for _, s := range live {
		s.goingAway()
	}
	srv.mu.Lock()
	polls := srv.polls
	srv.mu.Unlock()
	for _, pe := range polls {
		pe.goingAway()
	}
	done := make(chan struct{})
	drained := srv.sessionsDrained()
	go func() {
		// Ends with ctx too: a session its owner never lets go (UpgradeRaw
		// without CloseNow) must not keep it waiting.
		select {
		case <-drained:
		case <-ctx.Done():
			return
		}
		for _, pe := range polls {
			for pe.sessions.Load() > 0 && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
		}
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		srv.mu.Lock()
		for s := range srv.sessions {
			s.kill()
		}
		srv.mu.Unlock()
		for _, pe := range polls {
			pe.kill()
		}
		err = ctx.Err()
	}
	if herr := <-httpDone; err == nil && herr != nil && !errors.Is(herr, net.ErrClosed) {
		err = herr
	}
	srv.stopEngines()
	return err
}
