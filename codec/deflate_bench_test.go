package codec

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"unsafe"

	"github.com/klauspost/compress/flate"

	"github.com/wskit/wskit/frame"
)

// The permessage-deflate benchmarks work on JSON-like text: a ring of
// deflateBenchRing different messages, each made of records drawn from a
// seeded generator (ids, names, e-mail addresses, times, numbers, tags,
// free text), so that no two messages are alike and the 32 KiB window of
// context takeover holds only about half the ring at 1 KiB and less than
// one message at 64 KiB. Every iteration sends or receives the next message
// of the ring.
const deflateBenchRing = 64

type deflateBenchSize struct {
	name string
	size int
}

// deflateBenchSizes are the message sizes of BenchmarkDeflate and
// BenchmarkDeflateCompressors; BenchmarkFlateLibraries uses the last two.
var deflateBenchSizes = []deflateBenchSize{{"64B", 64}, {"1KiB", 1 << 10}, {"16KiB", 16 << 10}, {"64KiB", 64 << 10}}

var deflateBenchWords = []string{
	"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
	"india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa",
	"order", "invoice", "shipment", "pending", "delivered", "cancelled",
	"refund", "customer", "account", "premium", "basic", "trial", "warehouse",
	"berlin", "paris", "lisbon", "osaka", "lagos", "quito", "perth", "oslo",
	"the", "a", "of", "and", "to", "in", "is", "for", "on", "with", "as",
	"priority", "express", "standard", "fragile", "signed", "returned",
	"blue", "green", "red", "large", "small", "medium", "new", "used",
}

var deflateBenchTags = []string{"vip", "new", "mobile", "web", "eu", "us", "apac", "b2b", "b2c", "beta"}

// deflateBenchRecord appends one JSON object with varied values.
func deflateBenchRecord(dst []byte, r *rand.Rand, id int) []byte {
	word := func() string { return deflateBenchWords[r.IntN(len(deflateBenchWords))] }
	user := word() + "." + word() + strconv.Itoa(r.IntN(1000))
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, int64(id), 10)
	dst = append(dst, `,"user":"`...)
	dst = append(dst, user...)
	dst = append(dst, `","email":"`...)
	dst = append(dst, user...)
	dst = append(dst, "@example."...)
	dst = append(dst, []string{"com", "org", "net", "io"}[r.IntN(4)]...)
	dst = fmt.Appendf(dst, `","created":"2026-%02d-%02dT%02d:%02d:%02dZ"`, 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
	dst = append(dst, `,"amount":`...)
	dst = strconv.AppendFloat(dst, float64(r.IntN(1000000))/100, 'f', 2, 64)
	dst = append(dst, `,"quantity":`...)
	dst = strconv.AppendInt(dst, int64(1+r.IntN(50)), 10)
	dst = append(dst, `,"active":`...)
	dst = strconv.AppendBool(dst, r.IntN(3) != 0)
	dst = append(dst, `,"tags":[`...)
	for i := range r.IntN(4) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, deflateBenchTags[r.IntN(len(deflateBenchTags))]...)
		dst = append(dst, '"')
	}
	dst = append(dst, `],"geo":{"lat":`...)
	dst = strconv.AppendFloat(dst, r.Float64()*180-90, 'f', 4, 64)
	dst = append(dst, `,"lon":`...)
	dst = strconv.AppendFloat(dst, r.Float64()*360-180, 'f', 4, 64)
	dst = append(dst, `},"note":"`...)
	for i := range 3 + r.IntN(10) {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, word()...)
	}
	return append(dst, `"}`...)
}

// deflateBenchMessages returns n JSON-like messages of exactly size bytes
// (an array of records, cut at size), the same ones on every call.
func deflateBenchMessages(size, n int) [][]byte {
	r := rand.New(rand.NewPCG(7692, uint64(size)))
	msgs := make([][]byte, n)
	id := 100000
	for i := range msgs {
		m := make([]byte, 0, size+512)
		m = append(m, '[')
		for len(m) < size {
			if len(m) > 1 {
				m = append(m, ',')
			}
			m = deflateBenchRecord(m, r, id)
			id += 1 + r.IntN(5)
		}
		msgs[i] = m[:size:size]
	}
	return msgs
}

