package codec

import (
	"encoding/binary"
	"math/bits"
	"slices"
)

// This file writes DEFLATE blocks (RFC 1951 §3.2) from the tokens the
// windowed compressor (windowdeflate.go) finds: each block is stored, or
// coded with the fixed Huffman codes, or with codes built for the block,
// whichever is shortest.

// DEFLATE's alphabets (RFC 1951 §3.2.5).
const (
	numLitLen   = 286 // literals 0–255, end of block 256, lengths 257–285
	numDist     = 30
	numCodeLen  = 19 // the alphabet of code lengths
	endOfBlock  = 256
	maxLitBits  = 15 // longest literal/length and distance code
	maxCodeBits = 7  // longest code-length code
	maxStored   = 65535
)

// A token is a literal byte (below tokenMatch) or a match, held as the
// codes and extra bits it is written with: the length's code (index from
// 257) in bits 23–27 and its extra bits' value in 18–22, the distance's
// code in 13–17 and its extra bits' value in 0–12.
type token uint32

const tokenMatch token = 1 << 31

// Length and distance codes: the base value of each code and the number of
// extra bits that follow it.
var (
	lengthBase  [29]uint16
	lengthExtra [29]uint8
	lengthCode  [256]uint8 // length-3 → index of its code (symbol - 257)
	distBase    [numDist]uint16
	distExtra   [numDist]uint8
	// distCode maps distance-1 to its code: directly below 256, and by
	// (distance-1)>>7 at 256 and above, where codes start on multiples of
	// 128.
	distCode [512]uint8

	fixedLitLen [numLitLen]huffCode
	fixedDist   [numDist]huffCode
)

func init() {
	base := 3
	for i := range 28 {
		e := 0
		if i >= 8 {
			e = i/4 - 1
		}
		lengthBase[i], lengthExtra[i] = uint16(base), uint8(e)
		for l := base; l < base+1<<e; l++ {
			lengthCode[l-3] = uint8(i)
		}
		base += 1 << e
	}
	lengthBase[28] = 258 // 258 has a code of its own, with no extra bits
	lengthCode[255] = 28
	base = 1
	for i := range numDist {
		e := max(0, i/2-1)
		distBase[i], distExtra[i] = uint16(base), uint8(e)
		for d := base; d < base+1<<e; d++ {
			if d-1 < 256 {
				distCode[d-1] = uint8(i)
			} else {
				distCode[256+(d-1)>>7] = uint8(i)
			}
		}
		base += 1 << e
	}
	// The fixed code has 288 symbols; the last two are never used but
	// take their place in the canonical order.
	var lens [288]uint8
	for i := range lens {
		switch {
		case i < 144:
			lens[i] = 8
		case i < 256:
			lens[i] = 9
		case i < 280:
			lens[i] = 7
		default:
			lens[i] = 8
		}
	}
	var all [288]huffCode
	assignCodes(all[:], lens[:])
	copy(fixedLitLen[:], all[:])
	var dl [numDist]uint8
	for i := range dl {
		dl[i] = 5
	}
	assignCodes(fixedDist[:], dl[:])
}

func distSymbol(dist int) int {
	if dist <= 256 {
		return int(distCode[dist-1])
	}
	return int(distCode[256+(dist-1)>>7])
}

// huffCode is a code ready to write: its bits reversed, since DEFLATE sends
// Huffman codes from their most significant bit but packs bits from the
// least significant end of each byte.
type huffCode struct {
	bits uint16
	len  uint8
}

// assignCodes gives the symbols their canonical codes for the lengths
// (RFC 1951 §3.2.2); a length of 0 is a symbol that is not used.
func assignCodes(codes []huffCode, lens []uint8) {
	codes = codes[:len(lens)]
	var count [maxLitBits + 1]uint16
	for _, l := range lens {
		if l != 0 {
			count[l&15]++
		}
	}
	var next [maxLitBits + 1]uint16
	code := uint16(0)
	for l := 1; l <= maxLitBits; l++ {
		code = (code + count[l-1]) << 1
		next[l] = code
	}
	for s, l := range lens {
		if l == 0 {
			codes[s] = huffCode{}
			continue
		}
		l &= 15
		c := next[l]
		next[l]++
		codes[s] = huffCode{bits: bits.Reverse16(c) >> (16 - l), len: l}
	}
}

