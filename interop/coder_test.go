package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wskit/wskit"
	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
)

// TestCoderClient drives the server under test with coder/websocket's
// client, on each server variant.
func TestCoderClient(t *testing.T) {
	forEachVariant(t, testCoderClient)
}

func testCoderClient(t *testing.T, srv *echoServer) {
	echoURL, helloURL := wsURL(srv, "/echo"), wsURL(srv, "/hello")

	for _, offer := range []struct {
		name string
		mode websocket.CompressionMode
	}{
		{"plain", websocket.CompressionDisabled},
		{"offer-deflate", websocket.CompressionContextTakeover},
	} {
		t.Run("echo-"+offer.name, func(t *testing.T) {
			ctx := coderContext(t)
			c := coderDial(ctx, t, echoURL, offer.mode)
			for _, tc := range echoTexts {
				coderEcho1(ctx, t, c, websocket.MessageText, []byte(tc.text), "text "+tc.name)
			}
			for _, n := range echoSizes {
				coderEcho1(ctx, t, c, websocket.MessageBinary, pattern(n), "binary")
			}
			coderClose(t, c, websocket.StatusNormalClosure, "coder done")
		})
	}

	t.Run("ping", func(t *testing.T) {
		ctx := coderContext(t)
		coderPings(ctx, t, coderDial(ctx, t, echoURL, websocket.CompressionDisabled))
	})

	t.Run("close", func(t *testing.T) {
		ctx := coderContext(t)
		c := coderDial(ctx, t, echoURL, websocket.CompressionDisabled)
		coderClose(t, c, websocket.StatusNormalClosure, "coder done")
	})

	t.Run("close-4000", func(t *testing.T) {
		ctx := coderContext(t)
		c := coderDial(ctx, t, echoURL, websocket.CompressionDisabled)
		coderClose(t, c, 4000, "application code, ünïcode reason")
	})

	t.Run("server-close", func(t *testing.T) {
		ctx := coderContext(t)
		c := coderDial(ctx, t, helloURL, websocket.CompressionDisabled)
		typ, p, err := c.Read(ctx)
		if err != nil || typ != websocket.MessageText || string(p) != helloText {
			t.Fatalf("first read: %v %q, %v; want text %q", typ, p, err, helloText)
		}
		_, _, err = c.Read(ctx) // coder answers the close frame
		wantCoderClose(t, err, helloCode, helloReason)
	})

	t.Run("too-big", func(t *testing.T) {
		ctx := coderContext(t)
		c := coderDial(ctx, t, echoURL, websocket.CompressionDisabled)
		readErr := coderReadAsync(ctx, c)
		// The server may close before the whole payload is written.
		if err := c.Write(ctx, websocket.MessageBinary, pattern(maxMessageSize+1)); err != nil {
			t.Logf("write of %d bytes: %v", maxMessageSize+1, err)
		}
		select {
		case err := <-readErr:
			wantCoderClose(t, err, websocket.StatusCode(frame.CloseMessageTooBig), "")
		case <-time.After(stepTimeout):
			t.Fatalf("no close within %v", stepTimeout)
		}
	})
}

// coderPings pings three times beside a running Read, each Ping waiting
// for its pong, then closes with 1000; the Read must end with the server's
// close.
func coderPings(ctx context.Context, t *testing.T, c *websocket.Conn) {
	t.Helper()
	// Ping waits for its pong, which only a running read sees.
	readErr := coderReadAsync(ctx, c)
	for i := range 3 {
		pctx, cancel := context.WithTimeout(ctx, stepTimeout)
		err := c.Ping(pctx)
		cancel()
		if err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
	}
	err := c.Close(websocket.StatusNormalClosure, "ping done")
	t.Logf("Close beside a running Read: %v", err)
	select {
	case err := <-readErr:
		wantCoderClose(t, err, websocket.StatusNormalClosure, "")
	case <-time.After(stepTimeout):
		t.Fatalf("the read did not end within %v of the close", stepTimeout)
	}
}

func coderContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 4*stepTimeout)
	t.Cleanup(cancel)
	return ctx
}