// deflateBenchNegotiate runs the handshake's negotiation between a client
// configured as client offering "permessage-deflate;
// client_max_window_bits" (a browser's offer) and a server configured as
// server.
func deflateBenchNegotiate(tb testing.TB, m deflateBenchMode) (srv, cli []Negotiated) {
	tb.Helper()
	offers, err := ParseExtensions(nil, []string{"permessage-deflate; client_max_window_bits"})
	if err != nil {
		tb.Fatal(err)
	}
	srv = mustAccept(tb, []Extension{&m.server}, offers)
	if len(srv) != 1 {
		tb.Fatalf("server declined the offer")
	}
	cli, err = ConfirmExtensions([]Extension{&m.client}, []ExtensionOffer{srv[0].Response})
	if err != nil {
		tb.Fatal(err)
	}
	return srv, cli
}

type deflateBenchMode struct {
	name           string
	server, client PerMessageDeflate
}

// deflateBenchModes: the zero value (context takeover with 8 KiB of
// history, clients' windows bounded at 13 bits); compressors kept for the
// connection with 15-bit windows both ways, the zero value until it was
// bounded; and no context takeover.
var deflateBenchModes = []deflateBenchMode{
	{"takeover", PerMessageDeflate{}, PerMessageDeflate{}},
	{"kept", PerMessageDeflate{KeepCompressor: true, ClientMaxWindowBits: 15}, PerMessageDeflate{KeepCompressor: true}},
	{"no-takeover", PerMessageDeflate{ServerNoContextTakeover: true, ClientNoContextTakeover: true}, PerMessageDeflate{}},
}

