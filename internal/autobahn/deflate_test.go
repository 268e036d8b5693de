package autobahn

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestOfferHeader(t *testing.T) {
	const base = "permessage-deflate; client_no_context_takeover; client_max_window_bits"
	tests := []struct {
		offers []deflateOffer
		want   string
	}{
		{nil, ""},
		{[]deflateOffer{autobahnOffer(false, 0)}, base},
		{[]deflateOffer{autobahnOffer(true, 0)}, base + "; server_no_context_takeover"},
		{[]deflateOffer{autobahnOffer(false, 8)}, base + "; server_max_window_bits=8"},
		{[]deflateOffer{autobahnOffer(false, 15)}, base + "; server_max_window_bits=15"},
		{[]deflateOffer{autobahnOffer(true, 8)}, base + "; server_no_context_takeover; server_max_window_bits=8"},
		{[]deflateOffer{autobahnOffer(true, 15)}, base + "; server_no_context_takeover; server_max_window_bits=15"},
		{deflateGroups13[6], base + "; server_no_context_takeover; server_max_window_bits=8, " +
			base + "; server_no_context_takeover, " + base},
		{[]deflateOffer{{}}, "permessage-deflate"},
	}
	for _, tc := range tests {
		if got := offerHeader(tc.offers); got != tc.want {
			t.Errorf("offerHeader(%v) =\n%q, want\n%q", offerPairs(tc.offers), got, tc.want)
		}
	}
	// Every header we send must parse back to what it says.
	for _, offers := range deflateGroups13 {
		els, err := parseExtensions([]string{offerHeader(offers)})
		if err != nil || len(els) != len(offers) {
			t.Errorf("%q parses to %v, %v", offerHeader(offers), els, err)
		}
	}
}

