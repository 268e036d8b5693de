package wskit

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/internal/wsconn"
)

// DialOptions configure Dial. The zero value is ready to use.
type DialOptions struct {
	// Options for the session, as on a server; a zero field means its
	// default. Subprotocols are offered to the server in their order, and
	// Extensions offered in theirs. The fields marked as a server's are
	// ignored.
	Options Options
	// TLSConfig configures TLS for wss:// URLs; nil means a zero
	// tls.Config, which trusts the system's roots. Dial uses a copy, whose
	// ServerName is the URL's host unless set, and whose NextProtos (ALPN)
	// is http/1.1 alone: the handshake is HTTP/1.1's Upgrade.
	TLSConfig *tls.Config
	// NetDialContext, when set, opens the connection in place of a
	// net.Dialer, as net/http's Transport.DialContext does: network is
	// "tcp", and addr the server's host:port (the URL's port, or 80 for
	// ws:// and 443 for wss://), or the proxy's when there is one. TLS runs
	// over the connection it returns.
	NetDialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Proxy returns the proxy to reach the server through, or nil for
	// none. nil means http.ProxyFromEnvironment, as in net/http: it is
	// given the request with an http:// (for ws://) or https:// (for
	// wss://) URL, so HTTP_PROXY, HTTPS_PROXY and NO_PROXY apply, and
	// loopback addresses are never proxied. To use no proxy whatever the
	// environment, return nil, nil.
	//
	// An http:// or https:// proxy is asked for a tunnel with CONNECT,
	// the URL's user and password becoming a Basic Proxy-Authorization;
	// TLS to an https:// proxy trusts what TLSConfig trusts. A socks5:// or
	// socks5h:// proxy is asked with SOCKS5 (RFC 1928), signing in with
	// the URL's user and password when it has them (RFC 1929). Either way
	// the proxy resolves the server's host name.
	Proxy func(*http.Request) (*url.URL, error)
	// Header holds extra request headers, such as Origin or Authorization.
	// Host replaces the URL's host in the Host field. The fields of the
	// handshake itself (Upgrade, Connection, Sec-WebSocket-*) are Dial's:
	// setting one is an error.
	Header http.Header
	// HTTP2 opens the session as a stream of an HTTP/2 connection, with
	// the extended CONNECT of RFC 8441, in place of HTTP/1.1's Upgrade:
	// over TLS negotiated by ALPN for wss://, and over cleartext HTTP/2
	// with prior knowledge (h2c) for ws://. The server must have enabled
	// it (SETTINGS_ENABLE_CONNECT_PROTOCOL); a server that has not is
	// reported as an error, not retried over HTTP/1.1. (The client needs
	// no GODEBUG switch; a Go server needs the xconnect package.)
	HTTP2 bool
	// HTTP2Transport, when set with HTTP2, carries the stream, so that many
	// sessions share the transport's connections: an *http2.Transport of
	// golang.org/x/net/http2, for one (net/http's Transport of Go 1.26
	// refuses the :protocol field extended CONNECT needs). TLSConfig,
	// NetDialContext and Proxy are then the transport's business and are
	// ignored here. nil means a connection of the dial's own, through
	// NetDialContext, Proxy and TLSConfig like any dial, closed with its
	// session.
	HTTP2Transport http.RoundTripper
}

// HandshakeError is returned by Dial when the server does not accept the
// upgrade. Dial follows no redirect: a 3xx is reported here, and its
// Error names the Location.
type HandshakeError struct {
	StatusCode int         // the HTTP status the server answered with
	Reason     string      // its status text
	Header     http.Header // the response's header fields, such as WWW-Authenticate
	Body       string      // the start of the response body, 512 bytes at most
}

// Error reports the status the server answered with, and where a
// redirect pointed.
func (e *HandshakeError) Error() string {
	msg := fmt.Sprintf("wskit: handshake failed: expected status 101 but was %d %s", e.StatusCode, e.Reason)
	if isRedirect(e.StatusCode) {
		if loc := e.Header.Get("Location"); loc != "" {
			return msg + ": a redirect to " + strconv.Quote(loc) + ", which Dial does not follow"
		}
		return msg + ": a redirect without a Location"
	}
	if b := strings.TrimSpace(e.Body); b != "" {
		msg += ": " + b
	}
	return msg
}

