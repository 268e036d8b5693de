package frame_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wskit/wskit/frame"
)

// sendable states RFC 6455 §7.4 and the IANA registry on its own: which
// codes may travel in a close frame.
func sendable(code int) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true // normal, going away, protocol error, unsupported data
	case code >= 1004 && code <= 1006:
		return false // reserved, no status, abnormal: never on the wire
	case code >= 1007 && code <= 1014:
		return true // registered with IANA
	case code == 1015:
		return false // TLS handshake: never on the wire
	case code >= 3000 && code <= 3999:
		return true // registered by libraries and frameworks
	case code >= 4000 && code <= 4999:
		return true // private use
	}
	return false
}

func TestValidOnWire(t *testing.T) {
	for code := 0; code <= 0xFFFF; code++ {
		if got, want := frame.CloseCode(code).ValidOnWire(), sendable(code); got != want {
			t.Errorf("CloseCode(%d).ValidOnWire() = %v, want %v", code, got, want)
		}
	}
}

func TestCloseCodeString(t *testing.T) {
	tests := []struct {
		code frame.CloseCode
		want string
	}{
		{0, "0"},
		{999, "999"},
		{1000, "1000 normal closure"},
		{1002, "1002 protocol error"},
		{1005, "1005 no status received"},
		{1006, "1006 abnormal closure"},
		{1007, "1007 invalid frame payload data"},
		{1009, "1009 message too big"},
		{1015, "1015 TLS handshake"},
		{1016, "1016"},
		{2999, "2999"},
		{3000, "3000 unauthorized"},
		{3001, "3001"},
		{3008, "3008 timeout"},
		{4000, "4000 private"},
		{4999, "4999 private"},
		{5000, "5000"},
		{65535, "65535"},
	}
	for _, tc := range tests {
		if got := tc.code.String(); got != tc.want {
			t.Errorf("CloseCode(%d).String() = %q, want %q", uint16(tc.code), got, tc.want)
		}
	}
}

// closePayload returns a close payload of code and reason.
func closePayload(code uint16, reason string) []byte {
	return append([]byte{byte(code >> 8), byte(code)}, reason...)
}

func TestParseClose(t *testing.T) {
	long := strings.Repeat("r", frame.MaxCloseReason)
	multibyte := "héllo ✓ 🙂 日本"
	tests := []struct {
		name   string
		in     []byte
		code   frame.CloseCode
		reason string
		err    error
	}{
		{
			name: "empty payload",
			in:   []byte{},
			code: frame.CloseNoStatus,
		},
		{
			name: "nil payload",
			in:   nil,
			code: frame.CloseNoStatus,
		},
		{
			name: "one byte",
			in:   []byte{0x03},
			err:  frame.ErrCloseTooShort,
		},
		{
			name: "code alone",
			in:   closePayload(1000, ""),
			code: frame.CloseNormal,
		},
		{
			name:   "code and reason",
			in:     closePayload(1001, "bye"),
			code:   frame.CloseGoingAway,
			reason: "bye",
		},
		{
			name:   "multibyte reason",
			in:     closePayload(4999, multibyte),
			code:   4999,
			reason: multibyte,
		},
		{
			name:   "reason of 123 bytes",
			in:     closePayload(3000, long),
			code:   3000,
			reason: long,
		},
		{
			name: "lowest sendable code",
			in:   closePayload(1000, ""),
			code: 1000,
		},
		{
			name: "1003",
			in:   closePayload(1003, ""),
			code: 1003,
		},
		{
			name: "1007",
			in:   closePayload(1007, ""),
			code: 1007,
		},
		{
			name: "1014",
			in:   closePayload(1014, ""),
			code: 1014,
		},
		{
			name: "invalid UTF-8 byte",
			in:   closePayload(1000, "ok\xff"),
			err:  frame.ErrCloseReasonUTF8,
		},
		{
			name: "cut multibyte sequence",
			in:   closePayload(1000, "euro \xe2\x82"),
			err:  frame.ErrCloseReasonUTF8,
		},
		{
			name: "UTF-16 surrogate",
			in:   closePayload(1000, "\xed\xa0\x80"),
			err:  frame.ErrCloseReasonUTF8,
		},
		{
			name: "overlong encoding",
			in:   closePayload(1000, "\xc0\xaf"),
			err:  frame.ErrCloseReasonUTF8,
		},
		{
			name: "above U+10FFFF",
			in:   closePayload(4000, "\xf4\x90\x80\x80"),
			err:  frame.ErrCloseReasonUTF8,
		},
	}
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535} {
		tests = append(tests, struct {
			name   string
			in     []byte
			code   frame.CloseCode
			reason string
			err    error
		}{
			name: "code " + frame.CloseCode(code).String(),
			in:   closePayload(code, "reason"),
			err:  frame.ErrCloseCode,
		})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, reason, err := frame.ParseClose(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("ParseClose(% x) = %v, %q, %v; want error %v", tc.in, code, reason, err, tc.err)
				}
				return
			}
			if err != nil || code != tc.code || string(reason) != tc.reason {
				t.Fatalf("ParseClose(% x) = %v, %q, %v; want %v, %q, nil", tc.in, code, reason, err, tc.code, tc.reason)
			}
			if len(reason) > 0 && &reason[0] != &tc.in[2] {
				t.Errorf("ParseClose: reason does not point into the payload")
			}
		})
	}
}

