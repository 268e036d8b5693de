package codec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"

	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/bufpool"
)

// PerMessageDeflate is the permessage-deflate extension (RFC 7692): each
// data message may be compressed on its own, flagged by RSV1 on its first
// frame. Its zero value is a working configuration, and a safe one for a
// server with many connections: level 1, every non-empty message compressed
// when that makes it smaller, context takeover both ways within bounded
// memory, and inflated messages bounded by the connection's MaxMessageSize.
//
// Between messages a connection holds what context takeover requires and
// nothing more; compressors, inflaters and their scratch space come from
// pools for one message.
//   - Sending with context takeover (the default): the last 8 KiB sent and
//     a 4 KiB index of them, 12 KiB from the first compressed message on.
//     Each message is compressed against that history, which the peer's
//     window always holds, and against itself (references up to the
//     negotiated window back). Without context takeover
//     (ServerNoContextTakeover on a server), or at HuffmanOnly: nothing.
//   - Receiving from a peer that takes over its context: its window, the
//     last 2^bits bytes inflated (at least 512), in a buffer that grows
//     with what it holds. A server asks clients for 13 bits (8 KiB) unless
//     ClientMaxWindowBits says otherwise.
//   - KeepCompressor instead keeps a compressor for the connection's life,
//     with the whole window: 0.83 MB at level 1, 1.1 MB at 6, 1.4 MB at 9.
//
// So a server holds per connection for compression, once both sides have
// compressed: 12 KiB unless it sends without context takeover (0.83 MB or
// more with KeepCompressor), plus 2^ClientMaxWindowBits unless the client
// sends without it. The zero value holds 20 KiB; it held 830 KB + 32 KiB
// before the history was bounded.
//
// What that costs, sending JSON-like messages no two alike, each compressed
// after the ones before it (BenchmarkDeflate/send; compressed size over
// original, and time per message on a 2-core AMD EPYC):
//
//	message   zero value          KeepCompressor      no context takeover
//	64 B      0.176 in 0.64 µs    0.196 in 1.7 µs     0.817 in 2.3 µs
//	1 KiB     0.316 in 8.2 µs     0.302 in 7.5 µs     0.462 in 5.8 µs
//	16 KiB    0.270 in 75 µs      0.267 in 54 µs      0.294 in 56 µs
//	64 KiB    0.265 in 229 µs     0.265 in 207 µs     0.273 in 214 µs
//	held      12 KiB              809 KiB             0
//
// Inflating, and compressing without context takeover, with KeepCompressor,
// at levels 2–9 or from 16 KiB, use github.com/klauspost/compress/flate,
// which compressed 1 KiB of JSON-like text 3.6× and 64 KiB 2× faster than
// compress/flate at level 1, and inflated 1.25× faster, without allocating
// (BenchmarkFlateLibraries). Smaller messages at level 1 with context
// takeover go through the windowed compressor of this package, which keeps
// so little.
type PerMessageDeflate struct {
	// Level is the compression level: 1 (fastest) to 9 (smallest), or
	// flate.HuffmanOnly (-2). 0 means 1. (Ktor: compressionLevel, zlib's
	// 6.) With context takeover, level 1 is the windowed compressor, but
	// for messages of 16 KiB or more at 15 window bits; those, and levels
	// 2–9, go to a pooled klauspost compressor primed with the 8 KiB of
	// history for each message, which costs about as much as compressing
	// those 8 KiB (8 µs at level 1: too much for a small message). Without
	// context takeover, or with KeepCompressor, all levels are klauspost's:
	// at 1 KiB and 64 KiB of JSON-like text, level 6 spent 1.5× and 1.9×
	// the time of level 1 for 3.5% and 10% fewer bytes. Below 15 window bits
	// klauspost's compressor is a windowed one with a single level (about
	// 5). HuffmanOnly never refers back, at any window.
	Level int
	// Threshold is the smallest message that is compressed; shorter ones go
	// as they are. 0 compresses every non-empty message. (Ktor:
	// compressIfBiggerThan.)
	Threshold int
	// CompressIf, when set, must also approve a message for it to be
	// compressed. It runs on the sending goroutine. (Ktor: compressIf.)
	CompressIf func(op frame.Opcode, payload []byte) bool
	// ServerNoContextTakeover makes the server compress every message on its
	// own, so that neither side keeps its window: a server accepts with
	// server_no_context_takeover, a client asks for it. A server also
	// accepts a client that asks for it.
	ServerNoContextTakeover bool
	// ClientNoContextTakeover makes the client compress every message on its
	// own: a server requires it with client_no_context_takeover, a client
	// offers it.
	ClientNoContextTakeover bool
	// ServerMaxWindowBits (8–15, 0 means 15) bounds the window the server
	// compresses with: a server caps a client's server_max_window_bits
	// request at it and compresses with it in any case; a client offers it,
	// which bounds the window it keeps.
	ServerMaxWindowBits int
	// ClientMaxWindowBits (8–15) bounds the window the client compresses
	// with, and so the window the server keeps of its messages: a server
	// sends client_max_window_bits when the client offered that parameter,
	// and requires client_no_context_takeover when it did not. 0 means 13
	// (8 KiB) on a server, for a client that takes over its context:
	// browsers and Node's ws offer the parameter; clients that do not, such
	// as coder/websocket, then compress each message on its own unless this
	// is 15. A client limits itself to it and offers client_max_window_bits;
	// 0 means what the server allows, up to 15.
	ClientMaxWindowBits int
	// MaxInflatedSize bounds a message after inflating; a message that
	// inflates to more fails the connection with 1009 as soon as the limit
	// is passed, before the memory is spent. 0 means the connection's
	// MaxMessageSize (16 MiB by default): a compressed message is bounded
	// like any other, where Ktor allows 256 MiB by default.
	MaxInflatedSize int64
	// KeepCompressor, with context takeover, keeps a klauspost compressor
	// for the connection's life, from its first compressed message: the
	// whole window of 2^ServerMaxWindowBits bytes and the compressor's own
	// tables, 0.83 MB at level 1. On JSON-like text it sends 4% fewer bytes
	// at 1 KiB and 1% at 16 KiB, 1.1× and 1.4× faster, and small messages
	// 2.7× slower (see the table above); with many connections, leave it
	// off.
	KeepCompressor bool
}