func TestParseExtensions(t *testing.T) {
	tests := []struct {
		in   []string
		want string // elements as name[params]
		err  bool
	}{
		{[]string{"permessage-deflate"}, "permessage-deflate[]", false},
		{[]string{" permessage-deflate ;server_max_window_bits = 10 ; client_no_context_takeover "},
			"permessage-deflate[server_max_window_bits=10 client_no_context_takeover]", false},
		{[]string{`permessage-deflate; server_max_window_bits="10"`}, "permessage-deflate[server_max_window_bits=10]", false},
		{[]string{`permessage-deflate; server_max_window_bits="1\0"`}, "permessage-deflate[server_max_window_bits=10]", false},
		{[]string{"a, b; x=1", "c"}, "a[] b[x=1] c[]", false},
		{[]string{", a,, b ,"}, "a[] b[]", false},
		{[]string{""}, "", false},
		{[]string{"permessage-deflate;"}, "", true},
		{[]string{"permessage-deflate; =1"}, "", true},
		{[]string{"permessage-deflate; x="}, "", true},
		{[]string{`permessage-deflate; x="1 0"`}, "", true},
		{[]string{`permessage-deflate; x=""`}, "", true},
		{[]string{`permessage-deflate; x="10`}, "", true},
		{[]string{"permessage-deflate x"}, "", true},
		{[]string{"permessage-deflate; x=1 2"}, "", true},
		{[]string{"; x"}, "", true},
	}
	for _, tc := range tests {
		els, err := parseExtensions(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("parseExtensions(%q): error %v, want error %v", tc.in, err, tc.err)
			continue
		}
		var parts []string
		for _, el := range els {
			var ps []string
			for _, p := range el.params {
				if p.hasValue {
					ps = append(ps, p.name+"="+p.value)
				} else {
					ps = append(ps, p.name)
				}
			}
			parts = append(parts, el.name+"["+strings.Join(ps, " ")+"]")
		}
		if got := strings.Join(parts, " "); err == nil && got != tc.want {
			t.Errorf("parseExtensions(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestNegotiate runs server responses through the RFC 7692 §7 checks: each
// is accepted with the parameters shown, declined ("-"), or fails the
// connection with an error that names the problem.
func TestNegotiate(t *testing.T) {
	plain := []deflateOffer{autobahnOffer(false, 0)}
	noCtx := []deflateOffer{autobahnOffer(true, 0)}
	bits8 := []deflateOffer{autobahnOffer(false, 8)}
	bits15 := []deflateOffer{autobahnOffer(true, 15)}
	three := deflateGroups13[6]
	bare := []deflateOffer{{}} // "permessage-deflate" alone
	const pmd = "permessage-deflate"
	tests := []struct {
		offers []deflateOffer
		resp   []string
		want   string // deflateParams.String() with the offer number, "-" or an error substring
	}{
		// Accepted.
		{plain, []string{pmd}, "1: server window 2^15, client window 2^15"},
		{plain, []string{pmd + "; client_no_context_takeover"}, "1: server window 2^15, client window 2^15 without context takeover"},
		{plain, []string{pmd + "; server_no_context_takeover"}, "1: server window 2^15 without context takeover, client window 2^15"}, // MAY, unasked
		{plain, []string{pmd + "; server_max_window_bits=12"}, "1: server window 2^12, client window 2^15"},                           // MAY, unasked
		{plain, []string{pmd + "; client_max_window_bits=9"}, "1: server window 2^15, client window 2^9"},
		{plain, []string{pmd + `; client_max_window_bits="10"`}, "1: server window 2^15, client window 2^10"},
		{plain, []string{"  permessage-deflate ;  client_max_window_bits = 8 "}, "1: server window 2^15, client window 2^8"},
		{noCtx, []string{pmd + "; server_no_context_takeover; client_no_context_takeover"}, "1: server window 2^15 without context takeover, client window 2^15 without context takeover"},
		{bits8, []string{pmd + "; server_max_window_bits=8"}, "1: server window 2^8, client window 2^15"},
		{bits15, []string{pmd + "; server_no_context_takeover; server_max_window_bits=11"}, "1: server window 2^11 without context takeover, client window 2^15"},
		{three, []string{pmd + "; server_no_context_takeover; server_max_window_bits=8"}, "1: server window 2^8 without context takeover"},
		{three, []string{pmd + "; server_no_context_takeover"}, "2: server window 2^15 without context takeover"},
		{three, []string{pmd}, "3: server window 2^15, client window 2^15"},
		{three, []string{pmd + "; server_max_window_bits=8"}, "3: server window 2^8"},
		// Declined.
		{plain, nil, "-"},
		{plain, []string{""}, "-"},
		{plain, []string{" , "}, "-"},
		// Not offered.
		{nil, []string{pmd}, "were not offered"},
		{plain, []string{"x-webkit-deflate-frame"}, `extension "x-webkit-deflate-frame" that was not offered`},
		{plain, []string{pmd + ", foo"}, `extension "foo" that was not offered`},
		{plain, []string{"Permessage-Deflate"}, `"Permessage-Deflate" that was not offered`},
		{plain, []string{pmd, pmd}, "permessage-deflate 2 times"},
		{plain, []string{pmd + ", " + pmd + "; server_no_context_takeover"}, "permessage-deflate 2 times"},
		// Bad parameters.
		{plain, []string{pmd + "; foo"}, `unknown parameter "foo"`},
		{plain, []string{pmd + "; Server_No_Context_Takeover"}, `unknown parameter "Server_No_Context_Takeover"`},
		{plain, []string{pmd + "; server_no_context_takeover; server_no_context_takeover"}, "server_no_context_takeover appears more than once"},
		{plain, []string{pmd + "; client_max_window_bits=10; client_max_window_bits=10"}, "client_max_window_bits appears more than once"},
		{plain, []string{pmd + "; server_no_context_takeover=1"}, "must have no value"},
		{plain, []string{pmd + "; client_no_context_takeover=true"}, "must have no value"},
		{plain, []string{pmd + "; client_max_window_bits"}, "needs a value in a response"},
		{plain, []string{pmd + "; server_max_window_bits"}, "needs a value in a response"},
		{plain, []string{pmd + "; server_max_window_bits=7"}, "from 8 to 15"},
		{plain, []string{pmd + "; server_max_window_bits=16"}, "from 8 to 15"},
		{plain, []string{pmd + "; server_max_window_bits=09"}, "without leading zeros"},
		{plain, []string{pmd + "; client_max_window_bits=010"}, "from 8 to 15"},
		{plain, []string{pmd + "; client_max_window_bits=+9"}, "from 8 to 15"},
		{plain, []string{pmd + "; client_max_window_bits=ten"}, "from 8 to 15"},
		{plain, []string{pmd + "; server_max_window_bits=10;"}, "malformed"},
		{plain, []string{pmd + `; server_max_window_bits="10`}, "malformed"},
		// No matching offer.
		{noCtx, []string{pmd}, "the offer asked for server_no_context_takeover and the response lacks it"},
		{bits8, []string{pmd}, "the offer asked for server_max_window_bits=8 and the response lacks it"},
		{bits8, []string{pmd + "; server_max_window_bits=9"}, "server_max_window_bits=9 exceeds the 8 offered"},
		{bits15, []string{pmd + "; server_max_window_bits=15"}, "server_no_context_takeover and the response lacks it"},
		{bare, []string{pmd + "; client_max_window_bits=15"}, "client_max_window_bits in the response, but the offer did not have it"},
		{three[:2], []string{pmd + "; server_max_window_bits=9"}, "accepts none of the 2 offers: offer 1: the offer asked for server_no_context_takeover"},
	}
	for _, tc := range tests {
		p, err := negotiate(tc.offers, tc.resp)
		var got string
		switch {
		case err != nil:
			if _, ok := err.(*negotiationError); !ok {
				t.Errorf("negotiate(%s, %q): error of type %T", offerPairs(tc.offers), tc.resp, err)
			}
			got = err.Error()
		case p == nil:
			got = "-"
		default:
			got = fmt.Sprintf("%d: %v", p.offer+1, p)
		}
		if !strings.Contains(got, tc.want) || (tc.want == "-") != (got == "-") {
			t.Errorf("negotiate(%s, %q) = %s, want %s", offerPairs(tc.offers), tc.resp, got, tc.want)
		}
	}
}

// TestCheckResponseDeflate checks the handshake with offers: the response's
// extension header goes through negotiate.
func TestCheckResponseDeflate(t *testing.T) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	const head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
	offers := []deflateOffer{autobahnOffer(false, 0)}
	if p, err := checkResponse([]byte(head), key, offers); p != nil || err != nil {
		t.Errorf("no extension header: %v, %v; want declined", p, err)
	}
	if p, err := checkResponse([]byte(head+"\r\nSec-WebSocket-Extensions: permessage-deflate;\r\n client_no_context_takeover"), key, offers); err == nil {
		t.Errorf("folded header: %v, want an error", p)
	}
	p, err := checkResponse([]byte(head+"\r\nsec-websocket-extensions: permessage-deflate; server_max_window_bits=9\r\nSec-WebSocket-Extensions: "), key, offers)
	if err != nil || p == nil || p.serverMaxWindowBits != 9 {
		t.Errorf("two header lines: %v, %v", p, err)
	}
	if _, err := checkResponse([]byte(head+"\r\nSec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Extensions: permessage-deflate"), key, offers); err == nil {
		t.Error("two acceptances in two header lines: no error")
	}
}

// corpusMessages cuts n messages of size bytes from a corpus, as a case does.
func corpusMessages(c *corpus, n, size int) [][]byte {
	var ms [][]byte
	for i, pos := 0, 0; i < n; i, pos = i+1, (pos+size)%c.size {
		ms = append(ms, cyclicSlice(c.bytes(), pos, size))
	}
	return ms
}

// TestDeflaterRoundTrip compresses messages with our deflater and inflates
// them with compress/flate directly: with context takeover the messages form
// one DEFLATE stream, cut at sync flushes; without it each stands alone; and
// with a client window below 15 each also stands alone, as Huffman-only
// blocks refer to nothing before them.
func TestDeflaterRoundTrip(t *testing.T) {
	msgs := append(corpusMessages(corpusText, 40, 3000), []byte{}, []byte("x"))
	msgs = append(msgs, corpusMessages(corpusJSON, 20, 40000)...)
	for _, p := range []deflateParams{
		{serverMaxWindowBits: 15, clientMaxWindowBits: 15},
		{serverMaxWindowBits: 15, clientMaxWindowBits: 15, clientNoContextTakeover: true},
		{serverMaxWindowBits: 15, clientMaxWindowBits: 9},
		{serverMaxWindowBits: 15, clientMaxWindowBits: 8, clientNoContextTakeover: true},
	} {
		t.Run(p.String(), func(t *testing.T) {
			d := newDeflater(&p)
			var stream []byte
			total, wire := 0, 0
			for i, m := range msgs {
				c := d.compress(m)
				total, wire = total+len(m), wire+len(c)
				if bytes.HasSuffix(c, syncTail) {
					t.Fatalf("message %d keeps its 00 00 ff ff", i)
				}
				stream = append(append(stream, c...), syncTail...)
				if p.clientNoContextTakeover || p.clientMaxWindowBits < 15 {
					if got := inflateAlone(t, c); !bytes.Equal(got, m) {
						t.Fatalf("message %d alone inflates to %d bytes, want %d", i, len(got), len(m))
					}
				}
			}
			got, err := io.ReadAll(flate.NewReader(bytes.NewReader(append(stream, finalBlock...))))
			if err != nil || !bytes.Equal(got, bytes.Join(msgs, nil)) {
				t.Fatalf("the stream inflates to %d bytes (%v), want %d", len(got), err, len(bytes.Join(msgs, nil)))
			}
			if wire >= total {
				t.Errorf("%d bytes compressed to %d", total, wire)
			}
		})
	}
}

func inflateAlone(t *testing.T, c []byte) []byte {
	t.Helper()
	b, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(c), bytes.NewReader(syncTail), bytes.NewReader(finalBlock))))
	if err != nil {
		t.Fatalf("inflating alone: %v", err)
	}
	return b
}

