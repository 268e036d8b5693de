package conformance

import (
	"strings"
	"testing"

	"github.com/wskit/wskit/frame"
)

// TestSection5_5_ControlFrames checks ping and pong (§5.5.2, §5.5.3) and the
// rules every control frame obeys (§5.5): at most 125 bytes of payload, never
// fragmented, allowed between the fragments of a message.
func TestSection5_5_ControlFrames(t *testing.T) {
	e := newEnv(t)
	p125 := string(filled(125))
	tenPings, tenPongs := []byte{}, []reply{}
	for i := range 10 {
		s := strings.Repeat("p", i)
		tenPings = append(tenPings, ping(s)...)
		tenPongs = append(tenPongs, pongReply(s))
	}
	cases := []exchange{
		// §5.5.3: the pong carries the ping's payload.
		{name: "ping empty", send: ping(""), replies: []reply{pongReply("")}},
		{name: "ping text", send: ping("Hello"), replies: []reply{pongReply("Hello")}},
		{name: "ping binary", send: wire(true, 0, frame.OpPing, []byte{0, 0xff, 0xfe, 0x80}), replies: []reply{{frame.OpPong, true, []byte{0, 0xff, 0xfe, 0x80}}}},
		{name: "ping 125 bytes", send: ping(p125), replies: []reply{pongReply(p125)}},
		{name: "ten pings", send: tenPings, replies: tenPongs},
		// §5.5.3: an unsolicited pong is not answered; the echo comes first.
		{name: "unsolicited pong", send: cat(pong("unasked"), text("next")), replies: []reply{textReply("next")}},
		{name: "ping between fragments answered", send: cat(fragment(frame.OpText, false, "frag"), ping("mid"), fragment(frame.OpContinuation, true, "ment")),
			replies: []reply{pongReply("mid"), textReply("fragment")}},
		{name: "pings between many fragments", send: cat(fragment(frame.OpBinary, false, "a"), ping("1"), fragment(frame.OpContinuation, false, "b"), ping("2"), fragment(frame.OpContinuation, true, "c")),
			replies: []reply{pongReply("1"), pongReply("2"), message(frame.OpBinary, []byte("abc"))}},

		// §5.5: more than 125 bytes is a violation, found from the header.
		{name: "ping 126 bytes", send: ping(p125 + "x"), code: frame.CloseProtocolError},
		{name: "pong 126 bytes", send: pong(p125 + "x"), code: frame.CloseProtocolError},
		{name: "close 126 bytes", send: closeFrame(1000, string(filled(124))), code: frame.CloseProtocolError},
		{name: "ping header of 65535 bytes", send: header(true, 0, frame.OpPing, 65535), code: frame.CloseProtocolError},
		// §5.5: control frames must not be fragmented.
		{name: "fragmented ping", send: wire(false, 0, frame.OpPing, []byte("p")), code: frame.CloseProtocolError},
		{name: "fragmented pong", send: wire(false, 0, frame.OpPong, []byte("p")), code: frame.CloseProtocolError},
		{name: "fragmented close", send: wire(false, 0, frame.OpClose, binary16(1000)), code: frame.CloseProtocolError},
		{name: "fragmented ping continued", send: cat(wire(false, 0, frame.OpPing, []byte("a")), fragment(frame.OpContinuation, true, "b")),
			code: frame.CloseProtocolError},
		{name: "fragmented ping between fragments", send: cat(fragment(frame.OpText, false, "a"), wire(false, 0, frame.OpPing, nil)),
			code: frame.CloseProtocolError},
	}
	runExchanges(t, e, "/echo", cases)
}
