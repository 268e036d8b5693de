package fuzz

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
)

// inflateLimit bounds what FuzzDeflateInflate's server inflates.
const inflateLimit = 64 << 10

// deflatePrimer is the message a server receives first when the client
// takes over its context, so that the fuzzed message may refer to it.
var deflatePrimer = []byte(strings.Repeat(`{"user":"wskit","msg":"hello, wörld","ok":true},`, 20))

// receiverTail is what a permessage-deflate receiver appends to a message
// (RFC 7692 §7.2.2), followed by the empty final block with which our
// receiver ends it.
var receiverTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// stdCompress compresses msgs with compress/flate as a permessage-deflate
// sender: one stream sync-flushed after each message, tails stripped; dict
// is the window it starts from, compressed first and thrown away.
func stdCompress(dict []byte, msgs ...[]byte) [][]byte {
	c := stdCompressors.Get().(*stdCompressor)
	defer stdCompressors.Put(c)
	var buf bytes.Buffer
	c.to = io.Discard
	c.w.Reset(c)
	if len(dict) > 0 {
		c.w.Write(dict)
		c.w.Flush()
	}
	c.to = &buf
	var out [][]byte
	for _, m := range msgs {
		c.w.Write(m)
		c.w.Flush()
		out = append(out, bytes.Clone(buf.Bytes()[:buf.Len()-4]))
		buf.Reset()
	}
	return out
}

// stdCompressor is a compress/flate Writer whose output can be switched.
type stdCompressor struct {
	w  *flate.Writer
	to io.Writer
}

func (c *stdCompressor) Write(p []byte) (int, error) { return c.to.Write(p) }

// stdCompressors saves the fuzz loop from allocating a compressor (about
// 1 MB) per input.
var stdCompressors = sync.Pool{New: func() any {
	c := &stdCompressor{to: io.Discard}
	c.w, _ = flate.NewWriter(c, flate.DefaultCompression)
	return c
}}

// primerPayload is deflatePrimer compressed.
var primerPayload = stdCompress(nil, deflatePrimer)[0]

// stdInflate is the reference: compress/flate reading payload, then
// receiverTail, with the window dict, stopping one byte past limit.
func stdInflate(payload, dict []byte, limit int) ([]byte, error) {
	r := flate.NewReaderDict(io.MultiReader(bytes.NewReader(payload), bytes.NewReader(receiverTail)), dict)
	// Up to one byte past the limit, and an error only if it comes before
	// that byte: a limited inflater never looks further.
	out := make([]byte, limit+1)
	n, err := 0, error(nil)
	for n < len(out) && err == nil {
		var k int
		k, err = r.Read(out[n:])
		n += k
	}
	if n == len(out) || err == io.EOF {
		err = nil
	}
	return out[:n], err
}

