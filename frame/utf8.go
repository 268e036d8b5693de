package frame

import (
	"encoding/binary"
	"math/bits"
)

// UTF8Validator checks UTF-8 fed in pieces (fragments of a text message, chunks of a frame).
// The zero value is ready to use.
type UTF8Validator struct {
	// need counts the continuation bytes still owed by a sequence cut at the
	// end of the last Write; utf8Failed once an error was seen.
	need uint8
	// lo and hi bound the next byte while need > 0.
	lo, hi uint8
}

const utf8Failed = 0xFF

// Complete reports whether everything written so far is valid and ends on a sequence boundary
// (the message may end here).
func (v *UTF8Validator) Complete() bool { return v.need == 0 }

// Reset makes v ready for a new message.
func (v *UTF8Validator) Reset() { *v = UTF8Validator{} }

// ValidUTF8 reports whether p is entirely valid UTF-8 (one shot).
func ValidUTF8(p []byte) bool {
	var v UTF8Validator
	return v.Write(p) && v.need == 0
}

const ascii8 = 0x8080808080808080

// Write validates p as the continuation of everything written since the last Reset.
// It returns false as soon as the bytes seen so far cannot be the start of valid UTF-8
// (fail fast): an impossible byte or prefix is reported at once, even inside a sequence
// that is cut at the end of p; a truncated sequence that can still be completed is not yet an error.
// After false the validator stays failed until Reset.
func (v *UTF8Validator) Write(p []byte) bool {
	if v.need != 0 {
		if p = v.resume(p); v.need != 0 {
			return v.need != utf8Failed
		}
	}
	// The word loops below slice q forward, never to empty (note the strict
	// comparisons), which keeps them free of bounds checks, and stop with at
	// most 8 bytes left. Those bytes, a sequence the word checks reject (an
	// error, or a sequence cut by the end of p) and input under 16 bytes
	// that does not start with 8 ASCII bytes go to the exact byte loop.
	q := p[:len(p):len(p)]
	if len(q) >= 16 || len(q) >= 8 && binary.LittleEndian.Uint64(q)&ascii8 == 0 {
		// Leading ASCII (all of most messages) goes 64 bytes a step; ASCII
		// after other text goes 32 bytes a step, which measured better there.
		for len(q) > 64 {
			if (binary.LittleEndian.Uint64(q)|binary.LittleEndian.Uint64(q[8:])|
				binary.LittleEndian.Uint64(q[16:])|binary.LittleEndian.Uint64(q[24:])|
				binary.LittleEndian.Uint64(q[32:])|binary.LittleEndian.Uint64(q[40:])|
				binary.LittleEndian.Uint64(q[48:])|binary.LittleEndian.Uint64(q[56:]))&ascii8 != 0 {
				break
			}
			q = q[64:]
		}
	ascii:
		for len(q) > 32 {
			if (binary.LittleEndian.Uint64(q)|binary.LittleEndian.Uint64(q[8:])|
				binary.LittleEndian.Uint64(q[16:])|binary.LittleEndian.Uint64(q[24:]))&ascii8 != 0 {
				break
			}
			q = q[32:]
		}
		for len(q) > 8 {
			w := binary.LittleEndian.Uint64(q)
			switch {
			case w&0x80 == 0:
				m := w & ascii8
				if m == 0 {
					q = q[8:]
					goto ascii
				}
				if m&0x8000 != 0 {
					// One ASCII byte (a space between words, a letter
					// between accented ones): a constant step is quicker.
					q = q[1:]
					continue
				}
				q = q[bits.TrailingZeros64(m)>>3:]
			case w&0xF0 == 0xE0:
				// Three bytes. Once the shape is right, only E0 and ED can go
				// wrong, and only through bit 5 of the second byte: index a mask
				// by the lead's low nibble and that bit. Runs (CJK) go two at a time.
				const bad = uint32(1 | 1<<0x1D)
				if w&0xC0C0F0C0C0F0 == 0x8080E08080E0 &&
					(bad>>(w&0x0F|w>>9&0x10)|bad>>(w>>24&0x0F|w>>33&0x10))&1 == 0 {
					q = q[6:]
					continue
				}
				if w&0xC0C0F0 != 0x8080E0 || bad>>(w&0x0F|w>>9&0x10)&1 != 0 {
					goto slow
				}
				q = q[3:]
			case w&0xE0 == 0xC0:
				// Two bytes; C0 and C1 only start overlongs. Runs go two at a time.
				if w&0xC0E0C0E0 == 0x80C080C0 && w&0x1E != 0 && w&0x1E0000 != 0 {
					q = q[4:]
					continue
				}
				if w&0xC000 != 0x8000 || w&0x1E == 0 {
					goto slow
				}
				q = q[2:]
			default:
				// Four bytes: F0..F4, code point at least U+10000 and at most U+10FFFF.
				if w&0xC0C0C0F8 != 0x808080F0 || uint32(w&7<<6|w>>8&0x3F)-0x10 >= 0x100 {
					goto slow
				}
				q = q[4:]
			}
		}
		// At most 8 bytes are left: if the last 8 of p are ASCII, so are they.
		if len(q) == 0 || binary.LittleEndian.Uint64(p[len(p)-8:])&ascii8 == 0 {
			return true
		}
	}

slow:
	i := 0
	for i < len(q) {
		c := q[i]
		if c < 0x80 {
			i++
			continue
		}
		l := leads[c]
		r := q[i:]
		switch l.n {
		case 2:
			if len(r) < 2 {
				goto cut
			}
			if r[1]&0xC0 != 0x80 {
				return v.fail()
			}
			i += 2
		case 3:
			if len(r) < 3 {
				goto cut
			}
			if r[1] < l.lo || r[1] > l.hi || r[2]&0xC0 != 0x80 {
				return v.fail()
			}
			i += 3
		case 4:
			if len(r) < 4 {
				goto cut
			}
			if r[1] < l.lo || r[1] > l.hi || r[2]&0xC0 != 0x80 || r[3]&0xC0 != 0x80 {
				return v.fail()
			}
			i += 4
		default:
			return v.fail()
		}
	}
	return true

cut:
	// q[i:] is a sequence cut short by the end of p: check what is there
	// and record what must follow.
	q = q[i:]
	l := leads[q[0]]
	if len(q) > 1 && (q[1] < l.lo || q[1] > l.hi) || len(q) > 2 && q[2]&0xC0 != 0x80 {
		return v.fail()
	}
	v.need = l.n - uint8(len(q))
	v.lo, v.hi = 0x80, 0xBF
	if len(q) == 1 {
		v.lo, v.hi = l.lo, l.hi
	}
	return true
}

