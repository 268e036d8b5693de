//go:build linux

package load

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/tlsrec"
	"github.com/wskit/wskit/poller"
)

// run is the state a run's loops share. Only phase changes while they run.
type run struct {
	cfg       Config
	base      time.Time // times are nanoseconds since base
	phase     atomic.Int32
	loops     []*loop
	loopSlots []int // slots per loop
	total     int   // slots: Conns, and the publisher under Broadcast
	wg        sync.WaitGroup
	timer     *time.Timer

	targets      []netip.AddrPort // URL's, then URLs'
	raw          bool             // tcp://: payloads without framing, no handshake
	reqs         [][]byte         // the upgrade request of each target
	key          [4]byte
	out          []byte // prepared frames
	frameLen     int
	pubFrame     []byte // Broadcast's message as sent, before its stamp
	closePayload []byte
	closeFrame   []byte
	limit        int64  // the longest message accepted from the server
	want         []byte // what every reply must carry, under Config.Verify

	// wss (see tls_linux.go): which targets are, their client
	// configurations, the key log they share, and the handshakes' goroutines.
	secure   []bool
	tlsCfgs  []*tls.Config
	keys     *tlsrec.KeyLog
	hsCtx    context.Context
	hsCancel context.CancelFunc
	hsWG     sync.WaitGroup
}

// Run runs cfg's scenario until its duration has passed or ctx ends (then
// it returns what was measured, with Complete false). Connection failures
// are counted in the Result, not returned: an error means the run could
// not start.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r, err := newRun(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return r.execute(ctx)
}

func newRun(ctx context.Context, cfg Config) (*run, error) {
	var targets []netip.AddrPort
	var reqs [][]byte
	for _, raw := range append([]string{cfg.URL}, cfg.URLs...) {
		u, _ := url.Parse(raw) // checked by withDefaults
		target, err := resolve(ctx, u)
		if err != nil {
			return nil, err
		}
		if len(targets) > 0 && target.Addr().Is4() != targets[0].Addr().Is4() {
			return nil, fmt.Errorf("load: %v is not of the first server's family", target.Addr())
		}
		targets, reqs = append(targets, target), append(reqs, upgradeRequest(u.Host, u.RequestURI()))
	}
	target := targets[0]
	u, _ := url.Parse(cfg.URL)
	for _, s := range cfg.Sources {
		if s.Unmap().Is4() != target.Addr().Is4() {
			return nil, fmt.Errorf("load: source address %v is not of the server's family (%v)", s, target.Addr())
		}
	}
	if cfg.PID != 0 {
		if _, err := ProcessCPU(cfg.PID); err != nil {
			return nil, fmt.Errorf("load: server process: %w", err)
		}
	}
	poller.RaiseFileLimit() // best effort: dials that hit the limit are counted

	r := &run{cfg: cfg, targets: targets, reqs: reqs, key: newMaskKey(), total: cfg.Conns, limit: int64(cfg.Size)}
	r.setupTLS(append([]string{cfg.URL}, cfg.URLs...))
	payload := echoPayload(cfg.Size)
	r.out, r.frameLen = prepareFrames(payload, r.key, cfg.Pipeline)
	if r.raw = u.Scheme == "tcp"; r.raw {
		r.out, r.frameLen = prepareRaw(payload, cfg.Pipeline)
	}
	if cfg.Verify && cfg.Scenario != Broadcast && cfg.Size > 0 {
		r.want = payload
	}
	r.closePayload, _ = frame.AppendClose(nil, frame.CloseNormal, "")
	r.closeFrame = appendMasked(nil, frame.OpClose, r.closePayload, r.key)
	if cfg.Scenario == Broadcast {
		r.total += cfg.Publishers
		r.pubFrame = appendMasked(nil, frame.OpText, stampPayload(cfg.Size), r.key)
		r.limit = max(r.limit, 64<<20) // other messages are skipped, not kept
	}
	r.loopSlots = make([]int, cfg.Loops)
	for g := range r.total {
		r.loopSlots[g%cfg.Loops]++
	}
	r.base = time.Now()
	for i, n := range r.loopSlots {
		l, err := newLoop(r, i, n)
		if err != nil {
			for _, l := range r.loops {
				l.release()
			}
			return nil, err
		}
		r.loops = append(r.loops, l)
	}
	return r, nil
}