// huffBuilder holds the scratch space of building codes, so that building
// them does not allocate.
type huffBuilder struct {
	sorted  [numLitLen]uint32 // frequency<<16 | symbol, in increasing order
	spare   [numLitLen]uint32
	count   [256]uint16       // the counting sort's buckets
	weight  [numLitLen]uint32 // of the internal nodes
	parent  [2 * numLitLen]uint16
	depth   [numLitLen]uint16 // of the internal nodes
	byDepth [numLitLen + 1]uint16
}

// buildLengths sets lens to the lengths of a Huffman code for freq whose
// codes are at most limit bits long. At least two symbols get a code, so
// that every inflater accepts the code as complete: when freq uses fewer,
// the lowest unused symbols are added.
func (hb *huffBuilder) buildLengths(freq []uint32, lens []uint8, limit int) {
	n := 0
	most := uint32(0)
	for s, f := range freq {
		lens[s] = 0
		if f > 0 {
			hb.sorted[n] = min(f, 0xffff)<<16 | uint32(s)
			n++
			most = max(most, f)
		}
	}
	for s := 0; n < 2; s++ {
		if freq[s] == 0 {
			hb.sorted[n] = uint32(s) // frequency 0: sorts first
			n++
		}
	}
	// The leaves by frequency, then symbol: they are in symbol order now,
	// so a stable counting sort by frequency does, and beats comparing
	// when frequencies are small, as in the blocks of small messages.
	leaves := hb.sorted[:n]
	if most < uint32(len(hb.count)) {
		clear(hb.count[:most+1])
		for _, k := range leaves {
			hb.count[k>>16]++
		}
		at := uint16(0)
		for f := range hb.count[:most+1] {
			c := hb.count[f]
			hb.count[f] = at
			at += c
		}
		for _, k := range leaves {
			hb.spare[hb.count[k>>16]] = k
			hb.count[k>>16]++
		}
		leaves = hb.spare[:n]
	} else {
		slices.Sort(leaves)
	}

	// Huffman's algorithm with two queues: the leaves in increasing order,
	// and the internal nodes, made in increasing order of weight. Node
	// numbers: leaves 0..n-1, internal nodes n..2n-2.
	leaf, inner := 0, 0
	for made := 0; made < n-1; made++ {
		w := uint32(0)
		for range 2 {
			// The lighter of the next leaf and the next internal node.
			if leaf < n && (inner == made || leaves[leaf]>>16 <= hb.weight[inner]) {
				w += leaves[leaf] >> 16
				hb.parent[leaf] = uint16(n + made)
				leaf++
			} else {
				w += hb.weight[inner]
				hb.parent[n+inner] = uint16(n + made)
				inner++
			}
		}
		hb.weight[made] = w
	}
	// Depths, from the root (the last internal node) down.
	root := n - 2
	hb.depth[root] = 0
	for i := root - 1; i >= 0; i-- {
		hb.depth[i] = hb.depth[int(hb.parent[n+i])-n] + 1
	}
	clear(hb.byDepth[:])
	deepest := 0
	for i := range n {
		d := int(hb.depth[int(hb.parent[i])-n]) + 1
		hb.byDepth[d]++
		deepest = max(deepest, d)
	}
	// Bring codes longer than limit within it, keeping the code complete:
	// two leaves at the deepest level leave it, their parent becomes a
	// leaf, and a shallower leaf becomes the parent of two leaves.
	for d := deepest; d > limit; d-- {
		for hb.byDepth[d] > 0 {
			j := d - 2
			for hb.byDepth[j] == 0 {
				j--
			}
			hb.byDepth[d] -= 2
			hb.byDepth[d-1]++
			hb.byDepth[j+1] += 2
			hb.byDepth[j]--
		}
	}
	// The least frequent symbols get the longest codes.
	i := 0
	for d := min(deepest, limit); d > 0; d-- {
		for range hb.byDepth[d] {
			lens[leaves[i]&0xffff] = uint8(d)
			i++
		}
	}
}

// bitWriter appends bits to a byte slice, least significant first.
type bitWriter struct {
	out   []byte
	acc   uint64
	nbits uint
}

// write appends the n low bits of b; n is at most 32.
func (w *bitWriter) write(b uint64, n uint) {
	w.acc |= b << w.nbits
	w.nbits += n
	if w.nbits >= 32 {
		w.out = binary.LittleEndian.AppendUint32(w.out, uint32(w.acc))
		w.acc >>= 32
		w.nbits -= 32
	}
}

