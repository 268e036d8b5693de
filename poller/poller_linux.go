//go:build linux

package poller

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/cpu"
	"golang.org/x/sys/unix"

	"github.com/wskit/wskit/internal/bufpool"
)

// Supported reports whether this platform has the poller.
const Supported = true

// Engine runs the event loops and the listeners accepted into them.
type Engine struct {
	cfg   Config
	h     Handler
	loops []*loop
	next  atomic.Uint32
	conns atomic.Int64
	table connTable // the open connections, by descriptor

	mu        sync.Mutex
	listeners []*listener
	closed    bool
	done      sync.WaitGroup // loop goroutines
}

// New starts cfg.Loops event loops that report to h. It raises the soft
// limit on open files to the hard limit first.
func New(cfg Config, h Handler) (*Engine, error) {
	cfg.setDefaults()
	if err := RaiseFileLimit(); err != nil {
		cfg.Logger.Warn("poller: cannot raise the open file limit", "err", err)
	}
	e := &Engine{cfg: cfg, h: h}
	for i := 0; i < cfg.Loops; i++ {
		l, err := newLoop(e, i)
		if err != nil {
			for _, l := range e.loops {
				l.release()
			}
			return nil, err
		}
		e.loops = append(e.loops, l)
	}
	for _, l := range e.loops {
		e.done.Add(1)
		go l.run()
	}
	return e, nil
}

// RaiseFileLimit sets the soft limit on open files (RLIMIT_NOFILE) to the
// hard limit.
func RaiseFileLimit() error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= lim.Max {
		return nil
	}
	lim.Cur = lim.Max
	return unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
}

// Conns returns the number of open connections.
func (e *Engine) Conns() int { return int(e.conns.Load()) }

// listener is a listening socket accepted on one loop.
type listener struct {
	fd      int
	l       *loop
	ln      net.Listener
	stopped chan struct{}
	once    sync.Once
	backoff time.Duration
	off     bool // taken out of epoll after an accept error
}

// ErrWriteTimeout ends a connection whose peer did not read for
// Config.WriteTimeout.
var ErrWriteTimeout = errors.New("poller: peer did not read within the write timeout")

// ErrClosed is returned by Serve after Close or StopAccepting, and by
// operations on a closed connection.
var ErrClosed = net.ErrClosed

// CanServe reports whether Serve can take ln's socket: a TCP or Unix
// listener of package net.
func CanServe(ln net.Listener) bool {
	_, ok := ln.(interface{ File() (*os.File, error) })
	return ok
}

// Serve accepts connections from ln into the loops until StopAccepting or
// Close, and returns ErrClosed then. ln must be a *net.TCPListener or
// *net.UnixListener; Serve works on a duplicate of its socket, and closes ln
// when it returns.
func (e *Engine) Serve(ln net.Listener) error {
	fl, ok := ln.(interface{ File() (*os.File, error) })
	if !ok {
		return fmt.Errorf("poller: cannot take the socket of a %T", ln)
	}
	f, err := fl.File()
	if err != nil {
		return err
	}
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		return err
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return err
	}
	ls := &listener{fd: fd, ln: ln, stopped: make(chan struct{})}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		unix.Close(fd)
		return ErrClosed
	}
	ls.l = e.loops[len(e.listeners)%len(e.loops)]
	e.listeners = append(e.listeners, ls)
	e.mu.Unlock()
	ls.l.post(task{kind: taskListen, ls: ls})
	<-ls.stopped
	return ErrClosed
}

// StopAccepting closes the listeners; Serve returns. Open connections stay.
func (e *Engine) StopAccepting() {
	e.mu.Lock()
	lss := e.listeners
	e.listeners = nil
	e.mu.Unlock()
	for _, ls := range lss {
		ls.l.post(task{kind: taskUnlisten, ls: ls})
	}
}

// Close stops accepting, closes every connection (OnClose gets ErrClosed)
// and stops the loops. It returns once they have stopped.
func (e *Engine) Close() error {
	e.StopAccepting()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		e.done.Wait()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	for _, l := range e.loops {
		l.post(task{kind: taskStop})
	}
	e.done.Wait()
	return nil
}