// defaultClientBits is the client's window a server asks for when
// ClientMaxWindowBits is 0: the most it keeps of each client's messages.
const defaultClientBits = 13

// Validate reports an option out of range.
func (d *PerMessageDeflate) Validate() error {
	if d.Level != 0 && d.Level != flate.HuffmanOnly && (d.Level < 1 || d.Level > 9) {
		return fmt.Errorf("wskit: permessage-deflate level %d is not 1–9 or HuffmanOnly (-2)", d.Level)
	}
	if d.Threshold < 0 || d.MaxInflatedSize < 0 {
		return errors.New("wskit: permessage-deflate Threshold and MaxInflatedSize must not be negative")
	}
	for _, b := range []int{d.ServerMaxWindowBits, d.ClientMaxWindowBits} {
		if b != 0 && (b < 8 || b > 15) {
			return fmt.Errorf("wskit: permessage-deflate window bits %d are not 8–15", b)
		}
	}
	return nil
}

// Name implements Extension.
func (d *PerMessageDeflate) Name() string { return "permessage-deflate" }

// Rsv implements Extension: RSV1, the "Per-Message Compressed" bit.
func (d *PerMessageDeflate) Rsv() byte { return frame.RSV1 }

// Parameters of RFC 7692 §7.1.
const (
	paramServerNoContext = "server_no_context_takeover"
	paramClientNoContext = "client_no_context_takeover"
	paramServerBits      = "server_max_window_bits"
	paramClientBits      = "client_max_window_bits"
)

func bitsOr15(b int) int {
	if b == 0 {
		return 15
	}
	return b
}

// Offer implements Extension: one offer, with client_max_window_bits so
// that the server may bound our window.
func (d *PerMessageDeflate) Offer() []ExtensionOffer {
	o := ExtensionOffer{Name: d.Name()}
	if d.ServerNoContextTakeover {
		o.Params = append(o.Params, Param{Name: paramServerNoContext})
	}
	if d.ClientNoContextTakeover {
		o.Params = append(o.Params, Param{Name: paramClientNoContext})
	}
	if b := bitsOr15(d.ServerMaxWindowBits); b < 15 {
		o.Params = append(o.Params, Param{Name: paramServerBits, Value: strconv.Itoa(b)})
	}
	if b := bitsOr15(d.ClientMaxWindowBits); b < 15 {
		o.Params = append(o.Params, Param{Name: paramClientBits, Value: strconv.Itoa(b)})
	} else {
		o.Params = append(o.Params, Param{Name: paramClientBits})
	}
	return []ExtensionOffer{o}
}

