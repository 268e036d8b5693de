package interop

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
)

// TestGorillaClient drives the server under test with gorilla/websocket's
// client, on each server variant.
func TestGorillaClient(t *testing.T) {
	forEachVariant(t, testGorillaClient)
}

func testGorillaClient(t *testing.T, srv *echoServer) {
	echoURL, helloURL := wsURL(srv, "/echo"), wsURL(srv, "/hello")

	for _, offer := range []struct {
		name     string
		compress bool
	}{{"plain", false}, {"offer-deflate", true}} {
		t.Run("echo-"+offer.name, func(t *testing.T) {
			c := gorillaDial(t, echoURL, offer.compress)
			for _, tc := range echoTexts {
				gorillaEcho1(t, c, websocket.TextMessage, []byte(tc.text), "text "+tc.name)
			}
			for _, n := range echoSizes {
				gorillaEcho1(t, c, websocket.BinaryMessage, pattern(n), "binary")
			}
			gorillaClose(t, c, frame.CloseNormal, "gorilla done")
		})
	}

	t.Run("ping", func(t *testing.T) {
		gorillaPings(t, gorillaDial(t, echoURL, false))
	})

	t.Run("close", func(t *testing.T) {
		c := gorillaDial(t, echoURL, false)
		gorillaClose(t, c, frame.CloseNormal, "gorilla done")
	})

	t.Run("close-4000", func(t *testing.T) {
		c := gorillaDial(t, echoURL, false)
		gorillaClose(t, c, 4000, "application code, ünïcode reason")
	})

	t.Run("server-close", func(t *testing.T) {
		c := gorillaDial(t, helloURL, false)
		mt, p, err := c.ReadMessage()
		if err != nil || mt != websocket.TextMessage || string(p) != helloText {
			t.Fatalf("first read: type %d %q, %v; want text %q", mt, p, err, helloText)
		}
		// gorilla's default close handler answers the close frame.
		_, _, err = c.ReadMessage()
		wantGorillaClose(t, err, helloCode, helloReason)
		wantEOF(t, c)
	})

	t.Run("too-big", func(t *testing.T) {
		c := gorillaDial(t, echoURL, false)
		// The server refuses the message once it reads its header; it may
		// close before the whole payload is written.
		if err := c.WriteMessage(websocket.BinaryMessage, pattern(maxMessageSize+1)); err != nil {
			t.Logf("write of %d bytes: %v", maxMessageSize+1, err)
		}
		_, _, err := c.ReadMessage()
		wantGorillaClose(t, err, int(frame.CloseMessageTooBig), "")
	})

	t.Run("cross-origin", func(t *testing.T) {
		h := http.Header{"Origin": {"http://elsewhere.example"}}
		c, resp, err := websocket.DefaultDialer.Dial(echoURL, h)
		if err == nil {
			c.Close()
			t.Fatal("cross-origin upgrade was accepted")
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-origin upgrade: %v, response %v; want 403", err, resp)
		}
	})
}

// gorillaPings sends pings of 0, 12 and 125 bytes on c, each answered by a
// pong with its payload, then closes with 1000 and reads the server's close.
func gorillaPings(t *testing.T, c *websocket.Conn) {
	t.Helper()
	pongs := make(chan string, 1)
	c.SetPongHandler(func(data string) error {
		pongs <- data
		return nil
	})
	// The pong handler runs inside a read, so a reader must be running.
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				readErr <- err
				return
			}
		}
	}()
	for _, payload := range [][]byte{{}, []byte("ping ✓ wskit"), pattern(frame.MaxControlPayload)} {
		// WriteControl may run beside the reading goroutine.
		if err := c.WriteControl(websocket.PingMessage, payload, time.Now().Add(stepTimeout)); err != nil {
			t.Fatalf("ping %s: %v", describe(payload), err)
		}
		select {
		case got := <-pongs:
			if got != string(payload) {
				t.Errorf("pong %s, want %s", describe([]byte(got)), describe(payload))
			}
		case err := <-readErr:
			t.Fatalf("read before the pong for %s: %v", describe(payload), err)
		case <-time.After(stepTimeout):
			t.Fatalf("no pong for %s within %v", describe(payload), stepTimeout)
		}
	}
	msg := websocket.FormatCloseMessage(int(frame.CloseNormal), "ping done")
	if err := c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(stepTimeout)); err != nil {
		t.Fatalf("write close: %v", err)
	}
	select {
	case err := <-readErr:
		wantGorillaClose(t, err, int(frame.CloseNormal), "")
	case <-time.After(stepTimeout):
		t.Fatalf("no close within %v", stepTimeout)
	}
}

