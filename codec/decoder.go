package codec

import (
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/bufpool"
)

// Errors of the Decoder beyond those of frame.ParseHeader.
var (
	ErrUnmaskedFrame = &frame.ProtocolError{Code: frame.CloseProtocolError, Reason: "client frame is not masked"}
	ErrMaskedFrame   = &frame.ProtocolError{Code: frame.CloseProtocolError, Reason: "server frame is masked"}
	ErrReservedBits  = &frame.ProtocolError{Code: frame.CloseProtocolError, Reason: "RSV bits set that no negotiated extension defines"}
)

// Decoder splits a byte stream into frames. Feed it whatever bytes arrive;
// a frame that arrives whole is returned pointing into those bytes, unmasked
// in place (the caller's input is modified). Only a frame cut by the end of
// the input is copied, into a pooled buffer that is handed back once the
// frame has been delivered and the next call is made.
//
// Set the exported fields before the first call. After an error the decoder
// returns the same error forever: the stream cannot be resynchronised.
type Decoder struct {
	MaxFrameSize int64 // largest accepted payload; 0 means DefaultMaxFrameSize, < 0 no limit
	Role         Role  // which end decodes: a server requires masked frames, a client unmasked
	AllowedRsv   byte  // RSV bits claimed by negotiated extensions (frame.RSV1…)

	inFrame bool // hdr is complete, payload is not
	hdrN    int8 // bytes in hdrBuf while a header is cut
	hdrBuf  [frame.MaxHeaderSize]byte
	hdr     frame.Header
	buf     *[]byte // payload received so far of a cut frame
	lent    *[]byte // buffer of the frame returned last, reclaimed on the next call
	err     error
}

// Next decodes the next frame from the start of in and reports how many
// bytes of in it consumed. When in ends before a frame does, Next consumes
// all of it, keeps what it needs and returns ok == false: call again with
// more bytes. A frame returned with ok == true is valid until the next call.
func (d *Decoder) Next(in []byte) (f frame.Frame, n int, ok bool, err error) {
	if d.lent != nil {
		bufpool.Put(d.lent)
		d.lent = nil
	}
	if d.err != nil {
		return f, 0, false, d.err
	}
	if d.inFrame {
		return d.continuePayload(in)
	}
	var h frame.Header
	var hn int
	if d.hdrN == 0 {
		h, hn, err = frame.ParseHeader(in)
		if err != nil {
			return f, 0, false, d.fail(err)
		}
		if hn == 0 {
			d.hdrN = int8(copy(d.hdrBuf[:], in))
			return f, len(in), false, nil
		}
		n = hn
	} else {
		k := copy(d.hdrBuf[d.hdrN:], in)
		h, hn, err = frame.ParseHeader(d.hdrBuf[:int(d.hdrN)+k])
		if err != nil {
			return f, 0, false, d.fail(err)
		}
		if hn == 0 {
			d.hdrN += int8(k)
			return f, len(in), false, nil
		}
		n = hn - int(d.hdrN)
		d.hdrN = 0
	}
	if err := d.check(&h); err != nil {
		return f, 0, false, d.fail(err)
	}
	rest := in[n:]
	if int64(len(rest)) >= h.Length {
		p := rest[:h.Length]
		if h.Masked {
			frame.Mask(p, h.Mask, 0)
		}
		return frame.Frame{Header: h, Payload: p}, n + int(h.Length), true, nil
	}
	d.hdr = h
	d.inFrame = true
	d.appendPayload(rest)
	return f, len(in), false, nil
}

func (d *Decoder) continuePayload(in []byte) (f frame.Frame, n int, ok bool, err error) {
	have := d.received()
	need := d.hdr.Length - int64(have)
	if int64(len(in)) < need {
		d.appendPayload(in)
		return f, len(in), false, nil
	}
	d.appendPayload(in[:need])
	f = frame.Frame{Header: d.hdr, Payload: *d.buf}
	d.lent, d.buf = d.buf, nil
	d.inFrame = false
	return f, int(need), true, nil
}

