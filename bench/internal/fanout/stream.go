// Package fanout holds the parts of BenchmarkFanout: the broadcast servers
// it compares (a classic gorilla/websocket hub and wskit's Hub on both
// engines), the subscriber process that holds the connections and checks
// every message they receive, and the parent's end of that process.
package fanout

import (
	"encoding/binary"
	"fmt"

	"github.com/wskit/wskit/frame"
)

// MinSize is the smallest message: a sequence number at each end.
const MinSize = 16

// NewMessage returns a message of size bytes (at least MinSize) for
// Number to stamp: a filler byte pattern between the sequence numbers.
func NewMessage(size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(i)
	}
	return p
}

// Number stamps the message p with sequence number seq, little-endian in
// its first and last 8 bytes. Subscribers check both copies, so that a
// truncated, shifted or mixed-up payload is caught without reading every
// byte.
func Number(p []byte, seq uint64) {
	binary.LittleEndian.PutUint64(p, seq)
	binary.LittleEndian.PutUint64(p[len(p)-8:], seq)
}

// stream follows what one connection receives from the server: it parses
// frame headers, which may be split across reads, folds the two sequence
// numbers of each message from its payload without copying it, and checks
// that the messages are binary, of the expected size, and numbered 0, 1,
// 2, ... Control frames may come between fragments; a ping's payload is
// kept for the pong.
type stream struct {
	next uint64 // sequence number of the next message
	head uint64 // sequence number from the current message's first 8 bytes
	tail uint64 // ... and from its last 8 bytes
	pos  int32  // payload bytes of the current message so far
	left int32  // payload bytes of the current frame not yet seen
	fin  bool   // the current frame ends its message
	op   frame.Opcode
	hn   uint8 // bytes of a split header in hdr
	hdr  [frame.MaxHeaderSize]byte
	ctl  *control // a control frame's payload; allocated at the first
}

// control collects the payload of a control frame.
type control struct {
	buf  [125]byte
	n    int
	ping bool // buf[:n] is a ping's payload waiting for its pong
}

// feed consumes bytes from the server and returns the messages they
// complete. size is every message's length.
func (s *stream) feed(p []byte, size int) (msgs int, err error) {
	for len(p) > 0 {
		if s.left > 0 {
			n := min(int(s.left), len(p))
			s.take(p[:n], size)
			s.left -= int32(n)
			p = p[n:]
			if s.left == 0 {
				m, err := s.endFrame(size)
				if msgs += m; err != nil {
					return msgs, err
				}
			}
			continue
		}
		var (
			h frame.Header
			n int
		)
		if s.hn == 0 {
			if h, n, err = frame.ParseHeader(p); err != nil {
				return msgs, err
			}
			if n == 0 {
				s.hn = uint8(copy(s.hdr[:], p))
				return msgs, nil
			}
			p = p[n:]
		} else {
			had := int(s.hn)
			k := copy(s.hdr[had:], p)
			if h, n, err = frame.ParseHeader(s.hdr[:had+k]); err != nil {
				return msgs, err
			}
			if n == 0 {
				s.hn += uint8(k)
				return msgs, nil
			}
			p = p[n-had:]
			s.hn = 0
		}
		if err := s.begin(h, size); err != nil {
			return msgs, err
		}
		if s.left == 0 {
			m, err := s.endFrame(size)
			if msgs += m; err != nil {
				return msgs, err
			}
		}
	}
	return msgs, nil
}

// begin checks a frame's header and starts its payload.
func (s *stream) begin(h frame.Header, size int) error {
	if h.Masked || h.Rsv != 0 {
		return fmt.Errorf("unexpected frame %+v", h)
	}
	s.op, s.fin, s.left = h.Op, h.Fin, int32(h.Length)
	if h.Op.IsControl() {
		if s.ctl == nil {
			s.ctl = new(control)
		}
		s.ctl.n = 0
		return nil
	}
	want := frame.OpBinary
	if s.pos > 0 {
		want = frame.OpContinuation
	}
	if h.Op != want || h.Length > int64(size)-int64(s.pos) {
		return fmt.Errorf("unexpected frame %+v after %d bytes of message %d", h, s.pos, s.next)
	}
	return nil
}

// take consumes payload bytes of the current frame.
func (s *stream) take(p []byte, size int) {
	if s.op.IsControl() {
		s.ctl.n += copy(s.ctl.buf[s.ctl.n:], p)
		return
	}
	pos := int(s.pos)
	for i := pos; i < min(pos+len(p), 8); i++ {
		s.head |= uint64(p[i-pos]) << (8 * i)
	}
	for i := max(pos, size-8); i < pos+len(p); i++ {
		s.tail |= uint64(p[i-pos]) << (8 * (i - (size - 8)))
	}
	s.pos += int32(len(p))
}

// endFrame finishes the frame whose payload has all been seen and returns 1
// if it completed a message.
func (s *stream) endFrame(size int) (int, error) {
	switch s.op {
	case frame.OpPing:
		s.ctl.ping = true
		return 0, nil
	case frame.OpPong:
		return 0, nil
	case frame.OpClose:
		code, reason, _ := frame.ParseClose(s.ctl.buf[:s.ctl.n])
		return 0, fmt.Errorf("the server closed the connection (%d %q) after %d messages", code, reason, s.next)
	}
	if !s.fin {
		return 0, nil
	}
	if int(s.pos) != size {
		return 0, fmt.Errorf("message %d has %d bytes, want %d", s.next, s.pos, size)
	}
	if s.head != s.next || s.tail != s.next {
		return 0, fmt.Errorf("message %d carries sequence numbers %d and %d: out of order or mangled", s.next, s.head, s.tail)
	}
	s.next++
	s.head, s.tail, s.pos = 0, 0, 0
	return 1, nil
}

// pong appends to dst the masked pong that answers the last ping, if one
// is due, and returns dst.
func (s *stream) pong(dst []byte) []byte {
	if s.ctl == nil || !s.ctl.ping {
		return dst
	}
	p := s.ctl.buf[:s.ctl.n]
	h := frame.Header{Fin: true, Op: frame.OpPong, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: int64(len(p))}
	dst = frame.AppendHeader(dst, h)
	n := len(dst)
	dst = append(dst, p...)
	frame.Mask(dst[n:], h.Mask, 0)
	s.ctl.ping = false
	return dst
}
