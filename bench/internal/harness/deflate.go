package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"

	"github.com/wskit/wskit/frame"
)

// DeflateOffer is the Sec-WebSocket-Extensions value UpgradeDeflate sends:
// a browser's offer.
const DeflateOffer = "permessage-deflate; client_max_window_bits"

// UpgradeDeflate performs the opening handshake as Upgrade does, offering
// permessage-deflate (DeflateOffer), and returns the server's
// Sec-WebSocket-Extensions response. A server that does not accept
// permessage-deflate is an error.
func UpgradeDeflate(nc net.Conn, host, path string) (accepted string, err error) {
	resp, err := upgrade(nc, host, path, "Sec-WebSocket-Extensions: "+DeflateOffer+"\r\n")
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(resp)) {
		name, value, ok := strings.Cut(line, ":")
		if ok && textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(name)) == "Sec-Websocket-Extensions" {
			accepted = strings.TrimSpace(value)
		}
	}
	if ext, _, _ := strings.Cut(accepted, ";"); strings.TrimSpace(ext) != "permessage-deflate" {
		return accepted, fmt.Errorf("server did not accept permessage-deflate: Sec-WebSocket-Extensions %q", accepted)
	}
	return accepted, nil
}

// Compressors and decompressors of the clients, shared by their
// connections: a client compresses every message on its own (it never takes
// over its context, which RFC 7692 allows whatever was negotiated), so its
// memory does not grow with its connections.
var (
	clientWriters = sync.Pool{New: func() any {
		w, _ := flate.NewWriter(nil, flate.BestSpeed)
		return w
	}}
	clientReaders = sync.Pool{New: func() any { return flate.NewReader(nil) }}
)

// deflateTail is the end RFC 7692 §7.2.2 has the receiver append, followed
// by an empty final block so that the inflater reports io.EOF.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// Echo sends msg on nc as one masked text message — compressed, with RSV1
// set, when compress is set — and reads one reply, which must carry msg
// (inflated first when it has RSV1, which needs compress). It reports
// whether the reply came compressed. The server's reply is its first
// message, so it refers to no earlier context and inflates on its own; it
// may come in fragments.
func Echo(nc net.Conn, msg []byte, compress bool) (replyCompressed bool, err error) {
	payload := msg
	h := frame.Header{Fin: true, Op: frame.OpText, Masked: true, Mask: [4]byte{0x37, 0xfa, 0x21, 0x3d}}
	if compress {
		var buf bytes.Buffer
		w := clientWriters.Get().(*flate.Writer)
		w.Reset(&buf)
		w.Write(msg)
		err := w.Flush()
		w.Reset(nil)
		clientWriters.Put(w)
		if err != nil {
			return false, err
		}
		payload = bytes.TrimSuffix(buf.Bytes(), deflateTail[:4])
		h.Rsv = frame.RSV1
	}
	h.Length = int64(len(payload))
	out := frame.AppendHeader(make([]byte, 0, h.Size()+len(payload)), h)
	n := len(out)
	out = append(out, payload...)
	frame.Mask(out[n:], h.Mask, 0)
	if _, err := nc.Write(out); err != nil {
		return false, err
	}

	// The reply: one message, in one or more frames.
	got, rsv, err := readMessage(nc)
	if err != nil {
		return false, err
	}
	if rsv&frame.RSV1 != 0 {
		if !compress {
			return false, errors.New("the echo is compressed, and permessage-deflate was not negotiated")
		}
		r := clientReaders.Get().(io.ReadCloser)
		r.(flate.Resetter).Reset(io.MultiReader(bytes.NewReader(got), bytes.NewReader(deflateTail)), nil)
		got, err = io.ReadAll(r)
		clientReaders.Put(r)
		if err != nil {
			return false, fmt.Errorf("inflating the echo: %w", err)
		}
	}
	if !bytes.Equal(got, msg) {
		return false, fmt.Errorf("the echo differs: %d bytes, want %d", len(got), len(msg))
	}
	return rsv&frame.RSV1 != 0, nil
}

// readMessage reads one unmasked text message from nc, which may come in
// fragments (gorilla sends a large message in frames of its write buffer's
// size), and returns its payload and the RSV bits of its first frame.
func readMessage(nc net.Conn) (msg []byte, rsv byte, err error) {
	in := make([]byte, 0, 4096)
	for first := true; ; first = false {
		var h frame.Header
		hn := 0
		for {
			if hn == 0 {
				if h, hn, err = frame.ParseHeader(in); err != nil {
					return nil, 0, err
				}
			}
			if hn > 0 && int64(len(in)-hn) >= h.Length {
				break
			}
			if len(in) == cap(in) {
				in = append(in, 0)[:len(in)]
			}
			k, err := nc.Read(in[len(in):cap(in)])
			in = in[:len(in)+k]
			if err != nil {
				return nil, 0, fmt.Errorf("reading the echo: %w", err)
			}
		}
		wantOp := frame.OpContinuation
		if first {
			wantOp, rsv = frame.OpText, h.Rsv
		}
		if h.Op != wantOp || h.Masked || (!first && h.Rsv != 0) {
			return nil, 0, fmt.Errorf("the echo has an unexpected frame: %+v", h)
		}
		end := hn + int(h.Length)
		msg = append(msg, in[hn:end]...)
		in = in[:copy(in, in[end:])]
		if h.Fin {
			if len(in) > 0 {
				return nil, 0, fmt.Errorf("%d bytes after the echo", len(in))
			}
			return msg, rsv, nil
		}
	}
}

// JSONText returns size bytes of JSON-like text: an array of records with
// varied ids, names, times, numbers and words, drawn from seed. It
// compresses about as well as an application's JSON (about 3:1 with
// permessage-deflate at level 1).
func JSONText(size int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7692))
	words := strings.Fields("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima " +
		"order invoice shipment pending delivered cancelled refund customer account premium basic " +
		"berlin paris lisbon osaka lagos quito perth oslo the a of and to in is for on with as " +
		"priority express standard fragile signed returned blue green red large small new used")
	word := func() string { return words[r.IntN(len(words))] }
	b := make([]byte, 0, size+512)
	b = append(b, '[')
	for id := 100000 + r.IntN(1000); len(b) < size; id += 1 + r.IntN(5) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		user := word() + "." + word() + strconv.Itoa(r.IntN(1000))
		b = fmt.Appendf(b, `{"id":%d,"user":"%s","email":"%s@example.org","created":"2026-%02d-%02dT%02d:%02d:%02dZ",`,
			id, user, user, 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
		b = fmt.Appendf(b, `"amount":%.2f,"quantity":%d,"active":%v,"geo":{"lat":%.4f,"lon":%.4f},"note":"`,
			float64(r.IntN(1000000))/100, 1+r.IntN(50), r.IntN(3) != 0, r.Float64()*180-90, r.Float64()*360-180)
		for i := range 3 + r.IntN(10) {
			if i > 0 {
				b = append(b, ' ')
			}
			b = append(b, word()...)
		}
		b = append(b, `"}`...)
	}
	return b[:size:size]
}
