// Package wsconn drives a codec.Protocol over a net.Conn: one goroutine
// reads, any goroutine writes. Default and raw sessions are built on it.
//
// Writes are combined: a sender appends its frame to the pending output and,
// if no other sender is writing, writes everything pending itself; senders
// that arrive while a write is in progress only append, so a burst of sends
// from many goroutines leaves in few system calls and never interleaves.
package wsconn

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/bufpool"
)

// Policy says what a send does when the outgoing queue is full.
type Policy uint8

const (
	// Block waits for the queue to drain, up to Config.WriteTimeout.
	Block Policy = iota
	// CloseTryAgain closes the connection with 1013 Try Again Later.
	CloseTryAgain
	// ClosePolicy closes the connection with 1008 Policy Violation.
	ClosePolicy
)

// ReadPause is the output a connection may have waiting behind a write in
// progress before it stops reading; the poller's loops pause at the same.
const ReadPause = 256 << 10

// Errors of a Conn.
var (
	ErrClosed       = errors.New("websocket: connection closed")
	ErrQueueFull    = errors.New("websocket: outgoing queue full")
	ErrQueueTimeout = errors.New("websocket: outgoing queue stayed full past the timeout")
	ErrWriteTimeout = errors.New("websocket: write did not complete within the timeout")
)

// Config sets up a Conn.
type Config struct {
	Codec          codec.Config
	ReadBufferSize int           // 0 means 4096
	WriteTimeout   time.Duration // bound on one write and on a blocked send; 0 none
	MaxQueue       int           // unflushed output bytes before Policy applies; 0 no bound
	Policy         Policy
	Meter          *Meter // counts queue events, when set
}

// Meter counts the queue events of the Conns that share it, atomically.
type Meter struct {
	// QueueFull counts sends that found MaxQueue bytes waiting: under
	// Block they waited, under the other policies they closed the
	// connection.
	QueueFull atomic.Uint64
	// QueueTimeouts counts sends that waited WriteTimeout for room in vain
	// (ErrQueueTimeout).
	QueueTimeouts atomic.Uint64
}

// Conn is one WebSocket connection over a net.Conn.
type Conn struct {
	nc  net.Conn
	cfg Config

	// Read side: only the goroutine calling Next touches r and w; rbuf and
	// pinned change under rmu, as Unpin reads them (rmu, not mu: a raw read
	// takes its buffer within the connection's own lock).
	rmu    sync.Mutex
	rbuf   *[]byte
	r, w   int
	raw    *rawReader // nil where the connection offers no RawConn
	pinned bool       // rbuf holds a message still in use: read into a new one

	mu       sync.Mutex
	proto    *codec.Protocol
	out      *[]byte   // pending output
	segs     *segments // shared output, placed among out's bytes; nil when none
	segBytes int       // in segs
	shared   int       // memory kept alive by shared output, queued or being written
	spare    *[]byte
	vw       vectorWriter // the writer's, made on its first use
	source   Source
	flushFn  func()
	refill   bool          // Refill was called: source.Fill is owed
	flushing bool          // a sender is writing; others only append
	wdl      time.Time     // write deadline set, touched by the writing sender only
	drained  chan struct{} // closed after a write round, made by a waiting sender
	rdl      time.Time     // read deadline currently set
	werr     error         // first write error: the connection is dead for writing
	encErr   error         // an extension panicked encoding: the close (1011) it caused
	closed   bool          // the net.Conn is closed
	released bool
}

// segment is output shared with other connections (see QueueShared), to be
// written before out[at:]; it keeps size bytes alive.
type segment struct {
	at   int
	b    *[]byte
	r    Releaser
	size int
}

// segments is a list of shared output, lent by segmentPool while output
// waits, so that an idle connection holds none.
type segments struct{ s []segment }

var segmentPool = sync.Pool{New: func() any { return new(segments) }}

// release releases every segment and gives the list back. It returns the
// memory they kept alive.
func (l *segments) release() (size int) {
	for i := range l.s {
		size += l.s[i].size
		l.s[i].r.Release()
		l.s[i] = segment{}
	}
	l.s = l.s[:0]
	segmentPool.Put(l)
	return size
}

// vectors is the writer's list of buffers for one writev.
type vectors struct{ v [][]byte }

