package wskit_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/wstest"
)

// wait bounds every wait in these tests: long enough for a loaded -race
// run, short enough that a hang fails fast.
const wait = 5 * time.Second

// testOptions are DefaultOptions with a short Timeout and a silent logger.
func testOptions() wskit.Options {
	o := wskit.DefaultOptions()
	o.Timeout = 2 * time.Second
	o.HandshakeTimeout = 2 * time.Second
	o.Logger = slog.New(slog.DiscardHandler)
	return o
}

// newServer returns a Server with opts, failing the test on error.
func newServer(t *testing.T, opts wskit.Options) *wskit.Server {
	t.Helper()
	srv, err := wskit.NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	return srv
}

// serve starts an httptest server for h and returns its ws:// URL. The
// server is closed at the end of the test.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

// dial opens a client session; it is closed at the end of the test.
func dial(t *testing.T, url string, opts *wskit.DialOptions) *wskit.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := wskit.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("Dial %s: %v", url, err)
	}
	t.Cleanup(func() { s.Close(wskit.CloseNormal, "") })
	return s
}

// receive returns the next message on s, failing the test on error.
func receive(t *testing.T, s *wskit.Session) wskit.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	m, err := s.Receive(ctx)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return m.Clone()
}

// receiveClose waits until s has ended, reading and dropping messages, and
// returns the *CloseError that Receive reported.
func receiveClose(t *testing.T, s *wskit.Session) *wskit.CloseError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		_, err := s.Receive(ctx)
		if err == nil {
			continue
		}
		var ce *wskit.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("Receive: got %v, want a *wskit.CloseError", err)
		}
		return ce
	}
}

// await returns the value sent on ch, or fails the test after wait.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	return wstest.Await(t, ch, what, wait)
}

// ended is what a server handler saw when its session ended.
type ended struct {
	reason wskit.CloseReason
	ok     bool
	err    error
}

func endOf(s *wskit.Session) ended {
	r, ok := s.CloseReason()
	return ended{reason: r, ok: ok, err: s.Err()}
}

// echoHandler echoes every message and reports how the session ended.
func echoHandler(result chan<- ended) func(*wskit.Session) {
	return func(s *wskit.Session) {
		for m := range s.Messages() {
			if err := s.Send(m.Type, m.Payload); err != nil {
				break
			}
		}
		<-s.Done()
		if result != nil {
			result <- endOf(s)
		}
	}
}

// checkGoroutines fails the test if, once its other cleanups have run, the
// number of goroutines does not come back to what it was when this was
// called (polling up to 2 s). Call it first so that its cleanup runs last.
func checkGoroutines(t *testing.T) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= base {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d goroutines at the start, %d after 2 s; stacks:\n%s", base, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// newTextLogger returns a logger writing text to w.
func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// syncBuffer is a bytes.Buffer safe for a logger writing from another
// goroutine while the test reads it; the other test files use this name.
type syncBuffer = wstest.SyncBuffer

// rawClient speaks WebSocket by hand over a TCP connection, so that a test
// can break the rules, stop reading, or cut the connection.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

// dialRaw connects to a ws:// URL and completes the opening handshake.
// readBuffer, when positive, shrinks the socket's receive buffer first.
func dialRaw(t *testing.T, wsURL string, readBuffer int) *rawClient {
	t.Helper()
	addr := strings.TrimPrefix(wsURL, "ws://")
	path := "/"
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		addr, path = addr[:i], addr[i:]
	}
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	if readBuffer > 0 {
		if err := nc.(*net.TCPConn).SetReadBuffer(readBuffer); err != nil {
			t.Fatalf("SetReadBuffer: %v", err)
		}
	}
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr, key)
	nc.SetReadDeadline(time.Now().Add(wait))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the handshake response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: status %d, want 101", resp.StatusCode)
	}
	nc.SetReadDeadline(time.Time{})
	return &rawClient{t: t, nc: nc, br: br}
}

// write sends one frame; masked frames get a random key.
func (c *rawClient) write(h frame.Header, payload []byte) error {
	role := codec.Server // an Encoder in the server role does not mask
	if h.Masked {
		role = codec.Client
	}
	e := codec.Encoder{Role: role}
	_, err := c.nc.Write(e.AppendFrame(nil, h, payload))
	return err
}

// read returns the next frame, unmasked, waiting at most wait.
func (c *rawClient) read() (frame.Header, []byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(wait))
	defer c.nc.SetReadDeadline(time.Time{})
	return wstest.ReadFrame(c.br)
}

// readClose reads frames until a close frame and returns its code and
// reason; pings and data before it are skipped.
func (c *rawClient) readClose() (frame.CloseCode, string) {
	c.t.Helper()
	for {
		h, p, err := c.read()
		if err != nil {
			c.t.Fatalf("reading until a close frame: %v", err)
		}
		if h.Op == frame.OpClose {
			code, reason, err := frame.ParseClose(p)
			if err != nil {
				c.t.Fatalf("close payload %x: %v", p, err)
			}
			return code, string(reason)
		}
	}
}

// readEOF reads until the server closes the connection and fails the test
// if it does not within wait.
func (c *rawClient) readEOF() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(wait))
	defer c.nc.SetReadDeadline(time.Time{})
	if _, err := io.Copy(io.Discard, c.br); err != nil {
		c.t.Fatalf("waiting for the server to close the connection: %v", err)
	}
}

// finish waits for the server to end the connection after its close frame,
// then closes ours, as a well-behaved client does (the server lingers until
// then after reporting a violation).
func (c *rawClient) finish() {
	c.t.Helper()
	c.readEOF()
	c.nc.Close()
}
