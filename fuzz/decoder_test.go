package fuzz

import (
	"bytes"
	"strings"
	"testing"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
)

// appendFrame appends a frame to dst, masked with key when key is not nil.
func appendFrame(dst []byte, fin bool, rsv byte, op frame.Opcode, key *[4]byte, payload []byte) []byte {
	h := frame.Header{Fin: fin, Rsv: rsv, Op: op, Length: int64(len(payload))}
	if key != nil {
		h.Masked, h.Mask = true, *key
		dst = frame.AppendHeader(dst, h)
		return append(dst, unmask(payload, *key)...)
	}
	dst = frame.AppendHeader(dst, h)
	return append(dst, payload...)
}

// decoderOpts turns a fuzzed word into decoder settings: bits 0-2 are the
// allowed RSV bits, bits 3-15 pick the frame size limit (0: the default,
// all ones: no limit, else that many bytes).
func decoderOpts(opts uint16) (maxFrame int64, allowedRsv byte) {
	allowedRsv = byte(opts&7) << 4
	switch sel := int64(opts >> 3); sel {
	case 0:
		maxFrame = 0
	case 1<<13 - 1:
		maxFrame = -1
	default:
		maxFrame = sel
	}
	return maxFrame, allowedRsv
}

type refFrame struct {
	h       frame.Header
	payload []byte // unmasked; for the frame cut by the end of the stream, what there is of it
}

// decoderRef is what decoding a whole stream must give, worked out frame by
// frame with ParseHeader and the decoder's documented checks.
type decoderRef struct {
	frames  []refFrame
	pending *refFrame // a frame whose header is complete and payload is not
	errs    []error   // the error must be one of these (several rules may be broken at once)
	tooBig  bool      // or a frame size error: a *frame.ProtocolError with code 1009
}

func (r *decoderRef) failed() bool { return len(r.errs) > 0 || r.tooBig }

func (r *decoderRef) accepts(err error) bool {
	for _, e := range r.errs {
		if sameError(err, e) {
			return true
		}
	}
	code, ok := closeCode(err)
	return r.tooBig && ok && code == frame.CloseMessageTooBig
}

func referenceDecode(stream []byte, role codec.Role, maxFrame int64, allowedRsv byte) decoderRef {
	var ref decoderRef
	if maxFrame == 0 {
		maxFrame = codec.DefaultMaxFrameSize
	}
	for off := 0; off < len(stream); {
		rest := stream[off:]
		h, n, err := frame.ParseHeader(rest)
		if err != nil {
			ref.errs = []error{err}
			return ref
		}
		if n == 0 {
			return ref
		}
		if role == codec.Server && !h.Masked {
			ref.errs = append(ref.errs, codec.ErrUnmaskedFrame)
		}
		if role == codec.Client && h.Masked {
			ref.errs = append(ref.errs, codec.ErrMaskedFrame)
		}
		if h.Rsv&^allowedRsv != 0 {
			ref.errs = append(ref.errs, codec.ErrReservedBits)
		} else if h.Rsv != 0 && (h.Op == frame.OpContinuation || h.Op.IsControl()) {
			ref.errs = append(ref.errs, codec.ErrRsvOnContinuation)
		}
		ref.tooBig = maxFrame >= 0 && h.Length > maxFrame
		if ref.failed() {
			return ref
		}
		payload := rest[n:]
		complete := int64(len(payload)) >= h.Length
		if complete {
			payload = payload[:h.Length]
		}
		if h.Masked {
			payload = unmask(payload, h.Mask)
		}
		if !complete {
			ref.pending = &refFrame{h, payload}
			return ref
		}
		ref.frames = append(ref.frames, refFrame{h, payload})
		off += n + len(payload)
	}
	return ref
}

type decodedFrame struct {
	h       frame.Header
	payload string
}

type decoderRun struct {
	frames    []decodedFrame
	err       error
	buffered  int
	partialOK bool
	partialH  frame.Header
	partial   string
}

