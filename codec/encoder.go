package codec

import (
	"encoding/binary"
	"math/rand/v2"

	"github.com/wskit/wskit/frame"
)

// Encoder appends frames to a caller's buffer. In the client role every
// frame is masked with a fresh key from the runtime's ChaCha8 generator,
// which is seeded from the operating system and costs no system call per
// frame, so keys are unpredictable as RFC 6455 §5.3 requires.
type Encoder struct {
	Role Role // a Client masks every frame
	// FragmentSize splits messages longer than it into frames of at most
	// that many payload bytes; 0 never splits.
	FragmentSize int
}

// AppendFrame appends one frame with header h (its Length and mask are set
// here) and payload p. The payload is copied, so p is never modified.
func (e Encoder) AppendFrame(dst []byte, h frame.Header, p []byte) []byte {
	h.Length = int64(len(p))
	h.Masked = e.Role == Client
	if h.Masked {
		binary.LittleEndian.PutUint32(h.Mask[:], rand.Uint32())
	}
	dst = frame.AppendHeader(dst, h)
	n := len(dst)
	dst = append(dst, p...)
	if h.Masked {
		frame.Mask(dst[n:], h.Mask, 0)
	}
	return dst
}

// AppendMessage appends a whole data message with opcode op (OpText or
// OpBinary), splitting it into fragments when FragmentSize asks for it. rsv
// goes on the first frame only, as extensions such as permessage-deflate need.
func (e Encoder) AppendMessage(dst []byte, op frame.Opcode, rsv byte, p []byte) []byte {
	if e.FragmentSize <= 0 || len(p) <= e.FragmentSize {
		return e.AppendFrame(dst, frame.Header{Fin: true, Rsv: rsv, Op: op}, p)
	}
	for first := true; ; first = false {
		n := min(len(p), e.FragmentSize)
		h := frame.Header{Fin: n == len(p), Op: frame.OpContinuation}
		if first {
			h.Op, h.Rsv = op, rsv
		}
		dst = e.AppendFrame(dst, h, p[:n])
		p = p[n:]
		if len(p) == 0 {
			return dst
		}
	}
}

// MessageSize returns the number of bytes AppendMessage writes for a payload
// of n bytes, so callers can reserve room in one step.
func (e Encoder) MessageSize(n int) int {
	hdr := func(l int) int {
		return frame.Header{Length: int64(l), Masked: e.Role == Client}.Size()
	}
	if e.FragmentSize <= 0 || n <= e.FragmentSize {
		return hdr(n) + n
	}
	full := n / e.FragmentSize
	size := full * hdr(e.FragmentSize)
	if rest := n % e.FragmentSize; rest > 0 {
		size += hdr(rest)
	}
	return size + n
}