// deflateParams are the parameters of one offer or response, checked.
type deflateParams struct {
	serverNoContext, clientNoContext bool
	serverBits, clientBits           int // 0 when absent; -1: client_max_window_bits without a value
}

// parseDeflateParams checks that each parameter is known, appears once and
// has a valid value (RFC 7692 §7.1); a response may not carry a bare
// client_max_window_bits.
func parseDeflateParams(o ExtensionOffer, response bool) (deflateParams, error) {
	var p deflateParams
	seen := 0
	for _, prm := range o.Params {
		var bit int
		switch strings.ToLower(prm.Name) {
		case paramServerNoContext:
			bit = 1
			p.serverNoContext = true
		case paramClientNoContext:
			bit = 2
			p.clientNoContext = true
		case paramServerBits:
			bit = 4
			b, ok := windowBits(prm.Value)
			if !ok {
				return p, fmt.Errorf("invalid %s value %q", paramServerBits, prm.Value)
			}
			p.serverBits = b
		case paramClientBits:
			bit = 8
			if prm.Value == "" && !response {
				p.clientBits = -1
				break
			}
			b, ok := windowBits(prm.Value)
			if !ok {
				return p, fmt.Errorf("invalid %s value %q", paramClientBits, prm.Value)
			}
			p.clientBits = b
		default:
			return p, fmt.Errorf("unknown parameter %q", prm.Name)
		}
		if (bit == 1 || bit == 2) && prm.Value != "" {
			return p, fmt.Errorf("parameter %s takes no value", prm.Name)
		}
		if seen&bit != 0 {
			return p, fmt.Errorf("parameter %s given twice", prm.Name)
		}
		seen |= bit
	}
	return p, nil
}

// windowBits parses a window size: 8 to 15, digits only (RFC 7692 §7.1.2).
func windowBits(s string) (int, bool) {
	if len(s) < 1 || len(s) > 2 || s[0] == '0' {
		return 0, false
	}
	b, err := strconv.Atoi(s)
	return b, err == nil && b >= 8 && b <= 15 && strconv.Itoa(b) == s
}

// Accept implements Extension for a server: the first alternative with
// valid parameters is accepted.
func (d *PerMessageDeflate) Accept(offers []ExtensionOffer) (ExtensionOffer, Transform, bool) {
	for _, o := range offers {
		p, err := parseDeflateParams(o, false)
		if err != nil {
			continue
		}
		resp := ExtensionOffer{Name: d.Name()}
		t := &deflateTransform{cfg: d}
		// Our side: server_* parameters.
		t.outNoContext = p.serverNoContext || d.ServerNoContextTakeover
		if t.outNoContext {
			resp.Params = append(resp.Params, Param{Name: paramServerNoContext})
		}
		t.outBits = bitsOr15(d.ServerMaxWindowBits)
		if p.serverBits > 0 {
			t.outBits = min(t.outBits, p.serverBits)
			resp.Params = append(resp.Params, Param{Name: paramServerBits, Value: strconv.Itoa(t.outBits)})
		}
		// The client's side.
		t.inBits = 15
		t.inNoContext = p.clientNoContext || d.ClientNoContextTakeover
		limit := d.ClientMaxWindowBits
		if limit == 0 && !t.inNoContext {
			limit = defaultClientBits // nothing to bound when nothing is kept
		}
		limit = bitsOr15(limit)
		if limit < 15 && p.clientBits == 0 {
			t.inNoContext = true // its window cannot be bounded otherwise
		}
		if t.inNoContext {
			resp.Params = append(resp.Params, Param{Name: paramClientNoContext})
		}
		if p.clientBits != 0 && limit < 15 {
			t.inBits = limit
			if p.clientBits > 0 {
				t.inBits = min(limit, p.clientBits)
			}
			resp.Params = append(resp.Params, Param{Name: paramClientBits, Value: strconv.Itoa(t.inBits)})
		}
		return resp, t, true
	}
	return ExtensionOffer{}, nil, false
}

