package frame_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gobwas/ws"

	"github.com/wskit/wskit/frame"
)

// rfcMask is the masking key of the examples in RFC 6455 §5.7.
var rfcMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want frame.Header
		n    int // header length; bytes after it are payload
	}{
		{
			name: "unmasked text of 5 bytes (RFC 6455 §5.7)",
			in:   []byte{0x81, 0x05},
			want: frame.Header{Fin: true, Op: frame.OpText, Length: 5},
			n:    2,
		},
		{
			name: "payload after the header is not taken",
			in:   []byte{0x81, 0x05, 'H', 'e', 'l', 'l', 'o'},
			want: frame.Header{Fin: true, Op: frame.OpText, Length: 5},
			n:    2,
		},
		{
			name: "empty binary",
			in:   []byte{0x82, 0x00},
			want: frame.Header{Fin: true, Op: frame.OpBinary},
			n:    2,
		},
		{
			name: "7-bit length at its largest, 125",
			in:   []byte{0x82, 0x7D},
			want: frame.Header{Fin: true, Op: frame.OpBinary, Length: 125},
			n:    2,
		},
		{
			name: "masked text of 5 bytes (RFC 6455 §5.7)",
			in:   []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58},
			want: frame.Header{Fin: true, Op: frame.OpText, Masked: true, Mask: rfcMask, Length: 5},
			n:    6,
		},
		{
			name: "16-bit length at its smallest, 126",
			in:   []byte{0x82, 0x7E, 0x00, 0x7E},
			want: frame.Header{Fin: true, Op: frame.OpBinary, Length: 126},
			n:    4,
		},
		{
			name: "16-bit length of 256 (RFC 6455 §5.7)",
			in:   []byte{0x82, 0x7E, 0x01, 0x00},
			want: frame.Header{Fin: true, Op: frame.OpBinary, Length: 256},
			n:    4,
		},
		{
			name: "16-bit length at its largest, 65535",
			in:   []byte{0x82, 0x7E, 0xFF, 0xFF},
			want: frame.Header{Fin: true, Op: frame.OpBinary, Length: 65535},
			n:    4,
		},
		{
			name: "16-bit length, masked",
			in:   []byte{0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4},
			want: frame.Header{Fin: true, Op: frame.OpBinary, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 256},
			n:    8,
		},
		{
			name: "16-bit encoding of a 7-bit length is accepted",
			in:   []byte{0x82, 0x7E, 0x00, 0x05},
			want: frame.Header{Fin: true, Op: frame.OpBinary, Length: 5},
			n:    4,
		},
		{
			name: "64-bit length of 65536 (RFC 6455 §5.7)",
			in:   []byte{0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0},
			want: frame.Header{Fin: true, Op: frame.OpBinary, Length: 65536},
			n:    10,
		},
		{
			name: "64-bit length at its largest, 2^63-1",
			in:   []byte{0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF},
			want: frame.Header{Fin: true, Op: frame.OpBinary, Length: math.MaxInt64},
			n:    10,
		},
		{
			name: "64-bit length, masked",
			in:   []byte{0x82, 0xFF, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 9, 8, 7, 6},
			want: frame.Header{Fin: true, Op: frame.OpBinary, Masked: true, Mask: [4]byte{9, 8, 7, 6}, Length: 0x12345678},
			n:    14,
		},
		{
			name: "64-bit encoding of zero is accepted",
			in:   []byte{0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0},
			want: frame.Header{Fin: true, Op: frame.OpBinary},
			n:    10,
		},
		{
			name: "text, not final",
			in:   []byte{0x01, 0x03},
			want: frame.Header{Op: frame.OpText, Length: 3},
			n:    2,
		},
		{
			name: "continuation, not final, masked",
			in:   []byte{0x00, 0x83, 0xA, 0xB, 0xC, 0xD},
			want: frame.Header{Op: frame.OpContinuation, Masked: true, Mask: [4]byte{0xA, 0xB, 0xC, 0xD}, Length: 3},
			n:    6,
		},
		{
			name: "continuation, final",
			in:   []byte{0x80, 0x00},
			want: frame.Header{Fin: true, Op: frame.OpContinuation},
			n:    2,
		},
		{
			name: "RSV1",
			in:   []byte{0xC1, 0x01},
			want: frame.Header{Fin: true, Rsv: frame.RSV1, Op: frame.OpText, Length: 1},
			n:    2,
		},
		{
			name: "RSV2",
			in:   []byte{0xA1, 0x01},
			want: frame.Header{Fin: true, Rsv: frame.RSV2, Op: frame.OpText, Length: 1},
			n:    2,
		},
		{
			name: "RSV3",
			in:   []byte{0x91, 0x01},
			want: frame.Header{Fin: true, Rsv: frame.RSV3, Op: frame.OpText, Length: 1},
			n:    2,
		},
		{
			name: "all RSV bits, not final",
			in:   []byte{0x72, 0x00},
			want: frame.Header{Rsv: frame.RSV1 | frame.RSV2 | frame.RSV3, Op: frame.OpBinary},
			n:    2,
		},
		{
			name: "RSV bits on a control frame are returned, not judged",
			in:   []byte{0xC9, 0x00},
			want: frame.Header{Fin: true, Rsv: frame.RSV1, Op: frame.OpPing},
			n:    2,
		},
		{
			name: "close of 125 bytes, the control limit",
			in:   []byte{0x88, 0x7D},
			want: frame.Header{Fin: true, Op: frame.OpClose, Length: 125},
			n:    2,
		},
		{
			name: "empty masked close",
			in:   []byte{0x88, 0x80, 1, 2, 3, 4},
			want: frame.Header{Fin: true, Op: frame.OpClose, Masked: true, Mask: [4]byte{1, 2, 3, 4}},
			n:    6,
		},
		{
			name: "ping of 125 bytes, masked",
			in:   []byte{0x89, 0xFD, 5, 6, 7, 8},
			want: frame.Header{Fin: true, Op: frame.OpPing, Masked: true, Mask: [4]byte{5, 6, 7, 8}, Length: 125},
			n:    6,
		},
		{
			name: "pong",
			in:   []byte{0x8A, 0x04},
			want: frame.Header{Fin: true, Op: frame.OpPong, Length: 4},
			n:    2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, n, err := frame.ParseHeader(tc.in)
			if err != nil || n != tc.n || h != tc.want {
				t.Fatalf("ParseHeader(% x) = %+v, %d, %v; want %+v, %d, nil",
					tc.in, h, n, err, tc.want, tc.n)
			}
			for k := 0; k < tc.n; k++ {
				h, n, err := frame.ParseHeader(tc.in[:k])
				if n != 0 || err != nil {
					t.Errorf("prefix of %d bytes: ParseHeader(% x) = %+v, %d, %v; want n == 0, nil error",
						k, tc.in[:k], h, n, err)
				}
			}
			for k := tc.n; k <= len(tc.in); k++ {
				h, n, err := frame.ParseHeader(tc.in[:k])
				if err != nil || n != tc.n || h != tc.want {
					t.Errorf("with %d bytes: ParseHeader(% x) = %+v, %d, %v; want %+v, %d, nil",
						k, tc.in[:k], h, n, err, tc.want, tc.n)
				}
			}
		})
	}
}

