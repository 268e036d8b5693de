package codec

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/bufpool"
)

// Param is one parameter of an extension offer or response. Value is "" for
// a parameter given bare, without "=".
type Param struct {
	Name  string // a token, such as server_max_window_bits
	Value string // "" when given bare
}

// ExtensionOffer is one element of a Sec-WebSocket-Extensions list (RFC 6455
// §9.1): an extension name and its parameters, in order. A client may offer
// the same extension several times with different parameters, in order of
// preference; a server answers with one element per extension it accepts.
type ExtensionOffer struct {
	Name   string  // the extension's token, such as permessage-deflate
	Params []Param // in the order given
}

// Param returns the value of the parameter name and whether it is present.
func (o ExtensionOffer) Param(name string) (value string, ok bool) {
	for _, p := range o.Params {
		if strings.EqualFold(p.Name, name) {
			return p.Value, true
		}
	}
	return "", false
}

// String formats o as it appears in the header, such as
// "permessage-deflate; client_max_window_bits=10".
func (o ExtensionOffer) String() string {
	return string(AppendExtensions(nil, []ExtensionOffer{o}))
}

// AppendExtensions appends offers to dst as a Sec-WebSocket-Extensions value.
// A value that is not a token is quoted.
func AppendExtensions(dst []byte, offers []ExtensionOffer) []byte {
	for i, o := range offers {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = append(dst, o.Name...)
		for _, p := range o.Params {
			dst = append(dst, "; "...)
			dst = append(dst, p.Name...)
			if p.Value == "" {
				continue
			}
			dst = append(dst, '=')
			if isToken(p.Value) {
				dst = append(dst, p.Value...)
			} else {
				dst = appendQuoted(dst, p.Value)
			}
		}
	}
	return dst
}

// appendQuoted appends s as an HTTP quoted-string (RFC 7230 §3.2.6).
func appendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, s[i])
	}
	return append(dst, '"')
}

// ErrBadExtensionHeader is returned by ParseExtensions for a header that does
// not follow the grammar of RFC 6455 §9.1.
var ErrBadExtensionHeader = errors.New("wskit: malformed Sec-WebSocket-Extensions header")

// ParseExtensions parses the values of Sec-WebSocket-Extensions header
// fields, in order, appending one ExtensionOffer per list element to dst.
// Names and parameter names are tokens; a value is a token or a quoted
// string, returned unquoted, which must then be a token too (RFC 6455 §9.1).
func ParseExtensions(dst []ExtensionOffer, values []string) ([]ExtensionOffer, error) {
	for _, v := range values {
		s := scanner{s: v}
		for {
			s.space()
			if s.done() {
				break
			}
			if s.peek() == ',' { // empty list elements are allowed (RFC 7230 §7)
				s.i++
				continue
			}
			name := s.token()
			if name == "" {
				return dst, ErrBadExtensionHeader
			}
			o := ExtensionOffer{Name: name}
			for {
				s.space()
				if s.done() || s.peek() == ',' {
					break
				}
				if s.peek() != ';' {
					return dst, ErrBadExtensionHeader
				}
				s.i++
				s.space()
				p := Param{Name: s.token()}
				if p.Name == "" {
					return dst, ErrBadExtensionHeader
				}
				s.space()
				if !s.done() && s.peek() == '=' {
					s.i++
					s.space()
					val, ok := s.value()
					if !ok || !isToken(val) {
						return dst, ErrBadExtensionHeader
					}
					p.Value = val
				}
				o.Params = append(o.Params, p)
			}
			dst = append(dst, o)
		}
	}
	return dst, nil
}

type scanner struct {
	s string
	i int
}

func (s *scanner) done() bool { return s.i >= len(s.s) }
func (s *scanner) peek() byte { return s.s[s.i] }

func (s *scanner) space() {
	for s.i < len(s.s) && (s.s[s.i] == ' ' || s.s[s.i] == '\t') {
		s.i++
	}
}

func (s *scanner) token() string {
	j := s.i
	for s.i < len(s.s) && isTokenChar(s.s[s.i]) {
		s.i++
	}
	return s.s[j:s.i]
}

