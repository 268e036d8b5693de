package conformance

import (
	"testing"

	"github.com/wskit/wskit/frame"
)

// TestSection5_1_Masking checks that a client frame without a mask fails the
// connection with 1002. §5.1 lets the server merely close the connection
// ("MAY send a Close frame with a status code of 1002"), but wskit.Options
// promises the close frame, so the suite holds it to that. That the server's
// own frames are never masked is checked on every frame the suite reads.
func TestSection5_1_Masking(t *testing.T) {
	e := newEnv(t)
	cases := []exchange{
		{name: "text", send: unmasked(true, frame.OpText, []byte("hi")), code: frame.CloseProtocolError},
		{name: "empty binary", send: unmasked(true, frame.OpBinary, nil), code: frame.CloseProtocolError},
		{name: "ping", send: unmasked(true, frame.OpPing, []byte("p")), code: frame.CloseProtocolError},
		{name: "pong", send: unmasked(true, frame.OpPong, nil), code: frame.CloseProtocolError},
		{name: "close", send: unmasked(true, frame.OpClose, binary16(1000)), code: frame.CloseProtocolError},
		{name: "continuation of a masked fragment",
			send: cat(fragment(frame.OpText, false, "a"), unmasked(true, frame.OpContinuation, []byte("b"))), code: frame.CloseProtocolError},
		{name: "after a valid message", send: cat(text("ok"), unmasked(true, frame.OpText, []byte("bad"))),
			replies: []reply{textReply("ok")}, code: frame.CloseProtocolError},
		// The header proves it: the server must not wait for 60000 bytes.
		{name: "header only", send: unmasked(true, frame.OpBinary, filled(60000))[:4], code: frame.CloseProtocolError},
	}
	runExchanges(t, e, "/echo", cases)
}
