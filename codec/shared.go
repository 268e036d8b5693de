package codec

import (
	"github.com/wskit/wskit/frame"
)

// SharedTransform is a Transform that can encode a message once for many
// connections, as a broadcast does. Extensions whose Transforms do not
// implement it make a connection's messages unshareable: each is encoded on
// its own.
type SharedTransform interface {
	Transform
	// ShareKey returns a comparable value. Transforms with equal keys accept
	// each other's EncodeShared output.
	ShareKey() any
	// EncodeShared encodes like Encode but with none of the connection's
	// state, so that any connection with an equal key may send the result.
	// It may run concurrently with every other method, even Release.
	EncodeShared(buf *[]byte, op frame.Opcode, p []byte) (out []byte, rsv byte, err error)
	// SentShared tells the transform that an EncodeShared message with the
	// given RSV bits goes out on its connection before any message it
	// encodes next.
	SentShared(rsv byte)
}

// SharedKey tells which connections can send the same encoded bytes: those
// whose Protocol.Sharing keys are equal.
type SharedKey struct {
	fragment int
	n        int
	keys     [3]any // one per extension: no more than the three RSV bits
}

// Sharing encodes messages once for every connection with the same Key.
// The zero value encodes plain server frames.
type Sharing struct {
	Key SharedKey // equal for connections that can share encoded bytes
	ts  [3]SharedTransform
}

// Sharing returns how p's messages can be shared with other connections,
// or false when they cannot: in the client role (each frame has its own
// mask), in raw mode, or with an extension whose Transform is not a
// SharedTransform.
func (p *Protocol) Sharing() (Sharing, bool) {
	if p.cfg.Role == Client || p.cfg.Raw {
		return Sharing{}, false
	}
	s := Sharing{Key: SharedKey{fragment: p.cfg.FragmentSize}}
	if p.ext != nil {
		if len(p.ext.ns) > len(s.ts) {
			return Sharing{}, false
		}
		for i, n := range p.ext.ns {
			st, ok := n.Transform.(SharedTransform)
			if !ok {
				return Sharing{}, false
			}
			key, err := shareKeyOne(st)
			if err != nil {
				return Sharing{}, false
			}
			s.ts[i], s.Key.keys[i] = st, key
		}
		s.Key.n = len(p.ext.ns)
	}
	return s, true
}

// AppendMessage appends a data message encoded for every connection whose
// key equals s.Key, and returns the RSV bits of its first frame, which
// Protocol.SentShared needs. scratch holds intermediate encodings; give its
// buffers back with ReturnBuffer.
func (s *Sharing) AppendMessage(dst []byte, op frame.Opcode, payload []byte, scratch *[2]*[]byte) ([]byte, byte, error) {
	var rsv byte
	cur := 1
	for i := range s.Key.n {
		buf := getBuf(&scratch[1-cur], 0)
		out, bits, err := encodeSharedOne(s.ts[i], buf, op, payload)
		if err != nil {
			return dst, 0, err
		}
		rsv |= bits
		payload = out
		if within(out, *buf) {
			cur = 1 - cur
		}
	}
	enc := Encoder{Role: Server, FragmentSize: s.Key.fragment}
	return enc.AppendMessage(dst, op, rsv, payload), rsv, nil
}

// CountShared counts, in the Protocol's Counters, a data message of type
// op whose payload had n bytes, encoded by a Sharing into the frames b
// and sent on p's connection (after SentShared).
func (p *Protocol) CountShared(op frame.Opcode, n int, b []byte) {
	c := p.cfg.Counters
	if c == nil {
		return
	}
	frames, wire := framesOf(b)
	p.outFrames(frames)
	p.outMessage(op, n, true)
	if p.deflate != 0 {
		c.Out.DeflatePlain.Add(uint64(n))
		c.Out.DeflateWire.Add(wire)
	}
}

// framesOf returns the number of whole frames at the start of b, and the
// sum of their payload lengths.
func framesOf(b []byte) (frames, payload uint64) {
	for len(b) > 0 {
		h, n, err := frame.ParseHeader(b)
		if err != nil || n == 0 || int64(len(b)-n) < h.Length {
			break
		}
		frames++
		payload += uint64(h.Length)
		b = b[n+int(h.Length):]
	}
	return frames, payload
}

// SentShared records that a message encoded by a Sharing with p's key, whose
// first frame has the RSV bits rsv, is written to p's connection next. It
// fails with ErrCloseSent after our close frame, when no message may go out.
func (p *Protocol) SentShared(rsv byte) error {
	if p.sentClose {
		return ErrCloseSent
	}
	if p.ext != nil {
		if p.ext.done {
			return ErrReleased
		}
		for i := range p.ext.ns {
			n := &p.ext.ns[i]
			if st, ok := n.Transform.(SharedTransform); ok {
				if err := sentSharedOne(n, st, rsv&n.Rsv); err != nil {
					return p.failSend(err)
				}
			}
		}
	}
	return nil
}