func coderDial(ctx context.Context, t *testing.T, url string, mode websocket.CompressionMode) *websocket.Conn {
	t.Helper()
	dctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	c, resp, err := websocket.Dial(dctx, url, &websocket.DialOptions{CompressionMode: mode})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	ext := resp.Header.Get("Sec-WebSocket-Extensions")
	offered := mode != websocket.CompressionDisabled
	if offered && extensionNames(ext) != serverExtensions {
		t.Errorf("Sec-WebSocket-Extensions %q, want %q", ext, serverExtensions)
	}
	if !offered && ext != "" {
		t.Errorf("Sec-WebSocket-Extensions %q for a client that offered none", ext)
	}
	// coder reads at most 32 KiB per message by default.
	c.SetReadLimit(2 * maxMessageSize)
	return c
}

// coderReadAsync reads one message from c on a goroutine of its own and
// sends the read's error on the returned channel.
func coderReadAsync(ctx context.Context, c *websocket.Conn) <-chan error {
	readErr := make(chan error, 1)
	go func() {
		_, _, err := c.Read(ctx)
		readErr <- err
	}()
	return readErr
}

func coderEcho1(ctx context.Context, t *testing.T, c *websocket.Conn, typ websocket.MessageType, p []byte, what string) {
	t.Helper()
	if err := c.Write(ctx, typ, p); err != nil {
		t.Fatalf("%s, write %s: %v", what, describe(p), err)
	}
	gotType, got, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("%s, read the echo of %s: %v", what, describe(p), err)
	}
	if gotType != typ || !bytes.Equal(got, p) {
		t.Errorf("%s: echo is %v %s, want %v %s", what, gotType, describe(got), typ, describe(p))
	}
}

// coderClose runs coder's close handshake. Close returns nil only when the
// server's close frame carries the same code; otherwise its error holds the
// code that the server sent.
func coderClose(t *testing.T, c *websocket.Conn, code websocket.StatusCode, reason string) {
	t.Helper()
	if err := c.Close(code, reason); err != nil {
		t.Errorf("Close(%d, %q): %v (server's close code %d), want the server to answer %d",
			code, reason, err, websocket.CloseStatus(err), code)
	}
}

// wantCoderClose checks that err is the close frame the server sent. An empty
// reason is not checked.
func wantCoderClose(t *testing.T, err error, code websocket.StatusCode, reason string) {
	t.Helper()
	var ce websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("read: %v, want a close frame with code %d", err, code)
	}
	if ce.Code != code || (reason != "" && ce.Reason != reason) {
		t.Errorf("close frame from the server: %d %q, want %d %q", ce.Code, ce.Reason, code, reason)
	} else {
		t.Logf("close frame from the server: %d %q", ce.Code, ce.Reason)
	}
}

// coderDeflateCase is a case of TestCoderClientDeflate: coder's compression
// mode, the server's configuration, and the server's answer.
type coderDeflateCase struct {
	name   string
	mode   websocket.CompressionMode
	server codec.PerMessageDeflate
	want   string
}

func (c coderDeflateCase) caseName() string           { return c.name }
func (c coderDeflateCase) configure(o *wskit.Options) { withDeflate(c.server)(o) }

