package codec

import (
	"errors"
	"strings"
	"testing"

	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/race"
)

func data(op frame.Opcode, fin bool, p string) frame.Frame {
	return frame.Frame{Header: frame.Header{Fin: fin, Op: op, Length: int64(len(p))}, Payload: []byte(p)}
}

func TestAssembler(t *testing.T) {
	type step struct {
		f    frame.Frame
		want string // message completed by this frame, "" for none
		err  error
	}
	tests := []struct {
		name  string
		raw   bool
		max   int64
		steps []step
	}{
		{"single frame", false, 0, []step{{f: data(frame.OpText, true, "hi"), want: "hi"}}},
		{"three fragments", false, 0, []step{
			{f: data(frame.OpText, false, "a")},
			{f: data(frame.OpContinuation, false, "b")},
			{f: data(frame.OpContinuation, true, "c"), want: "abc"},
		}},
		{"empty fragments", false, 0, []step{
			{f: data(frame.OpBinary, false, "")},
			{f: data(frame.OpContinuation, true, ""), want: ""},
		}},
		{"UTF-8 split across fragments", false, 0, []step{
			{f: data(frame.OpText, false, "\xe3\x81")},
			{f: data(frame.OpContinuation, true, "\x82"), want: "あ"},
		}},
		{"continuation first", false, 0, []step{{f: data(frame.OpContinuation, true, "x"), err: ErrUnexpectedContinuation}}},
		{"text inside a message", false, 0, []step{
			{f: data(frame.OpText, false, "a")},
			{f: data(frame.OpText, true, "b"), err: ErrExpectedContinuation},
		}},
		{"binary inside a message", false, 0, []step{
			{f: data(frame.OpBinary, false, "a")},
			{f: data(frame.OpBinary, false, "b"), err: ErrExpectedContinuation},
		}},
		{"invalid UTF-8 fails at its fragment", false, 0, []step{
			{f: data(frame.OpText, false, "ok")},
			{f: data(frame.OpContinuation, false, "\xf4\x90"), err: ErrInvalidUTF8},
		}},
		{"truncated UTF-8 at the end", false, 0, []step{{f: data(frame.OpText, true, "\xe3\x81"), err: ErrInvalidUTF8}}},
		{"binary is not checked", false, 0, []step{{f: data(frame.OpBinary, true, "\xff"), want: "\xff"}}},
		{"size limit across fragments", false, 4, []step{
			{f: data(frame.OpBinary, false, "abc")},
			{f: data(frame.OpContinuation, true, "de")},
		}},
		{"raw yields fragments", true, 0, []step{
			{f: data(frame.OpText, false, "a"), want: "a"},
			{f: data(frame.OpContinuation, true, "b"), want: "b"},
		}},
		{"raw still checks continuation", true, 0, []step{{f: data(frame.OpContinuation, true, "x"), err: ErrUnexpectedContinuation}}},
		{"raw still checks UTF-8", true, 0, []step{{f: data(frame.OpText, true, "\xc0"), err: ErrInvalidUTF8}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Assembler{Raw: tt.raw, MaxMessageSize: tt.max}
			for i, s := range tt.steps {
				m, ok, err := a.Push(s.f)
				if tt.max > 0 && i == len(tt.steps)-1 {
					wantCode(t, err, frame.CloseMessageTooBig)
					return
				}
				if !errors.Is(err, s.err) {
					t.Fatalf("step %d: error %v, want %v", i, err, s.err)
				}
				if err != nil {
					return
				}
				wantDone := s.want != "" || (s.f.Fin || tt.raw)
				if ok != wantDone || (ok && string(m.Payload) != s.want) {
					t.Fatalf("step %d: got %q (done %v), want %q", i, m.Payload, ok, s.want)
				}
			}
		})
	}
}

func TestAssemblerRawKeepsFrameBits(t *testing.T) {
	a := Assembler{Raw: true}
	m, _, _ := a.Push(data(frame.OpText, false, "a"))
	if m.Op != frame.OpText || m.Fin {
		t.Fatalf("first fragment: %v fin=%v", m.Op, m.Fin)
	}
	m, _, _ = a.Push(data(frame.OpContinuation, true, "b"))
	if m.Op != frame.OpContinuation || !m.Fin {
		t.Fatalf("last fragment: %v fin=%v", m.Op, m.Fin)
	}
}

