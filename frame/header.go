package frame

import "encoding/binary"

// Bits of the first header byte that RSV1, RSV2 and RSV3 occupy, as kept in Header.Rsv.
const (
	RSV1 byte = 0x40
	RSV2 byte = 0x20
	RSV3 byte = 0x10
)

// Sizes fixed by RFC 6455.
const (
	MaxHeaderSize     = 14  // 2 + 8 bytes of extended length + 4 bytes of mask key
	MaxControlPayload = 125 // payload limit of close, ping and pong frames
)

// Header is a frame header (RFC 6455 §5.2).
type Header struct {
	Fin    bool    // the frame ends its message
	Rsv    byte    // any of RSV1, RSV2, RSV3
	Op     Opcode  // the frame's opcode
	Masked bool    // the payload is masked with Mask
	Mask   [4]byte // the masking key, when Masked
	Length int64   // payload length; never negative in a parsed header
}

// Frame is a header and its payload. A parsed frame's payload usually points
// into the bytes it was parsed from.
type Frame struct {
	Header
	Payload []byte // Length bytes
}

// Size returns the number of bytes AppendHeader writes for h.
func (h Header) Size() int {
	n := 2
	switch {
	case h.Length > 0xFFFF:
		n += 8
	case h.Length > 125:
		n += 2
	}
	if h.Masked {
		n += 4
	}
	return n
}

// ParseHeader parses the header at the start of b and returns it with the
// number of bytes it took. When b holds only the start of a valid header it
// returns n == 0 and a nil error: more bytes are needed. A header that breaks
// RFC 6455 yields a *ProtocolError as soon as the bytes seen prove it: a
// reserved opcode, a fragmented control frame, a control payload over 125
// bytes or a 64-bit length with its top bit set. RSV bits are returned, not
// judged: whether they are allowed depends on the negotiated extensions.
//
// Lengths not encoded in the minimal number of bytes are accepted, as most
// implementations do: the rule binds senders, and rejecting them buys nothing.
func ParseHeader(b []byte) (h Header, n int, err error) {
	if len(b) == 0 {
		return h, 0, nil
	}
	b0 := b[0]
	h.Fin = b0&0x80 != 0
	h.Rsv = b0 & (RSV1 | RSV2 | RSV3)
	h.Op = Opcode(b0 & 0x0F)
	if h.Op.IsReserved() {
		return h, 0, ErrReservedOpcode.detail("frame uses reserved opcode %#x", byte(h.Op))
	}
	control := h.Op.IsControl()
	if control && !h.Fin {
		return h, 0, ErrFragmentedControl.detail("%v frame is fragmented (FIN not set)", h.Op)
	}
	if len(b) < 2 {
		return h, 0, nil
	}
	b1 := b[1]
	h.Masked = b1&0x80 != 0
	l7 := int64(b1 & 0x7F)
	if control && l7 > MaxControlPayload {
		return h, 0, ErrControlTooLong.detail("%v frame payload longer than 125 bytes", h.Op)
	}
	n = 2
	switch l7 {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if h.Masked {
		n += 4
	}
	if len(b) < n {
		if l7 == 127 && len(b) > 2 && b[2]&0x80 != 0 {
			return h, 0, ErrLengthOverflow
		}
		return h, 0, nil
	}
	p := 2
	switch l7 {
	case 126:
		h.Length = int64(binary.BigEndian.Uint16(b[2:4]))
		p = 4
	case 127:
		l := binary.BigEndian.Uint64(b[2:10])
		if l>>63 != 0 {
			return h, 0, ErrLengthOverflow
		}
		h.Length = int64(l)
		p = 10
	default:
		h.Length = l7
	}
	if h.Masked {
		copy(h.Mask[:], b[p:p+4])
	}
	return h, n, nil
}

// AppendHeader appends the wire form of h to dst, using the shortest length
// encoding. It does not validate h: callers build headers they know are
// correct (h.Length must not be negative).
func AppendHeader(dst []byte, h Header) []byte {
	b0 := byte(h.Op&0x0F) | h.Rsv&(RSV1|RSV2|RSV3)
	if h.Fin {
		b0 |= 0x80
	}
	var m byte
	if h.Masked {
		m = 0x80
	}
	switch l := h.Length; {
	case l <= 125:
		dst = append(dst, b0, m|byte(l))
	case l <= 0xFFFF:
		dst = append(dst, b0, m|126, byte(l>>8), byte(l))
	default:
		dst = append(dst, b0, m|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(l))
	}
	if h.Masked {
		dst = append(dst, h.Mask[0], h.Mask[1], h.Mask[2], h.Mask[3])
	}
	return dst
}