// coderDeflateCases: coder offers "permessage-deflate" with context
// takeover, and adds both no_context_takeover parameters without. Its offer
// does not let the server bound its window, so a server that bounds it (the
// zero value does, at 13 bits) asks for client_no_context_takeover.
var coderDeflateCases = []coderDeflateCase{
	{"context-takeover", websocket.CompressionContextTakeover, codec.PerMessageDeflate{},
		"permessage-deflate; client_no_context_takeover"},
	{"context-takeover-full-client-window", websocket.CompressionContextTakeover,
		codec.PerMessageDeflate{ClientMaxWindowBits: 15}, "permessage-deflate"},
	{"context-takeover-kept-compressor", websocket.CompressionContextTakeover,
		codec.PerMessageDeflate{KeepCompressor: true, ClientMaxWindowBits: 15}, "permessage-deflate"},
	{"no-context-takeover", websocket.CompressionNoContextTakeover, codec.PerMessageDeflate{},
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
	{"context-takeover-server-no-context-takeover", websocket.CompressionContextTakeover,
		codec.PerMessageDeflate{ServerNoContextTakeover: true}, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
	// coder cannot bound its window, so the server bounds it by asking for
	// client_no_context_takeover instead.
	{"context-takeover-server-client-max-window-bits-10", websocket.CompressionContextTakeover,
		codec.PerMessageDeflate{ClientMaxWindowBits: 10}, "permessage-deflate; client_no_context_takeover"},
	{"no-context-takeover-server-limits", websocket.CompressionNoContextTakeover,
		codec.PerMessageDeflate{Level: 9, ServerMaxWindowBits: 9, ClientMaxWindowBits: 9},
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
}

// TestCoderClientDeflate echoes deflateMessages between coder/websocket's
// client with compression and the server under test with permessage-deflate,
// on each server variant and coderDeflateCases, through a countingProxy.
// The answer coder got and Session.Extensions() must be the case's, and the
// messages must go compressed both ways (coder compresses messages of more
// than 128 or 512 bytes).
func TestCoderClientDeflate(t *testing.T) {
	ms := deflateMessages()
	forEachDeflateVariant(t, coderDeflateCases, func(t *testing.T, srv *echoServer, c coderDeflateCase) {
		proxy := startProxy(t, srv.Addr)
		before := len(srv.sessionExtensions())
		up0, down0 := proxy.counts()
		ctx := coderContext(t)
		dctx, cancel := context.WithTimeout(ctx, stepTimeout)
		defer cancel()
		conn, resp, err := websocket.Dial(dctx, "ws://"+proxy.Addr+"/echo", &websocket.DialOptions{CompressionMode: c.mode})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { conn.CloseNow() })
		conn.SetReadLimit(2 * maxMessageSize)
		answer := resp.Header.Get("Sec-WebSocket-Extensions")
		wantExtensions(t, "the answer coder got", answer, c.want)
		wantServerExtensions(t, srv, before, c.want, answer)
		coderEchoMessages(ctx, t, conn, ms)
		coderClose(t, conn, websocket.StatusNormalClosure, "coder done")
		up, down := proxy.counts()
		wantCompressed(t, "coder → server", up-up0, ms, 2)
		wantCompressed(t, "server → coder", down-down0, ms, 2)
	})
}

// coderEchoMessages sends ms on c and reads each echo (see echoMessages).
func coderEchoMessages(ctx context.Context, t *testing.T, c *websocket.Conn, ms []wireMessage) {
	t.Helper()
	echoMessages(t, ms, func(m wireMessage) error {
		typ := websocket.MessageText
		if m.Binary {
			typ = websocket.MessageBinary
		}
		return c.Write(ctx, typ, m.Data)
	}, func() (bool, []byte, error) {
		typ, p, err := c.Read(ctx)
		return typ == websocket.MessageBinary, p, err
	}, func() { c.CloseNow() })
}

// coderServerModes are the compression modes of coder's server in
// TestCoderServerDeflate, with its answer to each of clientDeflateOffers.
// coder declines an offer with server_max_window_bits below 15: it cannot
// bound its window. "" is no extension.
var coderServerModes = []struct {
	name string
	mode websocket.CompressionMode
	want map[string]string
}{
	{"context-takeover", websocket.CompressionContextTakeover, map[string]string{
		"default":                    "permessage-deflate",
		"server-no-context-takeover": "permessage-deflate; server_no_context_takeover",
		"client-no-context-takeover": "permessage-deflate; client_no_context_takeover",
		"server-max-window-bits-10":  "",
		"client-max-window-bits-11":  "permessage-deflate",
		"combined":                   "",
	}},
	{"no-context-takeover", websocket.CompressionNoContextTakeover, map[string]string{
		"default":                    "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
		"server-no-context-takeover": "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
		"client-no-context-takeover": "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
		"server-max-window-bits-10":  "",
		"client-max-window-bits-11":  "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
		"combined":                   "",
	}},
}

// TestCoderServerDeflate runs a coder/websocket echo server with each of
// coderServerModes and dials it with wskit's client with each of
// clientDeflateOffers, through a countingProxy. Session.Extensions() must
// be the answer coder sent, exactly, and the mode's; deflateMessages must
// come back, compressed both ways when an extension was agreed and as they
// are when coder declined.
func TestCoderServerDeflate(t *testing.T) {
	ms := deflateMessages()
	for _, sm := range coderServerModes {
		t.Run(sm.name, func(t *testing.T) {
			answers := make(chan string, 1)
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: sm.mode})
				if err != nil {
					return
				}
				defer c.CloseNow()
				select {
				case answers <- w.Header().Get("Sec-WebSocket-Extensions"):
				default:
				}
				c.SetReadLimit(2 * maxMessageSize)
				ctx := r.Context()
				for {
					typ, p, err := c.Read(ctx)
					if err != nil {
						return
					}
					if err := c.Write(ctx, typ, p); err != nil {
						return
					}
				}
			}))
			t.Cleanup(hs.Close)
			proxy := startProxy(t, hs.Listener.Addr().String())
			for _, offer := range clientDeflateOffers {
				t.Run(offer.name, func(t *testing.T) {
					want := answerTo(sm.want, offer)
					up0, down0 := proxy.counts()
					s, err := dialDeflate(t, "ws://"+proxy.Addr+"/", offer)
					if err != nil {
						t.Fatalf("Dial: %v", err)
					}
					var answer string
					select {
					case answer = <-answers:
					case <-time.After(stepTimeout):
						t.Fatal("the server handler did not report its answer")
					}
					t.Logf("coder answered %q", answer)
					wantExtensions(t, "coder's answer", answer, want)
					if got := s.Extensions(); got != answer {
						t.Errorf("Session.Extensions() %q, want the answer coder sent, %q", got, answer)
					}
					wskitEcho(t, s, ms)
					wskitClose(t, s)
					up, down := proxy.counts()
					if want == "" {
						wantUncompressed(t, "wskit → coder", up-up0, ms, 2)
						wantUncompressed(t, "coder → wskit", down-down0, ms, 2)
					} else {
						wantCompressed(t, "wskit → coder", up-up0, ms, 2)
						wantCompressed(t, "coder → wskit", down-down0, ms, 2)
					}
				})
			}
		})
	}
}

