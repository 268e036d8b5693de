package wskit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"hash/maphash"
	"log"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wskit/wskit/internal/bufpool"
	"github.com/wskit/wskit/poller"
)

// The poll engine runs the application's handler for an upgrade request
// that is not for a bare route (middleware, hooks) itself, on a goroutine
// that lives for the handshake only, with a chainWriter: no net/http
// connection, request parsing or buffers of its own. A wskit route reached
// at the end takes the connection over through Hijack as it does under
// net/http, and an Events route hands it back to the loop. Any other
// response the chain makes is recorded, and net/http, given the request
// again, writes it: the bytes on the wire are net/http's own, but the
// chain ran once.

// maxChainResponse bounds a response recorded for net/http to write.
const maxChainResponse = 64 << 10

// errChainResponseTooLarge fails a write past maxChainResponse.
var errChainResponseTooLarge = errors.New("wskit: a response to an upgrade request on the poll engine is limited to 64 KiB")

// chainWriter is the http.ResponseWriter of a chain run by the poll engine.
type chainWriter struct {
	pe       *pollEngine
	nc       net.Conn // detached from the loop
	in       []byte   // the request head and what followed it
	headLen  int
	header   http.Header
	status   int
	body     *[]byte
	hijacked bool
	r        *http.Request // for serve
	ctx      *chainContext
	live     chainCancel // the context's cancellation while the chain runs
	parsed   parsedHead  // the request as parsed, to tell whether the chain changed it
}

// parsedHead is what a request parsed from a head holds that keptHead
// writes out again: a route that finds its request so can keep the head
// itself, as a bare route does, rather than one written from the request.
type parsedHead struct {
	method, host string
	sum          uint64 // headSum
}

func parsedHeadOf(r *http.Request) parsedHead {
	return parsedHead{method: r.Method, host: r.Host, sum: headSum(r)}
}

// headSeed keys headSum, so that no request can be made to collide with
// another.
var headSeed = maphash.MakeSeed()

// headSum returns a hash of r's URL and header fields (names, values and
// their order under each name, independent of the map's order).
func headSum(r *http.Request) uint64 {
	var mh maphash.Hash
	mh.SetSeed(headSeed)
	if u := r.URL; u != nil {
		for _, s := range [...]string{u.Scheme, u.Opaque, u.Host, u.Path, u.RawPath, u.RawQuery, u.Fragment, u.RawFragment} {
			mh.WriteString(s)
			mh.WriteByte(0)
		}
		var flags byte
		if u.User != nil {
			flags |= 1
		}
		if u.OmitHost {
			flags |= 2
		}
		if u.ForceQuery {
			flags |= 4
		}
		mh.WriteByte(flags)
	}
	sum := mh.Sum64()
	for k, vs := range r.Header {
		for i, v := range vs {
			mh.Reset()
			mh.WriteString(k)
			mh.WriteByte(0)
			mh.WriteString(v)
			mh.WriteByte(byte(i))
			mh.WriteByte(byte(i >> 8))
			sum += mh.Sum64()
		}
		sum += uint64(len(vs)) << 48
	}
	return sum + uint64(len(r.Header))
}

// unchanged reports whether r, as the chain passed it on, has the head the
// connection sent.
func (w *chainWriter) unchanged(r *http.Request) bool {
	p := &w.parsed
	return r.Method == p.method && r.Host == p.host && r.URL != nil && r.URL.User == nil && headSum(r) == p.sum
}

// runChain runs pe's handler for r, whose head and following bytes are
// in, on a goroutine of its own, detaching c from its loop. ctx is r's
// context when chainRequest made r, or nil.
func (pe *pollEngine) runChain(c *poller.Conn, r *http.Request, ctx *chainContext, in []byte, headLen int) {
	c.SetTimer(time.Time{})
	w := &chainWriter{pe: pe, nc: c.Detach(), in: in, headLen: headLen}
	if ctx == nil {
		ctx = &chainContext{hs: pe.hs, c: c}
		r = r.WithContext(ctx)
	}
	ctx.state.Store(&w.live)
	w.r, w.ctx = r, ctx
	go w.serve()
}

// quickChain runs the handler chain for an upgrade request of the common
// form (see parseQuick), made by chainRequest, and reports whether it did.
func (pe *pollEngine) quickChain(c *poller.Conn, head, rest []byte) bool {
	in := make([]byte, 0, len(head)+len(rest))
	in = append(append(in, head...), rest...)
	ctx := &chainContext{hs: pe.hs, c: c}
	r := chainRequest(ctx, in[:len(head)], c.RemoteAddrString())
	if r == nil || !upgradeCandidate(r) {
		return false
	}
	pe.runChain(c, r, ctx, in, len(head))
	return true
}

