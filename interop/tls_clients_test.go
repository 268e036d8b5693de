package interop

import (
	"context"
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"
	"github.com/wskit/wskit"
	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/poller"
)

// TestTLSGorillaClient drives the TLS server under test with gorilla's
// client over crypto/tls (Dialer.TLSClientConfig), on each server variant,
// over TLS 1.3 and over TLS 1.2 (MaxVersion): the texts of echoTexts and
// binary messages of echoSizes (up to 1 MiB) come back, pings get their
// pongs, a close from either side completes its handshake, and over TLS 1.3
// the server's TLS stream ends with a close_notify after the close
// handshake. Later connections resume the first one's TLS session. Each
// session must be on the variant's engine and route kind.
func TestTLSGorillaClient(t *testing.T) {
	forEachTLSVariant(t, nil, func(t *testing.T, srv *echoServer, v tlsVersion) {
		t.Run("echo", func(t *testing.T) {
			c, state, tt := gorillaDialTLS(t, srv, "/echo", v, false)
			for _, tc := range echoTexts {
				gorillaEcho1(t, c, websocket.TextMessage, []byte(tc.text), "text "+tc.name)
			}
			for _, n := range echoSizes {
				gorillaEcho1(t, c, websocket.BinaryMessage, pattern(n), "binary")
			}
			gorillaClose(t, c, frame.CloseNormal, "gorilla done")
			tt.wantCloseNotify(t, state)
		})
		t.Run("ping", func(t *testing.T) {
			c, _, _ := gorillaDialTLS(t, srv, "/echo", v, false)
			gorillaPings(t, c)
		})
		t.Run("close-4000", func(t *testing.T) {
			c, state, tt := gorillaDialTLS(t, srv, "/echo", v, false)
			gorillaClose(t, c, 4000, "application code, ünïcode reason")
			tt.wantCloseNotify(t, state)
		})
		t.Run("resumed", func(t *testing.T) {
			// Later connections resume the first one's session with a
			// ticket: the server's handshake differs (no certificate),
			// and it sends tickets again.
			cache := tls.NewLRUClientSessionCache(4)
			for i := range 3 {
				c, state, tt := gorillaDialTLSWith(t, srv, "/echo", v, func(cfg *tls.Config) { cfg.ClientSessionCache = cache })
				if state.DidResume != (i > 0) {
					t.Errorf("connection %d: resumed %v, want %v", i, state.DidResume, i > 0)
				}
				gorillaEcho1(t, c, websocket.BinaryMessage, pattern(70000), "binary")
				gorillaClose(t, c, frame.CloseNormal, "")
				tt.wantCloseNotify(t, state)
			}
		})
		t.Run("server-close", func(t *testing.T) {
			c, state, tt := gorillaDialTLS(t, srv, "/hello", v, false)
			mt, p, err := c.ReadMessage()
			if err != nil || mt != websocket.TextMessage || string(p) != helloText {
				t.Fatalf("first read: type %d %q, %v; want text %q", mt, p, err, helloText)
			}
			_, _, err = c.ReadMessage()
			wantGorillaClose(t, err, helloCode, helloReason)
			wantEOF(t, c)
			tt.wantCloseNotify(t, state)
		})
	})
}

// gorillaDialTLS dials path on srv over TLS with gorilla's client, offering
// at most version v (and permessage-deflate with compress), over a tapped
// connection; it checks the session (checkTLSSession) unless compress is
// set (the deflate tests go through a proxy and check it themselves).
func gorillaDialTLS(t *testing.T, srv *echoServer, path string, v tlsVersion, compress bool) (*websocket.Conn, tls.ConnectionState, *tappedTLS) {
	t.Helper()
	c, resp, tt := gorillaDialTLSAt(t, srv.Addr, path, v, compress, nil)
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !compress && ext != "" {
		t.Errorf("Sec-WebSocket-Extensions %q for a client that offered none", ext)
	}
	state := c.NetConn().(*tls.Conn).ConnectionState()
	if !compress {
		checkTLSSession(t, srv, c.LocalAddr(), state, v)
	}
	return c, state, tt
}