type headerErrorCase struct {
	name string
	in   []byte
	err  error
	// provenAt is the length of the shortest prefix that proves the error;
	// shorter prefixes must ask for more bytes.
	provenAt int
}

func headerErrorCases() []headerErrorCase {
	tests := []headerErrorCase{
		{
			name:     "reserved opcode 0x3 on a masked 64-bit frame",
			in:       []byte{0x83, 0xFF, 0, 0, 0, 0, 0, 0, 1, 0, 1, 2, 3, 4},
			err:      frame.ErrReservedOpcode,
			provenAt: 1,
		},
		{
			name:     "non-final ping",
			in:       []byte{0x09, 0x00},
			err:      frame.ErrFragmentedControl,
			provenAt: 1,
		},
		{
			name:     "non-final close with a code",
			in:       []byte{0x08, 0x02, 0x03, 0xE8},
			err:      frame.ErrFragmentedControl,
			provenAt: 1,
		},
		{
			name:     "non-final masked pong",
			in:       []byte{0x0A, 0x80, 1, 2, 3, 4},
			err:      frame.ErrFragmentedControl,
			provenAt: 1,
		},
		{
			name:     "non-final ping with RSV1",
			in:       []byte{0x49, 0x00},
			err:      frame.ErrFragmentedControl,
			provenAt: 1,
		},
		{
			name:     "close of 126 bytes",
			in:       []byte{0x88, 0x7E, 0x00, 0x7E},
			err:      frame.ErrControlTooLong,
			provenAt: 2,
		},
		{
			name:     "masked ping of 126 bytes",
			in:       []byte{0x89, 0xFE, 0x00, 0x7E, 1, 2, 3, 4},
			err:      frame.ErrControlTooLong,
			provenAt: 2,
		},
		{
			name:     "pong of 65536 bytes in a 64-bit length",
			in:       []byte{0x8A, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0},
			err:      frame.ErrControlTooLong,
			provenAt: 2,
		},
		{
			name:     "64-bit length with the top bit set",
			in:       []byte{0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0},
			err:      frame.ErrLengthOverflow,
			provenAt: 3,
		},
		{
			name:     "64-bit length of all ones",
			in:       []byte{0x82, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF},
			err:      frame.ErrLengthOverflow,
			provenAt: 3,
		},
		{
			name:     "masked 64-bit length with the top bit set",
			in:       []byte{0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4},
			err:      frame.ErrLengthOverflow,
			provenAt: 3,
		},
		{
			name:     "non-final continuation with the top length bit set",
			in:       []byte{0x00, 0x7F, 0x90, 0, 0, 0, 0, 0, 0, 0},
			err:      frame.ErrLengthOverflow,
			provenAt: 3,
		},
	}
	for _, op := range []byte{0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF} {
		tests = append(tests, headerErrorCase{
			name:     fmt.Sprintf("reserved opcode %#x", op),
			in:       []byte{0x80 | op, 0x00},
			err:      frame.ErrReservedOpcode,
			provenAt: 1,
		})
		tests = append(tests, headerErrorCase{
			name:     fmt.Sprintf("reserved opcode %#x, masked, with RSV bits", op),
			in:       []byte{0xF0 | op, 0x81, 1, 2, 3, 4},
			err:      frame.ErrReservedOpcode,
			provenAt: 1,
		})
		if op < 0x8 {
			tests = append(tests, headerErrorCase{
				name:     fmt.Sprintf("reserved data opcode %#x, not final", op),
				in:       []byte{op, 0x7E, 0x01, 0x00},
				err:      frame.ErrReservedOpcode,
				provenAt: 1,
			})
		}
	}
	return tests
}