// serverStream compresses messages as a server with compress/flate would:
// one writer, a sync flush per message, the 00 00 ff ff removed; with
// noContext, a new stream per message.
func serverStream(msgs [][]byte, level int, noContext bool) [][]byte {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, level)
	var out [][]byte
	for _, m := range msgs {
		if noContext {
			w.Reset(&buf)
		}
		w.Write(m)
		w.Flush()
		b := buf.Bytes()
		out = append(out, bytes.Clone(b[:len(b)-4]))
		buf.Reset()
	}
	return out
}

// TestInflater feeds the inflater what compress/flate writes as a server.
func TestInflater(t *testing.T) {
	msgs := append(corpusMessages(corpusHTML, 30, 5000), []byte{}, []byte("y"))
	msgs = append(msgs, corpusMessages(corpusBMP, 10, 70000)...)
	for _, noCtx := range []bool{false, true} {
		for _, level := range []int{flate.BestSpeed, flate.DefaultCompression, flate.NoCompression} {
			f := newInflater(&deflateParams{serverMaxWindowBits: 15, serverNoContextTakeover: noCtx})
			for i, c := range serverStream(msgs, level, noCtx) {
				got, err := f.inflate(c, 1<<20)
				if err != nil || !bytes.Equal(got, msgs[i]) {
					t.Fatalf("noContext %v level %d: message %d inflates to %d bytes (%v), want %d", noCtx, level, i, len(got), err, len(msgs[i]))
				}
			}
		}
	}

	var final bytes.Buffer
	fw, _ := flate.NewWriter(&final, flate.BestCompression)
	fw.Write([]byte("Hello"))
	fw.Close()
	var mid bytes.Buffer
	mw, _ := flate.NewWriter(&mid, flate.BestCompression)
	mw.Write([]byte("Hel"))
	mw.Flush()
	mw.Write([]byte("lo"))
	mw.Flush()
	twoFlushes := mid.Bytes()[:mid.Len()-4]
	f := newInflater(&deflateParams{serverMaxWindowBits: 15})
	for _, tc := range []struct {
		name string
		in   []byte
		want string
		err  bool
	}{
		{"empty payload: never what a compressor writes", nil, "", true},
		{"a single 00 (RFC 7692 §7.2.3.6)", []byte{0}, "", false},
		{"ends with a final block", final.Bytes(), "Hello", false},
		{"RFC 7692 §7.2.3.1", []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, "Hello", false},
		{"keeps its 00 00 ff ff", []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff}, "", true},
		{"flushed in the middle", twoFlushes, "Hello", false},
		{"truncated", []byte{0xf2, 0x48, 0xcd}, "", true},
		{"reserved block type", []byte{0x07}, "", true},
	} {
		got, err := f.inflate(tc.in, 100)
		if (err != nil) != tc.err || err == nil && string(got) != tc.want {
			t.Errorf("%s: %q, %v; want %q, error %v", tc.name, got, err, tc.want, tc.err)
		}
		f = newInflater(&deflateParams{serverMaxWindowBits: 15})
	}
	big := serverStream([][]byte{bytes.Repeat([]byte("z"), 1000)}, flate.BestCompression, false)[0]
	if _, err := f.inflate(big, 999); err == nil || !strings.Contains(err.Error(), "more than 999 bytes") {
		t.Errorf("a 1000-byte message with a limit of 999: %v", err)
	}
}