// deflateBenchHeaderSize returns the size of the header of the unmasked
// frame at the start of f.
func deflateBenchHeaderSize(f []byte) int {
	switch f[1] & 0x7f {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}

// deflateBenchPayload returns the payload of the single unmasked or masked frame f
// (still masked if it was).
func deflateBenchPayload(tb testing.TB, f []byte) []byte {
	h, n, err := frame.ParseHeader(f)
	if err != nil || n == 0 || int64(len(f)-n) != h.Length {
		tb.Fatalf("not one whole frame: %v", err)
	}
	return f[n:]
}

// BenchmarkDeflate measures permessage-deflate inside the Protocol, on
// JSON-like text (see deflateBenchRing):
//
//   - send: a server Protocol compresses and frames a message
//     (AppendMessage into a reused buffer);
//   - receive: a server Protocol parses, unmasks and inflates a message
//     our client Protocol compressed (Receive); the copy of the masked
//     frame into the input buffer, which Receive unmasks in place, is
//     included.
//
// MB/s counts uncompressed bytes; ratio is the compressed payload over the
// original; held-B is what one connection keeps between messages for its
// side of the work (see deflateBenchHeld). The default PerMessageDeflate is
// level 1.
func BenchmarkDeflate(b *testing.B) {
	for _, dir := range []string{"send", "receive"} {
		for _, sz := range deflateBenchSizes {
			msgs := deflateBenchMessages(sz.size, deflateBenchRing)
			for _, mode := range deflateBenchModes {
				b.Run(dir+"/"+sz.name+"/"+mode.name, func(b *testing.B) {
					if dir == "send" {
						benchDeflateSend(b, mode, msgs)
					} else {
						benchDeflateReceive(b, mode, msgs)
					}
				})
			}
		}
	}
}

// deflateBenchHeld returns the live heap one server Protocol keeps once
// it has sent (or received) msgs, beyond what it held before: the mean
// over 64 of them, after a GC. Pools and the runtime move a few KiB now
// and then, which shows as a few dozen bytes either way.
func deflateBenchHeld(b *testing.B, mode deflateBenchMode, send bool, msgs [][]byte) float64 {
	const n = 64
	type pair struct{ srv, cli *Protocol }
	pairs := make([]pair, n)
	for i := range pairs {
		srv, cli := deflateBenchNegotiate(b, mode)
		pairs[i] = pair{NewProtocol(Config{Role: Server, Extensions: srv}), NewProtocol(Config{Role: Client, Extensions: cli})}
	}
	var frames [][]byte
	if !send {
		for _, m := range msgs {
			f, err := pairs[0].cli.AppendMessage(nil, frame.OpText, 0, m)
			if err != nil {
				b.Fatal(err)
			}
			frames = append(frames, f)
		}
	}
	out := make([]byte, 0, 128<<10)
	in := make([]byte, 0, 128<<10)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, pr := range pairs {
		for i, m := range msgs {
			if send {
				out, _ = pr.srv.AppendMessage(out[:0], frame.OpText, 0, m)
				continue
			}
			in = append(in[:0], frames[i]...)
			if _, _, ok, err := pr.srv.Receive(in); !ok || err != nil {
				b.Fatalf("received %v, %v", ok, err)
			}
		}
		pr.srv.ReturnLent()
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(pairs)
	runtime.KeepAlive(out)
	runtime.KeepAlive(in)
	for _, pr := range pairs {
		pr.srv.Release()
		pr.cli.Release()
	}
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
}

func benchDeflateSend(b *testing.B, mode deflateBenchMode, msgs [][]byte) {
	held := deflateBenchHeld(b, mode, true, msgs[:8])
	srv, _ := deflateBenchNegotiate(b, mode)
	p := NewProtocol(Config{Role: Server, Extensions: srv})
	defer p.Release()
	out := make([]byte, 0, p.MessageSize(len(msgs[0])))
	var err error
	// One round first, so that takeover is in its steady state and the
	// pools are warm.
	for _, m := range msgs {
		if out, err = p.AppendMessage(out[:0], frame.OpText, 0, m); err != nil {
			b.Fatal(err)
		}
	}
	var orig, wire int64
	i := 0
	b.SetBytes(int64(len(msgs[0])))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		m := msgs[i%len(msgs)]
		i++
		out, _ = p.AppendMessage(out[:0], frame.OpText, 0, m)
		orig += int64(len(m))
		wire += int64(len(out) - deflateBenchHeaderSize(out))
	}
	b.StopTimer()
	if out[0]&frame.RSV1 == 0 {
		b.Fatal("the message was not compressed")
	}
	deflateBenchPayload(b, out)
	b.ReportMetric(float64(wire)/float64(orig), "ratio")
	b.ReportMetric(held, "held-B")
}

func benchDeflateReceive(b *testing.B, mode deflateBenchMode, msgs [][]byte) {
	held := deflateBenchHeld(b, mode, false, msgs[:8])
	srv, cli := deflateBenchNegotiate(b, mode)
	client := NewProtocol(Config{Role: Client, Extensions: cli})
	defer client.Release()
	// The client compresses the ring twice in a row: the first round warms
	// the server's window up, the second is what the benchmark cycles
	// through. With takeover, each message of the second round refers back
	// to the window before it, which on replay are the same messages again.
	// A message that does not shrink (64 bytes without context) goes as it
	// is, and counts at its size.
	frames := make([][]byte, 2*len(msgs))
	var zipped int64
	compressed := 0
	for i := range frames {
		f, err := client.AppendMessage(nil, frame.OpText, 0, msgs[i%len(msgs)])
		if err != nil {
			b.Fatal(err)
		}
		if f[0]&frame.RSV1 != 0 {
			compressed++
		}
		if i >= len(msgs) {
			zipped += int64(len(deflateBenchPayload(b, f)))
		}
		frames[i] = f
	}
	if compressed < len(frames)/2 {
		b.Fatalf("the client compressed %d of %d messages", compressed, len(frames))
	}
	p := NewProtocol(Config{Role: Server, Extensions: srv})
	defer p.Release()
	in := make([]byte, 0, len(frames[0])+len(frames[0])/2)
	receive := func(f []byte) []byte {
		in = append(in[:0], f...)
		ev, n, ok, err := p.Receive(in)
		if err != nil || !ok || n != len(in) || ev.Kind != EventMessage {
			b.Fatalf("received %v, %d of %d bytes, %v", ev.Kind, n, len(in), err)
		}
		return ev.Payload
	}
	for i, f := range frames {
		if got := receive(f); !bytes.Equal(got, msgs[i%len(msgs)]) {
			b.Fatalf("message %d inflated to %d different bytes", i, len(got))
		}
	}
	frames = frames[len(msgs):]
	i := 0
	b.SetBytes(int64(len(msgs[0])))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		receive(frames[i%len(frames)])
		i++
	}
	b.StopTimer()
	b.ReportMetric(float64(zipped)/float64(int64(len(msgs))*int64(len(msgs[0]))), "ratio")
	b.ReportMetric(held, "held-B")
}

