package servers

import (
	"bytes"
	"cmp"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	_ "github.com/wskit/wskit/xconnect" // for the -http2 variants
)

// TestEcho checks every WebSocket server of the zoo, the TLS variants over
// wss:// (TLS 1.3, the server's ECDSA P-256 certificate trusted), with gorilla's client:
// text and binary messages of 64 B and 16 KiB come back whole with their
// type, a ping gets a pong with its payload, 32 distinct messages sent
// back to back all come back, in order unless the server is unordered, a
// close frame gets a close reply, and
// once Close returns the server leaves no goroutine behind.
func TestEcho(t *testing.T) {
	for _, impl := range slices.Concat(Names, Variants, TLSVariants) {
		if IsRaw(impl) {
			continue
		}
		t.Run(impl, func(t *testing.T) {
			if raceEnabled && strings.HasPrefix(impl, "nbio") {
				t.Skip("nbio has data races of its own")
			}
			before := runtime.NumGoroutine()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv, err := Start(impl, ln)
			if err != nil {
				t.Fatal(err)
			}
			d := &websocket.Dialer{TLSClientConfig: srv.ClientTLS}
			for range 2 {
				c := checkConn(t, d, Scheme(impl)+"://"+ln.Addr().String()+URI, unordered[strings.TrimSuffix(impl, "-tls")])
				if IsTLS(impl) {
					checkTLS(t, c)
				}
			}
			if err := srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				t.Errorf("Close: %v", err)
			}
			deadline := time.Now().Add(3 * time.Second)
			for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > before {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
			}
		})
	}
}

// unordered names the servers that may answer a connection's messages in
// another order than they came: gws runs OnMessage in parallel
// (ParallelEnabled).
var unordered = map[string]bool{"gws": true}

// checkConn runs the checks of TestEcho on one connection to url; the
// burst's replies may come in any order if unordered.
func checkConn(t *testing.T, d *websocket.Dialer, url string, unordered bool) *websocket.Conn {
	t.Helper()
	c, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, size := range []int{64, 16 << 10} {
		for _, mt := range []int{websocket.TextMessage, websocket.BinaryMessage} {
			p := []byte(strings.Repeat("é", size/2)) // valid UTF-8 of size bytes
			if mt == websocket.BinaryMessage {
				p = bytes.Repeat([]byte{0, 0xff, 0x80, 7}, size/4)
			}
			if err := c.WriteMessage(mt, p); err != nil {
				t.Fatal(err)
			}
			gt, got, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("%d bytes, type %d: %v", size, mt, err)
			}
			if gt != mt || !bytes.Equal(got, p) {
				t.Fatalf("%d bytes, type %d: echo of type %d, %d bytes, equal %v", size, mt, gt, len(got), bytes.Equal(got, p))
			}
		}
	}

	pong := make(chan string, 1)
	c.SetPongHandler(func(s string) error { pong <- s; return nil })
	if err := c.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("after the ping")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-pong:
		if s != "are you there" {
			t.Errorf("pong carries %q", s)
		}
	default:
		t.Error("no pong before the echo of the message sent after the ping")
	}

	const burst = 32
	for i := range burst {
		if err := c.WriteMessage(websocket.BinaryMessage, []byte(fmt.Sprint("message ", i))); err != nil {
			t.Fatal(err)
		}
	}
	var order []string
	for range burst {
		_, got, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, string(got))
	}
	if unordered {
		// Sort by number: "message 9" before "message 10".
		slices.SortFunc(order, func(a, b string) int { return cmp.Or(cmp.Compare(len(a), len(b)), cmp.Compare(a, b)) })
	}
	for i, s := range order {
		if s != fmt.Sprint("message ", i) {
			t.Errorf("%d messages sent back to back came back out of order or not at all: %q", burst, order)
			break
		}
	}

	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
	if err := c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
		t.Errorf("after a close frame: %v; want a close reply with code 1000", err)
	}
	return c
}

// checkTLS checks that c went over TLS 1.3 to a server presenting an
// ECDSA P-256 certificate.
func checkTLS(t *testing.T, c *websocket.Conn) {
	t.Helper()
	tc, ok := c.NetConn().(*tls.Conn)
	if !ok {
		t.Fatalf("the connection is a %T, not TLS", c.NetConn())
	}
	st := tc.ConnectionState()
	if st.Version != tls.VersionTLS13 {
		t.Errorf("TLS version %s, want TLS 1.3", tls.VersionName(st.Version))
	}
	if len(st.PeerCertificates) == 0 {
		t.Fatal("no peer certificate")
	}
	key, ok := st.PeerCertificates[0].PublicKey.(*ecdsa.PublicKey)
	if !ok || key.Curve != elliptic.P256() {
		t.Errorf("the server's key is a %T, want ECDSA P-256", st.PeerCertificates[0].PublicKey)
	}
}
