package wskit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/internal/wsconn"
	"golang.org/x/net/http2"
)

// dialH2 opens the session as an RFC 8441 stream: an extended CONNECT
// request on an HTTP/2 connection of the transport, the request body
// carrying what the client sends and the response body what it receives.
func (dc *dialCall) dialH2(ctx context.Context) (*Session, error) {
	tr := dc.opts.HTTP2Transport
	var own *ownConn
	if tr == nil {
		own = new(ownConn)
		tr = dc.h2Transport(own)
		defer func() {
			if own != nil { // the dial failed
				own.close()
			}
		}()
	}
	u := *dc.u
	u.Scheme = "https"
	if dc.u.Scheme == "ws" {
		u.Scheme = "http"
	}
	pr, pw := io.Pipe()
	header := dc.req.Header.Clone()
	for _, k := range []string{"Upgrade", "Connection", "Sec-Websocket-Key"} {
		header.Del(k)
	}
	header.Set(":protocol", "websocket")
	// The stream outlives the dial: its context is not the dial's, which
	// bounds only the wait for the response.
	streamCtx, cancelStream := context.WithCancel(context.WithoutCancel(ctx))
	req := (&http.Request{
		Method: http.MethodConnect, URL: &u, Host: dc.req.Host, Header: header,
		Proto: "HTTP/2", ProtoMajor: 2, Body: pr, ContentLength: -1,
	}).WithContext(streamCtx)
	stop := context.AfterFunc(ctx, cancelStream)
	resp, err := tr.RoundTrip(req)
	if !stop() {
		if err == nil {
			resp.Body.Close()
		}
		pw.Close()
		return nil, context.Cause(ctx)
	}
	if err != nil {
		cancelStream()
		pw.Close()
		if dc.u.Scheme == "ws" {
			return nil, fmt.Errorf("HTTP/2 with prior knowledge (h2c): %w", err)
		}
		return nil, fmt.Errorf("HTTP/2: %w", err)
	}
	fail := func(err error) (*Session, error) {
		resp.Body.Close()
		pw.Close()
		cancelStream()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		herr := &HandshakeError{StatusCode: resp.StatusCode, Header: resp.Header}
		_, herr.Reason, _ = strings.Cut(resp.Status, " ")
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		herr.Body = string(body)
		return fail(herr)
	}
	protocol, accepted, err := checkSelected(resp.Header, dc.o.Subprotocols, dc.offers)
	if err != nil {
		return fail(err)
	}
	exts, err := codec.ConfirmExtensions(dc.o.Extensions, accepted)
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrBadHandshake, err))
	}
	st := &h2ClientStream{bodyReader: newBodyReader(resp.Body), pw: pw, cancel: cancelStream,
		remote: addrString{"tcp", u.Host}, own: own}
	st.cutWrite = st.cutOff
	own = nil
	cfg := connConfig(dc.o, codec.Client, false)
	cfg.Codec.Extensions = exts
	c := wsconn.New(st, nil, cfg)
	dc.req.RemoteAddr = u.Host
	dc.req.Method, dc.req.Proto, dc.req.ProtoMajor, dc.req.ProtoMinor = http.MethodConnect, "HTTP/2.0", 2, 0
	s := newSession(c, dc.o, dc.req, protocol, true)
	resp.Body = http.NoBody // the session's now
	s.resp = resp
	return s, nil
}

// ownConn is the connection of a transport that serves one session.
type ownConn struct {
	mu sync.Mutex
	nc net.Conn
}

func (o *ownConn) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.nc != nil {
		o.nc.Close()
	}
}

