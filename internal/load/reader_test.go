package load

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/wskit/wskit/frame"
)

// serverFrame returns an unmasked frame as a server sends it.
func serverFrame(fin bool, op frame.Opcode, p []byte) []byte {
	b := frame.AppendHeader(nil, frame.Header{Fin: fin, Op: op, Length: int64(len(p))})
	return append(b, p...)
}

// got is one event as the tests compare it.
type got struct {
	ev     event
	op     frame.Opcode
	length int64
	data   string // the message's head or the control frame's payload
}

// readAll feeds chunks to a fresh reader in order and returns its events.
func readAll(limit int64, chunks ...[]byte) ([]got, error) {
	var r frameReader
	r.reset(limit, nil)
	var out []got
	for _, p := range chunks {
		for len(p) > 0 {
			n, ev, err := r.next(p)
			if n == 0 && ev == evMore && err == nil {
				return out, fmt.Errorf("no progress on %d bytes", len(p))
			}
			p = p[n:]
			if err != nil {
				return out, err
			}
			switch ev {
			case evMessage:
				out = append(out, got{ev, r.msgOp, r.msgLen, string(r.head())})
			case evPing, evPong, evClose:
				out = append(out, got{ev, r.op, 0, string(r.control())})
			}
		}
	}
	return out, nil
}

func TestFrameReaderSplitAtEveryByte(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 7000) // a 64-bit length
	mid := bytes.Repeat([]byte("m"), 300)           // a 16-bit length
	stamp := stampPayload(40)
	stream := slices.Concat(
		serverFrame(true, frame.OpBinary, []byte("hello")),
		serverFrame(true, frame.OpBinary, nil),
		serverFrame(true, frame.OpText, mid),
		serverFrame(false, frame.OpText, []byte("@0000")),
		serverFrame(true, frame.OpPing, []byte("are you there")),
		serverFrame(false, frame.OpContinuation, nil),
		serverFrame(false, frame.OpContinuation, []byte("0000000000")),
		serverFrame(true, frame.OpPong, nil),
		serverFrame(true, frame.OpContinuation, []byte("2a-and-the-rest")),
		serverFrame(true, frame.OpBinary, big),
		serverFrame(true, frame.OpText, stamp),
		serverFrame(true, frame.OpClose, []byte{0x03, 0xe8, 'b', 'y', 'e'}),
	)
	want := []got{
		{evMessage, frame.OpBinary, 5, "hello"},
		{evMessage, frame.OpBinary, 0, ""},
		{evMessage, frame.OpText, 300, strings.Repeat("m", prefixLen)},
		{evPing, frame.OpPing, 0, "are you there"},
		{evPong, frame.OpPong, 0, ""},
		{evMessage, frame.OpText, 30, "@000000000000002a-and-the-rest"},
		{evMessage, frame.OpBinary, int64(len(big)), string(big[:prefixLen])},
		{evMessage, frame.OpText, 40, string(stamp[:prefixLen])},
		{evClose, frame.OpClose, 0, "\x03\xe8bye"},
	}
	check := func(name string, chunks ...[]byte) {
		t.Helper()
		evs, err := readAll(1<<20, chunks...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(evs, want) {
			t.Fatalf("%s:\ngot  %v\nwant %v", name, evs, want)
		}
	}
	check("whole", stream)
	for i := 1; i < len(stream); i++ {
		check(fmt.Sprintf("split at %d", i), stream[:i], stream[i:])
	}
	var bytewise [][]byte
	for i := range stream {
		bytewise = append(bytewise, stream[i:i+1])
	}
	check("byte by byte", bytewise...)
}

