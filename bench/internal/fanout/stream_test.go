package fanout

import (
	"bytes"
	"strings"
	"testing"

	"github.com/wskit/wskit/frame"
)

// serverFrame is a frame as a server sends it: unmasked.
func serverFrame(op frame.Opcode, fin bool, p []byte) []byte {
	b := frame.AppendHeader(nil, frame.Header{Fin: fin, Op: op, Length: int64(len(p))})
	return append(b, p...)
}

// message returns the message numbered seq as size bytes.
func message(size int, seq uint64) []byte {
	p := NewMessage(size)
	Number(p, seq)
	return p
}

// TestStream feeds messages, whole and in fragments with a ping between
// them, to stream in pieces of every size from one byte up, so that headers
// and payloads split anywhere.
func TestStream(t *testing.T) {
	const size = 300
	var in []byte
	in = append(in, serverFrame(frame.OpBinary, true, message(size, 0))...)
	m1 := message(size, 1)
	in = append(in, serverFrame(frame.OpBinary, false, m1[:5])...)
	in = append(in, serverFrame(frame.OpPing, true, []byte("hi"))...)
	in = append(in, serverFrame(frame.OpContinuation, false, m1[5:130])...)
	in = append(in, serverFrame(frame.OpContinuation, true, m1[130:])...)
	in = append(in, serverFrame(frame.OpBinary, true, message(size, 2))...)
	for piece := 1; piece <= 40; piece++ {
		var s stream
		got := 0
		for p := in; len(p) > 0; {
			n := min(piece, len(p))
			m, err := s.feed(p[:n], size)
			if err != nil {
				t.Fatalf("pieces of %d: %v", piece, err)
			}
			got += m
			p = p[n:]
		}
		if got != 3 || s.next != 3 || s.pos != 0 || s.left != 0 || s.hn != 0 {
			t.Fatalf("pieces of %d: %d messages, state %+v", piece, got, s)
		}
		pong := s.pong(nil)
		h, n, err := frame.ParseHeader(pong)
		if err != nil || n == 0 || h.Op != frame.OpPong || !h.Masked || h.Length != 2 {
			t.Fatalf("pieces of %d: pong %x: %+v, %v", piece, pong, h, err)
		}
		frame.Mask(pong[n:], h.Mask, 0)
		if string(pong[n:]) != "hi" || len(s.pong(nil)) != 0 {
			t.Fatalf("pieces of %d: pong payload %q, or a second pong", piece, pong[n:])
		}
	}
}

// TestStreamErrors checks that what breaks the benchmark's rules is caught.
func TestStreamErrors(t *testing.T) {
	const size = 64
	mangled := message(size, 0)
	mangled[size-1] = 9
	tests := []struct {
		name, want string
		in         []byte
	}{
		{"out of order", "sequence numbers 1 and 1", serverFrame(frame.OpBinary, true, message(size, 1))},
		{"mangled", "sequence numbers 0 and", serverFrame(frame.OpBinary, true, mangled)},
		{"short", "has 63 bytes", serverFrame(frame.OpBinary, true, message(size, 0)[:size-1])},
		{"long", "unexpected frame", serverFrame(frame.OpBinary, true, append(message(size, 0), 0))},
		{"text", "unexpected frame", serverFrame(frame.OpText, true, message(size, 0))},
		{"close", "closed the connection (1001", serverFrame(frame.OpClose, true, []byte{0x03, 0xe9})},
		{"masked", "unexpected frame", frame.AppendHeader(nil, frame.Header{Fin: true, Op: frame.OpBinary, Masked: true, Length: 1})},
	}
	for _, tt := range tests {
		var s stream
		_, err := s.feed(tt.in, size)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error with %q", tt.name, err, tt.want)
		}
	}
	// A message missing in the middle is an error at the next one.
	var s stream
	in := bytes.Join([][]byte{
		serverFrame(frame.OpBinary, true, message(size, 0)),
		serverFrame(frame.OpBinary, true, message(size, 2)),
	}, nil)
	if m, err := s.feed(in, size); m != 1 || err == nil {
		t.Errorf("a gap: %d messages, error %v", m, err)
	}
}