// value reads a token or a quoted string (with backslash escapes).
func (s *scanner) value() (string, bool) {
	if s.done() || s.peek() != '"' {
		t := s.token()
		return t, t != ""
	}
	s.i++
	var b strings.Builder
	for s.i < len(s.s) {
		c := s.s[s.i]
		s.i++
		switch c {
		case '"':
			return b.String(), true
		case '\\':
			if s.i == len(s.s) {
				return "", false
			}
			c = s.s[s.i]
			s.i++
		}
		b.WriteByte(c)
	}
	return "", false
}

func isTokenChar(c byte) bool {
	return c > ' ' && c < 0x7f && strings.IndexByte(`()<>@,;:\"/[]?={}`, c) < 0
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return s != ""
}

// Extension is a WebSocket extension (RFC 6455 §9) as configured once for a
// server or a client: it negotiates, and makes the Transform that does its
// work on each connection. Extensions here are per-message: their RSV bits
// may be set on the first frame of a data message only, never on a
// continuation or control frame.
//
// Methods are called concurrently for different connections.
type Extension interface {
	// Name is the extension token, such as "permessage-deflate".
	Name() string
	// Rsv is the RSV bits the extension uses (frame.RSV1, RSV2, RSV3). Two
	// extensions of one configuration may not share a bit.
	Rsv() byte
	// Offer is the client's side: the alternatives to offer, in order of
	// preference. Each one's Name must be Name().
	Offer() []ExtensionOffer
	// Accept is the server's side: offers holds the client's alternatives
	// for this extension, in the client's order. It returns the one element
	// of the response and the connection's Transform, or ok false to decline.
	Accept(offers []ExtensionOffer) (response ExtensionOffer, t Transform, ok bool)
	// Confirm is the client's side: the server's response element for this
	// extension. An error fails the handshake.
	Confirm(response ExtensionOffer) (Transform, error)
}

// Transform is an extension's work on one connection. The Protocol calls
// Encode from its sending side and Decode from its receiving side, which may
// run on two goroutines at once; each side's calls are serialised.
type Transform interface {
	// Encode transforms an outgoing data message. It returns the payload to
	// send — p itself, or bytes appended to *buf — and the RSV bits to set
	// on the message's first frame (0 when the message is sent as it is).
	Encode(buf *[]byte, op frame.Opcode, p []byte) (out []byte, rsv byte, err error)
	// Decode undoes Encode on an incoming data message whose first frame
	// carried rsv, which includes the extension's bits: it returns the
	// decoded bytes, appended to *buf. A result of more than limit bytes
	// must fail with a *frame.ProtocolError of code 1009 before the memory
	// is spent; other errors should be *frame.ProtocolError too.
	Decode(buf *[]byte, op frame.Opcode, rsv byte, p []byte, limit int64) (out []byte, err error)
	// Release gives back what the Transform holds; the connection has ended.
	Release()
}

// Negotiated is an extension in use on a connection.
type Negotiated struct {
	Name      string         // the extension's token
	Rsv       byte           // the RSV bit it claims
	Response  ExtensionOffer // the element of the server's response
	Transform Transform      // what encodes and decodes its messages on this connection
}

// CheckExtensions reports a configuration error: a nil extension, a name
// that is not a token, a name used twice, no RSV bit or a bit outside RSV1–3,
// or two extensions claiming the same RSV bit.
func CheckExtensions(exts []Extension) error {
	var used byte
	seen := make(map[string]bool, len(exts))
	for _, e := range exts {
		if e == nil {
			return errors.New("wskit: nil extension")
		}
		name, bits := e.Name(), e.Rsv()
		if !isToken(name) {
			return fmt.Errorf("wskit: extension name %q is not a token", name)
		}
		key := strings.ToLower(name)
		if seen[key] {
			return fmt.Errorf("wskit: extension %s installed twice", name)
		}
		seen[key] = true
		if bits == 0 || bits&^(frame.RSV1|frame.RSV2|frame.RSV3) != 0 {
			return fmt.Errorf("wskit: extension %s claims RSV bits %#x: it must claim one or more of RSV1, RSV2, RSV3", name, bits)
		}
		if used&bits != 0 {
			return fmt.Errorf("wskit: extension %s claims an RSV bit another extension uses (%#x)", name, used&bits)
		}
		used |= bits
	}
	return nil
}

