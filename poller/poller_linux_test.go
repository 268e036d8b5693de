//go:build linux

package poller

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// echoHandler writes back what it reads, on the loop.
type echoHandler struct {
	mu     sync.Mutex
	opened int
	closed []error
}

func (h *echoHandler) OnOpen(c *Conn) {
	h.mu.Lock()
	h.opened++
	h.mu.Unlock()
}

func (h *echoHandler) OnData(c *Conn, in []byte) {
	c.Lock()
	c.Commit(append(c.Buffer(len(in)), in...))
	c.Unlock()
}

func (h *echoHandler) OnTimer(c *Conn) {}

func (h *echoHandler) OnClose(c *Conn, err error) {
	h.mu.Lock()
	h.closed = append(h.closed, err)
	h.mu.Unlock()
}

func startEngine(t *testing.T, cfg Config, h Handler) (*Engine, string) {
	t.Helper()
	e, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- e.Serve(ln) }()
	t.Cleanup(func() {
		e.Close()
		if err := <-served; !errors.Is(err, ErrClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return e, ln.Addr().String()
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestEchoModes(t *testing.T) {
	for _, cfg := range []Config{
		{Loops: 2},
		{Loops: 2, LevelTriggered: true},
		{Loops: 1, Wait: WaitBlock},
		{Loops: 2, ReadBufferSize: 7}, // forces many reads per message
	} {
		h := &echoHandler{}
		_, addr := startEngine(t, cfg, h)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				nc, err := net.Dial("tcp", addr)
				if err != nil {
					t.Error(err)
					return
				}
				defer nc.Close()
				msg := bytes.Repeat([]byte{byte('a' + i)}, 1+i*40000)
				go nc.Write(msg)
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(nc, got); err != nil || !bytes.Equal(got, msg) {
					t.Errorf("cfg %+v conn %d: echo differs (err %v)", cfg, i, err)
				}
			}()
		}
		wg.Wait()
	}
}

// A peer that does not read makes the output back up: the loop must wait for
// EPOLLOUT, keep the bytes, and deliver all of them in order once it reads.
func TestSlowReader(t *testing.T) {
	for _, lt := range []bool{false, true} {
		h := &echoHandler{}
		_, addr := startEngine(t, Config{Loops: 1, LevelTriggered: lt}, h)
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, 8<<20)
		for i := range msg {
			msg[i] = byte(rand.Uint32())
		}
		go func() {
			nc.Write(msg)
		}()
		time.Sleep(200 * time.Millisecond) // let both socket buffers fill
		got := make([]byte, len(msg))
		for off := 0; off < len(got); {
			n, err := nc.Read(got[off:min(off+1000, len(got))])
			if err != nil {
				t.Fatal(err)
			}
			off += n
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("lt=%v: echo differs", lt)
		}
		nc.Close()
	}
}

// detachedEcho hands each connection to a goroutine that echoes through the
// net.Conn, with deadlines.
type detachedEcho struct {
	echoHandler
	running atomic.Int32
}

func (h *detachedEcho) OnOpen(c *Conn) {
	nc := c.Detach()
	h.running.Add(1)
	go func() {
		defer h.running.Add(-1)
		defer nc.Close()
		buf := make([]byte, 1000)
		for {
			// Long enough that a client starved on a loaded machine (the
			// race detector, parallel packages) does not hit it mid-echo.
			nc.SetReadDeadline(time.Now().Add(detachedIdle))
			n, err := nc.Read(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					nc.Write([]byte("timeout"))
				}
				return
			}
			if _, err := nc.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
}

// detachedIdle is how long detachedEcho waits for input.
const detachedIdle = time.Second

func TestDetached(t *testing.T) {
	before := countFDs(t)
	h := &detachedEcho{}
	e, addr := startEngine(t, Config{Loops: 2}, h)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("xy"), 1<<20)
	go nc.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(nc, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo differs (err %v)", err)
	}
	start := time.Now()
	tail, err := io.ReadAll(nc)
	if string(tail) != "timeout" || err != nil {
		t.Fatalf("after idling got %q, %v", tail, err)
	}
	if d := time.Since(start); d < detachedIdle*8/10 {
		t.Fatalf("deadline fired after %v", d)
	}
	nc.Close()
	waitFor(t, func() bool { return h.running.Load() == 0 && e.Conns() == 0 })
	e.Close()
	if after := countFDs(t); after > before {
		t.Fatalf("descriptors: %d before, %d after", before, after)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatal("condition not met in 5s")
		}
	}
}

// timerHandler closes each connection from its timer.
type timerHandler struct{ echoHandler }

func (h *timerHandler) OnOpen(c *Conn) { c.SetTimer(time.Now().Add(50 * time.Millisecond)) }
func (h *timerHandler) OnTimer(c *Conn) {
	c.Write([]byte("bye"))
	c.Close()
}