// decode runs a fresh Decoder over pieces, checking each step against ref.
// With room, the bytes of a cut frame go through Decoder.Room, as a
// transport that reads into it does.
func decode(t *testing.T, what string, role codec.Role, maxFrame int64, allowedRsv byte, pieces [][]byte, ref *decoderRef, room bool) decoderRun {
	t.Helper()
	d := &codec.Decoder{Role: role, MaxFrameSize: maxFrame, AllowedRsv: allowedRsv}
	defer d.Release()
	total := 0
	for _, p := range pieces {
		total += len(p)
	}
	bound := int(maxFrame)
	switch {
	case maxFrame == 0:
		bound = codec.DefaultMaxFrameSize
	case maxFrame < 0:
		bound = total
	}
	bound += frame.MaxHeaderSize

	var run decoderRun
	fed := 0
	for _, piece := range pieces {
		in := piece
		fed += len(in)
		// An empty piece is fed too: Next must take it in its stride.
		for first := true; first || len(in) > 0; first = false {
			feed := in
			if r := d.Room(1); room && r != nil && len(in) > 0 {
				feed = r[:copy(r, in)]
			}
			f, n, ok, err := d.Next(feed)
			if n < 0 || n > len(feed) {
				t.Fatalf("%s: Next consumed %d of %d bytes", what, n, len(feed))
			}
			in = in[n:]
			if err != nil {
				if ok {
					t.Fatalf("%s: Next returned a frame and error %v", what, err)
				}
				if !ref.accepts(err) {
					t.Fatalf("%s: error %v after %d frames; want one of %v (frame too big: %v)",
						what, err, len(run.frames), ref.errs, ref.tooBig)
				}
				if len(run.frames) != len(ref.frames) {
					t.Fatalf("%s: error %v after %d frames, want it after %d", what, err, len(run.frames), len(ref.frames))
				}
				_, n2, ok2, err2 := d.Next(in)
				if err2 != err || n2 != 0 || ok2 {
					t.Fatalf("%s: after error %v, Next returned n = %d, ok = %v, error %v", what, err, n2, ok2, err2)
				}
				run.err = err
				return run
			}
			if b := d.Buffered(); b > bound || b > fed {
				t.Fatalf("%s: Buffered() = %d with %d bytes fed, limit %d", what, b, fed, bound)
			}
			if !ok {
				if n != len(feed) {
					t.Fatalf("%s: Next wants more bytes but left %d unconsumed", what, len(feed)-n)
				}
				if h, part, cut := d.Partial(); cut {
					checkPartial(t, what, h, part, len(run.frames), ref)
				}
				continue
			}
			if n == 0 {
				t.Fatalf("%s: Next returned a frame without consuming input", what)
			}
			i := len(run.frames)
			if i >= len(ref.frames) {
				t.Fatalf("%s: frame %d %+v, but the stream holds %d whole frames", what, i, f.Header, len(ref.frames))
			}
			want := ref.frames[i]
			if f.Header != want.h || !bytes.Equal(f.Payload, want.payload) {
				t.Fatalf("%s: frame %d = %+v % x, want %+v % x", what, i, f.Header, f.Payload, want.h, want.payload)
			}
			run.frames = append(run.frames, decodedFrame{f.Header, string(f.Payload)})
		}
	}
	if ref.failed() {
		t.Fatalf("%s: no error after %d frames; want one of %v (frame too big: %v)", what, len(run.frames), ref.errs, ref.tooBig)
	}
	if len(run.frames) != len(ref.frames) {
		t.Fatalf("%s: %d frames, want %d", what, len(run.frames), len(ref.frames))
	}
	run.buffered = d.Buffered()
	h, part, ok := d.Partial()
	run.partialOK, run.partialH, run.partial = ok, h, string(part)
	if ref.pending != nil {
		if !ok || h != ref.pending.h || !bytes.Equal(part, ref.pending.payload) {
			t.Fatalf("%s: at the end Partial() = %+v % x, %v; want %+v % x", what, h, part, ok, ref.pending.h, ref.pending.payload)
		}
	}
	return run
}

func checkPartial(t *testing.T, what string, h frame.Header, part []byte, i int, ref *decoderRef) {
	t.Helper()
	want := ref.pending
	if i < len(ref.frames) {
		want = &ref.frames[i]
	}
	if want == nil {
		t.Fatalf("%s: Partial() shows frame %d %+v, which the stream does not start", what, i, h)
	}
	if h != want.h || int64(len(part)) >= h.Length || !bytes.HasPrefix(want.payload, part) {
		t.Fatalf("%s: Partial() of frame %d = %+v % x; want %+v and a proper prefix of % x",
			what, i, h, part, want.h, want.payload)
	}
}

