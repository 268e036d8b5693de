package codec

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/race"
)

func sampleStream() ([]byte, []decoded) {
	var stream []byte
	var want []decoded
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, 125, 126, 127, 1000, 65535, 65536, 100_000} {
		p := make([]byte, size)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		f := clientFrame(frame.OpBinary, true, p)
		h, _, _ := frame.ParseHeader(f)
		stream = append(stream, f...)
		want = append(want, decoded{h, string(p)})
		ping := clientFrame(frame.OpPing, true, []byte("ping"))
		h, _, _ = frame.ParseHeader(ping)
		stream = append(stream, ping...)
		want = append(want, decoded{h, "ping"})
	}
	return stream, want
}

func TestDecoderSameFramesWhateverTheCuts(t *testing.T) {
	stream, want := sampleStream()
	for _, sizes := range [][]int{{0}, {1}, {2}, {3, 7}, {13}, {14, 1}, {4096}, {65537, 5}} {
		got, err := decodeAll(t, &Decoder{}, stream, sizes...)
		if err != nil {
			t.Fatalf("cuts %v: %v", sizes, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("cuts %v: frames differ from the expected ones", sizes)
		}
	}
}

func TestDecoderWholeFramePointsIntoInput(t *testing.T) {
	in := clientFrame(frame.OpText, true, []byte("hello"))
	var d Decoder
	f, n, ok, err := d.Next(in)
	if err != nil || !ok || n != len(in) {
		t.Fatalf("Next = %v, %d, %v", err, n, ok)
	}
	if string(f.Payload) != "hello" {
		t.Fatalf("payload %q", f.Payload)
	}
	if &f.Payload[0] != &in[len(in)-5] {
		t.Fatal("payload was copied instead of unmasked in place")
	}
	if d.Buffered() != 0 {
		t.Fatalf("decoder holds %d bytes after a whole frame", d.Buffered())
	}
}

func TestDecoderErrors(t *testing.T) {
	unmasked := (&Encoder{Role: Server}).AppendFrame(nil, frame.Header{Fin: true, Op: frame.OpText}, []byte("x"))
	rsv1 := clientFrame(frame.OpText, true, []byte("x"))
	rsv1[0] |= frame.RSV1
	tests := []struct {
		name string
		d    Decoder
		in   []byte
		want error
		code frame.CloseCode
	}{
		{"unmasked to server", Decoder{Role: Server}, unmasked, ErrUnmaskedFrame, 1002},
		{"masked to client", Decoder{Role: Client}, clientFrame(frame.OpText, true, nil), ErrMaskedFrame, 1002},
		{"RSV1 not negotiated", Decoder{}, rsv1, ErrReservedBits, 1002},
		{"RSV2 with RSV1 allowed", Decoder{AllowedRsv: frame.RSV1}, func() []byte {
			b := clientFrame(frame.OpText, true, nil)
			b[0] |= frame.RSV2
			return b
		}(), ErrReservedBits, 1002},
		{"reserved opcode", Decoder{}, []byte{0x83}, frame.ErrReservedOpcode, 1002},
		{"reserved control opcode", Decoder{}, []byte{0x8B, 0x80}, frame.ErrReservedOpcode, 1002},
		{"fragmented ping", Decoder{}, []byte{0x09}, frame.ErrFragmentedControl, 1002},
		{"long ping", Decoder{}, []byte{0x89, 0xFE}, frame.ErrControlTooLong, 1002},
		{"length top bit", Decoder{}, []byte{0x82, 0xFF, 0x80}, frame.ErrLengthOverflow, 1002},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeAll(t, &tt.d, tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			wantCode(t, err, tt.code)
			// The stream is broken for good: the same error comes back.
			if _, _, _, again := tt.d.Next([]byte{0x81}); again != err {
				t.Fatalf("after the error Next returned %v", again)
			}
		})
	}
}

