package wsconn

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/wstest"
)

const wait = 5 * time.Second

type rxFrame struct {
	h   frame.Header
	p   []byte
	err error
}

// peer is the other end of a net.Pipe: it writes frames by hand and reads
// what the Conn sends, decoding it into frames.
type peer struct {
	t      *testing.T
	nc     net.Conn
	role   codec.Role // the peer's role: the opposite of the Conn's
	frames chan rxFrame
	out    chan []byte // frames for the writer goroutine: a pipe write blocks until read
}

// newPair returns a Conn in role over a net.Pipe and its peer. The peer
// reads only once startReading is called.
func newPair(t *testing.T, cfg Config, buffered []byte) (*Conn, *peer) {
	t.Helper()
	a, b := net.Pipe()
	return newPairOver(t, cfg, buffered, a, b)
}

// newTCPPair is newPair over loopback TCP, where the Conn writes with writev.
func newTCPPair(t *testing.T, cfg Config) (*Conn, *peer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return newPairOver(t, cfg, nil, a, b)
}

// newPairOver is newPair over a, the Conn's end, and b, the peer's.
func newPairOver(t *testing.T, cfg Config, buffered []byte, a, b net.Conn) (*Conn, *peer) {
	t.Helper()
	c := New(a, buffered, cfg)
	role := codec.Client
	if cfg.Codec.Role == codec.Client {
		role = codec.Server
	}
	p := &peer{t: t, nc: b, role: role, frames: make(chan rxFrame, 1024), out: make(chan []byte, 64)}
	go func() {
		for b := range p.out {
			if _, err := p.nc.Write(b); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		b.Close()
		close(p.out)
	})
	return c, p
}

// startReading reads and decodes frames from the Conn until the pipe ends.
func (p *peer) startReading() {
	go func() {
		defer close(p.frames)
		br := bufio.NewReader(p.nc)
		for {
			h, payload, err := wstest.ReadFrame(br)
			p.frames <- rxFrame{h, payload, err}
			if err != nil {
				return
			}
		}
	}()
}

func (p *peer) next() rxFrame {
	p.t.Helper()
	select {
	case f, ok := <-p.frames:
		if !ok {
			return rxFrame{err: io.EOF}
		}
		return f
	case <-time.After(wait):
		p.t.Fatal("timed out waiting for a frame from the Conn")
		panic("unreachable")
	}
}

// write queues a frame, masked or not, for the peer's writer goroutine.
func (p *peer) write(h frame.Header, payload []byte, masked bool) {
	role := codec.Server
	if masked {
		role = codec.Client
	}
	e := codec.Encoder{Role: role}
	p.out <- e.AppendFrame(nil, h, payload)
}

func serverConfig() Config {
	return Config{Codec: codec.Config{Role: codec.Server, Timeout: 2 * time.Second}, WriteTimeout: 2 * time.Second}
}

// nextEvent calls c.Next in a goroutine so that a hang fails the test.
func nextEvent(t *testing.T, c *Conn) (codec.Event, error) {
	t.Helper()
	type result struct {
		ev  codec.Event
		err error
	}
	ch := make(chan result, 1)
	go func() {
		ev, err := c.Next()
		ev.Payload = append([]byte(nil), ev.Payload...)
		ch <- result{ev, err}
	}()
	select {
	case r := <-ch:
		return r.ev, r.err
	case <-time.After(wait):
		t.Fatal("Next did not return")
		panic("unreachable")
	}
}

func TestMaskingFollowsRole(t *testing.T) {
	for _, role := range []codec.Role{codec.Server, codec.Client} {
		t.Run(role.String(), func(t *testing.T) {
			cfg := serverConfig()
			cfg.Codec.Role = role
			c, p := newPair(t, cfg, nil)
			p.startReading()
			if err := c.WriteMessage(frame.OpText, 0, []byte("hello")); err != nil {
				t.Fatal(err)
			}
			f := p.next()
			if f.err != nil || string(f.p) != "hello" || f.h.Op != frame.OpText || !f.h.Fin {
				t.Fatalf("got %+v", f)
			}
			if f.h.Masked != (role == codec.Client) {
				t.Errorf("masked = %v for a %v", f.h.Masked, role)
			}
		})
	}
}