// flateBenchWriter and flateBenchResetter are what compress/flate and
// github.com/klauspost/compress/flate have in common.
type flateBenchWriter interface {
	io.Writer
	Flush() error
	Reset(io.Writer)
}

type flateBenchResetter interface {
	Reset(r io.Reader, dict []byte) error
}

type flateBenchLib struct {
	name      string
	newWriter func(w io.Writer, level int) flateBenchWriter
	newReader func(r io.Reader) io.ReadCloser
}

var flateBenchLibs = []flateBenchLib{
	{"klauspost",
		func(w io.Writer, level int) flateBenchWriter {
			fw, err := flate.NewWriter(w, level)
			if err != nil {
				panic(err)
			}
			return fw
		},
		flate.NewReader},
	{"std",
		func(w io.Writer, level int) flateBenchWriter {
			fw, err := stdflate.NewWriter(w, level)
			if err != nil {
				panic(err)
			}
			return fw
		},
		stdflate.NewReader},
}

// flateBenchSink appends what a compressor writes.
type flateBenchSink struct{ b []byte }

func (s *flateBenchSink) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}

// flateBenchFinal is an empty final stored block: appended to the output of
// Flush, it ends the stream so that an inflater reads to io.EOF.
var flateBenchFinal = []byte{0x01, 0x00, 0x00, 0xff, 0xff}

// BenchmarkFlateLibraries does permessage-deflate's compression and
// inflation work directly with github.com/klauspost/compress/flate and with
// the standard library's compress/flate, on the messages of
// BenchmarkDeflate, to back the choice of the first:
//
//   - compress/SIZE/LEVEL/reset/LIB: no context takeover, a writer from a
//     sync.Pool Reset for each message, Write, Flush;
//   - compress/SIZE/LEVEL/keep/LIB: context takeover, one writer kept for
//     the connection, Write, Flush;
//   - inflate/SIZE/MODE/LIB: a reader Reset (flate.Resetter) on each
//     message, with no dictionary (no-takeover) or with the 32 KiB before
//     the message (takeover), read to its end. The input is compressed by
//     compress/flate at level 6, zlib's default, the same for both.
//   - state/writer/LEVEL/LIB and state/reader/LIB: B/op is what making one
//     compressor (and compressing one 1 KiB message) or one inflater (and
//     inflating one) allocates; live-B is the heap one of them keeps
//     reachable, measured after a GC with 32 alive.
//
// LIB is last so that benchstat -col /lib puts the two side by side.
func BenchmarkFlateLibraries(b *testing.B) {
	for _, sz := range deflateBenchSizes[len(deflateBenchSizes)-2:] {
		msgs := deflateBenchMessages(sz.size, deflateBenchRing)
		for _, level := range []int{1, 6} {
			for _, keep := range []bool{false, true} {
				mode := "reset"
				if keep {
					mode = "keep"
				}
				for _, lib := range flateBenchLibs {
					name := fmt.Sprintf("compress/%s/level=%d/%s/lib=%s", sz.name, level, mode, lib.name)
					b.Run(name, func(b *testing.B) { benchFlateCompress(b, lib, level, keep, msgs) })
				}
			}
		}
		for _, takeover := range []bool{false, true} {
			mode := "no-takeover"
			if takeover {
				mode = "takeover"
			}
			in, dicts := flateBenchInflateInput(b, msgs, takeover)
			for _, lib := range flateBenchLibs {
				name := fmt.Sprintf("inflate/%s/%s/lib=%s", sz.name, mode, lib.name)
				b.Run(name, func(b *testing.B) { benchFlateInflate(b, lib, in, dicts, msgs) })
			}
		}
	}
	msg := deflateBenchMessages(1<<10, 1)[0]
	for _, level := range []int{1, 6} {
		for _, lib := range flateBenchLibs {
			b.Run(fmt.Sprintf("state/writer/level=%d/lib=%s", level, lib.name), func(b *testing.B) {
				var sink flateBenchSink
				newOne := func() any {
					w := lib.newWriter(&sink, level)
					sink.b = sink.b[:0]
					w.Write(msg)
					w.Flush()
					return w
				}
				live := flateBenchLive(newOne)
				b.ReportAllocs()
				for b.Loop() {
					newOne()
				}
				b.ReportMetric(live, "live-B")
			})
		}
	}
	in, _ := flateBenchInflateInput(b, [][]byte{msg}, false)
	for _, lib := range flateBenchLibs {
		b.Run("state/reader/lib="+lib.name, func(b *testing.B) {
			out := make([]byte, len(msg)+1)
			newOne := func() any {
				r := lib.newReader(bytes.NewReader(in[0]))
				if n, err := io.ReadFull(r, out); n != len(msg) || err != io.ErrUnexpectedEOF {
					b.Fatalf("inflated %d bytes, %v", n, err)
				}
				return r
			}
			live := flateBenchLive(newOne)
			b.ReportAllocs()
			for b.Loop() {
				newOne()
			}
			b.ReportMetric(live, "live-B")
		})
	}
}