// isRedirect reports whether status sends the client elsewhere with a
// Location, as net/http's client would follow.
func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// maxErrorBody bounds the part of a refusal's body kept in HandshakeError.
const maxErrorBody = 512

// Dial opens a client session to a ws:// or wss:// URL; http:// and
// https:// are taken for ws:// and wss://. The session masks every frame,
// as RFC 6455 requires of clients, and behaves like a server's default
// session: pongs, keepalive pings, the close handshake. Close it when done;
// its handler-less lifetime is the caller's.
//
// Options.HandshakeTimeout and ctx bound the whole dial: connecting, a
// proxy's tunnel, TLS and the opening handshake; an error then matches
// context.DeadlineExceeded or context.Canceled. ctx does not bound the
// session once Dial has returned. Options.MaxHandshakeSize bounds the
// response head.
//
// A server that refuses the upgrade is reported as a *HandshakeError; a
// 101 that breaks the rules of RFC 6455 §4.1 as an error matching
// ErrBadHandshake. Session.Response returns the 101 itself.
func Dial(ctx context.Context, rawURL string, opts *DialOptions) (*Session, error) {
	if opts == nil {
		opts = &DialOptions{}
	}
	if err := opts.Options.Validate(); err != nil {
		return nil, err
	}
	o := opts.Options.withDefaults()
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	switch u.Scheme { // url.Parse made it lower case
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	}
	addr, err := dialAddress(u)
	if err != nil {
		return nil, err
	}
	key := newClientKey()
	offers, err := codec.OfferExtensions(o.Extensions)
	if err != nil {
		return nil, err
	}
	req, err := clientRequest(u, opts.Header, key, o.Subprotocols, offers)
	if err != nil {
		return nil, err
	}
	if o.HandshakeTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, o.HandshakeTimeout,
			fmt.Errorf("the opening handshake took longer than Options.HandshakeTimeout (%v): %w", o.HandshakeTimeout, context.DeadlineExceeded))
		defer cancel()
	}
	dc := &dialCall{opts: opts, o: &o, u: u, key: key, offers: offers, req: req}
	var s *Session
	if opts.HTTP2 {
		s, err = dc.dialH2(ctx)
	} else {
		s, err = dc.dial(ctx, addr)
	}
	if err != nil {
		var herr *HandshakeError
		if errors.As(err, &herr) {
			return nil, herr
		}
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return nil, fmt.Errorf("wskit: dial %s: %w", u.Redacted(), err)
	}
	return s, nil
}

// dialCall is one call of Dial.
type dialCall struct {
	opts   *DialOptions
	o      *Options
	u      *url.URL // ws or wss
	key    string
	offers []codec.ExtensionOffer
	req    *http.Request // the opening handshake
}

// dial connects to addr, through a proxy if one is chosen, and opens the
// session.
func (dc *dialCall) dial(ctx context.Context, addr string) (*Session, error) {
	nc, release, err := dc.connect(ctx, addr)
	if err != nil {
		return nil, err
	}
	s, err := dc.upgrade(ctx, nc, release)
	if err != nil {
		release()
		nc.Close()
		return nil, err
	}
	return s, nil
}

// connect opens a connection to addr, through a proxy if one is chosen,
// whose I/O ctx guards until release.
func (dc *dialCall) connect(ctx context.Context, addr string) (nc net.Conn, release func() bool, err error) {
	proxy, err := dc.proxyFor(ctx)
	if err != nil {
		return nil, nil, err
	}
	connectTo := addr
	if proxy != nil {
		if connectTo, err = proxyAddress(proxy); err != nil {
			return nil, nil, err
		}
	}
	raw, err := dc.netDial(ctx, connectTo)
	if err != nil {
		if proxy != nil {
			err = fmt.Errorf("proxy %s: %w", proxy.Redacted(), err)
		}
		return nil, nil, err
	}
	release = guard(ctx, raw)
	nc = raw
	if proxy != nil {
		if nc, err = dc.tunnel(ctx, raw, proxy, addr); err != nil {
			release()
			raw.Close()
			return nil, nil, fmt.Errorf("proxy %s: %w", proxy.Redacted(), err)
		}
	}
	return nc, release, nil
}

