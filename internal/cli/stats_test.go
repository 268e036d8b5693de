package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/internal/wstest"
)

// testStatsPeriod is the feed's period in tests: short, so that a test sees
// several snapshots quickly.
const testStatsPeriod = 50 * time.Millisecond

// newTestFeed returns a feed of srv closed when the test ends.
func newTestFeed(t *testing.T, srv *wskit.Server) *statsFeed {
	f := newStatsFeed(srv, testStatsPeriod)
	t.Cleanup(f.Close)
	return f
}

// statsServer serves the demo routes on engine, with the stats feed at hand.
type statsServer struct {
	addr   string
	srv    *wskit.Server
	feed   *statsFeed
	served chan error
}

func startStats(t *testing.T, engine string) *statsServer {
	t.Helper()
	c, err := parseServeFlags([]string{"-engine", engine}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ss := &statsServer{served: make(chan error, 1)}
	if ss.srv, err = wskit.NewServer(c.options(log)); err != nil {
		t.Fatal(err)
	}
	chat, err := wskit.NewHub(c.chatOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(chat.Close)
	ss.feed = newTestFeed(t, ss.srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ss.addr = ln.Addr().String()
	go func() { ss.served <- ss.srv.Serve(ln, newMux(ss.srv, chat, ss.feed, log)) }()
	t.Cleanup(func() { ss.shutdown(t) })
	return ss
}

// shutdown shuts the server down, once.
func (ss *statsServer) shutdown(t *testing.T) {
	t.Helper()
	if ss.served == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ss.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := wstest.Await(t, ss.served, "Serve to return", 10*time.Second); !errors.Is(err, wskit.ErrServerClosed) {
		t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
	ss.served = nil
}

func (ss *statsServer) dial(t *testing.T, path string) *wskit.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := wskit.Dial(ctx, "ws://"+ss.addr+path, nil)
	if err != nil {
		t.Fatalf("Dial %s: %v", path, err)
	}
	t.Cleanup(func() { s.Close(wskit.CloseNormal, "") })
	return s
}

// receiveSnapshot reads the next /stats message.
func receiveSnapshot(t *testing.T, s *wskit.Session) statsSnapshot {
	t.Helper()
	m := receive(t, s)
	var snap statsSnapshot
	if m.Type != wskit.Text {
		t.Fatalf("/stats sent a %v message, want text", m.Type)
	}
	if err := json.Unmarshal(m.Payload, &snap); err != nil {
		t.Fatalf("/stats sent %q: %v", m.Payload, err)
	}
	return snap
}

// feedRunning reports whether a ticker goroutine of the feed is alive.
func feedRunning() bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Contains(string(buf[:n]), "(*statsFeed).run(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestStatsRoute watches /stats on each engine while a client echoes text
// and binary messages of known size through /echo: every snapshot parses; its time
// moves on; the totals never go back and end at least at what was sent
// and echoed; each rate times its period is the rise of its total since
// the previous snapshot; and the sessions, RSS and goroutines are there.
func TestStatsRoute(t *testing.T) {
	for _, engine := range engines() {
		t.Run(engine, func(t *testing.T) { testStatsRoute(t, engine) })
	}
}

func testStatsRoute(t *testing.T, engine string) {
	ss := startStats(t, engine)
	viewer := ss.dial(t, "/stats")
	echo := ss.dial(t, "/echo")

	const rounds, size = 200, 100
	payload := strings.Repeat("x", size)
	// Text and binary in turn: both count.
	exchange := func() {
		for i := range rounds {
			typ := wskit.Text
			if i%2 == 1 {
				typ = wskit.Binary
			}
			if err := echo.Send(typ, []byte(payload)); err != nil {
				t.Fatal(err)
			}
			if m := receive(t, echo); m.Type != typ || string(m.Payload) != payload {
				t.Fatalf("/echo sent back %v %q", m.Type, m.Payload)
			}
		}
	}
	exchange()

	var prev statsSnapshot
	var rated bool
	for i := 0; ; i++ {
		snap := receiveSnapshot(t, viewer)
		if snap.RSS == 0 || snap.Goroutines == 0 || snap.Sessions < 2 {
			t.Fatalf("snapshot %d: rss %d, goroutines %d, sessions %d; want each positive and 2 sessions or more", i, snap.RSS, snap.Goroutines, snap.Sessions)
		}
		if snap.Period <= 0 {
			t.Fatalf("snapshot %d: period %v", i, snap.Period)
		}
		if i > 0 {
			if snap.Time <= prev.Time {
				t.Fatalf("snapshot %d at %d, the one before at %d", i, snap.Time, prev.Time)
			}
			for _, f := range []struct {
				name      string
				prev, cur statsFlow
			}{{"in", prev.In, snap.In}, {"out", prev.Out, snap.Out}} {
				if f.cur.Messages < f.prev.Messages || f.cur.Bytes < f.prev.Bytes {
					t.Fatalf("snapshot %d: %s went back from %+v to %+v", i, f.name, f.prev, f.cur)
				}
				checkRate(t, i, f.name+" messages", f.cur.MessagesPerSec, snap.Period, f.cur.Messages-f.prev.Messages)
				checkRate(t, i, f.name+" bytes", f.cur.BytesPerSec, snap.Period, f.cur.Bytes-f.prev.Bytes)
				if f.cur.MessagesPerSec > 0 && f.cur.BytesPerSec > 0 {
					rated = true
				}
			}
		}
		prev = snap
		if snap.In.Messages >= rounds && snap.In.Bytes >= rounds*size &&
			snap.Out.Messages >= rounds && snap.Out.Bytes >= rounds*size && rated {
			break
		}
		if i == 100 {
			t.Fatalf("after %d snapshots: %+v; want %d messages of %d bytes each way, and rates", i, snap, rounds, size)
		}
		if i == 2 {
			exchange() // more, now that a few snapshots have passed
		}
	}
}

// checkRate checks that rate over period seconds makes rise.
func checkRate(t *testing.T, i int, what string, rate, period float64, rise uint64) {
	t.Helper()
	if got := rate * period; math.Abs(got-float64(rise)) > 1e-6*float64(rise)+1e-6 {
		t.Fatalf("snapshot %d: %s at %v/s over %vs is %v, but the total rose by %d", i, what, rate, period, got, rise)
	}
}

// TestStatsTicker checks that the feed's ticker runs only while someone
// watches: it stops when the last viewer leaves, starts again for the next
// one (who first receives the snapshots published before), stops when the
// server shuts down, and Close leaves no goroutine behind.
func TestStatsTicker(t *testing.T) {
	if feedRunning() {
		t.Fatal("a ticker runs before the test")
	}
	ss := startStats(t, "auto")
	if feedRunning() {
		t.Fatal("the ticker runs with no viewer")
	}

	first := ss.dial(t, "/stats")
	a, b := receiveSnapshot(t, first), receiveSnapshot(t, first)
	if !feedRunning() {
		t.Fatal("no ticker while a viewer watches")
	}
	first.Close(wskit.CloseNormal, "")
	waitFor(t, "the ticker to stop after the viewer left", func() bool { return !feedRunning() })

	second := ss.dial(t, "/stats")
	if got := receiveSnapshot(t, second); got.Time != a.Time {
		t.Fatalf("a new viewer's first snapshot is at %d, want the first one published, at %d", got.Time, a.Time)
	}
	if got := receiveSnapshot(t, second); got.Time != b.Time {
		t.Fatalf("a new viewer's second snapshot is at %d, want %d", got.Time, b.Time)
	}
	var live statsSnapshot
	for live.Time <= b.Time {
		live = receiveSnapshot(t, second) // the rest of the history, then new ones
	}
	if !feedRunning() {
		t.Fatal("no ticker for the second viewer")
	}

	ss.shutdown(t)
	waitFor(t, "the ticker to stop after the shutdown", func() bool { return !feedRunning() })
	ss.feed.Close()

	// Close stops a ticker that still has viewers.
	third := startStats(t, "auto")
	third.dial(t, "/stats")
	waitFor(t, "a ticker for the third viewer", feedRunning)
	third.feed.Close()
	if feedRunning() {
		t.Fatal("a ticker runs after Close")
	}
}