var vecPool = sync.Pool{New: func() any { return new(vectors) }}

// vectorWriter writes several buffers in one system call where it can.
type vectorWriter interface {
	Writev(v [][]byte) (int64, error)
}

// buffersWriter is the portable vectorWriter: net.Buffers, which is one
// writev on a TCP connection (allocating a little each time) and one write
// per buffer elsewhere.
type buffersWriter struct {
	nc   net.Conn
	bufs net.Buffers
}

func (w *buffersWriter) Writev(v [][]byte) (int64, error) {
	w.bufs = v
	n, err := w.bufs.WriteTo(w.nc)
	w.bufs = nil
	return n, err
}

// Releaser owns bytes queued with QueueShared: Release is called once, with
// the Conn locked, when they have been written or dropped.
type Releaser interface{ Release() }

// Source hands a Conn output it holds back until the Conn can take it. Fill
// runs with the Conn locked, and queues with QueueShared and AppendMessage.
type Source interface{ Fill() }

// SetSource sets the Source that Refill calls on. Call it before Refill.
func (c *Conn) SetSource(s Source) {
	c.mu.Lock()
	c.source = s
	c.mu.Unlock()
}

// Lock locks the output, for Refill, QueueShared and AppendMessage.
func (c *Conn) Lock() { c.mu.Lock() }

// TryLock locks the output if it is free, and reports whether it did.
func (c *Conn) TryLock() bool { return c.mu.TryLock() }

// Unlock unlocks the output.
func (c *Conn) Unlock() { c.mu.Unlock() }

// Refill makes the Source's Fill run once the output already queued has
// been written, on a goroutine of its own unless a sender is writing. c is
// locked.
func (c *Conn) Refill() {
	c.refill = true
	if c.flushing || c.werr != nil || c.closed || c.released {
		return
	}
	c.flushing = true
	if c.flushFn == nil {
		c.flushFn = c.flushAsync // made once: a go statement on it allocates nothing
	}
	go c.flushFn()
}

func (c *Conn) flushAsync() {
	// The goroutine that asked (a hub's publisher, most often) usually has
	// more for this connection: let it go on first, so that one writev
	// takes it all.
	runtime.Gosched()
	c.mu.Lock()
	c.flushRounds()
}

// QueueShared queues *b, bytes r owns, without copying them; size is the
// memory they keep alive, which SharedSize counts until they are released. It
// does not write: the Fill that called it returns to a writer. c is
// locked.
func (c *Conn) QueueShared(b *[]byte, r Releaser, size int) error {
	if c.werr != nil || c.released || c.closed {
		r.Release()
		return c.deadErr()
	}
	if c.segs == nil {
		c.segs = segmentPool.Get().(*segments)
	}
	c.segs.s = append(c.segs.s, segment{at: len(c.outBuf()), b: b, r: r, size: size})
	c.segBytes += len(*b)
	c.shared += size
	return nil
}

// Queued returns the output bytes waiting for the writer, not counting
// those it is writing. c is locked.
func (c *Conn) Queued() int {
	n := c.segBytes
	if c.out != nil {
		n += len(*c.out)
	}
	return n
}

// SharedSize returns the memory that shared output keeps alive, waiting or
// being written: the sizes given to QueueShared, until the bytes are
// released. c is locked.
func (c *Conn) SharedSize() int { return c.shared }

// AppendMessage queues a data message as WriteMessage does, but with c
// locked and without writing or applying the queue bound: for Fill.
func (c *Conn) AppendMessage(op frame.Opcode, p []byte) error {
	if c.werr != nil || c.released || c.closed {
		return c.deadErr()
	}
	out, err := c.proto.AppendMessage(c.outBuf(), op, 0, p)
	*c.out = out
	if c.encodeFailed(err) {
		return err
	}
	return closedErr(err)
}

// Protocol returns the protocol state, for Fill (c locked).
func (c *Conn) Protocol() *codec.Protocol { return c.proto }

// fillFirst hands over what the Source holds before a message of the
// caller's, so that output keeps the order in which it was given.
func (c *Conn) fillFirst() {
	if c.refill && c.source != nil {
		c.refill = false
		c.source.Fill()
	}
}

