package fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/wskit/wskit/frame"
)

// sendable is RFC 6455 §7.4 with the IANA registry, stated apart from
// frame.CloseCode.ValidOnWire: the codes a close frame may carry.
func sendable(c uint16) bool {
	return c >= 1000 && c <= 1003 || c >= 1007 && c <= 1014 || c >= 3000 && c <= 4999
}

// FuzzParseClose checks ParseClose against the rules of RFC 6455 §5.5.1 and
// §7.4, and AppendClose against ParseClose: what parses is re-encoded to the
// same bytes, and AppendClose refuses exactly what may not be sent.
func FuzzParseClose(f *testing.F) {
	for _, s := range []string{
		"",
		"\x03",
		"\x03\xe8",
		"\x03\xe9going away",
		"\x03\xefpolicy",
		"\x0f\x9fprivate ✓",
		"\x0b\xb8registered",
		"\x03\xedno status on the wire",
		"\x03\xee",
		"\x03\xf7",
		"\x03\xe7",
		"\x13\x88",
		"\xff\xff",
		"\x03\xe8bad \xff utf-8",
		"\x03\xe8cut \xe2\x82",
		"\x03\xe8" + "123456789012345678901234567890123456789012345678901234567890" +
			"123456789012345678901234567890123456789012345678901234567890abc", // 123 bytes of reason
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		code, reason, err := frame.ParseClose(b)

		var wantErr error
		switch {
		case len(b) == 1:
			wantErr = frame.ErrCloseTooShort
		case len(b) >= 2 && !sendable(binary.BigEndian.Uint16(b)):
			wantErr = frame.ErrCloseCode
		case len(b) >= 2 && !utf8.Valid(b[2:]):
			wantErr = frame.ErrCloseReasonUTF8
		}
		if !errors.Is(err, wantErr) {
			t.Fatalf("ParseClose(% x): error %v, want %v", b, err, wantErr)
		}
		if err != nil {
			return
		}

		if len(b) == 0 {
			if code != frame.CloseNoStatus || len(reason) != 0 {
				t.Fatalf("ParseClose(empty) = %v, %q", code, reason)
			}
		} else {
			if uint16(code) != binary.BigEndian.Uint16(b) || !code.ValidOnWire() {
				t.Fatalf("ParseClose(% x): code %v", b, code)
			}
			if !bytes.Equal(reason, b[2:]) || !utf8.Valid(reason) {
				t.Fatalf("ParseClose(% x): reason %q", b, reason)
			}
		}
		if len(b) <= frame.MaxControlPayload && len(reason) > frame.MaxCloseReason {
			t.Fatalf("ParseClose(% x): reason of %d bytes", b, len(reason))
		}

		out, err := frame.AppendClose(nil, code, string(reason))
		if len(reason) > frame.MaxCloseReason {
			// Only a payload longer than a control frame can hold gets here.
			if err != frame.ErrCloseReasonTooLong {
				t.Fatalf("AppendClose(%v, %d-byte reason): error %v, want %v", code, len(reason), err, frame.ErrCloseReasonTooLong)
			}
			return
		}
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("AppendClose(ParseClose(% x)) = % x, %v", b, out, err)
		}
	})
}

// FuzzAppendClose checks AppendClose on any code and reason: it refuses
// exactly what may not be sent (when several rules are broken, any of their
// errors will do), and what it writes parses back.
func FuzzAppendClose(f *testing.F) {
	f.Add(uint16(1000), "")
	f.Add(uint16(1005), "")
	f.Add(uint16(1005), "x")
	f.Add(uint16(1006), "abnormal")
	f.Add(uint16(4000), "ü")
	f.Add(uint16(3000), "bad \xc0\xaf")
	f.Add(uint16(1001), "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123")
	f.Fuzz(func(t *testing.T, c uint16, reason string) {
		code := frame.CloseCode(c)
		prefix := []byte{0xAA, 0xBB}
		out, err := frame.AppendClose(bytes.Clone(prefix), code, reason)
		if !bytes.HasPrefix(out, prefix) {
			t.Fatalf("AppendClose lost dst: % x", out)
		}
		out = out[len(prefix):]

		if code == frame.CloseNoStatus && reason == "" {
			if err != nil || len(out) != 0 {
				t.Fatalf("AppendClose(CloseNoStatus, \"\") = % x, %v", out, err)
			}
			return
		}
		var broken []error
		if !sendable(c) {
			broken = append(broken, frame.ErrCloseCodeNotSendable)
		}
		if len(reason) > frame.MaxCloseReason {
			broken = append(broken, frame.ErrCloseReasonTooLong)
		}
		if !utf8.ValidString(reason) {
			broken = append(broken, frame.ErrCloseReasonInvalid)
		}
		if len(broken) > 0 {
			for _, e := range broken {
				if err == e {
					if len(out) != 0 {
						t.Fatalf("AppendClose(%d, %q) failed with %v but wrote % x", c, reason, err, out)
					}
					return
				}
			}
			t.Fatalf("AppendClose(%d, %q): error %v, want one of %v", c, reason, err, broken)
		}
		if err != nil {
			t.Fatalf("AppendClose(%d, %q): %v", c, reason, err)
		}
		if len(out) > frame.MaxControlPayload {
			t.Fatalf("AppendClose(%d, %q) wrote %d bytes", c, reason, len(out))
		}
		gotCode, gotReason, err := frame.ParseClose(out)
		if err != nil || gotCode != code || string(gotReason) != reason {
			t.Fatalf("ParseClose(AppendClose(%d, %q)) = %v, %q, %v", c, reason, gotCode, gotReason, err)
		}
	})
}