func TestNextAnswersPingAndClose(t *testing.T) {
	c, p := newPair(t, serverConfig(), nil)
	p.startReading()
	p.write(frame.Header{Fin: true, Op: frame.OpPing}, []byte("p1"), true)
	ev, err := nextEvent(t, c)
	if err != nil || ev.Kind != codec.EventPing || string(ev.Payload) != "p1" {
		t.Fatalf("Next = %+v, %v; want the ping", ev, err)
	}
	if f := p.next(); f.h.Op != frame.OpPong || string(f.p) != "p1" {
		t.Fatalf("reply %v %q, want pong p1", f.h.Op, f.p)
	}
	p.write(frame.Header{Fin: true, Op: frame.OpText}, []byte("msg"), true)
	if ev, err := nextEvent(t, c); err != nil || ev.Kind != codec.EventMessage || string(ev.Payload) != "msg" {
		t.Fatalf("Next = %+v, %v; want the message", ev, err)
	}
	close := append([]byte{0x0f, 0xa1}, "bye"...) // 4001 bye
	p.write(frame.Header{Fin: true, Op: frame.OpClose}, close, true)
	ev, err = nextEvent(t, c)
	if err != nil || ev.Kind != codec.EventClose || ev.Code != 4001 || string(ev.Reason) != "bye" {
		t.Fatalf("Next = %+v, %v; want the close", ev, err)
	}
	if f := p.next(); f.h.Op != frame.OpClose || string(f.p) != string(close) {
		t.Fatalf("reply %v %x, want the close echoed", f.h.Op, f.p)
	}
	if _, err := nextEvent(t, c); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after the close handshake = %v, want ErrClosed", err)
	}
	if code, reason, ok := c.CloseReason(); !ok || code != 4001 || reason != "bye" {
		t.Errorf("CloseReason = %v %q %v", code, reason, ok)
	}
	if c.State() != codec.StateClosed {
		t.Errorf("State = %v", c.State())
	}
}

func TestNextReadsBufferedBytesFirst(t *testing.T) {
	e := codec.Encoder{Role: codec.Client}
	buffered := e.AppendFrame(nil, frame.Header{Fin: true, Op: frame.OpText}, []byte("early"))
	buffered = e.AppendFrame(buffered, frame.Header{Op: frame.OpBinary}, []byte("fr")) // cut message
	c, p := newPair(t, serverConfig(), buffered)
	p.startReading()
	if ev, err := nextEvent(t, c); err != nil || string(ev.Payload) != "early" {
		t.Fatalf("Next = %q, %v; want the buffered message", ev.Payload, err)
	}
	p.write(frame.Header{Fin: true, Op: frame.OpContinuation}, []byte("agment"), true)
	if ev, err := nextEvent(t, c); err != nil || ev.Op != frame.OpBinary || string(ev.Payload) != "fragment" {
		t.Fatalf("Next = %v %q, %v; want the message begun in the buffered bytes", ev.Op, ev.Payload, err)
	}
}

// A buffered prefix larger than ReadBufferSize is not cut.
func TestNextLargeBufferedPrefix(t *testing.T) {
	e := codec.Encoder{Role: codec.Client}
	big := strings.Repeat("z", 10000)
	buffered := e.AppendFrame(nil, frame.Header{Fin: true, Op: frame.OpText}, []byte(big))
	cfg := serverConfig()
	cfg.ReadBufferSize = 512
	c, _ := newPair(t, cfg, buffered)
	if ev, err := nextEvent(t, c); err != nil || string(ev.Payload) != big {
		t.Fatalf("Next = %d bytes, %v", len(ev.Payload), err)
	}
}

func TestNextProtocolViolation(t *testing.T) {
	c, p := newPair(t, serverConfig(), nil)
	p.startReading()
	p.write(frame.Header{Fin: true, Op: frame.OpText}, []byte("unmasked"), false)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Next()
		errc <- err
	}()
	f := p.next()
	if f.h.Op != frame.OpClose {
		t.Fatalf("got %v, want the close frame reporting the violation", f.h.Op)
	}
	if code, _, _ := frame.ParseClose(f.p); code != frame.CloseProtocolError {
		t.Errorf("close code %v, want 1002", code)
	}
	// Next may linger for the peer's end of the stream; the peer closes.
	p.nc.Close()
	var err error
	select {
	case err = <-errc:
	case <-time.After(time.Second):
		t.Fatal("Next did not return once the peer closed")
	}
	var pe *frame.ProtocolError
	if !errors.As(err, &pe) || pe.Code != frame.CloseProtocolError {
		t.Fatalf("Next = %v, want a *frame.ProtocolError with 1002", err)
	}
	if code, _, ok := c.CloseReason(); !ok || code != frame.CloseProtocolError {
		t.Errorf("CloseReason = %v, %v", code, ok)
	}
}