func TestParseCloseErrorCodes(t *testing.T) {
	tests := []struct {
		in   []byte
		code frame.CloseCode
	}{
		{[]byte{0x03}, frame.CloseProtocolError},
		{closePayload(1005, ""), frame.CloseProtocolError},
		{closePayload(999, ""), frame.CloseProtocolError},
		{closePayload(1000, "\xff"), frame.CloseInvalidPayload},
	}
	for _, tc := range tests {
		_, _, err := frame.ParseClose(tc.in)
		var pe *frame.ProtocolError
		if !errors.As(err, &pe) || pe.Code != tc.code {
			t.Errorf("ParseClose(% x) = %v, want a *frame.ProtocolError with code %d", tc.in, err, tc.code)
		}
	}
}

func TestAppendClose(t *testing.T) {
	tests := []struct {
		name   string
		code   frame.CloseCode
		reason string
		want   []byte
		err    error
	}{
		{
			name: "no status and no reason: empty payload",
			code: frame.CloseNoStatus,
			want: []byte{},
		},
		{
			name: "code alone",
			code: frame.CloseNormal,
			want: []byte{0x03, 0xE8},
		},
		{
			name:   "code and reason",
			code:   frame.CloseGoingAway,
			reason: "bye",
			want:   []byte{0x03, 0xE9, 'b', 'y', 'e'},
		},
		{
			name:   "private code and multibyte reason",
			code:   4321,
			reason: "über ✓",
			want:   closePayload(4321, "über ✓"),
		},
		{
			name:   "reason of 123 bytes",
			code:   frame.CloseNormal,
			reason: strings.Repeat("x", 123),
			want:   closePayload(1000, strings.Repeat("x", 123)),
		},
		{
			name:   "multibyte reason of 123 bytes",
			code:   frame.ClosePolicyViolation,
			reason: strings.Repeat("€", 41),
			want:   closePayload(1008, strings.Repeat("€", 41)),
		},
		{
			name:   "reason of 124 bytes",
			code:   frame.CloseNormal,
			reason: strings.Repeat("x", 124),
			err:    frame.ErrCloseReasonTooLong,
		},
		{
			name:   "multibyte reason of 124 bytes",
			code:   frame.CloseNormal,
			reason: strings.Repeat("é", 62),
			err:    frame.ErrCloseReasonTooLong,
		},
		{
			name:   "no status with a reason",
			code:   frame.CloseNoStatus,
			reason: "why",
			err:    frame.ErrCloseCodeNotSendable,
		},
		{
			name: "abnormal closure",
			code: frame.CloseAbnormal,
			err:  frame.ErrCloseCodeNotSendable,
		},
		{
			name: "reserved 1004",
			code: frame.CloseReserved,
			err:  frame.ErrCloseCodeNotSendable,
		},
		{
			name: "TLS handshake",
			code: frame.CloseTLSHandshake,
			err:  frame.ErrCloseCodeNotSendable,
		},
		{
			name: "zero",
			code: 0,
			err:  frame.ErrCloseCodeNotSendable,
		},
		{
			name: "999",
			code: 999,
			err:  frame.ErrCloseCodeNotSendable,
		},
		{
			name: "2999",
			code: 2999,
			err:  frame.ErrCloseCodeNotSendable,
		},
		{
			name: "5000",
			code: 5000,
			err:  frame.ErrCloseCodeNotSendable,
		},
		{
			name:   "invalid UTF-8 reason",
			code:   frame.CloseNormal,
			reason: "bad \xff",
			err:    frame.ErrCloseReasonInvalid,
		},
		{
			name:   "cut multibyte reason",
			code:   frame.CloseNormal,
			reason: "\xf0\x9f\x99",
			err:    frame.ErrCloseReasonInvalid,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("frame header")
			dst := append(make([]byte, 0, 200), prefix...)
			got, err := frame.AppendClose(dst, tc.code, tc.reason)
			if !errors.Is(err, tc.err) {
				t.Fatalf("AppendClose(%v, %q) error = %v, want %v", tc.code, tc.reason, err, tc.err)
			}
			if !bytes.HasPrefix(got, prefix) {
				t.Fatalf("AppendClose(%v, %q) lost dst: %q", tc.code, tc.reason, got)
			}
			if tc.err != nil {
				if len(got) != len(prefix) {
					t.Fatalf("AppendClose(%v, %q) failed but appended % x", tc.code, tc.reason, got[len(prefix):])
				}
				return
			}
			if payload := got[len(prefix):]; !bytes.Equal(payload, tc.want) {
				t.Fatalf("AppendClose(%v, %q) = % x, want % x", tc.code, tc.reason, payload, tc.want)
			}
		})
	}
}

