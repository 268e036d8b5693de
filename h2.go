package wskit

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/internal/wsconn"
)

// WebSockets over HTTP/2 (RFC 8441). A browser that holds an HTTP/2
// connection to an origin opens a WebSocket there as an extended CONNECT
// stream (:protocol websocket) when the server advertises
// SETTINGS_ENABLE_CONNECT_PROTOCOL. net/http's HTTP/2 server does so under
// GODEBUG=http2xconnect=1, which the program asks for by importing
// github.com/wskit/wskit/xconnect; Options.HTTP2 then offers h2 by ALPN
// (or h2c without TLS). A route answers such a request with 200, and the
// stream is the session's connection: its body in, the response out,
// flushed after each batch of writes. An HTTP/2 stream cannot be taken
// over: the session runs inside the handler on net/http's goroutine, on
// either engine.

// isH2WebSocket reports whether r opens a WebSocket over HTTP/2.
func isH2WebSocket(r *http.Request) bool {
	return r.Method == http.MethodConnect && r.ProtoMajor >= 2 && r.Header.Get(":protocol") != ""
}

// checkH2Request applies RFC 8441 §5 and RFC 6455 §4.2.1 to an extended
// CONNECT: the protocol must be websocket and the version 13; there is no
// key, and no Upgrade or Connection field.
func checkH2Request(r *http.Request) *handshakeError {
	if p := r.Header.Get(":protocol"); !strings.EqualFold(p, "websocket") {
		return refuse(refusedUpgrade, http.StatusNotImplemented, "wskit: extended CONNECT for "+p+" is not served here")
	}
	if v := r.Header.Values("Sec-Websocket-Version"); len(v) != 1 || v[0] != "13" {
		e := refuse(refusedVersion, http.StatusUpgradeRequired, "wskit: unsupported Sec-WebSocket-Version: this server speaks version 13")
		e.header = [2]string{"Sec-WebSocket-Version", "13"}
		return e
	}
	return nil
}

// xconnectEnabled reports whether GODEBUG turned on net/http's extended
// CONNECT (see package xconnect, which root does not import: importing it
// is the program's choice).
func xconnectEnabled() bool { return strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1") }

// errNoXConnect is Serve's answer to Options.HTTP2 without extended CONNECT.
var errNoXConnect = errors.New(`wskit: Options.HTTP2 needs net/http's extended CONNECT: import _ "github.com/wskit/wskit/xconnect" in package main, or run with GODEBUG=http2xconnect=1`)

// acceptH2 answers an accepted extended CONNECT with 200 and the
// handshake's fields, and returns the stream as a net.Conn.
func acceptH2(w http.ResponseWriter, r *http.Request, protocol string, exts []codec.Negotiated) (net.Conn, error) {
	h := w.Header()
	if protocol != "" {
		h.Set("Sec-WebSocket-Protocol", protocol)
	}
	if len(exts) > 0 {
		h.Set("Sec-WebSocket-Extensions", string(codec.ResponseHeader(nil, exts)))
	}
	for _, k := range []string{"Content-Length", "Transfer-Encoding", "Trailer"} {
		h.Del(k)
	}
	rc := http.NewResponseController(w)
	// WriteTimeout would end the stream: the session bounds its own writes.
	rc.SetWriteDeadline(time.Time{})
	rc.SetReadDeadline(time.Time{})
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return nil, err
	}
	return &h2Stream{bodyReader: newBodyReader(r.Body), w: w, rc: rc, handler: r.Context(),
		remote: addrString{"tcp", r.RemoteAddr}, local: localAddrOf(r)}, nil
}

