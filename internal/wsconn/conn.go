// Package wsconn drives a codec.Protocol over a net.Conn: one goroutine
// reads, any goroutine writes. Default and raw sessions are built on it.
//
// Writes are combined: a sender appends its frame to the pending output and,
// if no other sender is writing, writes everything pending itself; senders
// that arrive while a write is in progress only append, so a burst of sends
// from many goroutines leaves in few system calls and never interleaves.
package wsconn

import (
	"context"
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
	ErrClosed       = errors.New("wskit: connection closed")
	ErrQueueFull    = errors.New("wskit: outgoing queue full")
	ErrQueueTimeout = errors.New("wskit: outgoing queue stayed full past the timeout")
	ErrWriteTimeout = errors.New("wskit: write did not complete within the timeout")
	// ErrInterrupted is returned by Next after Interrupt (see NextContext).
	ErrInterrupted = errors.New("wskit: read interrupted")
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
	readGen  uint64        // counts NextContext calls, so that a late Interrupt misses the next one
	intr     bool          // Interrupt was called: Next returns ErrInterrupted
	werr     error         // first write error: the connection is dead for writing
	encErr   error         // an extension panicked encoding: the close (1011) it caused
	closed   bool          // the net.Conn is closed
	released bool
	cutter   *cutter // the write in progress belongs to a WriteMessageContext
	cutErr   error   // its context ended: the write deadline was set in the past

	// A message being sent in fragments (BeginStream): other data waits.
	streaming  bool
	streamDone chan struct{} // closed when it ends
}

// cutter lets a WriteMessageContext cut its write when its context ends.
type cutter struct {
	c   *Conn
	ctx context.Context
}

// cut makes the write in progress fail at once, if it is still the one
// the cutter was made for.
func (w *cutter) cut() {
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cutter != w || !c.flushing {
		return
	}
	c.cutErr = w.ctx.Err()
	c.nc.SetWriteDeadline(time.Unix(1, 0))
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
type vectors struct {
	v    [][]byte
	head [frame.MaxHeaderSize]byte // a frame header written ahead of a payload
}

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

// Holding reports whether a message is being streamed (BeginStream), so
// that no other data may be queued until it ends. c is locked.
func (c *Conn) Holding() bool { return c.streaming }

// WaitHolding waits until no message is being streamed, or done is closed
// (it then returns an error). c is locked on entry and on return.
func (c *Conn) WaitHolding(done <-chan struct{}) error { return c.waitStream(done) }

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
	if c.refill && c.source != nil && !c.streaming {
		c.refill = false
		c.source.Fill()
	}
}

