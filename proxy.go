package wskit

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
)

// Proxies between Dial and the server: an HTTP proxy asked for a tunnel
// with CONNECT (RFC 9110 §9.3.6), over TCP or TLS, or a SOCKS5 proxy
// (socks5.go). The tunnel is made on the connection to the proxy before
// anything else; TLS to the server and the opening handshake then run
// through it.

// proxyFor returns the proxy DialOptions.Proxy chooses for the dial, or nil
// for none. Like net/http, it shows the proxy function an http or https
// URL, so that http.ProxyFromEnvironment reads HTTP_PROXY or HTTPS_PROXY.
func (dc *dialCall) proxyFor(ctx context.Context) (*url.URL, error) {
	choose := dc.opts.Proxy
	if choose == nil {
		choose = http.ProxyFromEnvironment
	}
	u := *dc.u
	u.Scheme = "http"
	if dc.u.Scheme == "wss" {
		u.Scheme = "https"
	}
	req := &http.Request{
		Method:     http.MethodGet,
		URL:        &u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     dc.req.Header.Clone(),
		Host:       dc.req.Host,
	}
	p, err := choose(req.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("choosing a proxy: %w", err)
	}
	return p, nil
}

// proxyAddress returns the host:port of proxy, with the default port of
// its scheme, or an error for a scheme Dial cannot use.
func proxyAddress(proxy *url.URL) (string, error) {
	var port string
	switch proxy.Scheme {
	case "http":
		port = "80"
	case "https":
		port = "443"
	case "socks5", "socks5h":
		port = "1080"
	default:
		return "", fmt.Errorf("proxy %s: unsupported scheme (want http, https, socks5 or socks5h)", proxy.Redacted())
	}
	if proxy.Host == "" {
		return "", fmt.Errorf("proxy %s has no host", proxy.Redacted())
	}
	if p := proxy.Port(); p != "" {
		port = p
	}
	return net.JoinHostPort(proxy.Hostname(), port), nil
}

// tunnel asks the proxy on nc for a connection to addr and returns the
// connection to write to the server through.
func (dc *dialCall) tunnel(ctx context.Context, nc net.Conn, proxy *url.URL, addr string) (net.Conn, error) {
	switch proxy.Scheme {
	case "socks5", "socks5h":
		return nc, socksConnect(nc, proxy.User, addr)
	case "https":
		// TLS to the proxy trusts what TLSConfig trusts, as net/http's
		// TLSClientConfig does for both, but names the proxy.
		cfg := dc.tlsConfig()
		cfg.ServerName = proxy.Hostname()
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, err
		}
		nc = tc
	}
	return nc, httpConnect(nc, proxy.User, addr, dc.o.MaxHandshakeSize)
}

// errBadProxyAnswer is matched by an answer to CONNECT that is too long or
// not HTTP.
var errBadProxyAnswer = errors.New("bad answer to CONNECT")

// httpConnect asks the HTTP proxy on nc for a tunnel to addr, sending
// user's name and password, if any, as Basic credentials. The answer's
// head is read with the bound of the server's, limit.
func httpConnect(nc net.Conn, user *url.Userinfo, addr string, limit int) error {
	b := make([]byte, 0, 256)
	b = append(b, "CONNECT "...)
	b = append(b, addr...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, addr...)
	b = append(b, "\r\n"...)
	if user != nil {
		password, _ := user.Password()
		credentials := base64.StdEncoding.EncodeToString([]byte(user.Username() + ":" + password))
		b = appendField(b, "Proxy-Authorization", "Basic "+credentials)
	}
	b = append(b, "\r\n"...)
	if _, err := nc.Write(b); err != nil {
		return err
	}

	hr := &headReader{r: nc, n: limit}
	br := handshakeReaders.Get().(*bufio.Reader)
	br.Reset(hr)
	defer func() {
		br.Reset(nil)
		handshakeReaders.Put(br)
	}()
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Host: addr}, Host: addr}
	resp, err := readResponse(br, hr, limit, req, errBadProxyAnswer)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("CONNECT %s: the proxy answered %s", addr, resp.Status)
	}
	if n := br.Buffered(); n > 0 {
		// Nothing may come through the tunnel before the client speaks.
		return fmt.Errorf("CONNECT %s: the proxy sent %d bytes after its answer", addr, n)
	}
	return nil
}
