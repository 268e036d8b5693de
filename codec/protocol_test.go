package codec

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/race"
)

type event struct {
	kind    EventKind
	op      frame.Opcode
	fin     bool
	payload string
	code    frame.CloseCode
}

// feed gives in to p in pieces of size (0: all at once) and returns the
// events and the first error.
func feed(p *Protocol, in []byte, size int) ([]event, error) {
	in = bytes.Clone(in)
	var evs []event
	for len(in) > 0 {
		chunk := in
		if size > 0 && size < len(in) {
			chunk = in[:size]
		}
		in = in[len(chunk):]
		for len(chunk) > 0 {
			ev, n, ok, err := p.Receive(chunk)
			if err != nil {
				return evs, err
			}
			chunk = chunk[n:]
			if ok {
				evs = append(evs, event{ev.Kind, ev.Op, ev.Fin, string(ev.Payload), ev.Code})
			}
		}
	}
	return evs, nil
}

// replies decodes what p owes the peer, as a client would read it.
func replies(t *testing.T, p *Protocol) []decoded {
	t.Helper()
	out := p.AppendReplies(nil)
	frames, err := decodeAll(t, &Decoder{Role: Client}, out)
	if err != nil {
		t.Fatalf("replies do not decode: %v", err)
	}
	return frames
}

func closePayload(code frame.CloseCode, reason string) []byte {
	b, err := frame.AppendClose(nil, code, reason)
	if err != nil {
		panic(err)
	}
	return b
}

func TestProtocolPingIsAnsweredWithItsPayload(t *testing.T) {
	for _, size := range []int{0, 1} {
		p := NewProtocol(Config{})
		evs, err := feed(p, clientFrame(frame.OpPing, true, []byte("are you there")), size)
		if err != nil || len(evs) != 1 || evs[0].kind != EventPing || evs[0].payload != "are you there" {
			t.Fatalf("events %v, %v", evs, err)
		}
		r := replies(t, p)
		if len(r) != 1 || r[0].h.Op != frame.OpPong || r[0].payload != "are you there" {
			t.Fatalf("replies %v", r)
		}
		if len(replies(t, p)) != 0 {
			t.Fatal("a reply was owed twice")
		}
	}
}

// Pings that come while the replies are not taken leave one pong, for the
// latest (RFC 6455 §5.5.3); a close reply after a pong keeps both.
func TestProtocolOwesOnePong(t *testing.T) {
	p := NewProtocol(Config{})
	var in []byte
	for i := range 1000 {
		in = append(in, clientFrame(frame.OpPing, true, fmt.Appendf(nil, "ping %d", i))...)
	}
	if _, err := feed(p, in, 0); err != nil {
		t.Fatal(err)
	}
	r := replies(t, p)
	if len(r) != 1 || r[0].h.Op != frame.OpPong || r[0].payload != "ping 999" {
		t.Fatalf("replies %v, want one pong for the last ping", r)
	}
	in = append(clientFrame(frame.OpPing, true, []byte("last")), clientFrame(frame.OpClose, true, closePayload(frame.CloseNormal, "bye"))...)
	in = append(in, clientFrame(frame.OpPing, true, []byte("after"))...)
	if _, err := feed(p, in, 0); err != nil {
		t.Fatal(err)
	}
	r = replies(t, p)
	if len(r) != 2 || r[0].payload != "last" || r[1].h.Op != frame.OpClose {
		t.Fatalf("replies %v, want the pong for the last ping, then the close", r)
	}
}

func TestProtocolControlBetweenFragments(t *testing.T) {
	in := concat(
		clientFrame(frame.OpText, false, []byte("Hel")),
		clientFrame(frame.OpPing, true, []byte("p")),
		clientFrame(frame.OpContinuation, false, []byte("lo, ")),
		clientFrame(frame.OpPong, true, nil),
		clientFrame(frame.OpContinuation, true, []byte("world")),
	)
	want := []event{
		{kind: EventPing, payload: "p"},
		{kind: EventPong},
		{kind: EventMessage, op: frame.OpText, fin: true, payload: "Hello, world"},
	}
	for _, size := range []int{0, 1, 5} {
		evs, err := feed(NewProtocol(Config{}), in, size)
		if err != nil || len(evs) != len(want) {
			t.Fatalf("size %d: %v, %v", size, evs, err)
		}
		for i := range want {
			if evs[i] != want[i] {
				t.Fatalf("size %d: event %d = %+v, want %+v", size, i, evs[i], want[i])
			}
		}
	}
}

