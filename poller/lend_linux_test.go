//go:build linux

package poller

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// lendingEcho echoes its input in pieces, lending what it can: a piece's
// first bytes go as the head, the rest from the read buffer.
type lendingEcho struct {
	echoHandler
	mu          sync.Mutex
	lent, other int
}

// OnOpen shrinks the send buffer, so that writes of lent output stop short.
func (h *lendingEcho) OnOpen(c *Conn) {
	unix.SetsockoptInt(c.Fd(), unix.SOL_SOCKET, unix.SO_SNDBUF, 16<<10)
}

func (h *lendingEcho) OnData(c *Conn, in []byte) {
	c.Lock()
	defer c.Unlock()
	for len(in) > 0 {
		n := min(len(in), 1+rand.IntN(3000))
		p := in[:n]
		in = in[n:]
		k := min(len(p)/2, rand.IntN(17))
		if c.Lendable(p[k:]) {
			c.CommitInput(p[:k], p[k:])
			h.mu.Lock()
			h.lent++
			h.mu.Unlock()
			continue
		}
		h.mu.Lock()
		h.other++
		h.mu.Unlock()
		c.Commit(append(c.Buffer(len(p)), p...))
	}
}

// TestLentOutput echoes through lent output to two connections of one
// loop at once, each read slowly so that their sockets fill: what a write
// does not take is copied before the loop reads into its buffer again.
func TestLentOutput(t *testing.T) {
	h := &lendingEcho{}
	_, addr := startEngine(t, Config{Loops: 1}, h)
	var wg sync.WaitGroup
	for range 2 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		msg := make([]byte, 4<<20)
		for i := range msg {
			msg[i] = byte(rand.Uint32())
		}
		go nc.Write(msg)
		wg.Go(func() {
			time.Sleep(100 * time.Millisecond) // let the socket buffers fill
			got := make([]byte, len(msg))
			for off := 0; off < len(got); {
				n, err := nc.Read(got[off:min(off+1+rand.IntN(40000), len(got))])
				if err != nil {
					t.Error(err)
					return
				}
				off += n
			}
			if !bytes.Equal(got, msg) {
				t.Error("echo differs")
			}
		})
	}
	wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lent == 0 || h.other == 0 {
		t.Errorf("%d pieces lent, %d copied: want both", h.lent, h.other)
	}
}

// TestNotLendable: bytes not in the read buffer, and any outside a handler
// call, are not lent.
func TestNotLendable(t *testing.T) {
	conns := make(chan *Conn, 1)
	h := &fillHandler{conns: conns, closed: make(chan error, 1)}
	_, addr := startEngine(t, Config{Loops: 1}, h)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := <-conns
	c.Lock()
	own := c.l.buf[:100] // the loop's buffer, but outside a call on c
	if c.Lendable(own) || c.Lendable(make([]byte, 100)) {
		t.Error("lendable outside a handler call")
	}
	c.Unlock()
	io.WriteString(nc, "x")
}
