package codec

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/wskit/wskit/frame"
)

func TestParseExtensions(t *testing.T) {
	pmd := func(params ...Param) ExtensionOffer {
		return ExtensionOffer{Name: "permessage-deflate", Params: params}
	}
	tests := []struct {
		name   string
		values []string
		want   []ExtensionOffer
	}{
		{"none", nil, nil},
		{"empty value", []string{""}, nil},
		{"only commas", []string{" , ,, "}, nil},
		{"bare name", []string{"permessage-deflate"}, []ExtensionOffer{pmd()}},
		{"bare param", []string{"permessage-deflate; client_max_window_bits"},
			[]ExtensionOffer{pmd(Param{Name: "client_max_window_bits"})}},
		{"alternatives", []string{"permessage-deflate; server_max_window_bits=10; client_no_context_takeover, permessage-deflate"},
			[]ExtensionOffer{pmd(Param{"server_max_window_bits", "10"}, Param{Name: "client_no_context_takeover"}), pmd()}},
		{"several fields", []string{"a; x=1", "b", "c; y"},
			[]ExtensionOffer{{"a", []Param{{"x", "1"}}}, {Name: "b"}, {"c", []Param{{Name: "y"}}}}},
		{"quoted values", []string{`x; a="10"; b="to\ken"`},
			[]ExtensionOffer{{"x", []Param{{"a", "10"}, {"b", "token"}}}}},
		{"whitespace everywhere", []string{" \tfoo \t; a = 1 ;\tb\t,\tbar ;c= \"v\" "},
			[]ExtensionOffer{{"foo", []Param{{"a", "1"}, {Name: "b"}}}, {"bar", []Param{{"c", "v"}}}}},
		{"empty elements", []string{",a,,b,"}, []ExtensionOffer{{Name: "a"}, {Name: "b"}}},
		{"case kept", []string{"PerMessage-Deflate; Client_Max_Window_Bits=9"},
			[]ExtensionOffer{{"PerMessage-Deflate", []Param{{"Client_Max_Window_Bits", "9"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseExtensions(nil, tt.values)
			if err != nil {
				t.Fatalf("ParseExtensions(%q): %v", tt.values, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseExtensions(%q) =\n%+v, want\n%+v", tt.values, got, tt.want)
			}
		})
	}
}

func TestParseExtensionsRejectsMalformed(t *testing.T) {
	for _, v := range []string{
		// A quoted value must be a token once unquoted (RFC 6455 §9.1).
		`x; b="two words"`, `x; c="q\"uote"`, `x; d=""`, "x; tab=\"a\tb\"",
		";",
		"; a=1",
		"foo;",
		"foo; ",
		"foo;;a",
		"foo bar",
		"foo; a b",
		"foo; =1",
		"foo; a=",
		"foo; a= ,bar",
		`foo; a="unterminated`,
		`foo; a="ends in a backslash\`,
		`foo; a="x"y`,
		"foo; a=b=c",
		"fo@o",
		"foo; a@b=1",
		"foo; a=(1)",
		"foo/bar",
		"\"foo\"",
		"foo; a=1\r\n",
	} {
		got, err := ParseExtensions(nil, []string{v})
		if err != ErrBadExtensionHeader {
			t.Errorf("ParseExtensions(%q) = %+v, %v; want %v", v, got, err, ErrBadExtensionHeader)
		}
	}
	// An error in a later field keeps what the earlier ones gave.
	got, err := ParseExtensions(nil, []string{"a", "b;"})
	if err != ErrBadExtensionHeader || len(got) != 1 || got[0].Name != "a" {
		t.Fatalf("ParseExtensions(a, b;) = %+v, %v", got, err)
	}
}

func TestAppendExtensionsRoundTrip(t *testing.T) {
	tests := []struct {
		offers []ExtensionOffer
		header string
	}{
		{[]ExtensionOffer{{Name: "permessage-deflate"}}, "permessage-deflate"},
		{[]ExtensionOffer{
			{"permessage-deflate", []Param{{"server_max_window_bits", "10"}, {Name: "client_max_window_bits"}}},
			{Name: "permessage-deflate"},
		}, "permessage-deflate; server_max_window_bits=10; client_max_window_bits, permessage-deflate"},
	}
	for _, tt := range tests {
		got := string(AppendExtensions([]byte("prefix "), tt.offers))
		if !strings.HasPrefix(got, "prefix ") {
			t.Fatalf("AppendExtensions dropped dst: %q", got)
		}
		got = strings.TrimPrefix(got, "prefix ")
		if tt.header != "" && got != tt.header {
			t.Errorf("AppendExtensions(%+v) = %q, want %q", tt.offers, got, tt.header)
		}
		back, err := ParseExtensions(nil, []string{got})
		if err != nil || !reflect.DeepEqual(back, tt.offers) {
			t.Errorf("ParseExtensions(%q) = %+v, %v; want %+v", got, back, err, tt.offers)
		}
		if len(tt.offers) == 1 && tt.offers[0].String() != got {
			t.Errorf("String() = %q, AppendExtensions %q", tt.offers[0].String(), got)
		}
	}
}

// Values that are not tokens are written as HTTP quoted strings; the
// parser then refuses them, as RFC 6455 §9.1 requires of offers.
func TestAppendExtensionsQuotes(t *testing.T) {
	offers := []ExtensionOffer{{"x-test", []Param{{"a", "two words"}, {"b", `q"uote`}, {"c", `back\slash`}, {"d", "a,b;c=d"}, {"tab", "a\tb"}}}}
	want := `x-test; a="two words"; b="q\"uote"; c="back\\slash"; d="a,b;c=d"; tab="a` + "\t" + `b"`
	if got := string(AppendExtensions(nil, offers)); got != want {
		t.Fatalf("AppendExtensions = %q, want %q", got, want)
	}
	if _, err := ParseExtensions(nil, []string{want}); err != ErrBadExtensionHeader {
		t.Fatalf("ParseExtensions of quoted non-tokens: %v, want ErrBadExtensionHeader", err)
	}
}

func TestExtensionOfferParam(t *testing.T) {
	o := ExtensionOffer{"x", []Param{{Name: "bare"}, {"Key", "v1"}, {"key", "v2"}}}
	for _, tt := range []struct {
		name, value string
		ok          bool
	}{
		{"bare", "", true},
		{"KEY", "v1", true}, // the first, matched without case
		{"missing", "", false},
	} {
		if v, ok := o.Param(tt.name); v != tt.value || ok != tt.ok {
			t.Errorf("Param(%q) = %q, %v; want %q, %v", tt.name, v, ok, tt.value, tt.ok)
		}
	}
}

// tagExt is a test extension: its Transform puts its tag byte before each
// outgoing message and checks and strips it on receipt, noting each call in
// log.
type tagExt struct {
	name    string
	rsv     byte
	tag     byte
	decline bool
	log     *[]string
	offers  [][]ExtensionOffer // what Accept was given, call by call
}

func (e *tagExt) Name() string { return e.name }
func (e *tagExt) Rsv() byte    { return e.rsv }

func (e *tagExt) Offer() []ExtensionOffer {
	return []ExtensionOffer{{Name: e.name, Params: []Param{{Name: "tag", Value: string(e.tag)}}}}
}

func (e *tagExt) Accept(offers []ExtensionOffer) (ExtensionOffer, Transform, bool) {
	e.offers = append(e.offers, slices.Clone(offers))
	if e.decline {
		return ExtensionOffer{}, nil, false
	}
	return ExtensionOffer{Name: e.name}, e.transform(), true
}

func (e *tagExt) Confirm(r ExtensionOffer) (Transform, error) {
	if _, ok := r.Param("reject"); ok {
		return nil, errors.New("x: rejected")
	}
	return e.transform(), nil
}

func (e *tagExt) transform() *tagTransform { return &tagTransform{ext: e} }

func (e *tagExt) note(s string) {
	if e.log != nil {
		*e.log = append(*e.log, s)
	}
}

type tagTransform struct{ ext *tagExt }

func (t *tagTransform) Encode(buf *[]byte, op frame.Opcode, p []byte) ([]byte, byte, error) {
	t.ext.note("encode " + t.ext.name)
	out := append(*buf, t.ext.tag)
	out = append(out, p...)
	*buf = out
	return out, t.ext.rsv, nil
}

func (t *tagTransform) Decode(buf *[]byte, op frame.Opcode, rsv byte, p []byte, limit int64) ([]byte, error) {
	t.ext.note("decode " + t.ext.name)
	if len(p) == 0 || p[0] != t.ext.tag {
		return nil, frame.Errorf(frame.CloseProtocolError, "%s: tag %q missing", t.ext.name, t.ext.tag)
	}
	*buf = append(*buf, p[1:]...)
	return *buf, nil
}

func (t *tagTransform) Release() { t.ext.note("release " + t.ext.name) }

func TestCheckExtensions(t *testing.T) {
	a := &tagExt{name: "x-a", rsv: frame.RSV2}
	b := &tagExt{name: "x-b", rsv: frame.RSV3}
	tests := []struct {
		name string
		exts []Extension
		err  string // "" for none
	}{
		{"none", nil, ""},
		{"deflate and two more", []Extension{&PerMessageDeflate{}, a, b}, ""},
		{"two bits for one extension", []Extension{&tagExt{name: "x", rsv: frame.RSV2 | frame.RSV3}}, ""},
		{"nil", []Extension{a, nil}, "nil extension"},
		{"same bit twice", []Extension{&PerMessageDeflate{}, &tagExt{name: "x", rsv: frame.RSV1}}, "another extension uses"},
		{"overlapping bits", []Extension{&tagExt{name: "x", rsv: frame.RSV2 | frame.RSV3}, b}, "another extension uses"},
		{"same name twice", []Extension{a, &tagExt{name: "X-A", rsv: frame.RSV3}}, "installed twice"},
		{"no bit", []Extension{&tagExt{name: "x"}}, "claims RSV bits"},
		{"a bit outside RSV1-3", []Extension{&tagExt{name: "x", rsv: 0x80}}, "claims RSV bits"},
		{"an opcode bit", []Extension{&tagExt{name: "x", rsv: frame.RSV1 | 0x01}}, "claims RSV bits"},
		{"name not a token", []Extension{&tagExt{name: "x y", rsv: frame.RSV2}}, "not a token"},
		{"empty name", []Extension{&tagExt{rsv: frame.RSV2}}, "not a token"},
	}
	for _, tt := range tests {
		err := CheckExtensions(tt.exts)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.err)
		}
	}
}

func TestAcceptExtensionsInInstallOrder(t *testing.T) {
	var log []string
	a := &tagExt{name: "x-a", rsv: frame.RSV2, tag: 'a', log: &log}
	b := &tagExt{name: "x-b", rsv: frame.RSV3, tag: 'b', log: &log}
	c := &tagExt{name: "x-c", rsv: frame.RSV1, tag: 'c', log: &log, decline: true}
	offers, err := ParseExtensions(nil, []string{"x-b; n=1, X-A; n=1, x-unknown, x-a; n=2, x-c, x-b; n=2"})
	if err != nil {
		t.Fatal(err)
	}
	ns := mustAccept(t, []Extension{a, b, c}, offers)
	var names []string
	for _, n := range ns {
		names = append(names, n.Name)
		if n.Transform == nil {
			t.Fatalf("%s: no Transform", n.Name)
		}
	}
	if !reflect.DeepEqual(names, []string{"x-a", "x-b"}) {
		t.Fatalf("accepted %v, want install order [x-a x-b] without the declined x-c", names)
	}
	if ns[0].Rsv != frame.RSV2 || ns[1].Rsv != frame.RSV3 {
		t.Fatalf("RSV bits %#x %#x", ns[0].Rsv, ns[1].Rsv)
	}
	// Each Accept sees only its own alternatives, in the client's order.
	wantA := []ExtensionOffer{{"X-A", []Param{{"n", "1"}}}, {"x-a", []Param{{"n", "2"}}}}
	if len(a.offers) != 1 || !reflect.DeepEqual(a.offers[0], wantA) {
		t.Fatalf("x-a was offered %+v, want %+v", a.offers, wantA)
	}
	if len(c.offers) != 1 || len(c.offers[0]) != 1 {
		t.Fatalf("x-c was offered %+v", c.offers)
	}
	if got := string(ResponseHeader([]byte("h: "), ns)); got != "h: x-a, x-b" {
		t.Fatalf("ResponseHeader = %q", got)
	}
	if got := string(ResponseHeader(nil, nil)); got != "" {
		t.Fatalf("ResponseHeader of none = %q", got)
	}
	// An extension the client did not offer is not asked.
	d := &tagExt{name: "x-d", rsv: frame.RSV1}
	if ns := mustAccept(t, []Extension{d}, offers); len(ns) != 0 || len(d.offers) != 0 {
		t.Fatalf("x-d accepted %+v after offers %+v", ns, d.offers)
	}
}

func TestOfferAndConfirmExtensions(t *testing.T) {
	var log []string
	a := &tagExt{name: "x-a", rsv: frame.RSV2, tag: 'a', log: &log}
	b := &tagExt{name: "x-b", rsv: frame.RSV3, tag: 'b', log: &log}
	exts := []Extension{a, b}
	if got := string(AppendExtensions(nil, mustOffer(t, exts))); got != "x-a; tag=a, x-b; tag=b" {
		t.Fatalf("offer %q", got)
	}
	tests := []struct {
		response string
		want     []string // names, in order; nil with err
		err      string
		released []string
	}{
		{"", nil, "", nil},
		{"x-b, x-a", []string{"x-b", "x-a"}, "", nil},
		{"X-A", []string{"x-a"}, "", nil},
		{"x-a, x-z", nil, `"x-z", which was not offered`, []string{"release x-a"}},
		{"x-a, x-b, x-A", nil, `"x-A" twice`, []string{"release x-a", "release x-b"}},
		{"x-b, x-a; reject", nil, "x: rejected", []string{"release x-b"}},
	}
	for _, tt := range tests {
		log = nil
		resp, err := ParseExtensions(nil, []string{tt.response})
		if err != nil {
			t.Fatal(err)
		}
		ns, err := ConfirmExtensions(exts, resp)
		var names []string
		for _, n := range ns {
			names = append(names, n.Name)
		}
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("response %q: %v", tt.response, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("response %q: error %v, want one containing %q", tt.response, err, tt.err)
		case !reflect.DeepEqual(names, tt.want):
			t.Errorf("response %q: confirmed %v, want %v", tt.response, names, tt.want)
		case !reflect.DeepEqual(log, tt.released):
			t.Errorf("response %q: calls %v, want %v", tt.response, log, tt.released)
		}
	}
}

// negotiate runs the handshake of two extension configurations through
// header text, as a client and a server would, and returns the response
// header and what each side negotiated.
func negotiate(t *testing.T, server, client []Extension) (resp string, sn, cn []Negotiated) {
	t.Helper()
	offer := string(AppendExtensions(nil, mustOffer(t, client)))
	offers, err := ParseExtensions(nil, []string{offer})
	if err != nil {
		t.Fatalf("our own offer %q does not parse: %v", offer, err)
	}
	sn = mustAccept(t, server, offers)
	resp = string(ResponseHeader(nil, sn))
	response, err := ParseExtensions(nil, []string{resp})
	if err != nil {
		t.Fatalf("our own response %q does not parse: %v", resp, err)
	}
	cn, err = ConfirmExtensions(client, response)
	if err != nil {
		t.Fatalf("offer %q, response %q: %v", offer, resp, err)
	}
	return resp, sn, cn
}

// newPair returns a server and a client Protocol with the extensions they
// negotiate; cfg's limits and FragmentSize apply to both.
func newPair(t *testing.T, server, client []Extension, cfg Config) (sp, cp *Protocol, resp string) {
	t.Helper()
	resp, sn, cn := negotiate(t, server, client)
	cfg.Role, cfg.Extensions = Server, sn
	sp = NewProtocol(cfg)
	cfg.Role, cfg.Extensions = Client, cn
	cp = NewProtocol(cfg)
	t.Cleanup(func() { sp.Release(); cp.Release() })
	return sp, cp, resp
}

func peerRole(p *Protocol) Role {
	if p.cfg.Role == Client {
		return Server
	}
	return Client
}

// transfer sends msg from one Protocol to the other, byte stream whole, and
// returns the bytes on the wire and the message received.
func transfer(t *testing.T, from, to *Protocol, op frame.Opcode, msg []byte) (wire []byte, got Event) {
	t.Helper()
	wire, err := from.AppendMessage(nil, op, 0, msg)
	if err != nil {
		t.Fatalf("AppendMessage of %d bytes: %v", len(msg), err)
	}
	in := bytes.Clone(wire)
	var evs []Event
	for len(in) > 0 {
		ev, n, ok, err := to.Receive(in)
		if err != nil {
			t.Fatalf("receiving a message of %d bytes: %v", len(msg), err)
		}
		in = in[n:]
		if ok {
			ev.Payload = bytes.Clone(ev.Payload)
			evs = append(evs, ev)
		}
	}
	if len(evs) != 1 || evs[0].Kind != EventMessage || evs[0].Op != op {
		t.Fatalf("sent one %v message of %d bytes, received %+v", op, len(msg), evs)
	}
	if !bytes.Equal(evs[0].Payload, msg) {
		t.Fatalf("sent %d bytes %.40q…, received %d bytes %.40q…", len(msg), msg, len(evs[0].Payload), evs[0].Payload)
	}
	return wire, evs[0]
}

// wireFrames decodes what from sent, as its peer reads it.
func wireFrames(t *testing.T, from *Protocol, wire []byte) []decoded {
	t.Helper()
	frames, err := decodeAll(t, &Decoder{Role: peerRole(from), AllowedRsv: frame.RSV1 | frame.RSV2 | frame.RSV3, MaxFrameSize: -1}, wire)
	if err != nil {
		t.Fatalf("the wire bytes do not decode: %v", err)
	}
	return frames
}

// messagePayload joins the payloads of frames.
func messagePayload(frames []decoded) []byte {
	var b []byte
	for _, f := range frames {
		b = append(b, f.payload...)
	}
	return b
}

// inflate decompresses one permessage-deflate payload with compress/flate,
// dict being the window of earlier messages.
func inflate(t *testing.T, p, dict []byte) []byte {
	t.Helper()
	r := flate.NewReaderDict(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff})), dict)
	out, err := io.ReadAll(r)
	if err != io.ErrUnexpectedEOF && err != nil { // a sync-flushed stream has no final block
		t.Fatalf("compress/flate cannot inflate % .40x…: %v", p, err)
	}
	return out
}

