package codec

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/flate"

	"github.com/wskit/wskit/frame"
)

// windowInflaters are the references the windowed compressor's output is
// checked against: each inflates one message given the window before it.
var windowInflaters = []struct {
	name    string
	inflate func(payload, dict []byte) ([]byte, error)
}{
	{"compress/flate", func(payload, dict []byte) ([]byte, error) {
		return io.ReadAll(stdflate.NewReaderDict(io.MultiReader(bytes.NewReader(payload), bytes.NewReader(deflateTail)), dict))
	}},
	{"klauspost", func(payload, dict []byte) ([]byte, error) {
		return io.ReadAll(flate.NewReaderDict(io.MultiReader(bytes.NewReader(payload), bytes.NewReader(deflateTail)), dict))
	}},
}

// windowStream compresses msgs one after the other with one windowState, as
// a connection sends them, and checks each against both inflaters given the
// window the peer keeps (the last 2^bits bytes of the messages sent
// compressed). It returns the compressed sizes, -1 for a message sent as it
// is.
func windowStream(t testing.TB, bits int, msgs ...[]byte) []int {
	t.Helper()
	st := new(windowState)
	var window []byte
	var sizes []int
	for i, m := range msgs {
		buf := make([]byte, 3, 3+windowRoom(len(m)))
		out, ok := st.compress(buf, m, bits)
		if cap(out) != cap(buf) {
			t.Fatalf("message %d (%d bytes): the output outgrew windowRoom", i, len(m))
		}
		if !bytes.Equal(out[:3], []byte{0, 0, 0}) {
			t.Fatalf("message %d: the output overwrote what was in the buffer", i)
		}
		if !ok {
			sizes = append(sizes, -1)
			continue
		}
		payload := out[3:]
		for _, inf := range windowInflaters {
			got, err := inf.inflate(payload, window)
			if err != nil || !bytes.Equal(got, m) {
				t.Fatalf("message %d (%d bytes, %d-bit window): %s inflates %d bytes to %d, %v", i, len(m), bits, inf.name, len(payload), len(got), err)
			}
		}
		st.commit(m)
		window = append(window, m...)
		window = window[max(0, len(window)-1<<bits):]
		sizes = append(sizes, len(payload))
	}
	return sizes
}

func TestWindowDeflateRoundTrips(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var msgs [][]byte
	for _, size := range []int{1, 2, 3, 4, 5, 8, 13, 64, 100, 1000, 4000, 9000, 20 << 10, 33 << 10, 70 << 10, 200 << 10} {
		msgs = append(msgs, jsonText(size, size))
		msgs = append(msgs, randomBytes(uint64(size), size))
		msgs = append(msgs, jsonText(size, size)) // a repeat
		run := bytes.Repeat([]byte{byte(size)}, size)
		msgs = append(msgs, run)
		// Text with runs of a few repeated bytes here and there.
		mixed := jsonText(size+1, size)
		for i := 0; i+20 < len(mixed); i += 1 + r.IntN(200) {
			copy(mixed[i:], bytes.Repeat([]byte{'x'}, r.IntN(20)))
		}
		msgs = append(msgs, mixed)
	}
	for _, bits := range []int{8, 9, 10, 12, 13, 15} {
		t.Run(fmt.Sprintf("bits=%d", bits), func(t *testing.T) {
			windowStream(t, bits, msgs...)
		})
	}
}

// Skewed frequencies make deep Huffman trees, which must be cut to 15 bits
// (and code-length codes to 7).
func TestWindowDeflateLongCodes(t *testing.T) {
	var msg []byte
	a, b := 1, 1
	for sym := 0; sym < 40; sym++ {
		for range min(a, 1<<16) {
			msg = append(msg, byte(sym*5))
		}
		a, b = b, a+b
	}
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(msg), func(i, j int) { msg[i], msg[j] = msg[j], msg[i] })
	windowStream(t, 15, msg, msg[:40000], msg[1000:])
}

func TestHuffmanLengthsAreLimited(t *testing.T) {
	var hb huffBuilder
	r := rand.New(rand.NewPCG(5, 6))
	for round := range 2000 {
		n := 2 + r.IntN(numLitLen-1)
		limit := maxLitBits
		if round%2 == 0 {
			n = min(n, numCodeLen)
			limit = maxCodeBits
		}
		freq := make([]uint32, n)
		for i := range freq {
			switch round % 3 {
			case 0: // Fibonacci-like: the deepest trees
				freq[i] = uint32(min(1<<16-1, 1<<min(i, 20)))
			case 1:
				freq[i] = uint32(r.IntN(3))
			default:
				freq[i] = uint32(r.ExpFloat64() * 1000)
			}
		}
		lens := make([]uint8, n)
		hb.buildLengths(freq, lens, limit)
		kraft, used := 0, 0
		for i, l := range lens {
			if int(l) > limit || (freq[i] > 0 && l == 0) {
				t.Fatalf("round %d: symbol %d of frequency %d has length %d (limit %d)", round, i, freq[i], l, limit)
			}
			if l > 0 {
				kraft += 1 << (limit - int(l))
				used++
			}
		}
		if kraft != 1<<limit || used < 2 {
			t.Fatalf("round %d: the code is not complete (Kraft sum %d/%d, %d symbols)", round, kraft, 1<<limit, used)
		}
	}
}

// A message compressed for many connections (a hub's) enters the peer's
// window without entering our history: the next message of our own must
// not refer to what came before it. Our client and both reference
// inflaters, reading the stream as a peer keeping its window does, must get
// every message back, for each way of compressing our own.
func TestDeflateSharedBetweenOwnMessages(t *testing.T) {
	for _, d := range []PerMessageDeflate{{}, {KeepCompressor: true}, {Level: 6}} {
		t.Run(fmt.Sprintf("keep=%v,level=%d", d.KeepCompressor, d.Level), func(t *testing.T) {
			sp, cp, _ := newPair(t, []Extension{&d}, []Extension{&PerMessageDeflate{}}, Config{})
			sh, ok := sp.Sharing()
			if !ok {
				t.Fatal("the server's messages cannot be shared")
			}
			var window []byte
			for i := range 40 {
				msg := jsonText(i%4, 200+i*37)
				var wire []byte
				if i%3 == 1 {
					var scratch [2]*[]byte
					var rsv byte
					var err error
					wire, rsv, err = sh.AppendMessage(nil, frame.OpText, msg, &scratch)
					for _, b := range scratch {
						ReturnBuffer(b)
					}
					if err != nil || rsv != frame.RSV1 {
						t.Fatalf("shared message %d: RSV %#x, %v", i, rsv, err)
					}
					if err := sp.SentShared(rsv); err != nil {
						t.Fatal(err)
					}
					if got := receiveOne(t, cp, wire, 0); got != string(msg) {
						t.Fatalf("shared message %d inflated to %d bytes, want %d", i, len(got), len(msg))
					}
				} else {
					wire, _ = transfer(t, sp, cp, frame.OpText, msg)
				}
				f := wireFrames(t, sp, wire)
				if f[0].h.Rsv != frame.RSV1 {
					t.Fatalf("message %d went uncompressed", i)
				}
				for _, inf := range windowInflaters {
					got, err := inf.inflate(messagePayload(f), window)
					if err != nil || !bytes.Equal(got, msg) {
						t.Fatalf("message %d: %s inflates it to %d bytes, %v", i, inf.name, len(got), err)
					}
				}
				window = append(window, msg...)
				window = window[max(0, len(window)-32<<10):]
			}
		})
	}
}
