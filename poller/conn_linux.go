//go:build linux

package poller

import (
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/wskit/wskit/internal/bufpool"
)

// Conn is a connection served by a loop. Output is queued in pooled chunks
// and flushed by the loop, or at once by a writer that is not on the loop.
type Conn struct {
	l  *loop
	fd int
	tm timer

	// Context is for the handler's own state; the poller does not touch it.
	Context any

	q      *outQueue // output, while there is some
	queued int       // bytes not yet written
	more   *connMore // made when first needed
	unread *[]byte   // input handed back by Unread, delivered first on resuming
	*detach

	mu          sync.Mutex
	dispatching atomic.Bool // a handler call on c is running on the loop
	paused      atomic.Bool
	peer        peerAddr

	// Under mu, or on the loop only.
	waitOut   bool // the socket's buffer is full: wait for EPOLLOUT
	dirty     bool // in the loop's flush list
	refill    bool // Refill was called: Fill is owed once the output drains
	posted    bool // a flush task for c is queued on the loop
	closing   bool // close once the output is written
	lingering bool
	closed    bool
	hup       bool // the peer's end or an error was signalled: read to EOF
	outPaused bool // not read while its output drains (see loop.read)
	detached  bool
}

// connMore is what a connection holds only at times: the sealer of a TLS
// connection, and what it keeps for its end once that has begun.
type connMore struct {
	sealer   Sealer // turns output into what goes on the wire, when set
	werr     error  // the write error that ended output
	closeErr error  // what OnClose reports after Close
	linger   time.Duration
}

// moreState returns c's connMore, making it if c has none. c is locked, or
// on the loop.
func (c *Conn) moreState() *connMore {
	if c.more == nil {
		c.more = new(connMore)
	}
	return c.more
}

// sealer returns c's sealer, if it has one.
func (c *Conn) sealer() Sealer {
	if c.more == nil {
		return nil
	}
	return c.more.sealer
}

// werr returns the write error that ended c's output, if any.
func (c *Conn) werr() error {
	if c.more == nil {
		return nil
	}
	return c.more.werr
}

// closeErr returns what OnClose reports after Close.
func (c *Conn) closeErr() error {
	if c.more == nil {
		return nil
	}
	return c.more.closeErr
}

// startClose marks c closing with err as its cause, unless it is already.
func (c *Conn) startClose(err error) {
	if !c.closing {
		c.closing = true
		c.moreState().closeErr = err
	}
}

// detach is the state of a detached connection: readiness signals and
// deadlines.
type detach struct {
	rready, wready chan struct{}
	rdl, wdl       int64
}

// detachPool keeps detach states between a connection's attach and the
// next Detach: each handshake run off the loop would otherwise leave two
// channels behind.
var detachPool = sync.Pool{New: func() any {
	return &detach{rready: make(chan struct{}, 1), wready: make(chan struct{}, 1)}
}}

// putDetach returns d, which nothing signals or waits on any more, to the
// pool.
func putDetach(d *detach) {
	select {
	case <-d.rready:
	default:
	}
	select {
	case <-d.wready:
	default:
	}
	d.rdl, d.wdl = 0, 0
	detachPool.Put(d)
}

// Handler returns the Handler of the connection's engine.
func (c *Conn) Handler() Handler { return c.l.e.h }

// Fd returns the connection's descriptor.
func (c *Conn) Fd() int { return c.fd }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.peer.addr() }

// RemoteAddrString returns RemoteAddr().String() in one allocation, the
// string's.
func (c *Conn) RemoteAddrString() string { return c.peer.String() }

// peerAddr is a peer's address kept inline, without a Sockaddr allocation.
type peerAddr struct {
	ip     [16]byte
	port   uint16
	family uint8 // 4, 6, or 0 for a Unix socket
}

// setRaw decodes what accept4 wrote into rsa.
func (a *peerAddr) setRaw(rsa *unix.RawSockaddrAny) {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		port := (*[2]byte)(unsafe.Pointer(&p.Port))
		a.family, a.port = 4, uint16(port[0])<<8|uint16(port[1])
		copy(a.ip[:], p.Addr[:])
	case unix.AF_INET6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		port := (*[2]byte)(unsafe.Pointer(&p.Port))
		a.family, a.port = 6, uint16(port[0])<<8|uint16(port[1])
		a.ip = p.Addr
	default:
		a.family = 0
	}
}

