package wskit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"iter"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/internal/bufpool"
	"github.com/wskit/wskit/poller"
)

// pollEngine serves a Server's routes on poller loops. It reads each
// request head on the loop; upgrades to the server's routes are answered
// there, everything else is handed to net/http (see Server.Serve).
type pollEngine struct {
	srv     *Server
	tls     *tlsEngine // when set, every connection speaks TLS
	h       http.Handler
	eng     *poller.Engine
	handoff *handoffListener
	workers *workerPool
	hs      *http.Server
	stopped chan struct{}
	once    sync.Once

	// Events sessions are counted here rather than in the Server's map,
	// which would cost each idle session a map entry; Shutdown finds them
	// through the loops.
	sessions atomic.Int64
	mu       sync.Mutex
	closing  bool

	shards []shard // the counters of each loop (see Stats)
	// codec is the protocol config of each loop's Events sessions, which
	// count in its shard: they share it rather than each hold a copy.
	codec []codec.Config
}

// shard returns the counters of c's loop.
func (pe *pollEngine) shard(c *poller.Conn) *shard { return &pe.shards[c.Loop()] }

// open counts a new Events session, unless Shutdown has begun.
func (pe *pollEngine) open() bool {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	if pe.closing {
		return false
	}
	pe.sessions.Add(1)
	return true
}

// goingAway closes every Events session with 1001 and refuses new ones.
func (pe *pollEngine) goingAway() {
	pe.mu.Lock()
	pe.closing = true
	pe.mu.Unlock()
	pe.eng.Each(func(c *poller.Conn) {
		if lc := loopConnOf(c); lc != nil {
			lc.close(CloseGoingAway, "server shutting down")
		}
	})
}

// loopConnOf returns the Events session of c, if it has one.
func loopConnOf(c *poller.Conn) *loopConn {
	switch st := c.Context.(type) {
	case *loopConn:
		return st
	case *jobQueue:
		return st.lc
	}
	return nil
}

// kill cuts every Events session.
func (pe *pollEngine) kill() {
	pe.eng.Each(func(c *poller.Conn) {
		if loopConnOf(c) != nil {
			c.Abort(ErrClosed)
		}
	})
}

func newPollEngine(srv *Server, h http.Handler, hs *http.Server, addr net.Addr) (*pollEngine, error) {
	pe := &pollEngine{srv: srv, h: h, hs: hs, handoff: newHandoffListener(addr), stopped: make(chan struct{})}
	wt := srv.opts.Timeout
	if wt == 0 {
		wt = -1
	}
	cfg := poller.Config{Loops: srv.opts.Loops, WriteTimeout: wt, KeepAlive: srv.opts.TCPKeepAlive, Logger: srv.opts.logger()}
	if srv.opts.BlockingLoops {
		cfg.Wait = poller.WaitBlock
	}
	eng, err := poller.New(cfg, pe)
	if err != nil {
		return nil, err
	}
	pe.eng = eng
	pe.shards = make([]shard, eng.Loops())
	pe.codec = make([]codec.Config, eng.Loops())
	for i := range pe.codec {
		pe.codec[i] = connConfig(&srv.opts, codec.Server, false).Codec
		pe.codec[i].Counters = &pe.shards[i].proto
	}
	if srv.opts.Workers > 0 {
		pe.workers = newWorkerPool(srv.opts.Workers)
	}
	return pe, nil
}

// close stops the loops, cutting the connections left, and the workers.
func (pe *pollEngine) close() {
	pe.once.Do(func() {
		pe.eng.Close()
		pe.handoff.Close()
		if pe.workers != nil {
			pe.workers.stop()
		}
		close(pe.stopped)
	})
}

// headState is a request head that has not fully arrived.
type headState struct {
	buf *[]byte
}

func (pe *pollEngine) OnOpen(c *poller.Conn) {
	if pe.tls != nil {
		// crypto/tls shakes hands on a goroutine of its own.
		pe.startTLS(c.Detach())
		return
	}
	if t := pe.srv.opts.HandshakeTimeout; t > 0 {
		c.SetTimer(time.Now().Add(t))
	}
}