// TestInflaterWindow checks that the window kept between messages is the
// negotiated one: a back-reference into the previous message farther than
// 2^server_max_window_bits fails; a nearer one works.
func TestInflaterWindow(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	first := make([]byte, 1000)
	for i := range first {
		first[i] = byte(r.IntN(256))
	}
	// The second message repeats the first 100 bytes of the first, 1000
	// bytes back, and then its last 100 bytes, 100 bytes back.
	second := append(bytes.Clone(first[:100]), first[900:]...)
	cs := serverStream([][]byte{first, second}, flate.BestCompression, false)
	if len(cs[1]) > 50 {
		t.Fatalf("the second message compresses to %d bytes: no back-references", len(cs[1]))
	}
	for bits, ok := range map[int]bool{9: false, 10: true, 15: true} {
		f := newInflater(&deflateParams{serverMaxWindowBits: bits})
		if _, err := f.inflate(cs[0], 1<<20); err != nil {
			t.Fatal(err)
		}
		got, err := f.inflate(cs[1], 1<<20)
		if ok && (err != nil || !bytes.Equal(got, second)) || !ok && err == nil {
			t.Errorf("window 2^%d: %d bytes, %v; want ok %v", bits, len(got), err, ok)
		}
	}
	// Without context takeover nothing is kept.
	f := newInflater(&deflateParams{serverMaxWindowBits: 15, serverNoContextTakeover: true})
	f.inflate(cs[0], 1<<20)
	if _, err := f.inflate(cs[1], 1<<20); err == nil {
		t.Error("server_no_context_takeover: a reference into the previous message inflated")
	}
}

