package codec

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/wskit/wskit/frame"
)

// count is a Direction's counters read at once.
type count struct {
	frames, text, textBytes, binary, binaryBytes, pings, pongs uint64
	close                                                      map[int]uint64
}

func read(d *Direction) count {
	c := count{
		frames: d.Frames.Load(), text: d.Messages[0].Load(), textBytes: d.Bytes[0].Load(),
		binary: d.Messages[1].Load(), binaryBytes: d.Bytes[1].Load(),
		pings: d.Pings.Load(), pongs: d.Pongs.Load(), close: map[int]uint64{},
	}
	for i := range d.Close {
		if n := d.Close[i].Load(); n > 0 {
			c.close[i] = n
		}
	}
	return c
}

func (c count) String() string {
	var b strings.Builder
	b.WriteString("frames ")
	b.WriteString(itoa(c.frames))
	for _, kv := range []struct {
		k string
		v uint64
	}{{"text", c.text}, {"textBytes", c.textBytes}, {"binary", c.binary}, {"binaryBytes", c.binaryBytes}, {"pings", c.pings}, {"pongs", c.pongs}} {
		b.WriteString(" " + kv.k + " " + itoa(kv.v))
	}
	for i, n := range c.close {
		b.WriteString(" close[" + itoa(uint64(i)) + "] " + itoa(n))
	}
	return b.String()
}

func itoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for ; v > 0; v /= 10 {
		b = append([]byte{byte('0' + v%10)}, b...)
	}
	return string(b)
}

func equalCount(a, b count) bool {
	if len(a.close) != len(b.close) {
		return false
	}
	for k, v := range a.close {
		if b.close[k] != v {
			return false
		}
	}
	a.close, b.close = nil, nil
	return a.String() == b.String()
}

// A server Protocol counts each frame and message that passes, either way:
// fragments, control frames, the close handshake, and the pong a later
// ping replaced, which is never sent.
func TestCountersDefault(t *testing.T) {
	var c Counters
	p := NewProtocol(Config{Counters: &c})
	in := concat(
		clientFrame(frame.OpText, true, []byte("hello")),
		clientFrame(frame.OpBinary, false, []byte{1, 2}),
		clientFrame(frame.OpPing, true, []byte("a")),
		clientFrame(frame.OpContinuation, true, []byte{3}),
		clientFrame(frame.OpPing, true, []byte("b")), // replaces the unsent pong of "a"
		clientFrame(frame.OpPong, true, nil),
	)
	for len(in) > 0 {
		ev, n, _, err := p.Receive(in)
		if err != nil {
			t.Fatal(err)
		}
		in = in[n:]
		if ev.Kind == EventMessage {
			out, err := p.AppendMessage(nil, ev.Op, 0, ev.Payload)
			if err != nil || len(out) == 0 {
				t.Fatal(err)
			}
		}
	}
	p.AppendReplies(nil)
	p.AppendPing(nil, []byte("x"))
	p.AppendFrame(nil, frame.Header{Fin: true, Op: frame.OpPong}, nil)
	p.AppendClose(nil, 4000, "")
	if _, _, _, err := p.Receive(clientFrame(frame.OpClose, true, []byte{0x03, 0xe8})); err != nil {
		t.Fatal(err)
	}
	want := count{frames: 7, text: 1, textBytes: 5, binary: 1, binaryBytes: 3, pings: 2, pongs: 1, close: map[int]uint64{0: 1}}
	if got := read(&c.In); !equalCount(got, want) {
		t.Errorf("in:  %v\nwant %v", got, want)
	}
	want = count{frames: 6, text: 1, textBytes: 5, binary: 1, binaryBytes: 3, pings: 1, pongs: 2, close: map[int]uint64{16: 1}}
	if got := read(&c.Out); !equalCount(got, want) {
		t.Errorf("out: %v\nwant %v", got, want)
	}
}

// In raw mode a message counts at its final frame, under its first frame's
// type; a fragmented message sent frame by frame does the same, and a
// message split by FragmentSize counts its frames.
func TestCountersFrames(t *testing.T) {
	var c Counters
	p := NewProtocol(Config{Raw: true, Counters: &c, FragmentSize: 4})
	in := concat(
		clientFrame(frame.OpText, false, []byte("ab")),
		clientFrame(frame.OpContinuation, false, []byte("cd")),
		clientFrame(frame.OpContinuation, true, []byte("e")),
	)
	for len(in) > 0 {
		_, n, _, err := p.Receive(in)
		if err != nil {
			t.Fatal(err)
		}
		in = in[n:]
	}
	p.AppendFrame(nil, frame.Header{Op: frame.OpBinary}, []byte("xy"))
	p.AppendFrame(nil, frame.Header{Fin: true, Op: frame.OpContinuation}, []byte("z"))
	p.AppendMessage(nil, frame.OpText, 0, []byte("0123456789")) // 3 frames of at most 4 bytes
	if got, want := read(&c.In), (count{frames: 3, text: 1, textBytes: 5}); !equalCount(got, want) {
		t.Errorf("in:  %v\nwant %v", got, want)
	}
	if got, want := read(&c.Out), (count{frames: 5, text: 1, textBytes: 10, binary: 1, binaryBytes: 3}); !equalCount(got, want) {
		t.Errorf("out: %v\nwant %v", got, want)
	}
}

