package codec

import (
	"encoding/binary"
	"sync/atomic"

	"golang.org/x/sys/cpu"

	"github.com/wskit/wskit/frame"
)

// Counters count what Protocols receive and send. A Protocol whose
// Config.Counters is set adds to them as it goes, with atomic adds and no
// allocation; many Protocols may share one Counters (a transport gives one
// to each event loop, or to each group of connections), and any goroutine
// may read it at any time with the fields' Load.
//
// What peers send is counted as it is parsed; what a Protocol sends, as it
// is appended for the transport to write (a transport whose connection
// fails may not write it all).
type Counters struct {
	In  Direction        // what peers sent
	_   cpu.CacheLinePad // In is the reader's, Out the senders': apart
	Out Direction        // what was sent to peers
	// PongTimeouts counts keepalive pings left unanswered past
	// Config.Timeout (the connection then fails with ErrPongTimeout).
	PongTimeouts atomic.Uint64
	// CloseTimeouts counts close frames of ours left unanswered past
	// Config.Timeout (ErrCloseTimeout).
	CloseTimeouts atomic.Uint64
}

// Direction counts the frames going one way.
type Direction struct {
	// Frames counts frames of every kind, control frames and fragments
	// included.
	Frames atomic.Uint64
	// Messages and Bytes count data messages and their payload bytes by
	// type: [0] text, [1] binary. A message counts once it is whole (in
	// raw mode, at its final frame; its bytes as each frame passes). The
	// bytes are the application's: after permessage-deflate inflated a
	// message received, before it compresses one sent.
	Messages [2]atomic.Uint64 // whole data messages, by type
	Bytes    [2]atomic.Uint64 // their payload bytes, by type
	// Pings and Pongs count control frames; Close counts close frames by
	// code: Close[i] counts code 1000+i for i < 16 (1005 stands for a close
	// frame without a code), and Close[16] every other code.
	Pings, Pongs atomic.Uint64
	Close        [17]atomic.Uint64 // by code, as above
	// DeflateWire and DeflatePlain count, on connections that negotiated
	// permessage-deflate, the payload bytes of data messages as they are
	// on the wire and as the application has them (compressed or not).
	DeflateWire, DeflatePlain atomic.Uint64
}

// CloseIndex returns the index in Direction.Close that counts code.
func CloseIndex(code frame.CloseCode) int {
	if code >= 1000 && code < 1016 {
		return int(code - 1000)
	}
	return 16
}

// closeCodeOf returns the code of a close frame's payload: CloseNoStatus
// when it has none.
func closeCodeOf(payload []byte) frame.CloseCode {
	if len(payload) < 2 {
		return frame.CloseNoStatus
	}
	return frame.CloseCode(binary.BigEndian.Uint16(payload))
}

// control counts a control frame of opcode op with the given payload.
func (d *Direction) control(op frame.Opcode, payload []byte) {
	switch op {
	case frame.OpPing:
		d.Pings.Add(1)
	case frame.OpPong:
		d.Pongs.Add(1)
	case frame.OpClose:
		d.Close[CloseIndex(closeCodeOf(payload))].Add(1)
	}
}

// fragments returns the number of frames Encoder.AppendMessage makes of a
// payload of n bytes.
func (e Encoder) fragments(n int) uint64 {
	if e.FragmentSize <= 0 || n <= e.FragmentSize {
		return 1
	}
	return uint64((n + e.FragmentSize - 1) / e.FragmentSize)
}

// dataFrame returns the opcode of the message a data frame belongs to, as
// a Protocol that counts frame by frame keeps it in *op, and whether the
// frame ends it.
func dataFrame(op *frame.Opcode, h frame.Header) (frame.Opcode, bool) {
	if h.Op != frame.OpContinuation {
		*op = h.Op
	}
	return *op, h.Fin
}

// deflateBit returns the RSV bit of permessage-deflate among ns, or 0.
func deflateBit(ns []Negotiated) byte {
	for _, n := range ns {
		if n.Name == "permessage-deflate" {
			return n.Rsv
		}
	}
	return 0
}

// Tally holds the counts a Protocol takes most often (frames, data
// messages and their bytes) in plain integers, for a caller that adds them
// to Counters in batches rather than with an atomic add each (see
// Protocol.SetTally). [0] counts text, [1] binary.
type Tally struct {
	InFrames, OutFrames     uint64    // as Direction.Frames
	InMessages, OutMessages [2]uint64 // as Direction.Messages
	InBytes, OutBytes       [2]uint64 // as Direction.Bytes
}

// AddTo adds t to c, atomically, and zeroes t.
func (t *Tally) AddTo(c *Counters) {
	addNonzero(&c.In.Frames, t.InFrames)
	addNonzero(&c.Out.Frames, t.OutFrames)
	for i := range 2 {
		addNonzero(&c.In.Messages[i], t.InMessages[i])
		addNonzero(&c.In.Bytes[i], t.InBytes[i])
		addNonzero(&c.Out.Messages[i], t.OutMessages[i])
		addNonzero(&c.Out.Bytes[i], t.OutBytes[i])
	}
	*t = Tally{}
}

func addNonzero(c *atomic.Uint64, n uint64) {
	if n != 0 {
		c.Add(n)
	}
}

// SetTally makes p keep its counts of frames, data messages and their
// bytes in t, with plain adds, until SetTally(nil); the rest still goes to
// Config.Counters, which must be set. The caller serialises every use of
// t, as it does p's, and adds t to the Counters (Tally.AddTo) when it
// likes: an event loop, once per batch of input.
func (p *Protocol) SetTally(t *Tally) { p.tally = t }

// inFrame counts a frame received.
func (p *Protocol) inFrame() {
	if t := p.tally; t != nil {
		t.InFrames++
		return
	}
	p.cfg.Counters.In.Frames.Add(1)
}

// inMessage counts a data message received, or the bytes of a raw frame
// (whole tells whether a message ends with it).
func (p *Protocol) inMessage(op frame.Opcode, n int, whole bool) {
	i := int(op) - 1
	if i != 0 && i != 1 {
		return
	}
	if t := p.tally; t != nil {
		t.InBytes[i] += uint64(n)
		if whole {
			t.InMessages[i]++
		}
		return
	}
	p.cfg.Counters.In.Bytes[i].Add(uint64(n))
	if whole {
		p.cfg.Counters.In.Messages[i].Add(1)
	}
}

// outFrames counts frames sent.
func (p *Protocol) outFrames(n uint64) {
	if t := p.tally; t != nil {
		t.OutFrames += n
		return
	}
	p.cfg.Counters.Out.Frames.Add(n)
}

// outMessage is inMessage for a message sent.
func (p *Protocol) outMessage(op frame.Opcode, n int, whole bool) {
	i := int(op) - 1
	if i != 0 && i != 1 {
		return
	}
	if t := p.tally; t != nil {
		t.OutBytes[i] += uint64(n)
		if whole {
			t.OutMessages[i]++
		}
		return
	}
	p.cfg.Counters.Out.Bytes[i].Add(uint64(n))
	if whole {
		p.cfg.Counters.Out.Messages[i].Add(1)
	}
}