func TestTimerAndClose(t *testing.T) {
	h := &timerHandler{}
	_, addr := startEngine(t, Config{Loops: 1}, h)
	start := time.Now()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(nc)
	if string(b) != "bye" || err != nil {
		t.Fatalf("got %q, %v", b, err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("timer fired after %v", d)
	}
	waitFor(t, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.closed) == 1 && errors.Is(h.closed[0], ErrClosed)
	})
}

// Connections opened and dropped in a flood leave no descriptor behind.
func TestConnectFlood(t *testing.T) {
	before := countFDs(t)
	h := &echoHandler{}
	e, addr := startEngine(t, Config{Loops: 2}, h)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 250 {
				nc, err := net.Dial("tcp", addr)
				if err != nil {
					t.Error(err)
					return
				}
				if rand.IntN(2) == 0 {
					nc.Write([]byte("hi"))
				}
				nc.Close()
			}
		}()
	}
	wg.Wait()
	waitFor(t, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.opened == 1000 && e.Conns() == 0
	})
	e.Close()
	if h.opened != 1000 || len(h.closed) != 1000 {
		t.Fatalf("opened %d, closed %d", h.opened, len(h.closed))
	}
	if after := countFDs(t); after > before {
		t.Fatalf("descriptors: %d before, %d after", before, after)
	}
}

func TestWheel(t *testing.T) {
	w := newWheel(time.Millisecond, 8)
	w.start(0)
	ts := make([]timer, 5)
	whens := []int64{3e6, 20e6, 1e6, 9e6, 5e6}
	for i := range ts {
		w.set(&ts[i], whens[i])
	}
	w.set(&ts[4], 0) // stopped
	var fired []int64
	for now := int64(0); now <= 25e6; now += 1e6 {
		w.advance(now, func(tm *timer) {
			for i := range ts {
				if &ts[i] == tm {
					if now < whens[i] {
						t.Errorf("timer %d fired early at %d", i, now)
					}
					fired = append(fired, whens[i])
				}
			}
		})
	}
	if want := []int64{1e6, 3e6, 9e6, 20e6}; fmt.Sprint(fired) != fmt.Sprint(want) {
		t.Fatalf("fired %v, want %v", fired, want)
	}
	if w.count != 0 || w.next() != 0 {
		t.Fatalf("count %d after firing", w.count)
	}
}

// next finds the first occupied slot ahead, across word boundaries and
// around the end of the wheel, as a scan of every slot would.
func TestWheelNext(t *testing.T) {
	for _, now := range []int64{0, 5, 63, 64, 200, 1023, 1024, 5000} {
		for _, ahead := range []int64{1, 2, 60, 64, 65, 500, 1000, 1024} {
			w := newWheel(time.Millisecond, 1024)
			w.start(now * 1e6)
			var tm timer
			w.set(&tm, (now+ahead)*1e6)
			if got, want := w.next(), (now+ahead)*1e6; got != want {
				t.Errorf("now %d, timer %d ahead: next %d, want %d", now, ahead, got, want)
			}
			w.set(&tm, 0)
			if w.next() != 0 || w.occ[0]|w.occ[len(w.occ)-1] != 0 {
				t.Errorf("now %d: the wheel is not empty after the stop", now)
			}
		}
	}
}

// lingerHandler closes a connection with a linger on its first input, and
// counts its OnData calls; each sets a far timer, as a handler that keeps
// its own would.
type lingerHandler struct {
	echoHandler
	data atomic.Int32
}

var errLingerTest = errors.New("closed by the test")

func (h *lingerHandler) OnData(c *Conn, in []byte) {
	c.SetTimer(time.Now().Add(time.Hour))
	if h.data.Add(1) == 1 {
		c.Write([]byte("bye"))
		c.CloseWithError(errLingerTest, 300*time.Millisecond)
	}
}

// TestLingerDropsInput: while a closed connection lingers, what the peer
// sends is dropped without reaching the handler, which cannot prolong the
// linger that way, and OnClose reports the error given to CloseWithError.
func TestLingerDropsInput(t *testing.T) {
	h := &lingerHandler{}
	_, addr := startEngine(t, Config{Loops: 1}, h)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	nc.Write([]byte("a"))
	if b, err := io.ReadAll(nc); string(b) != "bye" || err != nil {
		t.Fatalf("got %q, %v; want bye and the end of the stream", b, err)
	}
	for range 3 {
		nc.Write([]byte("more")) // the server lingers: it reads and drops
		time.Sleep(50 * time.Millisecond)
	}
	waitFor(t, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.closed) == 1
	})
	took := time.Since(start)
	if took < 250*time.Millisecond || took > 2*time.Second {
		t.Errorf("closed after %v, want after the linger of 300ms", took)
	}
	if n := h.data.Load(); n != 1 {
		t.Errorf("OnData called %d times, want once", n)
	}
	if !errors.Is(h.closed[0], errLingerTest) {
		t.Errorf("OnClose reported %v, want %v", h.closed[0], errLingerTest)
	}
}
