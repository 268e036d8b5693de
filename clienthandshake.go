package wskit

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"

	"github.com/wskit/wskit/codec"
)

// The client's side of the opening handshake (RFC 6455 §4.1), apart from
// the connection: building the request, and checking the server's answer.
// Dial (client.go) moves the bytes.

// ErrBadHandshake is matched, with errors.Is, by the error Dial returns
// when the server answered 101 Switching Protocols but its response breaks
// the rules of RFC 6455 §4.1 (a wrong Sec-WebSocket-Accept, a field
// repeated, a subprotocol or an extension that was not offered), when the
// response is not HTTP, and when its head exceeds Options.MaxHandshakeSize.
// A server that refuses the upgrade with another status is reported as a
// *HandshakeError instead.
var ErrBadHandshake = errors.New("bad handshake response")

// handshakeFields are the request fields Dial writes itself, in the order
// it writes them: canonical key, then the spelling of RFC 6455.
var handshakeFields = [...][2]string{
	{"Upgrade", "Upgrade"},
	{"Connection", "Connection"},
	{"Sec-Websocket-Key", "Sec-WebSocket-Key"},
	{"Sec-Websocket-Version", "Sec-WebSocket-Version"},
	{"Sec-Websocket-Protocol", "Sec-WebSocket-Protocol"},
	{"Sec-Websocket-Extensions", "Sec-WebSocket-Extensions"},
}

// newClientKey returns a fresh Sec-WebSocket-Key: the base64 of 16 random
// bytes (§4.1, item 7 of the request's requirements).
func newClientKey() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// clientRequest returns the opening handshake Dial sends for u (a ws or
// wss URL): the caller's header h, checked and copied, with the fields of
// §4.1 added. The caller may set Host, but not a field the handshake owns.
func clientRequest(u *url.URL, h http.Header, key string, protocols []string, offers []codec.ExtensionOffer) (*http.Request, error) {
	header := make(http.Header, len(h)+len(handshakeFields))
	host := u.Host
	for k, vs := range h {
		if !isToken(k) {
			return nil, fmt.Errorf("wskit: header name %q is not an HTTP token", k)
		}
		ck := textproto.CanonicalMIMEHeaderKey(k)
		for _, f := range handshakeFields {
			if ck == f[0] {
				return nil, fmt.Errorf("wskit: header %s is set by Dial (use Options.Subprotocols and Options.Extensions)", f[1])
			}
		}
		for _, v := range vs {
			if !validFieldValue([]byte(v)) {
				return nil, fmt.Errorf("wskit: header %s has a value with control characters", ck)
			}
		}
		if ck == "Host" {
			if len(vs) != 1 || vs[0] == "" {
				return nil, errors.New("wskit: header Host must have one value")
			}
			host = vs[0]
			continue
		}
		header[ck] = append(header[ck], vs...)
	}
	header.Set("Upgrade", "websocket")
	header.Set("Connection", "Upgrade")
	header.Set("Sec-Websocket-Key", key)
	header.Set("Sec-Websocket-Version", "13")
	if len(protocols) > 0 {
		header.Set("Sec-Websocket-Protocol", strings.Join(protocols, ", "))
	}
	if len(offers) > 0 {
		header.Set("Sec-Websocket-Extensions", string(codec.AppendExtensions(nil, offers)))
	}
	return &http.Request{
		Method:     http.MethodGet,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     header,
		Host:       host,
	}, nil
}

// appendUpgradeRequest appends the bytes of req, made by clientRequest:
// the request line, Host, the handshake's fields, then the caller's in
// sorted order.
func appendUpgradeRequest(b []byte, req *http.Request) []byte {
	b = append(b, "GET "...)
	b = append(b, req.URL.RequestURI()...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, req.Host...)
	b = append(b, "\r\n"...)
	for _, f := range handshakeFields {
		for _, v := range req.Header[f[0]] {
			b = appendField(b, f[1], v)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(req.Header)) {
		if isHandshakeField(k) {
			continue
		}
		for _, v := range req.Header[k] {
			b = appendField(b, k, v)
		}
	}
	return append(b, "\r\n"...)
}

func appendField(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, strings.TrimSpace(value)...)
	return append(b, "\r\n"...)
}

func isHandshakeField(canonical string) bool {
	for _, f := range handshakeFields {
		if canonical == f[0] {
			return true
		}
	}
	return false
}

// headReader is what a response head is read through: it lets at most n
// bytes through, so that a server streaming an endless head meets the
// bound and not the client's memory (net/http's Transport bounds response
// heads the same way, with MaxResponseHeaderBytes).
type headReader struct {
	r   io.Reader
	n   int   // bytes still allowed
	err error // the last error of r
}

// errHeadTooLarge stops a read past the bound.
var errHeadTooLarge = errors.New("response head too large")

func (h *headReader) Read(p []byte) (int, error) {
	if h.n <= 0 {
		return 0, errHeadTooLarge
	}
	if len(p) > h.n {
		p = p[:h.n]
	}
	n, err := h.r.Read(p)
	h.n -= n
	if err != nil {
		h.err = err
	}
	return n, err
}