// Room returns free space in the buffer of a frame cut by the end of the
// input, for the caller to read the frame's next payload bytes straight into
// it; passing exactly those bytes to Next then costs no copy. It offers at
// most what the frame still needs: all of it when that is at most four
// times least (a 16 KiB frame read through a 4 KiB buffer ends in one more
// read), otherwise growing with the bytes received as Next does. It returns
// nil between frames or when the frame needs fewer than least more bytes.
func (d *Decoder) Room(least int) []byte {
	if !d.inFrame || d.err != nil {
		return nil
	}
	have := d.received()
	need := int(d.hdr.Length) - have
	if need < least {
		return nil
	}
	// At least what appendPayload would ask for, so it never moves the
	// bytes read into the room to another buffer.
	r := min(need, max(least, 2*have))
	if need <= 4*least {
		r = need
	}
	d.buf = bufpool.Grow(d.buf, r)
	return (*d.buf)[have : have+r]
}

// appendPayload copies p to the cut frame's buffer, unmasking it as it goes
// so that Partial can show readable bytes.
func (d *Decoder) appendPayload(p []byte) {
	if len(p) == 0 {
		return
	}
	have := d.received()
	// Grow geometrically with the data, never straight to the announced
	// length: a peer announcing a large frame must send it to cost memory.
	room := max(len(p), min(int(d.hdr.Length)-have, 2*have))
	d.buf = bufpool.Grow(d.buf, room)
	*d.buf = append(*d.buf, p...) // a no-op move when p was read into Room

	if d.hdr.Masked {
		frame.Mask((*d.buf)[have:], d.hdr.Mask, have)
	}
}

// Detach hands over the pooled buffer holding the last frame returned, if
// it was cut and copied: its payload then stays valid after the next call,
// and the caller gives the buffer back to the pool when done with it.
func (d *Decoder) Detach() *[]byte {
	b := d.lent
	d.lent = nil
	return b
}

// Partial returns the header and the payload bytes received so far (already
// unmasked) of a frame cut by the end of the input, so that text can be
// checked before the frame is complete. ok is false between frames.
func (d *Decoder) Partial() (h frame.Header, payload []byte, ok bool) {
	if !d.inFrame {
		return h, nil, false
	}
	if d.buf != nil {
		payload = *d.buf
	}
	return d.hdr, payload, true
}

// Buffered reports how many bytes of an unfinished frame the decoder holds.
func (d *Decoder) Buffered() int { return int(d.hdrN) + d.received() }

// received is the number of payload bytes held of a cut frame.
func (d *Decoder) received() int {
	if d.buf == nil {
		return 0
	}
	return len(*d.buf)
}

// Release hands pooled buffers back; the decoder is unusable afterwards
// except to return ErrReleased. Call it when the connection ends.
func (d *Decoder) Release() {
	bufpool.Put(d.lent)
	bufpool.Put(d.buf)
	d.lent, d.buf = nil, nil
	d.inFrame = false
	if d.err == nil {
		d.err = ErrReleased
	}
}

func (d *Decoder) check(h *frame.Header) error {
	if d.Role == Server && !h.Masked {
		return ErrUnmaskedFrame
	}
	if d.Role == Client && h.Masked {
		return ErrMaskedFrame
	}
	if h.Rsv&^d.AllowedRsv != 0 {
		return ErrReservedBits
	}
	if h.Rsv != 0 && (h.Op == frame.OpContinuation || h.Op.IsControl()) {
		// Extensions here are per-message: their bits mark a message's
		// first frame only (RFC 7692 §6.1 for permessage-deflate).
		return ErrRsvOnContinuation
	}
	limit := d.MaxFrameSize
	if limit == 0 {
		limit = DefaultMaxFrameSize
	}
	if limit > 0 && h.Length > limit {
		return frame.Errorf(frame.CloseMessageTooBig, "frame of %d bytes exceeds the limit of %d", h.Length, limit)
	}
	return nil
}

func (d *Decoder) fail(err error) error {
	d.err = err
	bufpool.Put(d.buf)
	d.buf = nil
	d.inFrame = false
	return err
}
