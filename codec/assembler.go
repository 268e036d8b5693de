package codec

import (
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/bufpool"
)

// Errors of the Assembler.
var (
	ErrUnexpectedContinuation = &frame.ProtocolError{Code: frame.CloseProtocolError, Reason: "continuation frame with no message to continue"}
	ErrExpectedContinuation   = &frame.ProtocolError{Code: frame.CloseProtocolError, Reason: "new data frame inside an unfinished message"}
	ErrInvalidUTF8            = &frame.ProtocolError{Code: frame.CloseInvalidPayload, Reason: "text message is not valid UTF-8"}
	ErrNotData                = &frame.ProtocolError{Code: frame.CloseProtocolError, Reason: "control frame given to the assembler"}
)

// Message is a data message: whole, or in raw or stream mode one fragment
// of it.
type Message struct {
	Op      frame.Opcode // OpText or OpBinary; in raw mode the frame's own opcode, OpContinuation included
	Fin     bool         // always true unless in raw or stream mode
	Rsv     byte         // RSV bits of the message's first frame
	Payload []byte       // borrowed: valid until the next call on the Assembler or its Decoder
}

// Assembler joins data frames into messages (RFC 6455 §5.4). It checks the
// continuation rules, the message size limit, and text for UTF-8 as each
// fragment (and each received part of a cut frame, via Check) arrives, so an
// invalid message fails at the first byte that proves it. Text whose first
// frame has RSV bits is left unchecked: an extension transformed it, and
// Protocol checks it once decoded.
//
// A message that arrives as one frame is returned without a copy. Fragments
// are joined in a pooled buffer, handed back on the next call.
//
// In raw mode every fragment is returned as it comes, with the same checks.
// In stream mode so is every fragment of a message whose first frame comes
// while Stream is set and has no RSV bits, with the message's opcode: a
// reader consumes a message of any size one frame at a time. A message an
// extension transformed is still joined, to be decoded whole.
type Assembler struct {
	MaxMessageSize int64 // 0 means DefaultMaxMessageSize, < 0 no limit
	Raw            bool  // every fragment as it comes, with its own opcode
	Stream         bool  // every fragment of the messages that start now, with the message's opcode

	op      frame.Opcode // opcode of the unfinished message, 0 between messages
	rsv     byte
	stream  bool // the unfinished message is returned frame by frame
	utf8    frame.UTF8Validator
	size    int64   // bytes of the unfinished message, in finished frames
	checked int     // bytes of the current cut frame already checked by Check
	buf     *[]byte // joined fragments
	lent    *[]byte
	err     error
}

// InMessage reports whether a fragmented message has started and not finished.
func (a *Assembler) InMessage() bool { return a.op != 0 }

// Push takes the next data frame. ok is true when it completes a message (or,
// in raw mode, for every frame).
func (a *Assembler) Push(f frame.Frame) (m Message, ok bool, err error) {
	if a.lent != nil {
		bufpool.Put(a.lent)
		a.lent = nil
	}
	if a.err != nil {
		return m, false, a.err
	}
	if !f.Op.IsData() {
		return m, false, a.fail(ErrNotData)
	}
	if err := a.begin(f.Header); err != nil {
		return m, false, a.fail(err)
	}
	if err := a.limit(int64(len(f.Payload))); err != nil {
		return m, false, a.fail(err)
	}
	if a.op == frame.OpText && a.rsv == 0 {
		if !a.utf8.Write(f.Payload[a.checked:]) || (f.Fin && !a.utf8.Complete()) {
			return m, false, a.fail(ErrInvalidUTF8)
		}
	}
	a.checked = 0
	a.size += int64(len(f.Payload))
	op, rsv, stream := a.op, a.rsv, a.stream
	if f.Fin {
		a.op, a.rsv, a.size, a.stream = 0, 0, 0, false
		a.utf8.Reset()
	}
	if a.Raw {
		return Message{Op: f.Op, Fin: f.Fin, Rsv: f.Rsv, Payload: f.Payload}, true, nil
	}
	if stream {
		return Message{Op: op, Fin: f.Fin, Rsv: rsv, Payload: f.Payload}, true, nil
	}
	if f.Fin && a.buf == nil {
		return Message{Op: op, Fin: true, Rsv: rsv, Payload: f.Payload}, true, nil
	}
	a.buf = bufpool.Grow(a.buf, len(f.Payload))
	*a.buf = append(*a.buf, f.Payload...)
	if !f.Fin {
		return m, false, nil
	}
	m = Message{Op: op, Fin: true, Rsv: rsv, Payload: *a.buf}
	a.lent, a.buf = a.buf, nil
	return m, true, nil
}

// Check inspects the received part of a data frame that is not complete yet
// (see Decoder.Partial): it applies the continuation rules, the size limit and
// the UTF-8 check early. Call it with growing prefixes of the same frame.
func (a *Assembler) Check(h frame.Header, partial []byte) error {
	if a.err != nil {
		return a.err
	}
	if !h.Op.IsData() {
		return nil
	}
	op, rsv := a.op, a.rsv
	if op == 0 {
		op, rsv = h.Op, h.Rsv
	}
	if err := a.continuation(h); err != nil {
		return a.fail(err)
	}
	if err := a.limit(h.Length); err != nil {
		return a.fail(err)
	}
	// A message with RSV bits is checked once the extensions have decoded it.
	if op == frame.OpText && rsv == 0 && len(partial) > a.checked {
		if !a.utf8.Write(partial[a.checked:]) {
			return a.fail(ErrInvalidUTF8)
		}
		a.checked = len(partial)
	}
	return nil
}

func (a *Assembler) continuation(h frame.Header) error {
	if h.Op == frame.OpContinuation {
		if a.op == 0 {
			return ErrUnexpectedContinuation
		}
	} else if a.op != 0 {
		return ErrExpectedContinuation
	}
	return nil
}

func (a *Assembler) begin(h frame.Header) error {
	if err := a.continuation(h); err != nil {
		return err
	}
	if a.op == 0 {
		a.op, a.rsv = h.Op, h.Rsv
		a.stream = a.Stream && h.Rsv == 0
	}
	return nil
}

// limit checks that n more bytes keep the message within the limit. It
// subtracts rather than adds: an announced frame length near 2^63 must not
// wrap around and pass.
func (a *Assembler) limit(n int64) error {
	max := a.MaxMessageSize
	if max == 0 {
		max = DefaultMaxMessageSize
	}
	if max > 0 && n > max-a.size {
		return frame.Errorf(frame.CloseMessageTooBig, "message exceeds the limit of %d bytes", max)
	}
	return nil
}

// Detach hands over the pooled buffer holding the last message returned, if
// any: its payload then stays valid after the next call, and the caller
// gives the buffer back to the pool when done with it.
func (a *Assembler) Detach() *[]byte {
	b := a.lent
	a.lent = nil
	return b
}

// Release hands pooled buffers back. Call it when the connection ends.
func (a *Assembler) Release() {
	bufpool.Put(a.lent)
	bufpool.Put(a.buf)
	a.lent, a.buf = nil, nil
	if a.err == nil {
		a.err = ErrReleased
	}
}

func (a *Assembler) fail(err error) error {
	a.err = err
	bufpool.Put(a.buf)
	a.buf = nil
	return err
}
