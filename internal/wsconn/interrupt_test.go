package wsconn

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wskit/wskit/frame"
)

// A cancelled NextContext returns the context's error and keeps what it
// read: the rest of a frame cut in two comes with the next call, whole.
func TestNextContextKeepsPartialInput(t *testing.T) {
	c, p := newPair(t, serverConfig(), nil)
	payload := []byte("hello, interrupted world")
	e := frameBytes(frame.Header{Fin: true, Op: frame.OpText}, payload)
	p.out <- e[:10] // the header and the start of the payload

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.NextContext(ctx)
		done <- err
	}()
	// Whether the cancel comes before or after the read of the ten bytes,
	// they are kept.
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("NextContext = %v, want context.Canceled", err)
		}
	case <-time.After(wait):
		t.Fatal("NextContext did not return after its context was cancelled")
	}
	p.out <- e[10:]
	ev, err := nextEvent(t, c)
	if err != nil || string(ev.Payload) != string(payload) {
		t.Fatalf("Next = %q, %v; want %q", ev.Payload, err, payload)
	}
	// A late cancel of a context whose read has returned does not cut the
	// next read short.
	p.write(frame.Header{Fin: true, Op: frame.OpBinary}, []byte("next"), true)
	if ev, err := nextEvent(t, c); err != nil || string(ev.Payload) != "next" {
		t.Fatalf("Next after the cancel = %q, %v", ev.Payload, err)
	}
}

// Interrupt stops a Next blocked in a read, and NextContext's deadline
// bounds its wait.
func TestInterrupt(t *testing.T) {
	c, _ := newPair(t, serverConfig(), nil)
	done := make(chan error, 1)
	go func() {
		_, err := c.Next()
		done <- err
	}()
	c.Interrupt()
	select {
	case err := <-done:
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("Next = %v, want ErrInterrupted", err)
		}
	case <-time.After(wait):
		t.Fatal("Next did not return after Interrupt")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if _, err := c.NextContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("NextContext = %v, want context.DeadlineExceeded", err)
	}
}

func frameBytes(h frame.Header, payload []byte) []byte {
	h.Masked = true
	h.Mask = [4]byte{1, 2, 3, 4}
	h.Length = int64(len(payload))
	b := frame.AppendHeader(nil, h)
	start := len(b)
	b = append(b, payload...)
	frame.Mask(b[start:], h.Mask, 0)
	return b
}
