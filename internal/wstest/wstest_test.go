package wstest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/wskit/wskit/frame"
)

// wire returns h and p as they travel: the header, then p masked with
// h.Mask when h.Masked.
func wire(h frame.Header, p []byte) []byte {
	h.Length = int64(len(p))
	b := frame.AppendHeader(nil, h)
	n := len(b)
	b = append(b, p...)
	if h.Masked {
		frame.Mask(b[n:], h.Mask, 0)
	}
	return b
}

func TestReadFrame(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	for _, n := range []int{0, 1, 125, 126, 65535, 65536} {
		for _, masked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/masked=%v", n, masked), func(t *testing.T) {
				p := bytes.Repeat([]byte{'x', 0xFF}, n)[:n]
				h := frame.Header{Fin: true, Op: frame.OpBinary, Masked: masked}
				if masked {
					h.Mask = key
				}
				r := bytes.NewReader(append(wire(h, p), wire(frame.Header{Fin: true, Op: frame.OpPing}, []byte("next"))...))
				got, gp, err := ReadFrame(r)
				if err != nil {
					t.Fatal(err)
				}
				h.Length = int64(n)
				if got != h || !bytes.Equal(gp, p) {
					t.Fatalf("got %+v with %d bytes, want %+v with %d bytes unmasked", got, len(gp), h, n)
				}
				if got, gp, err := ReadFrame(r); err != nil || got.Op != frame.OpPing || string(gp) != "next" {
					t.Fatalf("next frame: %+v %q %v, want the ping", got, gp, err)
				}
				if _, _, err := ReadFrame(r); err != io.EOF {
					t.Fatalf("after the last frame: %v, want io.EOF", err)
				}
			})
		}
	}
}

func TestReadFrameErrors(t *testing.T) {
	long := wire(frame.Header{Fin: true, Op: frame.OpText}, make([]byte, 200))
	if _, _, err := ReadFrameLimit(bytes.NewReader(long), 199); err == nil || !strings.Contains(err.Error(), "200") {
		t.Errorf("200 bytes over a limit of 199: %v, want an error", err)
	}
	if _, p, err := ReadFrameLimit(bytes.NewReader(long), 200); err != nil || len(p) != 200 {
		t.Errorf("200 bytes at a limit of 200: %d bytes, %v", len(p), err)
	}
	if _, _, err := ReadFrame(bytes.NewReader(long[:100])); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut payload: %v, want io.ErrUnexpectedEOF", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader([]byte{0x81, 126, 0})); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut header: %v, want io.ErrUnexpectedEOF", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader([]byte{0x83, 0})); err == nil || !strings.Contains(err.Error(), "bad frame header") {
		t.Errorf("reserved opcode: %v, want a bad header error", err)
	}
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("ab"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := b.String(); got != strings.Repeat("ab", 400) {
		t.Fatalf("%d bytes, want 800 of ab", len(got))
	}
}