func (a *peerAddr) addr() net.Addr {
	switch a.family {
	case 4:
		return &net.TCPAddr{IP: net.IPv4(a.ip[0], a.ip[1], a.ip[2], a.ip[3]), Port: int(a.port)}
	case 6:
		return &net.TCPAddr{IP: append(net.IP(nil), a.ip[:]...), Port: int(a.port)}
	}
	return &net.UnixAddr{Net: "unix"}
}

// String is addr().String().
func (a *peerAddr) String() string {
	var ip netip.Addr
	switch a.family {
	case 4:
		ip = netip.AddrFrom4([4]byte(a.ip[:4]))
	case 6:
		ip = netip.AddrFrom16(a.ip).Unmap() // net.IP prints a mapped IPv4 address so
	default:
		return ""
	}
	return netip.AddrPortFrom(ip, a.port).String()
}

// LocalAddr returns the local address.
func (c *Conn) LocalAddr() net.Addr {
	sa, err := unix.Getsockname(c.fd)
	if err != nil {
		return nil
	}
	return sockaddrToAddr(sa)
}

func sockaddrToAddr(sa unix.Sockaddr) net.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: a.Name, Net: "unix"}
	}
	return nil
}

// chunk is a piece of output: a pooled buffer, or bytes shared with other
// connections when r is set, which keep size bytes alive.
type chunk struct {
	b    *[]byte
	r    Releaser
	size int
}

// outQueue is a connection's output, held only while it has some: taken
// from a pool when output is queued, and given back once all of it is
// written or dropped.
type outQueue struct {
	out     []chunk // the first chunk has sent bytes written
	own     []chunk // the queue's own chunk list, while out is a pooled one
	sent    int
	shared  int   // memory kept alive by shared chunks, as CommitShared was told
	sealed  int   // chunks at the front of out already sealed
	stalled int64 // when waitOut began, Unix ns, for Config.WriteTimeout
	first   [2]chunk
}

// outQueues keeps a queue's own chunk list (up to 16 chunks) for its next
// connection: a burst of output then costs no allocation.
var outQueues = bufpool.Pool[outQueue]{Reset: func(q *outQueue) {
	list := q.out[:0]
	*q = outQueue{}
	if cap(list) <= 16 {
		q.out = list
	}
}}

// queue returns c's output queue, taking one if c has none. c is locked.
func (c *Conn) queue() *outQueue {
	if c.q == nil {
		c.q = outQueues.Get()
		if c.q.out == nil {
			c.q.out = c.q.first[:0]
		}
	}
	return c.q
}

// release gives the chunk's bytes back. c is locked.
func (c *Conn) release(k chunk) {
	if k.r != nil {
		c.q.shared -= k.size
		k.r.Release()
	} else {
		bufpool.Put(k.b)
	}
}

// pooledChunks is the length of the chunk lists lent to connections with
// much output waiting, such as a burst of broadcast messages: a queue
// keeps a list of at most 16 chunks of its own.
const pooledChunks = 64

var chunkLists = sync.Pool{New: func() any { return new([pooledChunks]chunk) }}

func (c *Conn) addChunk(k chunk) {
	q := c.queue()
	if n := len(q.out); n == cap(q.out) && n >= 8 && n < pooledChunks && q.own == nil {
		list := chunkLists.Get().(*[pooledChunks]chunk)
		copy(list[:], q.out)
		clear(q.out)
		q.own, q.out = q.out[:0], list[:n]
	}
	q.out = append(q.out, k)
}

// dropQueue gives c's queue back, and a pooled chunk list with it. Its
// list is empty. c is locked.
func (c *Conn) dropQueue() {
	q := c.q
	if q.own != nil && cap(q.out) == pooledChunks {
		list := (*[pooledChunks]chunk)(q.out[:pooledChunks])
		clear(list[:])
		chunkLists.Put(list)
		q.out, q.own = q.own, nil
	}
	c.q = nil
	outQueues.Put(q)
}

// Releaser owns bytes queued with CommitShared.
type Releaser interface {
	// Release is called once per CommitShared, when the connection has
	// written the bytes or dropped them. It may run on any goroutine, with
	// the connection locked.
	Release()
}