// After a violation Next waits at most Timeout for a peer that neither
// closes nor stops sending.
func TestNextViolationLingerBounded(t *testing.T) {
	cfg := serverConfig()
	cfg.Codec.Timeout = 100 * time.Millisecond
	c, p := newPair(t, cfg, nil)
	p.startReading()
	p.write(frame.Header{Fin: true, Op: frame.OpText}, []byte("unmasked"), false)
	start := time.Now()
	if _, err := nextEvent(t, c); !errors.As(err, new(*frame.ProtocolError)) {
		t.Fatalf("Next = %v, want a *frame.ProtocolError", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Next returned after %v, want about Timeout (100ms)", d)
	}
}

// gracefulConn is a GracefulCloser over a net.Pipe that counts its reads.
type gracefulConn struct {
	net.Conn
	reads atomic.Int32
}

func (g *gracefulConn) Read(p []byte) (int, error) {
	g.reads.Add(1)
	return g.Conn.Read(p)
}

func (g *gracefulConn) ClosesGracefully() {}

// After a violation on a GracefulCloser (an HTTP/2 stream) Next returns
// once the close frame is out, without reading on: the stream can end
// with nothing lost, and a peer that waits for the server to close first
// would otherwise wait for the linger to pass.
func TestNextViolationGracefulCloserDoesNotLinger(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	g := &gracefulConn{Conn: a}
	cfg := serverConfig()
	cfg.Codec.Timeout = time.Hour
	c := New(g, nil, cfg)
	defer c.Close()
	p := &peer{t: t, nc: b, role: codec.Client, frames: make(chan rxFrame, 16), out: make(chan []byte, 4)}
	go func() {
		for b := range p.out {
			if _, err := p.nc.Write(b); err != nil {
				return
			}
		}
	}()
	defer close(p.out)
	p.startReading()
	p.write(frame.Header{Fin: true, Op: frame.OpText}, []byte("unmasked"), false)
	if _, err := nextEvent(t, c); !errors.As(err, new(*frame.ProtocolError)) {
		t.Fatalf("Next = %v, want a *frame.ProtocolError", err)
	}
	if f := p.next(); f.h.Op != frame.OpClose {
		t.Fatalf("got %v, want the close frame reporting the violation", f.h.Op)
	}
	if n := g.reads.Load(); n != 1 {
		t.Errorf("%d reads, want 1: Next read on after the violation", n)
	}
}

func TestNextReadErrorWithoutClose(t *testing.T) {
	c, p := newPair(t, serverConfig(), nil)
	p.nc.Close()
	_, err := nextEvent(t, c)
	if err == nil || errors.Is(err, ErrClosed) {
		t.Fatalf("Next = %v, want the transport's error", err)
	}
	if _, _, ok := c.CloseReason(); ok {
		t.Error("CloseReason known after a bare cut")
	}
}

func TestCloseHandshakeTimeout(t *testing.T) {
	cfg := serverConfig()
	cfg.Codec.Timeout = 100 * time.Millisecond
	c, p := newPair(t, cfg, nil)
	p.startReading()
	if err := c.WriteClose(frame.CloseNormal, "done"); err != nil {
		t.Fatal(err)
	}
	if f := p.next(); f.h.Op != frame.OpClose {
		t.Fatalf("got %v, want close", f.h.Op)
	}
	start := time.Now()
	if _, err := nextEvent(t, c); !errors.Is(err, codec.ErrCloseTimeout) {
		t.Fatalf("Next = %v, want ErrCloseTimeout", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("timed out after %v, before the 100ms Timeout", d)
	}
	if err := c.WriteClose(frame.CloseNormal, ""); err == nil {
		t.Error("a second close frame was accepted")
	}
}

func TestKeepalivePings(t *testing.T) {
	cfg := serverConfig()
	cfg.Codec.PingPeriod = 20 * time.Millisecond
	cfg.Codec.Timeout = 60 * time.Millisecond
	c, p := newPair(t, cfg, nil)
	p.startReading()
	errc := make(chan error, 1)
	go func() {
		for {
			if _, err := c.Next(); err != nil {
				errc <- err
				return
			}
		}
	}()
	// Answer three pings, then stop answering.
	for range 3 {
		f := p.next()
		if f.h.Op != frame.OpPing {
			t.Fatalf("got %v, want a ping", f.h.Op)
		}
		p.write(frame.Header{Fin: true, Op: frame.OpPong}, f.p, true)
	}
	var last rxFrame
	for last = p.next(); last.h.Op == frame.OpPing; last = p.next() {
	}
	if last.h.Op != frame.OpClose {
		t.Fatalf("got %v, want the close after the pong timeout", last.h.Op)
	}
	if code, _, _ := frame.ParseClose(last.p); code != frame.CloseInternalError {
		t.Errorf("close code %v, want 1011", code)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, codec.ErrPongTimeout) {
			t.Errorf("Next = %v, want ErrPongTimeout", err)
		}
	case <-time.After(wait):
		t.Fatal("Next did not return after the pong timeout")
	}
}

// TestConcurrentWritesDoNotInterleave writes from many goroutines while
// the peer decodes: every frame must be whole and each writer's in order.
func TestConcurrentWritesDoNotInterleave(t *testing.T) {
	t.Run("pipe", func(t *testing.T) {
		c, p := newPair(t, serverConfig(), nil)
		testWritesDoNotInterleave(t, c, p)
	})
	// Over TCP a large message is written from the sender's payload, the
	// others queue behind it.
	t.Run("tcp", func(t *testing.T) {
		c, p := newTCPPair(t, serverConfig())
		testWritesDoNotInterleave(t, c, p)
	})
}

func testWritesDoNotInterleave(t *testing.T, c *Conn, p *peer) {
	p.startReading()
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				msg := fmt.Sprintf("%d:%d:%s", g, i, strings.Repeat("x", (g*31+i*17)%5000))
				if err := c.WriteMessage(frame.OpText, 0, []byte(msg)); err != nil {
					t.Errorf("writer %d: %v", g, err)
					return
				}
			}
		})
	}
	next := make([]int, writers)
	for range writers * each {
		f := p.next()
		if f.err != nil {
			t.Fatalf("peer: %v", f.err)
		}
		parts := strings.SplitN(string(f.p), ":", 3)
		if len(parts) != 3 {
			t.Fatalf("garbled frame %.40q", f.p)
		}
		g, err1 := strconv.Atoi(parts[0])
		i, err2 := strconv.Atoi(parts[1])
		if err1 != nil || err2 != nil || g < 0 || g >= writers {
			t.Fatalf("garbled frame %.40q", f.p)
		}
		want := fmt.Sprintf("%d:%d:%s", g, i, strings.Repeat("x", (g*31+i*17)%5000))
		if string(f.p) != want || i != next[g] {
			t.Fatalf("frame %.40q (%d bytes); want writer %d's message %d", f.p, len(f.p), g, next[g])
		}
		next[g]++
	}
	wg.Wait()
}