func gorillaDial(t *testing.T, url string, compress bool) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: stepTimeout, EnableCompression: compress}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	ext := resp.Header.Get("Sec-WebSocket-Extensions")
	if compress && extensionNames(ext) != serverExtensions {
		t.Errorf("Sec-WebSocket-Extensions %q, want %q", ext, serverExtensions)
	}
	if !compress && ext != "" {
		t.Errorf("Sec-WebSocket-Extensions %q for a client that offered none", ext)
	}
	c.SetReadDeadline(time.Now().Add(4 * stepTimeout))
	return c
}

func gorillaEcho1(t *testing.T, c *websocket.Conn, mt int, p []byte, what string) {
	t.Helper()
	if err := c.WriteMessage(mt, p); err != nil {
		t.Fatalf("%s, write %s: %v", what, describe(p), err)
	}
	gotType, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("%s, read the echo of %s: %v", what, describe(p), err)
	}
	if gotType != mt || !bytes.Equal(got, p) {
		t.Errorf("%s: echo is type %d %s, want type %d %s", what, gotType, describe(got), mt, describe(p))
	}
}

// gorillaClose starts the close handshake with code and reason, and checks
// that the server answers with the same code, then closes the TCP connection.
func gorillaClose(t *testing.T, c *websocket.Conn, code frame.CloseCode, reason string) {
	t.Helper()
	if err := c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(int(code), reason)); err != nil {
		t.Fatalf("write close: %v", err)
	}
	_, _, err := c.ReadMessage()
	wantGorillaClose(t, err, int(code), "")
	wantEOF(t, c)
}

// wantGorillaClose checks that err is the close frame the server sent. An
// empty reason is not checked: RFC 6455 leaves the reason of a reply free.
func wantGorillaClose(t *testing.T, err error, code int, reason string) {
	t.Helper()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("read: %v, want a close frame with code %d", err, code)
	}
	switch {
	case ce.Code == websocket.CloseAbnormalClosure: // gorilla's own code for an EOF
		t.Errorf("the server closed the connection without a close frame (%v), want a close frame with code %d", ce, code)
	case ce.Code != code || (reason != "" && ce.Text != reason):
		t.Errorf("close frame from the server: %d %q, want %d %q", ce.Code, ce.Text, code, reason)
	default:
		t.Logf("close frame from the server: %d %q", ce.Code, ce.Text)
	}
}

// wantEOF checks that the server closes the TCP connection after the close
// handshake (RFC 6455 section 7.1.1: the server closes it first).
func wantEOF(t *testing.T, c *websocket.Conn) {
	t.Helper()
	nc := c.NetConn()
	nc.SetReadDeadline(time.Now().Add(stepTimeout))
	n, err := io.Copy(io.Discard, nc)
	if err != nil || n != 0 {
		t.Errorf("after the close handshake: %d more bytes, %v; want the server to close the TCP connection", n, err)
	}
}

// gorillaDeflateConfigs are the server configurations gorilla's client
// meets. gorilla offers and accepts only
// "permessage-deflate; server_no_context_takeover; client_no_context_takeover".
var gorillaDeflateConfigs = []deflateServerConfig{
	{"default", codec.PerMessageDeflate{}, gorillaDeflateAnswer},
	{"server-limits", codec.PerMessageDeflate{Level: 9, ServerMaxWindowBits: 9, ClientMaxWindowBits: 9}, gorillaDeflateAnswer},
}