// Each calls fn on every open connection, on its loop (so fn must not
// block), and returns once every loop has done so.
func (e *Engine) Each(fn func(c *Conn)) {
	var wg sync.WaitGroup
	for _, l := range e.loops {
		wg.Add(1)
		l.post(task{kind: taskFunc, fn: func() {
			defer wg.Done()
			l.e.table.each(l, func(c *Conn) {
				if !c.closed {
					fn(c)
				}
			})
		}})
	}
	wg.Wait()
}

// taskKind says what a task asks of a loop.
type taskKind uint8

const (
	taskAdd taskKind = iota + 1
	taskListen
	taskUnlisten
	taskResumeAccept
	taskFlush
	taskResume
	taskFunc
	taskAttach
	taskStop
)

// task is work handed to a loop by another goroutine.
type task struct {
	kind  taskKind
	fd    int
	peer  peerAddr
	c     *Conn
	ls    *listener
	fn    func()      // taskFunc's, or taskAttach's dropped
	setup func(*Conn) // taskAttach's
}

// loop is one event loop: an epoll instance, its connections, a read
// buffer, a timer wheel.
type loop struct {
	e      *Engine
	id     int
	epfd   int
	efd    int // eventfd that wakes the loop
	file   *os.File
	raw    syscall.RawConn
	buf    []byte // maxReads parts of Config.ReadBufferSize (see readInput)
	events []unix.EpollEvent
	lss    []*listener
	n      int // open connections

	tmu   sync.Mutex
	wheel *wheel

	qmu     sync.Mutex
	tasks   []task
	spare   []task
	woken   atomic.Bool
	dirty   []*Conn // output to flush at the end of the iteration
	again   []*Conn // filled the read buffer: read more next iteration
	fired   []*Conn
	stalls  []*Conn // under qmu: connections waiting for EPOLLOUT
	checked []*Conn
	iov     []unix.Iovec
	lend    lending             // output lent from buf in the handler call running
	filler  Filler              // the handler, if it is one
	rsa     unix.RawSockaddrAny // filled by accept4
	waitN   int                 // events found by waitReady
	waitFn  func(uintptr) bool  // waitReady, made once
	parkDL  time.Time           // deadline set on file
	parkAt  int64               // under tmu: when the parked loop wakes; 0 while it runs, -1 never
	stopped bool

	stats loopCounters
}

// loopCounters are what LoopStats reads. The loop writes most of them;
// senders off the loop add their writes. Padding keeps them off the cache
// lines of the loop's other fields.
type loopCounters struct {
	_                                    cpu.CacheLinePad
	conns                                atomic.Int64
	iterations, reads, readBytes, rAgain atomic.Uint64
	writes, writeBytes, wAgain           atomic.Uint64
	_                                    cpu.CacheLinePad
}

// LoopStats returns the counters of each loop, in order (see Conn.Loop).
func (e *Engine) LoopStats() []LoopStats {
	out := make([]LoopStats, len(e.loops))
	for i, l := range e.loops {
		s := &l.stats
		out[i] = LoopStats{
			Conns: s.conns.Load(), Iterations: s.iterations.Load(),
			Reads: s.reads.Load(), ReadBytes: s.readBytes.Load(), ReadEAGAIN: s.rAgain.Load(),
			Writes: s.writes.Load(), WriteBytes: s.writeBytes.Load(), WriteEAGAIN: s.wAgain.Load(),
		}
	}
	return out
}

// Loops returns the number of event loops.
func (e *Engine) Loops() int { return len(e.loops) }

// Loop returns the index of the loop that serves c, from 0 to
// Engine.Loops()-1.
func (c *Conn) Loop() int { return c.l.id }

