package load

import (
	"bytes"
	"fmt"

	"github.com/wskit/wskit/frame"
)

// event is what frameReader.next reports.
type event uint8

const (
	evMore    event = iota // every byte consumed, nothing completed
	evMessage              // a data message ended: msgOp, msgLen, prefix
	evPing                 // a ping ended: its payload is control()
	evPong
	evClose // a close frame ended: its payload is control()
)

// prefixLen is how many leading payload bytes of each message a
// frameReader keeps: enough for a stamp.
const prefixLen = maxSeqPrefix + stampLen

// frameReader follows the frames a server sends on one connection. It
// parses headers, which may be split across reads, and skips payloads
// without copying them, except for control frames and the first prefixLen
// bytes of each data message. Messages may be fragmented and have control
// frames between their fragments.
type frameReader struct {
	left    int64        // payload bytes of the current frame not yet seen
	msgLen  int64        // payload bytes of the current data message so far
	limit   int64        // the longest message accepted
	op      frame.Opcode // the current frame's
	msgOp   frame.Opcode // the current data message's: OpText or OpBinary
	inFrame bool         // a header was parsed and its payload is not all seen
	inMsg   bool         // a data message has begun and not ended
	fin     bool
	hn      uint8 // bytes of a split header in hdr
	ctln    uint8
	pre     uint8
	hdr     [frame.MaxHeaderSize]byte
	ctl     [frame.MaxControlPayload]byte
	prefix  [prefixLen]byte
	// want, when not nil, is what every data message must carry: each
	// payload byte is compared with the byte of want at its offset as it
	// goes by, without being copied. diff is the offset of the current
	// message's first byte that differs, -1 while none does.
	want []byte
	diff int64
}

// reset readies r for a new connection whose messages may be up to limit
// bytes, each of them checked against want unless it is nil (then want
// must hold limit bytes).
func (r *frameReader) reset(limit int64, want []byte) {
	*r = frameReader{limit: limit, want: want, diff: -1}
}

// differs returns the offset of the first byte of the message just
// reported that differs from want, or -1.
func (r *frameReader) differs() int64 { return r.diff }

// control returns the payload of the control frame just reported.
func (r *frameReader) control() []byte { return r.ctl[:r.ctln] }

// head returns the first bytes of the message just reported.
func (r *frameReader) head() []byte { return r.prefix[:r.pre] }

// next consumes bytes of p up to the end of the first message or control
// frame they complete, and returns how many it consumed and what ended.
// With evMore all of p was consumed. An error means the stream cannot be
// followed any further.
func (r *frameReader) next(p []byte) (int, event, error) {
	n := 0
	for n < len(p) {
		if !r.inFrame {
			var (
				h   frame.Header
				k   int
				err error
			)
			if r.hn == 0 {
				if h, k, err = frame.ParseHeader(p[n:]); err != nil {
					return n, evMore, err
				}
				if k == 0 {
					r.hn = uint8(copy(r.hdr[:], p[n:]))
					return len(p), evMore, nil
				}
				n += k
			} else {
				had := int(r.hn)
				c := copy(r.hdr[had:], p[n:])
				if h, k, err = frame.ParseHeader(r.hdr[:had+c]); err != nil {
					return n, evMore, err
				}
				if k == 0 { // a header is at most len(hdr): c took all of p
					r.hn += uint8(c)
					return len(p), evMore, nil
				}
				n += k - had
				r.hn = 0
			}
			if err := r.begin(h); err != nil {
				return n, evMore, err
			}
		} else {
			k := int(min(r.left, int64(len(p)-n)))
			r.take(p[n : n+k])
			n += k
			r.left -= int64(k)
		}
		if r.left == 0 {
			if ev := r.end(); ev != evMore {
				return n, ev, nil
			}
		}
	}
	return n, evMore, nil
}

// begin checks a frame's header and starts on its payload.
func (r *frameReader) begin(h frame.Header) error {
	if h.Masked {
		return fmt.Errorf("masked %v frame from the server", h.Op)
	}
	if h.Rsv != 0 {
		return fmt.Errorf("%v frame with RSV bits %#x, but no extension was negotiated", h.Op, h.Rsv)
	}
	r.op, r.fin, r.left, r.inFrame = h.Op, h.Fin, h.Length, true
	if h.Op.IsControl() {
		r.ctln = 0
		return nil
	}
	switch {
	case h.Op == frame.OpContinuation && !r.inMsg:
		return fmt.Errorf("continuation frame with no message begun")
	case h.Op != frame.OpContinuation && r.inMsg:
		return fmt.Errorf("%v frame inside a fragmented message", h.Op)
	case h.Op != frame.OpContinuation:
		r.inMsg, r.msgOp, r.msgLen, r.pre, r.diff = true, h.Op, 0, 0, -1
	}
	if h.Length > r.limit-r.msgLen {
		return fmt.Errorf("message of at least %d bytes, longer than the %d expected", r.msgLen+h.Length, r.limit)
	}
	r.msgLen += h.Length
	return nil
}

// take consumes payload bytes of the current frame.
func (r *frameReader) take(p []byte) {
	if r.op.IsControl() {
		r.ctln += uint8(copy(r.ctl[r.ctln:], p))
		return
	}
	if int(r.pre) < len(r.prefix) {
		r.pre += uint8(copy(r.prefix[r.pre:], p))
	}
	if r.want != nil && r.diff < 0 {
		off := r.msgLen - r.left // begin checked that msgLen <= limit = len(want)
		if i := mismatch(p, r.want[off:]); i >= 0 {
			r.diff = off + int64(i)
		}
	}
}

// mismatch returns the index of the first byte of p that differs from
// want's, or -1 when want begins with p.
func mismatch(p, want []byte) int {
	if len(want) >= len(p) && bytes.Equal(p, want[:len(p)]) {
		return -1
	}
	for i := range p {
		if i >= len(want) || p[i] != want[i] {
			return i
		}
	}
	return -1
}

// rawMismatch checks p, bytes of a raw echo that begin got bytes into a
// reply, against the replies expected, want after want, and returns the
// index in p of the first byte that differs, or -1.
func rawMismatch(want []byte, got int, p []byte) int {
	pos := got % len(want)
	for done := 0; done < len(p); {
		k := min(len(p)-done, len(want)-pos)
		if i := mismatch(p[done:done+k], want[pos:pos+k]); i >= 0 {
			return done + i
		}
		done += k
		pos = 0
	}
	return -1
}

// end finishes a frame whose payload has all been seen.
func (r *frameReader) end() event {
	r.inFrame = false
	switch r.op {
	case frame.OpPing:
		return evPing
	case frame.OpPong:
		return evPong
	case frame.OpClose:
		return evClose
	}
	if !r.fin {
		return evMore
	}
	r.inMsg = false
	return evMessage
}