func TestCloseRoundTrip(t *testing.T) {
	reasons := []string{"", "a", "going away", "日本語", "🙂🙂", strings.Repeat("ab", 61) + "c", strings.Repeat("ü", 61) + "x"}
	for code := 0; code <= 5100; code++ {
		c := frame.CloseCode(code)
		if !c.ValidOnWire() {
			continue
		}
		for _, reason := range reasons {
			payload, err := frame.AppendClose(nil, c, reason)
			if err != nil {
				t.Fatalf("AppendClose(%v, %q): %v", c, reason, err)
			}
			got, gotReason, err := frame.ParseClose(payload)
			if err != nil || got != c || string(gotReason) != reason {
				t.Fatalf("ParseClose(AppendClose(%v, %q)) = %v, %q, %v", c, reason, got, gotReason, err)
			}
		}
	}
	payload, err := frame.AppendClose(nil, frame.CloseNoStatus, "")
	if err != nil || len(payload) != 0 {
		t.Fatalf("AppendClose(CloseNoStatus, \"\") = % x, %v", payload, err)
	}
	if code, reason, err := frame.ParseClose(payload); err != nil || code != frame.CloseNoStatus || len(reason) != 0 {
		t.Fatalf("ParseClose(empty) = %v, %q, %v", code, reason, err)
	}
}

// fitReason is the longest prefix of s that has at most MaxCloseReason
// bytes and does not end inside a UTF-8 sequence.
func fitReason(s string) string {
	end := 0
	for i, r := range s {
		size := utf8.RuneLen(r)
		if i+size > frame.MaxCloseReason {
			break
		}
		end = i + size
	}
	return s[:end]
}

func TestErrorfTruncates(t *testing.T) {
	tests := []struct {
		name   string
		reason string
	}{
		{"short", "frame too big"},
		{"exactly 123 bytes", strings.Repeat("z", 123)},
		{"124 bytes", strings.Repeat("z", 124)},
		{"300 bytes", strings.Repeat("0123456789", 30)},
		{"2-byte runes split at 123", strings.Repeat("é", 62)},
		{"2-byte runes, 1-byte offset", "a" + strings.Repeat("é", 70)},
		{"3-byte runes split at 123", "a" + strings.Repeat("€", 41)},
		{"3-byte runes, 2-byte offset", "ab" + strings.Repeat("€", 41)},
		{"3-byte runes ending at 123", strings.Repeat("€", 42)},
		{"4-byte runes split at 123", strings.Repeat("🙂", 31)},
		{"4-byte runes, 2-byte offset", "ab" + strings.Repeat("🙂", 31)},
		{"4-byte runes, 3-byte offset", "abc" + strings.Repeat("🙂", 31)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := frame.Errorf(frame.ClosePolicyViolation, "%s", tc.reason)
			want := fitReason(tc.reason)
			if e.Reason != want {
				t.Fatalf("Errorf(%d bytes).Reason = %q (%d bytes), want %q (%d bytes)",
					len(tc.reason), e.Reason, len(e.Reason), want, len(want))
			}
			if e.Code != frame.ClosePolicyViolation {
				t.Fatalf("Errorf: code %v, want 1008", e.Code)
			}
			if len(e.Reason) > frame.MaxCloseReason || !utf8.ValidString(e.Reason) {
				t.Fatalf("Errorf: reason of %d bytes, valid UTF-8 %v", len(e.Reason), utf8.ValidString(e.Reason))
			}
			if _, err := frame.AppendClose(nil, e.Code, e.Reason); err != nil {
				t.Fatalf("Errorf's reason does not fit a close frame: %v", err)
			}
		})
	}
}