// gorillaDialTLSWith is gorillaDialTLS without compression, with
// configure applied to the client's TLS configuration.
func gorillaDialTLSWith(t *testing.T, srv *echoServer, path string, v tlsVersion, configure func(*tls.Config)) (*websocket.Conn, tls.ConnectionState, *tappedTLS) {
	t.Helper()
	c, _, tt := gorillaDialTLSAt(t, srv.Addr, path, v, false, configure)
	state := c.NetConn().(*tls.Conn).ConnectionState()
	checkTLSSession(t, srv, c.LocalAddr(), state, v)
	return c, state, tt
}

// gorillaDialTLSAt is gorillaDialTLS to addr, without the checks, with
// configure (when not nil) applied to the client's TLS configuration.
func gorillaDialTLSAt(t *testing.T, addr, path string, v tlsVersion, compress bool, configure func(*tls.Config)) (*websocket.Conn, *http.Response, *tappedTLS) {
	t.Helper()
	tt := newTappedTLS(v)
	if configure != nil {
		configure(tt.cfg)
	}
	d := websocket.Dialer{
		HandshakeTimeout:  stepTimeout,
		EnableCompression: compress,
		TLSClientConfig:   tt.cfg,
		NetDialContext:    tt.dial,
	}
	url := wssURL(addr, path)
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(4 * stepTimeout))
	return c, resp, tt
}

// TestTLSCoderClient drives the TLS server under test with coder's client,
// whose upgrade goes through an http.Client with a TLS transport, on each
// server variant, over TLS 1.3 and TLS 1.2: the echoes of
// TestTLSGorillaClient, Ping beside a running Read, and a close from
// either side.
func TestTLSCoderClient(t *testing.T) {
	forEachTLSVariant(t, nil, func(t *testing.T, srv *echoServer, v tlsVersion) {
		t.Run("echo", func(t *testing.T) {
			ctx := coderContext(t)
			c, _ := coderDialTLS(ctx, t, srv, srv.Addr, "/echo", v, coder.CompressionDisabled)
			for _, tc := range echoTexts {
				coderEcho1(ctx, t, c, coder.MessageText, []byte(tc.text), "text "+tc.name)
			}
			for _, n := range echoSizes {
				coderEcho1(ctx, t, c, coder.MessageBinary, pattern(n), "binary")
			}
			// coder closes the connection once it has the server's close
			// frame, without waiting for the server's end of the stream, so
			// the close_notify is checked with gorilla only.
			coderClose(t, c, coder.StatusNormalClosure, "coder done")
		})
		t.Run("ping", func(t *testing.T) {
			ctx := coderContext(t)
			c, _ := coderDialTLS(ctx, t, srv, srv.Addr, "/echo", v, coder.CompressionDisabled)
			coderPings(ctx, t, c)
		})
		t.Run("server-close", func(t *testing.T) {
			ctx := coderContext(t)
			c, _ := coderDialTLS(ctx, t, srv, srv.Addr, "/hello", v, coder.CompressionDisabled)
			typ, p, err := c.Read(ctx)
			if err != nil || typ != coder.MessageText || string(p) != helloText {
				t.Fatalf("first read: %v %q, %v; want text %q", typ, p, err, helloText)
			}
			_, _, err = c.Read(ctx)
			wantCoderClose(t, err, helloCode, helloReason)
		})
	})
}

