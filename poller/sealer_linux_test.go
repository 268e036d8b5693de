//go:build linux

package poller

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// xorSealer frames output in records of a 2-byte length and the bytes
// XORed with its key; "o" is a record it owes of its own, and "end" closes.
type xorSealer struct {
	key  byte
	owed bool
}

func (s *xorSealer) Seal(dst, plain []byte) []byte {
	if s.owed {
		dst = s.record(dst, []byte("o"))
		s.owed = false
		s.key++ // a new key after what was owed, as a TLS key update
	}
	if len(plain) == 0 {
		return dst
	}
	return s.record(dst, plain)
}

func (s *xorSealer) record(dst, p []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(p)))
	for _, b := range p {
		dst = append(dst, b^s.key)
	}
	return dst
}

func (s *xorSealer) SealedSize(n int) int    { return 2*2 + n + 1 }
func (s *xorSealer) Owed() bool              { return s.owed }
func (s *xorSealer) Close(dst []byte) []byte { return s.record(dst, []byte("end")) }

// sealingHandler echoes with a sealer set from the start; a byte '!' makes
// the sealer owe a record, which goes after the echoes before it; '#'
// closes.
type sealingHandler struct{ echoHandler }

func (h *sealingHandler) OnOpen(c *Conn) {
	c.Lock()
	c.SetSealer(&xorSealer{key: 7})
	c.Unlock()
}

func (h *sealingHandler) OnData(c *Conn, in []byte) {
	c.Lock()
	defer c.Unlock()
	for _, b := range in {
		switch b {
		case '!':
			c.sealer().(*xorSealer).owed = true
			c.SealOwed()
		case '#':
			go c.Close()
		default:
			c.Commit(append(c.Buffer(1), b))
		}
	}
}

// TestSealer checks that what a sealer makes of the output is what goes
// on the wire, in order, with what it owes between and its end last.
func TestSealer(t *testing.T) {
	_, addr := startEngine(t, Config{Loops: 1}, &sealingHandler{})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(nc)
	read := func() (string, byte) {
		var n [2]byte
		if _, err := io.ReadFull(br, n[:]); err != nil {
			t.Fatal(err)
		}
		p := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatal(err)
		}
		key := p[0] ^ 'o' // what the owed record was sealed with, if it is that
		for i := range p {
			p[i] ^= 7
		}
		return string(p), key
	}
	nc.Write([]byte("ab"))
	var got bytes.Buffer
	for got.Len() < 2 {
		s, _ := read()
		got.WriteString(s)
	}
	if got.String() != "ab" {
		t.Fatalf("got %q, want the echo of ab", got.String())
	}
	nc.Write([]byte("!"))
	if s, key := read(); key != 7 || s != "o" {
		t.Fatalf("got %q with key %d, want the owed record", s, key)
	}
	nc.Write([]byte("c#"))
	var p [64]byte
	n, _ := io.ReadAtLeast(br, p[:], 2+1+2+3)
	want := []byte{0, 1, 'c' ^ 8, 0, 3, 'e' ^ 8, 'n' ^ 8, 'd' ^ 8}
	if !bytes.Equal(p[:n], want) {
		t.Fatalf("got % x, want the echo under the new key, then the end", p[:n])
	}
}
