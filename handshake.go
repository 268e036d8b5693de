package wskit

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/internal/bufpool"
)

// acceptGUID is the fixed string of RFC 6455 §1.3 appended to the key.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// handshakeError is a refused upgrade: the HTTP status and the text sent.
type handshakeError struct {
	status int
	msg    string
	header [2]string   // one extra response header, when set
	extra  http.Header // a Refusal's fields
	why    refusal     // for Stats
}

func (e *handshakeError) Error() string { return e.msg }

func (e *handshakeError) write(w http.ResponseWriter) {
	h := w.Header()
	if e.header[0] != "" {
		h.Set(e.header[0], e.header[1])
	}
	for k, vs := range e.extra {
		h[http.CanonicalHeaderKey(k)] = vs
	}
	if e.status == http.StatusUpgradeRequired {
		h.Set("Connection", "Upgrade")
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	w.Write([]byte(e.msg + "\n"))
}

func refuse(why refusal, status int, msg string) *handshakeError {
	return &handshakeError{status: status, msg: msg, why: why}
}

// checkRequest applies RFC 6455 §4.2.1 to an opening handshake and returns
// the client's key, or the refusal to send.
func checkRequest(r *http.Request) (key string, herr *handshakeError) {
	if r.Method != http.MethodGet {
		e := refuse(refusedMethod, http.StatusMethodNotAllowed, "wskit: the opening handshake must be a GET request")
		e.header = [2]string{"Allow", http.MethodGet}
		return "", e
	}
	if !r.ProtoAtLeast(1, 1) {
		return "", refuse(refusedUpgrade, http.StatusBadRequest, "wskit: the opening handshake needs HTTP/1.1 or later")
	}
	if !headerHasToken(r.Header, "Upgrade", "websocket") {
		e := refuse(refusedUpgrade, http.StatusUpgradeRequired, "wskit: this endpoint speaks WebSocket only: Upgrade: websocket is missing")
		e.header = [2]string{"Upgrade", "websocket"}
		return "", e
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") {
		return "", refuse(refusedUpgrade, http.StatusBadRequest, "wskit: the Connection header lacks the upgrade token")
	}
	if v := r.Header.Values("Sec-Websocket-Version"); len(v) != 1 || v[0] != "13" {
		e := refuse(refusedVersion, http.StatusUpgradeRequired, "wskit: unsupported Sec-WebSocket-Version: this server speaks version 13")
		e.header = [2]string{"Sec-WebSocket-Version", "13"}
		return "", e
	}
	keys := r.Header.Values("Sec-Websocket-Key")
	if len(keys) != 1 || !validKey(keys[0]) {
		return "", refuse(refusedKey, http.StatusBadRequest, "wskit: Sec-WebSocket-Key must be the base64 of 16 bytes")
	}
	return keys[0], nil
}

// validKey reports whether k is base64 of exactly 16 bytes (§4.1).
func validKey(k string) bool {
	if len(k) != 24 {
		return false
	}
	var b [18]byte
	n, err := strictBase64.Decode(b[:], []byte(k))
	return err == nil && n == 16
}

// strictBase64 is made once: Strict returns a new Encoding each time.
var strictBase64 = base64.StdEncoding.Strict()

// acceptKey appends the Sec-WebSocket-Accept value for key to dst.
func acceptKey(dst []byte, key string) []byte {
	var in [24 + len(acceptGUID)]byte
	n := copy(in[:], key)
	n += copy(in[n:], acceptGUID)
	sum := sha1.Sum(in[:n])
	return base64.StdEncoding.AppendEncode(dst, sum[:])
}

// headerHasToken reports whether any value of header name holds token in
// its comma-separated list, compared case-insensitively (RFC 7230 §6.7).
func headerHasToken(h http.Header, name, token string) bool {
	return headerListHas(h, name, token, strings.EqualFold)
}

// headerListHas reports whether any value of header name holds item in its
// comma-separated list, by the comparison eq.
func headerListHas(h http.Header, name, item string, eq func(a, b string) bool) bool {
	for _, v := range h.Values(name) {
		for v != "" {
			var el string
			el, v, _ = strings.Cut(v, ",")
			if eq(strings.TrimSpace(el), item) {
				return true
			}
		}
	}
	return false
}

func equal(a, b string) bool { return a == b }

// isToken reports whether s is an HTTP token (RFC 7230 §3.2.6), the form
// a subprotocol name must have.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// selectProtocol picks the first of ours (in our order of preference) that
// the client offered. Names compare exactly: the answer must be one of the
// client's values (RFC 6455 §4.2.2), and clients check it byte for byte.
func selectProtocol(r *http.Request, ours []string) string {
	for _, p := range ours {
		if headerListHas(r.Header, "Sec-Websocket-Protocol", p, equal) {
			return p
		}
	}
	return ""
}

// checkOrigin applies the Origin policy (§10.2): a browser page may open a
// session only from the server's own origin or an allowed one.
func (o *Options) checkOrigin(r *http.Request) *handshakeError {
	origins := r.Header.Values("Origin")
	if len(origins) > 1 {
		// A browser sends one; a policy reading the first or the last
		// could be fooled by the other.
		return refuse(refusedOrigin, http.StatusBadRequest, "wskit: more than one Origin header")
	}
	if o.CheckOrigin != nil {
		ok, err := callCheckOrigin(o.CheckOrigin, r)
		switch {
		case err != nil:
			return o.hookPanicked(r, err, refusedOrigin)
		case ok:
			return nil
		}
		return refuse(refusedOrigin, http.StatusForbidden, "wskit: origin not allowed")
	}
	if len(origins) == 0 || origins[0] == "" {
		return nil
	}
	origin := origins[0]
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return refuse(refusedOrigin, http.StatusForbidden, "wskit: origin not allowed")
	}
	if strings.EqualFold(u.Host, r.Host) {
		return nil
	}
	for _, p := range o.OriginPatterns {
		if ok, _ := matchHost(p, u.Host); ok {
			return nil
		}
	}
	return refuse(refusedOrigin, http.StatusForbidden, "wskit: cross-origin request from "+u.Host+" refused")
}

