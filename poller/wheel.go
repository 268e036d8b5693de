package poller

import (
	"math/bits"
	"time"
)

// wheel is a hashed timer wheel: one slot per tick, timers with a deadline
// further than a turn away wait in their slot for later turns. Each timer
// lives in the object it serves (no allocation per timer); arming, moving
// and stopping are O(1).
type wheel struct {
	tick  int64 // nanoseconds per slot
	slots []*timer
	occ   []uint64 // a bit per slot holding timers, so that next skips empty ones
	now   int64    // the tick processed last
	count int
}

// timer is an entry of a wheel.
type timer struct {
	when       int64 // deadline, Unix nanoseconds; 0 when not armed
	slot       int
	c          *Conn
	prev, next *timer
}

// newWheel returns a wheel of slots slots.
func newWheel(tick time.Duration, slots int) *wheel {
	return &wheel{tick: int64(tick), slots: make([]*timer, slots), occ: make([]uint64, (slots+63)/64)}
}

func (w *wheel) start(now int64) { w.now = now / w.tick }

// set arms t for when (Unix nanoseconds), or stops it when when is 0.
func (w *wheel) set(t *timer, when int64) {
	if t.when != 0 {
		w.remove(t)
	}
	if when == 0 {
		return
	}
	t.when = when
	tk := (when + w.tick - 1) / w.tick // the first tick not before when
	if tk <= w.now {
		tk = w.now + 1 // due: fires at the next advance
	}
	t.slot = int(tk % int64(len(w.slots)))
	t.next = w.slots[t.slot]
	if t.next != nil {
		t.next.prev = t
	}
	w.slots[t.slot] = t
	w.occ[t.slot/64] |= 1 << (t.slot % 64)
	w.count++
}

func (w *wheel) remove(t *timer) {
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		w.slots[t.slot] = t.next
		if t.next == nil {
			w.occ[t.slot/64] &^= 1 << (t.slot % 64)
		}
	}
	if t.next != nil {
		t.next.prev = t.prev
	}
	t.prev, t.next, t.when = nil, nil, 0
	w.count--
}

// advance calls fire for every timer due at now (Unix nanoseconds), after
// removing it from the wheel; fire may arm timers again.
func (w *wheel) advance(now int64, fire func(*timer)) {
	end := now / w.tick
	if end-w.now > int64(len(w.slots)) {
		w.now = end - int64(len(w.slots)) // a full turn visits every slot
	}
	for w.now < end {
		w.now++
		slot := int(w.now % int64(len(w.slots)))
		for t := w.slots[slot]; t != nil; {
			next := t.next
			if t.when <= now {
				w.remove(t)
				fire(t)
			}
			t = next
		}
	}
}

// next returns the start of the first tick holding a timer, or 0 when the
// wheel is empty. It looks one turn ahead at most.
func (w *wheel) next() int64 {
	if w.count == 0 {
		return 0
	}
	n := len(w.slots)
	start := int((w.now + 1) % int64(n))
	for i := 0; i <= len(w.occ); i++ {
		word := (start/64 + i) % len(w.occ)
		bitsLeft := w.occ[word]
		if i == 0 {
			bitsLeft &= ^uint64(0) << (start % 64) // slots from start on
		} else if i == len(w.occ) {
			bitsLeft &= 1<<(start%64) - 1 // the slots before start, after a full turn
		}
		if bitsLeft != 0 {
			slot := word*64 + bits.TrailingZeros64(bitsLeft)
			ahead := (slot - start + n) % n
			return (w.now + 1 + int64(ahead)) * w.tick
		}
	}
	return 0
}