// Confirm implements Extension for a client.
func (d *PerMessageDeflate) Confirm(r ExtensionOffer) (Transform, error) {
	p, err := parseDeflateParams(r, true)
	if err != nil {
		return nil, fmt.Errorf("wskit: server's permessage-deflate response: %w", err)
	}
	if sb := bitsOr15(d.ServerMaxWindowBits); p.serverBits > 0 && (sb == 15 || p.serverBits > sb) {
		return nil, fmt.Errorf("wskit: server's permessage-deflate response: server_max_window_bits=%d was not offered", p.serverBits)
	}
	if d.ServerNoContextTakeover && !p.serverNoContext {
		return nil, errors.New("wskit: server's permessage-deflate response lacks the server_no_context_takeover offered")
	}
	t := &deflateTransform{cfg: d}
	t.outNoContext = p.clientNoContext || d.ClientNoContextTakeover
	t.outBits = bitsOr15(d.ClientMaxWindowBits)
	if p.clientBits > 0 {
		t.outBits = min(t.outBits, p.clientBits)
	}
	t.inNoContext = p.serverNoContext
	t.inBits = 15
	if p.serverBits > 0 {
		t.inBits = p.serverBits
	}
	return t, nil
}

// deflateTransform compresses and inflates the messages of one connection.
// Its out* fields belong to the sending side, in* to the receiving side.
type deflateTransform struct {
	cfg *PerMessageDeflate

	w      *flate.Writer // KeepCompressor: kept between messages
	sink   sliceWriter   // w's output, pointed at each message's buffer
	win    windowState   // our context otherwise: what we sent last
	inDict *[]byte       // the peer's window, kept when it takes over context

	outBits, inBits           int
	outNoContext, inNoContext bool
}

// deflateTail ends every compressed message: RFC 7692 §7.2.1 strips it from
// the sender's output, and the receiver appends it again. The empty final
// block after it lets the inflater report a clean end.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// Errors of permessage-deflate.
var (
	ErrCorruptDeflate = &frame.ProtocolError{Code: frame.CloseProtocolError, Reason: "permessage-deflate: corrupt compressed data"}
)

func (t *deflateTransform) level() int {
	if t.cfg.Level == 0 {
		return flate.BestSpeed
	}
	return t.cfg.Level
}

// Encode implements Transform.
func (t *deflateTransform) Encode(buf *[]byte, op frame.Opcode, p []byte) ([]byte, byte, error) {
	if len(p) == 0 || len(p) < t.cfg.Threshold || (t.cfg.CompressIf != nil && !t.cfg.CompressIf(op, p)) {
		return p, 0, nil
	}
	level := t.level()
	switch {
	case t.outNoContext || level == flate.HuffmanOnly:
		// Nothing refers back: a pooled compressor, for this message only.
		return encodePooled(buf, p, level, t.outBits, nil)
	case t.cfg.KeepCompressor:
		return t.encodeKept(buf, p)
	}
	var out []byte
	var rsv byte
	var err error
	if level == flate.BestSpeed && (len(p) < windowLarge || t.outBits < 15) {
		growBuf(buf, windowRoom(len(p)))
		b, ok := t.win.compress(*buf, p, t.outBits)
		*buf = b
		if ok {
			out, rsv = b, frame.RSV1
		} else {
			out = p
		}
	} else {
		out, rsv, err = encodePooled(buf, p, level, t.outBits, t.win.history(t.outBits))
	}
	if rsv != 0 {
		// Sent uncompressed, a message is not in the peer's window: only
		// a compressed one joins the history.
		t.win.commit(p)
	}
	return out, rsv, err
}

// windowLarge is the size from which level 1 compresses with a pooled
// klauspost compressor primed with the history, rather than the windowed
// compressor: indexing the 8 KiB of history then costs less than what
// klauspost's faster matching saves (BenchmarkDeflateCompressors).
const windowLarge = 16 << 10

