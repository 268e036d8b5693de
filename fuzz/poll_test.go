package fuzz

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/poller"
)

// pollServer is one poll-engine server for every input of the poll fuzz
// targets: /events echoes from Events callbacks on the loop, /echo from a
// default session, and / is plain HTTP.
var pollServer = sync.OnceValue(func() string {
	o := wskit.DefaultOptions()
	o.Engine = wskit.EnginePoll
	o.MaxFrameSize, o.MaxMessageSize = 4096, 8192
	o.Timeout = 2 * time.Second
	o.HandshakeTimeout = 2 * time.Second
	o.Logger = slog.New(slog.DiscardHandler)
	srv, err := wskit.NewServer(o)
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/events", srv.WebSocketEvents(wskit.Events{OnMessage: func(s *wskit.Session, m wskit.Message) {
		s.Send(m.Type, m.Payload)
	}}))
	mux.Handle("/echo", srv.WebSocket(func(s *wskit.Session) {
		for m := range s.Messages() {
			if s.Send(m.Type, m.Payload) != nil {
				return
			}
		}
	}))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "page") })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln, mux)
	return ln.Addr().String()
})

// exchange writes in to the poll server, ends its side of the stream, and
// returns everything the server sent before it ended the connection.
func exchange(t *testing.T, in []byte) []byte {
	t.Helper()
	nc, err := net.Dial("tcp", pollServer())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	defer nc.(*net.TCPConn).SetLinger(0) // no TIME_WAIT pile-up
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(in); err != nil {
		t.Fatal(err)
	}
	nc.(*net.TCPConn).CloseWrite()
	out, err := io.ReadAll(nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server did not end the connection; it sent %d bytes", len(out))
	}
	return out
}

// FuzzPollInput sends arbitrary bytes after a valid opening handshake to an
// Events session on the poll engine's loop: the server must not crash,
// must end the connection, and must send only well-formed server frames.
func FuzzPollInput(f *testing.F) {
	if !poller.Supported {
		f.Skip("no poll engine here")
	}
	for _, seed := range sessionSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReader(bytes.NewReader(exchange(t, append([]byte(upgradeRequest("/events")), in...))))
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("handshake: %v %v", resp, err)
		}
		out, _ := io.ReadAll(br)
		checkServerFrames(t, out)
	})
}

// FuzzPollHead sends an arbitrary request head to the poll engine, which
// parses heads on its loop: the server must not crash, must end the
// connection, and must answer with well-formed HTTP responses (an upgrade
// followed by server frames, or net/http's own answers) or nothing.
func FuzzPollHead(f *testing.F) {
	if !poller.Supported {
		f.Skip("no poll engine here")
	}
	for _, seed := range []string{
		"GET /events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
		"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://evil\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"GET /events HTTP/1.0\r\n\r\n",
		"GET /events?x=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: a, b\r\n\r\n\x81\x85\x01\x02\x03\x04ignor",
		// Lines ending in LF alone, or mixed.
		"GET /events HTTP/1.1\nHost: x\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n\n",
		"GET /echo HTTP/1.1\r\nHost: x\nUpgrade: websocket\r\nConnection: Upgrade\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\n\r\n",
		"GET / HTTP/1.1\nHost: x\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		// Repeated fields.
		"GET /events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin:\r\nOrigin: http://evil.example\r\n\r\n",
		"GET /events HTTP/1.1\r\nHost: x\r\nHost: y\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13\r\n\r\n",
		"GET /events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out := exchange(t, in)
		br := bufio.NewReader(bytes.NewReader(out))
		for {
			if _, err := br.Peek(1); err != nil {
				return // nothing more: the server ended the connection
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("malformed response: %v\n%q", err, out)
			}
			if resp.StatusCode == http.StatusSwitchingProtocols {
				rest, _ := io.ReadAll(br)
				checkServerFrames(t, rest)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
