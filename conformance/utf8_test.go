package conformance

import (
	"strings"
	"testing"

	"github.com/wskit/wskit/frame"
)

// TestSection8_1_UTF8 checks that text messages must be UTF-8 (§5.6, §8.1):
// valid text comes back whatever its fragmentation, even with a rune split
// between fragments; invalid text fails the connection with 1007 (§7.4.1),
// and as soon as the bytes received prove it, without waiting for the end
// of the frame or of the message.
func TestSection8_1_UTF8(t *testing.T) {
	e := newEnv(t)
	const kosme = "κόσμε"
	var kosmeBytes []string
	for i := range len(kosme) {
		kosmeBytes = append(kosmeBytes, kosme[i:i+1])
	}
	valid := []struct {
		name  string
		parts []string
	}{
		{"ascii", []string{"Hello"}},
		{"kosme", []string{kosme}},
		{"2-byte bounds U+0080 U+07FF", []string{"\u0080\u07ff"}},
		{"3-byte bounds U+0800 U+FFFF", []string{"\u0800\uffff"}},
		{"around the surrogates U+D7FF U+E000", []string{"\ud7ff\ue000"}},
		{"4-byte bounds U+10000 U+10FFFF", []string{"\U00010000\U0010ffff"}},
		{"BOM and U+FFFD", []string{"\ufeff\ufffd"}},
		{"kosme split between runes", []string{"κό", "σμε"}},
		{"kosme one byte per fragment", kosmeBytes},
		{"3-byte rune split 1+2", []string{"\xe2", "\x82\xac"}},
		{"3-byte rune split 2+1", []string{"\xe2\x82", "\xac"}},
		{"4-byte rune split over four fragments", []string{"\xf0", "\x9f", "\x98", "\x80"}},
		{"rune split around an empty fragment", []string{"\xf0\x9f", "", "\x98\x80"}},
	}
	invalid := []struct {
		name  string
		parts []string
	}{
		{"0xFF", []string{"\xff"}},
		{"0xFE after text", []string{"abc\xfe"}},
		{"lone continuation byte", []string{"\x80"}},
		{"overlong 2-byte C0 80", []string{"\xc0\x80"}},
		{"overlong 2-byte C1 BF", []string{"\xc1\xbf"}},
		{"overlong 3-byte E0 80 AF", []string{"\xe0\x80\xaf"}},
		{"overlong 4-byte F0 80 80 AF", []string{"\xf0\x80\x80\xaf"}},
		{"surrogate ED A0 80", []string{"\xed\xa0\x80"}},
		{"surrogate ED BF BF", []string{"\xed\xbf\xbf"}},
		{"above U+10FFFF F4 90 80 80", []string{"\xf4\x90\x80\x80"}},
		{"F5", []string{"\xf5\x80\x80\x80"}},
		{"truncated at the end", []string{"ab\xe2\x82"}},
		{"truncated at the end of the last fragment", []string{"κ", "\xe2\x82"}},
		{"truncated before an ASCII byte", []string{"\xe2\x82a"}},
		{"invalid in the second fragment", []string{"hello", "\xff", "world"}},
		{"surrogate split between fragments", []string{"\xed", "\xa0\x80"}},
		{"continuation missing in the next fragment", []string{"\xe2\x82", "a"}},
	}
	var cases []exchange
	for _, v := range valid {
		cases = append(cases, exchange{name: "valid " + v.name, send: fragments(frame.OpText, v.parts...),
			replies: []reply{textReply(strings.Join(v.parts, ""))}})
	}
	for _, v := range invalid {
		cases = append(cases, exchange{name: "invalid " + v.name, send: fragments(frame.OpText, v.parts...), code: frame.CloseInvalidPayload})
	}
	cases = append(cases,
		exchange{name: "binary is not checked", send: binary([]byte("\xff\xc0\x80\xed\xa0\x80")),
			replies: []reply{message(frame.OpBinary, []byte("\xff\xc0\x80\xed\xa0\x80"))}},
		exchange{name: "invalid after a valid message", send: cat(text(kosme), text("\xff")),
			replies: []reply{textReply(kosme)}, code: frame.CloseInvalidPayload},
		// Validation restarts at each message.
		exchange{name: "no rune carried over from a binary message", send: cat(binary([]byte("\xe2\x82")), text("\xac")), replies: []reply{message(frame.OpBinary, []byte("\xe2\x82"))},
			code: frame.CloseInvalidPayload},

		// Fail fast: the server answers before the rest is sent.
		exchange{name: "fail fast in a cut frame", send: cut(true, frame.OpText, []byte("hello\xff"+strings.Repeat("x", 994)), 6),
			code: frame.CloseInvalidPayload},
		exchange{name: "fail fast in an unfinished message", send: fragment(frame.OpText, false, "ab\xc0"), code: frame.CloseInvalidPayload},
		exchange{name: "fail fast in a cut continuation",
			send: cat(fragment(frame.OpText, false, "abc"), cut(false, frame.OpContinuation, []byte("d\xed\xa0"+strings.Repeat("x", 97)), 3)),
			code: frame.CloseInvalidPayload},
		// A cut rune that can no longer become valid: F4 90 is above
		// U+10FFFF, ED A0 a surrogate, E0 80 overlong.
		exchange{name: "fail fast on F4 90", send: cut(true, frame.OpText, []byte("\xf4\x90"+strings.Repeat("x", 98)), 2), code: frame.CloseInvalidPayload},
		exchange{name: "fail fast on ED A0", send: cut(true, frame.OpText, []byte("\xed\xa0"+strings.Repeat("x", 98)), 2), code: frame.CloseInvalidPayload},
		exchange{name: "fail fast on E0 80", send: cut(true, frame.OpText, []byte("\xe0\x80"+strings.Repeat("x", 98)), 2), code: frame.CloseInvalidPayload},
		exchange{name: "fail fast on F0 80", send: cut(true, frame.OpText, []byte("\xf0\x80"+strings.Repeat("x", 98)), 2), code: frame.CloseInvalidPayload},
		exchange{name: "fail fast on a first fragment ending mid-rune then ASCII",
			send: cat(fragment(frame.OpText, false, "\xe2"), cut(true, frame.OpContinuation, []byte("a"+strings.Repeat("x", 99)), 1)),
			code: frame.CloseInvalidPayload},

		// The reason of a close frame is UTF-8 too (§5.5.1). §8.1 says to
		// fail the connection when UTF-8 expected is not UTF-8 and names no
		// code; wskit sends 1007, the code for data inconsistent with its
		// type (§7.4.1), as frame.ParseClose documents.
		exchange{name: "close reason invalid", send: closeFrame(1000, "bye\xff"), code: frame.CloseInvalidPayload},
		exchange{name: "close reason truncated", send: closeFrame(1000, "\xce\xba\xe2\x82"), code: frame.CloseInvalidPayload},
		exchange{name: "close reason surrogate", send: closeFrame(1000, "\xed\xa0\x80"), code: frame.CloseInvalidPayload},
		exchange{name: "close reason valid", send: closeFrame(1000, kosme), code: 1000},
	)
	runExchanges(t, e, "/echo", cases)
}