// New wraps nc, whose first bytes (read past a handshake) are buffered.
func New(nc net.Conn, buffered []byte, cfg Config) *Conn {
	if cfg.ReadBufferSize <= 0 {
		cfg.ReadBufferSize = 4096
	}
	c := &Conn{nc: nc, cfg: cfg, proto: codec.NewProtocol(cfg.Codec)}
	if len(buffered) > 0 {
		c.rbuf = newReadBuf(max(cfg.ReadBufferSize, len(buffered)))
		c.w = copy(*c.rbuf, buffered)
	}
	c.raw = newRawReader(c)
	return c
}

func newReadBuf(n int) *[]byte {
	b := bufpool.Get(n)
	*b = (*b)[:cap(*b)]
	return b
}

// Pin keeps the payload of the message Next returned last valid while Next
// goes on, until Unpin. Only the goroutine calling Next may call it, and
// only one Pin may be outstanding.
type Pin struct {
	rbuf  *[]byte
	codec [3]*[]byte
}

// Pin takes the buffers of the last message out of reuse.
func (c *Conn) Pin() Pin {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rmu.Lock()
	c.pinned = true
	rbuf := c.rbuf
	c.rmu.Unlock()
	return Pin{rbuf: rbuf, codec: c.proto.DetachMessage()}
}

// Unpin returns a pinned message's buffers; it is safe from any goroutine.
func (c *Conn) Unpin(p Pin) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rmu.Lock()
	if p.rbuf != nil && p.rbuf == c.rbuf {
		c.pinned = false // the reader is still on it
	} else {
		bufpool.Put(p.rbuf)
	}
	c.rmu.Unlock()
	for _, b := range p.codec {
		codec.ReturnBuffer(b)
	}
}

// Extensions returns the negotiated extensions.
func (c *Conn) Extensions() []codec.Negotiated { return c.proto.Extensions() }

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.nc }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// LocalAddr returns the local address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// Next reads until the peer has sent an event and returns it; the payload is
// borrowed until the next call (or, after Pin, until Unpin). Replies the
// protocol owes (pongs, the close echo, the close reporting a violation) are
// written before Next returns. Only one goroutine at a time may call Next
// and nextBuffered.
//
// A protocol violation returns its *frame.ProtocolError after the close frame
// went out; a read error, a timeout of the protocol's timers or the end of
// the close handshake returns an error too. Either way the caller then closes.
func (c *Conn) Next() (codec.Event, error) {
	for {
		if ev, ok, err := c.nextBuffered(); ok || err != nil {
			return ev, err
		}
		c.r, c.w = 0, 0
		if err := c.armTimers(); err != nil {
			return codec.Event{}, err
		}
		// The rest of a frame larger than the read buffer is read straight
		// into the frame's own buffer.
		c.mu.Lock()
		room := c.proto.ReadRoom(c.cfg.ReadBufferSize)
		c.mu.Unlock()
		if room != nil {
			n, err := c.nc.Read(room)
			if n > 0 {
				if ev, _, ok, err := c.receive(room[:n]); ok || err != nil {
					return ev, err
				}
				continue
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return codec.Event{}, c.readError(err)
		}
		n, err := c.read()
		c.w = n
		if err != nil && n == 0 {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue // a timer is due, or a sender changed the state
			}
			return codec.Event{}, c.readError(err)
		}
	}
}

// WaitInput waits for input and reads what has come, running the
// protocol's timers meanwhile, as Next does between frames, and holds no
// read buffer while it waits. A session that waits here rather than in
// Next is parked with a shallow stack, which then stays at its smallest.
// It returns the error that ends reading, as Next would. Only the
// goroutine calling Next may call it.
func (c *Conn) WaitInput() error {
	for c.raw != nil && c.r == c.w {
		if err := c.armTimers(); err != nil {
			return err
		}
		c.r, c.w = 0, 0
		c.dropReadBuf() // as read does, one frame less deep
		n, err := c.raw.read()
		c.w = n
		if err != nil && n == 0 {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue // a timer is due, or a sender changed the state
			}
			return c.readError(err)
		}
	}
	return nil
}

