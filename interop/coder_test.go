package interop

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coder/websocket"
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
		c := coderDial(ctx, t, echoURL, websocket.CompressionDisabled)
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