// New wraps nc, whose first bytes (read past a handshake) are buffered.
func New(nc net.Conn, buffered []byte, cfg Config) *Conn {
	if cfg.ReadBufferSize <= 0 {
		cfg.ReadBufferSize = 4096
	}
	c := &Conn{nc: nc, cfg: cfg, proto: new(codec.Protocol)}
	c.proto.InitShared(&c.cfg.Codec, cfg.Codec.Extensions)
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
	if _, ok := c.nc.(GracefulCloser); ok {
		return
	}
	d := lingerTime
	if t := c.cfg.Codec.Timeout; t > 0 && t < d {
		d = t
	}
	c.mu.Lock()
	for c.flushing && c.werr == nil {
		if c.waitDrained(nil) != nil {
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

// A GracefulCloser is a connection whose Close cannot lose what was
// written before it, however much input is left unread, so that linger
// has nothing to protect: an HTTP/2 stream, which ends with END_STREAM
// after the last DATA frame (a RST_STREAM that may follow, for the
// unread request, drops only what the peer is still sending). Such a
// stream cannot end its output alone, as a TCP connection's CloseWrite
// does; lingering there would wait for the peer to end its side first,
// while a peer that follows RFC 6455 §7.1.1 waits for the server to close
// first.
type GracefulCloser interface {
	net.Conn
	ClosesGracefully()
}

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

// NextContext is Next that gives up when ctx ends, returning ctx's error:
// what was read stays in the protocol's state, and the next call goes on
// from there. A context that cannot end costs nothing more than Next.
func (c *Conn) NextContext(ctx context.Context) (codec.Event, error) {
	if ctx.Done() == nil {
		return c.Next()
	}
	if err := ctx.Err(); err != nil {
		return codec.Event{}, err
	}
	c.mu.Lock()
	gen := c.readGen
	c.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.interrupt(gen)
		c.mu.Unlock()
	})
	ev, err := c.Next()
	stop()
	c.mu.Lock()
	c.readGen++
	c.intr = false
	c.mu.Unlock()
	if errors.Is(err, ErrInterrupted) {
		err = ctx.Err()
	}
	return ev, err
}

// Interrupt makes a Next in progress return ErrInterrupted as soon as its
// read does, with what it read kept; if none is in progress, the next one
// returns so before it reads. Safe from any goroutine.
func (c *Conn) Interrupt() {
	c.mu.Lock()
	c.interrupt(c.readGen)
	c.mu.Unlock()
}

// interrupt is Interrupt for the reads of generation gen. c.mu is held.
func (c *Conn) interrupt(gen uint64) {
	if gen != c.readGen {
		return // the read it was for has returned
	}
	c.intr = true
	c.rdl = time.Unix(1, 0)
	c.nc.SetReadDeadline(c.rdl)
}

// armTimers runs the protocol's timers and sets the read deadline to the
// next one.
// It also moves reading to a fresh buffer when the current one is pinned.
func (c *Conn) armTimers() error {
	c.mu.Lock()
	if c.intr {
		c.intr = false
		c.mu.Unlock()
		return ErrInterrupted
	}
	// Input waits while output is backed up, as on the poller's loops, or
	// while a reply waits for a write in progress: a peer that sends faster
	// than it reads is pushed back instead of growing what the connection
	// holds or the work it makes.
	for c.flushing && (c.Queued() >= ReadPause || c.proto.Replies() > 0) && c.werr == nil && !c.closed && !c.released {
		c.waitDrained(nil) // past the write timeout the writer's deadline ends it
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
	if err := c.waitStream(nil); err != nil {
		c.mu.Unlock()
		return err
	}
	if len(p) >= directMin && c.writesDirect() {
		var h [frame.MaxHeaderSize]byte
		if head, ok := c.proto.AppendMessageHead(h[:0], op, rsv, len(p)); ok {
			return c.writeDirect(head, p)
		}
	}
	if err := c.admit(nil, c.proto.MessageSize(len(p))); err != nil {
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

// directMin is the least payload WriteMessage writes from where the caller
// holds it rather than copying it into the output.
const directMin = 2048

// writesDirect reports whether a message may be written from the caller's
// payload: nothing else is being written or waits, and the connection
// writes several buffers in one system call. c is locked.
func (c *Conn) writesDirect() bool {
	if c.flushing || c.werr != nil || c.released || c.closed || c.streaming ||
		(c.refill && c.source != nil) || c.pending() {
		return false
	}
	if c.vw == nil {
		c.vw = newVectorWriter(c.nc)
	}
	_, copies := c.vw.(*buffersWriter)
	return !copies
}

// writeDirect writes a frame's head and its payload p in one writev, p
// from where the caller holds it: the caller waits for the write anyway,
// so copying p into the output would only add work. Output queued by other
// senders meanwhile goes out after it. c is locked on entry, unlocked on
// return.
func (c *Conn) writeDirect(head, p []byte) error {
	c.flushing = true
	c.mu.Unlock()
	vs := vecPool.Get().(*vectors)
	n := copy(vs.head[:], head)
	vs.v = append(vs.v[:0], vs.head[:n], p)
	c.setWriteDeadline()
	_, err := c.vw.Writev(vs.v)
	clear(vs.v)
	vs.v = vs.v[:0]
	vecPool.Put(vs)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = ErrWriteTimeout
	}
	c.mu.Lock()
	if err != nil && c.werr == nil {
		c.werr = err
		c.closed = true
		c.nc.Close() // a failed write leaves a stream that cannot be resumed
	}
	if c.drained != nil {
		close(c.drained) // a round ended, as flushRounds reports each
		c.drained = nil
	}
	return c.flushRounds()
}

// WriteMessageContext is WriteMessage bounded by ctx. A wait for room in
// the queue ends with ctx's error, the message not sent. If ctx ends while
// this call writes, the write is cut, and as part of a frame may have gone
// out the connection is dead: ctx's error becomes its write error. A
// message only queued behind another sender's write is not bounded by ctx.
func (c *Conn) WriteMessageContext(ctx context.Context, op frame.Opcode, rsv byte, p []byte) error {
	done := ctx.Done()
	if done == nil {
		return c.WriteMessage(op, rsv, p)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	err := c.waitStream(done)
	if err == nil {
		err = c.admit(done, c.proto.MessageSize(len(p)))
	}
	if err != nil {
		c.mu.Unlock()
		if err == errDone {
			return ctx.Err()
		}
		return err
	}
	c.fillFirst()
	*c.out, err = c.proto.AppendMessage(*c.out, op, rsv, p)
	if err != nil {
		if c.encodeFailed(err) {
			c.flushLocked()
			return err
		}
		c.mu.Unlock()
		return closedErr(err)
	}
	if c.flushing || c.werr != nil {
		return c.flushLocked() // another sender writes it
	}
	w := &cutter{c: c, ctx: ctx}
	c.cutter = w
	stop := context.AfterFunc(ctx, w.cut)
	err = c.flushLocked()
	stop()
	return err
}

// BeginStream makes c's data output the caller's until EndStream, for a
// message sent in fragments with WriteFragment: other data messages and
// frames wait, Fill is held back, and control frames still go out. It waits
// for another stream to end, or for done (see waitDrained).
func (c *Conn) BeginStream(done <-chan struct{}) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.waitStream(done); err != nil {
		return err
	}
	if c.werr != nil || c.released || c.closed {
		return c.deadErr()
	}
	c.fillFirst()
	c.streaming = true
	c.streamDone = make(chan struct{})
	return nil
}

// EndStream ends what BeginStream began, and writes what was held back.
func (c *Conn) EndStream() error {
	c.mu.Lock()
	c.endStreamLocked()
	return c.flushLocked()
}

func (c *Conn) endStreamLocked() {
	if c.streaming {
		c.streaming = false
		close(c.streamDone)
		c.streamDone = nil
	}
}

// waitStream waits while another sender's stream is open. c.mu is held on
// entry and on return.
func (c *Conn) waitStream(done <-chan struct{}) error {
	for c.streaming {
		if c.werr != nil || c.released || c.closed {
			return c.deadErr()
		}
		ch := c.streamDone
		c.mu.Unlock()
		select {
		case <-ch:
		case <-done:
			c.mu.Lock()
			return errDone
		}
		c.mu.Lock()
	}
	return nil
}

// WriteFragment sends one data frame of the stream BeginStream opened,
// bounded by ctx as WriteMessageContext is.
func (c *Conn) WriteFragment(ctx context.Context, h frame.Header, p []byte) error {
	done := ctx.Done()
	if done != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	c.mu.Lock()
	if err := c.admit(done, frame.MaxHeaderSize+len(p)); err != nil {
		c.mu.Unlock()
		if err == errDone {
			return ctx.Err()
		}
		return err
	}
	var err error
	*c.out, err = c.proto.AppendFrame(*c.out, h, p)
	if err != nil {
		c.mu.Unlock()
		return closedErr(err)
	}
	if done == nil || c.flushing || c.werr != nil {
		return c.flushLocked()
	}
	w := &cutter{c: c, ctx: ctx}
	c.cutter = w
	stop := context.AfterFunc(ctx, w.cut)
	err = c.flushLocked()
	stop()
	return err
}

// SetStreaming is codec.Protocol.SetStreaming, for the messages Next
// returns. Only the goroutine calling Next may call it.
func (c *Conn) SetStreaming(on bool) {
	c.mu.Lock()
	c.proto.SetStreaming(on)
	c.mu.Unlock()
}

// ClearInterrupt drops an Interrupt that no Next has taken.
func (c *Conn) ClearInterrupt() {
	c.mu.Lock()
	c.intr = false
	c.readGen++
	c.mu.Unlock()
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

// SetCompression is codec.Protocol.SetCompression, for the messages sent
// after it returns.
func (c *Conn) SetCompression(on bool) {
	c.mu.Lock()
	c.proto.SetCompression(on)
	c.mu.Unlock()
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
	if h.Op.IsData() {
		if err := c.waitStream(nil); err != nil {
			c.mu.Unlock()
			return err
		}
	}
	if err := c.admit(nil, frame.MaxHeaderSize+len(p)); err != nil {
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
	if err := c.admit(nil, frame.MaxHeaderSize+len(p)); err != nil {
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
		err := c.deadErr()
		c.mu.Unlock()
		return err
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
// applies the policy; a wait for room also ends when done is closed.
// c.mu is held on entry and on return.
func (c *Conn) admit(done <-chan struct{}, n int) error {
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
		if err := c.waitDrained(done); err != nil {
			if m := c.cfg.Meter; m != nil && err == ErrQueueTimeout {
				m.QueueTimeouts.Add(1)
			}
			return err
		}
	}
}

// waitDrained blocks until the writer finishes its round, the write
// timeout passes, or done (which may be nil) is closed, which it reports as
// errDone. c.mu is held on entry and on return.
func (c *Conn) waitDrained(done <-chan struct{}) error {
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
	case <-done:
		c.mu.Lock()
		return errDone
	}
}

// errDone is what waitDrained returns when its done channel is closed.
var errDone = errors.New("wskit: the wait was cancelled")

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
		if c.refill && c.source != nil && !c.streaming && c.segs == nil && (c.out == nil || len(*c.out) == 0) {
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
		if c.cutErr != nil {
			if err != nil {
				err = c.cutErr // the deadline in the past was the cutter's
			} else {
				// The cut came as the write completed: undo it.
				c.nc.SetWriteDeadline(c.wdl)
				c.cutErr, c.cutter = nil, nil
			}
		}
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
	c.cutter = nil
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
		if c.waitDrained(nil) != nil {
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
	c.endStreamLocked()
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