// coderDialTLS dials path at addr (srv's, or a proxy's in front of it) over
// TLS with coder's client, through an http.Client whose transport offers
// at most version v over a tapped connection. Dialing srv directly, it
// checks the session (checkTLSSession).
func coderDialTLS(ctx context.Context, t *testing.T, srv *echoServer, addr, path string, v tlsVersion, mode coder.CompressionMode) (*coder.Conn, tls.ConnectionState) {
	t.Helper()
	tt := newTappedTLS(v)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tt.cfg, DialContext: tt.dial}}
	dctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	url := wssURL(addr, path)
	c, resp, err := coder.Dial(dctx, url, &coder.DialOptions{HTTPClient: hc, CompressionMode: mode})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	c.SetReadLimit(2 * maxMessageSize)
	if resp.TLS == nil {
		t.Fatalf("dial %s: the response has no TLS state", url)
	}
	if addr == srv.Addr {
		checkTLSSession(t, srv, tt.tap().LocalAddr(), *resp.TLS, v)
	}
	return c, *resp.TLS
}

// TestTLSDeflate echoes deflateMessages with permessage-deflate over TLS,
// between the server under test (codec.PerMessageDeflate with the client's
// window unbounded, so that coder may keep its context) and gorilla's
// client with EnableCompression, then coder's with
// CompressionContextTakeover, on each server variant, over TLS 1.3 and
// TLS 1.2. A countingProxy in front of the server counts the TLS records'
// bytes: the messages must have gone compressed both ways, and both the
// answer the peer got and Session.Extensions() must be the one agreed
// ("permessage-deflate; server_no_context_takeover;
// client_no_context_takeover" with gorilla, "permessage-deflate", context
// takeover both ways, with coder).
func TestTLSDeflate(t *testing.T) {
	ms := deflateMessages()
	forEachTLSVariant(t, withDeflate(codec.PerMessageDeflate{ClientMaxWindowBits: 15}), func(t *testing.T, srv *echoServer, v tlsVersion) {
		proxy := startProxy(t, srv.Addr)
		t.Run("gorilla", func(t *testing.T) {
			before := len(srv.sessionInfos())
			up0, down0 := proxy.counts()
			c, resp, _ := gorillaDialTLSAt(t, proxy.Addr, "/echo", v, true, nil)
			answer := resp.Header.Get("Sec-WebSocket-Extensions")
			wantExtensions(t, "the answer gorilla got", answer, gorillaDeflateAnswer)
			wantServerExtensions(t, srv, before, gorillaDeflateAnswer, answer)
			checkServed(t, srv, srv.sessionInfos()[before], c.NetConn().(*tls.Conn).ConnectionState(), v)
			gorillaEchoMessages(t, c, ms)
			gorillaClose(t, c, frame.CloseNormal, "gorilla done")
			up, down := proxy.counts()
			wantCompressed(t, "gorilla → server", up-up0, ms, 2)
			wantCompressed(t, "server → gorilla", down-down0, ms, 2)
		})
		t.Run("coder", func(t *testing.T) {
			const want = "permessage-deflate"
			before := len(srv.sessionInfos())
			up0, down0 := proxy.counts()
			ctx := coderContext(t)
			c, state := coderDialTLS(ctx, t, srv, proxy.Addr, "/echo", v, coder.CompressionContextTakeover)
			wantServerExtensions(t, srv, before, want, want)
			checkServed(t, srv, srv.sessionInfos()[before], state, v)
			coderEchoMessages(ctx, t, c, ms)
			coderClose(t, c, coder.StatusNormalClosure, "coder done")
			up, down := proxy.counts()
			wantCompressed(t, "coder → server", up-up0, ms, 2)
			wantCompressed(t, "server → coder", down-down0, ms, 2)
		})
	})
}