func benchFlateCompress(b *testing.B, lib flateBenchLib, level int, keep bool, msgs [][]byte) {
	sink := &flateBenchSink{b: make([]byte, 0, 2*len(msgs[0])+1024)}
	pool := sync.Pool{New: func() any { return lib.newWriter(nil, level) }}
	kept := lib.newWriter(sink, level)
	compress := func(m []byte) {
		sink.b = sink.b[:0]
		w := kept
		if !keep {
			w = pool.Get().(flateBenchWriter)
			w.Reset(sink)
		}
		if _, err := w.Write(m); err != nil {
			b.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		if !keep {
			w.Reset(nil)
			pool.Put(w)
		}
	}
	for _, m := range msgs { // warm-up: steady state, pool filled
		compress(m)
	}
	var orig, zipped int64
	i := 0
	b.SetBytes(int64(len(msgs[0])))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		m := msgs[i%len(msgs)]
		i++
		compress(m)
		orig += int64(len(m))
		zipped += int64(len(sink.b) - 4) // permessage-deflate strips 00 00 ff ff
	}
	b.StopTimer()
	b.ReportMetric(float64(zipped)/float64(orig), "ratio")
}

// flateBenchInflateInput compresses msgs with compress/flate at level 6,
// each on its own or (takeover) as one stream, ending each with a final
// block; dicts[i] is the window message i may refer to.
func flateBenchInflateInput(tb testing.TB, msgs [][]byte, takeover bool) (in, dicts [][]byte) {
	var sink flateBenchSink
	w, _ := stdflate.NewWriter(&sink, 6)
	// As in benchDeflateReceive, a first round warms the window up.
	var stream []byte
	for round := range 2 {
		for _, m := range msgs {
			if !takeover {
				w.Reset(&sink)
			}
			sink.b = sink.b[:0]
			w.Write(m)
			w.Flush()
			if round == 1 {
				in = append(in, append(bytes.Clone(sink.b), flateBenchFinal...))
				var dict []byte
				if takeover {
					dict = stream[max(0, len(stream)-32<<10):]
				}
				dicts = append(dicts, dict)
			}
			stream = append(stream, m...)
		}
	}
	return in, dicts
}