// The queue policies, with a peer that never reads: the first writer blocks
// in the pipe, the second queues, the third finds the queue full.
func TestQueuePolicy(t *testing.T) {
	for _, tc := range []struct {
		policy Policy
		want   []error
		code   frame.CloseCode
	}{
		{Block, []error{ErrQueueTimeout, ErrWriteTimeout}, 0},
		{CloseTryAgain, []error{ErrQueueFull}, frame.CloseTryAgainLater},
		{ClosePolicy, []error{ErrQueueFull}, frame.ClosePolicyViolation},
	} {
		t.Run(fmt.Sprint(tc.policy), func(t *testing.T) {
			cfg := serverConfig()
			cfg.WriteTimeout = 200 * time.Millisecond
			cfg.MaxQueue = 1024
			cfg.Policy = tc.policy
			c, _ := newPair(t, cfg, nil)
			msg := make([]byte, 800)
			first := make(chan error, 1)
			go func() { first <- c.WriteMessage(frame.OpBinary, 0, msg) }()
			waitFlushing(t, c)
			// The queue is empty: this one is taken even though the writer is busy.
			if err := c.WriteMessage(frame.OpBinary, 0, msg); err != nil {
				t.Fatalf("second write = %v, want queued", err)
			}
			err := c.WriteMessage(frame.OpBinary, 0, msg)
			if !matchesAny(err, tc.want) {
				t.Fatalf("third write = %v, want one of %v", err, tc.want)
			}
			if tc.code != 0 {
				if code, _, ok := c.CloseReason(); !ok || code != tc.code {
					t.Errorf("CloseReason = %v, %v; want %v", code, ok, tc.code)
				}
				if c.State() != codec.StateCloseSent {
					t.Errorf("State = %v, want close sent", c.State())
				}
			}
			// The blocked writer gives up after WriteTimeout; the connection is dead.
			select {
			case err := <-first:
				if !errors.Is(err, ErrWriteTimeout) {
					t.Errorf("blocked write = %v, want ErrWriteTimeout", err)
				}
			case <-time.After(wait):
				t.Fatal("the blocked write did not time out")
			}
			if err := c.WriteMessage(frame.OpBinary, 0, nil); !errors.Is(err, ErrWriteTimeout) {
				t.Errorf("write after the write timeout = %v, want ErrWriteTimeout", err)
			}
			if !errors.Is(c.WriteErr(), ErrWriteTimeout) {
				t.Errorf("WriteErr = %v", c.WriteErr())
			}
		})
	}
}