func TestParseHeaderErrors(t *testing.T) {
	for _, tc := range headerErrorCases() {
		t.Run(tc.name, func(t *testing.T) {
			for k := 0; k <= len(tc.in); k++ {
				h, n, err := frame.ParseHeader(tc.in[:k])
				switch {
				case k < tc.provenAt:
					if n != 0 || err != nil {
						t.Errorf("prefix of %d bytes: ParseHeader(% x) = %+v, %d, %v; want n == 0, nil error",
							k, tc.in[:k], h, n, err)
					}
				case !errors.Is(err, tc.err):
					t.Errorf("with %d bytes: ParseHeader(% x) = %+v, %d, %v; want error %v",
						k, tc.in[:k], h, n, err, tc.err)
				}
			}
		})
	}
}

func TestHeaderErrorsAreProtocolErrors(t *testing.T) {
	for _, err := range []error{
		frame.ErrReservedOpcode,
		frame.ErrFragmentedControl,
		frame.ErrControlTooLong,
		frame.ErrLengthOverflow,
	} {
		var pe *frame.ProtocolError
		if !errors.As(err, &pe) || pe.Code != frame.CloseProtocolError {
			t.Errorf("%v: want a *frame.ProtocolError with code 1002", err)
		}
	}
}

func TestAppendHeaderShortestLength(t *testing.T) {
	tests := []struct {
		length int64
		want   []byte // unmasked binary frame with FIN
	}{
		{
			length: 0,
			want:   []byte{0x82, 0x00},
		},
		{
			length: 1,
			want:   []byte{0x82, 0x01},
		},
		{
			length: 125,
			want:   []byte{0x82, 0x7D},
		},
		{
			length: 126,
			want:   []byte{0x82, 0x7E, 0x00, 0x7E},
		},
		{
			length: 127,
			want:   []byte{0x82, 0x7E, 0x00, 0x7F},
		},
		{
			length: 65535,
			want:   []byte{0x82, 0x7E, 0xFF, 0xFF},
		},
		{
			length: 65536,
			want:   []byte{0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0},
		},
		{
			length: 1 << 32,
			want:   []byte{0x82, 0x7F, 0, 0, 0, 1, 0, 0, 0, 0},
		},
		{
			length: math.MaxInt64,
			want:   []byte{0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF},
		},
	}
	for _, tc := range tests {
		h := frame.Header{Fin: true, Op: frame.OpBinary, Length: tc.length}
		got := frame.AppendHeader(nil, h)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("AppendHeader(length %d) = % x, want % x", tc.length, got, tc.want)
		}
		if h.Size() != len(tc.want) {
			t.Errorf("Size(length %d) = %d, want %d", tc.length, h.Size(), len(tc.want))
		}

		h.Masked, h.Mask = true, rfcMask
		want := append([]byte{tc.want[0], tc.want[1] | 0x80}, tc.want[2:]...)
		want = append(want, rfcMask[:]...)
		got = frame.AppendHeader(nil, h)
		if !bytes.Equal(got, want) {
			t.Errorf("AppendHeader(length %d, masked) = % x, want % x", tc.length, got, want)
		}
		if h.Size() != len(want) {
			t.Errorf("Size(length %d, masked) = %d, want %d", tc.length, h.Size(), len(want))
		}
	}
}