// callCheckOrigin runs the application's CheckOrigin, recovering a panic.
func callCheckOrigin(check func(*http.Request) bool, r *http.Request) (ok bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = codec.Recovered(v, "Options.CheckOrigin")
		}
	}()
	return check(r), nil
}

func matchHost(pattern, host string) (bool, error) {
	return path.Match(strings.ToLower(pattern), strings.ToLower(host))
}

// negotiate returns the extensions accepted from r's offer for a route of
// kind: none for raw routes, none when the offer is malformed. An extension
// that panics refuses the upgrade with 500.
func (o *Options) negotiate(r *http.Request, kind routeKind) ([]codec.Negotiated, *handshakeError) {
	if len(o.Extensions) == 0 || kind == routeRaw {
		return nil, nil
	}
	values := r.Header.Values("Sec-Websocket-Extensions")
	if len(values) == 0 {
		return nil, nil
	}
	offers, err := codec.ParseExtensions(nil, values)
	if err != nil {
		return nil, nil
	}
	ns, err := codec.AcceptExtensions(o.Extensions, offers)
	if err != nil {
		return nil, o.hookPanicked(r, err, refusedExtension)
	}
	return ns, nil
}

// hookPanicked logs a panic recovered from an application's hook during a
// handshake and returns the refusal (500) that answers it.
func (o *Options) hookPanicked(r *http.Request, err error, why refusal) *handshakeError {
	var pan *codec.PanicError
	if errors.As(err, &pan) {
		logRecovered(o, r, pan, "refusing the upgrade with 500")
	}
	return refuse(why, http.StatusInternalServerError, "wskit: internal error")
}

// appendAccept appends the 101 response that completes the handshake, with
// the fields of extra (set by the handler chain or an accept hook) but
// those the handshake owns and those a 101 may not carry.
func appendAccept(b []byte, key, protocol string, exts []codec.Negotiated, extra http.Header) []byte {
	b = appendAcceptStart(b, key, protocol, exts)
	b = appendFields(b, extra)
	return append(b, "\r\n\r\n"...)
}

// appendAcceptStart appends the 101 response up to its own last field.
func appendAcceptStart(b []byte, key, protocol string, exts []codec.Negotiated) []byte {
	b = append(b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b = acceptKey(b, key)
	if protocol != "" {
		b = append(b, "\r\nSec-WebSocket-Protocol: "...)
		b = append(b, protocol...)
	}
	if len(exts) > 0 {
		b = append(b, "\r\nSec-WebSocket-Extensions: "...)
		b = codec.ResponseHeader(b, exts)
	}
	return b
}

// appendFields appends the fields of extra a 101 may carry, each after a
// CRLF.
func appendFields(b []byte, extra http.Header) []byte {
	for name, values := range extra {
		if !isToken(name) || reservedIn101(name) {
			continue
		}
		for _, v := range values {
			b = append(b, "\r\n"...)
			b = append(b, name...)
			b = append(b, ": "...)
			b = appendFieldValue(b, v)
		}
	}
	return b
}

// reservedIn101 reports whether a response field is the handshake's own or
// one a 101 may not carry.
func reservedIn101(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Upgrade", "Connection", "Sec-Websocket-Accept", "Sec-Websocket-Protocol", "Sec-Websocket-Extensions",
		"Content-Length", "Transfer-Encoding", "Trailer":
		return true
	}
	return false
}

// appendFieldValue appends v with the bytes a field value may not hold
// turned into spaces, as net/http writes them: no field can be smuggled in.
func appendFieldValue(b []byte, v string) []byte {
	v = strings.TrimSpace(v)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if (c < ' ' && c != '\t') || c == 0x7f {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

// writeAccept writes the 101 response that completes the handshake.
func writeAccept(c net.Conn, key, protocol string, exts []codec.Negotiated, extra http.Header, timeout time.Duration) error {
	buf := bufpool.Get(256 + len(protocol))
	defer bufpool.Put(buf)
	b := appendAccept(*buf, key, protocol, exts, extra)
	*buf = b
	if timeout > 0 {
		c.SetWriteDeadline(time.Now().Add(timeout))
		defer c.SetWriteDeadline(time.Time{})
	}
	_, err := c.Write(b)
	return err
}
