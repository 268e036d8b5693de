//go:build linux

package load

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wskit/wskit/frame"
)

// harness is one loop of a run whose connection slot 0 is one end of a
// socket pair, open, while the test plays the server at the other end.
type harness struct {
	t    *testing.T
	l    *loop
	c    *conn
	peer int
	buf  []byte
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	cfg.URL = "ws://127.0.0.1:1/x" // never dialled
	cfg.Conns, cfg.Loops, cfg.Duration = 1, 1, time.Second
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	r, err := newRun(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := r.loops[0]
	t.Cleanup(l.release)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[1]) })
	c := &l.conns[0]
	c.fd, c.state, c.role = fds[0], stOpen, roleClient
	c.rd.reset(r.limit, r.want)
	t.Cleanup(func() {
		if c.fd >= 0 {
			unix.Close(c.fd)
		}
	})
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: 0, Pad: c.gen}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		t.Fatal(err)
	}
	l.open, l.settled, c.settled = 1, 1, true
	l.phase = phaseMeasure
	r.phase.Store(int32(phaseMeasure))
	return &harness{t: t, l: l, c: c, peer: fds[1], buf: make([]byte, 1<<20)}
}

// serve writes b as the server.
func (h *harness) serve(b []byte) {
	if n, err := unix.Write(h.peer, b); err != nil || n != len(b) {
		h.t.Fatalf("server write: %d of %d bytes, %v", n, len(b), err)
	}
}

// expect reads n bytes the client wrote.
func (h *harness) expect(n int) {
	got, err := unix.Read(h.peer, h.buf)
	if err != nil || got != n {
		h.t.Fatalf("the client wrote %d bytes (%v), want %d", got, err, n)
	}
}

func TestPerMessageAllocs(t *testing.T) {
	reply := serverFrame(true, frame.OpBinary, echoPayload(64))
	t.Run("echo", func(t *testing.T) {
		h := newHarness(t, Config{Scenario: Echo, Size: 64})
		h.l.send(h.c, 1, 0)
		h.l.flush(h.c)
		h.expect(h.l.r.frameLen)
		allocs := testing.AllocsPerRun(1000, func() {
			h.serve(reply)
			h.l.event(h.c, unix.EPOLLIN)
			h.expect(h.l.r.frameLen)
		})
		if allocs != 0 || h.l.errs.total() != 0 || h.l.win.msgs < 1000 || h.l.hist.Count() != h.l.win.msgs {
			t.Fatalf("%v allocations per echo, errors %v, %d echoes, %d latencies", allocs, h.l.errs.byKind(), h.l.win.msgs, h.l.hist.Count())
		}
	})
	t.Run("echo verified", func(t *testing.T) {
		for _, size := range []int{64, 16 << 10} {
			h := newHarness(t, Config{Scenario: Echo, Size: size, Verify: true})
			reply := serverFrame(true, frame.OpBinary, echoPayload(size))
			h.l.send(h.c, 1, 0)
			h.l.flush(h.c)
			h.expect(h.l.r.frameLen)
			allocs := testing.AllocsPerRun(1000, func() {
				h.serve(reply)
				h.l.event(h.c, unix.EPOLLIN)
				h.expect(h.l.r.frameLen)
			})
			if allocs != 0 || h.l.errs.total() != 0 || h.l.win.msgs < 1000 {
				t.Fatalf("%d bytes: %v allocations per echo, errors %v, %d echoes", size, allocs, h.l.errs.byKind(), h.l.win.msgs)
			}
		}
	})
	t.Run("pipeline step", func(t *testing.T) {
		h := newHarness(t, Config{Scenario: Pipeline, Size: 64, Pipeline: 4})
		h.l.send(h.c, 4, 0)
		h.l.flush(h.c)
		h.expect(4 * h.l.r.frameLen)
		two := append(append([]byte(nil), reply...), reply...)
		allocs := testing.AllocsPerRun(1000, func() {
			h.serve(two)
			h.l.step() // work, epoll, read, parse, record, send two more
			h.expect(2 * h.l.r.frameLen)
		})
		if allocs != 0 || h.l.errs.total() != 0 || h.l.inflight != 4 {
			t.Fatalf("%v allocations per step, errors %v, %d in flight", allocs, h.l.errs.byKind(), h.l.inflight)
		}
	})
	t.Run("subscriber", func(t *testing.T) {
		h := newHarness(t, Config{Scenario: Broadcast, Size: 64})
		delivery := serverFrame(true, frame.OpText, stampPayload(64))
		allocs := testing.AllocsPerRun(1000, func() {
			h.serve(delivery)
			h.l.event(h.c, unix.EPOLLIN)
		})
		if allocs != 0 || h.l.errs.total() != 0 || h.l.tot.recv < 1000 || h.l.hist.Count() != h.l.tot.recv {
			t.Fatalf("%v allocations per delivery, errors %v, %d deliveries, %d latencies", allocs, h.l.errs.byKind(), h.l.tot.recv, h.l.hist.Count())
		}
	})
	t.Run("publisher", func(t *testing.T) {
		h := newHarness(t, Config{Scenario: Broadcast, Size: 64})
		h.c.role = rolePublisher
		h.l.pub, h.l.pubFrame = h.c, h.l.r.pubFrame
		allocs := testing.AllocsPerRun(1000, func() {
			h.l.publish(h.l.r.now())
			h.l.flush(h.c)
			h.expect(len(h.l.pubFrame))
		})
		if allocs != 0 || h.l.errs.total() != 0 {
			t.Fatalf("%v allocations per publish, errors %v", allocs, h.l.errs.byKind())
		}
	})
	t.Run("ping", func(t *testing.T) {
		h := newHarness(t, Config{Scenario: Idle, Size: 64})
		ping := serverFrame(true, frame.OpPing, []byte("tick"))
		pong := appendMasked(nil, frame.OpPong, []byte("tick"), h.l.r.key)
		allocs := testing.AllocsPerRun(100, func() {
			h.serve(ping)
			h.l.event(h.c, unix.EPOLLIN)
			h.expect(len(pong))
		})
		if allocs != 0 || h.l.errs.total() != 0 {
			t.Fatalf("%v allocations per ping, errors %v", allocs, h.l.errs.byKind())
		}
	})
}