// TestCoderClientDeflateFanout has the server under test send compressed
// messages from many goroutines at once (/fanout: 32 texts of 3 to 3.4 KiB
// that share most of their words, five times) to coder/websocket's client
// with context takeover, on each server variant. With context takeover each
// compressed message may refer to the ones before it, so the server must
// put them on the wire in the order it compressed them: every text must
// inflate to one that was sent, each once.
func TestCoderClientDeflateFanout(t *testing.T) {
	configs := []deflateServerConfig{
		{"default", codec.PerMessageDeflate{}, "permessage-deflate; client_no_context_takeover"},
		{"full-client-window", codec.PerMessageDeflate{ClientMaxWindowBits: 15}, "permessage-deflate"},
		{"kept-compressor", codec.PerMessageDeflate{KeepCompressor: true, ClientMaxWindowBits: 15}, "permessage-deflate"},
		{"server-no-context-takeover", codec.PerMessageDeflate{ServerNoContextTakeover: true},
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
	}
	const n, size = 32, 3000
	forEachDeflateVariant(t, configs, func(t *testing.T, srv *echoServer, c deflateServerConfig) {
		ctx := coderContext(t)
		dctx, cancel := context.WithTimeout(ctx, stepTimeout)
		defer cancel()
		conn, resp, err := websocket.Dial(dctx, wsURL(srv, "/fanout"), &websocket.DialOptions{CompressionMode: websocket.CompressionContextTakeover})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { conn.CloseNow() })
		wantExtensions(t, "the answer coder got", resp.Header.Get("Sec-WebSocket-Extensions"), c.want)
		for round := range 5 {
			if err := conn.Write(ctx, websocket.MessageText, fmt.Appendf(nil, "%d %d", n, size)); err != nil {
				t.Fatalf("round %d: write: %v", round, err)
			}
			set := newFanoutSet(n, size)
			for range n {
				typ, p, err := conn.Read(ctx)
				if err != nil {
					t.Fatalf("round %d: read after %d of %d texts: %v", round, len(set.seen), n, err)
				}
				if typ != websocket.MessageText {
					t.Errorf("round %d: a %v message", round, typ)
				}
				if problem := set.take(p); problem != "" {
					t.Errorf("round %d: %s", round, problem)
				}
			}
		}
		coderClose(t, conn, websocket.StatusNormalClosure, "coder done")
	})
}
