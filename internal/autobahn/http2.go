package autobahn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// HTTP2 runs cases over WebSockets on HTTP/2 (RFC 8441): each case's
// connection is an extended CONNECT stream (:protocol websocket) of one
// HTTP/2 connection that every case shares, as a browser shares the
// connection it holds to an origin, rather than a TCP connection with an
// HTTP/1.1 upgrade. The URL stays ws://; the connection is cleartext
// HTTP/2 with prior knowledge (h2c).
//
// What a case does to its TCP connection it does to its stream: the
// request body carries what the client sends and the response body what the
// server sends; the client's close is the end of the request body
// (END_STREAM), and the server's the end of the response. A stream the
// server has not ended within closeHandshakeTimeout of the client's close
// is cancelled (RST_STREAM), as a TCP connection would be cut.
//
// The client uses golang.org/x/net/http2's Transport, which sends the
// :protocol pseudo-header once the server has advertised
// SETTINGS_ENABLE_CONNECT_PROTOCOL; the framing over the stream is this
// package's own, as over TCP.
type HTTP2 struct {
	tr    *http2.Transport
	conns atomic.Int32 // TCP connections dialed
}

// NewHTTP2 returns a runner whose cases share one HTTP/2 connection, made
// when the first case starts. Close it when done.
func NewHTTP2() *HTTP2 {
	h := &HTTP2{}
	h.tr = &http2.Transport{
		AllowHTTP: true, // h2c: ws:// URLs
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if err == nil {
				h.conns.Add(1)
			}
			return c, err
		},
	}
	return h
}

// Run runs one case as a stream, as the package's Run does over TCP.
func (h *HTTP2) Run(ctx context.Context, url string, c Case, timeout time.Duration) Result {
	if timeout <= 0 {
		timeout = c.limit
	}
	return runCase(ctx, url, c, timeout, h.dial)
}

// Conns returns the number of HTTP/2 connections the runner has opened:
// one, unless the server closed the first.
func (h *HTTP2) Conns() int { return int(h.conns.Load()) }

// Close closes the runner's connections.
func (h *HTTP2) Close() { h.tr.CloseIdleConnections() }

// dial opens a case's stream: an extended CONNECT to url's path, with the
// version and the permessage-deflate offers of an upgrade and no key. It
// returns the stream as a net.Conn (never bytes read past the response:
// the response has its own frames) and the permessage-deflate parameters
// the server accepted.
func (h *HTTP2) dial(ctx context.Context, rawURL string, offers []deflateOffer) (net.Conn, []byte, *deflateParams, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, nil, err
	}
	if u.Scheme != "ws" {
		return nil, nil, nil, fmt.Errorf("unsupported URL scheme %q over HTTP/2 (only ws://, as h2c)", u.Scheme)
	}
	hu := *u
	hu.Scheme = "http"
	pr, pw := io.Pipe()
	// The stream outlives the dial: ctx bounds only the wait for the
	// response.
	streamCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	header := http.Header{
		":protocol":             {"websocket"},
		"Sec-Websocket-Version": {"13"},
		"User-Agent":            {"wskit-autobahn"},
	}
	if len(offers) > 0 {
		header.Set("Sec-Websocket-Extensions", offerHeader(offers))
	}
	req := (&http.Request{
		Method: http.MethodConnect, URL: &hu, Host: u.Host, Header: header,
		Proto: "HTTP/2", ProtoMajor: 2, Body: pr, ContentLength: -1,
	}).WithContext(streamCtx)
	stop := context.AfterFunc(ctx, cancel)
	resp, err := h.tr.RoundTrip(req)
	if !stop() && err == nil {
		resp.Body.Close()
		err = ctx.Err()
	}
	fail := func(err error) (net.Conn, []byte, *deflateParams, error) {
		pw.Close()
		cancel()
		return nil, nil, nil, err
	}
	if err != nil {
		return fail(fmt.Errorf("HTTP/2 (h2c): %w", err))
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return fail(&statusError{line: resp.Proto + " " + resp.Status})
	}
	var pmd *deflateParams
	if v := resp.Header.Values("Sec-Websocket-Extensions"); len(v) > 0 {
		if len(offers) == 0 {
			err = fmt.Errorf("server accepted extensions %q that were not offered", v)
		} else {
			pmd, err = negotiate(offers, v)
		}
	}
	if v := resp.Header.Values("Sec-Websocket-Protocol"); err == nil && len(v) > 0 {
		err = fmt.Errorf("server chose subprotocol %q that was not offered", v)
	}
	if err != nil {
		resp.Body.Close()
		return fail(err)
	}
	return &h2Conn{body: resp.Body, pw: pw, cancel: cancel, remote: addr(u.Host), ended: make(chan struct{})}, nil, pmd, nil
}

// h2Conn is a case's stream seen as the net.Conn the session expects.
type h2Conn struct {
	body   io.ReadCloser  // the response: what the server sends
	pw     *io.PipeWriter // the request body: what we send
	cancel context.CancelFunc
	remote net.Addr

	ended     chan struct{} // closed once the response has ended
	endOnce   sync.Once
	closeOnce sync.Once

	mu     sync.Mutex
	wtimer *time.Timer // at the write deadline
}

// Read reads the response body; its end is the server's close of the
// connection.
func (c *h2Conn) Read(p []byte) (int, error) {
	n, err := c.body.Read(p)
	if err != nil {
		c.endOnce.Do(func() { close(c.ended) })
	}
	return n, err
}

// Write hands p to the transport, which sends it as DATA frames as the
// stream's flow control allows.
func (c *h2Conn) Write(p []byte) (int, error) {
	n, err := c.pw.Write(p)
	if errors.Is(err, io.ErrClosedPipe) {
		err = net.ErrClosed
	}
	return n, err
}

// Close ends the request body after what was written, as a TCP close sends
// FIN after the queued bytes: cancelling the stream at once could drop a
// close frame the transport has not sent yet. The stream is cancelled once
// the server has ended its response or closeHandshakeTimeout has passed;
// until then Read goes on, and the session's reader ends with the stream.
func (c *h2Conn) Close() error {
	c.closeOnce.Do(func() {
		c.pw.Close()
		go func() {
			t := time.NewTimer(closeHandshakeTimeout)
			select {
			case <-c.ended:
			case <-t.C:
			}
			t.Stop()
			c.cancel()
		}()
	})
	return nil
}

// SetWriteDeadline cancels the stream when a write is still blocked at t
// (the server does not read, and flow control holds the rest back).
func (c *h2Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wtimer != nil {
		c.wtimer.Stop()
		c.wtimer = nil
	}
	if !t.IsZero() {
		c.wtimer = time.AfterFunc(time.Until(t), func() {
			c.pw.CloseWithError(os.ErrDeadlineExceeded)
			c.cancel()
		})
	}
	return nil
}

// SetDeadline and SetReadDeadline are not used on a stream: the dial is
// bounded by its context, and the session by its own timers.
func (c *h2Conn) SetDeadline(t time.Time) error   { return c.SetWriteDeadline(t) }
func (c *h2Conn) SetReadDeadline(time.Time) error { return nil }
func (c *h2Conn) LocalAddr() net.Addr             { return addr("") }
func (c *h2Conn) RemoteAddr() net.Addr            { return c.remote }

// addr is an address known by its text only.
type addr string

func (a addr) Network() string { return "tcp" }
func (a addr) String() string  { return string(a) }