func (w *chainWriter) serve() {
	r, ctx := w.r, w.ctx
	w.r, w.ctx = nil, nil
	w.parsed = parsedHeadOf(r)
	defer ctx.cancel()
	if v, stack := w.run(r); v != nil {
		// As net/http: the panic is logged and the connection dropped.
		if v != http.ErrAbortHandler {
			logf := log.Printf
			if l := w.pe.hs.ErrorLog; l != nil {
				logf = l.Printf
			}
			logf("http: panic serving %v: %v\n%s", r.RemoteAddr, v, stack)
		}
		w.release()
		if !w.hijacked {
			w.nc.Close()
		}
		return
	}
	if w.hijacked {
		w.release()
		return // the hijacker has the connection
	}
	// net/http writes the recorded response, and serves the connection on.
	pc := &prefixConn{Conn: w.nc, prefix: w.in, pe: w.pe, replay: w}
	if !w.pe.handoff.push(pc) {
		w.release()
		w.nc.Close()
	}
}

// run calls the handler and returns what it panicked with, if it did, and
// where.
func (w *chainWriter) run(r *http.Request) (panicked any, stack []byte) {
	defer func() {
		if panicked = recover(); panicked != nil {
			stack = debug.Stack()
		}
	}()
	w.pe.h.ServeHTTP(w, r)
	return nil, nil
}

// replayTo writes the recorded response to net/http's ResponseWriter.
func (w *chainWriter) replayTo(rw http.ResponseWriter) {
	defer w.release()
	h := rw.Header()
	for k, vs := range w.header {
		h[k] = vs
	}
	if w.status != 0 {
		rw.WriteHeader(w.status)
	}
	if w.body != nil {
		rw.Write(*w.body)
	}
}

func (w *chainWriter) release() {
	bufpool.Put(w.body)
	w.body = nil
	if h := w.header; h != nil {
		w.header = nil
		clear(h)
		chainHeaders.Put(h)
	}
}

// chainHeaders keeps the header maps of chains that have returned (a
// ResponseWriter is not used after its handler returns): garbage made by
// each handshake would share spans with what sessions keep, and pin them.
var chainHeaders = sync.Pool{New: func() any { return make(http.Header) }}

func (w *chainWriter) Header() http.Header {
	if w.header == nil {
		w.header = chainHeaders.Get().(http.Header)
	}
	return w.header
}

func (w *chainWriter) WriteHeader(status int) {
	if w.hijacked || w.status != 0 {
		return
	}
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		return // interim responses are not recorded
	}
	w.status = status
}

func (w *chainWriter) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	have := 0
	if w.body != nil {
		have = len(*w.body)
	}
	if have+len(p) > maxChainResponse {
		return 0, errChainResponseTooLarge
	}
	w.body = bufpool.Grow(w.body, len(p))
	*w.body = append(*w.body, p...)
	return len(p), nil
}

// Flush implements http.Flusher: the response goes out when the handler
// returns.
func (w *chainWriter) Flush() {}

// Hijack implements http.Hijacker: the connection, with the bytes that
// followed the head still to be read from it.
func (w *chainWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	pc, err := w.hijack()
	if err != nil {
		return nil, nil, err
	}
	return pc, bufio.NewReadWriter(bufio.NewReaderSize(pc, 16), bufio.NewWriterSize(pc, 16)), nil
}

// hijack is Hijack for a route reached with w itself, which reads nothing
// through a bufio.Reader.
func (w *chainWriter) hijack() (*prefixConn, error) {
	if w.hijacked {
		return nil, http.ErrHijacked
	}
	w.hijacked = true
	return &prefixConn{Conn: w.nc, prefix: w.in[w.headLen:], pe: w.pe, chain: w}, nil
}

// SetReadDeadline is for http.ResponseController.
func (w *chainWriter) SetReadDeadline(t time.Time) error { return w.nc.SetReadDeadline(t) }

// SetWriteDeadline is for http.ResponseController.
func (w *chainWriter) SetWriteDeadline(t time.Time) error { return w.nc.SetWriteDeadline(t) }

// chainContext is the context of a request whose chain the poll engine
// runs: the values net/http gives a request's context (the server, the
// local address, found when asked) and its cancellation when the handler
// returns. An Events session keeps it when the chain adds to it, so it is
// small: the state of its cancellation lives with the chainWriter while
// the chain runs, and is one shared value once it has returned. It is its
// own mark: a route that sees it as the request's context knows the chain
// added nothing (see keptContext).
type chainContext struct {
	hs    *http.Server
	c     *poller.Conn
	state atomic.Pointer[chainCancel]
}

// chainCancel is the cancellation of a chainContext.
type chainCancel struct {
	mu   sync.Mutex
	done chan struct{}
	err  error
}

// chainEnded is the state of every chainContext whose chain has returned.
var chainEnded = func() *chainCancel {
	c := &chainCancel{done: make(chan struct{}), err: context.Canceled}
	close(c.done)
	return c
}()

func (c *chainContext) Deadline() (time.Time, bool) { return time.Time{}, false }

func (c *chainContext) Done() <-chan struct{} {
	st := c.state.Load()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done == nil {
		st.done = make(chan struct{})
		if st.err != nil {
			close(st.done)
		}
	}
	return st.done
}

func (c *chainContext) Err() error {
	st := c.state.Load()
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.err
}

