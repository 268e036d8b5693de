package frame

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/gobwas/ws"
)

// maskReference is RFC 6455 §5.3 to the letter, one byte at a time. The
// uint conversion makes a position that wrapped around to negative count on.
func maskReference(b []byte, key [4]byte, pos int) {
	for i := range b {
		b[i] ^= key[uint(pos+i)%4]
	}
}

// forEachKernel runs f with Mask switched to each kernel this machine
// supports. Subtests must not run in parallel: the switch is package-wide.
func forEachKernel(t *testing.T, f func(t *testing.T)) {
	saved := kernel
	t.Cleanup(func() { kernel = saved })
	for _, k := range supportedKernels {
		t.Run(k.String(), func(t *testing.T) {
			kernel = k
			f(t)
		})
	}
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func randomKey(rng *rand.Rand) (key [4]byte) {
	copy(key[:], randomBytes(rng, 4))
	return key
}

// checkMask masks n bytes at offset off of a guarded buffer from position
// pos and compares the result, the bytes around it and the returned position
// with maskReference.
func checkMask(t *testing.T, rng *rand.Rand, n, off, pos int) {
	t.Helper()
	const guard = 64
	buf := randomBytes(rng, guard+off+n+guard)
	key := randomKey(rng)
	want := bytes.Clone(buf)
	maskReference(want[guard+off:guard+off+n], key, pos)

	got := Mask(buf[guard+off:guard+off+n], key, pos)
	if got != pos+n {
		t.Fatalf(
			"Mask(len %d, pos %d) returned %d, want %d",
			n, pos, got, pos+n,
		)
	}
	if !bytes.Equal(buf, want) {
		i := 0
		for buf[i] == want[i] {
			i++
		}
		t.Fatalf(
			"len %d, offset %d, pos %d, key %x: first wrong byte at %d relative to b[0] (b is [0, %d)): got %#02x, want %#02x",
			n, off, pos, key, i-guard-off, n, buf[i], want[i],
		)
	}
}

func TestMaskReference(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for n := 0; n <= 300; n++ {
			for pos := range 4 {
				for off := range 8 {
					checkMask(t, rng, n, off, pos)
				}
			}
		}
	})
}

// TestMaskReferenceLong covers the unrolled loops of the vector kernels, and
// their head and tail vectors at every alignment to a 64-byte boundary.
func TestMaskReferenceLong(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		for n := 301; n <= 1100; n++ {
			checkMask(t, rng, n, rng.IntN(64), rng.IntN(4))
		}
		for off := range 64 {
			for _, n := range []int{15, 16, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513, 4099} {
				checkMask(t, rng, n, off, rng.IntN(4))
			}
		}
		// Positions near the top of int, whose sum with len(b) wraps around,
		// and below zero: only pos mod 4 matters.
		for i := range 4 {
			checkMask(t, rng, 100, 3, math.MaxInt-i)
		}
		checkMask(t, rng, 100, 3, -5)
	})
}

// TestMaskWords checks both word sizes of the portable kernel on every
// architecture; maskGeneric picks one by the build's word size.
func TestMaskWords(t *testing.T) {
	for _, f := range []struct {
		name string
		fn   func([]byte, uint32)
	}{
		{
			name: "64",
			fn:   maskWords64,
		},
		{
			name: "32",
			fn:   maskWords32,
		},
	} {
		t.Run(f.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(9, 10))
			for n := 8; n <= 300; n++ {
				for pos := range 4 {
					buf := randomBytes(rng, 8+n+8)
					key := randomKey(rng)
					want := bytes.Clone(buf)
					maskReference(want[8:8+n], key, pos)
					k := binary.LittleEndian.Uint32(key[:])
					f.fn(buf[8:8+n], bits.RotateLeft32(k, -8*pos))
					if !bytes.Equal(buf, want) {
						t.Fatalf(
							"len %d, pos %d, key %x: result differs from the reference",
							n, pos, key,
						)
					}
				}
			}
		})
	}
}

