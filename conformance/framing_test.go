package conformance

import (
	"fmt"
	"strings"
	"testing"

	"github.com/wskit/wskit/frame"
)

// nonMinimal returns a masked frame whose length is encoded in the 16-bit
// (bytes == 2) or 64-bit (bytes == 8) form whatever its size.
func nonMinimal(op frame.Opcode, payload []byte, bytes int) []byte {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b := []byte{0x80 | byte(op), 0x80 | 126}
	if bytes == 8 {
		b[1] = 0x80 | 127
		b = append(b, 0, 0, 0, 0, 0, 0)
	}
	n := len(payload)
	b = append(b, byte(n>>8), byte(n))
	b = append(b, key[:]...)
	m := append([]byte(nil), payload...)
	frame.Mask(m, key, 0)
	return append(b, m...)
}

// TestSection5_2_BaseFraming checks that well-formed frames of every length
// encoding and mask come back intact, however the bytes are cut.
func TestSection5_2_BaseFraming(t *testing.T) {
	e := newEnv(t)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	cases := []exchange{
		{name: "empty text", send: text(""), replies: []reply{textReply("")}},
		{name: "empty binary", send: binary(nil), replies: []reply{message(frame.OpBinary, []byte{})}},
		{name: "text 5", send: text("Hello"), replies: []reply{textReply("Hello")}},
		{name: "binary of every byte value", send: binary(all), replies: []reply{message(frame.OpBinary, all)}},
		{name: "7-bit length 125", send: binary(filled(125)), replies: []reply{message(frame.OpBinary, filled(125))}},
		{name: "16-bit length 126", send: binary(filled(126)), replies: []reply{message(frame.OpBinary, filled(126))}},
		{name: "16-bit length 65535", send: binary(filled(65535)), replies: []reply{message(frame.OpBinary, filled(65535))}},
		{name: "64-bit length 65536", send: text(string(filled(65536))), replies: []reply{message(frame.OpText, filled(65536))}},
		{name: "zero mask key", send: wireKey(true, 0, frame.OpText, []byte("zero key"), [4]byte{}), replies: []reply{textReply("zero key")}},
		{name: "mask key ff", send: wireKey(true, 0, frame.OpText, []byte("ff key"), [4]byte{0xff, 0xff, 0xff, 0xff}), replies: []reply{textReply("ff key")}},
		// §5.2 makes the minimal length encoding a duty of the sender; wskit
		// accepts the longer forms, as most receivers do.
		{name: "16-bit length for 5 bytes", send: nonMinimal(frame.OpText, []byte("Hello"), 2), replies: []reply{textReply("Hello")}},
		{name: "64-bit length for 5 bytes", send: nonMinimal(frame.OpText, []byte("Hello"), 8), replies: []reply{textReply("Hello")}},
		{name: "three messages in one write", send: cat(text("a"), binary([]byte("b")), text("c")),
			replies: []reply{textReply("a"), message(frame.OpBinary, []byte("b")), textReply("c")}},
		{name: "hundred messages in one write", send: hundred(), replies: hundredReplies()},
		// Every payload length up to a limit, each with its own mask key:
		// cut anywhere, the server unmasks each piece at the right key offset.
		lengths("lengths 0 to 40", 40),
		lengths("lengths 0 to 300", 300),
		{name: "3-byte runes cut anywhere", send: text(strings.Repeat("€", 200)), replies: []reply{textReply(strings.Repeat("€", 200))}},
	}
	runExchanges(t, e, "/echo", cases)
}

// lengths returns binary messages of 0 to max bytes in one exchange.
func lengths(name string, max int) exchange {
	x := exchange{name: name}
	for n := range max + 1 {
		p := filled(n)
		for i := range p {
			p[i] ^= byte(n)
		}
		x.send = append(x.send, binary(p)...)
		x.replies = append(x.replies, message(frame.OpBinary, p))
	}
	return x
}