func benchFlateInflate(b *testing.B, lib flateBenchLib, in, dicts, msgs [][]byte) {
	src := bytes.NewReader(nil)
	r := lib.newReader(src)
	out := make([]byte, len(msgs[0])+1)
	inflate := func(i int) int {
		src.Reset(in[i])
		if err := r.(flateBenchResetter).Reset(src, dicts[i]); err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			k, err := r.Read(out[n:])
			n += k
			if err == io.EOF {
				return n
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	for i, m := range msgs {
		if n := inflate(i); !bytes.Equal(out[:n], m) {
			b.Fatalf("message %d inflated to %d different bytes", i, n)
		}
	}
	var zipped int64
	for _, p := range in {
		zipped += int64(len(p) - len(flateBenchFinal) - 4)
	}
	i := 0
	b.SetBytes(int64(len(msgs[0])))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		inflate(i % len(in))
		i++
	}
	b.StopTimer()
	b.ReportMetric(float64(zipped)/float64(int64(len(msgs))*int64(len(msgs[0]))), "ratio")
}

// flateBenchLive returns the heap that one value made by newOne keeps
// reachable: the growth of the live heap, after a GC, with 32 of them held,
// divided by 32.
func flateBenchLive(newOne func() any) float64 {
	const n = 32
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	held := make([]any, n)
	for i := range held {
		held[i] = newOne()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(held)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
}

// BenchmarkDeflateCompressors compares ways of compressing a connection's
// messages with context takeover on the same JSON-like messages, sent one
// after the other (each compressed against what went before):
//
//   - window: ours, the zero value's (windowdeflate.go): 8 KiB of history
//     and a 4 KiB index kept per connection;
//   - kept: a klauspost level-1 Writer kept per connection, Write and
//     Flush (KeepCompressor);
//   - pooled-dict: a pooled klauspost level-1 Writer primed with the
//     connection's last 8 KiB (ResetDict), as levels 2–9 are;
//   - stateless-dict: klauspost's StatelessDeflate with the last 8 KiB as
//     its dictionary, which copies them with the message into a new buffer
//     on each call;
//   - pooled: no context takeover, a pooled Writer Reset for each message.
//
// ratio is the compressed size over the original; held-B is what one
// connection keeps between messages (for kept, flateBenchLive's measure of
// a Writer; for the dictionaries, the 8 KiB).
func BenchmarkDeflateCompressors(b *testing.B) {
	for _, sz := range deflateBenchSizes[:3] {
		msgs := deflateBenchMessages(sz.size, deflateBenchRing)
		for _, c := range []string{"window", "kept", "pooled-dict", "stateless-dict", "pooled"} {
			b.Run(sz.name+"/"+c, func(b *testing.B) {
				benchDeflateCompressor(b, c, msgs)
			})
		}
	}
}

func benchDeflateCompressor(b *testing.B, c string, msgs [][]byte) {
	sink := &flateBenchSink{b: make([]byte, 0, windowRoom(len(msgs[0]))+64)}
	var kept *flate.Writer
	var st windowState
	defer st.release()
	var held float64
	switch c {
	case "kept":
		kept, _ = flate.NewWriter(sink, flate.BestSpeed)
		held = flateBenchLive(func() any {
			w, _ := flate.NewWriter(io.Discard, flate.BestSpeed)
			w.Write(msgs[0])
			w.Flush()
			return w
		})
	case "window":
		held = float64(unsafe.Sizeof(windowBuf{}))
	case "pooled-dict", "stateless-dict":
		held = windowHistory
	}
	compress := func(m []byte) {
		sink.b = sink.b[:0]
		switch c {
		case "window":
			out, ok := st.compress(sink.b, m, 15)
			if !ok {
				b.Fatal("not compressed")
			}
			sink.b = out
		case "kept":
			kept.Write(m)
			kept.Flush()
			sink.b = sink.b[:len(sink.b)-4]
		case "pooled-dict", "pooled":
			w := getWriter(flate.BestSpeed, 15)
			var dict []byte
			if c == "pooled-dict" {
				dict = st.history(15)
			}
			w.ResetDict(sink, dict)
			w.Write(m)
			w.Flush()
			putWriter(w, flate.BestSpeed, 15)
			sink.b = sink.b[:len(sink.b)-4]
		case "stateless-dict":
			flate.StatelessDeflate(sink, m, false, st.history(15))
			sink.b = sink.b[:len(sink.b)-4]
		}
		st.commit(m)
	}
	// Check the first round against an inflater, which warms up too.
	var window []byte
	for i, m := range msgs {
		compress(m)
		if c == "pooled" {
			window = nil
		}
		got, err := io.ReadAll(stdflate.NewReaderDict(io.MultiReader(bytes.NewReader(sink.b), bytes.NewReader(deflateTail)), window))
		if err != nil || !bytes.Equal(got, m) {
			b.Fatalf("message %d inflates to %d bytes, %v", i, len(got), err)
		}
		window = append(window, m...)
		window = window[max(0, len(window)-32<<10):]
	}
	var orig, zipped int64
	i := 0
	b.SetBytes(int64(len(msgs[0])))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		m := msgs[i%len(msgs)]
		i++
		compress(m)
		orig += int64(len(m))
		zipped += int64(len(sink.b))
	}
	b.StopTimer()
	b.ReportMetric(float64(zipped)/float64(orig), "ratio")
	b.ReportMetric(held, "held-B")
}