func (pe *pollEngine) OnData(c *poller.Conn, in []byte) {
	switch st := c.Context.(type) {
	case *loopConn:
		if st.tls() != nil {
			st.onRecords(in)
			return
		}
		st.onData(in)
	case *jobQueue:
		st.lc.onData(in)
	case nil:
		// Most heads arrive in one read: parse them in place.
		if end := headLen(in, 0); end >= 0 {
			pe.handshake(c, in[:end], in[end:])
			return
		}
		buf := bufpool.Get(max(len(in), 1024))
		*buf = append((*buf)[:0], in...)
		c.Context = &headState{buf: buf}
		pe.checkHeadSize(c, *buf)
	case *headState:
		from := max(len(*st.buf)-3, 0)
		*st.buf = append(*st.buf, in...)
		if end := headLen(*st.buf, from); end >= 0 {
			c.Context = nil
			pe.handshake(c, (*st.buf)[:end], (*st.buf)[end:])
			bufpool.Put(st.buf)
			return
		}
		pe.checkHeadSize(c, *st.buf)
	}
}

// headLen returns the length of the request head at the start of b,
// through the empty line that ends it, or -1 if b holds no empty line at
// or after from. As in net/http, a line may end in LF alone.
func headLen(b []byte, from int) int {
	for i := from; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		switch {
		case i < len(b) && b[i] == '\n':
			return i + 1
		case i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n':
			return i + 2
		}
	}
	return -1
}

// checkHeadSize hands a head that outgrew the limit to net/http, which
// answers 431 with the same limit.
func (pe *pollEngine) checkHeadSize(c *poller.Conn, head []byte) {
	if len(head) > pe.srv.opts.MaxHandshakeSize+4096 {
		st := c.Context.(*headState)
		c.Context = nil
		pe.toHTTP(c, head)
		bufpool.Put(st.buf)
	}
}

func (pe *pollEngine) OnTimer(c *poller.Conn) {
	switch st := c.Context.(type) {
	case *loopConn:
		st.onTimer()
	case *jobQueue:
		st.lc.onTimer()
	default:
		// The handshake took too long, as net/http's ReadHeaderTimeout.
		pe.shard(c).refused[refusedTimeout].Add(1)
		c.Abort(errHandshakeTimeout)
	}
}

func (pe *pollEngine) OnClose(c *poller.Conn, err error) {
	switch st := c.Context.(type) {
	case *loopConn:
		st.onClose(err)
	case *jobQueue:
		st.lc.onClose(err) // the context stays: workers may still read it
	case *headState:
		bufpool.Put(st.buf)
		c.Context = nil
	}
}

// Fill implements poller.Filler: the loop hands an event session the
// messages its hubs hold once its output has drained.
func (pe *pollEngine) Fill(c *poller.Conn) {
	switch st := c.Context.(type) {
	case *loopConn:
		st.s.fillHubs()
	case *jobQueue:
		st.lc.s.fillHubs()
	}
}

type timeoutError struct{}

func (timeoutError) Error() string { return "wskit: opening handshake timed out" }

var errHandshakeTimeout error = timeoutError{}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// parseHead parses a request head as net/http does.
func parseHead(head []byte, remote net.Addr) (*http.Request, error) {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(bytes.NewReader(head))
	r, err := http.ReadRequest(br)
	br.Reset(nil)
	readerPool.Put(br)
	if err != nil {
		return nil, err
	}
	if remote != nil {
		r.RemoteAddr = remote.String()
	}
	return r, nil
}

// requestContext returns the context of a request read from c: with the
// values net/http sets (the server and the local address), as on std.
func (pe *pollEngine) requestContext(c *poller.Conn) context.Context {
	ctx := context.WithValue(context.Background(), http.ServerContextKey, pe.hs)
	return context.WithValue(ctx, http.LocalAddrContextKey, c.LocalAddr())
}