func TestAssemblerCheckFailsFast(t *testing.T) {
	// A 100-byte text frame whose first 10 bytes already hold an impossible sequence.
	payload := "abcdefgh\xed\xa0" + strings.Repeat("x", 90)
	h := frame.Header{Fin: true, Op: frame.OpText, Length: 100}
	var a Assembler
	if err := a.Check(h, []byte(payload[:9])); err != nil {
		t.Fatalf("valid prefix: %v", err)
	}
	if err := a.Check(h, []byte(payload[:10])); !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("surrogate prefix: %v", err)
	}
	// An announced frame that would overflow the message limit fails before its payload.
	a = Assembler{MaxMessageSize: 50}
	wantCode(t, a.Check(h, nil), frame.CloseMessageTooBig)
}

func TestAssemblerSingleFrameIsNotCopied(t *testing.T) {
	f := data(frame.OpBinary, true, "payload")
	var a Assembler
	m, _, _ := a.Push(f)
	if &m.Payload[0] != &f.Payload[0] {
		t.Fatal("a single-frame message was copied")
	}
}

func TestAssemblerFragmentsDoNotAllocate(t *testing.T) {
	if race.Enabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	var a Assembler
	first, last := data(frame.OpText, false, strings.Repeat("a", 500)), data(frame.OpContinuation, true, strings.Repeat("b", 500))
	run := func() {
		a.Push(first)
		if m, ok, err := a.Push(last); !ok || err != nil || len(m.Payload) != 1000 {
			t.Fatal(ok, err, len(m.Payload))
		}
	}
	run()
	if allocs := testing.AllocsPerRun(100, run); allocs != 0 {
		t.Fatalf("%.1f allocations per fragmented message", allocs)
	}
}

func TestAssemblerLimitDoesNotOverflow(t *testing.T) {
	// Without a frame limit a peer can announce a frame of 2^63-1 bytes; added
	// to what the message already holds, the length must not wrap around.
	a := Assembler{MaxMessageSize: 100}
	if _, _, err := a.Push(data(frame.OpBinary, false, "0123456789")); err != nil {
		t.Fatal(err)
	}
	h := frame.Header{Op: frame.OpContinuation, Fin: true, Length: 1<<63 - 1}
	wantCode(t, a.Check(h, nil), frame.CloseMessageTooBig)
}

// In stream mode each fragment comes out as it goes in, with the message's
// opcode, and the checks of whole messages still hold across fragments.
func TestAssemblerStream(t *testing.T) {
	frag := func(op frame.Opcode, fin bool, p string) frame.Frame {
		return frame.Frame{Header: frame.Header{Op: op, Fin: fin, Length: int64(len(p))}, Payload: []byte(p)}
	}
	a := Assembler{Stream: true, MaxMessageSize: 10}
	// "é" is split across the first two fragments.
	in := []frame.Frame{frag(frame.OpText, false, "ab\xc3"), frag(frame.OpContinuation, false, "\xa9c"), frag(frame.OpContinuation, true, "")}
	var got []Message
	for _, f := range in {
		m, ok, err := a.Push(f)
		if err != nil || !ok {
			t.Fatalf("Push(%q) = %v, %v", f.Payload, ok, err)
		}
		got = append(got, m)
	}
	for i, m := range got {
		if m.Op != frame.OpText || m.Fin != (i == 2) || string(m.Payload) != string(in[i].Payload) {
			t.Errorf("fragment %d = %+v, want text %q fin %v", i, m, in[i].Payload, i == 2)
		}
	}
	if _, _, err := a.Push(frag(frame.OpBinary, false, "123456")); err != nil {
		t.Fatal(err)
	}
	var pe *frame.ProtocolError
	if _, _, err := a.Push(frag(frame.OpContinuation, true, "12345")); !errors.As(err, &pe) || pe.Code != frame.CloseMessageTooBig {
		t.Errorf("11 bytes past a limit of 10: %v, want 1009", err)
	}

	a = Assembler{Stream: true}
	if _, _, err := a.Push(frag(frame.OpText, false, "ok")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Push(frag(frame.OpContinuation, true, "\xff")); err != ErrInvalidUTF8 {
		t.Errorf("invalid UTF-8 in a later fragment: %v, want ErrInvalidUTF8", err)
	}
}
