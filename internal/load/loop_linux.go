//go:build linux

package load

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// phase is where a run is; loops follow the coordinator's in order.
type phase int32

const (
	phaseConnect phase = iota // open connections (Echo and Pipeline work on them as they open)
	phaseMeasure              // the measured window (Idle: the hold)
	phaseWake                 // Idle: one message on every connection
	phaseDrain                // no new work; wait for what is in flight
	phaseDone                 // close everything
)

const (
	// maxDialing bounds the connects and upgrades in progress per loop
	// while connections open (Churn excepted: its Conns are the bound).
	maxDialing = 128
	// wakeBatch is how many connections Idle's wake-up writes to before the
	// loop reads replies again.
	wakeBatch = 256
	// scanEvery is how often a loop looks for timeouts.
	scanEvery = int64(100 * time.Millisecond)
	// maxPublishBacklog is the most unwritten output the publisher holds;
	// past it, tokens are forgone instead of queued.
	maxPublishBacklog = 1 << 20
	// readBufferSize is each loop's read buffer.
	readBufferSize = 64 << 10
)

// counts are a loop's counters.
type counts struct {
	msgs      int64 // in the window: replies, wake-up replies or deliveries
	hs        int64 // handshakes
	sent      int64 // messages sent
	recv      int64 // replies received, or deliveries
	published int64
	other     int64 // messages without a stamp (Broadcast)
}

// progress is what a loop tells the coordinator while it runs.
type progress struct {
	open, settled, count, errors, published atomic.Int64
	pubOpen                                 atomic.Bool  // the publisher is open (and counted in open)
	quiet                                   atomic.Int32 // the phase in which the loop has nothing left to do; -1 none
	_                                       [64]byte     // keeps loops' counters off each other's cache lines
}

// loop drives its share of the connections from one epoll descriptor,
// on one goroutine. It parks in the Go runtime's network poller, where the
// epoll descriptor is registered, so a waiting loop holds no thread.
type loop struct {
	r      *run
	id     int
	epfd   int
	evfd   int // an eventfd the coordinator writes to on a phase change
	file   *os.File
	raw    syscall.RawConn
	waitFn func(uintptr) bool
	waitN  int
	parkDL int64 // the read deadline on file, ns since r.base; 0 none

	events  []unix.EpollEvent
	buf     []byte
	family  int
	targets []unix.Sockaddr
	srcs    []unix.Sockaddr
	conns   []conn
	times   []int64 // send times: cfg.Pipeline per connection

	phase    phase
	nextOpen int // the next slot to open on the ramp
	dialing  int
	open     int
	settled  int
	inflight int
	rated    bool
	pace     pacer
	queue    []int32 // ring of slots waiting for a token or a dial
	qhead    int
	qlen     int
	wakeNext int
	nextScan int64
	deadline int64 // when the loop must run again; 0: only on events

	pub      *conn // the publisher, if on this loop
	pubq     []byte
	pubOff   int
	pubFrame []byte // a message as sent, stamp to be filled in

	// wss: records sealed for one write; the handshakes finished on their
	// goroutines, for the loop to take (hsSpare is the slice taken last).
	sbuf       []byte
	hsMu       sync.Mutex
	hsDone     []handshakeResult
	hsSpare    []handshakeResult
	tlsVersion string

	hist      Histogram
	win, tot  counts
	errs      errorTally
	wakeFirst int64
	wakeLast  int64

	prog progress
}

func newLoop(r *run, id int, slots int) (*loop, error) {
	l := &loop{
		r: r, id: id, epfd: -1, evfd: -1,
		events: make([]unix.EpollEvent, 512),
		buf:    make([]byte, readBufferSize),
		conns:  make([]conn, slots),
		times:  make([]int64, slots*r.cfg.Pipeline),
		queue:  make([]int32, slots),
		rated:  r.cfg.Rate > 0 && r.cfg.Scenario != Broadcast,
	}
	l.prog.quiet.Store(-1)
	for i := range l.conns {
		c := &l.conns[i]
		c.fd, c.idx = -1, int32(i)
		c.tgt = int32(r.targetOf(l.global(i)))
		if r.cfg.Scenario == Broadcast && l.global(i) >= r.cfg.Conns { // past the subscribers
			c.role = rolePublisher
			l.pub = c
			l.pubFrame = r.pubFrame
		}
	}
	l.family, l.targets, l.srcs = r.sockaddrs()
	var err error
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if l.evfd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		l.release()
		return nil, os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: -1}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.evfd, &ev); err != nil {
		l.release()
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	if err := unix.SetNonblock(l.epfd, true); err != nil {
		l.release()
		return nil, err
	}
	l.file = os.NewFile(uintptr(l.epfd), "epoll")
	if l.raw, err = l.file.SyscallConn(); err != nil {
		l.release()
		return nil, err
	}
	if err := l.file.SetReadDeadline(time.Time{}); err != nil {
		l.release()
		return nil, fmt.Errorf("load: the runtime cannot poll an epoll descriptor: %w", err)
	}
	l.waitFn = l.poll
	if l.rated {
		l.pace = newPacer(r.cfg.Rate/float64(len(r.loopSlots)), 0)
	}
	return l, nil
}