// handshake answers a complete request head. rest is what followed it.
//
// An upgrade to a route of the server reached directly (or through an
// *http.ServeMux) and with no accept hook is answered here on the loop,
// with no goroutine. Anything else goes to net/http on the same
// connection: plain requests, refusals, and routes behind middleware or
// with hooks, which may block; a route reached there takes its connection
// back to the loop (see pollEngine.attach).
func (pe *pollEngine) handshake(c *poller.Conn, head, rest []byte) {
	if len(head) > pe.srv.opts.MaxHandshakeSize {
		pe.toHTTP(c, head, rest) // net/http applies the limit as std does
		return
	}
	switch pe.quickUpgrade(c, head, rest) {
	case quickDone:
		return
	case quickChain:
		if pe.quickChain(c, head, rest) {
			return
		}
	}
	r, err := parseHead(head, c.RemoteAddr())
	if err != nil {
		pe.toHTTP(c, head, rest)
		return
	}
	// net/http's own check of the Host header (ReadRequest has removed it).
	if r.ProtoAtLeast(1, 1) && (!headHasHost(head) || !validHost(r.Host)) {
		pe.toHTTP(c, head, rest)
		return
	}
	rt := pe.route(r)
	if rt == nil || rt.hooked() || !headerHasToken(r.Header, "Upgrade", "websocket") {
		if !upgradeCandidate(r) {
			pe.toHTTP(c, head, rest)
			return
		}
		// The handler chain runs off the loop: it may block.
		c.SetTimer(time.Time{})
		in := make([]byte, 0, len(head)+len(rest))
		in = append(append(in, head...), rest...)
		pe.runChain(c, r, nil, in, len(head))
		return
	}
	key, protocol, herr := pe.srv.checkUpgrade(r, rt.cfg.protocols)
	var exts []codec.Negotiated
	if herr == nil {
		exts, herr = pe.srv.opts.negotiate(r, rt.kind)
	}
	if herr != nil {
		pe.toHTTP(c, head, rest) // net/http sends the same refusal
		return
	}
	c.SetTimer(time.Time{})
	pe.shard(c).accepted.Add(1)
	if rt.kind == routeEvents {
		newLoopConn(pe, c, rt, loopOpen{head: compactHead(head), key: key, protocol: protocol, exts: exts, rest: rest, paths: packPaths(r)})
		return
	}
	// Default and raw sessions block in their handlers: a goroutine drives
	// each, reading and writing through the loop's readiness.
	if rt.kind == routeSession {
		pe.startSession(c, rt, head, rest, key, protocol, exts, pathValues(r, true))
		return
	}
	u := &upgraded{r: r.WithContext(pe.requestContext(c)), key: key, protocol: protocol, exts: exts, poll: pe, onPoll: true}
	u.buffered = append([]byte(nil), rest...)
	u.writeAccept = true
	u.nc = c.Detach()
	go rt.serveConn(u)
}

// startSession opens a default session on c for an upgrade the loop
// accepted. The 101 goes out and the session is made here, so that its
// goroutine starts parked for input with a small stack (see route.start);
// it keeps the head rather than a parsed request.
func (pe *pollEngine) startSession(c *poller.Conn, rt *route, head, rest []byte, key, protocol string, exts []codec.Negotiated, paths []string) {
	u := &upgraded{key: key, protocol: protocol, exts: exts, poll: pe, onPoll: true}
	if len(rest) > 0 {
		u.buffered = append([]byte(nil), rest...)
	}
	u.unsent = writeAccepted(c, key, protocol, exts)
	u.kept = &keptRequest{head: compactHead(head), paths: paths, pe: pe}
	u.nc = c.Detach()
	rt.start(u)
}

// writeAccepted writes the 101 of an upgrade from the loop, which owns c's
// descriptor, without waiting: it returns what the socket did not take
// (nothing unless the peer's window is full already), for the session's
// goroutine to write.
func writeAccepted(c *poller.Conn, key, protocol string, exts []codec.Negotiated) []byte {
	buf := bufpool.Get(256 + len(protocol) + 256*len(exts))
	b := appendAccept(*buf, key, protocol, exts, nil)
	n := writeNow(c.Fd(), b)
	var rest []byte
	if n < len(b) {
		rest = append(rest, b[n:]...)
	}
	*buf = b[:0]
	bufpool.Put(buf)
	return rest
}

// keptRequest is what a default session on the poll engine keeps of the
// request that opened it: its head, which Session.Request parses again,
// and its path values.
type keptRequest struct {
	head  string   // see compactHead
	paths []string // name, value, …
	pe    *pollEngine
}