func (c *chainContext) Value(key any) any {
	switch key {
	case http.ServerContextKey:
		return c.hs
	case http.LocalAddrContextKey:
		return c.c.LocalAddr()
	case chainContextKey{}:
		return c
	}
	return nil
}

func (c *chainContext) cancel() {
	st := c.state.Load()
	st.mu.Lock()
	if st.err == nil {
		st.err = context.Canceled
		if st.done != nil {
			close(st.done)
		}
	}
	st.mu.Unlock()
	c.state.Store(chainEnded)
}

type chainContextKey struct{}

// keptContext returns the context of r as the chain left it, for an Events
// session on the loop to keep (requestExtra drops its cancellation): nil
// when the chain added nothing to the context it was given, which the
// engine's own then stands for (it carries the same values) at no cost.
func keptContext(r *http.Request) context.Context {
	ctx := r.Context()
	switch mark := ctx.Value(chainContextKey{}).(type) {
	case *chainContext:
		if context.Context(mark) == ctx {
			return nil
		}
	case nil:
		if m, ok := ctx.Value(contextMarkKey{}).(*contextMark); ok && m.ctx == ctx {
			return nil
		}
	}
	return ctx
}

// upgradeCandidate reports whether r may end at a WebSocket route: the
// chains the poll engine runs itself. Anything else (a body to read, a
// response to stream) is net/http's from the start.
func upgradeCandidate(r *http.Request) bool {
	return r.Method == http.MethodGet && r.ContentLength == 0 && len(r.TransferEncoding) == 0 &&
		headerHasToken(r.Header, "Upgrade", "websocket") && r.Header.Get("Expect") == ""
}

// chainRequest makes the request of a head of the common form (see
// parseQuick) for the handler chain, with ctx as its context, as
// http.ReadRequest would parse it but in fewer allocations: its strings
// point into head, which must not change, and the request is made with its
// context rather than copied into it. It returns nil for a head that it
// does not take (continuation lines, a body, an unusual target), which
// http.ReadRequest then parses.
func chainRequest(ctx context.Context, head []byte, remote string) *http.Request {
	line, rest, ok := bytes.Cut(head, crlf)
	if !ok || !bytes.HasPrefix(line, []byte("GET /")) || !bytes.HasSuffix(line, []byte(" HTTP/1.1")) {
		return nil
	}
	target := unsafeString(line[len("GET ") : len(line)-len(" HTTP/1.1")])
	// url.Parse, which NewRequestWithContext calls, reads such a target as
	// url.ParseRequestURI does.
	if strings.HasPrefix(target, "//") || strings.ContainsAny(target, " #") {
		return nil
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil
	}
	n := bytes.Count(rest, crlf) - 2 // the fields but Host
	if n > 8 {
		r.Header = make(http.Header, n) // past 8 fields, the map would grow as it fills
	}
	h := r.Header
	hosts := 0
	for {
		line, rest, ok = bytes.Cut(rest, crlf)
		if !ok {
			return nil
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !isToken(unsafeString(name)) || !validFieldValue(value) {
			return nil
		}
		v := unsafeString(bytes.Trim(value, " \t"))
		key := canonicalKey(name)
		if key == "Host" {
			r.Host = v
			hosts++
			continue
		}
		// A slice each rather than ReadRequest's one for all: 16 B objects,
		// a size that no session keeps, so that this garbage leaves no
		// span partly used beside what sessions keep.
		h[key] = append(h[key], v)
	}
	if hosts != 1 || !validHost(r.Host) || h["Content-Length"] != nil || h["Transfer-Encoding"] != nil {
		return nil
	}
	if p := h["Pragma"]; len(p) > 0 && p[0] == "no-cache" && h["Cache-Control"] == nil {
		h["Cache-Control"] = []string{"no-cache"}
	}
	r.Close = hasCloseToken(h["Connection"])
	r.Body = http.NoBody
	r.RequestURI = target
	r.RemoteAddr = remote
	return r
}

// canonicalFields are the canonical forms of the field names that upgrade
// requests most often carry in another case.
var canonicalFields = [...]string{
	"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions", "Sec-Websocket-Protocol",
}

// canonicalKey returns the canonical form of a field name, a token: name
// itself when it has that form already, which then must not change.
func canonicalKey(name []byte) string {
	upper := true
	canonical := true
	for _, c := range name {
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			canonical = false
			break
		}
		upper = c == '-'
	}
	if canonical {
		return unsafeString(name)
	}
	for _, k := range canonicalFields {
		if len(k) == len(name) && bytes.EqualFold(name, []byte(k)) {
			return k
		}
	}
	return http.CanonicalHeaderKey(string(name))
}

// hasCloseToken reports whether Connection field values hold "close", as
// net/http reads them for Request.Close.
func hasCloseToken(vs []string) bool {
	for _, v := range vs {
		for v != "" {
			var el string
			el, v, _ = strings.Cut(v, ",")
			el = strings.Trim(el, " \t")
			if len(el) == len("close") && asciiEqualFold(el, "close") {
				return true
			}
		}
	}
	return false
}

// asciiEqualFold is strings.EqualFold for ASCII only.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