func TestExtensionsChainInInstallOrder(t *testing.T) {
	text := bytes.Repeat([]byte("chained extensions, "), 50)
	random := randomBytes(1, 2000)
	// Without context takeover, each compressed message inflates on its own.
	const pmd = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	deflate := func() *PerMessageDeflate {
		return &PerMessageDeflate{ServerNoContextTakeover: true, ClientNoContextTakeover: true}
	}
	deflateThenTag := func(log *[]string) []Extension {
		return []Extension{deflate(), &tagExt{name: "x-t", rsv: frame.RSV2, tag: 'T', log: log}}
	}
	tagThenDeflate := func(log *[]string) []Extension {
		return []Extension{&tagExt{name: "x-t", rsv: frame.RSV2, tag: 'T', log: log}, deflate()}
	}
	tests := []struct {
		name  string
		exts  func(log *[]string) []Extension
		resp  string
		msg   []byte
		rsv   byte
		check func(t *testing.T, payload []byte) // the payload on the wire
	}{
		{"deflate then tag", deflateThenTag, pmd + ", x-t", text, frame.RSV1 | frame.RSV2, func(t *testing.T, p []byte) {
			if p[0] != 'T' || !bytes.Equal(inflate(t, p[1:], nil), text) {
				t.Fatalf("wire payload % .20x… is not the tag before the compressed message", p)
			}
		}},
		{"tag then deflate", tagThenDeflate, "x-t, " + pmd, text, frame.RSV1 | frame.RSV2, func(t *testing.T, p []byte) {
			if got := inflate(t, p, nil); len(got) == 0 || got[0] != 'T' || !bytes.Equal(got[1:], text) {
				t.Fatalf("wire payload inflates to %.20q…, want the tag before the message", got)
			}
		}},
		{"incompressible, deflate then tag", deflateThenTag, pmd + ", x-t", random, frame.RSV2, func(t *testing.T, p []byte) {
			if p[0] != 'T' || !bytes.Equal(p[1:], random) {
				t.Fatalf("wire payload % .20x… is not the tag before the message", p)
			}
		}},
		{"incompressible, tag then deflate", tagThenDeflate, "x-t, " + pmd, random, frame.RSV2, func(t *testing.T, p []byte) {
			if p[0] != 'T' || !bytes.Equal(p[1:], random) {
				t.Fatalf("wire payload % .20x… is not the tag before the message", p)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var slog, clog []string
			sp, cp, resp := newPair(t, tt.exts(&slog), tt.exts(&clog), Config{})
			if resp != tt.resp {
				t.Fatalf("response %q, want %q", resp, tt.resp)
			}
			for i := 0; i < 3; i++ {
				for _, dir := range []struct {
					from, to *Protocol
				}{{sp, cp}, {cp, sp}} {
					wire, _ := transfer(t, dir.from, dir.to, frame.OpBinary, tt.msg)
					frames := wireFrames(t, dir.from, wire)
					if len(frames) != 1 || frames[0].h.Rsv != tt.rsv {
						t.Fatalf("frames %+v, want one with RSV %#x", frames, tt.rsv)
					}
					tt.check(t, []byte(frames[0].payload))
				}
			}
			if want := []string{"encode x-t", "decode x-t", "encode x-t", "decode x-t", "encode x-t", "decode x-t"}; !reflect.DeepEqual(slog, want) {
				t.Fatalf("server's tag calls %v, want %v", slog, want)
			}
		})
	}
}

// Outgoing messages go through the extensions in install order, incoming
// ones back through them in reverse.
func TestExtensionsDecodeInReverseOrder(t *testing.T) {
	var log []string
	exts := func() []Extension {
		return []Extension{
			&tagExt{name: "x-a", rsv: frame.RSV2, tag: 'a', log: &log},
			&tagExt{name: "x-c", rsv: frame.RSV3, tag: 'c', log: &log},
		}
	}
	sp, cp, _ := newPair(t, exts(), exts(), Config{FragmentSize: 3})
	wire, _ := transfer(t, sp, cp, frame.OpText, []byte("message"))
	frames := wireFrames(t, sp, wire)
	if p := messagePayload(frames); frames[0].h.Rsv != frame.RSV2|frame.RSV3 || string(p) != "camessage" {
		t.Fatalf("wire payload %q with RSV %#x, want \"camessage\" with RSV2|RSV3", p, frames[0].h.Rsv)
	}
	if want := []string{"encode x-a", "encode x-c", "decode x-c", "decode x-a"}; !reflect.DeepEqual(log, want) {
		t.Fatalf("calls %v, want %v", log, want)
	}
	// A message with one extension's bit goes through that one only.
	log = nil
	in := clientFrame(frame.OpBinary, true, []byte("amsg"))
	in[0] |= frame.RSV2
	if evs, err := feed(sp, in, 0); err != nil || len(evs) != 1 || evs[0].payload != "msg" {
		t.Fatalf("RSV2 only: %+v, %v", evs, err)
	}
	if want := []string{"decode x-a"}; !reflect.DeepEqual(log, want) {
		t.Fatalf("calls %v, want %v", log, want)
	}
}

// Three extensions, the middle one sending the message as it is: each one
// must still get its input intact.
func TestExtensionsChainWithPassThroughInTheMiddle(t *testing.T) {
	for _, size := range []int{10, 1000, 100 << 10} {
		var log []string
		exts := func() []Extension {
			return []Extension{
				&tagExt{name: "x-a", rsv: frame.RSV2, tag: 'a', log: &log},
				&PerMessageDeflate{Threshold: 1 << 30}, // never compresses
				&tagExt{name: "x-c", rsv: frame.RSV3, tag: 'c', log: &log},
			}
		}
		sp, cp, _ := newPair(t, exts(), exts(), Config{})
		msg := bytes.Repeat([]byte{'m'}, size)
		wire, err := sp.AppendMessage(nil, frame.OpBinary, 0, msg)
		if err != nil {
			t.Fatal(err)
		}
		frames := wireFrames(t, sp, wire)
		if p := messagePayload(frames); frames[0].h.Rsv != frame.RSV2|frame.RSV3 || string(p) != "ca"+string(msg) {
			t.Errorf("%d bytes: wire payload %.8q… with RSV %#x, want \"cam…\" with RSV2|RSV3", size, p, frames[0].h.Rsv)
			continue
		}
		transfer(t, cp, sp, frame.OpBinary, msg)
		if want := []string{"encode x-a", "encode x-c", "encode x-a", "encode x-c", "decode x-c", "decode x-a"}; !reflect.DeepEqual(log, want) {
			t.Fatalf("calls %v, want %v", log, want)
		}
	}
}

// The offers given to Accept are the extension's to keep.
func TestAcceptExtensionsOffersStayIntact(t *testing.T) {
	var kept []ExtensionOffer
	a := &keepExt{tagExt: tagExt{name: "x-a", rsv: frame.RSV2}, kept: &kept}
	b := &tagExt{name: "x-b", rsv: frame.RSV3}
	offers, _ := ParseExtensions(nil, []string{"x-a; n=1, x-b; n=2, x-b; n=3"})
	mustAccept(t, []Extension{a, b}, offers)
	if want := offers[:1]; !reflect.DeepEqual(kept, want) {
		t.Fatalf("x-a kept the offers %+v it was given; they now read %+v", want, kept)
	}
}

// keepExt keeps the slice of offers Accept is given.
type keepExt struct {
	tagExt
	kept *[]ExtensionOffer
}

func (e *keepExt) Accept(offers []ExtensionOffer) (ExtensionOffer, Transform, bool) {
	*e.kept = offers
	return e.tagExt.Accept(offers)
}

// Release releases each Transform once, however often it is called, and
// nothing is sent through released Transforms.
func TestProtocolReleasesTransformsOnce(t *testing.T) {
	var log []string
	a := &tagExt{name: "x-a", rsv: frame.RSV2, tag: 'a', log: &log}
	_, sn, _ := negotiate(t, []Extension{a}, []Extension{a})
	p := NewProtocol(Config{Role: Server, Extensions: sn})
	p.Release()
	p.Release()
	if want := []string{"release x-a"}; !reflect.DeepEqual(log, want) {
		t.Fatalf("calls %v, want %v", log, want)
	}
	if out, err := p.AppendMessage(nil, frame.OpText, 0, []byte("late")); err != ErrReleased || len(out) != 0 {
		t.Fatalf("AppendMessage after Release: %q, %v; want %v", out, err, ErrReleased)
	}
	if len(log) != 1 {
		t.Fatalf("calls %v after Release", log)
	}
	if len(p.Extensions()) != 1 {
		t.Fatal("Extensions() forgot the negotiated extension")
	}
}

// mustAccept is AcceptExtensions, failing the test on a panic.
func mustAccept(tb testing.TB, exts []Extension, offers []ExtensionOffer) []Negotiated {
	tb.Helper()
	ns, err := AcceptExtensions(exts, offers)
	if err != nil {
		tb.Fatal(err)
	}
	return ns
}

// mustOffer is OfferExtensions, failing the test on a panic.
func mustOffer(tb testing.TB, exts []Extension) []ExtensionOffer {
	tb.Helper()
	offers, err := OfferExtensions(exts)
	if err != nil {
		tb.Fatal(err)
	}
	return offers
}
