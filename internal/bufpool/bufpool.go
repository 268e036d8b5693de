// Package bufpool lends byte buffers by size class, so that a connection
// holds a buffer only while it has unfinished input or unflushed output.
//
// Buffers travel as *[]byte: putting a pointer into the underlying
// sync.Pools does not allocate, where putting a slice header would.
package bufpool

import (
	"sync"
	"sync/atomic"

	"github.com/gobwas/pool"
)

// Size classes are powers of two from minSize to maxSize; larger buffers are
// allocated and dropped, as keeping them would pin rare peaks in memory.
const (
	minSize = 256
	maxSize = 4 << 20
)

var buffers = pool.New(minSize, maxSize)

// lent counts buffers given by Get and not yet Put back, so that tests can
// prove every buffer returns.
var lent atomic.Int64

// Lent returns the number of buffers out of the pool.
func Lent() int64 { return lent.Load() }

// Cap returns the capacity of the buffer Get(n) returns.
func Cap(n int) int {
	if n > maxSize {
		return n
	}
	c := minSize
	for c < n {
		c <<= 1
	}
	return c
}

// Get returns an empty buffer with capacity of at least n.
func Get(n int) *[]byte {
	lent.Add(1)
	x, size := buffers.Get(max(n, minSize))
	if p, ok := x.(*[]byte); ok {
		*p = (*p)[:0]
		return p
	}
	b := make([]byte, 0, max(size, n, minSize))
	return &b
}

// Put returns p to the pool. p must not be used afterwards.
func Put(p *[]byte) {
	if p == nil {
		return
	}
	lent.Add(-1)
	buffers.Put(p, cap(*p))
}

// Grow returns a buffer holding the bytes of *p with room for n more,
// reusing p when it is big enough and otherwise moving to a larger pooled
// buffer (p goes back to the pool). p may be nil.
func Grow(p *[]byte, n int) *[]byte {
	if p != nil && cap(*p)-len(*p) >= n {
		return p
	}
	have := 0
	if p != nil {
		have = len(*p)
	}
	q := Get(max(2*have, have+n))
	if p != nil {
		*q = append(*q, *p...)
		Put(p)
	}
	return q
}

// Pool lends values of type T, such as the state of work in progress that
// a connection holds only while it has some. They count in Lent with the
// buffers.
type Pool[T any] struct {
	// Reset, when set, readies a value given back for reuse, in place of
	// zeroing it.
	Reset func(*T)
	p     sync.Pool
}

// Get returns a zero T, or one Reset readied.
func (p *Pool[T]) Get() *T {
	lent.Add(1)
	if x, ok := p.p.Get().(*T); ok {
		return x
	}
	return new(T)
}

// Put zeroes *x (or calls Reset) and returns x to the pool. x must not be
// used afterwards.
func (p *Pool[T]) Put(x *T) {
	lent.Add(-1)
	if p.Reset != nil {
		p.Reset(x)
	} else {
		var zero T
		*x = zero
	}
	p.p.Put(x)
}
