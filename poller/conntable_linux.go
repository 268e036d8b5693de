//go:build linux

package poller

import (
	"sync"
	"sync/atomic"
)

// connTable finds a connection by its descriptor, for all the loops of an
// engine: a table per loop, indexed by descriptor, would cost each loop a
// pointer per descriptor of the process. Pages of descriptors are made
// when first needed and kept.
type connTable struct {
	mu  sync.Mutex // makes pages and grows the directory
	dir atomic.Pointer[[]atomic.Pointer[connPage]]
}

const connPageBits = 10

type connPage [1 << connPageBits]atomic.Pointer[Conn]

// get returns the connection of fd, or nil. It may be another loop's,
// when fd was closed and reused.
func (t *connTable) get(fd int) *Conn {
	dir := t.dir.Load()
	if dir == nil || fd>>connPageBits >= len(*dir) {
		return nil
	}
	p := (*dir)[fd>>connPageBits].Load()
	if p == nil {
		return nil
	}
	return p[fd&(1<<connPageBits-1)].Load()
}

// set makes c the connection of fd; nil forgets it.
func (t *connTable) set(fd int, c *Conn) {
	var p *connPage
	if dir := t.dir.Load(); dir != nil && fd>>connPageBits < len(*dir) {
		p = (*dir)[fd>>connPageBits].Load()
	}
	if p == nil {
		if c == nil {
			return
		}
		p = t.page(fd >> connPageBits)
	}
	p[fd&(1<<connPageBits-1)].Store(c)
}

// page returns page i, making it.
func (t *connTable) page(i int) *connPage {
	t.mu.Lock()
	defer t.mu.Unlock()
	dir := t.dir.Load()
	if dir == nil || i >= len(*dir) {
		var old []atomic.Pointer[connPage]
		if dir != nil {
			old = *dir
		}
		grown := make([]atomic.Pointer[connPage], max(i+1, 2*len(old)))
		for j := range old {
			grown[j].Store(old[j].Load())
		}
		t.dir.Store(&grown)
		dir = &grown
	}
	p := (*dir)[i].Load()
	if p == nil {
		p = new(connPage)
		(*dir)[i].Store(p)
	}
	return p
}

// each calls fn on every connection of l.
func (t *connTable) each(l *loop, fn func(c *Conn)) {
	dir := t.dir.Load()
	if dir == nil {
		return
	}
	for i := range *dir {
		p := (*dir)[i].Load()
		if p == nil {
			continue
		}
		for j := range p {
			if c := p[j].Load(); c != nil && c.l == l {
				fn(c)
			}
		}
	}
}
