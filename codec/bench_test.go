package codec

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/wskit/wskit/frame"
)

var benchSizes = []int{64, 1024, 16384}

// BenchmarkDecode parses whole masked frames in place. Unmasking toggles
// the input between masked and clear on each run, which costs the same.
func BenchmarkDecode(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			in := clientFrame(frame.OpBinary, true, make([]byte, size))
			var d Decoder
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, ok, err := d.Next(in); !ok || err != nil {
					b.Fatal(ok, err)
				}
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

func BenchmarkEncode(b *testing.B) {
	for _, role := range []Role{Server, Client} {
		for _, size := range benchSizes {
			b.Run(role.String()+"/"+strconv.Itoa(size), func(b *testing.B) {
				e := Encoder{Role: role}
				p := make([]byte, size)
				dst := make([]byte, 0, size+frame.MaxHeaderSize)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					dst = e.AppendMessage(dst[:0], frame.OpBinary, 0, p)
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