// FuzzDecoderChunking feeds a stream to codec.Decoder whole, in the pieces
// that cuts describes, and byte by byte, in both roles: every way must give
// the frames (headers and unmasked payloads) that a frame-by-frame reading
// of the stream gives, then the same error or the same unfinished frame.
func FuzzDecoderChunking(f *testing.F) {
	key := &[4]byte{0x37, 0xfa, 0x21, 0x3d}
	long := []byte(strings.Repeat("0123456789", 30))

	var client []byte // what a client sends: masked
	client = appendFrame(client, true, 0, frame.OpText, key, []byte("Hello"))
	client = appendFrame(client, true, 0, frame.OpPing, key, []byte("ping"))
	client = appendFrame(client, false, frame.RSV1, frame.OpBinary, key, long)
	client = appendFrame(client, true, 0, frame.OpContinuation, key, nil)
	client = appendFrame(client, true, 0, frame.OpClose, key, []byte{0x03, 0xE8, 'b', 'y', 'e'})

	var server []byte // what a server sends: unmasked
	server = appendFrame(server, false, 0, frame.OpText, nil, []byte("frag"))
	server = appendFrame(server, true, 0, frame.OpContinuation, nil, []byte("ment"))
	server = appendFrame(server, true, 0, frame.OpPong, nil, nil)
	server = appendFrame(server, true, frame.RSV1|frame.RSV3, frame.OpBinary, nil, long)

	cut := appendFrame(nil, true, 0, frame.OpBinary, key, long)[:150]
	announced := []byte{0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4, 9, 9, 9} // 65536 bytes announced, 3 sent
	bad := append(appendFrame(nil, true, 0, frame.OpText, key, []byte("ok")), 0x83, 0x80, 1, 2, 3, 4)

	for _, s := range []struct {
		stream []byte
		cuts   []byte
		opts   uint16
	}{
		{client, []byte{1, 2, 3, 5, 8, 13, 21, 34}, 0},
		{client, []byte{0, 7, 0, 1, 200}, 1<<3 | 4},
		{client, []byte{6, 6, 6, 6}, 100 << 3},
		{client, []byte{6, 6, 6, 6}, 5 << 3},   // "Hello" is as long as the limit allows
		{client, []byte{6, 6, 6, 6}, 4 << 3},   // "Hello" is a byte too long
		{client, []byte{9, 9, 99}, 300 << 3},   // the 300-byte frame just fits
		{client, []byte{9, 9, 99}, 299<<3 | 4}, // the 300-byte frame is a byte too long
		{server, []byte{1, 1, 1, 1, 1, 1}, 5},
		{server, []byte{16, 255}, 0xFFFF},
		{cut, []byte{3, 3}, 0},
		{announced, []byte{2, 9}, 0xFFF8},
		{announced, []byte{1}, 0},
		{bad, []byte{5, 3}, 0},
		{[]byte{0x88, 0x7E, 0, 126}, []byte{1}, 0},
		{[]byte{0x82, 0xFF, 0x80}, []byte{2}, 0},
	} {
		f.Add(s.stream, s.cuts, s.opts)
	}

	f.Fuzz(func(t *testing.T, stream, cuts []byte, opts uint16) {
		maxFrame, allowedRsv := decoderOpts(opts)
		for _, role := range []codec.Role{codec.Server, codec.Client} {
			ref := referenceDecode(stream, role, maxFrame, allowedRsv)
			run := func(what string, pieces func([]byte) [][]byte, room bool) decoderRun {
				// Payloads are unmasked in place: every run gets its own copy.
				return decode(t, role.String()+" "+what, role, maxFrame, allowedRsv, pieces(bytes.Clone(stream)), &ref, room)
			}
			whole := run("whole", func(b []byte) [][]byte { return [][]byte{b} }, false)
			cut := run("cut", func(b []byte) [][]byte { return split(b, cuts) }, false)
			compareDecoderRuns(t, role.String()+" cut", cut, whole)
			roomed := run("cut, read into Room", func(b []byte) [][]byte { return split(b, cuts) }, true)
			compareDecoderRuns(t, role.String()+" cut, read into Room", roomed, whole)
			if len(stream) <= 1024 {
				one := run("byte by byte", bytewise, false)
				compareDecoderRuns(t, role.String()+" byte by byte", one, whole)
			}
		}
	})
}

func compareDecoderRuns(t *testing.T, what string, got, want decoderRun) {
	t.Helper()
	if len(got.frames) != len(want.frames) {
		t.Fatalf("%s: %d frames, but %d when fed whole", what, len(got.frames), len(want.frames))
	}
	for i := range got.frames {
		if got.frames[i] != want.frames[i] {
			t.Fatalf("%s: frame %d = %+v, but %+v when fed whole", what, i, got.frames[i], want.frames[i])
		}
	}
	checkSameError(t, what, got.err, want.err)
	if got.err != nil {
		return
	}
	if got.buffered != want.buffered {
		t.Fatalf("%s: Buffered() = %d at the end, but %d when fed whole", what, got.buffered, want.buffered)
	}
	if got.partialOK != want.partialOK || got.partialH != want.partialH || got.partial != want.partial {
		t.Fatalf("%s: Partial() = %+v %q %v at the end, but %+v %q %v when fed whole",
			what, got.partialH, got.partial, got.partialOK, want.partialH, want.partial, want.partialOK)
	}
}