// TestTLSLoopPath shows from outside which TLS sessions the poll engine
// serves on the event loop: it opens loopPathSessions sessions to /echo
// with gorilla's client, each echoing a message, and counts the test
// process's goroutines (server and clients are in it; gorilla's client
// holds none per connection). Over TLS 1.3 to the Events route of
// poll-events, the loop path, they must add almost none; over TLS 1.2 to
// the same route, over TLS 1.3 to poll's default sessions and to std, at
// least one each. The other TLS tests rely on this by construction. The
// server's certificate may come from GetCertificate, and its whole
// configuration from GetConfigForClient: the loop path stays.
func TestTLSLoopPath(t *testing.T) {
	const n = loopPathSessions
	cases := []struct {
		name    string
		variant serverVariant
		version tlsVersion
		tls     func(*tls.Config) // changes the server's TLSConfig
	}{
		{"", serverVariants[2], tls13, nil},
		{"", serverVariants[2], tls12, nil},
		{"", serverVariants[1], tls13, nil},
		{"", serverVariants[0], tls13, nil},
		// The certificate from a callback: the configuration stays the
		// engine's own.
		{"GetCertificate", serverVariants[2], tls13, func(cfg *tls.Config) {
			cert := cfg.Certificates[0]
			cfg.Certificates = nil
			cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }
		}},
		// A configuration per client, as servers that pick one by SNI do.
		{"GetConfigForClient", serverVariants[2], tls13, func(cfg *tls.Config) {
			per := cfg.Clone()
			cfg.Certificates = nil
			cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return per, nil }
		}},
	}
	for _, c := range cases {
		loop := onLoop(c.variant, c.version.id)
		name := c.variant.name + "/" + c.version.name
		if c.name != "" {
			name += "/" + c.name
		}
		t.Run(name, func(t *testing.T) {
			if c.variant.engine == wskit.EnginePoll && !poller.Supported {
				t.Skip("the poll engine is not supported on this platform")
			}
			srv := newEchoServer(t, c.variant, func(o *wskit.Options) {
				withTLS(nil)(o)
				if c.tls != nil {
					c.tls(o.TLSConfig)
				}
			})
			// One session first, so that what the server starts once is
			// running.
			first, _, _ := gorillaDialTLS(t, srv, "/echo", c.version, false)
			gorillaEcho1(t, first, websocket.TextMessage, []byte("first"), "first")
			gorillaClose(t, first, frame.CloseNormal, "")
			base := settledGoroutines()
			var conns []*websocket.Conn
			for i := range n {
				conn, _, _ := gorillaDialTLS(t, srv, "/echo", c.version, false)
				gorillaEcho1(t, conn, websocket.BinaryMessage, pattern(100+i), "binary")
				conns = append(conns, conn)
			}
			grown := settledGoroutines() - base
			t.Logf("%d idle sessions over %s on %s: %d more goroutines (expected path: %s)", n, c.version.name, name, grown, tlsPath(c.variant, c.version.id))
			for _, conn := range conns {
				gorillaClose(t, conn, frame.CloseNormal, "")
			}
			switch {
			case loop && grown >= n/4:
				t.Errorf("%d sessions on the loop path added %d goroutines, want almost none", n, grown)
			case !loop && grown < n:
				t.Errorf("%d sessions served by net/http added %d goroutines, want at least %d", n, grown, n)
			}
		})
	}
}

// loopPathSessions is the number of sessions TestTLSLoopPath opens per
// case.
const loopPathSessions = 16

// TestTLSSessionRequest checks Session.Request() over TLS: on each server
// variant and TLS version, the request of a session that gorilla opened
// must carry the TLS state of its connection (r.TLS), as net/http's
// requests over TLS do, so that a handler can tell a wss:// session from a
// ws:// one. On the loop path (poll-events over TLS 1.3) the session keeps
// the state its handshake left for that.
func TestTLSSessionRequest(t *testing.T) {
	forEachTLSVariant(t, nil, func(t *testing.T, srv *echoServer, v tlsVersion) {
		c, _, _ := gorillaDialTLS(t, srv, "/echo", v, false)
		info, _ := srv.sessionFrom(c.LocalAddr().String())
		gorillaClose(t, c, frame.CloseNormal, "")
		if !info.TLS {
			t.Errorf("Session.Request().TLS is nil for a session over %s on %s, served by %s",
				tls.VersionName(v.id), srv.Variant.name, tlsPath(srv.Variant, v.id))
		}
	})
}
