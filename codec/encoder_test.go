package codec

import (
	"bytes"
	"testing"

	"github.com/wskit/wskit/frame"
)

func TestEncoderMasksOnlyAsClient(t *testing.T) {
	payload := []byte("hello")
	for _, role := range []Role{Server, Client} {
		e := Encoder{Role: role}
		out := e.AppendFrame(nil, frame.Header{Fin: true, Op: frame.OpText}, payload)
		h, n, err := frame.ParseHeader(out)
		if err != nil || h.Masked != (role == Client) {
			t.Fatalf("%v: header %+v, %v", role, h, err)
		}
		if role == Client && bytes.Equal(out[n:], payload) && h.Mask != [4]byte{} {
			t.Fatalf("client payload went out unmasked")
		}
		peer := Server
		if role == Server {
			peer = Client
		}
		frames, err := decodeAll(t, &Decoder{Role: peer}, out)
		if err != nil || len(frames) != 1 || frames[0].payload != "hello" {
			t.Fatalf("%v: decoded %v, %v", role, frames, err)
		}
	}
	if string(payload) != "hello" {
		t.Fatal("encoder modified the caller's payload")
	}
}

func TestEncoderMaskKeysAreFresh(t *testing.T) {
	e := Encoder{Role: Client}
	seen := map[[4]byte]bool{}
	for range 1000 {
		h, _, _ := frame.ParseHeader(e.AppendFrame(nil, frame.Header{Fin: true, Op: frame.OpBinary}, nil))
		seen[h.Mask] = true
	}
	// 1000 draws from 2^32 keys collide with probability about 1e-4.
	if len(seen) < 999 {
		t.Fatalf("only %d distinct mask keys in 1000 frames", len(seen))
	}
}

func TestEncoderFragments(t *testing.T) {
	e := Encoder{Role: Client, FragmentSize: 3}
	out := e.AppendMessage(nil, frame.OpText, frame.RSV1, []byte("abcdefghij"))
	if len(out) != e.MessageSize(10) {
		t.Fatalf("MessageSize %d, wrote %d", e.MessageSize(10), len(out))
	}
	frames, err := decodeAll(t, &Decoder{AllowedRsv: frame.RSV1}, out)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		op      frame.Opcode
		fin     bool
		rsv     byte
		payload string
	}{
		{frame.OpText, false, frame.RSV1, "abc"},
		{frame.OpContinuation, false, 0, "def"},
		{frame.OpContinuation, false, 0, "ghi"},
		{frame.OpContinuation, true, 0, "j"},
	}
	if len(frames) != len(want) {
		t.Fatalf("%d frames, want %d", len(frames), len(want))
	}
	for i, w := range want {
		f := frames[i]
		if f.h.Op != w.op || f.h.Fin != w.fin || f.h.Rsv != w.rsv || f.payload != w.payload {
			t.Fatalf("frame %d: %+v %q", i, f.h, f.payload)
		}
	}
	for _, n := range []int{0, 1, 3, 6, 125, 126, 70000} {
		for _, fs := range []int{0, 1, 3, 125, 65536} {
			e := Encoder{Role: Client, FragmentSize: fs}
			if got := len(e.AppendMessage(nil, frame.OpBinary, 0, make([]byte, n))); got != e.MessageSize(n) {
				t.Fatalf("n=%d fragment=%d: MessageSize %d, wrote %d", n, fs, e.MessageSize(n), got)
			}
		}
	}
}

func TestEncoderDoesNotAllocate(t *testing.T) {
	e := Encoder{Role: Client, FragmentSize: 100}
	p := make([]byte, 1000)
	dst := make([]byte, 0, 2048)
	if allocs := testing.AllocsPerRun(1000, func() { dst = e.AppendMessage(dst[:0], frame.OpBinary, 0, p) }); allocs != 0 {
		t.Fatalf("%.1f allocations per message", allocs)
	}
}
