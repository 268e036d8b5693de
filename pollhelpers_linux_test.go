//go:build linux

package wskit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/bufpool"
	"github.com/wskit/wskit/internal/wstest"
	"github.com/wskit/wskit/wsraw"
)

// ptWait bounds every wait of the poll engine tests.
const ptWait = 5 * time.Second

// ptOptions are DefaultOptions on the poll engine with two loops, short
// timeouts and a silent logger.
func ptOptions() Options {
	o := DefaultOptions()
	o.Engine = EnginePoll
	o.Loops = 2
	o.Timeout = 2 * time.Second
	o.HandshakeTimeout = 2 * time.Second
	o.Logger = slog.New(slog.DiscardHandler)
	return o
}

// ptListen listens on a loopback port. Positive rcvbuf and sndbuf set the
// socket buffers of the listener, which accepted connections inherit.
func ptListen(t testing.TB, rcvbuf, sndbuf int) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if rcvbuf > 0 {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			}
			if serr == nil && sndbuf > 0 {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, sndbuf)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return ln
}

// ptStart serves routes(srv) with a new Server on ln (a fresh loopback
// listener when nil) and returns the server and its address. Cleanup shuts
// it down and checks that Serve returned ErrServerClosed.
func ptStart(t testing.TB, opts Options, ln net.Listener, routes func(*Server) http.Handler) (*Server, string) {
	t.Helper()
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if ln == nil {
		ln = ptListen(t, 0, 0)
	}
	h := routes(srv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, h) }()
	t.Cleanup(func() {
		// The clients are gone by now: let their sessions end first, so
		// that Shutdown meets only those that cannot.
		for deadline := time.Now().Add(time.Second); srv.Sessions() > 0 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), ptWait)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-served:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(ptWait):
			t.Errorf("Serve did not return after Shutdown")
		}
	})
	addr := ln.Addr().String()
	ptReady(t, addr)
	return srv, addr
}

// ptReady waits until the server at addr answers a plain request, so that
// its engine has started everything it keeps while serving.
func ptReady(t testing.TB, addr string) {
	t.Helper()
	p, err := ptConnectErr(addr)
	if err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	defer p.nc.Close()
	if err := p.write([]byte("GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatalf("ready request: %v", err)
	}
	if _, _, err := p.readResponse(); err != nil {
		t.Fatalf("ready response: %v", err)
	}
	if err := p.waitEOF(ptWait); err != nil {
		t.Fatalf("ready response: %v", err)
	}
}

// ptEcho is an Events route's echo callback.
func ptEcho(s *Session, m Message) { s.Send(m.Type, m.Payload) }

// ptEchoSession is a default session's echo handler.
func ptEchoSession(s *Session) {
	for m := range s.Messages() {
		if s.Send(m.Type, m.Payload) != nil {
			return
		}
	}
}

// ptEchoRaw echoes the data frames of a raw session and answers its close.
func ptEchoRaw(s *wsraw.Session) {
	for f := range s.Frames() {
		switch {
		case f.Op == frame.OpClose:
			s.SendFrame(frame.Header{Fin: true, Op: frame.OpClose}, f.Payload)
			return
		case f.Op.IsData():
			s.SendFrame(frame.Header{Fin: f.Fin, Rsv: f.Rsv, Op: f.Op}, f.Payload)
		}
	}
}

// ptRoutes returns the routes most tests talk to:
//
//	/events  an Events route running ev (echo when ev is empty)
//	/echo    a default session echoing
//	/raw     a raw session echoing data frames
//	/hello   plain HTTP
func ptRoutes(ev Events) func(*Server) http.Handler {
	if ev.OnOpen == nil && ev.OnMessage == nil && ev.OnError == nil && ev.OnClose == nil {
		ev.OnMessage = ptEcho
	}
	return func(srv *Server) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/events", srv.WebSocketEvents(ev))
		mux.Handle("/echo", srv.WebSocket(ptEchoSession))
		mux.Handle("/raw", srv.WebSocketRaw(ptEchoRaw))
		mux.Handle("/proto", srv.WebSocket(ptEchoSession, Protocols("mqtt")))
		mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Hello", "1")
			fmt.Fprintf(w, "hello %s", r.URL.Query().Get("name"))
		})
		return mux
	}
}