func TestAppendHeaderFirstByte(t *testing.T) {
	tests := []struct {
		h    frame.Header
		want byte
	}{
		{
			h:    frame.Header{Op: frame.OpContinuation},
			want: 0x00,
		},
		{
			h:    frame.Header{Fin: true, Op: frame.OpText},
			want: 0x81,
		},
		{
			h:    frame.Header{Rsv: frame.RSV1, Op: frame.OpText},
			want: 0x41,
		},
		{
			h:    frame.Header{Fin: true, Rsv: frame.RSV2, Op: frame.OpBinary},
			want: 0xA2,
		},
		{
			h:    frame.Header{Fin: true, Rsv: frame.RSV3, Op: frame.OpClose},
			want: 0x98,
		},
		{
			h:    frame.Header{Fin: true, Rsv: frame.RSV1 | frame.RSV2 | frame.RSV3, Op: frame.OpPong},
			want: 0xFA,
		},
	}
	for _, tc := range tests {
		got := frame.AppendHeader(nil, tc.h)
		if got[0] != tc.want {
			t.Errorf("AppendHeader(%+v)[0] = %#x, want %#x", tc.h, got[0], tc.want)
		}
	}
}

// randomLength returns a payload length spread over the three encodings,
// with their boundaries drawn often.
func randomLength(r *rand.Rand, control bool) int64 {
	if control {
		if r.IntN(4) == 0 {
			return []int64{0, 1, 124, 125}[r.IntN(4)]
		}
		return r.Int64N(frame.MaxControlPayload + 1)
	}
	switch r.IntN(4) {
	case 0:
		return r.Int64N(126)
	case 1:
		return 126 + r.Int64N(65536-126)
	case 2:
		return 65536 + r.Int64N(math.MaxInt64-65536+1)
	}
	edges := []int64{0, 1, 124, 125, 126, 127, 65534, 65535, 65536, 65537, 1<<32 - 1, 1 << 32, math.MaxInt64 - 1, math.MaxInt64}
	return edges[r.IntN(len(edges))]
}

// randomHeader returns a header that RFC 6455 allows on the wire (RSV bits
// aside, which extensions may claim).
func randomHeader(r *rand.Rand) frame.Header {
	ops := []frame.Opcode{frame.OpContinuation, frame.OpText, frame.OpBinary, frame.OpClose, frame.OpPing, frame.OpPong}
	h := frame.Header{
		Op:     ops[r.IntN(len(ops))],
		Rsv:    byte(r.IntN(8)) << 4,
		Masked: r.IntN(2) == 0,
	}
	h.Fin = h.Op.IsControl() || r.IntN(2) == 0
	if h.Masked {
		binary.LittleEndian.PutUint32(h.Mask[:], r.Uint32())
	}
	h.Length = randomLength(r, h.Op.IsControl())
	return h
}

func TestAppendHeaderRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(6455, 1))
	prefix := []byte{0xDE, 0xAD}
	for range 20000 {
		h := randomHeader(r)
		b := frame.AppendHeader(append([]byte(nil), prefix...), h)
		if !bytes.Equal(b[:len(prefix)], prefix) {
			t.Fatalf("AppendHeader(%+v) overwrote dst: % x", h, b)
		}
		wire := b[len(prefix):]
		if len(wire) != h.Size() {
			t.Fatalf("AppendHeader(%+v) wrote %d bytes, Size() = %d", h, len(wire), h.Size())
		}
		if alone := frame.AppendHeader(nil, h); !bytes.Equal(alone, wire) {
			t.Fatalf("AppendHeader(nil, %+v) = % x, but % x after a prefix", h, alone, wire)
		}
		got, n, err := frame.ParseHeader(wire)
		if err != nil || n != len(wire) || got != h {
			t.Fatalf("ParseHeader(AppendHeader(%+v) = % x) = %+v, %d, %v", h, wire, got, n, err)
		}
		for k := range len(wire) {
			if _, n, err := frame.ParseHeader(wire[:k]); n != 0 || err != nil {
				t.Fatalf("ParseHeader(% x), a prefix of %+v: n = %d, err = %v; want 0, nil", wire[:k], h, n, err)
			}
		}
	}
}

func toGobwas(h frame.Header) ws.Header {
	return ws.Header{
		Fin:    h.Fin,
		Rsv:    h.Rsv >> 4, // gobwas keeps RSV1..3 as bits 2..0
		OpCode: ws.OpCode(h.Op),
		Masked: h.Masked,
		Mask:   h.Mask,
		Length: h.Length,
	}
}

// sameAsGobwas reports how gh differs from h, or "" when it does not.
func sameAsGobwas(h frame.Header, gh ws.Header) string {
	var diff string
	if gh.Fin != h.Fin {
		diff += fmt.Sprintf(" fin %v/%v", h.Fin, gh.Fin)
	}
	r1, r2, r3 := ws.RsvBits(gh.Rsv)
	if r1 != (h.Rsv&frame.RSV1 != 0) || r2 != (h.Rsv&frame.RSV2 != 0) || r3 != (h.Rsv&frame.RSV3 != 0) {
		diff += fmt.Sprintf(" rsv %#x/%#x", h.Rsv, gh.Rsv)
	}
	if byte(gh.OpCode) != byte(h.Op) {
		diff += fmt.Sprintf(" opcode %#x/%#x", byte(h.Op), byte(gh.OpCode))
	}
	if gh.Masked != h.Masked || gh.Mask != h.Mask {
		diff += fmt.Sprintf(" mask %v %x/%v %x", h.Masked, h.Mask, gh.Masked, gh.Mask)
	}
	if gh.Length != h.Length {
		diff += fmt.Sprintf(" length %d/%d", h.Length, gh.Length)
	}
	return diff
}

func TestHeaderMatchesGobwas(t *testing.T) {
	r := rand.New(rand.NewPCG(6455, 2))
	var out bytes.Buffer
	for range 20000 {
		h := randomHeader(r)
		wire := frame.AppendHeader(nil, h)

		rd := bytes.NewReader(wire)
		gh, err := ws.ReadHeader(rd)
		if err != nil {
			t.Fatalf("gobwas ReadHeader(% x) of %+v: %v", wire, h, err)
		}
		if rd.Len() != 0 {
			t.Fatalf("gobwas ReadHeader(% x) left %d bytes of the header", wire, rd.Len())
		}
		if d := sameAsGobwas(h, gh); d != "" {
			t.Fatalf("% x: wskit/gobwas differ:%s", wire, d)
		}

		out.Reset()
		if err := ws.WriteHeader(&out, toGobwas(h)); err != nil {
			t.Fatalf("gobwas WriteHeader(%+v): %v", h, err)
		}
		if !bytes.Equal(out.Bytes(), wire) {
			t.Fatalf("%+v: AppendHeader wrote % x, gobwas WriteHeader % x", h, wire, out.Bytes())
		}
		got, n, err := frame.ParseHeader(out.Bytes())
		if err != nil || n != out.Len() || got != h {
			t.Fatalf("ParseHeader(gobwas % x) = %+v, %d, %v; want %+v", out.Bytes(), got, n, err, h)
		}
	}
}