func hundred() []byte {
	var b []byte
	for i := range 100 {
		b = append(b, text(fmt.Sprint(i))...)
	}
	return b
}

func hundredReplies() []reply {
	var r []reply
	for i := range 100 {
		r = append(r, textReply(fmt.Sprint(i)))
	}
	return r
}

// TestSection5_2_ReservedBits checks that a frame with RSV1, RSV2 or RSV3
// set fails the connection with 1002: no extension is negotiated, so none
// gives the bits a meaning (§5.2).
func TestSection5_2_ReservedBits(t *testing.T) {
	e := newEnv(t)
	var cases []exchange
	bits := []struct {
		name string
		rsv  byte
	}{{"RSV1", frame.RSV1}, {"RSV2", frame.RSV2}, {"RSV3", frame.RSV3}, {"RSV1+2+3", frame.RSV1 | frame.RSV2 | frame.RSV3}}
	for _, b := range bits {
		cases = append(cases,
			exchange{name: b.name + " text", send: wire(true, b.rsv, frame.OpText, []byte("hi")), code: frame.CloseProtocolError},
			exchange{name: b.name + " binary", send: wire(true, b.rsv, frame.OpBinary, []byte{1, 2}), code: frame.CloseProtocolError},
			exchange{name: b.name + " ping", send: wire(true, b.rsv, frame.OpPing, []byte("p")), code: frame.CloseProtocolError},
			exchange{name: b.name + " pong", send: wire(true, b.rsv, frame.OpPong, nil), code: frame.CloseProtocolError},
			exchange{name: b.name + " close", send: wire(true, b.rsv, frame.OpClose, binary16(1000)), code: frame.CloseProtocolError},
			exchange{name: b.name + " continuation",
				send: cat(fragment(frame.OpText, false, "a"), wire(true, b.rsv, frame.OpContinuation, []byte("b"))),
				code: frame.CloseProtocolError},
		)
	}
	cases = append(cases,
		// Autobahn 3.2's shape: the message before the bad frame is
		// answered, the ping after it is not.
		exchange{name: "after a valid message, before a ping",
			send:    cat(text("ok"), wire(true, frame.RSV2, frame.OpText, []byte("bad")), ping("late")),
			replies: []reply{textReply("ok")}, code: frame.CloseProtocolError},
		// The header alone proves the violation.
		exchange{name: "header only", send: header(true, frame.RSV1, frame.OpBinary, 1000), code: frame.CloseProtocolError},
	)
	runExchanges(t, e, "/echo", cases)
}

// TestSection5_2_Opcodes checks that the reserved opcodes 0x3–0x7 and
// 0xB–0xF fail the connection with 1002 (§5.2: "If an unknown opcode is
// received, the receiving endpoint MUST _Fail the WebSocket Connection_").
func TestSection5_2_Opcodes(t *testing.T) {
	e := newEnv(t)
	var cases []exchange
	for _, op := range []frame.Opcode{3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF} {
		name := fmt.Sprintf("%#x", byte(op))
		cases = append(cases,
			exchange{name: name + " empty", send: wire(true, 0, op, nil), code: frame.CloseProtocolError},
			exchange{name: name + " with payload", send: wire(true, 0, op, []byte("reserved")), code: frame.CloseProtocolError},
			exchange{name: name + " after a valid message", send: cat(text("ok"), wire(true, 0, op, nil), ping("late")),
				replies: []reply{textReply("ok")}, code: frame.CloseProtocolError},
			exchange{name: name + " inside a fragmented message",
				send: cat(fragment(frame.OpText, false, "a"), wire(true, 0, op, []byte("b"))), code: frame.CloseProtocolError},
			// The first byte alone proves it.
			exchange{name: name + " first byte only", send: []byte{0x80 | byte(op)}, code: frame.CloseProtocolError},
		)
	}
	runExchanges(t, e, "/echo", cases)
}
