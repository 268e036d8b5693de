package codec

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/bufpool"
	"github.com/wskit/wskit/internal/race"
)

// randomBytes returns n incompressible bytes.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// jsonText returns n bytes of compressible JSON-like UTF-8 text (fewer when
// n would split a rune).
func jsonText(seed, n int) []byte {
	var b bytes.Buffer
	for i := seed; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"id":%d,"name":"user-%d","city":"Zürich","ok":%v,"note":"✓ naïve"},`, i, i%37, i%3 == 0)
	}
	p := b.Bytes()[:n]
	for len(p) > 0 && !utf8.Valid(p) {
		p = p[:len(p)-1]
	}
	return p
}

// params describes a permessage-deflate Transform: the window bits of each
// direction, "/nc" marking no context takeover.
func params(tr Transform) string {
	t := tr.(*deflateTransform)
	nc := func(b bool) string {
		if b {
			return "/nc"
		}
		return ""
	}
	return fmt.Sprintf("out=%d%s in=%d%s", t.outBits, nc(t.outNoContext), t.inBits, nc(t.inNoContext))
}

func TestDeflateOffer(t *testing.T) {
	tests := []struct {
		d    PerMessageDeflate
		want string
	}{
		{PerMessageDeflate{}, "permessage-deflate; client_max_window_bits"},
		{PerMessageDeflate{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}, "permessage-deflate; client_max_window_bits"},
		{PerMessageDeflate{ClientMaxWindowBits: 8}, "permessage-deflate; client_max_window_bits=8"},
		{PerMessageDeflate{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 10, ClientMaxWindowBits: 12},
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12"},
	}
	for _, tt := range tests {
		if got := string(AppendExtensions(nil, tt.d.Offer())); got != tt.want {
			t.Errorf("%+v offers %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestDeflateAccept(t *testing.T) {
	const pmd = "permessage-deflate"
	type test struct {
		server PerMessageDeflate
		offer  string
		want   string // the response; "" when declined
		params string // of the server's Transform
	}
	// wide keeps whatever window a client takes: the rows with it test the
	// parameters, those with the zero value its bound on the client's window.
	wide := PerMessageDeflate{ClientMaxWindowBits: 15}
	tests := []test{
		{PerMessageDeflate{}, pmd, pmd + "; client_no_context_takeover", "out=15 in=15/nc"},
		{PerMessageDeflate{}, pmd + "; client_max_window_bits", pmd + "; client_max_window_bits=13", "out=15 in=13"},
		{PerMessageDeflate{}, pmd + "; client_max_window_bits=15", pmd + "; client_max_window_bits=13", "out=15 in=13"},
		{PerMessageDeflate{}, pmd + "; client_max_window_bits=10", pmd + "; client_max_window_bits=10", "out=15 in=10"},
		{PerMessageDeflate{}, pmd + "; client_no_context_takeover", pmd + "; client_no_context_takeover", "out=15 in=15/nc"},
		{PerMessageDeflate{}, pmd + "; client_no_context_takeover; client_max_window_bits", pmd + "; client_no_context_takeover", "out=15 in=15/nc"},
		{PerMessageDeflate{}, pmd + "; server_no_context_takeover; client_max_window_bits",
			pmd + "; server_no_context_takeover; client_max_window_bits=13", "out=15/nc in=13"},

		{wide, pmd, pmd, "out=15 in=15"},
		{wide, pmd + "; client_max_window_bits", pmd, "out=15 in=15"},
		{wide, pmd + "; client_max_window_bits=10", pmd, "out=15 in=15"},
		{wide, pmd + "; server_no_context_takeover", pmd + "; server_no_context_takeover", "out=15/nc in=15"},
		{wide, pmd + "; client_no_context_takeover", pmd + "; client_no_context_takeover", "out=15 in=15/nc"},
		{wide, pmd + "; client_no_context_takeover; server_no_context_takeover",
			pmd + "; server_no_context_takeover; client_no_context_takeover", "out=15/nc in=15/nc"},
		{wide, "PerMessage-Deflate; SERVER_NO_CONTEXT_TAKEOVER", pmd + "; server_no_context_takeover", "out=15/nc in=15"},
		{wide, pmd + `; server_max_window_bits="10"`, pmd + "; server_max_window_bits=10", "out=10 in=15"},
		{wide, pmd + "; server_max_window_bits = 9", pmd + "; server_max_window_bits=9", "out=9 in=15"},
		// The first valid alternative wins.
		{wide, pmd + "; server_max_window_bits=7, " + pmd + "; client_no_context_takeover", pmd + "; client_no_context_takeover", "out=15 in=15/nc"},
		{wide, pmd + "; x=1, " + pmd + "; server_max_window_bits, " + pmd + "; server_max_window_bits=12", pmd + "; server_max_window_bits=12", "out=12 in=15"},
		{wide, pmd + "; server_max_window_bits=10, " + pmd, pmd + "; server_max_window_bits=10", "out=10 in=15"},
		{wide, "x-webkit-deflate-frame, " + pmd + "; client_max_window_bits, foo", pmd, "out=15 in=15"},

		// The server's own options.
		{PerMessageDeflate{ServerNoContextTakeover: true, ClientMaxWindowBits: 15}, pmd, pmd + "; server_no_context_takeover", "out=15/nc in=15"},
		{PerMessageDeflate{ClientNoContextTakeover: true}, pmd, pmd + "; client_no_context_takeover", "out=15 in=15/nc"},
		{PerMessageDeflate{ServerMaxWindowBits: 10, ClientMaxWindowBits: 15}, pmd, pmd, "out=10 in=15"},
		{PerMessageDeflate{ServerMaxWindowBits: 10, ClientMaxWindowBits: 15}, pmd + "; server_max_window_bits=12", pmd + "; server_max_window_bits=10", "out=10 in=15"},
		{PerMessageDeflate{ServerMaxWindowBits: 10, ClientMaxWindowBits: 15}, pmd + "; server_max_window_bits=9", pmd + "; server_max_window_bits=9", "out=9 in=15"},
		{PerMessageDeflate{ServerMaxWindowBits: 10, ClientMaxWindowBits: 15}, pmd + "; server_max_window_bits=15", pmd + "; server_max_window_bits=10", "out=10 in=15"},
		// A client that cannot bound its window must drop it after each message.
		{PerMessageDeflate{ClientMaxWindowBits: 12}, pmd, pmd + "; client_no_context_takeover", "out=15 in=15/nc"},
		{PerMessageDeflate{ClientMaxWindowBits: 12}, pmd + "; client_max_window_bits", pmd + "; client_max_window_bits=12", "out=15 in=12"},
		{PerMessageDeflate{ClientMaxWindowBits: 8}, pmd + "; client_max_window_bits", pmd + "; client_max_window_bits=8", "out=15 in=8"},
		{PerMessageDeflate{ClientMaxWindowBits: 12}, pmd + "; client_max_window_bits=10", pmd + "; client_max_window_bits=10", "out=15 in=10"},
		{PerMessageDeflate{ClientMaxWindowBits: 9}, pmd + "; client_max_window_bits=10", pmd + "; client_max_window_bits=9", "out=15 in=9"},
		{PerMessageDeflate{ClientMaxWindowBits: 12}, pmd + "; client_max_window_bits=15", pmd + "; client_max_window_bits=12", "out=15 in=12"},
		{PerMessageDeflate{ClientMaxWindowBits: 12}, pmd + "; client_no_context_takeover; client_max_window_bits",
			pmd + "; client_no_context_takeover; client_max_window_bits=12", "out=15 in=12/nc"},
		{PerMessageDeflate{ServerNoContextTakeover: true, ClientMaxWindowBits: 11},
			pmd + "; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits",
			pmd + "; server_no_context_takeover; server_max_window_bits=10; client_no_context_takeover; client_max_window_bits=11", "out=10/nc in=11/nc"},
	}
	for b := 8; b <= 15; b++ {
		tests = append(tests, test{wide, fmt.Sprintf("%s; server_max_window_bits=%d", pmd, b),
			fmt.Sprintf("%s; server_max_window_bits=%d", pmd, b), fmt.Sprintf("out=%d in=15", b)})
		tests = append(tests, test{PerMessageDeflate{ClientMaxWindowBits: 8}, fmt.Sprintf("%s; client_max_window_bits=%d", pmd, b),
			pmd + "; client_max_window_bits=8", "out=15 in=8"})
	}
	// Offers that must be declined: each alternative is invalid.
	for _, offer := range []string{
		"x-webkit-deflate-frame",
		"permessage-deflat",
		pmd + "; server_no_context_takeover; server_no_context_takeover",
		pmd + "; client_no_context_takeover; Client_No_Context_Takeover",
		pmd + "; server_max_window_bits=10; server_max_window_bits=10",
		pmd + "; client_max_window_bits; client_max_window_bits=10",
		pmd + "; foo",
		pmd + "; server_max_window_bit=10",
		pmd + "; server_max_window_bits",
		pmd + "; server_max_window_bits=7",
		pmd + "; server_max_window_bits=16",
		pmd + "; server_max_window_bits=010",
		pmd + "; server_max_window_bits=08",
		pmd + "; server_max_window_bits=0",
		pmd + "; server_max_window_bits=-9",
		pmd + "; server_max_window_bits=+9",
		pmd + "; server_max_window_bits=9a",
		pmd + "; server_max_window_bits=1e1",
		pmd + "; server_max_window_bits=99999999999999999999",
		pmd + "; client_max_window_bits=7",
		pmd + "; client_max_window_bits=16",
		pmd + "; client_max_window_bits=010",
		pmd + "; server_no_context_takeover=1",
		pmd + "; client_no_context_takeover=true",
		pmd + `; server_no_context_takeover="x"`,
		pmd + "; server_max_window_bits=7, " + pmd + "; foo, " + pmd + "; client_max_window_bits=16",
	} {
		tests = append(tests, test{wide, offer, "", ""})
	}
	// A quoted empty value is not a token: the whole header is malformed,
	// and the server then declines every extension.
	for _, v := range []string{`""`, `" 9"`} {
		if _, err := ParseExtensions(nil, []string{pmd + "; server_max_window_bits=" + v}); err != ErrBadExtensionHeader {
			t.Errorf("server_max_window_bits=%s: %v, want ErrBadExtensionHeader", v, err)
		}
	}
	for _, tt := range tests {
		offers, err := ParseExtensions(nil, []string{tt.offer})
		if err != nil {
			t.Fatalf("offer %q: %v", tt.offer, err)
		}
		d := tt.server
		ns := mustAccept(t, []Extension{&d}, offers)
		got := string(ResponseHeader(nil, ns))
		if got != tt.want {
			t.Errorf("server %+v, offer %q: response %q, want %q", tt.server, tt.offer, got, tt.want)
			continue
		}
		if len(ns) == 1 {
			if p := params(ns[0].Transform); p != tt.params || ns[0].Rsv != frame.RSV1 {
				t.Errorf("server %+v, offer %q: %s, RSV %#x; want %s, RSV1", tt.server, tt.offer, p, ns[0].Rsv, tt.params)
			}
		}
		ReleaseExtensions(ns)
	}
}

func TestDeflateConfirm(t *testing.T) {
	const pmd = "permessage-deflate"
	tests := []struct {
		client   PerMessageDeflate
		response string
		params   string // of the client's Transform; "" when the response is refused
	}{
		{PerMessageDeflate{}, pmd, "out=15 in=15"},
		{PerMessageDeflate{}, pmd + "; server_no_context_takeover", "out=15 in=15/nc"},
		{PerMessageDeflate{}, pmd + "; client_no_context_takeover", "out=15/nc in=15"},
		{PerMessageDeflate{}, pmd + "; client_max_window_bits=10", "out=10 in=15"},
		{PerMessageDeflate{}, pmd + "; Client_Max_Window_Bits=8; SERVER_NO_CONTEXT_TAKEOVER", "out=8 in=15/nc"},
		{PerMessageDeflate{ClientNoContextTakeover: true}, pmd, "out=15/nc in=15"},
		{PerMessageDeflate{ClientMaxWindowBits: 12}, pmd, "out=12 in=15"},
		{PerMessageDeflate{ClientMaxWindowBits: 12}, pmd + "; client_max_window_bits=10", "out=10 in=15"},
		{PerMessageDeflate{ClientMaxWindowBits: 12}, pmd + "; client_max_window_bits=14", "out=12 in=15"},
		{PerMessageDeflate{ServerMaxWindowBits: 10}, pmd, "out=15 in=15"},
		{PerMessageDeflate{ServerMaxWindowBits: 10}, pmd + "; server_max_window_bits=10", "out=15 in=10"},
		{PerMessageDeflate{ServerMaxWindowBits: 10}, pmd + "; server_max_window_bits=8", "out=15 in=8"},
		{PerMessageDeflate{ServerNoContextTakeover: true}, pmd + "; server_no_context_takeover", "out=15 in=15/nc"},
		{PerMessageDeflate{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 9, ClientMaxWindowBits: 9},
			pmd + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9", "out=9/nc in=9/nc"},

		// Refused.
		{PerMessageDeflate{}, pmd + "; foo", ""},
		{PerMessageDeflate{}, pmd + "; foo=1", ""},
		{PerMessageDeflate{}, pmd + "; server_no_context_takeover; server_no_context_takeover", ""},
		{PerMessageDeflate{}, pmd + "; client_max_window_bits=10; client_max_window_bits=10", ""},
		{PerMessageDeflate{}, pmd + "; server_max_window_bits=10", ""},                        // not offered
		{PerMessageDeflate{}, pmd + "; server_max_window_bits=15", ""},                        // not offered
		{PerMessageDeflate{ServerMaxWindowBits: 10}, pmd + "; server_max_window_bits=11", ""}, // more than offered
		{PerMessageDeflate{ServerMaxWindowBits: 10}, pmd + "; server_max_window_bits=7", ""},
		{PerMessageDeflate{ServerMaxWindowBits: 10}, pmd + "; server_max_window_bits", ""},
		{PerMessageDeflate{}, pmd + "; client_max_window_bits", ""}, // a response must give the value
		{PerMessageDeflate{}, pmd + "; client_max_window_bits=16", ""},
		{PerMessageDeflate{}, pmd + "; client_max_window_bits=09", ""},
		{PerMessageDeflate{}, pmd + "; client_no_context_takeover=1", ""},
		{PerMessageDeflate{ServerNoContextTakeover: true}, pmd, ""}, // what was asked for is missing
		{PerMessageDeflate{ServerNoContextTakeover: true}, pmd + "; client_no_context_takeover", ""},
	}
	for _, tt := range tests {
		response, err := ParseExtensions(nil, []string{tt.response})
		if err != nil {
			t.Fatalf("response %q: %v", tt.response, err)
		}
		d := tt.client
		ns, err := ConfirmExtensions([]Extension{&d}, response)
		switch {
		case tt.params == "" && err == nil:
			t.Errorf("client %+v accepted the response %q (%s)", tt.client, tt.response, params(ns[0].Transform))
		case tt.params == "" && !strings.Contains(err.Error(), "permessage-deflate"):
			t.Errorf("client %+v, response %q: error %q does not name the extension", tt.client, tt.response, err)
		case tt.params != "" && err != nil:
			t.Errorf("client %+v, response %q: %v", tt.client, tt.response, err)
		case tt.params != "" && (len(ns) != 1 || params(ns[0].Transform) != tt.params):
			t.Errorf("client %+v, response %q: %s, want %s", tt.client, tt.response, params(ns[0].Transform), tt.params)
		}
		ReleaseExtensions(ns)
	}
	// Accepted twice.
	response, _ := ParseExtensions(nil, []string{pmd + ", " + pmd})
	if _, err := ConfirmExtensions([]Extension{&PerMessageDeflate{}}, response); err == nil {
		t.Error("a response naming permessage-deflate twice was accepted")
	}
}

// direction is one way of a connection, with the window its receiver holds.
type direction struct {
	name     string
	from, to *Protocol
	op       frame.Opcode
	bits     int  // window bits the sender compresses with
	takeover bool // whether the sender keeps its context
	window   []byte
}

// send transfers msg and checks what went on the wire: RSV1 on the first
// frame only, exactly when the payload is compressed; and a compressed
// payload that compress/flate inflates to msg given no more history than
// the negotiated window. It returns the payload on the wire.
func (d *direction) send(t *testing.T, fragment int, msg []byte) (payload []byte, compressed bool) {
	t.Helper()
	wire, _ := transfer(t, d.from, d.to, d.op, msg)
	frames := wireFrames(t, d.from, wire)
	for i, f := range frames {
		wantOp, wantRsv := frame.OpContinuation, byte(0)
		if i == 0 {
			wantOp, wantRsv = d.op, f.h.Rsv&frame.RSV1
		}
		if f.h.Op != wantOp || f.h.Rsv != wantRsv || f.h.Fin != (i == len(frames)-1) {
			t.Fatalf("%s: frame %d of %d: %v fin %v RSV %#x", d.name, i, len(frames), f.h.Op, f.h.Fin, f.h.Rsv)
		}
		if fragment > 0 && len(f.payload) > fragment {
			t.Fatalf("%s: frame %d of %d bytes, fragment size %d", d.name, i, len(f.payload), fragment)
		}
	}
	payload = messagePayload(frames)
	compressed = frames[0].h.Rsv == frame.RSV1
	if !compressed {
		if !bytes.Equal(payload, msg) {
			t.Fatalf("%s: uncompressed payload differs from the message", d.name)
		}
		return payload, false
	}
	if len(payload) >= len(msg) {
		t.Fatalf("%s: %d bytes compressed to %d, which does not shrink them", d.name, len(msg), len(payload))
	}
	if got := inflate(t, payload, d.window); !bytes.Equal(got, msg) {
		t.Fatalf("%s: compress/flate inflates %d bytes to %d, not the message of %d", d.name, len(payload), len(got), len(msg))
	}
	if d.takeover {
		d.window = append(d.window, msg...)
		d.window = d.window[max(0, len(d.window)-1<<d.bits):]
	}
	return payload, true
}

// TestDeflateRoundTrips sends messages both ways between a server and a
// client for each combination of context takeover and window bits.
func TestDeflateRoundTrips(t *testing.T) {
	sizes := []int{0, 1, 100, 1000, 10 << 10, 70 << 10, 300 << 10}
	if testing.Short() || race.Enabled {
		sizes = []int{0, 1, 100, 1000, 10 << 10, 70 << 10}
	}
	kinds := []struct {
		name string
		op   frame.Opcode
		make func(seed, n int) []byte
	}{
		{"text", frame.OpText, jsonText},
		{"binary", frame.OpBinary, func(seed, n int) []byte { return bytes.Repeat([]byte{byte(seed), 1, 2, 3, 4, 5, 6, 7}, n/8+1)[:n] }},
		{"random", frame.OpBinary, func(seed, n int) []byte { return randomBytes(uint64(seed), n) }},
	}
	for _, serverTakeover := range []bool{true, false} {
		for _, clientTakeover := range []bool{true, false} {
			for _, sb := range []int{8, 9, 12, 15} {
				for _, cb := range []int{8, 9, 12, 15} {
					for _, fragment := range []int{0, 1000} {
						name := fmt.Sprintf("server_takeover=%v,bits=%d/client_takeover=%v,bits=%d/fragment=%d",
							serverTakeover, sb, clientTakeover, cb, fragment)
						t.Run(name, func(t *testing.T) {
							server := &PerMessageDeflate{ServerNoContextTakeover: !serverTakeover, ClientMaxWindowBits: cb}
							client := &PerMessageDeflate{ClientNoContextTakeover: !clientTakeover, ServerMaxWindowBits: sb}
							sp, cp, _ := newPair(t, []Extension{server}, []Extension{client}, Config{FragmentSize: fragment, MaxMessageSize: 1 << 20})
							nc := map[bool]string{true: "", false: "/nc"}
							want := fmt.Sprintf("out=%d%s in=%d%s", sb, nc[serverTakeover], cb, nc[clientTakeover])
							if got := params(sp.Extensions()[0].Transform); got != want {
								t.Fatalf("server negotiated %s, want %s", got, want)
							}
							want = fmt.Sprintf("out=%d%s in=%d%s", cb, nc[clientTakeover], sb, nc[serverTakeover])
							if got := params(cp.Extensions()[0].Transform); got != want {
								t.Fatalf("client negotiated %s, want %s", got, want)
							}
							dirs := []*direction{
								{name: "server to client", from: sp, to: cp, bits: sb, takeover: serverTakeover},
								{name: "client to server", from: cp, to: sp, bits: cb, takeover: clientTakeover},
							}
							seed := 0
							for _, size := range sizes {
								for _, kind := range kinds {
									for _, d := range dirs {
										seed++
										msg := kind.make(seed, size)
										d.op = kind.op
										first, c1 := d.send(t, fragment, msg)
										second, c2 := d.send(t, fragment, msg)
										checkCompression(t, d, kind.name, msg, first, second, c1, c2)
									}
								}
							}
						})
					}
				}
			}
		}
	}
}

// checkCompression checks how a message sent twice in a row was sent:
// random bytes as they are, compressible ones compressed; the repeat
// identical without context takeover, and text much smaller with it when
// the message fits the window.
func checkCompression(t *testing.T, d *direction, kind string, msg, first, second []byte, c1, c2 bool) {
	t.Helper()
	switch {
	case len(msg) == 0 || kind == "random":
		if c1 || c2 {
			t.Fatalf("%s: %d %s bytes were compressed", d.name, len(msg), kind)
		}
	case len(msg) >= 100 && (!c1 || !c2):
		t.Fatalf("%s: %d %s bytes went uncompressed", d.name, len(msg), kind)
	case len(msg) >= 1000 && len(first) > len(msg)/2:
		t.Fatalf("%s: %d %s bytes compressed to only %d", d.name, len(msg), kind, len(first))
	case !c1 || !c2:
	case !d.takeover && !bytes.Equal(first, second):
		t.Fatalf("%s: without context takeover, the same %d bytes compressed differently (%d, then %d bytes)", d.name, len(msg), len(first), len(second))
	case kind == "text" && d.takeover && len(msg) <= 1<<d.bits/2 && len(second) >= len(first)/2:
		t.Fatalf("%s: with context takeover, %d bytes sent again compressed to %d, first %d", d.name, len(msg), len(second), len(first))
	}
}

// A window of b bits keeps repeats further apart than 2^b bytes from being
// found: R+R, R random and longer than the window, cannot be compressed.
func TestDeflateWindowBitsBoundTheWindow(t *testing.T) {
	for _, bits := range []int{8, 9, 10, 12, 13} {
		r := randomBytes(uint64(bits), 1<<bits+100)
		msg := append(bytes.Clone(r), r...)
		for _, tt := range []struct {
			name           string
			server, client PerMessageDeflate
		}{
			{"server_max_window_bits", PerMessageDeflate{ClientMaxWindowBits: 15}, PerMessageDeflate{ServerMaxWindowBits: bits}},
			{"server's own limit", PerMessageDeflate{ServerMaxWindowBits: bits, ClientMaxWindowBits: 15}, PerMessageDeflate{}},
			{"client_max_window_bits", PerMessageDeflate{ClientMaxWindowBits: bits}, PerMessageDeflate{}},
			{"client's own limit", PerMessageDeflate{ClientMaxWindowBits: 15}, PerMessageDeflate{ClientMaxWindowBits: bits}},
			{"15 bits", PerMessageDeflate{ClientMaxWindowBits: 15}, PerMessageDeflate{}},
			// A server's zero value bounds the client's window at 13 bits.
			{"client's default", PerMessageDeflate{}, PerMessageDeflate{}},
		} {
			sp, cp, _ := newPair(t, []Extension{&tt.server}, []Extension{&tt.client}, Config{})
			for _, d := range []*direction{
				{name: "server to client", from: sp, to: cp, op: frame.OpBinary, bits: 15},
				{name: "client to server", from: cp, to: sp, op: frame.OpBinary, bits: 15},
			} {
				bounded := strings.HasPrefix(tt.name, "server") == (d.from == sp) && tt.name != "15 bits"
				if tt.name == "client's default" {
					bounded = d.from == cp && bits >= defaultClientBits
				}
				payload, compressed := d.send(t, 0, msg)
				switch {
				case bounded && compressed:
					t.Errorf("%d bits, %s, %s: R+R compressed to %d of %d bytes: a repeat %d bytes back was found",
						bits, tt.name, d.name, len(payload), len(msg), len(r))
				case !bounded && (!compressed || len(payload) > len(msg)*6/10):
					t.Errorf("%d bits, %s, %s: R+R sent as %d of %d bytes (compressed %v), want about half",
						bits, tt.name, d.name, len(payload), len(msg), compressed)
				}
			}
		}
	}
}

// stdDeflate compresses messages as a peer using compress/flate does: each
// sync-flushed, its 00 00 ff ff tail stripped. With takeover the stream runs
// on from message to message; without, each message starts afresh.
func stdDeflate(t *testing.T, level int, takeover bool, msgs ...[]byte) [][]byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range msgs {
		if !takeover {
			w.Reset(&buf)
		}
		w.Write(m)
		w.Flush()
		p := bytes.Clone(buf.Bytes())
		buf.Reset()
		if !bytes.HasSuffix(p, []byte{0, 0, 0xff, 0xff}) {
			t.Fatalf("compress/flate's flush ends % x", p[max(0, len(p)-8):])
		}
		out = append(out, p[:len(p)-4])
	}
	return out
}

// compressedFrames is a client's message with RSV1, fragmented when fragment > 0.
func compressedFrames(op frame.Opcode, payload []byte, fragment int) []byte {
	e := Encoder{Role: Client, FragmentSize: fragment}
	return e.AppendMessage(nil, op, frame.RSV1, payload)
}

// deflateServer returns a server Protocol that accepted offer with d.
func deflateServer(t *testing.T, d PerMessageDeflate, offer string, cfg Config) *Protocol {
	t.Helper()
	offers, err := ParseExtensions(nil, []string{offer})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Role = Server
	cfg.Extensions = mustAccept(t, []Extension{&d}, offers)
	if len(cfg.Extensions) != 1 {
		t.Fatalf("offer %q declined", offer)
	}
	p := NewProtocol(cfg)
	t.Cleanup(func() { p.Release() })
	return p
}

// receiveOne feeds in to p in pieces of size (0: whole) and returns the
// one message it holds.
func receiveOne(t *testing.T, p *Protocol, in []byte, size int) string {
	t.Helper()
	evs, err := feed(p, in, size)
	if err != nil || len(evs) != 1 || evs[0].kind != EventMessage {
		t.Fatalf("received %d events, %v; want one message", len(evs), err)
	}
	return evs[0].payload
}

// Our compressed output is plain DEFLATE: compress/flate inflates it.
func TestDeflateOutputInflatesWithCompressFlate(t *testing.T) {
	for _, level := range []int{0, 1, 5, 9, flate.HuffmanOnly} {
		for _, takeover := range []bool{true, false} {
			server := &PerMessageDeflate{Level: level, ServerNoContextTakeover: !takeover}
			sp, cp, _ := newPair(t, []Extension{server}, []Extension{&PerMessageDeflate{}}, Config{})
			// One compress/flate reader over the whole stream: with context
			// takeover the messages are one DEFLATE stream, sync-flushed.
			var stream bytes.Buffer
			r := flate.NewReader(&stream)
			for i, size := range []int{500, 3000, 40 << 10, 1000, 100 << 10, 600} {
				msg := jsonText(i, size)
				wire, _ := transfer(t, sp, cp, frame.OpText, msg)
				frames := wireFrames(t, sp, wire)
				if frames[0].h.Rsv != frame.RSV1 {
					t.Fatalf("level %d: %d bytes sent uncompressed", level, len(msg))
				}
				p := []byte(frames[0].payload)
				if !takeover {
					stream.Reset()
					r.(flate.Resetter).Reset(&stream, nil)
				}
				stream.Write(p)
				stream.Write([]byte{0, 0, 0xff, 0xff})
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("level %d, takeover %v, message %d: compress/flate read %.20q…, %v", level, takeover, i, got, err)
				}
			}
		}
	}
}

// What compress/flate compresses, our Protocol inflates.
func TestDeflateInflatesCompressFlateOutput(t *testing.T) {
	var msgs [][]byte
	for i, size := range []int{0, 1, 64, 5000, 40 << 10, 1000, 200 << 10, 5000} {
		msgs = append(msgs, jsonText(i%3, size)) // repeats for takeover to find
	}
	msgs[7] = msgs[3]
	for _, level := range []int{flate.NoCompression, flate.BestSpeed, flate.DefaultCompression, flate.BestCompression, flate.HuffmanOnly} {
		for _, takeover := range []bool{true, false} {
			for _, fragment := range []int{0, 777} {
				offer := "permessage-deflate"
				if !takeover {
					offer += "; client_no_context_takeover"
				}
				// compress/flate's window is 32 KiB: the server must keep as much.
				p := deflateServer(t, PerMessageDeflate{ClientMaxWindowBits: 15}, offer, Config{})
				for i, payload := range stdDeflate(t, level, takeover, msgs...) {
					if got := receiveOne(t, p, compressedFrames(frame.OpText, payload, fragment), fragment/2); got != string(msgs[i]) {
						t.Fatalf("level %d, takeover %v, message %d: inflated to %d bytes, want %d", level, takeover, i, len(got), len(msgs[i]))
					}
				}
			}
		}
	}
}

// A peer may end a message with a final (BFINAL) block instead of a sync
// flush; with context takeover it may still refer to the earlier messages.
func TestDeflateMessageEndingWithFinalBlock(t *testing.T) {
	p := deflateServer(t, PerMessageDeflate{ClientMaxWindowBits: 15}, "permessage-deflate", Config{})
	msgs := [][]byte{jsonText(0, 3000), jsonText(0, 3000), jsonText(5, 100)}
	var window []byte
	for i, m := range msgs {
		var buf bytes.Buffer
		w, _ := flate.NewWriterDict(&buf, flate.BestCompression, window)
		w.Write(m)
		w.Close()
		payload := buf.Bytes()
		if i == 1 && len(payload) > 50 {
			t.Fatalf("the repeat compressed to %d bytes: it does not use the window", len(payload))
		}
		if got := receiveOne(t, p, compressedFrames(frame.OpText, payload, 0), 0); got != string(m) {
			t.Fatalf("message %d ending with BFINAL: inflated to %.20q…", i, got)
		}
		window = append(window, m...)
	}
	// Bytes after the final block are ignored, as compress/flate ignores them.
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestSpeed)
	w.Write([]byte("done"))
	w.Close()
	buf.WriteString("trailing")
	if got := receiveOne(t, p, compressedFrames(frame.OpText, buf.Bytes(), 0), 0); got != "done" {
		t.Fatalf("inflated to %q", got)
	}
}

// compress returns payload compressed with compress/flate at level 1, as one
// permessage-deflate message.
func compress(t *testing.T, payload []byte) []byte {
	t.Helper()
	return stdDeflate(t, flate.BestSpeed, false, payload)[0]
}

// wantCloseFrame checks that p failed with err's code and queued one close
// frame carrying it.
func wantCloseFrame(t *testing.T, p *Protocol, err error, code frame.CloseCode) {
	t.Helper()
	wantCode(t, err, code)
	r := replies(t, p)
	if len(r) != 1 || r[0].h.Op != frame.OpClose {
		t.Fatalf("replies %v, want one close frame", r)
	}
	got, reason, perr := frame.ParseClose([]byte(r[0].payload))
	if perr != nil || got != code || len(reason) == 0 {
		t.Fatalf("close frame %v %q (%v), want code %d", got, reason, perr, code)
	}
	if c, _, ok := p.CloseReason(); !ok || c != code || p.State() != StateClosed {
		t.Fatalf("CloseReason %v %v, state %v", c, ok, p.State())
	}
}

func TestDeflateViolationsSendTheirCloseCode(t *testing.T) {
	withRsv := func(op frame.Opcode, fin bool, rsv byte, payload []byte) []byte {
		e := Encoder{Role: Client}
		return e.AppendFrame(nil, frame.Header{Fin: fin, Rsv: rsv, Op: op}, payload)
	}
	hello := compress(t, []byte("hello, hello, hello"))
	def := &PerMessageDeflate{}
	tests := []struct {
		name    string
		deflate *PerMessageDeflate // nil: not negotiated
		cfg     Config
		in      []byte
		code    frame.CloseCode
		err     error // nil: any error of that code
	}{
		{"RSV1 without deflate", nil, Config{}, withRsv(frame.OpText, true, frame.RSV1, hello), 1002, ErrReservedBits},
		{"RSV1 on a continuation", def, Config{}, concat(
			withRsv(frame.OpText, false, frame.RSV1, hello[:3]),
			withRsv(frame.OpContinuation, true, frame.RSV1, hello[3:])), 1002, ErrRsvOnContinuation},
		{"RSV1 on a continuation of an uncompressed message", def, Config{}, concat(
			withRsv(frame.OpBinary, false, 0, []byte("a")),
			withRsv(frame.OpContinuation, true, frame.RSV1, hello)), 1002, ErrRsvOnContinuation},
		{"RSV1 on a ping", def, Config{}, withRsv(frame.OpPing, true, frame.RSV1, nil), 1002, ErrRsvOnContinuation},
		{"RSV1 on a pong", def, Config{}, withRsv(frame.OpPong, true, frame.RSV1, nil), 1002, ErrRsvOnContinuation},
		{"RSV1 on a close", def, Config{}, withRsv(frame.OpClose, true, frame.RSV1, []byte{3, 0xe8}), 1002, ErrRsvOnContinuation},
		{"RSV2 with deflate only", def, Config{}, withRsv(frame.OpText, true, frame.RSV2, []byte("x")), 1002, ErrReservedBits},
		{"RSV3 with deflate only", def, Config{}, withRsv(frame.OpText, true, frame.RSV3, []byte("x")), 1002, ErrReservedBits},
		{"RSV1 and RSV2", def, Config{}, withRsv(frame.OpText, true, frame.RSV1|frame.RSV2, hello), 1002, ErrReservedBits},
		{"reserved block type", def, Config{}, withRsv(frame.OpBinary, true, frame.RSV1, []byte{0x07, 0xff}), 1002, ErrCorruptDeflate},
		{"all ones", def, Config{}, withRsv(frame.OpBinary, true, frame.RSV1, bytes.Repeat([]byte{0xff}, 20)), 1002, ErrCorruptDeflate},
		{"stored block length mismatch", def, Config{}, withRsv(frame.OpBinary, true, frame.RSV1, []byte{0x00, 0x05, 0x00, 0x00, 0x00, 'a'}), 1002, ErrCorruptDeflate},
		{"distance before the start", def, Config{}, withRsv(frame.OpBinary, true, frame.RSV1, []byte{0x02, 0x02, 0x00}), 1002, ErrCorruptDeflate},
		{"text inflating to invalid UTF-8", def, Config{}, withRsv(frame.OpText, true, frame.RSV1, compress(t, []byte("ok \xff\xfe not ok"))), 1007, ErrInvalidUTF8},
		{"text inflating to a cut rune", def, Config{}, withRsv(frame.OpText, true, frame.RSV1, compress(t, []byte("euro \xe2\x82"))), 1007, ErrInvalidUTF8},
		{"fragmented text inflating to invalid UTF-8", def, Config{}, compressedFrames(frame.OpText, compress(t, bytes.Repeat([]byte("\xc0\xaf"), 500)), 10), 1007, ErrInvalidUTF8},
		{"inflating past MaxInflatedSize", &PerMessageDeflate{MaxInflatedSize: 1000}, Config{}, withRsv(frame.OpBinary, true, frame.RSV1, compress(t, make([]byte, 1001))), 1009, nil},
		{"inflating past MaxMessageSize", def, Config{MaxMessageSize: 1000}, withRsv(frame.OpBinary, true, frame.RSV1, compress(t, make([]byte, 1001))), 1009, nil},
	}
	for _, tt := range tests {
		for _, size := range []int{0, 1} {
			var p *Protocol
			if tt.deflate == nil {
				p = NewProtocol(tt.cfg)
				t.Cleanup(func() { p.Release() })
			} else {
				p = deflateServer(t, *tt.deflate, "permessage-deflate", tt.cfg)
			}
			evs, err := feed(p, tt.in, size)
			if len(evs) != 0 {
				t.Fatalf("%s: events %+v", tt.name, evs)
			}
			if tt.err != nil && err != tt.err {
				t.Fatalf("%s: error %v, want %v", tt.name, err, tt.err)
			}
			wantCloseFrame(t, p, err, tt.code)
		}
	}
}

func TestDeflateLimitIsInclusive(t *testing.T) {
	for _, tt := range []struct {
		name string
		d    PerMessageDeflate
		cfg  Config
	}{
		{"MaxInflatedSize", PerMessageDeflate{MaxInflatedSize: 4096}, Config{}},
		{"MaxMessageSize", PerMessageDeflate{}, Config{MaxMessageSize: 4096}},
		{"the smaller of both", PerMessageDeflate{MaxInflatedSize: 8192}, Config{MaxMessageSize: 4096}},
		{"the smaller of both", PerMessageDeflate{MaxInflatedSize: 4096}, Config{MaxMessageSize: 8192}},
		{"MaxInflatedSize without a message limit", PerMessageDeflate{MaxInflatedSize: 4096}, Config{MaxMessageSize: -1}},
	} {
		msg := jsonText(0, 4096)
		p := deflateServer(t, tt.d, "permessage-deflate", tt.cfg)
		if got := receiveOne(t, p, compressedFrames(frame.OpBinary, compress(t, msg), 0), 0); got != string(msg) {
			t.Fatalf("%s: a message at the limit inflated to %d bytes", tt.name, len(got))
		}
		_, err := feed(p, compressedFrames(frame.OpBinary, compress(t, append(msg, 'x')), 0), 0)
		wantCloseFrame(t, p, err, frame.CloseMessageTooBig)
	}
}

var bomb struct {
	once    sync.Once
	payload []byte
}

const bombSize = 100 << 20

// zeroBomb returns 100 MiB of zeros compressed, about 100 KiB. Once the
// window holds only zeros, each further MiB compresses to the same bytes,
// so the bomb repeats them rather than compressing 100 MiB.
func zeroBomb(t *testing.T) []byte {
	bomb.once.Do(func() {
		var buf bytes.Buffer
		w, _ := flate.NewWriter(&buf, flate.BestCompression)
		zeros := make([]byte, 1<<20)
		var chunks [][]byte
		for range 3 {
			w.Write(zeros)
			w.Flush()
			chunks = append(chunks, bytes.Clone(buf.Bytes()))
			buf.Reset()
		}
		if !bytes.Equal(chunks[1], chunks[2]) {
			return
		}
		p := chunks[0]
		for range bombSize>>20 - 1 {
			p = append(p, chunks[1]...)
		}
		bomb.payload = p[:len(p)-4]
	})
	if bomb.payload == nil {
		t.Fatal("compress/flate compressed the second and third MiB of zeros differently")
	}
	return bomb.payload
}

// A decompression bomb fails with 1009 as soon as it passes the limit,
// without inflating the rest.
func TestDeflateBomb(t *testing.T) {
	payload := zeroBomb(t)
	if len(payload) > 200<<10 {
		t.Fatalf("the bomb is %d bytes", len(payload))
	}
	if !race.Enabled {
		n, err := io.Copy(io.Discard, flate.NewReader(io.MultiReader(bytes.NewReader(payload), bytes.NewReader([]byte{0, 0, 0xff, 0xff}))))
		if n != bombSize || err != io.ErrUnexpectedEOF {
			t.Fatalf("the bomb inflates to %d bytes, %v", n, err)
		}
	}
	in := compressedFrames(frame.OpBinary, payload, 0)
	for _, tt := range []struct {
		name  string
		d     PerMessageDeflate
		cfg   Config
		limit int64
	}{
		{"MaxInflatedSize 64 KiB", PerMessageDeflate{MaxInflatedSize: 64 << 10}, Config{}, 64 << 10},
		{"MaxMessageSize 1 MiB", PerMessageDeflate{}, Config{MaxMessageSize: 1 << 20}, 1 << 20},
		{"default MaxMessageSize", PerMessageDeflate{}, Config{}, DefaultMaxMessageSize},
		{"no MaxMessageSize, MaxInflatedSize 1 MiB", PerMessageDeflate{MaxInflatedSize: 1 << 20}, Config{MaxMessageSize: -1}, 1 << 20},
	} {
		p := deflateServer(t, tt.d, "permessage-deflate", tt.cfg)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := feed(p, in, 0)
		runtime.ReadMemStats(&after)
		wantCloseFrame(t, p, err, frame.CloseMessageTooBig)
		// The input is cloned by feed; past that, memory follows the limit:
		// an output buffer growing by doubling up to limit+1 bytes costs
		// twice the limit in all.
		spent := int64(after.TotalAlloc-before.TotalAlloc) - int64(len(in))
		if bound := tt.limit*5/2 + 1<<20; spent > bound {
			t.Errorf("%s: inflating the bomb allocated %d bytes, more than %d for a limit of %d", tt.name, spent, bound, tt.limit)
		}
		t.Logf("%s: %d bytes allocated to refuse a bomb of %d", tt.name, spent, bombSize)
	}
}

func TestDeflateThreshold(t *testing.T) {
	sp, cp, _ := newPair(t, []Extension{&PerMessageDeflate{Threshold: 100}}, []Extension{&PerMessageDeflate{Threshold: 1000}}, Config{})
	for _, tt := range []struct {
		from, to   *Protocol
		size       int
		compressed bool
	}{
		{sp, cp, 99, false},
		{sp, cp, 100, true},
		{sp, cp, 5000, true},
		{cp, sp, 999, false},
		{cp, sp, 1000, true},
	} {
		msg := bytes.Repeat([]byte("a"), tt.size)
		wire, _ := transfer(t, tt.from, tt.to, frame.OpText, msg)
		if f := wireFrames(t, tt.from, wire); (f[0].h.Rsv == frame.RSV1) != tt.compressed {
			t.Errorf("%v sending %d bytes: RSV %#x, compressed %v", tt.from.cfg.Role, tt.size, f[0].h.Rsv, tt.compressed)
		}
	}
}

func TestDeflateCompressIf(t *testing.T) {
	type call struct {
		op   frame.Opcode
		size int
	}
	var calls []call
	server := &PerMessageDeflate{Threshold: 10, CompressIf: func(op frame.Opcode, p []byte) bool {
		calls = append(calls, call{op, len(p)})
		return op == frame.OpText && !bytes.HasPrefix(p, []byte("raw:"))
	}}
	sp, cp, _ := newPair(t, []Extension{server}, []Extension{&PerMessageDeflate{}}, Config{})
	for _, tt := range []struct {
		op         frame.Opcode
		msg        string
		compressed bool
	}{
		{frame.OpText, strings.Repeat("text ", 100), true},
		{frame.OpBinary, strings.Repeat("data ", 100), false},
		{frame.OpText, "raw:" + strings.Repeat("text ", 100), false},
		{frame.OpText, "short", false}, // under the threshold: not asked
	} {
		wire, _ := transfer(t, sp, cp, tt.op, []byte(tt.msg))
		if f := wireFrames(t, sp, wire); (f[0].h.Rsv == frame.RSV1) != tt.compressed {
			t.Errorf("%v %.10q…: RSV %#x, want compressed %v", tt.op, tt.msg, f[0].h.Rsv, tt.compressed)
		}
	}
	want := []call{{frame.OpText, 500}, {frame.OpBinary, 500}, {frame.OpText, 504}}
	if fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Fatalf("CompressIf calls %v, want %v", calls, want)
	}
}

// compressedSize returns the size of msg compressed by a server with d.
func compressedSize(t *testing.T, d PerMessageDeflate, msg []byte) int {
	t.Helper()
	sp, cp, _ := newPair(t, []Extension{&d}, []Extension{&PerMessageDeflate{}}, Config{})
	wire, _ := transfer(t, sp, cp, frame.OpBinary, msg)
	f := wireFrames(t, sp, wire)
	if f[0].h.Rsv != frame.RSV1 {
		t.Fatalf("%+v: sent uncompressed", d)
	}
	return len(f[0].payload)
}

func TestDeflateLevel(t *testing.T) {
	text := jsonText(0, 64<<10)
	repeats := bytes.Repeat([]byte("abcdefgh"), 8<<10)
	one := compressedSize(t, PerMessageDeflate{Level: 1}, text)
	if zero := compressedSize(t, PerMessageDeflate{}, text); zero != one {
		t.Errorf("level 0 gave %d bytes, level 1 %d: 0 means 1", zero, one)
	}
	if nine := compressedSize(t, PerMessageDeflate{Level: 9}, text); nine >= one {
		t.Errorf("level 9 gave %d bytes, level 1 %d", nine, one)
	}
	// Huffman coding alone finds no repeats: about 3 bits per byte here.
	if huff, lz := compressedSize(t, PerMessageDeflate{Level: flate.HuffmanOnly}, repeats), compressedSize(t, PerMessageDeflate{Level: 1}, repeats); huff < len(repeats)/4 || lz > len(repeats)/50 {
		t.Errorf("%d bytes: HuffmanOnly gave %d, level 1 %d", len(repeats), huff, lz)
	}
}

// Below 15 window bits, levels 2–9 use klauspost's windowed compressor,
// which has one level, as Level's documentation says; level 1 is ours at
// any window, and HuffmanOnly stays Huffman-only.
func TestDeflateLevelWithBoundedWindow(t *testing.T) {
	text := jsonText(0, 64<<10)
	repeats := bytes.Repeat([]byte("abcdefgh"), 8<<10)
	for _, bits := range []int{9, 12} {
		two := compressedSize(t, PerMessageDeflate{Level: 2, ServerMaxWindowBits: bits}, text)
		nine := compressedSize(t, PerMessageDeflate{Level: 9, ServerMaxWindowBits: bits}, text)
		huff := compressedSize(t, PerMessageDeflate{Level: flate.HuffmanOnly, ServerMaxWindowBits: bits}, repeats)
		lz := compressedSize(t, PerMessageDeflate{ServerMaxWindowBits: bits}, repeats)
		if nine != two || huff < len(repeats)/4 || lz > len(repeats)/50 {
			t.Errorf("%d-bit window: level 2 gave %d bytes, level 9 %d; %d repeats: HuffmanOnly %d, level 1 %d", bits, two, nine, len(repeats), huff, lz)
		}
	}
}

func TestDeflateValidate(t *testing.T) {
	for _, tt := range []struct {
		d  PerMessageDeflate
		ok bool
	}{
		{PerMessageDeflate{}, true},
		{PerMessageDeflate{Level: 1}, true},
		{PerMessageDeflate{Level: 9}, true},
		{PerMessageDeflate{Level: flate.HuffmanOnly}, true},
		{PerMessageDeflate{ServerMaxWindowBits: 8, ClientMaxWindowBits: 15, Threshold: 1, MaxInflatedSize: 1}, true},
		{PerMessageDeflate{Level: 10}, false},
		{PerMessageDeflate{Level: -1}, false},
		{PerMessageDeflate{Level: -3}, false},
		{PerMessageDeflate{Threshold: -1}, false},
		{PerMessageDeflate{MaxInflatedSize: -1}, false},
		{PerMessageDeflate{ServerMaxWindowBits: 7}, false},
		{PerMessageDeflate{ServerMaxWindowBits: 16}, false},
		{PerMessageDeflate{ClientMaxWindowBits: -8}, false},
		{PerMessageDeflate{ClientMaxWindowBits: 1}, false},
	} {
		if err := tt.d.Validate(); (err == nil) != tt.ok {
			t.Errorf("Validate(%+v) = %v, want ok %v", tt.d, err, tt.ok)
		}
	}
}

// An echo server's steady state: receive a compressed message, send it
// back compressed, with no allocation: with the windowed compressor of the
// zero value (one block and, at 40 KiB, two), a kept compressor, a pooled
// one primed with the history (level 6), and without context takeover.
func TestDeflateEchoDoesNotAllocate(t *testing.T) {
	if race.Enabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	const warm, runs = 200, 1000
	for _, tt := range []struct {
		name string
		d    PerMessageDeflate
	}{
		{"takeover", PerMessageDeflate{}},
		{"kept", PerMessageDeflate{KeepCompressor: true}},
		{"level 6", PerMessageDeflate{Level: 6}},
		{"no takeover", PerMessageDeflate{ServerNoContextTakeover: true, ClientNoContextTakeover: true}},
	} {
		for _, size := range []int{100, 1024, 40 << 10} {
			t.Run(fmt.Sprintf("%s/%d", tt.name, size), func(t *testing.T) {
				sp, cp, _ := newPair(t, []Extension{&tt.d}, []Extension{&tt.d}, Config{})
				frames := make([][]byte, warm+1+runs)
				for i := range frames {
					var err error
					frames[i], err = cp.AppendMessage(nil, frame.OpText, 0, jsonText(i, size))
					if err != nil || frames[i][0]&frame.RSV1 == 0 {
						t.Fatalf("client frame %d: % .4x, %v", i, frames[i][:4], err)
					}
				}
				in := make([]byte, 2*size+64)
				out := make([]byte, 0, 2*size+64)
				i := 0
				echo := func() {
					n := copy(in, frames[i])
					i++
					ev, k, ok, err := sp.Receive(in[:n])
					if !ok || err != nil || k != n || len(ev.Payload) < size-4 {
						t.Fatalf("message %d: %d of %d bytes, %v, %v", i, k, n, ok, err)
					}
					out, _ = sp.AppendMessage(out[:0], ev.Op, 0, ev.Payload)
					if out[0]&frame.RSV1 == 0 {
						t.Fatalf("message %d echoed uncompressed", i)
					}
				}
				for range warm {
					echo()
				}
				if allocs := testing.AllocsPerRun(runs, echo); allocs != 0 {
					t.Errorf("%.1f allocations per echoed message", allocs)
				}
			})
		}
	}
}

// Every pooled buffer goes back: after messages, errors and Release, the
// pool lends what it lent before.
func TestDeflateReturnsPooledBuffers(t *testing.T) {
	base := bufpool.Lent()
	for _, fragment := range []int{0, 500} {
		for _, takeover := range []bool{true, false} {
			d := &PerMessageDeflate{ServerNoContextTakeover: !takeover, ClientNoContextTakeover: !takeover}
			_, sn, cn := negotiate(t, []Extension{d}, []Extension{d})
			sp := NewProtocol(Config{Role: Server, Extensions: sn, FragmentSize: fragment})
			cp := NewProtocol(Config{Role: Client, Extensions: cn, FragmentSize: fragment})
			for i, size := range []int{0, 10, 1000, 5000, 100 << 10} {
				for _, msg := range [][]byte{jsonText(i, size), randomBytes(uint64(i), size)} {
					transfer(t, sp, cp, frame.OpBinary, msg)
					transfer(t, cp, sp, frame.OpBinary, msg)
				}
			}
			// A message kept past the next Receive, then given back.
			wire, _ := cp.AppendMessage(nil, frame.OpText, 0, jsonText(0, 3000))
			wire = append(wire, clientFrame(frame.OpPing, true, nil)...)
			ev, n, ok, err := sp.Receive(wire)
			if !ok || err != nil {
				t.Fatal(ok, err)
			}
			kept := bytes.Clone(ev.Payload)
			bufs := sp.DetachMessage()
			if _, _, ok, err := sp.Receive(wire[n:]); !ok || err != nil || !bytes.Equal(ev.Payload, kept) {
				t.Fatalf("detached message changed: %v, %v", ok, err)
			}
			for _, b := range bufs {
				ReturnBuffer(b)
			}
			// A failure with buffers in use.
			bad := compressedFrames(frame.OpText, compress(t, []byte("\xff\xff\xff")), 0)
			if _, err := feed(sp, bad, 0); err == nil {
				t.Fatal("invalid text accepted")
			}
			sp.AppendReplies(nil)
			sp.Release()
			cp.Release()
			if n := bufpool.Lent(); n != base {
				t.Fatalf("fragment %d, takeover %v: %d buffers still lent after Release", fragment, takeover, n-base)
			}
		}
	}
}