// global returns the run-wide index of slot i: slots are dealt to the loops
// in turn, so that a ramp opens them evenly.
func (l *loop) global(i int) int { return i*len(l.r.loopSlots) + l.id }

// release closes the loop's descriptors.
func (l *loop) release() {
	if l.file != nil {
		l.file.Close()
	} else if l.epfd >= 0 {
		unix.Close(l.epfd)
	}
	if l.evfd >= 0 {
		unix.Close(l.evfd)
	}
}

// wake makes the loop look at the run's phase.
func (l *loop) wake() {
	one := [8]byte{1}
	unix.Write(l.evfd, one[:])
}

func (l *loop) run() {
	defer l.r.wg.Done()
	defer l.release()
	for {
		l.follow()
		if l.phase == phaseDone {
			break
		}
		l.step()
	}
	l.closeAll()
	l.report()
}

// step is one iteration: timed work, then events.
func (l *loop) step() {
	now := l.r.now()
	l.work(now)
	l.report()
	n := l.wait(now)
	for i := range n {
		ev := &l.events[i]
		if ev.Fd < 0 {
			var b [8]byte
			unix.Read(l.evfd, b[:])
			if l.r.keys != nil {
				l.handshaken()
			}
			continue
		}
		c := &l.conns[ev.Fd]
		if c.gen == ev.Pad && c.fd >= 0 {
			l.event(c, ev.Events)
		}
	}
}

// follow enters the phases the coordinator has moved to.
func (l *loop) follow() {
	for p := phase(l.r.phase.Load()); l.phase < p; {
		l.phase++
		l.enter(l.phase)
	}
}

func (l *loop) enter(p phase) {
	now := l.r.now()
	switch p {
	case phaseMeasure:
		l.win = counts{}
		l.hist.Reset()
		if l.r.cfg.Scenario != Churn {
			// The coordinator waited for every connection: those still not
			// open have run out of time.
			for i := range l.conns {
				c := &l.conns[i]
				if !c.settled {
					l.fail(c, errTimeout, func() string { return "not open when measuring began" })
				}
			}
			l.nextOpen = len(l.conns)
		}
		if l.pub != nil {
			l.pace = newPacer(l.r.cfg.Rate/float64(l.r.cfg.Publishers), now)
		}
	case phaseWake:
		l.wakeFirst = now
	}
}

// work does what is due at now: opening connections on the ramp, sending
// what waited for a token, publishing, waking, timeouts. It sets
// l.deadline.
func (l *loop) work(now int64) {
	dl := now + scanEvery
	soon := func(t int64) { dl = min(dl, t) }
	churn := l.r.cfg.Scenario == Churn
	if l.phase == phaseConnect || (churn && l.phase == phaseMeasure) {
		for l.nextOpen < len(l.conns) && (churn || l.dialing < maxDialing) {
			at := l.r.openAt(l.global(l.nextOpen))
			if at > now {
				soon(at)
				break
			}
			c := &l.conns[l.nextOpen]
			l.nextOpen++
			if churn {
				l.enqueue(c)
			} else {
				l.dial(c, now)
			}
		}
	}
	if l.qlen > 0 {
		l.dequeue(now)
		if l.qlen > 0 {
			if l.rated {
				soon(l.pace.nextAt())
			} else {
				soon(now)
			}
		}
	}
	if c := l.pub; c != nil && c.state == stOpen && l.phase == phaseMeasure {
		k := l.pace.allow(now)
		if len(l.pubq)-l.pubOff > maxPublishBacklog {
			k = 0
		}
		for range k {
			l.publish(now)
		}
		l.pace.take(k)
		if k > 0 {
			l.flush(c)
		}
		soon(l.pace.nextAt())
	}
	if l.phase == phaseWake && l.wakeNext < len(l.conns) {
		for sent := 0; l.wakeNext < len(l.conns) && sent < wakeBatch; l.wakeNext++ {
			if c := &l.conns[l.wakeNext]; c.state == stOpen {
				l.send(c, 1, l.r.now()) // its own time: the batch's writes take a while
				l.flush(c)
				sent++
			}
		}
		if l.wakeNext < len(l.conns) {
			soon(now)
		}
	}
	if now >= l.nextScan {
		l.scan(now)
		l.nextScan = now + scanEvery
	}
	l.deadline = min(dl, l.nextScan)
}

// enqueue puts c in the queue of slots waiting for a token (or, under
// Churn, for their dial), once.
func (l *loop) enqueue(c *conn) {
	if c.queued {
		return
	}
	c.queued = true
	l.queue[(l.qhead+l.qlen)%len(l.queue)] = c.idx
	l.qlen++
}