func newLoop(e *Engine, id int) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	l := &loop{
		e: e, id: id, epfd: epfd, efd: efd,
		buf:    make([]byte, maxReads*e.cfg.ReadBufferSize),
		events: make([]unix.EpollEvent, 256),
		wheel:  newWheel(e.cfg.TimerTick, 1024),
		iov:    make([]unix.Iovec, 0, maxIovecs),
	}
	l.filler, _ = e.h.(Filler)
	l.wheel.start(time.Now().UnixNano())
	l.waitFn = l.waitReady
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(efd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		l.release()
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	if e.cfg.Wait == WaitPark {
		// The runtime's poller watches the epoll descriptor, so that the loop
		// goroutine can park there instead of blocking a thread.
		if err := unix.SetNonblock(epfd, true); err != nil {
			l.release()
			return nil, err
		}
		l.file = os.NewFile(uintptr(epfd), "epoll")
		if l.raw, err = l.file.SyscallConn(); err != nil {
			l.release()
			return nil, err
		}
		if err := l.file.SetReadDeadline(time.Time{}); err != nil {
			l.release()
			return nil, fmt.Errorf("poller: the runtime cannot poll an epoll descriptor: %w", err)
		}
	}
	return l, nil
}

func (l *loop) release() {
	if l.file != nil {
		l.file.Close()
	} else {
		unix.Close(l.epfd)
	}
	unix.Close(l.efd)
}

// post hands t to the loop and wakes it.
func (l *loop) post(t task) {
	l.qmu.Lock()
	l.tasks = append(l.tasks, t)
	l.qmu.Unlock()
	l.wake()
}

func (l *loop) wake() {
	if l.woken.CompareAndSwap(false, true) {
		var one = [8]byte{1}
		unix.Write(l.efd, one[:])
	}
}

// stallCheck is how often a loop with waiting output checks it for the
// write timeout.
const stallCheck = 100 * time.Millisecond

// maxIovecs bounds one writev.
const maxIovecs = 64

// maxReads bounds the reads of one connection per iteration.
const maxReads = 4

func (l *loop) run() {
	defer l.e.done.Done()
	for !l.stopped {
		n := l.wait()
		l.stats.iterations.Add(1)
		for i := 0; i < n; i++ {
			ev := &l.events[i]
			fd := int(ev.Fd)
			if fd == l.efd {
				continue
			}
			if c := l.e.table.get(fd); c != nil && c.l == l {
				l.event(c, ev.Events)
				continue
			}
			for _, ls := range l.lss {
				if ls.fd == fd {
					l.accept(ls)
				}
			}
		}
		l.runTasks()
		if len(l.again) > 0 {
			again := l.again
			l.again = l.again[:0]
			for i, c := range again {
				again[i] = nil
				l.read(c)
			}
		}
		l.runTimers()
		l.flushDirty()
	}
	l.shutdown()
}

// wait returns the number of events in l.events, waiting for some only when
// the loop has nothing else to do.
func (l *loop) wait() int {
	busy := len(l.again) > 0 || l.woken.Load()
	if busy {
		n, _ := unix.EpollWait(l.epfd, l.events, 0)
		return max(n, 0)
	}
	var deadline time.Time
	l.tmu.Lock()
	l.parkAt = -1
	next := l.wheel.next()
	l.qmu.Lock()
	if len(l.stalls) > 0 {
		if soon := time.Now().Add(stallCheck).UnixNano(); next == 0 || soon < next {
			next = soon
		}
	}
	l.qmu.Unlock()
	if next != 0 {
		deadline = time.Unix(0, next)
		l.parkAt = next
	}
	l.tmu.Unlock()
	defer func() {
		l.tmu.Lock()
		l.parkAt = 0
		l.tmu.Unlock()
	}()
	if l.e.cfg.Wait == WaitBlock {
		msec := -1
		if !deadline.IsZero() {
			msec = max(int(time.Until(deadline)/time.Millisecond)+1, 0)
		}
		n, _ := unix.EpollWait(l.epfd, l.events, msec)
		return max(n, 0)
	}
	if !deadline.Equal(l.parkDL) {
		l.parkDL = deadline
		l.file.SetReadDeadline(deadline)
	}
	l.waitN = 0
	l.raw.Read(l.waitFn)
	return max(l.waitN, 0)
}

// stopFuncs runs the function tasks still queued, so that an Each racing
// with Close returns.
func (l *loop) stopFuncs() {
	l.qmu.Lock()
	tasks := l.tasks
	l.tasks = nil
	l.qmu.Unlock()
	for _, t := range tasks {
		switch t.kind {
		case taskFunc:
			t.fn()
		case taskAttach:
			l.attach(t.c, t.setup, t.fn)
		}
	}
}