// fail records an error; it stays until Reset.
func (v *UTF8Validator) fail() bool {
	v.need = utf8Failed
	return false
}

// resume feeds the bytes owed by a pending sequence from the front of p and
// returns the rest.
func (v *UTF8Validator) resume(p []byte) []byte {
	if v.need == utf8Failed {
		return nil
	}
	for i, c := range p {
		if c < v.lo || c > v.hi {
			v.need = utf8Failed
			return nil
		}
		v.lo, v.hi = 0x80, 0xBF
		v.need--
		if v.need == 0 {
			return p[i+1:]
		}
	}
	return nil
}

// leadInfo describes sequences starting with a given byte: their length
// (0 if the byte cannot start one) and the range allowed for the second byte.
type leadInfo struct{ n, lo, hi uint8 }

var leads = func() (t [256]leadInfo) {
	for b := range t {
		switch {
		case b < 0x80:
			t[b] = leadInfo{1, 0, 0}
		case b < 0xC2: // continuation bytes; C0 and C1 only start overlongs
		case b < 0xE0:
			t[b] = leadInfo{2, 0x80, 0xBF}
		case b < 0xF0:
			t[b] = leadInfo{3, 0x80, 0xBF}
		case b < 0xF5:
			t[b] = leadInfo{4, 0x80, 0xBF}
		}
	}
	t[0xE0].lo = 0xA0 // overlong below U+0800
	t[0xED].hi = 0x9F // surrogates
	t[0xF0].lo = 0x90 // overlong below U+10000
	t[0xF4].hi = 0x8F // above U+10FFFF
	return t
}()