// encodePooled compresses p with a pooled compressor, primed with dict,
// the end of the peer's window (nil for none).
func encodePooled(buf *[]byte, p []byte, level, bits int, dict []byte) ([]byte, byte, error) {
	growBuf(buf, len(p)+64)
	w := getWriter(level, bits)
	sink := sinkPool.Get().(*sliceWriter)
	sink.b = buf
	w.ResetDict(sink, dict)
	_, err := w.Write(p)
	if err == nil {
		err = w.Flush()
	}
	putWriter(w, level, bits)
	sink.b = nil
	sinkPool.Put(sink)
	return trimFlush(*buf, p, err)
}

// trimFlush checks the output b of compressing p and strips its sync flush
// tail; p itself is returned when compressing did not shrink it.
func trimFlush(b, p []byte, err error) ([]byte, byte, error) {
	switch {
	case err != nil || len(b) < 4 || string(b[len(b)-4:]) != "\x00\x00\xff\xff":
		return nil, 0, fmt.Errorf("wskit: permessage-deflate: compressing: %v", err)
	case len(b)-4 >= len(p):
		return p, 0, nil
	}
	return b[:len(b)-4], frame.RSV1, nil
}

// encodeKept compresses p with the compressor kept for the connection.
func (t *deflateTransform) encodeKept(buf *[]byte, p []byte) ([]byte, byte, error) {
	growBuf(buf, len(p)+64)
	w := t.w
	if w == nil {
		w = getWriter(t.level(), t.outBits)
		w.Reset(&t.sink)
	}
	t.sink.b = buf
	_, err := w.Write(p)
	if err == nil {
		err = w.Flush()
	}
	t.sink.b = nil
	out, rsv, err := trimFlush(*buf, p, err)
	if rsv == 0 {
		// Failed, or incompressible and sent as it is: the peer's window
		// will not hold it, so the context must be dropped.
		t.dropWriter(w)
		return out, rsv, err
	}
	t.w = w
	return out, rsv, nil
}

// dropWriter forgets the compression context.
func (t *deflateTransform) dropWriter(w *flate.Writer) {
	putWriter(w, t.level(), t.outBits)
	t.w = nil
}

// sinkPool holds the sliceWriters of shared compression.
var sinkPool = sync.Pool{New: func() any { return new(sliceWriter) }}

// sliceWriter appends to a buffer.
type sliceWriter struct{ b *[]byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	*w.b = append(*w.b, p...)
	return len(p), nil
}

// Decode implements Transform.
func (t *deflateTransform) Decode(buf *[]byte, op frame.Opcode, rsv byte, p []byte, limit int64) ([]byte, error) {
	if m := t.cfg.MaxInflatedSize; m > 0 && (limit <= 0 || m < limit) {
		limit = m
	}
	r := getReader()
	defer putReader(r)
	var dict []byte
	if !t.inNoContext && t.inDict != nil {
		dict = *t.inDict
	}
	// The inflater's fast path reads a *bytes.Reader: one copy of the
	// compressed payload costs less than byte-at-a-time reading.
	r.in = bufpool.Grow(r.in, len(p)+len(deflateTail))
	*r.in = append(append((*r.in)[:0], p...), deflateTail...)
	r.src.Reset(*r.in)
	r.fr.(flate.Resetter).Reset(&r.src, dict)
	first := min(4*len(p)+64, 64<<10)
	if limit > 0 {
		first = int(min(int64(first), limit))
	}
	growBuf(buf, first)
	b := *buf
	for {
		if limit > 0 && int64(len(b)) == limit {
			// Full: one more byte proves the message too big, without
			// growing the buffer past the limit.
			var probe [1]byte
			n, err := io.ReadFull(r.fr, probe[:])
			if n > 0 {
				return nil, frame.Errorf(frame.CloseMessageTooBig, "permessage-deflate: message inflates to more than the limit of %d bytes", limit)
			}
			if err != io.EOF {
				return nil, ErrCorruptDeflate
			}
			break
		}
		if len(b) == cap(b) {
			*buf = b
			n := cap(b)
			if limit > 0 {
				n = int(min(int64(n), limit-int64(len(b))))
			}
			growBuf(buf, n)
			b = *buf
		}
		room := b[len(b):cap(b)]
		if limit > 0 && int64(len(b))+int64(len(room)) > limit {
			room = room[:limit-int64(len(b))]
		}
		n, err := r.fr.Read(room)
		b = b[:len(b)+n]
		*buf = b
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, ErrCorruptDeflate
		}
	}
	if !t.inNoContext {
		t.keepWindow(b)
	}
	return b, nil
}