// dequeue serves the queue: a message each (Churn: a dial), as tokens
// allow. Slots queued meanwhile wait for the next call.
func (l *loop) dequeue(now int64) {
	tokens := int64(l.qlen)
	if l.rated {
		tokens = min(tokens, l.pace.allow(now))
	}
	for ; tokens > 0 && l.qlen > 0; tokens-- {
		c := &l.conns[l.queue[l.qhead]]
		l.qhead = (l.qhead + 1) % len(l.queue)
		l.qlen--
		c.queued = false
		switch {
		case l.r.cfg.Scenario == Churn:
			if c.state != stIdle || l.phase > phaseMeasure {
				continue
			}
			l.dial(c, now)
		case c.state == stOpen && c.owed > 0 && l.phase <= phaseMeasure:
			c.owed--
			l.send(c, 1, now)
			if c.owed > 0 {
				l.enqueue(c)
			}
			l.flush(c)
		default:
			continue
		}
		if l.rated {
			l.pace.take(1)
		}
	}
}

// publish queues one stamped message on the publisher.
func (l *loop) publish(now int64) {
	off := len(l.pubq)
	l.pubq = append(l.pubq, l.pubFrame...)
	putStamp(l.pubq[off+len(l.pubFrame)-l.r.cfg.Size:], now, l.r.key)
	l.tot.published++
	l.tot.sent++
}

// scan fails connections that took too long, and queues Churn's slots that
// failed for another dial.
func (l *loop) scan(now int64) {
	limit := int64(l.r.cfg.DialTimeout)
	churn := l.r.cfg.Scenario == Churn
	for i := range l.conns {
		c := &l.conns[i]
		switch c.state {
		case stConnecting, stUpgrading:
			if now-c.started > limit {
				l.fail(c, errTimeout, func() string { return fmt.Sprintf("no upgrade within %v", l.r.cfg.DialTimeout) })
			}
		case stOpen, stClosing:
			if churn && now-c.started > limit {
				l.fail(c, errTimeout, func() string { return fmt.Sprintf("cycle not done within %v", l.r.cfg.DialTimeout) })
			}
		case stIdle:
			if c.retry && l.phase <= phaseMeasure {
				c.retry = false
				l.enqueue(c)
			}
		}
	}
}

// wait returns the number of events in l.events, parking until one comes
// or l.deadline when there is nothing to do before.
func (l *loop) wait(now int64) int {
	if l.deadline <= now {
		n, _ := unix.EpollWait(l.epfd, l.events, 0)
		return max(n, 0)
	}
	if l.deadline != l.parkDL {
		l.parkDL = l.deadline
		l.file.SetReadDeadline(l.r.base.Add(time.Duration(l.deadline)))
	}
	l.waitN = 0
	l.raw.Read(l.waitFn)
	return max(l.waitN, 0)
}

// poll takes events without blocking, for the runtime's poller: false parks
// the loop until the epoll descriptor is readable or the deadline passes.
func (l *loop) poll(fd uintptr) bool {
	n, err := unix.EpollWait(int(fd), l.events, 0)
	l.waitN = n
	return n != 0 || (err != nil && err != unix.EINTR)
}

// report publishes the loop's counts for the coordinator.
func (l *loop) report() {
	p := &l.prog
	p.open.Store(int64(l.open))
	p.settled.Store(int64(l.settled))
	p.errors.Store(l.errs.total())
	p.published.Store(l.tot.published)
	if l.pub != nil {
		p.pubOpen.Store(l.pub.state == stOpen)
	}
	if l.r.cfg.Scenario == Churn {
		p.count.Store(l.tot.hs)
	} else {
		p.count.Store(l.tot.recv)
	}
	quiet := false
	switch l.phase {
	case phaseWake:
		quiet = l.wakeNext == len(l.conns) && l.inflight == 0
	case phaseDrain, phaseDone:
		quiet = l.inflight == 0 && l.dialing == 0 && (l.r.cfg.Scenario != Churn || l.open == 0) &&
			(l.pub == nil || l.pubOff == len(l.pubq))
	}
	if quiet {
		p.quiet.Store(int32(l.phase))
	}
}

// closeAll ends every connection, with a close frame where one can go.
func (l *loop) closeAll() {
	for i := range l.conns {
		c := &l.conns[i]
		if c.fd < 0 {
			continue
		}
		if c.state == stOpen && c.woff == 0 && c.ctlOff == 0 && (c.role != rolePublisher || l.pubOff == 0) && !l.r.raw {
			if c.tls != nil {
				l.closeTLS(c)
			} else {
				unix.Write(c.fd, l.r.closeFrame)
			}
		}
		l.drop(c)
		c.state = stDead
	}
}
