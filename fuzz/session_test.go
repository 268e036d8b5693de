package fuzz

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/frame"
)

// sessionServer is one echo server for every input of FuzzSessionInput:
// starting one per input would spend the fuzzing time on setup.
var sessionServer = sync.OnceValue(func() string {
	o := wskit.DefaultOptions()
	o.MaxFrameSize, o.MaxMessageSize = 4096, 8192
	o.Timeout = 2 * time.Second
	o.Logger = slog.New(slog.DiscardHandler)
	srv, err := wskit.NewServer(o)
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/echo", srv.WebSocket(func(s *wskit.Session) {
		for m := range s.Messages() {
			if s.Send(m.Type, m.Payload) != nil {
				return
			}
		}
	}))
	return httptest.NewServer(mux).Listener.Addr().String()
})

// FuzzSessionInput sends arbitrary bytes after a valid opening handshake to
// a default session over TCP, then ends its side of the stream. The server
// must not crash, must end the connection, and everything it sends must be
// well-formed server frames, the last one a close with a sendable code when
// it sends a close at all.
func FuzzSessionInput(f *testing.F) {
	for _, seed := range sessionSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		nc, err := net.Dial("tcp", sessionServer())
		if err != nil {
			t.Fatal(err)
		}
		// A reset at the end frees both ends at once: tens of thousands of
		// connections in TIME_WAIT would exhaust loopback's ports.
		defer nc.Close()
		defer nc.(*net.TCPConn).SetLinger(0)
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write(append([]byte(upgradeRequest("/echo")), in...)); err != nil {
			t.Fatal(err)
		}
		nc.(*net.TCPConn).CloseWrite()
		br := bufio.NewReader(nc)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("handshake: %v %v", resp, err)
		}
		out, err := io.ReadAll(br)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the server did not end the connection; it sent %d bytes", len(out))
			}
			// A reset after the server's close is fine; what came before is checked.
		}
		checkServerFrames(t, out)
	})
}

// sessionSeeds are inputs for the targets that feed an open session.
func sessionSeeds() [][]byte {
	return [][]byte{
		clientFrame(frame.OpText, true, "hello"),
		append(clientFrame(frame.OpText, false, "hel"), clientFrame(frame.OpContinuation, true, "lo")...),
		clientFrame(frame.OpPing, true, "p"),
		clientFrame(frame.OpClose, true, "\x03\xe8bye"),
		clientFrame(frame.OpText, true, "\xff"),
		append(clientFrame(frame.OpBinary, true, strings.Repeat("x", 300)), clientFrame(frame.OpClose, true, "")...),
		{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'}, // unmasked
		pingFlood(),
		bytes.Repeat(clientFrame(frame.OpBinary, true, ""), 500), // empty messages
		append(pingFlood(), clientFrame(frame.OpClose, true, "\x03\xe8")...),
	}
}

// pingFlood is many pings in a row, each owed a pong.
func pingFlood() []byte {
	var b []byte
	for i := range 300 {
		b = append(b, clientFrame(frame.OpPing, true, strconv.Itoa(i))...)
	}
	return b
}

// upgradeRequest is a valid opening handshake for path.
func upgradeRequest(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
}

// clientFrame builds one masked client frame.
func clientFrame(op frame.Opcode, fin bool, payload string) []byte {
	h := frame.Header{Fin: fin, Op: op, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: int64(len(payload))}
	b := frame.AppendHeader(nil, h)
	n := len(b)
	b = append(b, payload...)
	frame.Mask(b[n:], h.Mask, 0)
	return b
}

// checkServerFrames parses what the server sent: whole, unmasked frames with
// defined opcodes, nothing after a close, and a close payload that parses.
func checkServerFrames(t *testing.T, out []byte) {
	t.Helper()
	for len(out) > 0 {
		h, n, err := frame.ParseHeader(out)
		if err != nil || n == 0 {
			t.Fatalf("bad server frame header % x: %v", out[:min(len(out), 14)], err)
		}
		if h.Masked {
			t.Fatal("server frame is masked")
		}
		if int64(len(out)-n) < h.Length {
			t.Fatalf("server frame cut: %d of %d payload bytes", len(out)-n, h.Length)
		}
		payload := out[n : n+int(h.Length)]
		out = out[n+int(h.Length):]
		if h.Op == frame.OpClose {
			if _, _, err := frame.ParseClose(payload); err != nil {
				t.Fatalf("server close payload % x: %v", payload, err)
			}
			if len(out) > 0 {
				t.Fatalf("%d bytes after the server's close frame", len(out))
			}
		}
	}
}