// waitReady polls the epoll descriptor without blocking, for the runtime's
// poller: false makes it park the loop until the descriptor is readable.
func (l *loop) waitReady(fd uintptr) bool {
	n, err := unix.EpollWait(int(fd), l.events, 0)
	l.waitN = n
	return n != 0 || (err != nil && err != unix.EINTR)
}

func (l *loop) runTasks() {
	if !l.woken.Load() {
		return
	}
	l.woken.Store(false)
	l.qmu.Lock()
	tasks := l.tasks
	l.tasks = l.spare[:0]
	l.qmu.Unlock()
	for i := range tasks {
		t := tasks[i]
		tasks[i] = task{}
		switch t.kind {
		case taskAdd:
			l.add(t.fd, t.peer)
		case taskListen:
			l.listen(t.ls)
		case taskUnlisten:
			l.unlisten(t.ls)
		case taskResumeAccept:
			if t.ls.off && !t.ls.isStopped() {
				t.ls.off = false
				l.ctl(unix.EPOLL_CTL_ADD, t.ls.fd, unix.EPOLLIN)
			}
		case taskFlush:
			t.c.mu.Lock()
			t.c.posted = false
			l.markDirtyLocked(t.c)
			t.c.mu.Unlock()
		case taskResume:
			if t.c.l == l && l.e.table.get(t.c.fd) == t.c {
				l.read(t.c)
			}
		case taskFunc:
			t.fn()
		case taskAttach:
			l.attach(t.c, t.setup, t.fn)
		case taskStop:
			l.stopped = true
			l.stopFuncs()
		}
	}
	l.spare = tasks
}

func (l *loop) ctl(op, fd int, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	return unix.EpollCtl(l.epfd, op, fd, &ev)
}

func (ls *listener) isStopped() bool {
	select {
	case <-ls.stopped:
		return true
	default:
		return false
	}
}

func (l *loop) listen(ls *listener) {
	if ls.isStopped() {
		return
	}
	if err := l.ctl(unix.EPOLL_CTL_ADD, ls.fd, unix.EPOLLIN); err != nil {
		l.e.cfg.Logger.Error("poller: cannot watch the listener", "err", err)
		l.unlisten(ls)
		return
	}
	l.lss = append(l.lss, ls)
}

func (l *loop) unlisten(ls *listener) {
	ls.once.Do(func() {
		for i, x := range l.lss {
			if x == ls {
				l.lss = append(l.lss[:i], l.lss[i+1:]...)
				break
			}
		}
		unix.Close(ls.fd) // also leaves epoll
		ls.ln.Close()
		close(ls.stopped)
	})
}

// accept takes the pending connections of ls and spreads them over the
// loops. When the process is out of descriptors it stops watching ls for a
// while, longer each time, rather than spin on the error.
func (l *loop) accept(ls *listener) {
	for i := 0; i < 128; i++ {
		fd, err := l.accept4(ls.fd)
		switch {
		case err == nil:
		case err == unix.EAGAIN || err == unix.EINTR || err == unix.ECONNABORTED:
			if err == unix.EAGAIN {
				ls.backoff = 0
				return
			}
			continue
		default:
			ls.backoff = min(max(2*ls.backoff, 5*time.Millisecond), time.Second)
			l.e.cfg.Logger.Error("poller: accept failed; pausing accepts", "err", os.NewSyscallError("accept4", err), "pause", ls.backoff)
			ls.off = true
			l.ctl(unix.EPOLL_CTL_DEL, ls.fd, 0)
			time.AfterFunc(ls.backoff, func() { l.post(task{kind: taskResumeAccept, ls: ls}) })
			return
		}
		var peer peerAddr
		peer.setRaw(&l.rsa)
		if peer.family != 0 {
			unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
			l.keepAlive(fd)
		}
		target := l.e.loops[int(l.e.next.Add(1))%len(l.e.loops)]
		if target == l {
			l.add(fd, peer)
		} else {
			target.post(task{kind: taskAdd, fd: fd, peer: peer})
		}
	}
}

