package conformance

import (
	"bytes"
	"errors"
	"testing"

	"github.com/wskit/wskit/frame"
)

// rawCase is an exchange with a raw session, plus what its handler must
// have seen: the control frames it read, or the violation that ended it.
type rawCase struct {
	exchange
	control   []reply         // control frames read, in order; a clean close adds its close frame
	violation frame.CloseCode // the code of the *frame.ProtocolError the handler's Err returns; 0 for none
}

// TestRawSession checks raw sessions (wsraw, Ktor's webSocketRaw) against the
// same RFC: every frame reaches the handler as it arrived, fragments stay
// fragments, nothing is answered for the handler (no pong, no close echo:
// the /raw handler echoes the close itself), and yet the limits and protocol
// rules hold and end the session with their close code.
func TestRawSession(t *testing.T) {
	e := newEnv(t)
	part := string(filled(40 << 10))
	quarter := string(filled(maxMessage / 4))
	frag := func(op frame.Opcode, fin bool, s string) reply { return reply{op, fin, []byte(s)} }
	control := func(op frame.Opcode, p []byte) reply { return reply{op, true, p} }
	cases := []rawCase{
		{exchange: exchange{name: "text", send: text("hi"), replies: []reply{textReply("hi")}}},
		{exchange: exchange{name: "binary", send: binary([]byte{0, 1}), replies: []reply{message(frame.OpBinary, []byte{0, 1})}}},
		{exchange: exchange{name: "fragments stay fragments", send: fragments(frame.OpText, "ab", "cd", "ef"),
			replies: []reply{frag(frame.OpText, false, "ab"), frag(frame.OpContinuation, false, "cd"), frag(frame.OpContinuation, true, "ef")}}},
		{exchange: exchange{name: "rune split between fragments stays split", send: fragments(frame.OpText, "\xe2", "\x82\xac"),
			replies: []reply{frag(frame.OpText, false, "\xe2"), frag(frame.OpContinuation, true, "\x82\xac")}}},
		{exchange: exchange{name: "message of exactly MaxMessageSize", send: fragments(frame.OpBinary, quarter, quarter, quarter, quarter),
			replies: []reply{frag(frame.OpBinary, false, quarter), frag(frame.OpContinuation, false, quarter), frag(frame.OpContinuation, false, quarter), frag(frame.OpContinuation, true, quarter)}}},
		// Nothing automatic: the ping reaches the handler, no pong the client.
		{exchange: exchange{name: "ping not answered", send: cat(ping("p"), text("t")), replies: []reply{textReply("t")}},
			control: []reply{control(frame.OpPing, []byte("p"))}},
		{exchange: exchange{name: "pong delivered", send: cat(pong("q"), text("t")), replies: []reply{textReply("t")}},
			control: []reply{control(frame.OpPong, []byte("q"))}},
		{exchange: exchange{name: "ping between fragments", send: cat(fragment(frame.OpText, false, "a"), ping("m"), fragment(frame.OpContinuation, true, "b")),
			replies: []reply{frag(frame.OpText, false, "a"), frag(frame.OpContinuation, true, "b")}},
			control: []reply{control(frame.OpPing, []byte("m"))}},
		{exchange: exchange{name: "close echoed by the handler", send: closeFrame(4001, "raw bye"), code: 4001},
			control: []reply{control(frame.OpClose, append(binary16(4001), "raw bye"...))}},
		{exchange: exchange{name: "data after the close dropped", send: cat(closeFrame(1000, ""), text("late")), code: 1000},
			control: []reply{control(frame.OpClose, binary16(1000))}},

		// The limits and rules still hold.
		{exchange: exchange{name: "frame header over MaxFrameSize", send: header(true, 0, frame.OpBinary, maxFrame+1), code: 1009}, violation: 1009},
		{exchange: exchange{name: "fragment header crossing MaxMessageSize",
			send:    cat(fragment(frame.OpBinary, false, part), header(true, 0, frame.OpContinuation, 40<<10)),
			replies: []reply{frag(frame.OpBinary, false, part)}, code: 1009}, violation: 1009},
		{exchange: exchange{name: "message over MaxMessageSize in five fragments",
			send: fragments(frame.OpBinary, quarter, quarter, quarter, quarter, "x"),
			replies: []reply{frag(frame.OpBinary, false, quarter), frag(frame.OpContinuation, false, quarter),
				frag(frame.OpContinuation, false, quarter), frag(frame.OpContinuation, false, quarter)}, code: 1009}, violation: 1009},
		{exchange: exchange{name: "64-bit length with the top bit set", send: length64(frame.OpBinary, 1<<63), code: 1002}, violation: 1002},
		{exchange: exchange{name: "reserved opcode", send: wire(true, 0, 0x3, nil), code: 1002}, violation: 1002},
		{exchange: exchange{name: "RSV1", send: wire(true, frame.RSV1, frame.OpText, []byte("x")), code: 1002}, violation: 1002},
		{exchange: exchange{name: "unmasked", send: unmasked(true, frame.OpText, []byte("x")), code: 1002}, violation: 1002},
		{exchange: exchange{name: "continuation first", send: fragment(frame.OpContinuation, true, "x"), code: 1002}, violation: 1002},
		{exchange: exchange{name: "text inside text", send: cat(fragment(frame.OpText, false, "a"), text("b")),
			replies: []reply{frag(frame.OpText, false, "a")}, code: 1002}, violation: 1002},
		{exchange: exchange{name: "ping of 126 bytes", send: ping(string(filled(126))), code: 1002}, violation: 1002},
		{exchange: exchange{name: "fragmented ping", send: wire(false, 0, frame.OpPing, nil), code: 1002}, violation: 1002},
		{exchange: exchange{name: "close code 1005", send: closeFrame(1005, ""), code: 1002}, violation: 1002},
		{exchange: exchange{name: "close payload of 1 byte", send: closeWith([]byte{3}), code: 1002}, violation: 1002},
		{exchange: exchange{name: "close reason not UTF-8", send: closeFrame(1000, "\xff"), code: 1007}, violation: 1007},
		{exchange: exchange{name: "invalid UTF-8", send: text("a\xffb"), code: 1007}, violation: 1007},
		{exchange: exchange{name: "invalid UTF-8 across fragments", send: fragments(frame.OpText, "\xed", "\xa0\x80"),
			replies: []reply{frag(frame.OpText, false, "\xed")}, code: 1007}, violation: 1007},
		{exchange: exchange{name: "invalid UTF-8 in a cut frame", send: cut(true, frame.OpText, []byte("ok\xc0"+string(filled(97))), 3), code: 1007}, violation: 1007},
		{exchange: exchange{name: "truncated UTF-8 at the end", send: fragments(frame.OpText, "a", "\xe2\x82"),
			replies: []reply{frag(frame.OpText, false, "a")}, code: 1007}, violation: 1007},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, h := range chopsFor(len(tc.send)) {
				t.Run(h.String(), func(t *testing.T) {
					id := t.Name()
					c := e.dial(t, rawTarget(id))
					err := c.write(tc.send, h)
					if err != nil && tc.code == 0 {
						t.Fatalf("write: %v", err)
					}
					for _, r := range tc.replies {
						c.expect(r)
					}
					want := tc.control
					if tc.code == 0 {
						c.closeCleanly()
						want = append(want, reply{frame.OpClose, true, binary16(1000)})
					} else {
						c.expectClose(tc.code)
					}
					rc := e.raw.wait(t, id)
					checkRawRecord(t, rc, want, tc.violation)
				})
			}
		})
	}
}

func checkRawRecord(t *testing.T, rc *rawConn, control []reply, violation frame.CloseCode) {
	t.Helper()
	if len(rc.control) != len(control) {
		t.Errorf("handler read %d control frames, want %d", len(rc.control), len(control))
	}
	for i := range min(len(rc.control), len(control)) {
		got, want := rc.control[i], control[i]
		if got.Op != want.op || !bytes.Equal(got.Payload, want.payload) {
			t.Errorf("control frame %d: %v %q, want %v %q", i, got.Op, got.Payload, want.op, want.payload)
		}
	}
	var pe *frame.ProtocolError
	switch {
	case violation == 0 && rc.err != nil:
		t.Errorf("handler's Err: %v, want nil", rc.err)
	case violation != 0 && !errors.As(rc.err, &pe):
		t.Errorf("handler's Err: %v, want a *frame.ProtocolError with %v", rc.err, violation)
	case violation != 0 && pe.Code != violation:
		t.Errorf("handler's Err: %v, want code %v", rc.err, violation)
	}
}