// netDial opens a TCP connection to addr.
func (dc *dialCall) netDial(ctx context.Context, addr string) (net.Conn, error) {
	if dc.opts.NetDialContext == nil {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	nc, err := dc.opts.NetDialContext(ctx, "tcp", addr)
	if err == nil && nc == nil {
		err = errors.New("DialOptions.NetDialContext returned neither a connection nor an error")
	}
	return nc, err
}

// upgrade runs TLS when the URL asks for it, then the opening handshake,
// on nc, whose I/O ctx guards until release.
func (dc *dialCall) upgrade(ctx context.Context, nc net.Conn, release func() bool) (*Session, error) {
	if dc.u.Scheme == "wss" {
		tc := tls.Client(nc, dc.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, err
		}
		nc = tc
	}
	if _, err := nc.Write(appendUpgradeRequest(nil, dc.req)); err != nil {
		return nil, err
	}
	limit := dc.o.MaxHandshakeSize
	hr := &headReader{r: nc, n: limit}
	br := handshakeReaders.Get().(*bufio.Reader)
	br.Reset(hr)
	defer func() {
		br.Reset(nil)
		handshakeReaders.Put(br)
	}()
	resp, err := readResponse(br, hr, limit, dc.req, ErrBadHandshake)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		herr := &HandshakeError{StatusCode: resp.StatusCode, Header: resp.Header}
		_, herr.Reason, _ = strings.Cut(resp.Status, " ")
		hr.n += maxErrorBody // the body's start, beyond the head's bound
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		herr.Body = string(body)
		return nil, herr
	}
	protocol, accepted, err := checkResponse(resp, dc.key, dc.o.Subprotocols, dc.offers)
	if err != nil {
		return nil, err
	}
	exts, err := codec.ConfirmExtensions(dc.o.Extensions, accepted)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadHandshake, err)
	}
	if !release() {
		codec.ReleaseExtensions(exts)
		return nil, ctx.Err()
	}
	cfg := connConfig(dc.o, codec.Client, false)
	cfg.Codec.Extensions = exts
	c := wsconn.New(nc, peekBuffered(br), cfg)
	dc.req.RemoteAddr = nc.RemoteAddr().String()
	resp.Body = http.NoBody // a 101 has none; what follows is the session's
	if tc, ok := nc.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		resp.TLS = &cs
	}
	s := newSession(c, dc.o, dc.req, protocol, true)
	s.resp = resp
	return s, nil
}

// tlsConfig returns the configuration of TLS to the server: a copy of
// DialOptions.TLSConfig, completed.
func (dc *dialCall) tlsConfig() *tls.Config {
	cfg := dc.opts.TLSConfig.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = dc.u.Hostname()
	}
	cfg.NextProtos = []string{"http/1.1"}
	return cfg
}

// dialAddress returns the host:port to connect to for a ws or wss URL.
func dialAddress(u *url.URL) (string, error) {
	var port string
	switch u.Scheme {
	case "ws":
		port = "80"
	case "wss":
		port = "443"
	default:
		return "", fmt.Errorf("wskit: URL %s: the scheme must be ws or wss (or http or https)", u.Redacted())
	}
	if u.Host == "" {
		return "", fmt.Errorf("wskit: URL %s has no host", u.Redacted())
	}
	if p := u.Port(); p != "" {
		port = p
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// guard makes I/O on nc obey ctx: when ctx ends (cancelled, or past its
// deadline), a read or write in progress returns. Only then, so that a
// failed read finds ctx.Err set and the error can say why. release lifts
// the guard and reports whether ctx was still live; if not, nc is
// unusable.
func guard(ctx context.Context, nc net.Conn) (release func() bool) {
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(aLongTimeAgo) })
	return func() bool {
		if !stop() {
			return false
		}
		nc.SetDeadline(time.Time{})
		return true
	}
}

// aLongTimeAgo is a deadline in the past: it makes blocked I/O return.
var aLongTimeAgo = time.Unix(1, 0)

// handshakeReaders hold the buffers responses are read with; bytes the
// server sent after its 101 move to the session's own read buffer.
var handshakeReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