// request parses the head again for Session.Request.
func (k *keptRequest) request(s *Session) *http.Request {
	r, err := parseHead(expandHead(nil, k.head), s.RemoteAddr())
	if err != nil {
		return nil
	}
	r = r.WithContext(k.context(s))
	for i := 0; i+1 < len(k.paths); i += 2 {
		r.SetPathValue(k.paths[i], k.paths[i+1])
	}
	return r
}

// context returns the request's context, with the values net/http sets.
func (k *keptRequest) context(s *Session) context.Context {
	ctx := context.WithValue(context.Background(), http.ServerContextKey, k.pe.hs)
	return context.WithValue(ctx, http.LocalAddrContextKey, s.LocalAddr())
}

// quickOutcome is what quickUpgrade did with a head.
type quickOutcome uint8

const (
	quickDone  quickOutcome = iota // answered, or handed to net/http
	quickFull                      // the head needs the full path
	quickChain                     // an upgrade of the common form for the handler chain
)

// quickUpgrade opens an Events or default session from a head of the
// common form without allocating more than the session itself, or hands a
// head of that form that is not for the loop to net/http.
func (pe *pollEngine) quickUpgrade(c *poller.Conn, head, rest []byte) quickOutcome {
	q := parseQuick(head)
	if q == nil {
		return quickFull
	}
	defer releaseQuick(q)
	rt := pe.route(&q.r)
	if rt == nil || rt.hooked() {
		if headerHasToken(q.h, "Upgrade", "websocket") {
			return quickChain
		}
		pe.toHTTP(c, head, rest) // a plain request: net/http's
		return quickDone
	}
	if (rt.kind != routeEvents && rt.kind != routeSession) || !headerHasToken(q.h, "Upgrade", "websocket") {
		return quickFull
	}
	key, protocol, herr := pe.srv.checkUpgrade(&q.r, rt.cfg.protocols)
	var exts []codec.Negotiated
	if herr == nil {
		exts, herr = pe.srv.opts.negotiate(&q.r, rt.kind)
	}
	if herr != nil {
		pe.toHTTP(c, head, rest) // net/http sends the same refusal
		return quickDone
	}
	c.SetTimer(time.Time{})
	pe.shard(c).accepted.Add(1)
	if rt.kind == routeSession {
		pe.startSession(c, rt, head, rest, key, protocol, exts, pathValues(&q.r, true))
		return quickDone
	}
	newLoopConn(pe, c, rt, loopOpen{head: compactHead(head), key: key, protocol: protocol, exts: exts, rest: rest, paths: packPaths(&q.r)})
	return quickDone
}

// route returns the server's route that the handler gives r, if r reaches
// it directly or through an *http.ServeMux; r then carries its path values.
func (pe *pollEngine) route(r *http.Request) *route {
	h := pe.h
	mux, isMux := h.(*http.ServeMux)
	var pattern string
	if isMux {
		h, pattern = mux.Handler(r)
	}
	rt, ok := h.(*route)
	if !ok || rt.srv != pe.srv {
		return nil
	}
	if isMux && strings.IndexByte(pattern, '{') >= 0 {
		// Only ServeMux.ServeHTTP gives r its path values; it passes r to
		// the route, which sees the probe and does nothing.
		mux.ServeHTTP(&routeProbe{}, r)
	}
	return rt
}

// routeProbe is the http.ResponseWriter the poll engine passes through a
// ServeMux to a route; the route records itself and writes nothing.
type routeProbe struct {
	rt *route
	r  *http.Request
}

func (p *routeProbe) Header() http.Header         { return http.Header{} }
func (p *routeProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *routeProbe) WriteHeader(int)             {}

// pathValues returns the path values of r as name, value pairs, or nil;
// clone copies the values, which may point into the loop's buffer.
func pathValues(r *http.Request, clone bool) []string {
	var pv []string
	for name := range wildcards(r.Pattern) {
		v := r.PathValue(name)
		if clone {
			v = strings.Clone(v)
		}
		pv = append(pv, name, v)
	}
	return pv
}