// readResponse reads the head of the response to req from br, which reads
// from h, whose bound is limit. A head that is too long or not HTTP fails
// with an error wrapping bad.
func readResponse(br *bufio.Reader, h *headReader, limit int, req *http.Request, bad error) (*http.Response, error) {
	resp, err := http.ReadResponse(br, req)
	switch {
	case err == nil:
		return resp, nil
	case h.n <= 0:
		return nil, fmt.Errorf("%w: the response head exceeded %d bytes (Options.MaxHandshakeSize); aborted", bad, limit)
	case errors.Is(h.err, io.EOF):
		return nil, fmt.Errorf("the connection ended before the response head was complete: %w", err)
	case h.err != nil:
		return nil, h.err
	}
	return nil, fmt.Errorf("%w: %v", bad, err)
}

// checkResponse applies the client's checks of §4.1 to a 101 response to
// the request that sent key, protocols and offers. It returns the selected
// subprotocol ("" for none) and the server's extension response, which
// codec.ConfirmExtensions then checks against the installed extensions.
//
// A field the response may hold once (§11.3: Sec-WebSocket-Accept,
// Sec-WebSocket-Protocol; Upgrade, whose value must be exactly
// "websocket") is refused when repeated, rather than one copy picked: two
// answers are no answer. Connection and Sec-WebSocket-Extensions are lists
// and may be split over several fields.
func checkResponse(resp *http.Response, key string, protocols []string, offers []codec.ExtensionOffer) (protocol string, exts []codec.ExtensionOffer, err error) {
	bad := func(format string, args ...any) (string, []codec.ExtensionOffer, error) {
		return "", nil, fmt.Errorf("%w: "+format, append([]any{ErrBadHandshake}, args...)...)
	}
	if !resp.ProtoAtLeast(1, 1) {
		return bad("a 101 response over %s, not HTTP/1.1", resp.Proto)
	}
	for _, name := range [...]string{"Upgrade", "Sec-Websocket-Accept", "Sec-Websocket-Protocol"} {
		if v := resp.Header[name]; len(v) > 1 {
			return bad("the response has %d %s fields %q; one is allowed", len(v), wireName(name), v)
		}
	}
	for _, name := range [...]string{"Upgrade", "Connection", "Sec-Websocket-Accept"} {
		if len(resp.Header[name]) == 0 {
			return bad("the response has no %s field", wireName(name))
		}
	}
	if v := resp.Header.Get("Upgrade"); !strings.EqualFold(strings.TrimSpace(v), "websocket") {
		return bad("Upgrade is %q, not websocket", v)
	}
	if !headerHasToken(resp.Header, "Connection", "upgrade") {
		return bad("Connection is %q, without the upgrade token", resp.Header.Values("Connection"))
	}
	want := string(acceptKey(nil, key))
	if got := resp.Header.Get("Sec-Websocket-Accept"); got != want {
		return bad("Sec-WebSocket-Accept is %q, want %q", got, want)
	}
	return checkSelected(resp.Header, protocols, offers)
}

// checkSelected checks the subprotocol and the extensions a server
// selected, over HTTP/1.1 or HTTP/2.
func checkSelected(h http.Header, protocols []string, offers []codec.ExtensionOffer) (protocol string, exts []codec.ExtensionOffer, err error) {
	bad := func(format string, args ...any) (string, []codec.ExtensionOffer, error) {
		return "", nil, fmt.Errorf("%w: "+format, append([]any{ErrBadHandshake}, args...)...)
	}
	if v := h["Sec-Websocket-Protocol"]; len(v) > 1 {
		return bad("the response has %d Sec-WebSocket-Protocol fields %q; one is allowed", len(v), v)
	}
	if v := h["Sec-Websocket-Protocol"]; len(v) > 0 {
		// Compared byte for byte, as browsers do: the answer must be one
		// of the values sent (§4.1, and §4.2.2 /subprotocol/).
		if !slices.Contains(protocols, v[0]) {
			if len(protocols) == 0 {
				return bad("the server selected subprotocol %q, but none was offered", v[0])
			}
			return bad("the server selected subprotocol %q, which was not offered (offered %q)", v[0], protocols)
		}
		protocol = v[0]
	}
	if v := h["Sec-Websocket-Extensions"]; len(v) > 0 {
		exts, err = codec.ParseExtensions(nil, v)
		if err != nil {
			return bad("Sec-WebSocket-Extensions %q: %v", v, err)
		}
		for i, e := range exts {
			if !slices.ContainsFunc(offers, func(o codec.ExtensionOffer) bool { return strings.EqualFold(o.Name, e.Name) }) {
				return bad("the server accepted extension %q, which was not offered", e.Name)
			}
			for _, prev := range exts[:i] {
				if strings.EqualFold(prev.Name, e.Name) {
					return bad("the server accepted extension %q twice", e.Name)
				}
			}
		}
	}
	return protocol, exts, nil
}

// wireName returns the spelling of RFC 6455 for a canonical field name.
func wireName(canonical string) string {
	if canonical == "Sec-Websocket-Accept" {
		return "Sec-WebSocket-Accept"
	}
	for _, f := range handshakeFields {
		if canonical == f[0] {
			return f[1]
		}
	}
	return canonical
}