// h2Stream is an HTTP/2 stream seen as a net.Conn: the request body in,
// the response out. The response writer is net/http's only while the
// handler runs: a route closes the stream before its handler returns, and
// a write after the request's context ends (net/http cancels it first
// thing when the handler returns) is refused, which shrinks the damage of
// an Upgrade whose handler returned early to the writes already under way.
//
// Deadlines are a net.Conn's, which net/http's HTTP/2 ones are not: a read
// or write deadline that passes there resets the stream even with nothing
// in progress. Reads wait in a bodyReader; a write deadline is kept here,
// and resets the stream only when it passes during a write.
type h2Stream struct {
	*bodyReader
	w       http.ResponseWriter
	rc      *http.ResponseController
	handler context.Context // the request's: done once the handler returns
	local   net.Addr
	remote  net.Addr

	mu      sync.Mutex // writes; Close
	closed  bool
	writing atomic.Bool
	wdl     atomic.Int64 // the write deadline in Unix nanoseconds; 0 for none
	tmu     sync.Mutex   // wtimer
	wtimer  *time.Timer  // fires at wdl
}

// begin starts a write under s.mu: it fails past the write deadline.
func (s *h2Stream) begin() error {
	if s.closed || s.handler.Err() != nil {
		s.closed = true
		return net.ErrClosed
	}
	s.writing.Store(true)
	if dl := s.wdl.Load(); dl != 0 && time.Now().UnixNano() >= dl {
		s.writing.Store(false)
		return os.ErrDeadlineExceeded
	}
	return nil
}

func (s *h2Stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(); err != nil {
		return 0, err
	}
	defer s.writing.Store(false)
	n, err := s.w.Write(p)
	if err == nil {
		err = s.rc.Flush()
	}
	return n, s.writeError(err)
}

// Writev writes the buffers and flushes them once, as one batch.
func (s *h2Stream) Writev(v [][]byte) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(); err != nil {
		return 0, err
	}
	defer s.writing.Store(false)
	var total int64
	for _, b := range v {
		n, err := s.w.Write(b)
		total += int64(n)
		if err != nil {
			return total, s.writeError(err)
		}
	}
	return total, s.writeError(s.rc.Flush())
}

// writeError reports a write cut by the deadline as a timeout.
func (s *h2Stream) writeError(err error) error {
	if err != nil {
		if dl := s.wdl.Load(); dl != 0 && time.Now().UnixNano() >= dl {
			return os.ErrDeadlineExceeded
		}
	}
	return err
}

// SetWriteDeadline bounds the writes in progress and to come, as a
// net.Conn's does.
func (s *h2Stream) SetWriteDeadline(t time.Time) error {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	if t.IsZero() {
		s.wdl.Store(0)
		if s.wtimer != nil {
			s.wtimer.Stop()
		}
		return nil
	}
	s.wdl.Store(t.UnixNano())
	d := time.Until(t)
	if s.wtimer == nil {
		s.wtimer = time.AfterFunc(d, s.writeDue)
	} else {
		s.wtimer.Reset(d)
	}
	return nil
}

// writeDue runs at the write deadline: a write under way then is cut by
// resetting the stream, as net/http does at its own write deadline.
func (s *h2Stream) writeDue() {
	if dl := s.wdl.Load(); dl == 0 || time.Now().UnixNano() < dl || !s.writing.Load() {
		return
	}
	s.rc.SetWriteDeadline(aLongTimeAgo)
}

// Close ends the stream's reads; the stream itself ends when the handler
// returns.
func (s *h2Stream) Close() error {
	if !s.stop() {
		return net.ErrClosed
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.tmu.Lock()
	if s.wtimer != nil {
		s.wtimer.Stop()
	}
	s.tmu.Unlock()
	return nil
}

var _ wsconn.GracefulCloser = (*h2Stream)(nil)

// ClosesGracefully marks the stream as a wsconn.GracefulCloser: the
// response ends with END_STREAM after all that was written, so a session
// that failed on a violation closes at once, without lingering for the
// client's end of the request.
func (s *h2Stream) ClosesGracefully() {}

func (s *h2Stream) LocalAddr() net.Addr  { return s.local }
func (s *h2Stream) RemoteAddr() net.Addr { return s.remote }

func (s *h2Stream) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// addrString is an address known only by its text.
type addrString struct{ network, addr string }

func (a addrString) Network() string { return a.network }
func (a addrString) String() string  { return a.addr }

// localAddrOf returns the local address net/http put in r's context.
func localAddrOf(r *http.Request) net.Addr {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return a
	}
	return addrString{"tcp", ""}
}
