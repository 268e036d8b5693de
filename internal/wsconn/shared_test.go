package wsconn

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
)

// counted is shared output that counts its releases.
type counted struct {
	b        []byte
	released atomic.Int32
}

func (s *counted) Release() { s.released.Add(1) }

func sharedText(text string) *counted {
	e := codec.Encoder{Role: codec.Server}
	return &counted{b: e.AppendFrame(nil, frame.Header{Fin: true, Op: frame.OpText}, []byte(text))}
}

// source hands its messages over on Fill, with the Conn locked.
type source struct {
	c     *Conn
	items []*counted
	fills int
}

func (s *source) Fill() {
	s.fills++
	for _, it := range s.items {
		s.c.QueueShared(&it.b, it, 1000)
	}
	s.items = nil
}

// Shared output goes out in the order it was given among the Conn's own
// messages, without a copy, and each piece is released once written.
func TestSharedOutputKeepsOrder(t *testing.T) {
	c, p := newPair(t, serverConfig(), nil)
	p.startReading()
	src := &source{c: c}
	c.SetSource(src)
	var all []*counted
	for i := range 3 {
		a, b := sharedText(fmt.Sprint("shared ", i, "a")), sharedText(fmt.Sprint("shared ", i, "b"))
		all = append(all, a, b)
		c.Lock()
		src.items = append(src.items, a, b)
		c.Refill()
		c.Unlock()
		// A message of the Conn's own comes after what the source holds.
		if err := c.WriteMessage(frame.OpText, 0, []byte(fmt.Sprint("own ", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		for _, want := range []string{fmt.Sprint("shared ", i, "a"), fmt.Sprint("shared ", i, "b"), fmt.Sprint("own ", i)} {
			f := p.next()
			if f.err != nil || string(f.p) != want {
				t.Fatalf("got %q (%v), want %q", f.p, f.err, want)
			}
		}
	}
	c.Close()
	for i, s := range all {
		if n := s.released.Load(); n != 1 {
			t.Errorf("shared piece %d released %d times", i, n)
		}
	}
	c.Lock()
	if n := c.SharedSize(); n != 0 {
		t.Errorf("%d bytes pinned once everything was written", n)
	}
	c.Unlock()
}

// Shared output that was never written is released when the Conn ends.
func TestSharedOutputReleasedOnClose(t *testing.T) {
	c, _ := newPair(t, serverConfig(), nil) // the peer never reads: a pipe write blocks
	src := &source{c: c}
	c.SetSource(src)
	items := []*counted{sharedText("one"), sharedText("two"), sharedText("three")}
	c.Lock()
	src.items = items
	c.Refill()
	c.Unlock()
	waitUntil(t, func() bool { c.Lock(); defer c.Unlock(); return src.fills == 1 })
	// The writer is stuck on them: they are no longer queued, and still
	// pinned.
	c.Lock()
	if q, n := c.Queued(), c.SharedSize(); n != 3000 {
		t.Errorf("%d bytes queued and %d pinned by three pieces of 1000 being written", q, n)
	}
	c.Unlock()
	c.Abort()
	c.Release()
	for _, it := range items {
		waitUntil(t, func() bool { return it.released.Load() == 1 })
	}
	waitUntil(t, func() bool { c.Lock(); defer c.Unlock(); return c.SharedSize() == 0 })
	late := sharedText("late")
	c.Lock()
	if err := c.QueueShared(&late.b, late, 1000); err == nil {
		t.Error("QueueShared on a closed Conn succeeded")
	}
	c.Unlock()
	if late.released.Load() != 1 {
		t.Error("a refused piece was not released")
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(wait); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}
