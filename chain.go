package wskit

import (
	"bufio"
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/wskit/wskit/internal/bufpool"
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
}

// runChain runs pe's handler for r, whose head and following bytes are
// in, on a goroutine of its own.
func (pe *pollEngine) runChain(nc net.Conn, r *http.Request, in []byte, headLen int) {
	w := &chainWriter{pe: pe, nc: nc, in: in, headLen: headLen}
	go w.serve(r)
}

func (w *chainWriter) serve(r *http.Request) {
	ctx := &chainContext{hs: w.pe.hs, nc: w.nc}
	defer ctx.cancel()
	r = r.WithContext(ctx)
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
}

func (w *chainWriter) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header)
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
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	w.hijacked = true
	pc := &prefixConn{Conn: w.nc, prefix: w.in[w.headLen:], pe: w.pe}
	return pc, bufio.NewReadWriter(bufio.NewReaderSize(pc, 16), bufio.NewWriterSize(pc, 16)), nil
}

// SetReadDeadline is for http.ResponseController.
func (w *chainWriter) SetReadDeadline(t time.Time) error { return w.nc.SetReadDeadline(t) }

// SetWriteDeadline is for http.ResponseController.
func (w *chainWriter) SetWriteDeadline(t time.Time) error { return w.nc.SetWriteDeadline(t) }

// chainContext is the context of a request whose chain the poll engine
// runs: the values net/http gives a request's context (the server, the
// local address, found when asked) and its cancellation when the handler
// returns, in one small allocation, since an Events session keeps it. It
// is its own mark: a route that sees it as the request's context knows the
// chain added nothing (see keptContext).
type chainContext struct {
	hs   *http.Server
	nc   net.Conn
	mu   sync.Mutex
	done chan struct{}
	err  error
}

func (c *chainContext) Deadline() (time.Time, bool) { return time.Time{}, false }

func (c *chainContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		}
	}
	return c.done
}

func (c *chainContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *chainContext) Value(key any) any {
	switch key {
	case http.ServerContextKey:
		return c.hs
	case http.LocalAddrContextKey:
		return c.nc.LocalAddr()
	case chainContextKey{}:
		return c
	}
	return nil
}

func (c *chainContext) cancel() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = context.Canceled
		if c.done != nil {
			close(c.done)
		}
	}
}

type chainContextKey struct{}

// keptContext returns the context of r as the chain left it, for an Events
// session on the loop to keep: nil when the chain added nothing to the
// context it was given, which the engine's own then stands for (it
// carries the same values) at no cost.
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
	return context.WithoutCancel(ctx)
}

// upgradeCandidate reports whether r may end at a WebSocket route: the
// chains the poll engine runs itself. Anything else (a body to read, a
// response to stream) is net/http's from the start.
func upgradeCandidate(r *http.Request) bool {
	return r.Method == http.MethodGet && r.ContentLength == 0 && len(r.TransferEncoding) == 0 &&
		headerHasToken(r.Header, "Upgrade", "websocket") && r.Header.Get("Expect") == ""
}