// FuzzDeflateInflate gives arbitrary bytes as the payload of a compressed
// message (RSV1) to a server that negotiated permessage-deflate with
// MaxInflatedSize 64 KiB. The server must return the message compress/flate
// inflates from the same bytes when that is within the limit (and, for
// text, UTF-8), and otherwise fail with 1009, 1007 or 1002 and queue that
// close frame. opts: bit 0 sends text, bit 1 has the client take over its
// context (the server has inflated deflatePrimer first), bits 2-7 pick a
// fragment size (0: one frame).
//
// After a message that passes, the server must still inflate one that
// refers to it: its window holds what it inflated.
func FuzzDeflateInflate(f *testing.F) {
	text := []byte(strings.Repeat("The quick brown fox jumps over the lazy dog. ", 40))
	for _, s := range []struct {
		payload []byte
		opts    byte
	}{
		{stdCompress(nil, text)[0], 0},
		{stdCompress(nil, text)[0], 1 | 3<<2},
		{stdCompress(nil, text, text)[1], 2}, // refers to a message the server did not see
		{stdCompress(deflatePrimer, deflatePrimer)[0], 3},
		{stdCompress(deflatePrimer, []byte("hello"))[0], 3 | 1<<2},
		{stdCompress(nil, []byte("\xff\xfe invalid UTF-8"))[0], 1},
		{stdCompress(nil, []byte("euro \xe2\x82"))[0], 1},
		{stdCompress(nil, make([]byte, inflateLimit))[0], 0},
		{stdCompress(nil, make([]byte, inflateLimit+1))[0], 0},
		{stdCompress(nil, make([]byte, 1<<20))[0], 2},
		// Too big, and corrupt only past the limit: 1009.
		{append(stdCompress(nil, make([]byte, inflateLimit+2))[0], 0x07, 0xff), 0},
		{stdCompress(nil, randomBytes(300))[0], 5 << 2},
		{finalBlock(text), 1},
		{append(finalBlock([]byte("done")), "trailing"...), 1},
		{nil, 0},
		{nil, 1},
		{[]byte{0x00}, 0},
		{[]byte{0x03, 0x00}, 0},       // an empty final block
		{[]byte{0x07, 0xff}, 0},       // reserved block type
		{[]byte{0x02, 0x02, 0x00}, 0}, // a distance before the start
		{[]byte{0x02, 0x02, 0x00}, 2}, // the same, with a window
		{[]byte{0x00, 0x05, 0x00, 0x00, 0x00, 'a'}, 0}, // stored length mismatch
		{bytes.Repeat([]byte{0xff}, 40), 0},
		{randomBytes(64), 0},
	} {
		f.Add(s.payload, s.opts)
	}

	f.Fuzz(func(t *testing.T, payload []byte, opts byte) {
		op := frame.OpBinary
		if opts&1 != 0 {
			op = frame.OpText
		}
		takeover := opts&2 != 0
		fragment := int(opts >> 2 * 7)

		offer := "permessage-deflate; client_no_context_takeover"
		if takeover {
			offer = "permessage-deflate"
		}
		offers, err := codec.ParseExtensions(nil, []string{offer})
		if err != nil {
			t.Fatal(err)
		}
		// compress/flate's window is 32 KiB: the server takes any.
		d := &codec.PerMessageDeflate{MaxInflatedSize: inflateLimit, ClientMaxWindowBits: 15}
		accepted, err := codec.AcceptExtensions([]codec.Extension{d}, offers)
		if err != nil {
			t.Fatal(err)
		}
		server := codec.NewProtocol(codec.Config{Role: codec.Server, Extensions: accepted})
		defer server.Release()
		client := codec.Encoder{Role: codec.Client, FragmentSize: fragment}

		var window []byte
		if takeover {
			got, err := receiveMessage(server, client.AppendMessage(nil, frame.OpText, frame.RSV1, primerPayload))
			if err != nil || !bytes.Equal(got, deflatePrimer) {
				t.Fatalf("primer: %q, %v", got, err)
			}
			window = deflatePrimer
		}

		want, werr := stdInflate(payload, window, inflateLimit)
		got, err := receiveMessage(server, client.AppendMessage(nil, op, frame.RSV1, payload))
		var wantCode frame.CloseCode
		switch {
		case werr != nil:
			wantCode = frame.CloseProtocolError
		case len(want) > inflateLimit:
			wantCode = frame.CloseMessageTooBig
		case op == frame.OpText && !utf8.Valid(want):
			wantCode = frame.CloseInvalidPayload
		}
		if wantCode == 0 {
			if err != nil {
				t.Fatalf("compress/flate inflates %d bytes to %d, the server fails: %v", len(payload), len(want), err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("inflated to %d bytes %.40q…, compress/flate to %d %.40q…", len(got), got, len(want), want)
			}
		} else {
			code, ok := closeCode(err)
			if !ok || code != wantCode {
				t.Fatalf("got %d bytes, error %v; want close code %d (compress/flate: %d bytes, %v)", len(got), err, wantCode, len(want), werr)
			}
			replies := readReplies(t, server.AppendReplies(nil))
			if len(replies) != 1 || replies[0].Op != frame.OpClose {
				t.Fatalf("replies %+v, want one close frame", replies)
			}
			if c, _, err := frame.ParseClose(replies[0].Payload); err != nil || c != wantCode {
				t.Fatalf("close frame %v, %v; want %d", c, err, wantCode)
			}
			return
		}

		// A message referring to the window the server now holds.
		if takeover {
			window = append(window, want...)
			window = window[max(0, len(window)-32<<10):]
			tail := window[max(0, len(window)-100):]
			next := stdCompress(window, tail)[0]
			got, err := receiveMessage(server, client.AppendMessage(nil, frame.OpBinary, frame.RSV1, next))
			if err != nil || !bytes.Equal(got, tail) {
				t.Fatalf("the next message, referring to the window: %.40q…, %v; want %.40q…", got, err, tail)
			}
		}
	})
}

// receiveMessage feeds in to p and returns the message it holds (a copy).
func receiveMessage(p *codec.Protocol, in []byte) ([]byte, error) {
	for len(in) > 0 {
		ev, n, ok, err := p.Receive(in)
		if err != nil {
			return nil, err
		}
		in = in[n:]
		if ok {
			if ev.Kind != codec.EventMessage || len(in) != 0 {
				return nil, errUnexpectedEvent
			}
			return bytes.Clone(ev.Payload), nil
		}
	}
	return nil, errUnexpectedEvent
}

var errUnexpectedEvent = errors.New("the input is not one whole message")

// finalBlock compresses msg into one stream ending with a final block.
func finalBlock(msg []byte) []byte {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestSpeed)
	w.Write(msg)
	w.Close()
	return buf.Bytes()
}

