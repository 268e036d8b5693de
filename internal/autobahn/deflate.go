package autobahn

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The client side of permessage-deflate (RFC 7692): the offer, the strict
// check of the server's response, and the compression of what we send and
// decompression of what we receive. It is written here from the RFC and
// compress/flate alone, not taken from the codec package, so that this
// client stays an independent judge of a server built on codec.

const (
	deflateName   = "permessage-deflate"
	maxWindowBits = 15
	minWindowBits = 8
)

// deflateOffer is one permessage-deflate offer. Autobahn's offers
// (PerMessageDeflateOffer) always carry client_no_context_takeover and
// client_max_window_bits, which let the server restrict our side, and may
// request a restriction of the server's side (requestNoContextTakeover,
// requestMaxWindowBits).
type deflateOffer struct {
	clientNoContextTakeover bool // hint that we may do without context takeover
	clientMaxWindowBits     bool // the server may limit our window (no value: up to 15)
	serverNoContextTakeover bool // ask the server not to keep its context
	serverMaxWindowBits     int  // ask the server for a window of at most 2^n bytes; 0: no request
}

// autobahnOffer is PerMessageDeflateOffer(requestNoContextTakeover,
// requestMaxWindowBits) with Autobahn's defaults for the rest.
//
// The client_no_context_takeover of such an offer is a hint: by RFC 7692
// §7.1.1.2 the client "is not going to use context takeover" even if the
// response leaves the parameter out. Autobahn does not keep that promise:
// it compresses with context takeover unless the response carries
// client_no_context_takeover, which tests the server's inflation across
// messages. We do as Autobahn, so a server that relies on the hint alone
// (resetting its inflater per message without saying so in its response)
// fails here as it does under Autobahn.
func autobahnOffer(serverNoContextTakeover bool, serverMaxWindowBits int) deflateOffer {
	return deflateOffer{
		clientNoContextTakeover: true,
		clientMaxWindowBits:     true,
		serverNoContextTakeover: serverNoContextTakeover,
		serverMaxWindowBits:     serverMaxWindowBits,
	}
}

// String renders the offer as one element of Sec-WebSocket-Extensions, with
// its parameters in Autobahn's order.
func (o deflateOffer) String() string {
	s := deflateName
	if o.clientNoContextTakeover {
		s += "; client_no_context_takeover"
	}
	if o.clientMaxWindowBits {
		s += "; client_max_window_bits"
	}
	if o.serverNoContextTakeover {
		s += "; server_no_context_takeover"
	}
	if o.serverMaxWindowBits != 0 {
		s += "; server_max_window_bits=" + strconv.Itoa(o.serverMaxWindowBits)
	}
	return s
}

// offerHeader is the value of Sec-WebSocket-Extensions for offers, in order
// of preference; "" when there are none.
func offerHeader(offers []deflateOffer) string {
	parts := make([]string, len(offers))
	for i, o := range offers {
		parts[i] = o.String()
	}
	return strings.Join(parts, ", ")
}

// deflateParams is what the server accepted.
type deflateParams struct {
	offer                   int  // index of the offer the response accepts
	serverNoContextTakeover bool // the server resets its context per message
	clientNoContextTakeover bool // we must reset ours
	serverMaxWindowBits     int  // the server's window: 2^n bytes (15 when not given)
	clientMaxWindowBits     int  // ours (15 when not given)
}

// String renders the parameters in effect, for reports.
func (p *deflateParams) String() string {
	s := fmt.Sprintf("server window 2^%d", p.serverMaxWindowBits)
	if p.serverNoContextTakeover {
		s += " without context takeover"
	}
	s += fmt.Sprintf(", client window 2^%d", p.clientMaxWindowBits)
	if p.clientNoContextTakeover {
		s += " without context takeover"
	}
	return s
}

// extParam is one extension parameter as received.
type extParam struct {
	name, value string
	hasValue    bool
}

// extElement is one element of an extension list.
type extElement struct {
	name   string
	params []extParam
}