func TestDecoderRSVAllowedWhenNegotiated(t *testing.T) {
	in := clientFrame(frame.OpText, true, []byte("x"))
	in[0] |= frame.RSV1
	got, err := decodeAll(t, &Decoder{AllowedRsv: frame.RSV1}, in)
	if err != nil || len(got) != 1 || got[0].h.Rsv != frame.RSV1 {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestDecoderFrameTooBigFailsOnTheHeader(t *testing.T) {
	d := Decoder{MaxFrameSize: 1000}
	in := clientFrame(frame.OpBinary, true, make([]byte, 1001))
	// Only the header: the limit must be enforced before any payload arrives.
	_, _, _, err := d.Next(in[:8])
	wantCode(t, err, frame.CloseMessageTooBig)
	if d.Buffered() != 0 {
		t.Fatalf("decoder buffered %d bytes of a frame it rejected", d.Buffered())
	}
	if got, err := decodeAll(t, &Decoder{MaxFrameSize: 1001}, in); err != nil || len(got) != 1 {
		t.Fatalf("frame at the limit: %v, %v", got, err)
	}
}

func TestDecoderDefaultFrameLimit(t *testing.T) {
	var d Decoder
	h := frame.AppendHeader(nil, frame.Header{Fin: true, Op: frame.OpBinary, Masked: true, Length: DefaultMaxFrameSize + 1})
	_, _, _, err := d.Next(h)
	wantCode(t, err, frame.CloseMessageTooBig)
	d = Decoder{MaxFrameSize: -1}
	if _, _, _, err := d.Next(h); err != nil {
		t.Fatalf("no limit: %v", err)
	}
}

func TestDecoderBufferGrowsWithTheData(t *testing.T) {
	d := Decoder{MaxFrameSize: -1}
	h := frame.AppendHeader(nil, frame.Header{Fin: true, Op: frame.OpBinary, Masked: true, Length: 1 << 30})
	if _, _, ok, err := d.Next(append(h, make([]byte, 100)...)); ok || err != nil {
		t.Fatalf("Next = %v, %v", ok, err)
	}
	if d.Buffered() != 100 || cap(*d.buf) > 4096 {
		t.Fatalf("announcing 1 GiB and sending 100 bytes made the decoder hold %d bytes in %d", d.Buffered(), cap(*d.buf))
	}
	d.Release()
	if _, _, _, err := d.Next([]byte{0}); err != ErrReleased {
		t.Fatalf("after Release: %v", err)
	}
}

func TestDecoderPartialShowsUnmaskedBytes(t *testing.T) {
	in := clientFrame(frame.OpText, true, []byte("hello, world"))
	var d Decoder
	for i := range len(in) - 1 {
		if _, _, ok, err := d.Next(in[i : i+1]); ok || err != nil {
			t.Fatalf("byte %d: ok %v err %v", i, ok, err)
		}
		h, part, ok := d.Partial()
		if i < 5 { // header: 2 bytes + 4 bytes of mask
			if ok && len(part) > 0 {
				t.Fatalf("byte %d: payload before the header ended", i)
			}
			continue
		}
		if !ok || h.Op != frame.OpText || string(part) != "hello, world"[:i-5] {
			t.Fatalf("byte %d: Partial = %v %q %v", i, h, part, ok)
		}
	}
}

func TestDecoderDoesNotAllocateOnWholeFrames(t *testing.T) {
	in := clientFrame(frame.OpBinary, true, make([]byte, 1024))
	var d Decoder
	allocs := testing.AllocsPerRun(1000, func() {
		if _, _, ok, err := d.Next(in); !ok || err != nil {
			t.Fatal(ok, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per frame", allocs)
	}
}

func TestDecoderCutFramesReuseBuffers(t *testing.T) {
	if race.Enabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	in := clientFrame(frame.OpBinary, true, make([]byte, 3000))
	var d Decoder
	run := func() {
		for i := 0; i < len(in); i += 1000 {
			d.Next(in[i:min(i+1000, len(in))])
		}
	}
	run()
	if allocs := testing.AllocsPerRun(100, run); allocs != 0 {
		t.Fatalf("%.1f allocations per cut frame", allocs)
	}
	if d.Buffered() != 0 {
		t.Fatal("decoder holds bytes between frames")
	}
}

// TestDecoderRoom reads the payload of large frames into Room, as a
// transport does, in reads of varying size, mixed with frames passed the
// usual way: every frame comes out as sent, and the room never exceeds what
// the frame still needs nor, beyond four times the least asked, runs ahead
// of the data received.
func TestDecoderRoom(t *testing.T) {
	big := make([]byte, 300<<10)
	for i := range big {
		big[i] = byte(i * 7)
	}
	stream := concat(clientFrame(frame.OpBinary, true, big), clientFrame(frame.OpText, true, []byte("small")),
		clientFrame(frame.OpBinary, true, big[:70000]))
	want := [][]byte{big, []byte("small"), big[:70000]}
	d := Decoder{Role: Server}
	var got [][]byte
	reads := []int{1, 4096, 100, 65536, 7, 20000}
	for i := 0; len(stream) > 0; i++ {
		var f frame.Frame
		var ok bool
		var err error
		if room := d.Room(1024); room != nil {
			if _, part, _ := d.Partial(); len(room) > max(4*1024, 2*len(part)) {
				t.Fatalf("room of %d bytes after %d received", len(room), len(part))
			}
			k := copy(room[:min(len(room), reads[i%len(reads)])], stream)
			stream = stream[k:]
			f, _, ok, err = d.Next(room[:k])
		} else {
			k := min(len(stream), reads[i%len(reads)])
			var n int
			f, n, ok, err = d.Next(stream[:k])
			stream = stream[n:]
		}
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			got = append(got, bytes.Clone(f.Payload))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("got %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("frame %d: %d bytes differ from the %d sent", i, len(got[i]), len(want[i]))
		}
	}
}
