package codec

import (
	"bytes"
	"io"
	"strconv"
	"testing"

	"github.com/gobwas/ws"

	"github.com/wskit/wskit/frame"
)

var benchSizes = []int{64, 1024, 16384}

// BenchmarkDecode parses whole masked frames in place. Unmasking toggles
// the input between masked and clear on each run, which costs the same.
// Beside it, gobwas/ws doing the same work its way: read the header from
// an io.Reader, read the payload into a buffer, unmask it.
func BenchmarkDecode(b *testing.B) {
	for _, size := range benchSizes {
		in := clientFrame(frame.OpBinary, true, make([]byte, size))
		b.Run(strconv.Itoa(size)+"/wskit", func(b *testing.B) {
			var d Decoder
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, ok, err := d.Next(in); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
		b.Run(strconv.Itoa(size)+"/gobwas", func(b *testing.B) {
			r := bytes.NewReader(in)
			payload := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(in)
				h, err := ws.ReadHeader(r)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(r, payload[:h.Length]); err != nil {
					b.Fatal(err)
				}
				ws.Cipher(payload, h.Mask, 0)
			}
		})
	}
}

// BenchmarkDecodeCut feeds each frame in two reads, so the payload is
// copied into a pooled buffer: the cost of frames larger than a read.
func BenchmarkDecodeCut(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			in := clientFrame(frame.OpBinary, true, make([]byte, size))
			half := len(in) / 2
			var d Decoder
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				d.Next(in[:half])
				if _, _, ok, err := d.Next(in[half:]); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}

// BenchmarkEncode frames a message into a reused buffer; beside it,
// gobwas/ws writing the header and payload to a reused bytes.Buffer and, as
// a client, masking the copy with a key from its own generator.
func BenchmarkEncode(b *testing.B) {
	for _, role := range []Role{Server, Client} {
		for _, size := range benchSizes {
			name := role.String() + "/" + strconv.Itoa(size)
			p := make([]byte, size)
			b.Run(name+"/wskit", func(b *testing.B) {
				e := Encoder{Role: role}
				dst := make([]byte, 0, size+frame.MaxHeaderSize)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					dst = e.AppendMessage(dst[:0], frame.OpBinary, 0, p)
				}
			})
			b.Run(name+"/gobwas", func(b *testing.B) {
				var buf bytes.Buffer
				buf.Grow(size + frame.MaxHeaderSize)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					buf.Reset()
					h := ws.Header{Fin: true, OpCode: ws.OpBinary, Length: int64(size)}
					if role == Client {
						h.Masked, h.Mask = true, ws.NewMask()
					}
					if err := ws.WriteHeader(&buf, h); err != nil {
						b.Fatal(err)
					}
					n := buf.Len()
					buf.Write(p)
					if h.Masked {
						ws.Cipher(buf.Bytes()[n:], h.Mask, 0)
					}
				}
			})
		}
	}
}

// BenchmarkProtocolEcho receives a masked text message (UTF-8 checked) and
// encodes the reply, as a server echo does. The copy that restores the
// masked input each run is included.
func BenchmarkProtocolEcho(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			msg := clientFrame(frame.OpText, true, bytes.Repeat([]byte("wskit, ソケット! "), size/20+1)[:size])
			in := make([]byte, len(msg))
			out := make([]byte, 0, size+frame.MaxHeaderSize)
			p := NewProtocol(Config{})
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				copy(in, msg)
				ev, _, ok, err := p.Receive(in)
				if !ok || err != nil {
					b.Fatal(ok, err)
				}
				out, _ = p.AppendMessage(out[:0], ev.Op, 0, ev.Payload)
			}
		})
	}
}