// read reads what has come into the read buffer. Where the connection
// lets it wait for input without a buffer (see rawReader), the buffer is
// taken only once bytes are there: a session waiting for its peer holds
// none.
func (c *Conn) read() (int, error) {
	if c.raw == nil {
		return c.nc.Read(c.takeReadBuf())
	}
	c.dropReadBuf() // nothing in it is in use: c.r == c.w, and not pinned
	return c.raw.read()
}

// takeReadBuf returns the read buffer, taking one if there is none, for a
// read that has found input.
func (c *Conn) takeReadBuf() []byte {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rbuf == nil {
		c.rbuf = newReadBuf(c.cfg.ReadBufferSize)
	}
	return *c.rbuf
}

// dropReadBuf gives back the read buffer of a read that found nothing.
func (c *Conn) dropReadBuf() {
	c.rmu.Lock()
	bufpool.Put(c.rbuf)
	c.rbuf = nil
	c.rmu.Unlock()
}

// nextBuffered is Next without reading: ok is false when the bytes already
// read hold no complete event.
func (c *Conn) nextBuffered() (ev codec.Event, ok bool, err error) {
	for c.r < c.w {
		var n int
		ev, n, ok, err = c.receive((*c.rbuf)[c.r:c.w])
		c.r += n
		if ok || err != nil {
			return ev, ok, err
		}
	}
	return ev, false, nil
}

// receive feeds in to the protocol and writes the replies it owes. It
// returns how much of in was consumed, and the event or the error that ends
// reading (a violation, the end of the close handshake, a write error).
func (c *Conn) receive(in []byte) (ev codec.Event, n int, ok bool, err error) {
	c.mu.Lock()
	ev, n, ok, err = c.proto.Receive(in)
	c.queueReplies()
	if err == nil && c.proto.State() == codec.StateClosed && !ok {
		err = ErrClosed
	}
	werr := c.flushLocked()
	if err != nil {
		c.linger()
		return ev, n, false, err
	}
	if ok {
		return ev, n, true, nil
	}
	return ev, n, false, werr
}

// linger runs after the close frame reporting a violation went out. Closing
// at once while the peer is still sending would reset the connection, and a
// peer that sees the reset before our close frame reports 1006 instead of our
// code; so it ends our side of the stream, and reads and drops input until
// the peer closes too, for at most lingerTime.
func (c *Conn) linger() {
	d := lingerTime
	if t := c.cfg.Codec.Timeout; t > 0 && t < d {
		d = t
	}
	c.mu.Lock()
	for c.flushing && c.werr == nil {
		if c.waitDrained() != nil {
			break
		}
	}
	if c.werr != nil || c.closed || c.flushing {
		c.mu.Unlock()
		return
	}
	c.rmu.Lock()
	if c.pinned || c.rbuf == nil {
		c.rbuf, c.pinned = newReadBuf(c.cfg.ReadBufferSize), false
	}
	c.rmu.Unlock()
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.rdl = time.Now().Add(d)
	c.nc.SetReadDeadline(c.rdl)
	c.mu.Unlock()
	for {
		if _, err := c.nc.Read(*c.rbuf); err != nil {
			return
		}
	}
}

// lingerTime bounds linger.
const lingerTime = 2 * time.Second

// readError maps the end of the input: a finished close handshake is
// ErrClosed, anything else the transport's error.
func (c *Conn) readError(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proto.State() == codec.StateClosed && c.proto.Err() == nil {
		return ErrClosed
	}
	if c.werr != nil {
		return c.werr
	}
	return err
}

// armTimers runs the protocol's timers and sets the read deadline to the
// next one.
// It also moves reading to a fresh buffer when the current one is pinned.
func (c *Conn) armTimers() error {
	c.mu.Lock()
	// Input waits while output is backed up, as on the poller's loops, or
	// while a reply waits for a write in progress: a peer that sends faster
	// than it reads is pushed back instead of growing what the connection
	// holds or the work it makes.
	for c.flushing && (c.Queued() >= ReadPause || c.proto.Replies() > 0) && c.werr == nil && !c.closed && !c.released {
		c.waitDrained() // past the write timeout the writer's deadline ends it
	}
	c.rmu.Lock()
	if c.pinned {
		c.rbuf, c.pinned = nil, false // the holder of the Pin returns it
	}
	c.rmu.Unlock()
	if c.proto.State() == codec.StateClosed {
		c.mu.Unlock()
		return ErrClosed
	}
	d, ok := c.proto.Deadline()
	if ok {
		now := time.Now()
		if !now.Before(d) {
			out, err := c.proto.Tick(now, c.outBuf())
			*c.out = out
			c.queueReplies()
			if werr := c.flushLocked(); err == nil {
				err = werr
			}
			if err != nil {
				return err
			}
			c.mu.Lock()
			d, ok = c.proto.Deadline()
		}
	}
	if !ok {
		d = time.Time{}
	}
	if !d.Equal(c.rdl) {
		c.rdl = d
		c.nc.SetReadDeadline(d)
	}
	c.mu.Unlock()
	return nil
}