func TestProtocolRawDeliversFragmentsAndAnswersNothing(t *testing.T) {
	p := NewProtocol(Config{Raw: true})
	in := concat(
		clientFrame(frame.OpBinary, false, []byte("a")),
		clientFrame(frame.OpPing, true, []byte("p")),
		clientFrame(frame.OpContinuation, true, []byte("b")),
		clientFrame(frame.OpClose, true, closePayload(1000, "bye")),
	)
	evs, err := feed(p, in, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []event{
		{kind: EventMessage, op: frame.OpBinary, payload: "a"},
		{kind: EventPing, payload: "p"},
		{kind: EventMessage, op: frame.OpContinuation, fin: true, payload: "b"},
		{kind: EventClose, payload: "\x03\xe8bye", code: 1000},
	}
	for i := range want {
		if i >= len(evs) || evs[i] != want[i] {
			t.Fatalf("events %+v, want %+v", evs, want)
		}
	}
	if r := replies(t, p); len(r) != 0 {
		t.Fatalf("raw protocol answered on its own: %v", r)
	}
	if p.State() != StateCloseReceived {
		t.Fatalf("state %v", p.State())
	}
	if _, err := p.AppendClose(nil, 1000, "bye"); err != nil || p.State() != StateClosed {
		t.Fatalf("closing after the peer: %v, %v", err, p.State())
	}
}

func TestProtocolCloseHandshake(t *testing.T) {
	t.Run("peer closes", func(t *testing.T) {
		p := NewProtocol(Config{})
		evs, err := feed(p, clientFrame(frame.OpClose, true, closePayload(4001, "done")), 0)
		if err != nil || len(evs) != 1 || evs[0].code != 4001 {
			t.Fatalf("%v, %v", evs, err)
		}
		r := replies(t, p)
		if len(r) != 1 || r[0].h.Op != frame.OpClose || r[0].payload != string(closePayload(4001, "done")) {
			t.Fatalf("close reply %v", r)
		}
		if code, reason, ok := p.CloseReason(); !ok || code != 4001 || reason != "done" || p.State() != StateClosed {
			t.Fatalf("CloseReason %v %q %v, state %v", code, reason, ok, p.State())
		}
		// Anything after the close is ignored, and nothing more is answered.
		evs, err = feed(p, concat(clientFrame(frame.OpText, true, []byte("late")), clientFrame(frame.OpPing, true, nil)), 0)
		if err != nil || len(evs) != 0 || len(replies(t, p)) != 0 {
			t.Fatalf("after close: %v, %v", evs, err)
		}
		if _, err := p.AppendMessage(nil, frame.OpText, 0, []byte("x")); err != ErrCloseSent {
			t.Fatalf("sending after the handshake: %v", err)
		}
	})
	t.Run("empty close gets an empty close", func(t *testing.T) {
		p := NewProtocol(Config{})
		evs, _ := feed(p, clientFrame(frame.OpClose, true, nil), 0)
		if len(evs) != 1 || evs[0].code != frame.CloseNoStatus {
			t.Fatalf("%v", evs)
		}
		if r := replies(t, p); len(r) != 1 || r[0].payload != "" {
			t.Fatalf("reply %v", r)
		}
	})
	t.Run("we close first", func(t *testing.T) {
		p := NewProtocol(Config{})
		out, err := p.AppendClose(nil, frame.CloseGoingAway, "restart")
		if err != nil || p.State() != StateCloseSent {
			t.Fatal(err, p.State())
		}
		frames, _ := decodeAll(t, &Decoder{Role: Client}, out)
		if len(frames) != 1 || frames[0].payload != string(closePayload(1001, "restart")) {
			t.Fatalf("close frame %v", frames)
		}
		if _, err := p.AppendClose(nil, 1000, ""); err != ErrCloseSent {
			t.Fatalf("second close: %v", err)
		}
		// Until the peer's close: data is dropped, pings are still answered.
		evs, err := feed(p, concat(
			clientFrame(frame.OpText, true, []byte("in flight")),
			clientFrame(frame.OpPing, true, []byte("p")),
			clientFrame(frame.OpClose, true, closePayload(1001, "")),
		), 0)
		if err != nil || len(evs) != 2 || evs[0].kind != EventPing || evs[1].kind != EventClose {
			t.Fatalf("events %+v, %v", evs, err)
		}
		if r := replies(t, p); len(r) != 1 || r[0].h.Op != frame.OpPong {
			t.Fatalf("replies %v: want only the pong", r)
		}
		if p.State() != StateClosed {
			t.Fatalf("state %v", p.State())
		}
	})
}

func TestProtocolViolationsSendTheirCloseCode(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		code frame.CloseCode
	}{
		{"unmasked frame", (&Encoder{}).AppendFrame(nil, frame.Header{Fin: true, Op: frame.OpText}, nil), 1002},
		{"RSV1", func() []byte { b := clientFrame(frame.OpText, true, nil); b[0] |= frame.RSV1; return b }(), 1002},
		{"reserved opcode", clientFrame(frame.Opcode(3), true, nil), 1002},
		{"close of 1 byte", clientFrame(frame.OpClose, true, []byte{3}), 1002},
		{"close code 1005", clientFrame(frame.OpClose, true, []byte{0x03, 0xed}), 1002},
		{"close code 999", clientFrame(frame.OpClose, true, []byte{0x03, 0xe7}), 1002},
		{"close reason not UTF-8", clientFrame(frame.OpClose, true, []byte{0x03, 0xe8, 0xff}), 1007},
		{"text not UTF-8", clientFrame(frame.OpText, true, []byte{0xce, 0xba, 0xe1, 0xbd}), 1007},
		{"continuation first", clientFrame(frame.OpContinuation, true, []byte("x")), 1002},
		{"message too big", clientFrame(frame.OpBinary, true, make([]byte, 200)), 1009},
	}
	for _, tt := range tests {
		for _, size := range []int{0, 1} {
			p := NewProtocol(Config{MaxMessageSize: 100})
			_, err := feed(p, tt.in, size)
			wantCode(t, err, tt.code)
			r := replies(t, p)
			if len(r) != 1 || r[0].h.Op != frame.OpClose {
				t.Fatalf("%s: replies %v, want one close", tt.name, r)
			}
			code, reason, perr := frame.ParseClose([]byte(r[0].payload))
			if perr != nil || code != tt.code || reason == nil {
				t.Fatalf("%s: close frame %v %q %v", tt.name, code, reason, perr)
			}
			if got, _, _ := p.CloseReason(); got != tt.code || p.State() != StateClosed {
				t.Fatalf("%s: CloseReason %v, state %v", tt.name, got, p.State())
			}
			if _, _, _, again := p.Receive(clientFrame(frame.OpText, true, nil)); again != err {
				t.Fatalf("%s: after the error: %v", tt.name, again)
			}
		}
	}
}