// Lock locks c's output; hold it around Buffer and Commit. The loop holds
// it while flushing.
func (c *Conn) Lock() { c.mu.Lock() }

// TryLock locks c's output if it is free, and reports whether it did.
func (c *Conn) TryLock() bool { return c.mu.TryLock() }

// Unlock unlocks c's output.
func (c *Conn) Unlock() { c.mu.Unlock() }

// chunkSize is the least size of an output chunk.
const chunkSize = 4096

// Buffer returns room for at least n bytes at the end of the output: a
// slice of length 0 to append to and hand to Commit. c is locked.
func (c *Conn) Buffer(n int) []byte {
	if q := c.q; q != nil {
		if k := len(q.out); k > q.sealed && q.out[k-1].r == nil {
			last := *q.out[k-1].b
			if cap(last)-len(last) >= n {
				return last[len(last):]
			}
		}
	}
	b := bufpool.Get(max(n, chunkSize))
	c.addChunk(chunk{b: b})
	return (*b)[:0]
}

// Commit queues b, the slice Buffer returned with bytes appended to it;
// an empty b gives the room back. A
// writer on the loop (in a handler call) leaves the write to the end of the
// iteration, which combines it with others; any other writer writes at once
// what the socket takes. c is locked. It returns the write error that ended
// the connection's output, if any.
func (c *Conn) Commit(b []byte) error {
	if c.werr() != nil || c.closed {
		c.dropOutput() // including the chunk Buffer just took
		return c.outErr()
	}
	q := c.q
	if len(b) == 0 {
		// Nothing to send: give back a chunk Buffer took for it.
		if q == nil {
			return nil
		}
		if k := len(q.out); k > 0 && q.out[k-1].r == nil && len(*q.out[k-1].b) == 0 && (k > 1 || q.sent == 0) {
			bufpool.Put(q.out[k-1].b)
			q.out[k-1] = chunk{}
			q.out = q.out[:k-1]
		}
		if len(q.out) == 0 {
			c.dropQueue()
		}
		return nil
	}
	if !q.extend(b) {
		// b outgrew the room Buffer gave (or came from elsewhere): copy it.
		nb := bufpool.Get(len(b))
		*nb = append((*nb)[:0], b...)
		c.addChunk(chunk{b: nb})
	}
	c.queued += len(b)
	c.wrote()
	return nil
}

// extend grows the last chunk over b, when b was appended in the room
// Buffer gave there, and reports whether it did. q may be nil.
func (q *outQueue) extend(b []byte) bool {
	if q == nil || len(q.out) == 0 {
		return false
	}
	last := q.out[len(q.out)-1].b
	end := len(*last)
	if end == cap(*last) || unsafe.SliceData(b) != unsafe.SliceData((*last)[end:cap(*last)]) {
		return false
	}
	*last = (*last)[:end+len(b)]
	return true
}

// CommitShared queues *b, bytes that r owns and that must not change until
// r.Release, which is called once when they have been written or dropped
// (at once if the connection's output has ended: then the error is
// returned). size is the memory they keep alive, such as the message they
// encode, which SharedSize counts until then. It does not write: the next
// Commit does, or the loop after Fill. c is locked.
func (c *Conn) CommitShared(b *[]byte, r Releaser, size int) error {
	if c.werr() != nil || c.closed {
		r.Release()
		return c.outErr()
	}
	if len(*b) == 0 {
		r.Release()
		return nil
	}
	c.addChunk(chunk{b: b, r: r, size: size})
	c.queued += len(*b)
	c.q.shared += size
	return nil
}

// Refill asks for Fill: the loop calls its handler's Fill (see Filler) with
// c locked when c's output has drained, so that a producer can hand over
// queued output only as fast as the peer takes it. c is locked.
func (c *Conn) Refill() {
	c.refill = true
	if c.waitOut || c.dirty || c.posted || c.closed {
		return // the loop comes to c anyway
	}
	c.posted = true
	c.l.post(task{kind: taskFlush, c: c})
}

// wrote flushes output just queued, or leaves it to the loop.
func (c *Conn) wrote() {
	switch {
	case c.waitOut || c.dirty:
	case c.dispatching.Load():
		// The loop flushes after the handler call.
	default:
		var iov [8]unix.Iovec
		s := iov[:0]
		c.flushLocked(&s)
		if c.closing && (c.queued == 0 || c.werr() != nil) {
			c.l.post(task{kind: taskFlush, c: c})
		}
	}
}