// TestParseHeaderRejectsWhatGobwasChecks runs ParseHeader and gobwas's
// CheckHeader over every first byte and every 7-bit length field: both must
// agree on what RFC 6455 forbids in a header.
func TestParseHeaderRejectsWhatGobwasChecks(t *testing.T) {
	for b0 := range 256 {
		for b1 := range 256 {
			// An extended length, if any, is over 125 and has its top bit clear.
			wire := []byte{byte(b0), byte(b1), 0x01, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}
			_, n, err := frame.ParseHeader(wire)
			gh, gerr := ws.ReadHeader(bytes.NewReader(wire))
			if gerr != nil {
				t.Fatalf("gobwas ReadHeader(% x): %v", wire, gerr)
			}
			cerr := ws.CheckHeader(gh, ws.StateExtended|ws.StateFragmented)
			// Continuation rules are the assembler's business, not the header's.
			if cerr == ws.ErrProtocolContinuationExpected || cerr == ws.ErrProtocolContinuationUnexpected {
				cerr = nil
			}
			if (err == nil) != (cerr == nil) {
				t.Errorf("% x: ParseHeader: n = %d, err = %v; gobwas CheckHeader: %v", wire[:2], n, err, cerr)
			}
		}
	}
}

var benchHeaders = []struct {
	name string
	h    frame.Header
}{
	{"small", frame.Header{Fin: true, Op: frame.OpText, Masked: true, Mask: rfcMask, Length: 100}},
	{"medium", frame.Header{Fin: true, Op: frame.OpBinary, Masked: true, Mask: rfcMask, Length: 4096}},
	{"large", frame.Header{Fin: true, Op: frame.OpBinary, Masked: true, Mask: rfcMask, Length: 1 << 20}},
}

var (
	sinkHeader frame.Header
	sinkBytes  []byte
)

func BenchmarkParseHeader(b *testing.B) {
	for _, bc := range benchHeaders {
		wire := frame.AppendHeader(nil, bc.h)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(wire)))
			for b.Loop() {
				h, n, err := frame.ParseHeader(wire)
				if err != nil || n != len(wire) {
					b.Fatalf("ParseHeader: %d, %v", n, err)
				}
				sinkHeader = h
			}
		})
	}
}

func BenchmarkAppendHeader(b *testing.B) {
	for _, bc := range benchHeaders {
		dst := make([]byte, 0, frame.MaxHeaderSize)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(bc.h.Size()))
			for b.Loop() {
				dst = frame.AppendHeader(dst[:0], bc.h)
			}
			sinkBytes = dst
		})
	}
}

func TestHeaderDoesNotAllocate(t *testing.T) {
	masked64 := frame.Header{Fin: true, Op: frame.OpBinary, Masked: true, Mask: rfcMask, Length: 1 << 40}
	wire := frame.AppendHeader(nil, masked64)
	dst := make([]byte, 0, frame.MaxHeaderSize)
	tests := []struct {
		name string
		f    func()
	}{
		{"ParseHeader", func() {
			h, n, err := frame.ParseHeader(wire)
			if err != nil || n != len(wire) {
				panic("ParseHeader failed")
			}
			sinkHeader = h
		}},
		{"ParseHeader/prefix", func() {
			sinkHeader, _, _ = frame.ParseHeader(wire[:5])
		}},
		{"ParseHeader/error", func() {
			_, _, err := frame.ParseHeader([]byte{0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0})
			if err == nil {
				panic("no error")
			}
		}},
		{"AppendHeader", func() {
			dst = frame.AppendHeader(dst[:0], masked64)
		}},
	}
	for _, tc := range tests {
		if allocs := testing.AllocsPerRun(1000, tc.f); allocs != 0 {
			t.Errorf("%s: %.1f allocations per run, want 0", tc.name, allocs)
		}
	}
}