// parseExtensions parses Sec-WebSocket-Extensions values (RFC 6455 §9.1,
// with the list and quoted-string rules of RFC 7230 §7 and §3.2.6): a comma
// list of extension tokens, each followed by "; name[=value]" parameters,
// where a value is a token or a quoted string whose content is a token.
// Empty list elements are skipped, as RFC 7230 §7 asks of recipients.
func parseExtensions(values []string) ([]extElement, error) {
	var els []extElement
	for _, v := range values {
		p := extParser{s: v}
		for {
			p.skipSpace()
			if p.eof() {
				break
			}
			if p.peek() == ',' {
				p.i++
				continue
			}
			el, err := p.element()
			if err != nil {
				return nil, fmt.Errorf("malformed Sec-WebSocket-Extensions %q: %w", v, err)
			}
			els = append(els, el)
		}
	}
	return els, nil
}

type extParser struct {
	s string
	i int
}

func (p *extParser) eof() bool  { return p.i >= len(p.s) }
func (p *extParser) peek() byte { return p.s[p.i] }

func (p *extParser) skipSpace() {
	for !p.eof() && (p.peek() == ' ' || p.peek() == '\t') {
		p.i++
	}
}

func (p *extParser) token() string {
	start := p.i
	for !p.eof() && isTokenChar(p.peek()) {
		p.i++
	}
	return p.s[start:p.i]
}

// element parses "name *(; param)" up to the next comma or the end.
func (p *extParser) element() (extElement, error) {
	var el extElement
	if el.name = p.token(); el.name == "" {
		return el, fmt.Errorf("expected an extension token at offset %d", p.i)
	}
	for {
		p.skipSpace()
		if p.eof() {
			return el, nil
		}
		switch p.peek() {
		case ',':
			p.i++
			return el, nil
		case ';':
			p.i++
		default:
			return el, fmt.Errorf("unexpected %q at offset %d", p.peek(), p.i)
		}
		p.skipSpace()
		var prm extParam
		if prm.name = p.token(); prm.name == "" {
			return el, fmt.Errorf("expected a parameter name at offset %d", p.i)
		}
		p.skipSpace()
		if !p.eof() && p.peek() == '=' {
			p.i++
			p.skipSpace()
			v, err := p.value()
			if err != nil {
				return el, err
			}
			prm.value, prm.hasValue = v, true
		}
		el.params = append(el.params, prm)
	}
}

// value parses a token or a quoted string whose content must be a token.
func (p *extParser) value() (string, error) {
	if p.eof() || p.peek() != '"' {
		if v := p.token(); v != "" {
			return v, nil
		}
		return "", fmt.Errorf("expected a parameter value at offset %d", p.i)
	}
	p.i++
	var b strings.Builder
	for {
		if p.eof() {
			return "", errors.New("unterminated quoted string")
		}
		c := p.peek()
		p.i++
		switch {
		case c == '"':
			v := b.String()
			for i := range len(v) {
				if !isTokenChar(v[i]) {
					return "", fmt.Errorf("quoted value %q is not a token", v)
				}
			}
			if v == "" {
				return "", errors.New("empty quoted value")
			}
			return v, nil
		case c == '\\':
			if p.eof() {
				return "", errors.New("unterminated quoted string")
			}
			b.WriteByte(p.peek())
			p.i++
		default:
			b.WriteByte(c)
		}
	}
}

