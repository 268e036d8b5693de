package frame

import (
	"encoding/binary"
	"math/bits"
)

// Mask XORs b in place with key, as RFC 6455 §5.3 masks and unmasks payloads. pos is the
// number of payload bytes already processed before b (only pos%4 matters), so a payload
// can be masked chunk by chunk. It returns the position after b, for the next chunk.
func Mask(b []byte, key [4]byte, pos int) int {
	// The key as a little-endian word rotated so that its low byte goes with
	// b[0]. pos&3 rather than pos%4 keeps a position that wrapped around to
	// negative right.
	k := bits.RotateLeft32(binary.LittleEndian.Uint32(key[:]), -8*(pos&3))
	n := len(b)
	switch {
	case n >= 64 && kernel == kernelAVX512:
		maskAVX512(b, k)
	case n >= 16 && kernel >= kernelAVX2:
		maskAVX2(b, k)
	case n >= 16:
		maskGeneric(b, k)
	case n >= 8:
		// Short payloads (control frames, small messages) are done here, a
		// call costing more than the XOR. Two words that overlap when n < 16,
		// both loaded before either is stored: the bytes they share get the
		// same value from each. The second word starts at n-8, which is n
		// mod 4 in the key.
		kw := uint64(k)<<32 | uint64(k)
		head := binary.LittleEndian.Uint64(b)
		tail := binary.LittleEndian.Uint64(b[n-8:])
		binary.LittleEndian.PutUint64(b, head^kw)
		binary.LittleEndian.PutUint64(b[n-8:], tail^bits.RotateLeft64(kw, -8*(n&3)))
	case n >= 4:
		head := binary.LittleEndian.Uint32(b)
		tail := binary.LittleEndian.Uint32(b[n-4:])
		binary.LittleEndian.PutUint32(b, head^k)
		binary.LittleEndian.PutUint32(b[n-4:], tail^bits.RotateLeft32(k, -8*(n&3)))
	case n > 0:
		// 1 to 3 bytes: the first, the middle and the last cover them all.
		m := n >> 1
		b0, bm, bl := b[0], b[m], b[n-1]
		b[0] = b0 ^ byte(k)
		b[m] = bm ^ byte(k>>(8*m))
		b[n-1] = bl ^ byte(k>>(8*(n-1)))
	}
	return pos + n
}

// maskKernel names an implementation of the XOR loop.
type maskKernel uint8

const (
	kernelGeneric maskKernel = iota // portable Go, 64 bytes per iteration
	kernelAVX2                      // amd64 assembly, 128 bytes per iteration
	kernelAVX512                    // amd64 assembly, 256 bytes per iteration
)

func (k maskKernel) String() string {
	switch k {
	case kernelAVX2:
		return "avx2"
	case kernelAVX512:
		return "avx512"
	}
	return "generic"
}

// kernel is the implementation Mask uses: the last, fastest, of
// supportedKernels. It is set once at start-up; only tests change it, to
// exercise every kernel.
var kernel = supportedKernels[len(supportedKernels)-1]

// maskGeneric XORs b with k repeated, k's low byte (little-endian) going
// with b[0]. len(b) must be at least 8.
//
// It works a machine word at a time: encoding/binary's little-endian
// accessors compile to single unaligned loads and stores where the
// architecture allows them (amd64, arm64, 386, ppc64le, s390x ...), and the
// key is widened to the word. Eight words per iteration, each XORed where it
// lies, indexed from the start of b, keep the loop free of bounds checks and
// of re-slicing; that was about 1.5 times as fast at 16 KiB on amd64 as
// loading four words, XORing them and storing them while advancing b. The
// last word is loaded before the loop and stored after it, which finishes a
// length that is not a multiple of the word without a byte loop: the bytes
// it shares with the loop's last word get the same value from both.
func maskGeneric(b []byte, k uint32) {
	if bits.UintSize == 32 {
		// 64-bit loads are split into bytes there; 32-bit ones are not.
		maskWords32(b, k)
	} else {
		maskWords64(b, k)
	}
}

func maskWords64(b []byte, k uint32) {
	kw := uint64(k)<<32 | uint64(k)
	n := len(b)
	// The last word starts at n-8, which is n mod 4 in the key.
	last := binary.LittleEndian.Uint64(b[n-8:]) ^ bits.RotateLeft64(kw, -8*(n&3))
	i := 0
	for ; i <= n-64; i += 64 {
		s := b[i : i+64 : i+64]
		binary.LittleEndian.PutUint64(s[0:8], binary.LittleEndian.Uint64(s[0:8])^kw)
		binary.LittleEndian.PutUint64(s[8:16], binary.LittleEndian.Uint64(s[8:16])^kw)
		binary.LittleEndian.PutUint64(s[16:24], binary.LittleEndian.Uint64(s[16:24])^kw)
		binary.LittleEndian.PutUint64(s[24:32], binary.LittleEndian.Uint64(s[24:32])^kw)
		binary.LittleEndian.PutUint64(s[32:40], binary.LittleEndian.Uint64(s[32:40])^kw)
		binary.LittleEndian.PutUint64(s[40:48], binary.LittleEndian.Uint64(s[40:48])^kw)
		binary.LittleEndian.PutUint64(s[48:56], binary.LittleEndian.Uint64(s[48:56])^kw)
		binary.LittleEndian.PutUint64(s[56:64], binary.LittleEndian.Uint64(s[56:64])^kw)
	}
	for ; i <= n-8; i += 8 {
		s := b[i : i+8 : i+8]
		binary.LittleEndian.PutUint64(s, binary.LittleEndian.Uint64(s)^kw)
	}
	binary.LittleEndian.PutUint64(b[n-8:], last)
}

func maskWords32(b []byte, k uint32) {
	n := len(b)
	last := binary.LittleEndian.Uint32(b[n-4:]) ^ bits.RotateLeft32(k, -8*(n&3))
	i := 0
	for ; i <= n-32; i += 32 {
		s := b[i : i+32 : i+32]
		binary.LittleEndian.PutUint32(s[0:4], binary.LittleEndian.Uint32(s[0:4])^k)
		binary.LittleEndian.PutUint32(s[4:8], binary.LittleEndian.Uint32(s[4:8])^k)
		binary.LittleEndian.PutUint32(s[8:12], binary.LittleEndian.Uint32(s[8:12])^k)
		binary.LittleEndian.PutUint32(s[12:16], binary.LittleEndian.Uint32(s[12:16])^k)
		binary.LittleEndian.PutUint32(s[16:20], binary.LittleEndian.Uint32(s[16:20])^k)
		binary.LittleEndian.PutUint32(s[20:24], binary.LittleEndian.Uint32(s[20:24])^k)
		binary.LittleEndian.PutUint32(s[24:28], binary.LittleEndian.Uint32(s[24:28])^k)
		binary.LittleEndian.PutUint32(s[28:32], binary.LittleEndian.Uint32(s[28:32])^k)
	}
	for ; i <= n-4; i += 4 {
		s := b[i : i+4 : i+4]
		binary.LittleEndian.PutUint32(s, binary.LittleEndian.Uint32(s)^k)
	}
	binary.LittleEndian.PutUint32(b[n-4:], last)
}