func matchesAny(err error, targets []error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// waitFlushing waits until a writer is blocked in the network write.
func waitFlushing(t *testing.T, c *Conn) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		c.mu.Lock()
		f := c.flushing
		c.mu.Unlock()
		if f {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no writer started flushing")
		}
		time.Sleep(time.Millisecond)
	}
}

// A blocked sender under Block is released when the writer drains.
func TestQueueBlockReleasedByDrain(t *testing.T) {
	cfg := serverConfig()
	cfg.MaxQueue = 1024
	c, p := newPair(t, cfg, nil)
	msg := make([]byte, 800)
	go c.WriteMessage(frame.OpBinary, 0, msg)
	waitFlushing(t, c)
	if err := c.WriteMessage(frame.OpBinary, 0, msg); err != nil {
		t.Fatal(err)
	}
	third := make(chan error, 1)
	go func() { third <- c.WriteMessage(frame.OpBinary, 0, msg) }()
	time.Sleep(20 * time.Millisecond)
	select {
	case err := <-third:
		t.Fatalf("third write returned %v while the queue was full, want it to wait", err)
	default:
	}
	p.startReading()
	if err := <-third; err != nil {
		t.Fatalf("third write = %v after the peer read", err)
	}
	for range 3 {
		if f := p.next(); len(f.p) != 800 {
			t.Fatalf("frame of %d bytes", len(f.p))
		}
	}
}

// A close frame is not held back by the queue bound.
func TestWriteCloseIgnoresQueueBound(t *testing.T) {
	cfg := serverConfig()
	cfg.MaxQueue = 1024
	cfg.Policy = ClosePolicy
	c, p := newPair(t, cfg, nil)
	msg := make([]byte, 800)
	go c.WriteMessage(frame.OpBinary, 0, msg)
	waitFlushing(t, c)
	c.WriteMessage(frame.OpBinary, 0, msg)
	if err := c.WriteClose(frame.CloseGoingAway, "bye"); err != nil {
		t.Fatalf("WriteClose with a full queue = %v", err)
	}
	p.startReading()
	var ops []frame.Opcode
	for range 3 {
		ops = append(ops, p.next().h.Op)
	}
	if ops[2] != frame.OpClose {
		t.Errorf("frames %v, want the close last", ops)
	}
}