func TestMaskChunked(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 6))
		for range 300 {
			n := rng.IntN(3000)
			payload := randomBytes(rng, n)
			key := randomKey(rng)
			whole := bytes.Clone(payload)
			Mask(whole, key, 0)

			chunked := bytes.Clone(payload)
			pos := 0
			for rest := chunked; len(rest) > 0; {
				c := min(len(rest), rng.IntN(300))
				pos = Mask(rest[:c], key, pos)
				rest = rest[c:]
			}
			if pos != n {
				t.Fatalf(
					"positions returned by chunks add up to %d, want %d",
					pos, n,
				)
			}
			if !bytes.Equal(chunked, whole) {
				t.Fatalf(
					"len %d, key %x: masking in chunks differs from masking whole",
					n, key,
				)
			}
		}
	})
}

func TestMaskTwice(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 8))
		for n := range 2100 {
			b := randomBytes(rng, n)
			orig := bytes.Clone(b)
			key := randomKey(rng)
			key[3] = 1 // never all zero, so masking must change something
			pos := rng.IntN(4)
			Mask(b, key, pos)
			if n >= 4 && bytes.Equal(b, orig) {
				t.Fatalf(
					"len %d, key %x: Mask changed nothing",
					n, key,
				)
			}
			Mask(b, key, pos)
			if !bytes.Equal(b, orig) {
				t.Fatalf(
					"len %d, key %x, pos %d: masking twice is not the identity",
					n, key, pos,
				)
			}
		}
	})
}

func TestMaskAllocs(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		b := make([]byte, 5000)
		key := [4]byte{1, 2, 3, 4}
		for _, n := range []int{0, 3, 16, 100, 5000} {
			allocs := testing.AllocsPerRun(100, func() {
				Mask(b[:n], key, 1)
			})
			if allocs != 0 {
				t.Errorf(
					"Mask of %d bytes allocates %v times, want 0",
					n, allocs,
				)
			}
		}
	})
}

var benchSizes = []int{16, 128, 1024, 16384, 1048576}

// BenchmarkMask compares Mask with gobwas/ws's Cipher in the same run, then
// Mask forced onto each kernel the machine supports. The buffers come from
// make and are 64-byte aligned.
func BenchmarkMask(b *testing.B) {
	benchmarkMask(b, 0)
}

// BenchmarkMaskUnaligned is BenchmarkMask with the payload 6 bytes into the
// buffer, as it is behind a masked frame header of 6 bytes in a read buffer.
func BenchmarkMaskUnaligned(b *testing.B) {
	benchmarkMask(b, 6)
}

func benchmarkMask(b *testing.B, off int) {
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	for _, n := range benchSizes {
		buf := make([]byte, off+n)[off:]
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.Run("wskit", func(b *testing.B) {
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					Mask(buf, key, 0)
				}
			})
			b.Run("gobwas", func(b *testing.B) {
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					ws.Cipher(buf, key, 0)
				}
			})
			saved := kernel
			defer func() { kernel = saved }()
			for _, k := range supportedKernels {
				b.Run(k.String(), func(b *testing.B) {
					kernel = k
					b.SetBytes(int64(n))
					b.ReportAllocs()
					for b.Loop() {
						Mask(buf, key, 0)
					}
				})
			}
		})
	}
}

// BenchmarkMaskSmall covers the short lengths whose tails the kernels
// handle differently.
func BenchmarkMaskSmall(b *testing.B) {
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	buf := make([]byte, 128)
	saved := kernel
	defer func() { kernel = saved }()
	for _, n := range []int{1, 3, 7, 15, 31, 63, 100} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.Run("gobwas", func(b *testing.B) {
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					ws.Cipher(buf[:n], key, 0)
				}
			})
			for _, k := range supportedKernels {
				b.Run(k.String(), func(b *testing.B) {
					kernel = k
					b.SetBytes(int64(n))
					b.ReportAllocs()
					for b.Loop() {
						Mask(buf[:n], key, 0)
					}
				})
			}
		})
	}
}
