package bench

import (
	"bytes"
	"testing"
)

// TestReplyCounter feeds replies, whole and in fragments, to replyCounter
// in pieces of every size from one byte up, so that headers and payloads
// split anywhere.
func TestReplyCounter(t *testing.T) {
	const size = 300
	p := payload(size)
	var stream []byte
	for _, fragment := range []int{size, 126, 1, size} {
		stream = append(stream, serverReply(p, fragment)...)
	}
	for piece := 1; piece <= 40; piece++ {
		rc := replyCounter{size: size}
		got := 0
		for s := stream; len(s) > 0; {
			n := min(piece, len(s))
			m, err := rc.feed(s[:n])
			if err != nil {
				t.Fatalf("pieces of %d: %v", piece, err)
			}
			got += m
			s = s[n:]
		}
		if got != 4 || rc.got != 0 || rc.skip != 0 || rc.hn != 0 {
			t.Fatalf("pieces of %d: %d replies, state %+v", piece, got, rc)
		}
	}
	rc := replyCounter{size: size}
	if _, err := rc.feed(serverReply(p[:size-1], size)); err == nil {
		t.Error("a short reply was counted")
	}
	raw := replyCounter{raw: true, size: size}
	if m, _ := raw.feed(bytes.Repeat(p, 3)[:2*size+5]); m != 2 || raw.got != 5 {
		t.Errorf("raw: %d replies and %d bytes over, want 2 and 5", m, raw.got)
	}
}