// align writes the pending bits, padded with zeros to a whole byte.
func (w *bitWriter) align() {
	for w.nbits > 0 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.nbits -= min(8, w.nbits)
	}
	w.acc = 0
}

// blockWriter writes the blocks of one message.
type blockWriter struct {
	bw      bitWriter
	tokens  []token
	hb      huffBuilder
	litFreq [numLitLen]uint32
	dstFreq [numDist]uint32
	litLens [numLitLen]uint8
	dstLens [numDist]uint8
	litCode [numLitLen]huffCode
	dstCode [numDist]huffCode

	// The code lengths of a dynamic block, run-length coded.
	clSyms  [numLitLen + numDist]uint8 // symbols 0–18
	clExtra [numLitLen + numDist]uint8 // their extra bits' value
	nSyms   int
	clFreq  [numCodeLen]uint32
	clLens  [numCodeLen]uint8
	clCode  [numCodeLen]huffCode
	nlit    int
	ndist   int
	nclen   int
}

// codeLengthOrder is the order in which a dynamic block's header gives the
// lengths of the code-length codes (RFC 1951 §3.2.7).
var codeLengthOrder = [numCodeLen]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// startBlock empties the token list and the frequencies.
func (b *blockWriter) startBlock() {
	b.tokens = b.tokens[:0]
	clear(b.litFreq[:])
	clear(b.dstFreq[:])
}

// addLiterals adds the bytes of p as literals.
func (b *blockWriter) addLiterals(p []byte) {
	for _, c := range p {
		b.tokens = append(b.tokens, token(c))
		b.litFreq[c]++
	}
}

// addMatch adds a match of 3 to 258 bytes, dist back (1 to 32768).
func (b *blockWriter) addMatch(length, dist int) {
	lc := lengthCode[length-3]
	dc := distSymbol(dist)
	b.litFreq[257+int(lc)]++
	b.dstFreq[dc]++
	b.tokens = append(b.tokens, tokenMatch|token(lc)<<23|token(length-int(lengthBase[lc]))<<18|
		token(dc)<<13|token(dist-int(distBase[dc])))
}

// writeBlock writes the tokens added since startBlock, which encode raw,
// as one non-final block of the shortest kind.
func (b *blockWriter) writeBlock(raw []byte) {
	tokens := b.tokens
	b.litFreq[endOfBlock] = 1
	extra := 0
	for i, f := range b.litFreq[257:] {
		extra += int(f) * int(lengthExtra[i])
	}
	for i, f := range b.dstFreq {
		extra += int(f) * int(distExtra[i])
	}
	fixed := 3 + extra + cost(b.litFreq[:], fixedLitLen[:]) + cost(b.dstFreq[:], fixedDist[:])
	// A stored block pads to a byte and gives its length in 32 bits.
	pad := (8 - (int(b.bw.nbits)+3)%8) % 8
	stored := 3 + pad + 32 + 8*len(raw)
	dynamic := stored + 1
	if len(tokens) > 32 { // below, the header of a dynamic block costs more than it saves
		b.buildDynamic()
		dynamic = 3 + extra + b.headerBits() + cost(b.litFreq[:], b.litCode[:]) + cost(b.dstFreq[:], b.dstCode[:])
	}
	switch {
	case stored <= fixed && stored <= dynamic && len(raw) <= maxStored:
		b.bw.write(0, 3)
		b.bw.align()
		b.bw.out = binary.LittleEndian.AppendUint16(b.bw.out, uint16(len(raw)))
		b.bw.out = binary.LittleEndian.AppendUint16(b.bw.out, ^uint16(len(raw)))
		b.bw.out = append(b.bw.out, raw...)
	case fixed <= dynamic:
		b.bw.write(1<<1, 3)
		b.writeTokens(tokens, &fixedLitLen, &fixedDist)
	default:
		b.bw.write(2<<1, 3)
		b.writeHeader()
		b.writeTokens(tokens, &b.litCode, &b.dstCode)
	}
}

// endMessage ends a message as a sync flush does: an empty stored block,
// whose 00 00 ff ff permessage-deflate leaves out (RFC 7692 §7.2.1).
func (b *blockWriter) endMessage() {
	b.bw.write(0, 3)
	b.bw.align()
}

func cost(freq []uint32, codes []huffCode) int {
	n := 0
	for i, f := range freq {
		n += int(f) * int(codes[i].len)
	}
	return n
}