// AcceptExtensions is the server's negotiation: for each installed extension,
// in install order, it gives the client's alternatives for it (in the
// client's order) to Accept. It returns the accepted extensions, in that
// order, which is also the order the response lists them and the order they
// process outgoing messages. An extension that panics makes it fail with a
// *PanicError (the handshake should then be refused with 500), releasing
// what was accepted.
func AcceptExtensions(exts []Extension, offers []ExtensionOffer) ([]Negotiated, error) {
	var out []Negotiated
	var mine []ExtensionOffer
	for _, e := range exts {
		name, err := extensionName(e)
		if err != nil {
			ReleaseExtensions(out)
			return nil, err
		}
		mine = nil // Accept may keep what it is given
		for _, o := range offers {
			if strings.EqualFold(o.Name, name) {
				mine = append(mine, o)
			}
		}
		if len(mine) == 0 {
			continue
		}
		resp, t, ok, err := acceptOne(e, name, mine)
		if err != nil {
			ReleaseExtensions(out)
			return nil, err
		}
		if !ok {
			continue
		}
		if resp.Name == "" {
			resp.Name = name
		}
		out = append(out, Negotiated{Name: name, Rsv: e.Rsv(), Response: resp, Transform: t})
	}
	return out, nil
}

// OfferExtensions returns the client's offer for exts, in install order, or
// a *PanicError when an extension's Offer panicked.
func OfferExtensions(exts []Extension) ([]ExtensionOffer, error) {
	var out []ExtensionOffer
	for _, e := range exts {
		offers, err := offerOne(e)
		if err != nil {
			return nil, err
		}
		out = append(out, offers...)
	}
	return out, nil
}

// ConfirmExtensions is the client's negotiation: it checks the server's
// response against the installed extensions (each at most once, none that
// was not offered) and returns them in the response's order. On error the
// Transforms already made are released.
func ConfirmExtensions(exts []Extension, response []ExtensionOffer) ([]Negotiated, error) {
	var out []Negotiated
	fail := func(err error) ([]Negotiated, error) {
		ReleaseExtensions(out)
		return nil, err
	}
	for _, r := range response {
		var ext Extension
		var name string
		for _, e := range exts {
			n, err := extensionName(e)
			if err != nil {
				return fail(err)
			}
			if strings.EqualFold(r.Name, n) {
				ext, name = e, n
			}
		}
		if ext == nil {
			return fail(fmt.Errorf("wskit: server accepted extension %q, which was not offered", r.Name))
		}
		for _, n := range out {
			if strings.EqualFold(n.Name, r.Name) {
				return fail(fmt.Errorf("wskit: server accepted extension %q twice", r.Name))
			}
		}
		t, err := confirmOne(ext, name, r)
		if err != nil {
			return fail(err)
		}
		out = append(out, Negotiated{Name: name, Rsv: ext.Rsv(), Response: r, Transform: t})
	}
	return out, nil
}

