//go:build linux

package poller

import (
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// piece is shared output that counts its releases.
type piece struct {
	b        []byte
	released atomic.Int32
}

func (p *piece) Release() { p.released.Add(1) }

// fillHandler hands over its pieces when the loop calls Fill.
type fillHandler struct {
	mu     sync.Mutex
	conns  chan *Conn
	items  []*piece
	fills  atomic.Int32
	closed chan error
}

func (h *fillHandler) OnOpen(c *Conn)             { h.conns <- c }
func (h *fillHandler) OnData(c *Conn, in []byte)  {}
func (h *fillHandler) OnTimer(c *Conn)            {}
func (h *fillHandler) OnClose(c *Conn, err error) { h.closed <- err }

func (h *fillHandler) Fill(c *Conn) {
	h.fills.Add(1)
	h.mu.Lock()
	items := h.items
	h.items = nil
	h.mu.Unlock()
	for _, p := range items {
		c.CommitShared(&p.b, p, 2*len(p.b))
	}
}

// Refill from another goroutine makes the loop call Fill; the pieces go
// out without a copy, in order with the connection's own output, and each
// is released once written.
func TestFillAndSharedOutput(t *testing.T) {
	h := &fillHandler{conns: make(chan *Conn, 1), closed: make(chan error, 1)}
	nc, c := openConn(t, h, h.conns)

	var want bytes.Buffer
	var all []*piece
	for round := range 50 {
		ps := []*piece{{b: bytes.Repeat([]byte{'a' + byte(round%26)}, 100)}, {b: bytes.Repeat([]byte{'A' + byte(round%26)}, 5000)}}
		all = append(all, ps...)
		h.mu.Lock()
		h.items = append(h.items, ps...)
		h.mu.Unlock()
		c.Lock()
		c.Refill()
		c.Unlock()
		// Once handed over, the connection's own bytes follow them.
		for h.fills.Load() <= int32(round) {
			time.Sleep(time.Millisecond)
		}
		c.Lock()
		if err := c.Commit(append(c.Buffer(3), "own"...)); err != nil {
			t.Fatal(err)
		}
		c.Unlock()
		want.Write(ps[0].b)
		want.Write(ps[1].b)
		want.WriteString("own")
	}
	got := make([]byte, want.Len())
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(nc, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatal("the peer read other bytes than those queued")
	}
	for i, p := range all {
		for deadline := time.Now().Add(time.Second); p.released.Load() == 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		if n := p.released.Load(); n != 1 {
			t.Fatalf("piece %d released %d times", i, n)
		}
	}
	if n := h.fills.Load(); n != 50 {
		t.Errorf("Fill called %d times for 50 Refills", n)
	}
	c.Lock()
	if n := c.SharedSize(); n != 0 {
		t.Errorf("%d bytes pinned once every piece was written", n)
	}
	c.Unlock()
}

// Pieces queued on a connection that ends unwritten are released once, and
// a piece committed after the end is released at once.
func TestSharedOutputDroppedOnAbort(t *testing.T) {
	h := &fillHandler{conns: make(chan *Conn, 1), closed: make(chan error, 1)}
	_, addr := startEngine(t, Config{Loops: 1}, h)
	nc, err := net.DialTCP("tcp", nil, mustResolve(t, addr))
	if err != nil {
		t.Fatal(err)
	}
	nc.SetReadBuffer(4096)
	defer nc.Close()
	c := <-h.conns
	big := make([]byte, 1<<20)
	var ps []*piece
	c.Lock()
	for range 8 {
		p := &piece{b: big}
		ps = append(ps, p)
		c.CommitShared(&p.b, p, 3<<20)
	}
	c.Commit(append(c.Buffer(1), 'x')) // writes what the socket takes
	unwritten := 0
	for _, p := range ps {
		unwritten += int(1 - p.released.Load())
	}
	if n := c.SharedSize(); n != unwritten*3<<20 || unwritten == 0 {
		t.Errorf("%d bytes pinned by %d unwritten pieces of 3 MiB", n, unwritten)
	}
	c.Unlock()
	c.Abort(nil)
	<-h.closed
	c.Lock()
	if n := c.SharedSize(); n != 0 {
		t.Errorf("%d bytes pinned after the end", n)
	}
	c.Unlock()
	for i, p := range ps {
		if n := p.released.Load(); n != 1 {
			t.Errorf("piece %d released %d times", i, n)
		}
	}
	late := &piece{b: []byte("late")}
	c.Lock()
	if err := c.CommitShared(&late.b, late, len(late.b)); err == nil {
		t.Error("CommitShared after the end succeeded")
	}
	c.Unlock()
	if late.released.Load() != 1 {
		t.Error("a refused piece was not released")
	}
}

func mustResolve(t *testing.T, addr string) *net.TCPAddr {
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