func TestErrorfFormats(t *testing.T) {
	e := frame.Errorf(frame.CloseMessageTooBig, "frame of %d bytes over %s", 70000, "the limit")
	if e.Reason != "frame of 70000 bytes over the limit" || e.Code != frame.CloseMessageTooBig {
		t.Fatalf("Errorf = %+v", e)
	}
}

func TestProtocolErrorText(t *testing.T) {
	tests := []*frame.ProtocolError{
		frame.ErrReservedOpcode,
		frame.ErrCloseTooShort,
		frame.ErrCloseReasonUTF8,
		frame.Errorf(frame.CloseMessageTooBig, "message of %d bytes", 99),
		frame.Errorf(4001, "custom"),
		{Code: frame.CloseInternalError, Reason: "boom"},
	}
	for _, e := range tests {
		msg := e.Error()
		code := strings.Fields(e.Code.String())[0]
		if !strings.Contains(msg, e.Reason) || !strings.Contains(msg, code) {
			t.Errorf("%#v.Error() = %q: want the reason %q and the code %s", e, msg, e.Reason, code)
		}
	}
	if msg := frame.ErrCloseReasonUTF8.Error(); !strings.Contains(msg, "1007") {
		t.Errorf("ErrCloseReasonUTF8.Error() = %q, want code 1007 in it", msg)
	}
	if msg := frame.Errorf(4001, "x").Error(); !strings.Contains(msg, "4001") {
		t.Errorf("Errorf(4001).Error() = %q, want code 4001 in it", msg)
	}
}

func TestCloseErrorsCarryTheirCodes(t *testing.T) {
	tests := []struct {
		err  *frame.ProtocolError
		code frame.CloseCode
	}{
		{frame.ErrCloseTooShort, 1002},
		{frame.ErrCloseCode, 1002},
		{frame.ErrCloseReasonUTF8, 1007},
	}
	for _, tc := range tests {
		if tc.err.Code != tc.code {
			t.Errorf("%v: code %d, want %d", tc.err, tc.err.Code, tc.code)
		}
		if tc.err.Reason == "" || len(tc.err.Reason) > frame.MaxCloseReason {
			t.Errorf("%v: reason of %d bytes does not fit a close frame", tc.err, len(tc.err.Reason))
		}
	}
	if frame.MaxCloseReason != 123 {
		t.Errorf("MaxCloseReason = %d, want 123", frame.MaxCloseReason)
	}
}

// Errors name the offending value and still match their sentinel.
func TestErrorsNameTheOffendingValue(t *testing.T) {
	tests := []struct {
		err  error
		kind error
		text string
	}{
		{func() error { _, _, err := frame.ParseHeader([]byte{0x83}); return err }(), frame.ErrReservedOpcode, "reserved opcode 0x3"},
		{func() error { _, _, err := frame.ParseHeader([]byte{0x09}); return err }(), frame.ErrFragmentedControl, "ping frame is fragmented"},
		{func() error { _, _, err := frame.ParseHeader([]byte{0x88, 0x7e}); return err }(), frame.ErrControlTooLong, "close frame payload longer"},
		{func() error { _, _, err := frame.ParseClose([]byte{0x03, 0xed}); return err }(), frame.ErrCloseCode, "code 1005"},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.kind) || !strings.Contains(tt.err.Error(), tt.text) {
			t.Errorf("error %q: want it to match %q and contain %q", tt.err, tt.kind, tt.text)
		}
		if errors.Is(tt.err, frame.ErrLengthOverflow) {
			t.Errorf("error %q matches an unrelated sentinel", tt.err)
		}
	}
}