func randomBytes(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// FuzzDeflateCompress sends the messages of data, split at '|' and each
// sent twice, from a server with the zero value of PerMessageDeflate (which
// takes over its context) to a client that asked for server_max_window_bits
// of 8 + opts%8 (15: not asked). Every message sent compressed must inflate
// with compress/flate to itself, given only the window the client keeps (the
// last 2^bits bytes of the messages sent compressed), and the client
// Protocol must receive every message as it was sent.
func FuzzDeflateCompress(f *testing.F) {
	json := []byte(strings.Repeat(`{"id":17,"user":"ana","text":"hi, wörld","ok":true}|`, 30))
	for _, s := range []struct {
		data []byte
		opts byte
	}{
		{json, 7},
		{json, 0},
		{json, 5},
		{[]byte("a|a|aaaa|aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), 7},
		{bytes.Repeat([]byte("abcdefgh"), 8<<10), 7},
		{append(randomBytes(5000), randomBytes(5000)...), 7},
		{append(randomBytes(300), randomBytes(300)...), 1},
		{bytes.Repeat([]byte{0}, 70<<10), 3},
		{nil, 7},
	} {
		f.Add(s.data, s.opts)
	}
	f.Fuzz(func(t *testing.T, data []byte, opts byte) {
		bits := 8 + int(opts%8)
		client := &codec.PerMessageDeflate{}
		if bits < 15 {
			client.ServerMaxWindowBits = bits
		}
		offered, err := codec.OfferExtensions([]codec.Extension{client})
		if err != nil {
			t.Fatal(err)
		}
		sn, err := codec.AcceptExtensions([]codec.Extension{&codec.PerMessageDeflate{}}, offered)
		if err != nil || len(sn) != 1 {
			t.Fatal("the server declined permessage-deflate")
		}
		cn, err := codec.ConfirmExtensions([]codec.Extension{client}, []codec.ExtensionOffer{sn[0].Response})
		if err != nil {
			t.Fatal(err)
		}
		server := codec.NewProtocol(codec.Config{Role: codec.Server, Extensions: sn})
		defer server.Release()
		receiver := codec.NewProtocol(codec.Config{Role: codec.Client, Extensions: cn, MaxMessageSize: -1})
		defer receiver.Release()
		var window []byte
		for _, m := range bytes.Split(data, []byte("|")) {
			for range 2 {
				wire, err := server.AppendMessage(nil, frame.OpBinary, 0, m)
				if err != nil {
					t.Fatal(err)
				}
				h, n, err := frame.ParseHeader(wire)
				if err != nil || n+int(h.Length) != len(wire) || !h.Fin {
					t.Fatalf("not one frame: %+v, %v", h, err)
				}
				if h.Rsv == frame.RSV1 {
					payload := wire[n:]
					if len(payload) >= len(m) {
						t.Fatalf("%d bytes sent compressed as %d", len(m), len(payload))
					}
					want, err := stdInflate(payload, window, len(m))
					if err != nil || !bytes.Equal(want, m) {
						t.Fatalf("compress/flate inflates %d bytes to %d (%v), not the message of %d", len(payload), len(want), err, len(m))
					}
					window = append(window, m...)
					window = window[max(0, len(window)-1<<bits):]
				} else if h.Rsv != 0 || !bytes.Equal(wire[n:], m) {
					t.Fatalf("RSV %#x, %d bytes for a message of %d", h.Rsv, h.Length, len(m))
				}
				got, err := receiveMessage(receiver, wire)
				if err != nil || !bytes.Equal(got, m) {
					t.Fatalf("the client received %d bytes, %v; want %d", len(got), err, len(m))
				}
			}
		}
	})
}
