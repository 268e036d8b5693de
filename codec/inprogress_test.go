package codec

import (
	"bytes"
	"errors"
	"testing"

	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/bufpool"
	"github.com/wskit/wskit/internal/race"
)

// TestProtocolHoldsStateOnlyInProgress follows the state of a frame or
// message in progress through the ways it ends: it is taken when input
// stops inside one, and goes back, with its buffers, exactly once.
func TestProtocolHoldsStateOnlyInProgress(t *testing.T) {
	text := bytes.Repeat([]byte("wskit "), 50)
	whole := clientFrame(frame.OpText, true, text)
	first := clientFrame(frame.OpText, false, text[:100])
	rest := clientFrame(frame.OpContinuation, true, text[100:])
	for _, tt := range []struct {
		name string
		in   [][]byte // fed in turn; the state is checked after each
		held []bool   // whether p holds a state after each piece
		end  func(p *Protocol)
	}{
		{"whole frames", [][]byte{whole, whole}, []bool{false, false}, nil},
		{"cut header", [][]byte{whole[:1], whole[1:]}, []bool{true, false}, nil},
		{"cut payload", [][]byte{whole[:40], whole[40:]}, []bool{true, false}, nil},
		{"fragments", [][]byte{first, rest}, []bool{true, false}, nil},
		{"cut fragments", [][]byte{first[:30], first[30:], rest[:30], rest[30:]}, []bool{true, true, true, false}, nil},
		{"released cut", [][]byte{whole[:40]}, []bool{true}, func(p *Protocol) { p.Release() }},
		{"released between fragments", [][]byte{first}, []bool{true}, func(p *Protocol) { p.Release() }},
		{"violation in a fragment", [][]byte{first, clientFrame(frame.OpBinary, true, nil)}, []bool{true, false}, nil},
		// The rest of the header says unmasked, which a client's frame
		// must not be; the payload is short, so only the violation ends it.
		{"violation in a cut header", [][]byte{whole[:1], {0x05, 'h', 'e', 'l'}}, []bool{true, false}, nil},
		{"invalid text in a cut frame", [][]byte{
			clientFrame(frame.OpText, true, append(bytes.Clone(text), 0xff))[:40],
			clientFrame(frame.OpText, true, append(bytes.Clone(text), 0xff))[40:],
		}, []bool{true, false}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			base := bufpool.Lent()
			p := NewProtocol(Config{})
			for i, in := range tt.in {
				in = bytes.Clone(in)
				for len(in) > 0 {
					_, n, _, err := p.Receive(in)
					in = in[n:]
					if err != nil {
						break
					}
				}
				p.ReturnLent()
				if held := p.in != nil; held != tt.held[i] {
					t.Fatalf("after piece %d: holds a state %v, want %v", i, held, tt.held[i])
				}
			}
			if tt.end != nil {
				tt.end(p)
				if p.in != nil {
					t.Fatal("the state outlived the end")
				}
				p.Release() // again: nothing more goes back
			}
			p.Release()
			if n := bufpool.Lent(); n != base && !race.Enabled {
				t.Fatalf("%d buffers or states out of the pool, want %d", n, base)
			}
		})
	}
}

// TestProtocolDetachedMessageOutlivesState checks that a message whose
// buffers were detached stays valid once the state went back.
func TestProtocolDetachedMessageOutlivesState(t *testing.T) {
	text := bytes.Repeat([]byte("wskit "), 50)
	in := clientFrame(frame.OpText, true, text)
	p := NewProtocol(Config{})
	if _, _, ok, err := p.Receive(bytes.Clone(in[:40])); ok || err != nil {
		t.Fatal(ok, err)
	}
	ev, _, ok, err := p.Receive(bytes.Clone(in[40:]))
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	bufs := p.DetachMessage()
	if p.in != nil {
		t.Fatal("the state is held after its message was detached")
	}
	if _, _, ok, err := p.Receive(bytes.Clone(in[:40])); ok || err != nil {
		t.Fatal(ok, err)
	}
	if !bytes.Equal(ev.Payload, text) {
		t.Fatal("the detached message changed")
	}
	for _, b := range bufs {
		if b != nil {
			ReturnBuffer(b)
		}
	}
	p.Release()
}

// TestProtocolReleasedRefusesInput checks that input after Release fails.
func TestProtocolReleasedRefusesInput(t *testing.T) {
	p := NewProtocol(Config{})
	p.Release()
	if _, _, _, err := p.Receive(clientFrame(frame.OpText, true, []byte("late"))); !errors.Is(err, ErrReleased) {
		t.Fatalf("Receive after Release: %v, want %v", err, ErrReleased)
	}
	if p.in != nil {
		t.Fatal("a released Protocol took a state")
	}
}

// TestProtocolFragmentsDoNotAllocate checks that a message in fragments,
// cut across inputs, costs no allocation once the pools are warm.
func TestProtocolFragmentsDoNotAllocate(t *testing.T) {
	if race.Enabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	text := bytes.Repeat([]byte("wskit "), 50)
	msg := concat(clientFrame(frame.OpText, false, text[:100]), clientFrame(frame.OpContinuation, true, text[100:]))
	in := make([]byte, len(msg))
	p := NewProtocol(Config{})
	allocs := testing.AllocsPerRun(1000, func() {
		copy(in, msg)
		got := false
		for _, part := range [][]byte{in[:50], in[50:150], in[150:]} {
			for len(part) > 0 {
				_, n, ok, err := p.Receive(part)
				if err != nil {
					t.Fatal(err)
				}
				got = got || ok
				part = part[n:]
			}
		}
		p.ReturnLent()
		if !got || p.in != nil {
			t.Fatal("no message, or the state is held")
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per message", allocs)
	}
}
