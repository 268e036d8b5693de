package codec

import (
	"encoding/binary"
	"math/bits"
	"sync"
)

// The windowed compressor takes over its context while holding little: the
// last windowHistory bytes it sent, and an index of where in the stream
// short sequences of bytes were last seen. Each message is compressed
// against that history, which the peer's window (32 KiB at 15 bits, or
// whatever the negotiation left, at least 256 bytes) always holds, and
// against itself; everything else (the buffer the message is matched in,
// the tokens, the Huffman codes) is borrowed from a pool for the one
// message. The design is LZ77 with one candidate per position, as in Snappy
// and the fastest levels of zlib and klauspost/compress, followed by the
// shortest of a stored, a fixed-code and a dynamic-code block (RFC 1951).
//
// The index holds 16-bit stream positions and is never checked for being up
// to date: a candidate match is taken only where the bytes match and the
// distance is inside the window, so a stale or wrong entry costs a missed
// match, never a wrong one. That lets a message sent uncompressed or a
// dropped history leave the index as it is.
const (
	windowHistory   = 8 << 10  // bytes of history
	windowTableBits = 11       // the index has 2^11 entries of 2 bytes
	windowBlock     = 32 << 10 // input per DEFLATE block
	windowMaxMatch  = 258
	windowMinMatch  = 4
	windowPad       = 8 // readable bytes past the end of a block's input
)

// windowState is a connection's context: a windowBuf from its first
// compressed message to its end.
type windowState struct {
	buf *windowBuf
	n   int    // the history is buf.hist[:n]
	pos uint16 // the stream position just past the history, modulo 2^16
}

// windowBuf is what a connection holds: 12 KiB, a size class of its own.
type windowBuf struct {
	table [1 << windowTableBits]uint16
	hist  [windowHistory]byte
}

var windowBufs = sync.Pool{New: func() any { return new(windowBuf) }}

// release gives the buffer back; the state is as new.
func (st *windowState) release() {
	if st.buf != nil {
		windowBufs.Put(st.buf)
	}
	*st = windowState{}
}

// windowScratch is what compressing one message borrows.
type windowScratch struct {
	src    []byte // the context before the block, the block, windowPad bytes
	blocks blockWriter
}

var windowScratches = sync.Pool{New: func() any {
	sc := &windowScratch{src: make([]byte, 0, windowMaxDist+windowBlock+windowPad)}
	sc.blocks.tokens = make([]token, 0, windowBlock)
	return sc
}}

// windowMaxDist is DEFLATE's farthest reference.
const windowMaxDist = 32 << 10

// windowRoom is the most compress may append for n bytes: each block is
// stored if nothing is shorter, with 5 bytes of header, and the message
// ends with one more byte.
func windowRoom(n int) int { return n + 5*(n/windowBlock+1) + 2 }

// hash5 hashes the low 5 bytes of u into an index entry: five rather than
// the four a match needs at least, for fewer candidates that share only
// four and end there.
func hash5(u uint64) uint32 { return uint32((u << 24) * 889523592379 >> (64 - windowTableBits)) }

// compress appends p compressed to dst as one permessage-deflate message
// (blocks ending with the sync flush's empty stored block, its 00 00 ff ff
// left out). References reach at most 2^bits bytes back, and into history
// at most as far as it holds. If the result would be longer than p, it
// stops and returns ok false. The history is not updated: commit does that
// once the message is sent compressed.
func (st *windowState) compress(dst []byte, p []byte, bits int) (out []byte, ok bool) {
	sc := windowScratches.Get().(*windowScratch)
	bw := &sc.blocks.bw
	defer func() {
		bw.out = nil // the caller's
		windowScratches.Put(sc)
	}()
	if st.buf == nil {
		st.buf = windowBufs.Get().(*windowBuf)
	}
	maxDist := min(windowMaxDist, 1<<bits)
	hist := st.history(bits)
	bw.out, bw.acc, bw.nbits = dst, 0, 0
	limit := len(dst) + len(p)
	for off := 0; off < len(p); {
		end := min(len(p), off+windowBlock)
		// The block's context: the last maxDist bytes before it, from the
		// history and the message.
		src := sc.src[:0]
		if ctx := maxDist - off; ctx > 0 {
			src = append(src, hist[max(0, len(hist)-ctx):]...)
		}
		src = append(src, p[max(0, off-maxDist):end]...)
		start := len(src) - (end - off)
		src = append(src, make([]byte, windowPad)...)
		// src[start] is stream position st.pos+off.
		base := st.pos + uint16(off) - uint16(start)
		sc.blocks.startBlock()
		st.match(&sc.blocks, src, start, len(src)-windowPad, base, maxDist)
		sc.blocks.writeBlock(p[off:end])
		if len(bw.out) >= limit {
			return bw.out, false
		}
		off = end
	}
	sc.blocks.endMessage()
	return bw.out, len(bw.out) < limit
}