func TestProtocolTextFailsFastInsideAFrame(t *testing.T) {
	// Autobahn 6.4.3: the invalid bytes arrive in the second chunk of one frame.
	payload := []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64")
	in := clientFrame(frame.OpText, true, payload)
	p := NewProtocol(Config{})
	cut := len(in) - len(payload) + 11
	if _, err := feed(p, in[:cut], 0); err != nil {
		t.Fatalf("valid part: %v", err)
	}
	_, err := feed(p, in[cut:cut+4], 0)
	if !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("invalid part: %v, want %v before the frame ends", err, ErrInvalidUTF8)
	}
}

func TestProtocolKeepalive(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := NewProtocol(Config{PingPeriod: 10 * time.Second, Timeout: 5 * time.Second})
	if d, ok := p.Deadline(); !ok || !d.IsZero() {
		t.Fatalf("before the first Tick: Deadline %v %v", d, ok)
	}
	out, err := p.Tick(t0, nil)
	if err != nil || len(out) != 0 {
		t.Fatalf("first Tick: %q %v", out, err)
	}
	if d, _ := p.Deadline(); !d.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("Deadline %v", d)
	}
	out, _ = p.Tick(t0.Add(10*time.Second), nil)
	pings, _ := decodeAll(t, &Decoder{Role: Client}, out)
	if len(pings) != 1 || pings[0].h.Op != frame.OpPing {
		t.Fatalf("no ping at the period: %v", pings)
	}
	// An unrelated pong does not count; the matching one does.
	if _, err := feed(p, clientFrame(frame.OpPong, true, []byte("other")), 0); err != nil {
		t.Fatal(err)
	}
	if d, _ := p.Deadline(); !d.Equal(t0.Add(15 * time.Second)) {
		t.Fatalf("waiting for the pong: Deadline %v", d)
	}
	if _, err := feed(p, clientFrame(frame.OpPong, true, []byte(pings[0].payload)), 0); err != nil {
		t.Fatal(err)
	}
	if out, err := p.Tick(t0.Add(16*time.Second), nil); err != nil || len(out) != 0 {
		t.Fatalf("after the pong: %q %v", out, err)
	}
	// The next ping goes unanswered.
	p.Tick(t0.Add(20*time.Second), nil)
	if _, err := p.Tick(t0.Add(24*time.Second), nil); err != nil {
		t.Fatalf("before the timeout: %v", err)
	}
	_, err = p.Tick(t0.Add(25*time.Second), nil)
	if err != ErrPongTimeout || p.State() != StateClosed {
		t.Fatalf("pong timeout: %v, state %v", err, p.State())
	}
	if r := replies(t, p); len(r) != 1 || r[0].h.Op != frame.OpClose || r[0].payload[:2] != "\x03\xf3" {
		t.Fatalf("pong timeout should send close 1011: %v", r)
	}
}