// kick wakes the reader so that it recomputes its deadline after a state
// change made by a sender. c.mu is held.
func (c *Conn) kick() {
	if c.cfg.Codec.Timeout > 0 || c.cfg.Codec.PingPeriod > 0 {
		c.rdl = time.Unix(1, 0)
		c.nc.SetReadDeadline(c.rdl)
	}
}

func (c *Conn) outBuf() []byte {
	if c.out == nil {
		c.out = bufpool.Get(512)
	}
	return *c.out
}

// queueReplies moves the replies the protocol owes into the output, unless
// a write is in progress: they then wait in the protocol, where a pong
// replaces the one before it, and the writer takes them on its next round.
// A peer flooding pings at a connection whose writes are stuck so makes it
// hold one pong.
func (c *Conn) queueReplies() {
	if c.flushing || c.proto.Replies() == 0 {
		return
	}
	*c.out = c.proto.AppendReplies(c.outBuf())
}

// WriteMessage sends a data message.
func (c *Conn) WriteMessage(op frame.Opcode, rsv byte, p []byte) error {
	c.mu.Lock()
	if err := c.admit(c.proto.MessageSize(len(p))); err != nil {
		c.mu.Unlock()
		return err
	}
	c.fillFirst()
	var err error
	*c.out, err = c.proto.AppendMessage(*c.out, op, rsv, p)
	if err != nil {
		if c.encodeFailed(err) {
			c.flushLocked()
			return err
		}
		c.mu.Unlock()
		return closedErr(err)
	}
	return c.flushLocked()
}

// encodeFailed closes the connection with 1011 when an extension panicked
// while encoding, and reports whether it did. c.mu is held.
func (c *Conn) encodeFailed(err error) bool {
	var pan *codec.PanicError
	if !errors.As(err, &pan) {
		return false
	}
	if c.encErr == nil {
		c.encErr = err
	}
	if out, cerr := c.proto.AppendClose(*c.out, frame.CloseInternalError, "internal error"); cerr == nil {
		*c.out = out
		c.kick()
	}
	return true
}

// EncodeErr returns the panic of an extension that made the connection
// close with 1011, if one did.
func (c *Conn) EncodeErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.encErr
}

// WriteFrame sends one frame exactly as given (only masking follows the role).
func (c *Conn) WriteFrame(h frame.Header, p []byte) error {
	c.mu.Lock()
	if err := c.admit(frame.MaxHeaderSize + len(p)); err != nil {
		c.mu.Unlock()
		return err
	}
	if h.Op.IsData() || h.Op == frame.OpClose {
		c.fillFirst()
	}
	before := c.proto.State()
	var err error
	*c.out, err = c.proto.AppendFrame(*c.out, h, p)
	if err != nil {
		c.mu.Unlock()
		return closedErr(err)
	}
	if c.proto.State() != before {
		c.kick()
	}
	return c.flushLocked()
}

// WritePing sends a ping.
func (c *Conn) WritePing(p []byte) error {
	c.mu.Lock()
	if err := c.admit(frame.MaxHeaderSize + len(p)); err != nil {
		c.mu.Unlock()
		return err
	}
	var err error
	*c.out, err = c.proto.AppendPing(*c.out, p)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	return c.flushLocked()
}