func TestReleaseThenWrite(t *testing.T) {
	c, _ := newPair(t, serverConfig(), nil)
	c.Close()
	c.Release()
	c.Release() // twice is fine
	for i, err := range []error{
		c.WriteMessage(frame.OpText, 0, []byte("x")),
		c.WriteFrame(frame.Header{Fin: true, Op: frame.OpText}, nil),
		c.WritePing(nil),
		c.WriteClose(frame.CloseNormal, ""),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("write #%d after Release = %v, want ErrClosed", i, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestWriteArguments(t *testing.T) {
	c, p := newPair(t, serverConfig(), nil)
	p.startReading()
	if err := c.WritePing(make([]byte, 126)); err == nil {
		t.Error("a ping of 126 bytes was accepted")
	}
	if err := c.WriteClose(frame.CloseAbnormal, ""); err == nil {
		t.Error("a close with 1006 was accepted")
	}
	if err := c.WriteClose(frame.CloseNormal, strings.Repeat("r", 124)); err == nil {
		t.Error("a close with a 124-byte reason was accepted")
	}
	if c.State() != codec.StateOpen {
		t.Errorf("State = %v after refused closes, want open", c.State())
	}
	if err := c.WriteFrame(frame.Header{Fin: true, Op: frame.OpClose}, []byte{0x03, 0xe8}); err != nil {
		t.Fatal(err)
	}
	if c.State() != codec.StateCloseSent {
		t.Errorf("State = %v after a close via WriteFrame, want close sent", c.State())
	}
	if err := c.WriteMessage(frame.OpText, 0, []byte("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("data after close = %v, want ErrClosed", err)
	}
	if err := c.WritePing([]byte("still allowed")); err != nil {
		t.Errorf("ping after close = %v", err)
	}
}

// The close echo owed to the peer is queued behind a write in progress.
// Next reports the end of the close handshake and the caller closes, as
// every user of Conn does; the echo must still reach the peer.
func TestCloseEchoNotLostBehindPendingWrite(t *testing.T) {
	c, p := newPair(t, serverConfig(), nil)
	msg := make([]byte, 64<<10)
	sent := make(chan error, 1)
	go func() { sent <- c.WriteMessage(frame.OpBinary, 0, msg) }()
	waitFlushing(t, c) // blocked: the peer does not read yet
	p.write(frame.Header{Fin: true, Op: frame.OpClose}, []byte{0x03, 0xe8}, true)
	if ev, err := nextEvent(t, c); err != nil || ev.Kind != codec.EventClose {
		t.Fatalf("Next = %+v, %v; want the peer's close", ev, err)
	}
	// The peer starts reading a little later.
	go func() {
		time.Sleep(50 * time.Millisecond)
		p.startReading()
	}()
	_, err := nextEvent(t, c)
	c.Close() // what Session.finish does once Next has failed
	if !errors.Is(err, ErrClosed) {
		t.Errorf("Next = %v, want ErrClosed", err)
	}
	var ops []frame.Opcode
	for {
		f := p.next()
		if f.err != nil {
			break
		}
		ops = append(ops, f.h.Op)
	}
	if len(ops) != 2 || ops[0] != frame.OpBinary || ops[1] != frame.OpClose {
		t.Errorf("the peer read %v, want [binary close]: the close echo was dropped when the connection closed", ops)
	}
	if err := <-sent; err != nil {
		t.Errorf("the pending write = %v", err)
	}
}

// stuckConn is a connection whose writes block, past any deadline, until
// it is closed.
type stuckConn struct {
	net.Conn
	closed chan struct{}
	once   sync.Once
}

func (c *stuckConn) Write(p []byte) (int, error) {
	<-c.closed
	return 0, net.ErrClosed
}

func (c *stuckConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// The Meter counts a send that found the queue full, and one that waited
// for room in vain.
func TestQueueMeter(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	nc := &stuckConn{Conn: a, closed: make(chan struct{})}
	var m Meter
	cfg := serverConfig()
	cfg.WriteTimeout = 100 * time.Millisecond
	cfg.MaxQueue = 1024
	cfg.Meter = &m
	c := New(nc, nil, cfg)
	defer c.Close()
	msg := make([]byte, 800)
	go c.WriteMessage(frame.OpBinary, 0, msg)
	waitFlushing(t, c)
	if err := c.WriteMessage(frame.OpBinary, 0, msg); err != nil {
		t.Fatal(err)
	}
	if m.QueueFull.Load() != 0 {
		t.Fatalf("QueueFull = %d before the queue was full", m.QueueFull.Load())
	}
	if err := c.WriteMessage(frame.OpBinary, 0, msg); !errors.Is(err, ErrQueueTimeout) {
		t.Fatalf("third write = %v, want ErrQueueTimeout", err)
	}
	if full, timeouts := m.QueueFull.Load(), m.QueueTimeouts.Load(); full != 1 || timeouts != 1 {
		t.Errorf("QueueFull %d, QueueTimeouts %d; want 1 and 1", full, timeouts)
	}
	nc.Close()
}