// resolve returns the address of u's host and port (80 by default).
func resolve(ctx context.Context, u *url.URL) (netip.AddrPort, error) {
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "wss" {
			port = "443"
		}
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("load: bad port %q", port)
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		addrs, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if lerr != nil || len(addrs) == 0 {
			return netip.AddrPort{}, fmt.Errorf("load: resolving %q: %v", host, lerr)
		}
		addr = addrs[0]
		for _, a := range addrs {
			if a.Unmap().Is4() {
				addr = a
				break
			}
		}
	}
	return netip.AddrPortFrom(addr.Unmap(), uint16(p)), nil
}

// sockaddrs returns a loop's own copies of the addresses: Connect and Bind
// write into them.
func (r *run) sockaddrs() (family int, targets []unix.Sockaddr, srcs []unix.Sockaddr) {
	conv := func(a netip.Addr, port int) unix.Sockaddr {
		a = a.Unmap()
		if a.Is4() {
			return &unix.SockaddrInet4{Port: port, Addr: a.As4()}
		}
		sa := &unix.SockaddrInet6{Port: port, Addr: a.As16()}
		if z := a.Zone(); z != "" {
			if ifi, err := net.InterfaceByName(z); err == nil {
				sa.ZoneId = uint32(ifi.Index)
			}
		}
		return sa
	}
	family = unix.AF_INET6
	if r.targets[0].Addr().Is4() {
		family = unix.AF_INET
	}
	for _, t := range r.targets {
		targets = append(targets, conv(t.Addr(), int(t.Port())))
	}
	for _, s := range r.cfg.Sources {
		srcs = append(srcs, conv(s, 0))
	}
	return family, targets, srcs
}

// targetOf returns the index in r.targets of slot g's server: the
// subscribers, then the publishers, are dealt over them in turn.
func (r *run) targetOf(g int) int {
	if g >= r.cfg.Conns {
		g -= r.cfg.Conns
	}
	return g % len(r.targets)
}

// now returns the time since the run began, in ns.
func (r *run) now() int64 { return int64(time.Since(r.base)) }

// openAt returns when slot g opens on the ramp.
func (r *run) openAt(g int) int64 {
	return int64(r.cfg.Ramp) * int64(g) / int64(r.total)
}

func (r *run) setPhase(p phase) {
	r.phase.Store(int32(p))
	for _, l := range r.loops {
		l.wake()
	}
}

// sum adds up a progress counter over the loops.
func (r *run) sum(f func(p *progress) int64) int64 {
	var n int64
	for _, l := range r.loops {
		n += f(&l.prog)
	}
	return n
}

func (r *run) open() int64 {
	return r.sum(func(p *progress) int64 {
		if p.pubOpen.Load() {
			return p.open.Load() - 1
		}
		return p.open.Load()
	})
}

// quiet reports whether every loop has finished the work of phase p.
func (r *run) quiet(p phase) bool {
	for _, l := range r.loops {
		if phase(l.prog.quiet.Load()) != p {
			return false
		}
	}
	return true
}

type waitEnd uint8

const (
	waitDone waitEnd = iota
	waitTimeout
	waitCanceled
)

// await waits until done reports true (nil: never), until passes or ctx
// ends, and reports progress meanwhile.
func (r *run) await(ctx context.Context, name string, length time.Duration, until time.Time, done func() bool) waitEnd {
	start := time.Now()
	next := start
	for {
		if done != nil && done() {
			return waitDone
		}
		now := time.Now()
		if !now.Before(until) {
			return waitTimeout
		}
		if r.cfg.Progress != nil && !now.Before(next) {
			r.cfg.Progress(r.progress(name, now.Sub(start), length))
			next = now.Add(r.cfg.ProgressInterval)
		}
		r.timer.Reset(min(until.Sub(now), 5*time.Millisecond))
		select {
		case <-ctx.Done():
			return waitCanceled
		case <-r.timer.C:
		}
	}
}