// keepAlive sets TCP keep-alive on an accepted socket as Config.KeepAlive
// says.
func (l *loop) keepAlive(fd int) {
	d := l.e.cfg.KeepAlive
	if d < 0 {
		return
	}
	if d == 0 {
		d = defaultKeepAlive
	}
	secs := max(int((d+time.Second-1)/time.Second), 1)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, defaultKeepAliveCount)
}

// accept4 accepts a connection of the listener lfd; the peer's address is
// left in l.rsa (the library's Accept4 allocates for it).
func (l *loop) accept4(lfd int) (int, error) {
	size := uint32(unix.SizeofSockaddrAny)
	fd, _, errno := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(&l.rsa)),
		uintptr(unsafe.Pointer(&size)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// add takes a connected descriptor into the loop.
func (l *loop) add(fd int, peer peerAddr) {
	if l.stopped {
		unix.Close(fd)
		return
	}
	c := &Conn{fd: fd, l: l, peer: peer}
	c.tm.c = c
	events := uint32(unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET)
	if l.e.cfg.LevelTriggered {
		events = unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if err := l.ctl(unix.EPOLL_CTL_ADD, fd, events); err != nil {
		l.e.cfg.Logger.Error("poller: cannot watch a connection", "err", err)
		unix.Close(fd)
		return
	}
	l.e.table.set(fd, c)
	l.n++
	l.e.conns.Add(1)
	l.stats.conns.Add(1)
	c.dispatching.Store(true)
	l.e.h.OnOpen(c)
	l.settle(c)
}

// attach takes a detached connection back (see Attach).
func (l *loop) attach(c *Conn, setup func(*Conn), dropped func()) {
	c.mu.Lock()
	if c.closed || c.closing || !c.detached {
		c.mu.Unlock()
		dropped()
		return
	}
	c.detached = false
	d := c.detach
	c.detach = nil
	c.mu.Unlock()
	putDetach(d)
	l.tmu.Lock()
	l.wheel.set(&c.tm, 0) // the goroutine's deadlines
	l.tmu.Unlock()
	if l.e.cfg.LevelTriggered {
		l.ctl(unix.EPOLL_CTL_MOD, c.fd, unix.EPOLLIN|unix.EPOLLRDHUP)
	}
	c.dispatching.Store(true)
	setup(c)
	l.settle(c)
	l.read(c) // an edge may have passed while detached
}

// event handles the readiness of a connection.
func (l *loop) event(c *Conn, ev uint32) {
	if c.detached {
		if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			signal(c.rready)
		}
		if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			signal(c.wready)
		}
		return
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		c.mu.Lock()
		if c.waitOut {
			c.waitOut = false
			if c.q != nil {
				c.q.stalled = 0
			}
			if l.e.cfg.LevelTriggered {
				l.ctl(unix.EPOLL_CTL_MOD, c.fd, unix.EPOLLIN|unix.EPOLLRDHUP)
			}
			l.markDirtyLocked(c)
		}
		c.mu.Unlock()
	}
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.hup = true // the end may wait behind data: read up to it
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		l.read(c)
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// read reads c into the loop's buffer and hands the bytes to the handler.
// A connection with more than outputPause bytes of output waiting is not
// read until its peer takes most of them: a peer that sends faster than it
// reads is pushed back, as a blocking server would, instead of growing the
// queue. A lingering connection's input is dropped: the handler has closed
// it, and must not see (nor, by setting a timer, prolong) what comes after.
func (l *loop) read(c *Conn) {
	l.readInput(c)
	if l.lend.to == c {
		c.mu.Lock()
		l.endLending(c)
		c.mu.Unlock()
	}
}

// readInput is read before the output lent from the input is written: it
// reads into successive parts of the loop's buffer while the parts before
// hold lent output, so that up to maxReads reads of c leave in one write.
func (l *loop) readInput(c *Conn) {
	if c.closed || c.paused.Load() || c.detached || l.outputFull(c) {
		return
	}
	if c.unread != nil {
		b := c.unread
		c.unread = nil
		if c.lingering {
			bufpool.Put(b)
		} else {
			c.dispatching.Store(true)
			l.e.h.OnData(c, *b)
			bufpool.Put(b)
			if l.settle(c) || c.closed || c.paused.Load() || c.detached {
				return
			}
		}
	}
	size := l.e.cfg.ReadBufferSize
	buf := l.buf[:size]
	for i := 0; i < maxReads; i++ {
		n, err := readFD(c.fd, buf)
		l.stats.reads.Add(1)
		if n > 0 {
			l.stats.readBytes.Add(uint64(n))
			if !c.lingering {
				lent := l.lend.n
				l.lend.to = c // before dispatching: Lendable reads it after
				c.dispatching.Store(true)
				l.e.h.OnData(c, buf[:n])
				if l.settle(c) || c.closed || c.paused.Load() || c.detached {
					return
				}
				if l.lend.n > lent && i+1 < maxReads {
					buf = l.buf[(i+1)*size : (i+2)*size]
				}
			}
			if (n < len(buf) && !c.hup) || l.e.cfg.LevelTriggered {
				return // a short read drained the socket; new data brings a new edge
			}
			continue
		}
		switch {
		case err == unix.EAGAIN:
			l.stats.rAgain.Add(1)
			return
		case err == unix.EINTR:
			i--
			continue
		case err == nil:
			if l.flushBeforeClose(c) {
				return // the output owed goes out first
			}
			err = errEOF
		default:
			err = os.NewSyscallError("read", err)
		}
		if c.lingering {
			err = c.closeErr() // the end the lingering close waited for
		}
		l.closeConn(c, err)
		return
	}
	if !l.e.cfg.LevelTriggered {
		l.again = append(l.again, c) // the buffer filled each time: more may wait
	}
}

// flushBeforeClose turns the peer's end of input into a close after the
// queued output is written: a peer may send its last request and its FIN
// together and still read the reply. It reports false when nothing waits.
func (l *loop) flushBeforeClose(c *Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.queued == 0 || c.lingering || c.werr() != nil {
		return false
	}
	c.startClose(errEOF)
	l.markDirtyLocked(c)
	return true
}

// outputPause is the output a connection may have waiting before the loop
// stops reading it; reading resumes below outputResume.
const (
	outputPause  = 256 << 10
	outputResume = outputPause / 4
)

// outputFull reports whether c's output is over outputPause, and marks it
// to be read again once the output has drained.
func (l *loop) outputFull(c *Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.queued >= outputPause && !l.e.cfg.LevelTriggered {
		c.outPaused = true // level-triggered input would be reported again and again
	}
	return c.outPaused
}

// settle runs after a handler call on c: output the handler queued is
// flushed at the end of the iteration, and a close it asked for happens.
// It reports whether the output is over outputPause (see read).
func (l *loop) settle(c *Conn) bool {
	c.dispatching.Store(false)
	c.mu.Lock()
	if (c.queued > 0 || c.closing) && !c.closed {
		l.markDirtyLocked(c)
	}
	if c.queued >= outputPause && !l.e.cfg.LevelTriggered {
		c.outPaused = true
	}
	full := c.outPaused
	c.mu.Unlock()
	return full
}

func (l *loop) markDirtyLocked(c *Conn) {
	if !c.dirty && !c.closed {
		c.dirty = true
		l.dirty = append(l.dirty, c)
	}
}

// flushDirty writes the output queued during the iteration, one writev per
// connection, and closes the connections that asked to be closed once their
// output is out.
func (l *loop) flushDirty() {
	for i := 0; i < len(l.dirty); i++ {
		c := l.dirty[i]
		l.dirty[i] = nil
		c.mu.Lock()
		c.dirty = false
		if c.closed {
			c.mu.Unlock()
			continue
		}
		if c.queued > 0 && !c.waitOut {
			c.flushLocked(&l.iov)
		}
		if c.refill && c.queued == 0 && !c.waitOut && !c.closing && c.werr() == nil && l.filler != nil {
			c.refill = false
			l.filler.Fill(c)
			if c.queued > 0 {
				c.flushLocked(&l.iov)
			}
		}
		done := c.closing && (c.queued == 0 || c.werr() != nil)
		werr := c.werr()
		c.mu.Unlock()
		if done {
			l.finishClose(c, werr)
		}
	}
	l.dirty = l.dirty[:0]
}

// finishClose ends a connection whose Close was asked for: at once, or
// after shutting down its writing side and draining input for the linger
// time.
func (l *loop) finishClose(c *Conn, werr error) {
	if sl := c.sealer(); werr == nil && sl != nil && !c.lingering {
		c.mu.Lock()
		if end := sl.Close(nil); len(end) > 0 {
			unix.Write(c.fd, end) // best effort: the stream ends anyway
		}
		c.more.sealer = nil
		c.mu.Unlock()
	}
	if werr == nil && c.more.linger > 0 && !c.lingering {
		c.lingering = true
		unix.Shutdown(c.fd, unix.SHUT_WR)
		c.SetTimer(time.Now().Add(c.more.linger))
		l.read(c)
		return
	}
	l.closeConn(c, c.closeErr())
}

// watchStall adds c to the connections whose output waits.
func (l *loop) watchStall(c *Conn) {
	l.qmu.Lock()
	l.stalls = append(l.stalls, c)
	l.qmu.Unlock()
}

// checkStalls closes the connections whose output has waited longer than
// the write timeout.
func (l *loop) checkStalls(now int64) {
	l.qmu.Lock()
	if len(l.stalls) == 0 {
		l.qmu.Unlock()
		return
	}
	l.checked, l.stalls = l.stalls, l.checked[:0]
	l.qmu.Unlock()
	limit := int64(l.e.cfg.WriteTimeout)
	for i, c := range l.checked {
		l.checked[i] = nil
		c.mu.Lock()
		var since int64
		if c.q != nil {
			since = c.q.stalled
		}
		expired := since != 0 && !c.closed && now-since >= limit
		if expired {
			c.moreState().werr = ErrWriteTimeout
			c.dropOutput()
		}
		c.mu.Unlock()
		switch {
		case expired:
			l.closeConn(c, ErrWriteTimeout)
		case since != 0 && !c.closed:
			l.watchStall(c)
		}
	}
}

// runTimers fires the timers that are due.
func (l *loop) runTimers() {
	now := time.Now().UnixNano()
	if now/l.wheel.tick > l.wheel.now {
		l.checkStalls(now)
	}
	l.tmu.Lock()
	if now/l.wheel.tick > l.wheel.now {
		l.wheel.advance(now, func(t *timer) {
			l.fired = append(l.fired, t.c)
		})
	}
	l.tmu.Unlock()
	for i, c := range l.fired {
		l.fired[i] = nil
		if c.closed {
			continue
		}
		switch {
		case c.detached:
			signal(c.rready)
			signal(c.wready)
			(*netConn)(c).rearm(now)
		case c.lingering:
			l.closeConn(c, c.closeErr())
		default:
			c.dispatching.Store(true)
			l.e.h.OnTimer(c)
			l.settle(c)
		}
	}
	l.fired = l.fired[:0]
}

// closeConn closes c's descriptor and reports err to the handler.
func (l *loop) closeConn(c *Conn, err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.dropOutput()
	c.mu.Unlock()
	l.tmu.Lock()
	l.wheel.set(&c.tm, 0)
	l.tmu.Unlock()
	l.e.table.set(c.fd, nil)
	unix.Close(c.fd) // also leaves epoll
	if c.unread != nil {
		bufpool.Put(c.unread)
		c.unread = nil
	}
	l.n--
	l.e.conns.Add(-1)
	l.stats.conns.Add(-1)
	if c.detached {
		signal(c.rready) // the goroutine sees closed
		signal(c.wready)
	}
	l.e.h.OnClose(c, err)
}

// shutdown closes what is left when the loop stops.
func (l *loop) shutdown() {
	for _, ls := range l.lss {
		l.unlisten(ls)
	}
	l.e.table.each(l, func(c *Conn) { l.closeConn(c, ErrClosed) })
	l.release()
}

var errEOF = io.EOF

func readFD(fd int, p []byte) (int, error) {
	n, err := unix.Read(fd, p)
	if n < 0 {
		n = 0
	}
	return n, err
}