// gorillaDeflateAnswer is the only answer gorilla's client accepts, and the
// only one its server gives.
const gorillaDeflateAnswer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// TestGorillaClientDeflate echoes deflateMessages between gorilla's client
// with EnableCompression and the server under test with permessage-deflate,
// on each server variant and gorillaDeflateConfigs, through a
// countingProxy. The answer must carry both no_context_takeover parameters,
// Session.Extensions() must be it, and the messages must go compressed both
// ways.
func TestGorillaClientDeflate(t *testing.T) {
	ms := deflateMessages()
	forEachDeflateVariant(t, gorillaDeflateConfigs, func(t *testing.T, srv *echoServer, c deflateServerConfig) {
		proxy := startProxy(t, srv.Addr)
		before := len(srv.sessionExtensions())
		up0, down0 := proxy.counts()
		d := websocket.Dialer{HandshakeTimeout: stepTimeout, EnableCompression: true}
		conn, resp, err := d.Dial("ws://"+proxy.Addr+"/echo", nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetReadDeadline(time.Now().Add(4 * stepTimeout))
		answer := resp.Header.Get("Sec-WebSocket-Extensions")
		wantExtensions(t, "the answer gorilla got", answer, c.want)
		wantServerExtensions(t, srv, before, c.want, answer)
		gorillaEchoMessages(t, conn, ms)
		gorillaClose(t, conn, frame.CloseNormal, "gorilla done")
		up, down := proxy.counts()
		wantCompressed(t, "gorilla → server", up-up0, ms, 2)
		wantCompressed(t, "server → gorilla", down-down0, ms, 2)
	})
}

// gorillaEchoMessages sends ms on c and reads each echo (see echoMessages).
func gorillaEchoMessages(t *testing.T, c *websocket.Conn, ms []wireMessage) {
	t.Helper()
	echoMessages(t, ms, func(m wireMessage) error {
		typ := websocket.TextMessage
		if m.Binary {
			typ = websocket.BinaryMessage
		}
		return c.WriteMessage(typ, m.Data)
	}, func() (bool, []byte, error) {
		typ, p, err := c.ReadMessage()
		return typ == websocket.BinaryMessage, p, err
	}, func() { c.Close() })
}

// TestGorillaServerDeflate runs a gorilla echo server with
// EnableCompression and dials it with wskit's client with each of
// clientDeflateOffers, through a countingProxy. gorilla answers every offer
// with both no_context_takeover parameters, whatever else it held;
// Session.Extensions() must be that answer, and deflateMessages must come
// back, compressed both ways.
func TestGorillaServerDeflate(t *testing.T) {
	ms := deflateMessages()
	up := websocket.Upgrader{EnableCompression: true}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(2 * maxMessageSize)
		for {
			typ, p, err := c.ReadMessage()
			if err != nil {
				return // the default close handler has answered a close
			}
			if err := c.WriteMessage(typ, p); err != nil {
				return
			}
		}
	}))
	t.Cleanup(hs.Close)
	proxy := startProxy(t, hs.Listener.Addr().String())
	for _, offer := range clientDeflateOffers {
		t.Run(offer.name, func(t *testing.T) {
			up0, down0 := proxy.counts()
			s, err := dialDeflate(t, "ws://"+proxy.Addr+"/", offer)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			if got := s.Extensions(); got != gorillaDeflateAnswer {
				t.Errorf("Session.Extensions() %q, want the answer gorilla sends, %q", got, gorillaDeflateAnswer)
			}
			wskitEcho(t, s, ms)
			wskitClose(t, s)
			u, d := proxy.counts()
			wantCompressed(t, "wskit → gorilla", u-up0, ms, 2)
			wantCompressed(t, "gorilla → wskit", d-down0, ms, 2)
		})
	}
}
