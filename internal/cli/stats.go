package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wskit/wskit"
)

// The live panel of the demo page: /stats publishes a snapshot of the
// server every second through a Hub, so that all viewers share one
// encoding of it. The ticker runs only while someone watches.

// statsPeriod is the interval of /stats snapshots.
const statsPeriod = time.Second

// statsHistory is how many of the last snapshots a new viewer receives
// first: the page's chart spans five minutes.
const statsHistory = 300

// statsSnapshot is one message of /stats, as JSON.
type statsSnapshot struct {
	Time       int64     `json:"time"`       // Unix milliseconds
	Period     float64   `json:"period"`     // seconds since the previous snapshot
	Sessions   int64     `json:"sessions"`   // open now, of every kind and engine
	In         statsFlow `json:"in"`         // what peers sent
	Out        statsFlow `json:"out"`        // what the server sent
	RSS        uint64    `json:"rss"`        // resident memory, bytes
	Goroutines int       `json:"goroutines"` // runtime.NumGoroutine
}

// statsFlow is the data messages of one direction: totals since the server
// started, and rates over the snapshot's period.
type statsFlow struct {
	Messages       uint64  `json:"messages"`
	Bytes          uint64  `json:"bytes"` // payload bytes, as the application has them
	MessagesPerSec float64 `json:"messagesPerSec"`
	BytesPerSec    float64 `json:"bytesPerSec"`
}

// statsFeed publishes the snapshots of a server.
type statsFeed struct {
	srv    *wskit.Server
	hub    *wskit.Hub
	period time.Duration

	mu      sync.Mutex
	running bool // a run goroutine is on
	closed  bool
	stop    chan struct{}
	done    sync.WaitGroup

	// The previous sample, only touched by the run goroutine on.
	prev   wskit.Stats
	prevAt time.Time
}

// newStatsFeed returns a feed of srv's snapshots every period.
func newStatsFeed(srv *wskit.Server, period time.Duration) *statsFeed {
	hub, err := wskit.NewHub(wskit.HubOptions{Replay: statsHistory, Overflow: wskit.OverflowDropOldest})
	if err != nil {
		panic(err) // the options are valid
	}
	return &statsFeed{srv: srv, hub: hub, period: period, stop: make(chan struct{})}
}

// events returns the /stats route's callbacks: a viewer subscribes, and
// what it sends is ignored.
func (f *statsFeed) events(log *slog.Logger) wskit.Events {
	return wskit.Events{
		OnOpen: func(s *wskit.Session) {
			logOpen(log, sessionRequest(s), "subprotocol", s.Subprotocol())
			if err := f.subscribe(s); err != nil {
				s.Close(wskit.CloseGoingAway, "stats closed")
			}
		},
		OnClose: func(s *wskit.Session, r wskit.CloseReason) {
			logClose(log, sessionRequest(s), int(r.Code), r.Reason, s.Err())
		},
	}
}

// subscribe adds a viewer and starts the ticker if it is off. A session
// leaves the hub when it ends.
func (f *statsFeed) subscribe(s *wskit.Session) error {
	if err := f.hub.Subscribe(s); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.running && !f.closed {
		f.running = true
		f.done.Add(1)
		go f.run()
	}
	return nil
}

// run samples the server every period while the hub has subscribers. Its
// first sample is the base of the rates and is not published: the
// history a viewer gets comes first.
func (f *statsFeed) run() {
	defer f.done.Done()
	t := time.NewTicker(f.period)
	defer t.Stop()
	f.prev, f.prevAt = f.srv.Stats(), time.Now()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
		// Checked under mu, so that a viewer who subscribes meanwhile
		// either is seen here or starts a new run.
		f.mu.Lock()
		if f.hub.Subscribers() == 0 {
			f.running = false
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		f.publish()
	}
}

// publish samples the server and publishes the snapshot.
func (f *statsFeed) publish() {
	st, now := f.srv.Stats(), time.Now()
	snap := newSnapshot(f.prev, st, now.Sub(f.prevAt))
	snap.Time = now.UnixMilli()
	f.prev, f.prevAt = st, now
	b, err := json.Marshal(snap)
	if err != nil {
		panic(err) // numbers only
	}
	// Never waits under OverflowDropOldest; fails only once closed.
	f.hub.Publish(context.Background(), wskit.Text, b)
}

// Close stops the ticker, waits for it, and closes the hub; the viewers'
// sessions are the server's to close.
func (f *statsFeed) Close() {
	f.mu.Lock()
	if !f.closed {
		f.closed = true
		close(f.stop)
	}
	f.mu.Unlock()
	f.done.Wait()
	f.hub.Close()
}

// newSnapshot returns the snapshot of cur, with rates over the period d
// since prev.
func newSnapshot(prev, cur wskit.Stats, d time.Duration) statsSnapshot {
	snap := statsSnapshot{
		Period:     d.Seconds(),
		Sessions:   openSessions(cur.Sessions),
		In:         newFlow(prev.In, cur.In, d),
		Out:        newFlow(prev.Out, cur.Out, d),
		RSS:        residentBytes(),
		Goroutines: runtime.NumGoroutine(),
	}
	return snap
}

func newFlow(prev, cur wskit.TrafficStats, d time.Duration) statsFlow {
	fl := statsFlow{
		Messages: cur.Text.Messages + cur.Binary.Messages,
		Bytes:    cur.Text.Bytes + cur.Binary.Bytes,
	}
	if s := d.Seconds(); s > 0 {
		fl.MessagesPerSec = float64(fl.Messages-prev.Text.Messages-prev.Binary.Messages) / s
		fl.BytesPerSec = float64(fl.Bytes-prev.Text.Bytes-prev.Binary.Bytes) / s
	}
	return fl
}

// openSessions sums the open sessions of every engine and kind.
func openSessions(s wskit.SessionStats) int64 {
	var n int64
	for _, k := range []wskit.SessionKinds{s.Std, s.Poll} {
		n += k.Default.Open + k.Raw.Open + k.Events.Open
	}
	return n
}

// residentBytes returns the process's resident memory: from
// /proc/self/statm where there is one, else what the Go runtime holds from
// the system less what it gave back.
func residentBytes() uint64 {
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			if pages, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				return pages * uint64(os.Getpagesize())
			}
		}
	}
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64() - s[1].Value.Uint64()
}
