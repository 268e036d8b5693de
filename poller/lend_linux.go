//go:build linux

package poller

import (
	"unsafe"

	"github.com/wskit/wskit/internal/bufpool"
)

// Output lent from the input. A handler that echoes a large payload it was
// given (or any slice of its input) need not copy it into the output: the
// loop writes it from its read buffer once it is done reading the
// connection, before it reads another into that buffer, and copies only
// what the socket did not take. The bytes of a 16 KiB echo are then copied
// once in user space fewer, and the replies to all the reads of a
// connection in one iteration still leave in one write.

// maxLent bounds the chunks lent while the loop reads a connection (a
// payload and its head take two); past it, output is copied as usual.
const maxLent = 64

// lending is a loop's record of the output lent while it reads a
// connection: the connection, and the slices its lent chunks point to,
// which must stay put while they are queued.
type lending struct {
	to    *Conn // the connection being read, nil between connections
	n     int   // lent chunks queued
	nh    int   // heads held
	bufs  [maxLent][]byte
	heads [maxLent / 2][16]byte // small bytes queued ahead of lent ones
}

// lentChunk marks a chunk lent from the input: releasing it does nothing.
type lentChunk struct{}

func (lentChunk) Release() {}

// lent is the Releaser of every lent chunk.
var lent Releaser = lentChunk{}

// within reports whether p lies inside buf.
func within(p, buf []byte) bool {
	if len(p) == 0 || len(buf) == 0 {
		return false
	}
	s, b := uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	return s >= b && s+uintptr(len(p)) <= b+uintptr(len(buf))
}

// Lendable reports whether CommitInput can queue p: whether p lies in the
// loop's read buffer during an OnData call on c (p must be of that call's
// input), and the output can take it without a copy (it is not sealed, nor
// waiting for the socket). c is locked.
func (c *Conn) Lendable(p []byte) bool {
	l := c.l
	// The range check comes first: only the loop's own handler call can
	// pass it, so the loop's state read after it is the caller's own.
	if !within(p, l.buf) || !c.dispatching.Load() {
		return false
	}
	ld := &l.lend
	return ld.to == c && ld.n+2 <= maxLent && c.sealer() == nil && (c.q == nil || c.q.sealed == 0) &&
		!c.waitOut && c.werr() == nil && !c.closed
}

// CommitInput queues head, copied, then p without a copy: p must be
// Lendable. The loop writes them once done reading c, and copies what the
// socket does not take then. head holds at most 16 bytes, such as
// a frame header. c is locked.
func (c *Conn) CommitInput(head, p []byte) {
	ld := &c.l.lend
	if len(head) > 0 {
		h := ld.heads[ld.nh][:len(head)]
		copy(h, head)
		ld.nh++
		ld.bufs[ld.n] = h
		c.addChunk(chunk{b: &ld.bufs[ld.n], r: lent})
		ld.n++
	}
	ld.bufs[ld.n] = p
	c.addChunk(chunk{b: &ld.bufs[ld.n], r: lent})
	ld.n++
	c.queued += len(head) + len(p)
}

// endLending runs when the loop is done reading c, before it reads
// another connection into its buffer: the lent output is written, and what
// the socket did not take is copied. c is locked.
func (l *loop) endLending(c *Conn) {
	ld := &l.lend
	ld.to = nil
	if ld.n == 0 {
		return
	}
	if c.queued > 0 && !c.waitOut && c.werr() == nil && !c.closed {
		c.flushLocked(&l.iov)
	}
	c.keepLent()
	clear(ld.bufs[:ld.n])
	ld.n, ld.nh = 0, 0
}

// keepLent copies the lent chunks still queued into pooled ones, a run of
// them into one. c is locked.
func (c *Conn) keepLent() {
	q := c.q
	if q == nil {
		return
	}
	out := q.out[:0]
	for i := 0; i < len(q.out); {
		if q.out[i].r != lent {
			out = append(out, q.out[i])
			i++
			continue
		}
		j, n := i, 0
		for ; j < len(q.out) && q.out[j].r == lent; j++ {
			n += len(*q.out[j].b)
		}
		skip := 0
		if i == 0 {
			skip = q.sent // written already
			q.sent = 0
		}
		b := bufpool.Get(n - skip)
		for m := i; m < j; m++ {
			p := *q.out[m].b
			k := min(skip, len(p))
			*b = append(*b, p[k:]...)
			skip -= k
		}
		out = append(out, chunk{b: b})
		i = j
	}
	clear(q.out[len(out):])
	q.out = out
	if len(q.out) == 0 {
		c.dropQueue()
	}
}