func (r *run) progress(name string, elapsed, length time.Duration) Progress {
	return Progress{
		Phase: name, Elapsed: elapsed, Length: length,
		Open: int(r.open()), Conns: r.cfg.Conns,
		Count:  r.sum(func(p *progress) int64 { return p.count.Load() }),
		Errors: r.sum(func(p *progress) int64 { return p.errors.Load() }),
	}
}

// sample is the CPU time of the server (if measured) and of this process.
type sample struct {
	at     time.Time
	server time.Duration
	client time.Duration
	err    error
}

func (r *run) sample() sample {
	s := sample{at: time.Now(), client: SelfCPU()}
	if r.cfg.PID != 0 {
		s.server, s.err = ProcessCPU(r.cfg.PID)
	}
	return s
}

func (r *run) execute(ctx context.Context) (*Result, error) {
	cfg := r.cfg
	res := &Result{
		Scenario: cfg.Scenario, URL: cfg.URL, Conns: cfg.Conns, Size: cfg.Size, Pipeline: cfg.Pipeline,
		Rate: cfg.Rate, Loops: len(r.loops), Sources: len(cfg.Sources), Verified: r.want != nil,
	}
	var rssBefore int64
	if cfg.PID != 0 {
		var err error
		if rssBefore, err = ProcessRSS(cfg.PID); err != nil {
			for _, l := range r.loops {
				l.release()
			}
			return nil, err
		}
	}
	r.timer = time.NewTimer(time.Hour)
	defer r.timer.Stop()
	for _, l := range r.loops {
		r.wg.Add(1)
		go l.run()
	}
	finish := func() {
		r.setPhase(phaseDone)
		r.wg.Wait()
		r.endHandshakes()
	}

	// Open the connections.
	var end waitEnd
	if cfg.Scenario == Churn {
		end = r.await(ctx, "connecting", cfg.Ramp, r.base.Add(cfg.Ramp), nil)
	} else {
		// Each connection has DialTimeout, and they open as fast as the
		// server takes them: wait as long as they keep settling.
		total := int64(r.total)
		var settled int64
		since := time.Now()
		end = r.await(ctx, "connecting", cfg.Ramp, r.base.Add(cfg.Ramp+24*time.Hour), func() bool {
			n := r.sum(func(p *progress) int64 { return p.settled.Load() })
			if n != settled {
				settled, since = n, time.Now()
			}
			return n == total || (time.Since(r.base) > cfg.Ramp && time.Since(since) > cfg.DialTimeout+time.Second)
		})
	}
	res.Open = int(r.open())
	res.ConnectSeconds = time.Since(r.base).Seconds()
	ready := end != waitCanceled && (cfg.Scenario == Churn || res.Open > 0)
	if cfg.Scenario == Broadcast {
		ready = ready && r.loops[cfg.Conns%len(r.loops)].prog.pubOpen.Load()
		if ready {
			// Let the server finish subscribing the last connections.
			end = r.await(ctx, "connecting", 0, time.Now().Add(200*time.Millisecond), nil)
			ready = end != waitCanceled
		}
	}
	if !ready {
		finish()
		return r.collect(res, 0), nil
	}

	// Measure.
	name := "running"
	if cfg.Scenario == Idle {
		name = "holding"
	}
	s0 := r.sample()
	r.setPhase(phaseMeasure)
	end = r.await(ctx, name, cfg.Duration, s0.at.Add(cfg.Duration), nil)
	s1 := r.sample()
	var rss int64
	var rssErr error
	if cfg.PID != 0 {
		rss, rssErr = ProcessRSS(cfg.PID)
	}
	window := s1.at.Sub(s0.at)
	res.Complete = end != waitCanceled

	if res.Complete {
		if cfg.Scenario == Idle {
			r.setPhase(phaseWake)
			end = r.await(ctx, "waking", 0, time.Now().Add(cfg.DrainTimeout), func() bool { return r.quiet(phaseWake) })
			res.Complete = end == waitDone
		} else {
			r.setPhase(phaseDrain)
			r.await(ctx, "draining", 0, time.Now().Add(cfg.DrainTimeout), r.drained(res.Open))
		}
	}
	finish()
	r.collect(res, window)

	if cfg.PID != 0 && s0.err == nil && s1.err == nil && rssErr == nil {
		cpu := s1.server - s0.server
		srv := &ServerStats{PID: cfg.PID, CPUSeconds: cpu.Seconds(), RSS: rss}
		if window > 0 {
			srv.CPUPercent = 100 * cpu.Seconds() / window.Seconds()
		}
		ops := res.Messages
		if cfg.Scenario == Churn {
			ops = res.Handshakes
		}
		if ops > 0 && cfg.Scenario != Idle {
			srv.CPUMicros = float64(cpu.Microseconds()) / float64(ops)
		}
		if cfg.Scenario == Idle {
			srv.RSSBefore = rssBefore
			if res.Open > 0 {
				srv.RSSPerConn = float64(rss-rssBefore) / float64(res.Open)
			}
		}
		res.Server = srv
	}
	if window > 0 {
		res.ClientCPUPercent = 100 * (s1.client - s0.client).Seconds() / window.Seconds()
	}
	return res, nil
}