// keepWindow appends msg to the peer's window, keeping its last 2^inBits
// bytes (at least 512: zlib compresses with 9 bits when asked for 8). The
// window is a pooled buffer that grows with what it holds, never past that
// size.
func (t *deflateTransform) keepWindow(msg []byte) {
	size := 1 << max(t.inBits, 9)
	d := t.inDict
	held := 0
	if d != nil {
		held = len(*d)
	}
	if need := min(size, held+len(msg)); d == nil || cap(*d) < need {
		// Buffer sizes are powers of two, like size: never more than it.
		nd := bufpool.Get(min(size, max(need, 2*held, 1024)))
		if d != nil {
			*nd = append(*nd, *d...)
			bufpool.Put(d)
		}
		d, t.inDict = nd, nd
	}
	w := *d
	if len(msg) >= size {
		w = append(w[:0], msg[len(msg)-size:]...)
	} else {
		if drop := len(w) + len(msg) - size; drop > 0 {
			w = w[:copy(w, w[drop:])]
		}
		w = append(w, msg...)
	}
	*d = w
}

// Release implements Transform.
func (t *deflateTransform) Release() {
	if t.w != nil {
		putWriter(t.w, t.level(), t.outBits)
		t.w = nil
	}
	t.win.release()
	bufpool.Put(t.inDict)
	t.inDict = nil
}

// inflater is a pooled decompressor with its input.
type inflater struct {
	fr  io.ReadCloser
	src bytes.Reader
	in  *[]byte // the payload with deflateTail, held for one message
}

var inflaters sync.Pool

func getReader() *inflater {
	if r, ok := inflaters.Get().(*inflater); ok {
		return r
	}
	r := &inflater{}
	r.fr = flate.NewReader(&r.src)
	return r
}

func putReader(r *inflater) {
	r.src.Reset(nil)
	bufpool.Put(r.in)
	r.in = nil
	inflaters.Put(r)
}

// Compressors are pooled per level, and per window size below 15 bits.
var (
	writersByLevel [12]sync.Pool // index: level + 2
	writersByBits  [8]sync.Pool  // index: bits - 8
)

func writerPool(level, bits int) *sync.Pool {
	if bits < 15 && level != flate.HuffmanOnly {
		return &writersByBits[bits-8]
	}
	return &writersByLevel[level+2]
}

func getWriter(level, bits int) *flate.Writer {
	if w, ok := writerPool(level, bits).Get().(*flate.Writer); ok {
		return w
	}
	var w *flate.Writer
	if bits < 15 && level != flate.HuffmanOnly {
		w, _ = flate.NewWriterWindow(nil, 1<<bits)
	} else {
		w, _ = flate.NewWriter(nil, level)
	}
	return w
}

// putWriter pools w, which forgets its output and any dictionary.
func putWriter(w *flate.Writer, level, bits int) {
	w.ResetDict(nil, nil)
	writerPool(level, bits).Put(w)
}

// deflateShareKey is what makes two connections' compressed messages
// interchangeable: the same settings and the same window for our side.
type deflateShareKey struct {
	cfg     *PerMessageDeflate
	outBits int
}

// ShareKey implements SharedTransform.
func (t *deflateTransform) ShareKey() any { return deflateShareKey{t.cfg, t.outBits} }

// EncodeShared implements SharedTransform: it compresses with a pooled
// compressor and no context, which every peer can inflate whatever window
// it keeps, since nothing refers back to earlier messages.
func (t *deflateTransform) EncodeShared(buf *[]byte, op frame.Opcode, p []byte) ([]byte, byte, error) {
	if len(p) == 0 || len(p) < t.cfg.Threshold || (t.cfg.CompressIf != nil && !t.cfg.CompressIf(op, p)) {
		return p, 0, nil
	}
	return encodePooled(buf, p, t.level(), t.outBits, nil)
}

// SentShared implements SharedTransform. A compressed message we did not
// compress ourselves is now in the peer's window, so the context we kept no
// longer matches it and is dropped.
func (t *deflateTransform) SentShared(rsv byte) {
	if rsv == 0 {
		return
	}
	if t.w != nil {
		t.dropWriter(t.w)
	}
	t.win.forget()
}