// WriteClose sends a close frame and starts the close handshake's timer. It
// is not subject to the queue bound.
func (c *Conn) WriteClose(code frame.CloseCode, reason string) error {
	c.mu.Lock()
	if c.werr != nil || c.released || c.closed {
		c.mu.Unlock()
		return c.deadErr()
	}
	c.fillFirst()
	out, err := c.proto.AppendClose(c.outBuf(), code, reason)
	*c.out = out
	if err != nil {
		c.mu.Unlock()
		return err
	}
	c.kick()
	return c.flushLocked()
}

// admit makes room for n more bytes of output under the queue bound, or
// applies the policy. c.mu is held on entry and on return.
func (c *Conn) admit(n int) error {
	counted := false
	for {
		if c.werr != nil || c.released || c.closed {
			return c.deadErr()
		}
		if c.out == nil {
			c.out = bufpool.Get(n)
		}
		queued := len(*c.out)
		if !c.flushing || c.cfg.MaxQueue <= 0 || queued == 0 || queued+n <= c.cfg.MaxQueue {
			if cap(*c.out)-queued < n {
				c.out = bufpool.Grow(c.out, n)
			}
			return nil
		}
		if m := c.cfg.Meter; m != nil && !counted {
			counted = true
			m.QueueFull.Add(1)
		}
		switch c.cfg.Policy {
		case CloseTryAgain, ClosePolicy:
			code := frame.CloseTryAgainLater
			if c.cfg.Policy == ClosePolicy {
				code = frame.ClosePolicyViolation
			}
			if out, err := c.proto.AppendClose(*c.out, code, "outgoing queue full"); err == nil {
				*c.out = out
				c.kick()
			}
			return ErrQueueFull
		}
		if err := c.waitDrained(); err != nil {
			if m := c.cfg.Meter; m != nil {
				m.QueueTimeouts.Add(1)
			}
			return err
		}
	}
}

// waitDrained blocks until the writer finishes its round or the write
// timeout passes. c.mu is held on entry and on return.
func (c *Conn) waitDrained() error {
	if c.drained == nil {
		c.drained = make(chan struct{})
	}
	ch := c.drained
	c.mu.Unlock()
	var expired <-chan time.Time
	if c.cfg.WriteTimeout > 0 {
		t := time.NewTimer(c.cfg.WriteTimeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-ch:
		c.mu.Lock()
		return nil
	case <-expired:
		c.mu.Lock()
		return ErrQueueTimeout
	}
}

// closedErr reports a send after our close frame as ErrClosed.
func closedErr(err error) error {
	if errors.Is(err, codec.ErrCloseSent) {
		return ErrClosed
	}
	return err
}

func (c *Conn) deadErr() error {
	if c.werr != nil {
		return c.werr
	}
	return ErrClosed
}

// flushLocked writes the pending output unless another sender is writing,
// which will write it for us. It is called with c.mu held and releases it.
func (c *Conn) flushLocked() error {
	if c.flushing || !c.pending() || c.werr != nil {
		err := c.werr
		c.mu.Unlock()
		return err
	}
	c.flushing = true
	return c.flushRounds()
}

// pending reports whether there is output to write or Fill to call.
func (c *Conn) pending() bool {
	return (c.out != nil && len(*c.out) > 0) || c.segs != nil || (c.refill && c.source != nil) || c.proto.Replies() > 0
}

// flushRounds writes until nothing is pending; c is locked and flushing
// set, and it unlocks c.
func (c *Conn) flushRounds() error {
	var err error
	for err == nil && !c.released && c.werr == nil && !c.closed {
		if c.proto.Replies() > 0 {
			*c.out = c.proto.AppendReplies(c.outBuf())
		}
		if c.refill && c.source != nil && c.segs == nil && (c.out == nil || len(*c.out) == 0) {
			c.refill = false
			c.source.Fill()
		}
		if (c.out == nil || len(*c.out) == 0) && c.segs == nil {
			break
		}
		c.outBuf()
		buf := c.out
		segs := c.segs
		c.out, c.spare = c.spare, nil
		if c.out != nil {
			*c.out = (*c.out)[:0]
		}
		c.segs, c.segBytes = nil, 0
		c.mu.Unlock()
		if segs == nil {
			err = c.write(*buf)
		} else {
			err = c.writeSegments(*buf, segs.s)
		}
		c.mu.Lock()
		if segs != nil {
			c.shared -= segs.release()
		}
		if cap(*buf) > 64<<10 || c.released {
			bufpool.Put(buf) // a large buffer is not kept for an idle connection
		} else {
			*buf = (*buf)[:0]
			c.spare = buf
		}
		if c.drained != nil {
			close(c.drained)
			c.drained = nil
		}
	}
	c.flushing = false
	if c.released {
		bufpool.Put(c.out)
		c.out = nil
	}
	if err != nil && c.werr == nil {
		c.werr = err
		c.closed = true
		c.nc.Close() // a failed write leaves a stream that cannot be resumed
	}
	if c.released || c.werr != nil || c.closed {
		c.dropSegments()
	}
	err = c.werr
	c.mu.Unlock()
	return err
}

// dropSegments releases shared output that will not be written.
func (c *Conn) dropSegments() {
	if c.segs != nil {
		c.shared -= c.segs.release()
	}
	c.segs, c.segBytes = nil, 0
}

// writeSegments writes b with the shared segments in their places, in one
// writev where the connection has it.
func (c *Conn) writeSegments(b []byte, segs []segment) error {
	vs := vecPool.Get().(*vectors)
	v := vs.v[:0]
	at := 0
	for _, s := range segs {
		if s.at > at {
			v = append(v, b[at:s.at])
			at = s.at
		}
		v = append(v, *s.b)
	}
	if at < len(b) {
		v = append(v, b[at:])
	}
	c.setWriteDeadline()
	if c.vw == nil {
		c.vw = newVectorWriter(c.nc)
	}
	_, err := c.vw.Writev(v)
	clear(v)
	vs.v = v[:0]
	vecPool.Put(vs)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return ErrWriteTimeout
	}
	return err
}