func TestProtocolCloseTimeout(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := NewProtocol(Config{Timeout: time.Second})
	if _, ok := p.Deadline(); ok {
		t.Fatal("a deadline with no ping period and no close")
	}
	p.AppendClose(nil, 1000, "")
	if d, ok := p.Deadline(); !ok || !d.IsZero() {
		t.Fatalf("Deadline after close: %v %v", d, ok)
	}
	p.Tick(t0, nil)
	if d, _ := p.Deadline(); !d.Equal(t0.Add(time.Second)) {
		t.Fatalf("Deadline %v", d)
	}
	if _, err := p.Tick(t0.Add(time.Second), nil); err != ErrCloseTimeout || p.State() != StateClosed {
		t.Fatalf("close timeout: %v, %v", err, p.State())
	}
	if code, _, _ := p.CloseReason(); code != 1000 {
		t.Fatalf("CloseReason %v", code)
	}
}

func TestProtocolEchoDoesNotAllocate(t *testing.T) {
	if race.Enabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	msg := clientFrame(frame.OpText, true, bytes.Repeat([]byte("wskit "), 20))
	in := make([]byte, len(msg))
	out := make([]byte, 0, 4096)
	p := NewProtocol(Config{})
	allocs := testing.AllocsPerRun(1000, func() {
		copy(in, msg)
		ev, _, ok, err := p.Receive(in)
		if !ok || err != nil {
			t.Fatal(ok, err)
		}
		out, _ = p.AppendMessage(out[:0], ev.Op, 0, ev.Payload)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per echoed message", allocs)
	}
}

func TestProtocolAppendFrameWritesExactly(t *testing.T) {
	p := NewProtocol(Config{Raw: true})
	// A deliberately bad close (code 1005 may not be sent) goes out as given.
	out, err := p.AppendFrame(nil, frame.Header{Fin: true, Op: frame.OpClose}, []byte{0x03, 0xed})
	if err != nil || !bytes.Equal(out, []byte{0x88, 0x02, 0x03, 0xed}) {
		t.Fatalf("AppendFrame = %x, %v", out, err)
	}
	if p.State() != StateCloseSent {
		t.Fatalf("state %v", p.State())
	}
	if _, err := p.AppendFrame(nil, frame.Header{Fin: true, Op: frame.OpText}, nil); err != ErrCloseSent {
		t.Fatalf("data after close: %v", err)
	}
	if _, err := p.AppendPing(nil, make([]byte, 126)); err != frame.ErrControlTooLong {
		t.Fatalf("126-byte ping: %v", err)
	}
}