// buildDynamic builds the codes of a dynamic block for the frequencies,
// and the run-length coded lengths its header carries.
func (b *blockWriter) buildDynamic() {
	b.hb.buildLengths(b.litFreq[:], b.litLens[:], maxLitBits)
	b.hb.buildLengths(b.dstFreq[:], b.dstLens[:], maxLitBits)
	assignCodes(b.litCode[:], b.litLens[:])
	assignCodes(b.dstCode[:], b.dstLens[:])
	b.nlit, b.ndist = numLitLen, numDist
	for b.nlit > 257 && b.litLens[b.nlit-1] == 0 {
		b.nlit--
	}
	for b.ndist > 1 && b.dstLens[b.ndist-1] == 0 {
		b.ndist--
	}
	// The two lists of lengths are coded as one sequence: a run may cross
	// from one into the other (RFC 1951 §3.2.7).
	var seq [numLitLen + numDist]uint8
	n := copy(seq[:], b.litLens[:b.nlit])
	n += copy(seq[n:], b.dstLens[:b.ndist])
	b.nSyms = 0
	emit := func(sym, extra uint8) {
		b.clSyms[b.nSyms], b.clExtra[b.nSyms] = sym, extra
		b.nSyms++
	}
	for i := 0; i < n; {
		l := seq[i]
		run := 1
		for i+run < n && seq[i+run] == l {
			run++
		}
		i += run
		if l == 0 {
			for run >= 11 {
				r := min(run, 138)
				emit(18, uint8(r-11))
				run -= r
			}
			if run >= 3 {
				emit(17, uint8(run-3))
				run = 0
			}
		} else {
			emit(l, 0)
			run--
			for run >= 3 {
				r := min(run, 6)
				emit(16, uint8(r-3))
				run -= r
			}
		}
		for range run {
			emit(l, 0)
		}
	}
	clear(b.clFreq[:])
	for _, s := range b.clSyms[:b.nSyms] {
		b.clFreq[s]++
	}
	b.hb.buildLengths(b.clFreq[:], b.clLens[:], maxCodeBits)
	assignCodes(b.clCode[:], b.clLens[:])
	b.nclen = numCodeLen
	for b.nclen > 4 && b.clLens[codeLengthOrder[b.nclen-1]] == 0 {
		b.nclen--
	}
}

// codeLengthExtra is the number of extra bits of code-length symbols 16,
// 17 and 18.
var codeLengthExtra = [3]uint8{2, 3, 7}

func clExtraBits(sym uint8) uint {
	if sym < 16 {
		return 0
	}
	return uint(codeLengthExtra[sym-16])
}

// headerBits is the size of the header buildDynamic prepared, after the
// block type.
func (b *blockWriter) headerBits() int {
	n := 5 + 5 + 4 + 3*b.nclen
	for _, s := range b.clSyms[:b.nSyms] {
		n += int(b.clLens[s]) + int(clExtraBits(s))
	}
	return n
}

func (b *blockWriter) writeHeader() {
	b.bw.write(uint64(b.nlit-257), 5)
	b.bw.write(uint64(b.ndist-1), 5)
	b.bw.write(uint64(b.nclen-4), 4)
	for _, s := range codeLengthOrder[:b.nclen] {
		b.bw.write(uint64(b.clLens[s]), 3)
	}
	for i, s := range b.clSyms[:b.nSyms] {
		c := b.clCode[s]
		b.bw.write(uint64(c.bits)|uint64(b.clExtra[i])<<c.len, uint(c.len)+clExtraBits(s))
	}
}

func (b *blockWriter) writeTokens(tokens []token, lit *[numLitLen]huffCode, dist *[numDist]huffCode) {
	w := &b.bw
	for _, t := range tokens {
		if t < tokenMatch {
			c := lit[t]
			w.write(uint64(c.bits), uint(c.len))
			continue
		}
		lc := t >> 23 & 31
		c := lit[257+lc]
		w.write(uint64(c.bits)|uint64(t>>18&31)<<c.len, uint(c.len)+uint(lengthExtra[lc]))
		dc := t >> 13 & 31
		c = dist[dc]
		w.write(uint64(c.bits)|uint64(t&0x1fff)<<c.len, uint(c.len)+uint(distExtra[dc]))
	}
	c := lit[endOfBlock]
	w.write(uint64(c.bits), uint(c.len))
}