// packPaths returns the path values of r in one string, as an Events
// session keeps them: each name and value preceded by its length (a
// uvarint), or "" when there are none.
func packPaths(r *http.Request) string {
	var buf [64]byte
	b := buf[:0]
	for name := range wildcards(r.Pattern) {
		v := r.PathValue(name)
		b = binary.AppendUvarint(b, uint64(len(name)))
		b = append(b, name...)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return string(b)
}

// unpackPaths yields the names and values packPaths packed.
func unpackPaths(packed string) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		p := packed
		next := func() (string, bool) {
			var n uint64
			k := 0
			for shift := 0; ; shift += 7 {
				if k == len(p) || shift > 63 {
					return "", false
				}
				c := p[k]
				k++
				n |= uint64(c&0x7f) << shift
				if c < 0x80 {
					break
				}
			}
			if uint64(len(p)-k) < n {
				return "", false
			}
			s := p[k : k+int(n)]
			p = p[k+int(n):]
			return s, true
		}
		for p != "" {
			name, ok := next()
			if !ok {
				return
			}
			value, ok := next()
			if !ok || !yield(name, value) {
				return
			}
		}
	}
}

// wildcards yields the names of a ServeMux pattern's wildcards.
func wildcards(pattern string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for {
			i := strings.IndexByte(pattern, '{')
			if i < 0 {
				return
			}
			j := strings.IndexByte(pattern[i:], '}')
			if j < 0 {
				return
			}
			name := strings.TrimSuffix(pattern[i+1:i+j], "...")
			pattern = pattern[i+j+1:]
			if name != "$" && name != "" && !yield(name) {
				return
			}
		}
	}
}

// attach opens the Events session of a connection that net/http upgraded
// (through middleware, say) on the loop it came from, and lets net/http's
// goroutine end: the request's context and path values are kept, with its
// head as the chain left it, so that Session.Request shows what the chain
// did.
func (pe *pollEngine) attach(u *upgraded, rt *route) {
	pc := u.nc.(*prefixConn)
	var head string
	if pc.chain != nil && pc.chain.unchanged(u.r) {
		head = compactHead(pc.chain.in[:pc.chain.headLen]) // as a bare route keeps it
	} else {
		head = keptHead(u.r)
	}
	a := attachings.Get().(*attaching)
	if a.openFn == nil {
		a.openFn, a.droppedFn = a.open, a.dropped
	}
	a.pe, a.rt, a.op = pe, rt, loopOpen{
		head: head, key: u.key, protocol: u.protocol, exts: u.exts,
		rest: append(append([]byte(nil), u.buffered...), pc.prefix...),
		ctx:  keptContext(u.r), paths: packPaths(u.r), vals: u.vals,
	}
	if len(u.header) > 0 {
		// Written out now: the chain may change its header once the
		// route has returned, while the loop writes the 101. In a pooled
		// buffer: small garbage of each handshake would share spans with
		// what sessions keep, and pin them.
		f := bufpool.Get(256)
		if *f = appendFields(*f, u.header); len(*f) > 0 {
			a.op.fields = f
		} else {
			bufpool.Put(f)
		}
	}
	if !poller.Attach(pc.Conn, a.openFn, a.droppedFn) {
		a.dropped()
		pc.Close()
	}
}

// attaching is an Events session on its way back to the loop. It is
// pooled with the functions given to poller.Attach, its own methods made
// once: each handshake through a chain would otherwise leave them behind.
type attaching struct {
	pe        *pollEngine
	rt        *route
	op        loopOpen
	openFn    func(*poller.Conn)
	droppedFn func()
}

var attachings = sync.Pool{New: func() any { return new(attaching) }}

func (a *attaching) open(c *poller.Conn) {
	newLoopConn(a.pe, c, a.rt, a.op)
	a.release()
}

func (a *attaching) dropped() {
	codec.ReleaseExtensions(a.op.exts)
	bufpool.Put(a.op.fields)
	a.release()
}

// release returns a, done with, to the pool.
func (a *attaching) release() {
	a.pe, a.rt, a.op = nil, nil, loopOpen{}
	attachings.Put(a)
}