// h2Transport returns the transport of a dial over HTTP/2 without a
// transport of the caller's: over TLS negotiated by ALPN for wss, and
// with prior knowledge for ws, on a connection made as Dial makes them.
// The connection is recorded in own, to be closed with the session: the
// transport would keep it open.
func (dc *dialCall) h2Transport(own *ownConn) *http2.Transport {
	return &http2.Transport{
		AllowHTTP: true, // h2c, for ws://
		DialTLSContext: func(ctx context.Context, _, addr string, _ *tls.Config) (net.Conn, error) {
			nc, release, err := dc.connect(ctx, addr)
			if err != nil {
				return nil, err
			}
			if dc.u.Scheme == "wss" {
				cfg := dc.tlsConfig()
				// http/1.1 too, so that a server without HTTP/2 says so by
				// choosing it rather than with an alert.
				cfg.NextProtos = []string{"h2", "http/1.1"}
				tc := tls.Client(nc, cfg)
				err = tc.HandshakeContext(ctx)
				if p := tc.ConnectionState().NegotiatedProtocol; err == nil && p != "h2" {
					err = fmt.Errorf("the server does not offer HTTP/2: ALPN chose %q", p)
				}
				nc = tc
			}
			if err == nil && !release() {
				err = context.Cause(ctx)
			}
			if err != nil {
				release()
				nc.Close()
				return nil, err
			}
			own.mu.Lock()
			defer own.mu.Unlock()
			if own.nc != nil {
				own.nc.Close()
			}
			own.nc = nc
			return nc, nil
		},
	}
}

// h2ClientStream is a client's RFC 8441 stream seen as a net.Conn: the
// response body in, the request body out.
type h2ClientStream struct {
	*bodyReader                // the response: what the server sends
	pw          *io.PipeWriter // the request body: what we send
	cancel      context.CancelFunc
	remote      net.Addr
	own         *ownConn // the connection to close with the stream; nil if shared

	wd       deadline    // the request body's writes (see SetWriteDeadline)
	cutWrite func()      // cutOff, made once: what the deadline calls
	cut      atomic.Bool // a write was cut by the deadline: the stream is over
}

// h2Linger bounds the wait of a closed stream for the server's end.
const h2Linger = 2 * time.Second

func (s *h2ClientStream) Write(p []byte) (int, error) {
	if !s.wd.begin(s.cutWrite) {
		return 0, os.ErrDeadlineExceeded
	}
	n, err := s.pw.Write(p)
	s.wd.end()
	switch {
	case s.cut.Load():
		err = os.ErrDeadlineExceeded
	case errors.Is(err, io.ErrClosedPipe):
		err = net.ErrClosed
	}
	return n, err
}

// SetWriteDeadline bounds the writes of the request body. A write that is
// waiting for the transport when the deadline passes (HTTP/2's flow
// control: the server is not reading) fails, and the stream with it: a
// body cannot take back part of a write. Once the deadline has passed,
// writes fail at once until it moves.
func (s *h2ClientStream) SetWriteDeadline(t time.Time) error {
	s.wd.set(t)
	return nil
}

// cutOff ends the write waiting when the deadline passes.
func (s *h2ClientStream) cutOff() {
	s.cut.Store(true)
	s.pw.CloseWithError(os.ErrDeadlineExceeded)
}

// Close ends the request body after what was written (cancelling the
// stream at once could drop a close frame the transport had not sent yet)
// and lets the server end the response, which it does once it has closed
// too; a goroutine waits for that, for h2Linger at most, then cancels the
// stream.
func (s *h2ClientStream) Close() error {
	if !s.stop() {
		return net.ErrClosed
	}
	s.pw.Close()
	go func() {
		t := time.NewTimer(h2Linger)
		select {
		case <-s.ended:
		case <-t.C:
		}
		t.Stop()
		s.body.Close()
		s.cancel()
		if s.own != nil {
			s.own.close()
		}
	}()
	return nil
}

func (s *h2ClientStream) LocalAddr() net.Addr  { return addrString{"tcp", ""} }
func (s *h2ClientStream) RemoteAddr() net.Addr { return s.remote }

// SetDeadline sets the read and write deadlines.
func (s *h2ClientStream) SetDeadline(t time.Time) error {
	s.SetWriteDeadline(t)
	return s.SetReadDeadline(t)
}
