package fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/gobwas/ws"

	"github.com/wskit/wskit/frame"
)

// headerSeeds are headers (some with payload bytes after them) and broken
// headers for the header targets.
var headerSeeds = [][]byte{
	{},
	{0x81},
	{0x81, 0x05, 'H', 'e', 'l', 'l', 'o'},
	{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58},
	{0x82, 0x7E, 0x00, 0x7E},
	{0x82, 0x7E, 0x01, 0x00},
	{0x82, 0x7E, 0x00, 0x05}, // a 7-bit length in 16 bits
	{0x82, 0xFE, 0xFF, 0xFF, 1, 2, 3, 4},
	{0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0},
	{0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4},
	{0x01, 0x03, 'a', 'b', 'c'},
	{0xF1, 0x00},
	{0x88, 0x7D},
	{0x89, 0x80, 1, 2, 3, 4},
	{0x8A, 0x00},
	{0x83, 0x00},         // reserved opcode
	{0x8B, 0x00},         // reserved control opcode
	{0x09, 0x00},         // non-final ping
	{0x88, 0x7E, 0, 126}, // close of 126 bytes
	{0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0},
	{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4},
}

// headerViolation is RFC 6455 §5.2 and §5.5 stated on raw bytes: the error
// ParseHeader must return for b, or nil when the bytes prove no violation.
// A reserved control opcode without FIN breaks two rules at the first byte;
// either error may be reported, and both are returned.
func headerViolation(b []byte) (err, alt error) {
	if len(b) == 0 {
		return nil, nil
	}
	op := frame.Opcode(b[0] & 0x0F)
	fin := b[0]&0x80 != 0
	control := op >= 0x8
	reserved := (op >= 0x3 && op <= 0x7) || op >= 0xB
	switch {
	case reserved && control && !fin:
		return frame.ErrReservedOpcode, frame.ErrFragmentedControl
	case reserved:
		return frame.ErrReservedOpcode, nil
	case control && !fin:
		return frame.ErrFragmentedControl, nil
	}
	if len(b) < 2 {
		return nil, nil
	}
	l7 := b[1] & 0x7F
	if control && l7 > 125 {
		return frame.ErrControlTooLong, nil
	}
	if l7 == 127 && len(b) >= 3 && b[2]&0x80 != 0 {
		return frame.ErrLengthOverflow, nil
	}
	return nil, nil
}

// headerSize is the size of a header whose second byte is b1.
func headerSize(b1 byte) int {
	n := 2
	switch b1 & 0x7F {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// minimalLength reports whether the header in b encodes its length in the
// fewest bytes, as AppendHeader does.
func minimalLength(b []byte) bool {
	switch b[1] & 0x7F {
	case 126:
		return binary.BigEndian.Uint16(b[2:]) > 125
	case 127:
		return binary.BigEndian.Uint64(b[2:]) > 0xFFFF
	}
	return true
}

type parsed struct {
	h   frame.Header
	n   int
	err string // the error's text: each call builds its own error value
}

func parse(b []byte) parsed {
	h, n, err := frame.ParseHeader(b)
	if n == 0 || err != nil {
		h = frame.Header{} // the header is meaningful only once complete
	}
	var text string
	if err != nil {
		text = err.Error()
	}
	return parsed{h, n, text}
}

// FuzzParseHeader checks ParseHeader against an independent statement of
// RFC 6455's header rules, re-encodes what it parses, and checks that
// growing prefixes of the input never change a verdict once given.
func FuzzParseHeader(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := frame.ParseHeader(b)
		if n < 0 || n > len(b) || n > frame.MaxHeaderSize {
			t.Fatalf("ParseHeader(% x): n = %d out of range", b, n)
		}

		want, alt := headerViolation(b)
		if !errors.Is(err, want) && (alt == nil || !errors.Is(err, alt)) {
			t.Fatalf("ParseHeader(% x): error %v, want %v", b, err, want)
		}
		if err == nil {
			wantN := 0
			if len(b) >= 2 && len(b) >= headerSize(b[1]) {
				wantN = headerSize(b[1])
			}
			if n != wantN {
				t.Fatalf("ParseHeader(% x): n = %d, want %d", b, n, wantN)
			}
		}

		if err == nil && n > 0 {
			if h.Length < 0 {
				t.Fatalf("ParseHeader(% x): negative length %d", b, h.Length)
			}
			if h.Rsv&^(frame.RSV1|frame.RSV2|frame.RSV3) != 0 {
				t.Fatalf("ParseHeader(% x): Rsv %#x has bits other than RSV1-3", b, h.Rsv)
			}
			if !h.Masked && h.Mask != [4]byte{} {
				t.Fatalf("ParseHeader(% x): unmasked header with mask %x", b, h.Mask)
			}
			enc := frame.AppendHeader(nil, h)
			if len(enc) != h.Size() {
				t.Fatalf("%+v: AppendHeader wrote %d bytes, Size() = %d", h, len(enc), h.Size())
			}
			h2, n2, err2 := frame.ParseHeader(enc)
			if err2 != nil || n2 != len(enc) || h2 != h {
				t.Fatalf("ParseHeader(% x) = %+v; re-encoded as % x it parses as %+v, %d, %v",
					b[:n], h, enc, h2, n2, err2)
			}
			if minimalLength(b[:n]) && !bytes.Equal(enc, b[:n]) {
				t.Fatalf("ParseHeader(% x) = %+v, re-encoded as % x", b[:n], h, enc)
			}
		}

		// Prefixes: once a prefix gives a header or an error, every longer
		// prefix gives the same. A header takes at most 14 bytes, so
		// prefixes past 15 bytes decide nothing new.
		last := parse(b[:0])
		for k := 1; k <= len(b) && k <= frame.MaxHeaderSize+1; k++ {
			cur := parse(b[:k])
			if (last.err != "" || last.n > 0) && cur != last {
				t.Fatalf("ParseHeader(% x) = %+v, but with one more byte (% x) = %+v", b[:k-1], last, b[:k], cur)
			}
			last = cur
		}
		if full := parse(b); full != last {
			t.Fatalf("ParseHeader(% x) = %+v, but %+v on the whole input", b[:min(len(b), frame.MaxHeaderSize+1)], last, full)
		}
	})
}