// ReleaseExtensions releases the Transforms of negotiated extensions. It
// returns the first *PanicError of a Release that panicked; the others are
// released all the same.
func ReleaseExtensions(ns []Negotiated) error {
	var first error
	for i := range ns {
		if ns[i].Transform == nil {
			continue
		}
		if err := releaseOne(&ns[i]); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// ResponseHeader appends the Sec-WebSocket-Extensions value that answers the
// negotiated extensions; nothing when there are none.
func ResponseHeader(dst []byte, ns []Negotiated) []byte {
	for i, n := range ns {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = AppendExtensions(dst, []ExtensionOffer{n.Response})
	}
	return dst
}

// Errors of the extension pipeline.
var (
	ErrRsvOnContinuation = &frame.ProtocolError{Code: frame.CloseProtocolError, Reason: "RSV bits set on a continuation or control frame"}
)

// pipeline runs the negotiated extensions of a Protocol. Its receiving part
// (in) and sending part (out, scratch) are used from the two sides of the
// Protocol, which may run concurrently.
type pipeline struct {
	ns      []Negotiated
	in      [2]*[]byte // decoded message buffers; in[0] is lent to the caller
	scratch [2]*[]byte // encoded message buffers, held during AppendMessage
	done    bool       // released: the Transforms may not be used
	skip    byte       // RSV bits of extensions that encode nothing (SetCompression)
	sendErr error      // an extension panicked while encoding: nothing more is sent through it
}

// decode undoes the extensions whose bits are set, in the reverse of
// install order, and returns the message's payload.
func (pl *pipeline) decode(op frame.Opcode, rsv byte, p []byte, limit int64) ([]byte, error) {
	pl.returnIn()
	for i := len(pl.ns) - 1; i >= 0; i-- {
		n := &pl.ns[i]
		if rsv&n.Rsv == 0 {
			continue
		}
		buf := getBuf(&pl.in[1], 0)
		out, err := decodeOne(n, buf, op, rsv, p, limit)
		if err != nil {
			return nil, err
		}
		rsv &^= n.Rsv
		p = out
		if within(out, *buf) {
			pl.in[0], pl.in[1] = pl.in[1], pl.in[0]
		}
	}
	return p, nil
}

// returnIn gives the lent decoded buffers back to the pool.
func (pl *pipeline) returnIn() {
	for i, b := range pl.in {
		putBuf(b)
		pl.in[i] = nil
	}
}

// detachIn hands over the buffer holding the last decoded payload.
func (pl *pipeline) detachIn() *[]byte {
	b := pl.in[0]
	pl.in[0] = nil
	return b
}

// encode runs the extensions in install order; the result is valid until
// doneEncoding.
func (pl *pipeline) encode(op frame.Opcode, p []byte) ([]byte, byte, error) {
	if pl.done {
		return nil, 0, ErrReleased
	}
	var rsv byte
	cur := 1 // the scratch buffer holding p; p is the caller's at first
	for i := range pl.ns {
		n := &pl.ns[i]
		if n.Rsv&pl.skip != 0 {
			continue
		}
		buf := getBuf(&pl.scratch[1-cur], 0)
		out, bits, err := encodeOne(n, buf, op, p)
		if err != nil {
			return nil, 0, err
		}
		rsv |= bits
		p = out
		if within(out, *buf) {
			cur = 1 - cur
		}
	}
	return p, rsv, nil
}

func (pl *pipeline) doneEncoding() {
	for i, b := range pl.scratch {
		putBuf(b)
		pl.scratch[i] = nil
	}
}

func (pl *pipeline) release() error {
	pl.returnIn()
	pl.doneEncoding()
	var err error
	if !pl.done {
		err = ReleaseExtensions(pl.ns) // ns stays: Extensions may still report it
	}
	pl.done = true
	return err
}

func (pl *pipeline) rsvBits() byte {
	var b byte
	for _, n := range pl.ns {
		b |= n.Rsv
	}
	return b
}

// within reports whether p points into the array of buf, as a Transform's
// result does when it wrote to its buffer rather than passed its input on.
func within(p, buf []byte) bool {
	if cap(p) == 0 || cap(buf) == 0 {
		return false
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(buf[:cap(buf)])))
	at := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	return at >= start && at < start+uintptr(cap(buf))
}

// getBuf returns *pp emptied, taking a pooled buffer of capacity n first
// when *pp is nil.
func getBuf(pp **[]byte, n int) *[]byte {
	if *pp == nil {
		*pp = bufpool.Get(n)
	}
	**pp = (**pp)[:0]
	return *pp
}

func putBuf(b *[]byte) { bufpool.Put(b) }

// growBuf makes room for n more bytes in *b from the pool (the caller
// chooses n, doubling as it sees fit), keeping the pointer b: the contents move to a larger pooled array and the old array
// goes back to the pool in its place.
func growBuf(b *[]byte, n int) {
	if cap(*b)-len(*b) >= n {
		return
	}
	nb := bufpool.Get(len(*b) + n)
	*nb = append(*nb, *b...)
	*b, *nb = *nb, *b
	bufpool.Put(nb)
}
