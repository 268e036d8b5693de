package conformance

import (
	"strings"
	"testing"

	"github.com/wskit/wskit/frame"
)

// TestSection5_4_Fragmentation checks that fragmented messages are joined
// (a default session delivers, and so echoes, whole messages) and that the
// continuation rules of §5.4 are enforced with 1002.
func TestSection5_4_Fragmentation(t *testing.T) {
	e := newEnv(t)
	oneByte := make([]string, 100)
	for i := range oneByte {
		oneByte[i] = string(rune('a' + i%26))
	}
	quarter := string(filled(maxMessage / 4))
	cases := []exchange{
		{name: "text in three", send: fragments(frame.OpText, "Hel", "lo, ", "world"), replies: []reply{textReply("Hello, world")}},
		{name: "binary in two", send: fragments(frame.OpBinary, "\x00\x01", "\x02"), replies: []reply{message(frame.OpBinary, []byte{0, 1, 2})}},
		{name: "empty first fragment", send: fragments(frame.OpText, "", "data"), replies: []reply{textReply("data")}},
		{name: "empty last fragment", send: fragments(frame.OpText, "data", ""), replies: []reply{textReply("data")}},
		{name: "all fragments empty", send: fragments(frame.OpBinary, "", "", ""), replies: []reply{message(frame.OpBinary, []byte{})}},
		{name: "hundred one-byte fragments", send: fragments(frame.OpText, oneByte...), replies: []reply{textReply(strings.Join(oneByte, ""))}},
		{name: "four fragments of 16 KiB", send: fragments(frame.OpBinary, quarter, quarter, quarter, quarter),
			replies: []reply{message(frame.OpBinary, []byte(quarter+quarter+quarter+quarter))}},
		{name: "two fragmented messages in a row", send: cat(fragments(frame.OpText, "a", "b"), fragments(frame.OpBinary, "c", "d")),
			replies: []reply{textReply("ab"), message(frame.OpBinary, []byte("cd"))}},
		// §5.4: control frames may come between fragments; an unsolicited
		// pong is ignored (§5.5.3).
		{name: "pong between fragments", send: cat(fragment(frame.OpText, false, "a"), pong("x"), fragment(frame.OpContinuation, true, "b")),
			replies: []reply{textReply("ab")}},

		// Violations: continuation with nothing to continue, a new data
		// frame inside an unfinished message.
		{name: "continuation first", send: fragment(frame.OpContinuation, true, "x"), code: frame.CloseProtocolError},
		{name: "unfinished continuation first", send: fragment(frame.OpContinuation, false, "x"), code: frame.CloseProtocolError},
		{name: "continuation after a whole message", send: cat(text("ok"), fragment(frame.OpContinuation, true, "x")),
			replies: []reply{textReply("ok")}, code: frame.CloseProtocolError},
		{name: "text inside text", send: cat(fragment(frame.OpText, false, "a"), text("b")), code: frame.CloseProtocolError},
		{name: "unfinished text inside text", send: cat(fragment(frame.OpText, false, "a"), fragment(frame.OpText, false, "b")),
			code: frame.CloseProtocolError},
		{name: "binary inside text", send: cat(fragment(frame.OpText, false, "a"), binary([]byte("b"))), code: frame.CloseProtocolError},
		{name: "text inside binary", send: cat(fragment(frame.OpBinary, false, "a"), text("b")), code: frame.CloseProtocolError},
		// The header of the offending frame is enough.
		{name: "text header inside text", send: cat(fragment(frame.OpText, false, "a"), header(true, 0, frame.OpText, 1000)),
			code: frame.CloseProtocolError},
		{name: "continuation header first", send: header(true, 0, frame.OpContinuation, 1000), code: frame.CloseProtocolError},
	}
	runExchanges(t, e, "/echo", cases)
}