// Timeouts count once each: the keepalive's unanswered ping (and its
// 1011), and our unanswered close.
func TestCountersTimeouts(t *testing.T) {
	var c Counters
	p := NewProtocol(Config{Counters: &c, PingPeriod: time.Second, Timeout: time.Second})
	now := time.Now()
	p.Tick(now, nil)
	p.Tick(now.Add(time.Second), nil) // the ping
	if _, err := p.Tick(now.Add(2*time.Second), nil); err != ErrPongTimeout {
		t.Fatalf("Tick: %v, want ErrPongTimeout", err)
	}
	if c.PongTimeouts.Load() != 1 || c.Out.Pings.Load() != 1 || c.Out.Close[CloseIndex(frame.CloseInternalError)].Load() != 1 {
		t.Errorf("pong timeouts %d, pings %d, 1011s %d", c.PongTimeouts.Load(), c.Out.Pings.Load(), c.Out.Close[11].Load())
	}
	q := NewProtocol(Config{Counters: &c, Timeout: time.Second})
	q.AppendClose(nil, frame.CloseNormal, "")
	q.Tick(now, nil)
	if _, err := q.Tick(now.Add(time.Second), nil); err != ErrCloseTimeout {
		t.Fatalf("Tick: %v, want ErrCloseTimeout", err)
	}
	if c.CloseTimeouts.Load() != 1 {
		t.Errorf("close timeouts %d", c.CloseTimeouts.Load())
	}
}

// With permessage-deflate the bytes on the wire and the application's are
// counted each way.
func TestCountersDeflate(t *testing.T) {
	var sc, cc Counters
	server, client := deflatePair(t, &sc, &cc)
	msg := bytes.Repeat([]byte("counted "), 100)
	wire, err := client.AppendMessage(nil, frame.OpText, 0, msg)
	if err != nil {
		t.Fatal(err)
	}
	ev, _, ok, err := server.Receive(wire)
	if !ok || err != nil || !bytes.Equal(ev.Payload, msg) {
		t.Fatalf("receive: %v %v", ok, err)
	}
	for name, d := range map[string]*Direction{"client out": &cc.Out, "server in": &sc.In} {
		plain, w := d.DeflatePlain.Load(), d.DeflateWire.Load()
		if plain != uint64(len(msg)) || w == 0 || w >= plain {
			t.Errorf("%s: deflate plain %d wire %d for %d bytes", name, plain, w, len(msg))
		}
	}
}

// deflatePair returns a server and a client Protocol that negotiated
// permessage-deflate, counting into sc and cc.
func deflatePair(t *testing.T, sc, cc *Counters) (server, client *Protocol) {
	t.Helper()
	ext := &PerMessageDeflate{}
	offers, err := ParseExtensions(nil, []string{"permessage-deflate"})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := AcceptExtensions([]Extension{ext}, offers)
	if err != nil || len(sn) != 1 {
		t.Fatalf("accept: %v", err)
	}
	resp, err := ParseExtensions(nil, []string{string(ResponseHeader(nil, sn))})
	if err != nil {
		t.Fatal(err)
	}
	cn, err := ConfirmExtensions([]Extension{ext}, resp)
	if err != nil {
		t.Fatal(err)
	}
	server = NewProtocol(Config{Role: Server, Extensions: sn, Counters: sc})
	client = NewProtocol(Config{Role: Client, Extensions: cn, Counters: cc})
	t.Cleanup(func() { server.Release(); client.Release() })
	return server, client
}

// With a Tally set, frames, messages and bytes wait there until AddTo;
// the rest goes to the Counters at once.
func TestCountersTally(t *testing.T) {
	var c Counters
	var tally Tally
	p := NewProtocol(Config{Counters: &c})
	p.SetTally(&tally)
	in := concat(clientFrame(frame.OpText, true, []byte("hi")), clientFrame(frame.OpPing, true, nil))
	for len(in) > 0 {
		ev, n, _, err := p.Receive(in)
		if err != nil {
			t.Fatal(err)
		}
		in = in[n:]
		if ev.Kind == EventMessage {
			p.AppendMessage(nil, ev.Op, 0, ev.Payload)
		}
	}
	p.SetTally(nil)
	if got := read(&c.In); !equalCount(got, count{pings: 1, close: map[int]uint64{}}) {
		t.Errorf("before AddTo, in: %v", got)
	}
	want := Tally{InFrames: 2, OutFrames: 2, InMessages: [2]uint64{1, 0}, OutMessages: [2]uint64{1, 0}, InBytes: [2]uint64{2, 0}, OutBytes: [2]uint64{2, 0}}
	if tally != want {
		t.Errorf("tally %+v, want %+v", tally, want)
	}
	tally.AddTo(&c)
	if tally != (Tally{}) {
		t.Errorf("AddTo left %+v", tally)
	}
	if got := read(&c.In); !equalCount(got, count{frames: 2, text: 1, textBytes: 2, pings: 1, close: map[int]uint64{}}) {
		t.Errorf("in: %v", got)
	}
	if got := read(&c.Out); !equalCount(got, count{frames: 2, text: 1, textBytes: 2, pongs: 1, close: map[int]uint64{}}) {
		t.Errorf("out: %v", got)
	}
}

// BenchmarkCountersEcho is BenchmarkProtocolEcho without counters, with
// them, and with a Tally as the poll engine's loop keeps: what counting
// adds to a message received and one sent.
func BenchmarkCountersEcho(b *testing.B) {
	for _, mode := range []string{"off", "on", "tally"} {
		b.Run("counters="+mode, func(b *testing.B) {
			msg := clientFrame(frame.OpBinary, true, bytes.Repeat([]byte{7}, 64))
			in := make([]byte, len(msg))
			out := make([]byte, 0, 64+frame.MaxHeaderSize)
			var cfg Config
			if mode != "off" {
				cfg.Counters = new(Counters)
			}
			p := NewProtocol(cfg)
			var tally Tally
			if mode == "tally" {
				p.SetTally(&tally)
			}
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