func TestInflaterRemember(t *testing.T) {
	f := &inflater{size: 8}
	for _, tc := range []struct{ in, want string }{
		{"abc", "abc"}, {"defgh", "abcdefgh"}, {"ij", "cdefghij"}, {"0123456789", "23456789"}, {"", "23456789"}, {"x", "3456789x"},
	} {
		f.remember([]byte(tc.in))
		if string(f.window) != tc.want {
			t.Errorf("after %q: window %q, want %q", tc.in, f.window, tc.want)
		}
	}
}

func TestCorpora(t *testing.T) {
	for _, c := range corpora12 {
		d := c.bytes()
		if len(d) != c.size {
			t.Errorf("%s: %d bytes, want %d", c.kind, len(d), c.size)
		}
		if !c.binary {
			for i, b := range d {
				if b >= 0x80 {
					t.Errorf("%s: byte %d is %#x; text corpora must be ASCII", c.kind, i, b)
					break
				}
			}
		}
		if c.gen(c.size)[c.size/2] != d[c.size/2] {
			t.Errorf("%s is not deterministic", c.kind)
		}
	}
	if got := cyclicSlice([]byte("abcdef"), 4, 9); string(got) != "efabcdefa" {
		t.Errorf("cyclicSlice = %q", got)
	}
}