// gobwasHeaderError reports which RFC rule gobwas's CheckHeader finds
// broken in gh, leaving out continuation rules (the assembler's business)
// and RSV and mask rules (the decoder's).
func gobwasHeaderError(gh ws.Header) error {
	err := ws.CheckHeader(gh, ws.StateExtended|ws.StateFragmented)
	if err == ws.ErrProtocolContinuationExpected || err == ws.ErrProtocolContinuationUnexpected {
		return nil
	}
	return err
}

// FuzzParseHeaderGobwas compares ParseHeader with gobwas/ws's ReadHeader.
// Where wskit parses a whole header, gobwas must read the same fields from
// the same bytes and find nothing against the RFC in it; where wskit asks
// for more bytes, gobwas must run out of input too; where wskit rejects a
// header, the rejection must be one RFC 6455 requires.
func FuzzParseHeaderGobwas(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := frame.ParseHeader(b)
		rd := bytes.NewReader(b)
		gh, gerr := ws.ReadHeader(rd)
		gotAll := gerr == nil
		short := errors.Is(gerr, io.EOF) || errors.Is(gerr, io.ErrUnexpectedEOF)

		switch {
		case err == nil && n > 0:
			if !gotAll {
				t.Fatalf("% x: wskit parsed %+v, gobwas failed: %v", b, h, gerr)
			}
			if read := len(b) - rd.Len(); read != n {
				t.Fatalf("% x: wskit took %d header bytes, gobwas %d", b, n, read)
			}
			if d := sameAsGobwas(h, gh); d != "" {
				t.Fatalf("% x: wskit/gobwas differ:%s", b, d)
			}
			if cerr := gobwasHeaderError(gh); cerr != nil {
				t.Fatalf("% x: wskit accepted %+v, gobwas's CheckHeader says %v", b, h, cerr)
			}

		case err == nil:
			if !short {
				t.Fatalf("% x: wskit needs more bytes, gobwas read %+v, %v", b, gh, gerr)
			}

		case errors.Is(err, frame.ErrReservedOpcode):
			if op := b[0] & 0x0F; !(op >= 0x3 && op <= 0x7) && op < 0xB {
				t.Fatalf("% x: ErrReservedOpcode for opcode %#x", b, op)
			}
			if gotAll && !gh.OpCode.IsReserved() {
				t.Fatalf("% x: ErrReservedOpcode, but gobwas reads opcode %#x", b, byte(gh.OpCode))
			}

		case errors.Is(err, frame.ErrFragmentedControl):
			if b[0]&0x08 == 0 || b[0]&0x80 != 0 {
				t.Fatalf("% x: ErrFragmentedControl on first byte %#x", b, b[0])
			}
			if gotAll && gobwasHeaderError(gh) == nil {
				t.Fatalf("% x: ErrFragmentedControl, but gobwas's CheckHeader accepts %+v", b, gh)
			}

		case errors.Is(err, frame.ErrControlTooLong):
			// A control frame's 7-bit length field over 125 announces either
			// more than 125 bytes or a length not in its minimal encoding:
			// both are forbidden (RFC 6455 §5.2, §5.5).
			if len(b) < 2 || b[0]&0x08 == 0 || b[1]&0x7F <= 125 {
				t.Fatalf("% x: ErrControlTooLong for a frame that is not a long control frame", b)
			}
			if gotAll && gh.Length > ws.MaxControlFramePayloadSize && gobwasHeaderError(gh) != ws.ErrProtocolControlPayloadOverflow {
				t.Fatalf("% x: ErrControlTooLong, but gobwas's CheckHeader says %v", b, gobwasHeaderError(gh))
			}

		case errors.Is(err, frame.ErrLengthOverflow):
			if len(b) < 3 || b[1]&0x7F != 127 || b[2]&0x80 == 0 {
				t.Fatalf("% x: ErrLengthOverflow for a length without its top bit set", b)
			}
			if gerr != ws.ErrHeaderLengthMSB && !short {
				t.Fatalf("% x: ErrLengthOverflow, but gobwas read %+v, %v", b, gh, gerr)
			}

		default:
			t.Fatalf("% x: ParseHeader returned an unexpected error %v", b, err)
		}
	})
}

// sameAsGobwas reports how gh differs from h, or "" when it does not.
// gobwas keeps RSV1..3 as the bits 2..0 of its Rsv.
func sameAsGobwas(h frame.Header, gh ws.Header) string {
	var diff string
	if gh.Fin != h.Fin {
		diff += " fin"
	}
	r1, r2, r3 := ws.RsvBits(gh.Rsv)
	if r1 != (h.Rsv&frame.RSV1 != 0) || r2 != (h.Rsv&frame.RSV2 != 0) || r3 != (h.Rsv&frame.RSV3 != 0) {
		diff += " rsv"
	}
	if byte(gh.OpCode) != byte(h.Op) {
		diff += " opcode"
	}
	if gh.Masked != h.Masked {
		diff += " masked"
	}
	if gh.Masked && gh.Mask != h.Mask {
		diff += " mask"
	}
	if gh.Length != h.Length {
		diff += " length"
	}
	return diff
}
