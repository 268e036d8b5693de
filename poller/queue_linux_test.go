//go:build linux

package poller

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/wskit/wskit/internal/bufpool"
)

// connRecorder is an echoHandler that hands over its connections.
type connRecorder struct {
	echoHandler
	conns chan *Conn
}

func (h *connRecorder) OnOpen(c *Conn) {
	h.echoHandler.OnOpen(c)
	h.conns <- c
}

// openConn starts an engine of one loop with h, connects to it and
// returns both ends: h sends its connections on conns as they open.
func openConn(t *testing.T, h Handler, conns <-chan *Conn) (net.Conn, *Conn) {
	t.Helper()
	_, addr := startEngine(t, Config{Loops: 1}, h)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc, <-conns
}

// holdsQueue reports whether c holds an output queue.
func holdsQueue(c *Conn) bool {
	c.Lock()
	defer c.Unlock()
	return c.q != nil
}

// TestOutputQueueOnlyWhileQueued checks that a connection holds an output
// queue only while it has output, whether the output is written at once,
// after waiting for the peer to read, or dropped.
func TestOutputQueueOnlyWhileQueued(t *testing.T) {
	base := bufpool.Lent()
	h := &connRecorder{conns: make(chan *Conn, 1)}
	nc, c := openConn(t, h, h.conns)

	// Written at once.
	msg := []byte("hello")
	nc.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(nc, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo: %q, %v", got, err)
	}
	waitFor(t, func() bool { return !holdsQueue(c) })

	// Written once the peer reads.
	big := bytes.Repeat([]byte("x"), 8<<20)
	go nc.Write(big)
	time.Sleep(200 * time.Millisecond) // let both socket buffers fill
	if !holdsQueue(c) {
		t.Fatal("no queue while output waits")
	}
	got = make([]byte, len(big))
	if _, err := io.ReadFull(nc, got); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return !holdsQueue(c) })

	// Dropped.
	c.Lock()
	c.Commit(append(c.Buffer(3), "abc"...))
	c.Unlock()
	c.Abort(nil)
	waitFor(t, func() bool { return !holdsQueue(c) })
	waitFor(t, func() bool { return bufpool.Lent() <= base })
}

// TestEmptyCommitGivesQueueBack checks that a Buffer given back unused
// leaves no queue behind.
func TestEmptyCommitGivesQueueBack(t *testing.T) {
	h := &connRecorder{conns: make(chan *Conn, 1)}
	_, c := openConn(t, h, h.conns)
	c.Lock()
	c.Commit(c.Buffer(10))
	held := c.q != nil
	c.Unlock()
	if held {
		t.Fatal("an empty commit left a queue")
	}
}