func (c *Conn) outErr() error {
	if err := c.werr(); err != nil {
		return err
	}
	return ErrClosed
}

// Write queues a copy of p (see Commit).
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.Commit(append(c.Buffer(len(p)), p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Queued returns the number of output bytes not yet written. c is locked.
func (c *Conn) Queued() int { return c.queued }

// SharedSize returns the memory that shared output queued on c keeps alive:
// the sizes given to CommitShared, until the bytes are released. c is
// locked.
func (c *Conn) SharedSize() int {
	if c.q == nil {
		return 0
	}
	return c.q.shared
}

// flushLocked writes queued output until done or the socket is full.
func (c *Conn) flushLocked(iov *[]unix.Iovec) {
	c.seal()
	for c.queued > 0 && c.werr() == nil && !c.closed {
		v := (*iov)[:0]
		for i, k := range c.q.out {
			if len(v) == cap(v) {
				break
			}
			p := *k.b
			if i == 0 {
				p = p[c.q.sent:]
			}
			if len(p) > 0 {
				v = append(v, unix.Iovec{Base: &p[0]})
				v[len(v)-1].SetLen(len(p))
			}
		}
		*iov = v
		n, err := writev(c.fd, v)
		st := &c.l.stats
		st.writes.Add(1)
		if n > 0 {
			st.writeBytes.Add(uint64(n))
			c.consume(n)
		}
		switch {
		case err == nil:
		case err == unix.EAGAIN:
			st.wAgain.Add(1)
			c.waitOut = true
			if q := c.q; q != nil && q.stalled == 0 && c.l.e.cfg.WriteTimeout > 0 {
				q.stalled = time.Now().UnixNano()
				c.l.watchStall(c)
			}
			if c.l.e.cfg.LevelTriggered && !c.detached {
				c.l.ctl(unix.EPOLL_CTL_MOD, c.fd, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP)
			}
			return
		case err == unix.EINTR:
		default:
			werr := os.NewSyscallError("writev", err)
			c.moreState().werr = werr
			c.dropOutput()
			// The stream cannot be resumed: close, even if reading is
			// paused and would never see the peer's end.
			c.startClose(werr)
			return
		}
	}
}

func writev(fd int, v []unix.Iovec) (int, error) {
	if len(v) == 1 {
		return unix.Write(fd, unsafe.Slice(v[0].Base, v[0].Len))
	}
	n, _, errno := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&v[0])), uintptr(len(v)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// consume drops n written bytes from the front of the output.
func (c *Conn) consume(n int) {
	c.queued -= n
	if c.outPaused && c.queued <= outputResume {
		c.outPaused = false
		c.l.post(task{kind: taskResume, c: c}) // read what waited meanwhile
	}
	q := c.q
	for n > 0 {
		k := q.out[0]
		left := len(*k.b) - q.sent
		if n < left {
			q.sent += n
			return
		}
		n -= left
		q.sent = 0
		c.release(k)
		if q.sealed > 0 {
			q.sealed--
		}
		copy(q.out, q.out[1:])
		q.out[len(q.out)-1] = chunk{}
		q.out = q.out[:len(q.out)-1]
	}
	if c.queued == 0 {
		for i, k := range q.out {
			c.release(k)
			q.out[i] = chunk{}
		}
		q.out = q.out[:0]
	}
	if len(q.out) == 0 {
		c.dropQueue()
	}
}

// dropOutput drops what is queued. c is locked.
func (c *Conn) dropOutput() {
	c.queued = 0
	q := c.q
	if q == nil {
		return
	}
	for _, k := range q.out {
		c.release(k)
	}
	clear(q.out)
	q.out = q.out[:0]
	c.dropQueue()
}

// SetSealer makes s seal c's output from now on: what is queued is
// written as it is. c is locked.
func (c *Conn) SetSealer(s Sealer) {
	if s != nil || c.more != nil {
		c.moreState().sealer = s
	}
	if c.q != nil {
		c.q.sealed = len(c.q.out)
	}
}

// SealOwed writes what the sealer owes the peer of its own, after the
// output queued before. c is locked.
func (c *Conn) SealOwed() {
	if s := c.sealer(); s != nil && s.Owed() {
		c.seal()
		c.wrote()
	}
}

// seal turns the output queued since the last call into its wire form.
// Only sealed output is ever written, so a chunk sealed here has none of
// its bytes written yet. c is locked.
func (c *Conn) seal() {
	sl := c.sealer()
	if sl == nil {
		return
	}
	if q := c.q; q != nil {
		for i := q.sealed; i < len(q.out); i++ {
			k := q.out[i]
			b := bufpool.Get(sl.SealedSize(len(*k.b)))
			*b = sl.Seal((*b)[:0], *k.b)
			c.queued += len(*b) - len(*k.b)
			c.release(k)
			q.out[i] = chunk{b: b}
		}
		q.sealed = len(q.out)
	}
	if sl.Owed() {
		b := bufpool.Get(sl.SealedSize(0))
		*b = sl.Seal((*b)[:0], nil)
		c.addChunk(chunk{b: b})
		c.queued += len(*b)
		c.q.sealed = len(c.q.out)
	}
}

// Close closes c once its queued output is written; OnClose then reports
// ErrClosed. Safe from any goroutine.
func (c *Conn) Close() error { return c.CloseWithError(nil, 0) }

// CloseWithError closes c once its output is written and makes OnClose
// report err. With linger > 0 it first shuts down the writing side and
// reads and drops input until the peer closes, for at most linger: closing a
// socket with unread input resets the connection, and a peer may then lose
// the last bytes written to it.
func (c *Conn) CloseWithError(err error, linger time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.closing {
		return nil
	}
	if err == nil {
		err = ErrClosed
	}
	c.startClose(err)
	c.more.linger = linger
	if c.dispatching.Load() {
		return nil // the loop looks after the handler call
	}
	c.l.post(task{kind: taskFlush, c: c})
	return nil
}

// Abort closes c at once, dropping queued output. Safe from any goroutine.
func (c *Conn) Abort(err error) {
	c.mu.Lock()
	c.dropOutput()
	c.mu.Unlock()
	c.CloseWithError(err, 0)
}

// SetTimer makes the loop call OnTimer at t (at the wheel's resolution,
// never early); a zero t stops the timer. Safe from any goroutine.
func (c *Conn) SetTimer(t time.Time) {
	var when int64
	if !t.IsZero() {
		when = max(t.UnixNano(), 1)
	}
	l := c.l
	l.tmu.Lock()
	if c.tm.when == when {
		l.tmu.Unlock()
		return
	}
	l.wheel.set(&c.tm, when)
	wake := when != 0 && l.parkAt != 0 && (l.parkAt < 0 || when < l.parkAt)
	l.tmu.Unlock()
	if wake {
		l.wake() // parked with a later deadline
	}
}

// PauseRead stops reading c until ResumeRead, to push back on the peer.
func (c *Conn) PauseRead() { c.paused.Store(true) }

// ReadPaused reports whether reading is paused.
func (c *Conn) ReadPaused() bool { return c.paused.Load() }

// Unread hands back in, the part of the bytes given to OnData that the
// handler did not take because it paused reading: the loop keeps a copy and
// gives it to OnData again, before anything read later, once reading
// resumes. Call it from OnData, at most once per call.
func (c *Conn) Unread(in []byte) {
	if len(in) == 0 {
		return
	}
	if c.unread != nil { // not delivered yet: in follows it
		c.unread = bufpool.Grow(c.unread, len(in))
		*c.unread = append(*c.unread, in...)
		return
	}
	b := bufpool.Get(len(in))
	*b = append(*b, in...)
	c.unread = b
}

// ResumeRead reads c again. Safe from any goroutine.
func (c *Conn) ResumeRead() {
	if c.paused.Swap(false) {
		c.l.post(task{kind: taskResume, c: c})
	}
}

// Detach hands c over to a goroutine, as a net.Conn: the loop no longer
// reads c nor calls its handler but OnClose, and readiness wakes that
// goroutine's Read and Write. Call it from a handler call on c; bytes the
// handler already received are the caller's to pass on.
func (c *Conn) Detach() net.Conn {
	c.mu.Lock()
	c.detached = true
	c.detach = detachPool.Get().(*detach)
	c.mu.Unlock()
	if c.l.e.cfg.LevelTriggered {
		c.l.ctl(unix.EPOLL_CTL_MOD, c.fd, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP|unix.EPOLLET)
	}
	c.l.tmu.Lock()
	c.l.wheel.set(&c.tm, 0)
	c.l.tmu.Unlock()
	return (*netConn)(c)
}

// Attach hands nc, a connection Detach gave to a goroutine, back to its
// loop: the loop reads it and calls its handler again. setup runs on the
// loop as a handler call on c (set c.Context there, and pass on the bytes
// the goroutine read past what it used); then the loop reads what came
// meanwhile. If c was closed first, dropped runs instead, on the loop.
// Attach reports false, and calls neither, when nc is not a detached
// connection of this package. The goroutine must not use nc afterwards.
func Attach(nc net.Conn, setup func(c *Conn), dropped func()) bool {
	d, ok := nc.(*netConn)
	if !ok {
		return false
	}
	c := (*Conn)(d)
	c.l.post(task{kind: taskAttach, c: c, setup: setup, fn: dropped})
	return true
}

// netConn is a detached Conn seen as a net.Conn.
type netConn Conn

func (nc *netConn) Read(p []byte) (int, error) {
	c := (*Conn)(nc)
	for {
		c.mu.Lock()
		if c.closed || c.closing {
			c.mu.Unlock()
			return 0, net.ErrClosed
		}
		if c.rdl != 0 && time.Now().UnixNano() >= c.rdl {
			c.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		}
		n, err := readFD(c.fd, p)
		c.mu.Unlock()
		switch {
		case n > 0:
			return n, nil
		case err == nil:
			if len(p) == 0 {
				return 0, nil
			}
			return 0, io.EOF
		case err == unix.EAGAIN:
			<-c.rready
		case err == unix.EINTR:
		default:
			return 0, os.NewSyscallError("read", err)
		}
	}
}

func (nc *netConn) Write(p []byte) (int, error) {
	c := (*Conn)(nc)
	written := 0
	for len(p) > 0 {
		c.mu.Lock()
		if err := nc.writable(); err != nil {
			c.mu.Unlock()
			return written, err
		}
		n, err := unix.Write(c.fd, p)
		c.mu.Unlock()
		if n > 0 {
			written += n
			p = p[n:]
			continue
		}
		if err := nc.await(err, "write"); err != nil {
			return written, err
		}
	}
	return written, nil
}

// writable reports why a write may not go on, if it may not. c is locked.
func (nc *netConn) writable() error {
	c := (*Conn)(nc)
	if c.closed || c.closing {
		return net.ErrClosed
	}
	if c.wdl != 0 && time.Now().UnixNano() >= c.wdl {
		return os.ErrDeadlineExceeded
	}
	return nil
}

// await handles a write that wrote nothing: it waits for room after
// EAGAIN, and returns any other error.
func (nc *netConn) await(err error, op string) error {
	switch err {
	case unix.EAGAIN:
		<-nc.wready
		return nil
	case unix.EINTR:
		return nil
	}
	return os.NewSyscallError(op, err)
}

// Writev writes the buffers of v in order, with one writev per socket's
// worth. It may change v's elements.
func (nc *netConn) Writev(v [][]byte) (int64, error) {
	c := (*Conn)(nc)
	var iov [maxIovecs]unix.Iovec
	var written int64
	for {
		for len(v) > 0 && len(v[0]) == 0 {
			v = v[1:]
		}
		if len(v) == 0 {
			return written, nil
		}
		vec := iov[:0]
		for _, b := range v {
			if len(vec) == len(iov) {
				break
			}
			if len(b) > 0 {
				vec = append(vec, unix.Iovec{Base: &b[0]})
				vec[len(vec)-1].SetLen(len(b))
			}
		}
		c.mu.Lock()
		if err := nc.writable(); err != nil {
			c.mu.Unlock()
			return written, err
		}
		n, err := writev(c.fd, vec)
		c.mu.Unlock()
		if n > 0 {
			written += int64(n)
			for n > 0 {
				k := min(n, len(v[0]))
				v[0] = v[0][k:]
				n -= k
				if len(v[0]) == 0 {
					v = v[1:]
				}
			}
			continue
		}
		if err := nc.await(err, "writev"); err != nil {
			return written, err
		}
	}
}

// Close closes the connection; the loop reports it to OnClose.
func (nc *netConn) Close() error {
	c := (*Conn)(nc)
	c.mu.Lock()
	if c.closed || c.closing {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.startClose(ErrClosed)
	c.mu.Unlock()
	signal(c.rready)
	signal(c.wready)
	c.l.post(task{kind: taskFlush, c: c})
	return nil
}

// SyscallConn returns a RawConn whose Read and Write wait for readiness
// from the loop, for a reader that takes a buffer only once input is
// there. The functions run with the connection locked, so that its
// descriptor stays its own.
func (nc *netConn) SyscallConn() (syscall.RawConn, error) { return (*rawNetConn)(nc), nil }

// rawNetConn is a detached Conn seen as a syscall.RawConn.
type rawNetConn Conn

func (rc *rawNetConn) Control(f func(fd uintptr)) error {
	c := (*Conn)(rc)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.closing {
		return net.ErrClosed
	}
	f(uintptr(c.fd))
	return nil
}

func (rc *rawNetConn) Read(f func(fd uintptr) bool) error {
	c := (*Conn)(rc)
	for {
		c.mu.Lock()
		if c.closed || c.closing {
			c.mu.Unlock()
			return net.ErrClosed
		}
		if c.rdl != 0 && time.Now().UnixNano() >= c.rdl {
			c.mu.Unlock()
			return os.ErrDeadlineExceeded
		}
		done := f(uintptr(c.fd))
		c.mu.Unlock()
		if done {
			return nil
		}
		<-c.rready
	}
}

func (rc *rawNetConn) Write(f func(fd uintptr) bool) error {
	c := (*Conn)(rc)
	nc := (*netConn)(c)
	for {
		c.mu.Lock()
		if err := nc.writable(); err != nil {
			c.mu.Unlock()
			return err
		}
		done := f(uintptr(c.fd))
		c.mu.Unlock()
		if done {
			return nil
		}
		<-c.wready
	}
}

// CloseWrite shuts down the writing side.
func (nc *netConn) CloseWrite() error {
	c := (*Conn)(nc)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.closing {
		return net.ErrClosed
	}
	return unix.Shutdown(c.fd, unix.SHUT_WR)
}

func (nc *netConn) LocalAddr() net.Addr  { return (*Conn)(nc).LocalAddr() }
func (nc *netConn) RemoteAddr() net.Addr { return (*Conn)(nc).RemoteAddr() }

func (nc *netConn) SetDeadline(t time.Time) error {
	nc.setDeadlines(t, true, true)
	return nil
}

func (nc *netConn) SetReadDeadline(t time.Time) error {
	nc.setDeadlines(t, true, false)
	return nil
}

func (nc *netConn) SetWriteDeadline(t time.Time) error {
	nc.setDeadlines(t, false, true)
	return nil
}

// rearm sets the timer for a deadline still ahead of now, after the timer
// fired for the earlier one.
func (nc *netConn) rearm(now int64) {
	c := (*Conn)(nc)
	c.mu.Lock()
	next := int64(0)
	for _, d := range [2]int64{c.rdl, c.wdl} {
		if d > now && (next == 0 || d < next) {
			next = d
		}
	}
	c.mu.Unlock()
	if next != 0 {
		c.SetTimer(time.Unix(0, next))
	}
}

// setDeadlines sets the read and/or write deadline and arms the wheel for
// the earlier of the two; a deadline already past wakes the waiter now.
func (nc *netConn) setDeadlines(t time.Time, r, w bool) {
	c := (*Conn)(nc)
	var d int64
	if !t.IsZero() {
		d = max(t.UnixNano(), 1)
	}
	c.mu.Lock()
	if r {
		c.rdl = d
	}
	if w {
		c.wdl = d
	}
	next := c.rdl
	if c.wdl != 0 && (next == 0 || c.wdl < next) {
		next = c.wdl
	}
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	if d != 0 && d <= time.Now().UnixNano() {
		if r {
			signal(c.rready)
		}
		if w {
			signal(c.wready)
		}
	}
	if next == 0 {
		c.SetTimer(time.Time{})
	} else {
		c.SetTimer(time.Unix(0, next))
	}
}
