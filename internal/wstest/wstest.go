// Package wstest holds helpers shared by wskit's tests: a frame reader that
// does not depend on wskit's codec, and a buffer that loggers and other
// goroutines may write to while a test reads it.
//
// It imports only the standard library and package frame, so that the tests
// of any wskit package, and of the bench and interop modules, can use it.
package wstest

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/wskit/wskit/frame"
)

// ReadFrame reads one frame from r by hand: its header, parsed with
// frame.ParseHeader, then its payload. A masked payload is returned
// unmasked; the header keeps Masked and Mask as they were on the wire, so
// a test can still check them.
func ReadFrame(r io.Reader) (frame.Header, []byte, error) {
	return ReadFrameLimit(r, math.MaxInt64)
}

// ReadFrameLimit is ReadFrame with a bound on the announced payload length:
// a header announcing more than limit bytes yields an error before any
// payload is read or allocated, so that a broken peer fails the test
// instead of exhausting memory.
func ReadFrameLimit(r io.Reader, limit int64) (frame.Header, []byte, error) {
	var b [frame.MaxHeaderSize]byte
	if _, err := io.ReadFull(r, b[:2]); err != nil {
		return frame.Header{}, nil, err
	}
	n := 2
	switch b[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b[1]&0x80 != 0 {
		n += 4
	}
	if _, err := io.ReadFull(r, b[2:n]); err != nil {
		return frame.Header{}, nil, err
	}
	h, m, err := frame.ParseHeader(b[:n])
	if err != nil || m != n {
		return h, nil, fmt.Errorf("bad frame header % x: %v", b[:n], err)
	}
	if h.Length > limit {
		return h, nil, fmt.Errorf("frame header announces %d bytes, over the limit of %d", h.Length, limit)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r, p); err != nil {
		return h, nil, err
	}
	if h.Masked {
		frame.Mask(p, h.Mask, 0)
	}
	return h, p, nil
}

// SyncBuffer is a bytes.Buffer safe for concurrent use by writers, such as
// a logger or a child process's output, and a test reading it. The zero
// value is ready to use.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what has been written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Await returns the value sent on ch, or fails the test after wait.
func Await[T any](t testing.TB, ch <-chan T, what string, wait time.Duration) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}
