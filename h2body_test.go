package wskit

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// TestBodyReader: a body read in pieces arrives whole; a deadline wakes a
// Read without harming the stream, whose bytes then still come; stop ends
// Reads and drains the body to its end.
func TestBodyReader(t *testing.T) {
	pr, pw := io.Pipe()
	b := newBodyReader(pr)
	go func() {
		pw.Write([]byte("hello"))
		pw.Write([]byte("world"))
	}()
	buf := make([]byte, 3)
	var got []byte
	for len(got) < 10 {
		n, err := b.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "helloworld" {
		t.Fatalf("read %q", got)
	}

	b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := b.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v", err)
	}
	b.SetReadDeadline(time.Time{})
	go pw.Write([]byte("again"))
	if n, err := b.Read(buf); err != nil || string(buf[:n]) != "aga" {
		t.Fatalf("Read after a deadline: %q %v", buf[:n], err)
	}

	wrote := make(chan error, 1)
	go func() {
		_, err := pw.Write(make([]byte, 100<<10)) // nobody reads it but the drain
		pw.Close()
		wrote <- err
	}()
	if !b.stop() || b.stop() {
		t.Fatal("stop reported wrongly")
	}
	if _, err := b.Read(buf); err == nil {
		t.Fatal("Read after stop succeeded")
	}
	if err := <-wrote; err != nil {
		t.Fatalf("the body was not drained: %v", err)
	}
	<-b.ended
}