func (c *Conn) setWriteDeadline() {
	if t := c.cfg.WriteTimeout; t > 0 {
		// The deadline moves only once half of it is used up, so a write
		// is cut after between t/2 and t, and most writes set nothing.
		now := time.Now()
		if c.wdl.Sub(now) < t/2 {
			c.wdl = now.Add(t)
			c.nc.SetWriteDeadline(c.wdl)
		}
	}
}

func (c *Conn) write(b []byte) error {
	if t := c.cfg.WriteTimeout; t > 0 {
		// The deadline moves only once half of it is used up, so a write
		// is cut after between t/2 and t, and most writes set nothing.
		now := time.Now()
		if c.wdl.Sub(now) < t/2 {
			c.wdl = now.Add(t)
			c.nc.SetWriteDeadline(c.wdl)
		}
	}
	_, err := c.nc.Write(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return ErrWriteTimeout
	}
	return err
}

// State returns the close-handshake state.
func (c *Conn) State() codec.State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proto.State()
}

// CloseReason reports the close code and reason once a close frame went
// either way, as codec.Protocol.CloseReason does.
func (c *Conn) CloseReason() (frame.CloseCode, string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proto.CloseReason()
}

// WriteErr returns the error that ended writing, if any.
func (c *Conn) WriteErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.werr
}

// Close closes the network connection; a blocked Next returns.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Output being written (such as the echo of the peer's close, queued
	// behind a send) goes out first, within the write timeout.
	for c.flushing && c.werr == nil && !c.closed {
		if c.waitDrained() != nil {
			break
		}
	}
	return c.closeLocked()
}

// Abort closes the network connection at once, dropping unwritten output.
func (c *Conn) Abort() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeLocked()
}

func (c *Conn) closeLocked() error {
	if c.closed {
		return nil
	}
	c.closed = true
	if !c.flushing {
		c.dropSegments()
	}
	return c.nc.Close()
}

// Release returns the buffers to the pool. Call it after Close, once the
// goroutine that called Next has stopped; later writes return ErrClosed.
// It returns the *codec.PanicError of an extension whose Release panicked.
func (c *Conn) Release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		return nil
	}
	c.released = true
	err := c.proto.Release()
	c.rmu.Lock()
	if !c.pinned {
		bufpool.Put(c.rbuf) // else the holder of the Pin returns it
	}
	c.rbuf = nil
	c.rmu.Unlock()
	if !c.flushing {
		bufpool.Put(c.out)
		c.out = nil
		c.dropSegments()
	}
	bufpool.Put(c.spare)
	c.spare = nil
	return err
}