func TestFrameReaderRejects(t *testing.T) {
	masked := appendMasked(nil, frame.OpBinary, []byte("x"), [4]byte{1, 2, 3, 4})
	rsv := serverFrame(true, frame.OpBinary, []byte("x"))
	rsv[0] |= frame.RSV1
	tests := []struct {
		name   string
		limit  int64
		stream []byte
		want   string
	}{
		{"masked", 100, masked, "masked"},
		{"rsv", 100, rsv, "RSV"},
		{"lone continuation", 100, serverFrame(true, frame.OpContinuation, []byte("x")), "no message begun"},
		{"new message inside another", 100, slices.Concat(
			serverFrame(false, frame.OpText, []byte("a")), serverFrame(true, frame.OpBinary, []byte("b"))), "inside a fragmented"},
		{"too long", 4, serverFrame(true, frame.OpBinary, []byte("hello")), "longer than the 4"},
		{"too long in fragments", 4, slices.Concat(
			serverFrame(false, frame.OpBinary, []byte("hel")), serverFrame(true, frame.OpContinuation, []byte("lo"))), "longer than the 4"},
		{"reserved opcode", 100, []byte{0x83, 0x00}, ""},
	}
	for _, tt := range tests {
		_, err := readAll(tt.limit, tt.stream)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}

func TestPreparedFrames(t *testing.T) {
	key := [4]byte{0x11, 0x22, 0x33, 0x44}
	for _, size := range []int{0, 1, 125, 126, 65535, 65536, 300_000} {
		payload := echoPayload(size)
		out, frameLen := prepareFrames(payload, key, 8)
		if len(out)%frameLen != 0 || len(out) < frameLen || (len(out) > maxPrepared && len(out) != frameLen) {
			t.Fatalf("size %d: %d bytes of frames %d long", size, len(out), frameLen)
		}
		for p := out; len(p) > 0; p = p[frameLen:] {
			h, n, err := frame.ParseHeader(p)
			if err != nil || n == 0 {
				t.Fatalf("size %d: header: %v", size, err)
			}
			if !h.Fin || h.Op != frame.OpBinary || !h.Masked || h.Mask != key || h.Length != int64(size) || n+size != frameLen {
				t.Fatalf("size %d: header %+v of %d bytes", size, h, n)
			}
			got := bytes.Clone(p[n:frameLen])
			frame.Mask(got, key, 0)
			if !bytes.Equal(got, payload) {
				t.Fatalf("size %d: payload differs after unmasking", size)
			}
		}
	}
}

func TestStamps(t *testing.T) {
	key := [4]byte{0xde, 0xad, 0xbe, 0xef}
	f := appendMasked(nil, frame.OpText, stampPayload(64), key)
	hl := len(f) - 64
	for _, ts := range []int64{0, 1, 0x1234_5678_9abc, 1<<63 - 1} {
		putStamp(f[hl:], ts, key)
		p := bytes.Clone(f[hl:])
		frame.Mask(p, key, 0)
		if !frame.ValidUTF8(p) {
			t.Fatalf("stamped payload is not UTF-8: %q", p)
		}
		if got, skip, ok := parseStamp(p); !ok || got != ts || skip != 0 {
			t.Fatalf("stamp %d read back as %d, %d, %v from %q", ts, got, skip, ok, p[:stampLen])
		}
		// After a sequence, as wskit-nats serve's chat sends it.
		seq := append([]byte("18446744073709551615 "), p...)
		if got, skip, ok := parseStamp(seq[:prefixLen]); !ok || got != ts || skip != 21 {
			t.Fatalf("stamp %d after a sequence read back as %d, %d, %v", ts, got, skip, ok)
		}
	}
	for _, p := range []string{"", "@123", "You are connected to WebSocket!", "@000000000000000g",
		"12@0000000000000000", " @0000000000000000", "1 x@0000000000000000"} {
		if _, _, ok := parseStamp([]byte(p)); ok {
			t.Errorf("parseStamp(%q) found a stamp", p)
		}
	}
}

// TestFrameReaderVerify feeds messages that must equal want, whole or in
// fragments with a control frame between them, split at every byte, and
// checks that a byte changed anywhere is found at its offset, and that an
// intact message after a bad one is not blamed for it.
func TestFrameReaderVerify(t *testing.T) {
	want := echoPayload(1000)
	bad := bytes.Clone(want)
	bad[700] ^= 0x40
	short := bytes.Clone(want[:300]) // right bytes, too few: the length check's business
	stream := slices.Concat(
		serverFrame(true, frame.OpBinary, want),
		serverFrame(false, frame.OpBinary, bad[:600]),
		serverFrame(true, frame.OpPing, []byte("x")),
		serverFrame(true, frame.OpContinuation, bad[600:]),
		serverFrame(true, frame.OpBinary, short),
		serverFrame(false, frame.OpBinary, want[:1]),
		serverFrame(true, frame.OpContinuation, want[1:]),
		serverFrame(true, frame.OpBinary, append([]byte{want[0] + 1}, want[1:]...)),
	)
	wantDiffs := []int64{-1, 700, -1, -1, 0}
	run := func(name string, chunks ...[]byte) {
		t.Helper()
		var r frameReader
		r.reset(int64(len(want)), want)
		var diffs []int64
		for _, p := range chunks {
			for len(p) > 0 {
				n, ev, err := r.next(p)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				p = p[n:]
				if ev == evMessage {
					diffs = append(diffs, r.differs())
				}
			}
		}
		if !slices.Equal(diffs, wantDiffs) {
			t.Fatalf("%s: first differing bytes %v, want %v", name, diffs, wantDiffs)
		}
	}
	run("whole", stream)
	for i := 1; i < len(stream); i++ {
		run(fmt.Sprintf("split at %d", i), stream[:i], stream[i:])
	}
}

func TestRawMismatch(t *testing.T) {
	want := echoPayload(10)
	stream := slices.Concat(want, want, want)
	for got := 0; got < len(want); got++ {
		for end := got; end <= len(stream)-len(want)+got; end++ {
			if i := rawMismatch(want, got, stream[got:end]); i != -1 {
				t.Fatalf("intact bytes %d to %d: mismatch at %d", got, end, i)
			}
		}
	}
	bad := bytes.Clone(stream)
	bad[17] ^= 1
	for got := range 10 {
		if i := rawMismatch(want, got, bad[got:]); i != 17-got {
			t.Errorf("from byte %d: mismatch at %d, want %d", got, i, 17-got)
		}
	}
}