// isTokenChar reports whether c is a tchar of RFC 7230 §3.2.6.
func isTokenChar(c byte) bool {
	switch {
	case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// negotiationError is an unacceptable Sec-WebSocket-Extensions response.
type negotiationError struct{ msg string }

func (e *negotiationError) Error() string { return e.msg }

func badNegotiation(format string, args ...any) error {
	return &negotiationError{msg: fmt.Sprintf(format, args...)}
}

// negotiate checks the server's Sec-WebSocket-Extensions values against our
// offers, as RFC 6455 §9.1 and RFC 7692 §5 and §7 ask of a client. It
// returns nil, nil when the server accepted nothing, the parameters in effect
// when it accepted an offer, and a *negotiationError when the response is not
// a valid acceptance of any offer:
//
//   - an extension we did not offer, or permessage-deflate more than once;
//   - a parameter unknown to RFC 7692, repeated, or with an invalid value
//     (no value for *_no_context_takeover; a decimal 8 to 15 without leading
//     zeros for *_max_window_bits, which a response must give a value);
//   - no matching offer: server_no_context_takeover missing where the offer
//     asked for it, server_max_window_bits missing or above what the offer
//     asked for, or client_max_window_bits where the offer did not have it.
func negotiate(offers []deflateOffer, values []string) (*deflateParams, error) {
	els, err := parseExtensions(values)
	if err != nil {
		return nil, &negotiationError{msg: err.Error()}
	}
	if len(els) == 0 {
		return nil, nil
	}
	if len(offers) == 0 {
		return nil, badNegotiation("server accepted extensions %q that were not offered", values)
	}
	for _, el := range els {
		if el.name != deflateName {
			return nil, badNegotiation("server accepted extension %q that was not offered (only %s was)", el.name, deflateName)
		}
	}
	if len(els) > 1 {
		return nil, badNegotiation("server accepted %s %d times (RFC 7692 §5: they would share RSV1)", deflateName, len(els))
	}
	p := &deflateParams{serverMaxWindowBits: maxWindowBits, clientMaxWindowBits: maxWindowBits}
	var sawServerBits, sawClientBits bool
	seen := map[string]bool{}
	for _, prm := range els[0].params {
		if seen[prm.name] {
			return nil, badNegotiation("parameter %s appears more than once in the response (RFC 7692 §7)", prm.name)
		}
		seen[prm.name] = true
		switch prm.name {
		case "server_no_context_takeover", "client_no_context_takeover":
			if prm.hasValue {
				return nil, badNegotiation("parameter %s=%s must have no value (RFC 7692 §7.1.1)", prm.name, prm.value)
			}
			if prm.name == "server_no_context_takeover" {
				p.serverNoContextTakeover = true
			} else {
				p.clientNoContextTakeover = true
			}
		case "server_max_window_bits", "client_max_window_bits":
			if !prm.hasValue {
				return nil, badNegotiation("parameter %s needs a value in a response (RFC 7692 §7.1.2)", prm.name)
			}
			n, ok := windowBits(prm.value)
			if !ok {
				return nil, badNegotiation("parameter %s=%s: the value must be a decimal from 8 to 15 without leading zeros (RFC 7692 §7.1.2)", prm.name, prm.value)
			}
			if prm.name == "server_max_window_bits" {
				p.serverMaxWindowBits, sawServerBits = n, true
			} else {
				p.clientMaxWindowBits, sawClientBits = n, true
			}
		default:
			return nil, badNegotiation("unknown parameter %q in the response (RFC 7692 §7)", prm.name)
		}
	}
	var why []string
	for i, o := range offers {
		var bad string
		switch {
		case o.serverNoContextTakeover && !p.serverNoContextTakeover:
			bad = "the offer asked for server_no_context_takeover and the response lacks it (RFC 7692 §7.1.1.1)"
		case o.serverMaxWindowBits != 0 && !sawServerBits:
			bad = fmt.Sprintf("the offer asked for server_max_window_bits=%d and the response lacks it (RFC 7692 §7.1.2.1)", o.serverMaxWindowBits)
		case o.serverMaxWindowBits != 0 && p.serverMaxWindowBits > o.serverMaxWindowBits:
			bad = fmt.Sprintf("server_max_window_bits=%d exceeds the %d offered (RFC 7692 §7.1.2.1)", p.serverMaxWindowBits, o.serverMaxWindowBits)
		case sawClientBits && !o.clientMaxWindowBits:
			bad = "client_max_window_bits in the response, but the offer did not have it (RFC 7692 §7.1.2.2)"
		}
		if bad == "" {
			p.offer = i
			return p, nil
		}
		why = append(why, bad)
	}
	if len(offers) == 1 {
		return nil, badNegotiation("response %q: %s", values, why[0])
	}
	for i := range why {
		why[i] = fmt.Sprintf("offer %d: %s", i+1, why[i])
	}
	return nil, badNegotiation("response %q accepts none of the %d offers: %s", values, len(offers), strings.Join(why, "; "))
}

// windowBits parses a *_max_window_bits value: 8 to 15, no leading zeros.
func windowBits(v string) (int, bool) {
	if len(v) == 0 || len(v) > 2 || v[0] == '0' {
		return 0, false
	}
	n := 0
	for i := range len(v) {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
		n = n*10 + int(v[i]-'0')
	}
	return n, n >= minWindowBits && n <= maxWindowBits
}

// syncTail is the empty stored block a sync flush ends with (RFC 7692
// §7.2.1), and finalBlock an empty final stored block.
var (
	syncTail   = []byte{0x00, 0x00, 0xff, 0xff}
	finalBlock = []byte{0x01, 0x00, 0x00, 0xff, 0xff}
)

// deflater compresses our messages (RFC 7692 §7.2.1). compress/flate keeps
// a 32 KiB window and cannot be told a smaller one, so when the server
// limits our window (client_max_window_bits below 15) we compress with
// flate.HuffmanOnly: no back-references at all, hence within any window.
type deflater struct {
	w         *flate.Writer
	buf       bytes.Buffer
	noContext bool
	fresh     bool
}

func newDeflater(p *deflateParams) *deflater {
	level := flate.BestSpeed
	if p.clientMaxWindowBits < maxWindowBits {
		level = flate.HuffmanOnly
	}
	d := &deflater{noContext: p.clientNoContextTakeover, fresh: true}
	d.w, _ = flate.NewWriter(&d.buf, level) // the level is valid
	return d
}

// compress returns the compressed payload of one message: the deflate
// stream up to a sync flush, without its final 00 00 ff ff. Without context
// takeover each message starts a new stream.
func (d *deflater) compress(p []byte) []byte {
	d.buf.Reset()
	if d.noContext && !d.fresh {
		d.w.Reset(&d.buf)
	}
	d.fresh = false
	d.w.Write(p) // writes to a bytes.Buffer do not fail
	d.w.Flush()
	b := d.buf.Bytes()
	if !bytes.HasSuffix(b, syncTail) {
		panic("autobahn: compress/flate sync flush does not end with 00 00 ff ff")
	}
	return bytes.Clone(b[:len(b)-len(syncTail)])
}

// inflater decompresses the server's messages (RFC 7692 §7.2.2). With
// context takeover, the last 2^server_max_window_bits bytes of the messages
// inflated so far are the preset dictionary of the next one, so a
// back-reference into an earlier message reaching further back than the
// negotiated window fails. (Within a message compress/flate accepts any
// distance up to 32 KiB: a server that used a larger window than it
// announced is caught only across messages.)
type inflater struct {
	r         io.ReadCloser
	in        bytes.Reader
	src       []byte
	out       bytes.Buffer
	window    []byte
	size      int
	noContext bool
}

func newInflater(p *deflateParams) *inflater {
	return &inflater{size: 1 << p.serverMaxWindowBits, noContext: p.serverNoContextTakeover}
}

// inflate returns the decompressed payload of one message (valid until the
// next call), failing past limit bytes.
func (f *inflater) inflate(p []byte, limit int) ([]byte, error) {
	if len(p) == 0 {
		// 00 00 ff ff alone is the start of a stored block, not a whole one.
		return nil, errors.New("the compressed payload is empty (an empty message compresses to at least one byte, 0x00: RFC 7692 §7.2.3.6)")
	}
	// The payload, the 00 00 ff ff its sender removed, and an empty final
	// block so that a complete stream ends in io.EOF and a truncated one in
	// an error. A payload that ends with a final block of its own ends the
	// stream there; what we appended is then not read.
	f.src = append(append(append(f.src[:0], p...), syncTail...), finalBlock...)
	f.in.Reset(f.src)
	var dict []byte
	if !f.noContext {
		dict = f.window
	}
	if f.r == nil {
		f.r = flate.NewReaderDict(&f.in, dict)
	} else if err := f.r.(flate.Resetter).Reset(&f.in, dict); err != nil {
		return nil, err
	}
	f.out.Reset()
	n, err := io.Copy(&f.out, io.LimitReader(f.r, int64(limit)+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("invalid DEFLATE data after %d bytes: %v", n, err)
	case n > int64(limit):
		return nil, fmt.Errorf("message inflates to more than %d bytes", limit)
	}
	out := f.out.Bytes()
	if !f.noContext {
		f.remember(out)
	}
	return out, nil
}

// remember slides the window over out.
func (f *inflater) remember(out []byte) {
	if len(out) >= f.size {
		f.window = append(f.window[:0], out[len(out)-f.size:]...)
		return
	}
	if keep := f.size - len(out); len(f.window) > keep {
		f.window = f.window[:copy(f.window, f.window[len(f.window)-keep:])]
	}
	f.window = append(f.window, out...)
}