// commit appends p, sent compressed, to the history.
func (st *windowState) commit(p []byte) {
	if st.buf == nil {
		st.buf = windowBufs.Get().(*windowBuf)
	}
	h := &st.buf.hist
	st.pos += uint16(len(p))
	if len(p) >= windowHistory {
		st.n = copy(h[:], p[len(p)-windowHistory:])
		return
	}
	if drop := st.n + len(p) - windowHistory; drop > 0 {
		st.n = copy(h[:], h[drop:st.n])
	}
	st.n += copy(h[st.n:], p)
}

// forget drops the history: the peer's window no longer ends with it.
func (st *windowState) forget() { st.n = 0 }

// match adds the tokens of src[start:end], whose first byte is at stream
// position base+start, to b, finding repeats up to maxDist back, src[:start]
// included. src has windowPad readable bytes past end. It is a greedy
// search with one candidate per position, which skips ahead faster the
// longer it finds nothing.
func (st *windowState) match(b *blockWriter, src []byte, start, end int, base uint16, maxDist int) {
	table := &st.buf.table
	lit := start // the first byte not yet in a token
	i := start
	last := end - windowMinMatch // the last position a match may start at
	skip := 32
	for i <= last {
		cv64 := binary.LittleEndian.Uint64(src[i:])
		cv := uint32(cv64)
		h := hash5(cv64)
		cand := table[h]
		table[h] = base + uint16(i)
		d := int(base + uint16(i) - cand)
		if d == 0 || d > maxDist || d > i || binary.LittleEndian.Uint32(src[i-d:]) != cv {
			i += skip >> 5
			skip++
			continue
		}
		n := windowMinMatch + matchLen(src[i+windowMinMatch:end], src[i-d+windowMinMatch:])
		for i > lit && i > d && src[i-1] == src[i-d-1] {
			i--
			n++
		}
		b.addLiterals(src[lit:i])
		i += n
		for n > windowMaxMatch {
			k := windowMaxMatch
			if n-k < 3 {
				k = n - 3
			}
			b.addMatch(k, d)
			n -= k
		}
		b.addMatch(n, d)
		lit = i
		skip = 32
		// Index the end of the match, where the next one may refer.
		if i-2 >= start && i <= last+2 {
			p := i - 2
			table[hash5(binary.LittleEndian.Uint64(src[p:]))] = base + uint16(p)
		}
	}
	b.addLiterals(src[lit:end])
}

// matchLen returns how many bytes a and b have in common at their start;
// b is at least as long as a.
func matchLen(a, b []byte) int {
	n := 0
	for len(a)-n >= 8 {
		x := binary.LittleEndian.Uint64(a[n:]) ^ binary.LittleEndian.Uint64(b[n:])
		if x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		n += 8
	}
	for n < len(a) && a[n] == b[n] {
		n++
	}
	return n
}

// history returns the end of the history a window of 2^bits bytes holds.
func (st *windowState) history(bits int) []byte {
	if st.buf == nil {
		return nil
	}
	return st.buf.hist[max(0, st.n-1<<bits):st.n]
}