// ptHead returns the opening handshake for path, with extra header lines
// ("Name: value") added; the key is the RFC's sample.
func ptHead(host, path string, extra ...string) string {
	var b strings.Builder
	b.WriteString("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Key: " + rfcKey + "\r\nSec-WebSocket-Version: 13\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// ptMask is the mask key of the frames the tests send.
var ptMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// ptFrame returns a masked client frame.
func ptFrame(fin bool, op frame.Opcode, p []byte) []byte {
	return ptFrameHeader(frame.Header{Fin: fin, Op: op, Masked: true, Mask: ptMask, Length: int64(len(p))}, p)
}

// ptFrameHeader returns h followed by p, masked when h says so.
func ptFrameHeader(h frame.Header, p []byte) []byte {
	b := frame.AppendHeader(make([]byte, 0, h.Size()+len(p)), h)
	n := len(b)
	b = append(b, p...)
	if h.Masked {
		frame.Mask(b[n:], h.Mask, 0)
	}
	return b
}

// ptCloseFrame returns a masked close frame.
func ptCloseFrame(code CloseCode, reason string) []byte {
	p, err := frame.AppendClose(nil, code, reason)
	if err != nil {
		panic(err)
	}
	return ptFrame(true, frame.OpClose, p)
}

// ptPeer is a client speaking the protocol by hand over TCP. Its methods
// return errors, so that goroutines other than the test's may use them; the
// must* wrappers fail the test.
type ptPeer struct {
	t  testing.TB
	nc *net.TCPConn
	br *bufio.Reader
}

// ptConnect opens a TCP connection to addr; cleanup closes it.
func ptConnect(t testing.TB, addr string) *ptPeer {
	t.Helper()
	p, err := ptConnectErr(addr)
	if err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	t.Cleanup(func() { p.nc.Close() })
	p.t = t
	return p
}

func ptConnectErr(addr string) (*ptPeer, error) {
	nc, err := net.DialTimeout("tcp", addr, ptWait)
	if err != nil {
		return nil, err
	}
	return &ptPeer{nc: nc.(*net.TCPConn), br: bufio.NewReaderSize(nc, 64<<10)}, nil
}

// ptDial connects to addr and upgrades on path.
func ptDial(t testing.TB, addr, path string, extra ...string) *ptPeer {
	t.Helper()
	p := ptConnect(t, addr)
	if err := p.upgrade(addr, path, extra...); err != nil {
		t.Fatalf("upgrade on %s: %v", path, err)
	}
	return p
}

func (p *ptPeer) write(b []byte) error {
	p.nc.SetWriteDeadline(time.Now().Add(ptWait))
	_, err := p.nc.Write(b)
	return err
}

func (p *ptPeer) mustWrite(b []byte) {
	p.t.Helper()
	if err := p.write(b); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

// send writes a masked, final frame.
func (p *ptPeer) send(op frame.Opcode, payload []byte) error {
	return p.write(ptFrame(true, op, payload))
}

// readResponse reads an HTTP response with its body.
func (p *ptPeer) readResponse() (*http.Response, []byte, error) {
	p.nc.SetReadDeadline(time.Now().Add(ptWait))
	defer p.nc.SetReadDeadline(time.Time{})
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// expectUpgrade reads the 101 response and checks its accept value.
func (p *ptPeer) expectUpgrade() error {
	resp, body, err := p.readResponse()
	if err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("status %s (%q), want 101", resp.Status, body)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != rfcAccept {
		return fmt.Errorf("Sec-WebSocket-Accept %q, want %q", got, rfcAccept)
	}
	return nil
}

// upgrade sends the opening handshake and reads the 101.
func (p *ptPeer) upgrade(host, path string, extra ...string) error {
	if err := p.write([]byte(ptHead(host, path, extra...))); err != nil {
		return err
	}
	return p.expectUpgrade()
}

// readFrame reads one frame, waiting at most ptWait.
func (p *ptPeer) readFrame() (frame.Header, []byte, error) {
	return p.readFrameWithin(ptWait)
}

func (p *ptPeer) readFrameWithin(d time.Duration) (frame.Header, []byte, error) {
	p.nc.SetReadDeadline(time.Now().Add(d))
	defer p.nc.SetReadDeadline(time.Time{})
	h, payload, err := wstest.ReadFrameLimit(p.br, 64<<20)
	if err == nil && h.Masked {
		return h, nil, errors.New("the server sent a masked frame")
	}
	return h, payload, err
}

// expect reads the next frame, skipping pings, and checks that it is a
// final data frame of type op carrying want.
func (p *ptPeer) expect(op frame.Opcode, want []byte) error {
	for {
		h, got, err := p.readFrame()
		if err != nil {
			return err
		}
		if h.Op == frame.OpPing {
			continue
		}
		if h.Op != op || !h.Fin {
			return fmt.Errorf("got %v frame (fin %v, %q), want final %v", h.Op, h.Fin, ptShort(got), op)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("got payload %q, want %q", ptShort(got), ptShort(want))
		}
		return nil
	}
}

func (p *ptPeer) mustEcho(op frame.Opcode, payload []byte) {
	p.t.Helper()
	if err := p.echo(op, payload); err != nil {
		p.t.Fatalf("echo: %v", err)
	}
}

func (p *ptPeer) echo(op frame.Opcode, payload []byte) error {
	if err := p.send(op, payload); err != nil {
		return err
	}
	return p.expect(op, payload)
}

// readClose reads frames until a close frame and returns its code and
// reason.
func (p *ptPeer) readClose() (CloseCode, string, error) {
	for {
		h, b, err := p.readFrame()
		if err != nil {
			return 0, "", fmt.Errorf("reading until a close frame: %w", err)
		}
		if h.Op == frame.OpClose {
			code, reason, err := frame.ParseClose(b)
			return code, string(reason), err
		}
	}
}

func (p *ptPeer) mustReadClose() (CloseCode, string) {
	p.t.Helper()
	code, reason, err := p.readClose()
	if err != nil {
		p.t.Fatal(err)
	}
	return code, reason
}

// closeHandshake sends a close frame and reads the server's echo of it.
func (p *ptPeer) closeHandshake(code CloseCode, reason string) error {
	if err := p.write(ptCloseFrame(code, reason)); err != nil {
		return err
	}
	got, _, err := p.readClose()
	if err != nil {
		return err
	}
	if got != code {
		return fmt.Errorf("the server answered close %d with %d", code, got)
	}
	return nil
}

// waitEOF reads and drops input until the server ends the connection
// (EOF or reset), for at most d.
func (p *ptPeer) waitEOF(d time.Duration) error {
	p.nc.SetReadDeadline(time.Now().Add(d))
	defer p.nc.SetReadDeadline(time.Time{})
	_, err := io.Copy(io.Discard, p.br)
	if err == nil || errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	return err
}

// reset makes the connection end with a RST.
func (p *ptPeer) reset() {
	p.nc.SetLinger(0)
	p.nc.Close()
}

func ptShort(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%s… (%d bytes)", b[:40], len(b))
	}
	return string(b)
}

// ptCounts are the resources a leak leaves behind.
type ptCounts struct {
	fds, goroutines int
	lent            int64
}

func (c ptCounts) String() string {
	return fmt.Sprintf("%d descriptors, %d goroutines, %d pooled buffers lent", c.fds, c.goroutines, c.lent)
}

var ptNetOnce sync.Once

// ptCount counts open descriptors, goroutines and lent buffers.
func ptCount() ptCounts {
	// The runtime's poller keeps descriptors from its first use: make sure
	// that it comes before any count.
	ptNetOnce.Do(func() {
		if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
			ln.Close()
		}
	})
	ents, _ := os.ReadDir("/proc/self/fd")
	return ptCounts{fds: len(ents), goroutines: runtime.NumGoroutine(), lent: bufpool.Lent()}
}

// ptSettle waits up to d for the counts to come back to base and for
// extra (if not nil) to hold; it returns the last counts and whether they did.
func ptSettle(base ptCounts, d time.Duration, extra func() bool) (ptCounts, bool) {
	deadline := time.Now().Add(d)
	for {
		c := ptCount()
		if c.fds <= base.fds && c.goroutines <= base.goroutines && c.lent <= base.lent && (extra == nil || extra()) {
			return c, true
		}
		if time.Now().After(deadline) {
			return c, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ptLeakCheck fails the test if, after its other cleanups (the server's
// shutdown among them), descriptors, goroutines or pooled buffers are not
// back to their counts at the call. Call it first.
func ptLeakCheck(t *testing.T) {
	t.Helper()
	base := ptCount()
	t.Cleanup(func() {
		if got, ok := ptSettle(base, 3*time.Second, nil); !ok {
			t.Errorf("leak: at the start %v; at the end %v\n%s", base, got, ptStacks())
		}
	})
}

// ptExpectIdle fails the test unless srv has no session left and the
// counts come back to base while it still runs.
func ptExpectIdle(t *testing.T, srv *Server, base ptCounts) {
	t.Helper()
	got, ok := ptSettle(base, 5*time.Second, func() bool { return srv.Sessions() == 0 })
	if !ok {
		t.Fatalf("not idle: %d sessions; before %v; now %v\n%s", srv.Sessions(), base, got, ptStacks())
	}
}

func ptStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// ptAwait returns the value sent on ch, or fails the test after ptWait.
func ptAwait[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	return wstest.Await(t, ch, what, ptWait)
}

// ptEnd is how a server-side session ended.
type ptEnd struct {
	reason CloseReason
	ok     bool
	err    error
}

func ptEndOf(s *Session) ptEnd {
	r, ok := s.CloseReason()
	return ptEnd{r, ok, s.Err()}
}

// ptLog records the callbacks of Events sessions in order.
type ptLog struct {
	mu     sync.Mutex
	lines  []string
	errs   []error
	closed chan CloseReason
}

func newPtLog() *ptLog { return &ptLog{closed: make(chan CloseReason, 16)} }

func (l *ptLog) add(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

// events returns Events that record into l; onMessage, when set, runs
// after the record in OnMessage.
func (l *ptLog) events(onMessage func(*Session, Message)) Events {
	return Events{
		OnOpen: func(s *Session) { l.add("open") },
		OnMessage: func(s *Session, m Message) {
			l.add("message %s", m.Payload)
			if onMessage != nil {
				onMessage(s, m)
			}
		},
		OnError: func(s *Session, err error) {
			l.mu.Lock()
			l.errs = append(l.errs, err)
			l.mu.Unlock()
			l.add("error")
		},
		OnClose: func(s *Session, r CloseReason) {
			l.add("close %d %s", r.Code, r.Reason)
			ptPut(l.closed, r)
		},
	}
}

// wait waits for OnClose and returns the record and the errors.
func (l *ptLog) wait(t testing.TB) (string, []error) {
	t.Helper()
	ptAwait(t, l.closed, "OnClose")
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, " | "), append([]error(nil), l.errs...)
}

// ptPut sends v on ch unless ch is full: callbacks on the loop must not
// block, even when a failing test stopped reading.
func ptPut[T any](ch chan<- T, v T) {
	select {
	case ch <- v:
	default:
	}
}

// ptPattern returns message i of n bytes: its index, then bytes that
// differ from one message to the next.
func ptPattern(i, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*7 + j*13)
	}
	if n >= 4 {
		binary.BigEndian.PutUint32(b, uint32(i))
	}
	return b
}

// ptQueued returns the output bytes of an Events session on the poll engine
// that wait for the socket.
func ptQueued(s *Session) int {
	c := s.lc.pe
	c.Lock()
	defer c.Unlock()
	return c.Queued()
}

// ptConns returns the connections open on srv's poll engines.
func ptConns(srv *Server) int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	n := 0
	for _, pe := range srv.polls {
		n += pe.eng.Conns()
	}
	return n
}

// ptOnLoop reports whether the caller runs on a poller loop.
func ptOnLoop() bool {
	buf := make([]byte, 64<<10)
	return strings.Contains(string(buf[:runtime.Stack(buf, false)]), "poller.(*loop).run")
}