// drained returns the test that ends the drain: nothing in flight, and
// under Broadcast every delivery in (or none for a second).
func (r *run) drained(subs int) func() bool {
	var last int64 = -1
	var since time.Time
	return func() bool {
		if !r.quiet(phaseDrain) {
			return false
		}
		if r.cfg.Scenario != Broadcast {
			return true
		}
		got := r.sum(func(p *progress) int64 { return p.count.Load() })
		want := r.sum(func(p *progress) int64 { return p.published.Load() }) * int64(subs)
		if got >= want {
			return true
		}
		if got != last {
			last, since = got, time.Now()
		}
		return time.Since(since) > time.Second
	}
}

// collect fills res from the loops, which have stopped, for a window of
// that length.
func (r *run) collect(res *Result, window time.Duration) *Result {
	var (
		hist                *Histogram = new(Histogram)
		errs                errorTally
		win, tot            counts
		wakeFirst, wakeLast int64
	)
	for i, l := range r.loops {
		if res.TLS == "" {
			res.TLS = l.tlsVersion
		}
		hist.Merge(&l.hist)
		errs.merge(&l.errs)
		win.msgs += l.win.msgs
		win.hs += l.win.hs
		tot.sent += l.tot.sent
		tot.recv += l.tot.recv
		tot.published += l.tot.published
		if i == 0 || l.wakeFirst < wakeFirst {
			wakeFirst = l.wakeFirst
		}
		wakeLast = max(wakeLast, l.wakeLast)
	}
	res.Seconds = window.Seconds()
	res.Sent, res.Received = tot.sent, tot.recv
	res.Latency = hist.Summary()
	res.Errors = errs.byKind()
	perSec := func(n int64) float64 {
		if window <= 0 {
			return 0
		}
		return float64(n) / window.Seconds()
	}
	switch r.cfg.Scenario {
	case Echo, Pipeline:
		res.Messages = win.msgs
		res.MsgsPerSec = perSec(win.msgs)
	case Idle:
		res.Messages = win.msgs
		if wakeLast > wakeFirst {
			res.WakeSeconds = time.Duration(wakeLast - wakeFirst).Seconds()
			res.MsgsPerSec = float64(win.msgs) / res.WakeSeconds
		}
	case Broadcast:
		res.Messages = tot.recv
		res.MsgsPerSec = perSec(tot.recv)
		res.Published = tot.published
		res.Expected = tot.published * int64(res.Open)
		res.Missing = max(res.Expected-tot.recv, 0)
	case Churn:
		res.Messages = win.msgs
		res.MsgsPerSec = perSec(win.msgs)
		res.Handshakes = win.hs
		res.HandshakesPerSec = perSec(win.hs)
	}
	res.MBPerSec = res.MsgsPerSec * float64(r.cfg.Size) / 1e6
	return res
}