// keptHead writes r's request line and header as the chain left them, for
// Session.Request to parse again, in the compact form sessions keep.
func keptHead(r *http.Request) string {
	buf := bufpool.Get(1024)
	b := bytes.NewBuffer(*buf)
	b.WriteString(r.Method)
	b.WriteByte(' ')
	b.WriteString(r.URL.RequestURI())
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(r.Host)
	b.WriteString("\r\n")
	r.Header.Write(b)
	b.WriteString("\r\n")
	head := compactHead(b.Bytes())
	*buf = b.Bytes()[:0]
	bufpool.Put(buf)
	return head
}

// markContext is the handler of the poll engine's http.Server: it marks the
// context net/http gives each request, so that a route can tell whether
// the chain added to it (see keptContext).
type markContext struct{ h http.Handler }

type contextMark struct{ ctx context.Context }

type contextMarkKey struct{}

// replayKey holds, in the context of a connection handed to net/http, the
// prefixConn that may carry a response to write.
type replayKey struct{}

// replayContext is the poll engine's http.Server ConnContext: it lets
// markContext find a response to replay, or the TLS state of a connection
// it wrapped, then calls next, if set.
func replayContext(next func(context.Context, net.Conn) context.Context) func(context.Context, net.Conn) context.Context {
	return func(ctx context.Context, c net.Conn) context.Context {
		if pc, ok := c.(*prefixConn); ok && (pc.replay != nil || pc.tls != nil) {
			ctx = context.WithValue(ctx, replayKey{}, pc)
		}
		if next != nil {
			ctx = next(ctx, c)
		}
		return ctx
	}
}

func (m markContext) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if pc, ok := r.Context().Value(replayKey{}).(*prefixConn); ok {
		if pc.replay != nil {
			cw := pc.replay
			pc.replay = nil
			cw.replayTo(w) // the chain ran on the loop's goroutine already
			return
		}
		if r.TLS == nil && pc.tls != nil {
			r.TLS = pc.tls // net/http sees the wrapper, not the *tls.Conn
		}
	}
	mark := new(contextMark)
	mark.ctx = context.WithValue(r.Context(), contextMarkKey{}, mark)
	m.h.ServeHTTP(w, r.WithContext(mark.ctx))
}

// headHasHost reports whether a request head has a Host header line.
func headHasHost(head []byte) bool {
	for line := range bytes.SplitSeq(head, []byte("\n")) {
		if len(line) >= 5 && line[4] == ':' && bytes.EqualFold(line[:4], []byte("host")) {
			return true
		}
	}
	return false
}

// validHost reports whether h may be a Host header value; net/http
// answers the others.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"<>\^`+"`{|}", c) >= 0 {
			return false
		}
	}
	return true
}

// toHTTP hands c to net/http, which reads the given bytes first.
func (pe *pollEngine) toHTTP(c *poller.Conn, parts ...[]byte) {
	c.SetTimer(time.Time{})
	nc := c.Detach()
	pc := &prefixConn{Conn: nc, prefix: bytes.Join(parts, nil), pe: pe}
	if !pe.handoff.push(pc) {
		nc.Close()
	}
}

// prefixConn reads prefix before the connection: a connection of the poll
// engine handed to net/http.
type prefixConn struct {
	net.Conn
	prefix []byte
	pe     *pollEngine
	replay *chainWriter         // a response the chain made, for net/http to write
	chain  *chainWriter         // the chain that hijacked the connection
	tls    *tls.ConnectionState // Conn is a *tls.Conn the engine shook hands on
	wrote  bool                 // the first write was looked at
}

// Write counts the 431 net/http writes for a head over its limit (see
// Refusals.Limit).
func (c *prefixConn) Write(p []byte) (int, error) {
	if !c.wrote {
		c.wrote = true
		if bytes.HasPrefix(p, status431) {
			c.pe.srv.pickShard().refused[refusedLimit].Add(1)
		}
	}
	return c.Conn.Write(p)
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// handoffListener is the listener of the http.Server that takes the
// requests the loops do not serve.
type handoffListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, conns: make(chan net.Conn, 256), done: make(chan struct{})}
}

func (l *handoffListener) push(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }
