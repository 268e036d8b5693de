package wskit_test

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/wstest"
)

// compressible is a message that permessage-deflate compresses, above the
// Threshold of the tests' extension and approved by its CompressIf.
var compressible = strings.Repeat("compress me ", 100)

// deflateOptions installs permessage-deflate with a Threshold and a
// CompressIf, so that SetCompression is seen to compose with both.
func deflateOptions() wskit.Options {
	o := testOptions()
	o.Extensions = []codec.Extension{&codec.PerMessageDeflate{
		Threshold:  100,
		CompressIf: func(op frame.Opcode, p []byte) bool { return !strings.HasPrefix(string(p), "raw:") },
	}}
	return o
}

// For each message, the sender's SetCompression and the options decide
// whether it is compressed (RSV1): on the server's default and Events
// sessions of both engines and on a client.
func TestSetCompression(t *testing.T) {
	checkGoroutines(t)
	// Each case is a command the peer under test obeys: it sets
	// compression, then sends its payload.
	cases := []struct {
		on         bool
		payload    string
		compressed bool
	}{
		{true, compressible, true},
		{false, compressible, false},
		{false, "short", false},
		{true, "short", false},               // under Threshold
		{true, "raw:" + compressible, false}, // CompressIf says no
		{true, compressible, true},           // on again, with context takeover
		{false, compressible + "x", false},   // off between two compressed ones
		{true, compressible + "yz", true},
	}
	obey := func(s *wskit.Session, m wskit.Message) {
		cmd, payload, _ := strings.Cut(m.Text(), " ")
		s.SetCompression(cmd == "on")
		s.SendText(payload)
	}
	routes := func(srv *wskit.Server) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/session", srv.WebSocket(func(s *wskit.Session) {
			for m := range s.Messages() {
				obey(s, m)
			}
		}))
		mux.Handle("/events", srv.WebSocketEvents(wskit.Events{OnMessage: obey}))
		return mux
	}
	for _, tg := range eachEngine(t, deflateOptions(), routes) {
		for _, path := range []string{"/session", "/events"} {
			t.Run(tg.name+path, func(t *testing.T) {
				c := dialDeflate(t, tg.url+path)
				for i, tc := range cases {
					cmd := "off"
					if tc.on {
						cmd = "on"
					}
					if err := c.write(frame.Header{Fin: true, Op: frame.OpText, Masked: true}, []byte(cmd+" "+tc.payload)); err != nil {
						t.Fatal(err)
					}
					h, _, err := c.read()
					if err != nil {
						t.Fatalf("case %d: %v", i, err)
					}
					if got := h.Rsv&frame.RSV1 != 0; got != tc.compressed {
						t.Errorf("case %d (%s, %d bytes): compressed %v, want %v", i, cmd, len(tc.payload), got, tc.compressed)
					}
				}
			})
		}
	}
	t.Run("client", func(t *testing.T) {
		url, frames := deflateServer(t)
		o := deflateOptions()
		s := dial(t, url, &wskit.DialOptions{Options: o})
		if s.Extensions() == "" {
			t.Fatal("permessage-deflate was not negotiated")
		}
		for i, tc := range cases {
			s.SetCompression(tc.on)
			if err := s.SendText(tc.payload); err != nil {
				t.Fatal(err)
			}
			h := await(t, frames, "the server to read the message")
			if got := h.Rsv&frame.RSV1 != 0; got != tc.compressed {
				t.Errorf("case %d (on %v, %d bytes): compressed %v, want %v", i, tc.on, len(tc.payload), got, tc.compressed)
			}
		}
	})
}

// dialDeflate is dialRaw offering permessage-deflate, which the server must
// accept.
func dialDeflate(t *testing.T, wsURL string) *rawClient {
	t.Helper()
	addr, path, _ := strings.Cut(strings.TrimPrefix(wsURL, "ws://"), "/")
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	var k [16]byte
	rand.Read(k[:])
	fmt.Fprintf(nc, "GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
		path, addr, base64.StdEncoding.EncodeToString(k[:]))
	nc.SetReadDeadline(time.Now().Add(wait))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		t.Fatalf("handshake: %s, extensions %q; want 101 with permessage-deflate", resp.Status, resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	nc.SetReadDeadline(time.Time{})
	return &rawClient{t: t, nc: nc, br: br}
}

// deflateServer accepts one connection, agrees to permessage-deflate, and
// reports the header of each data frame the client sends. It returns its
// ws:// URL.
func deflateServer(t *testing.T) (string, <-chan frame.Header) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	frames := make(chan frame.Header, 16)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		br := bufio.NewReader(nc)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		fmt.Fprintf(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n", acceptFor(req.Header.Get("Sec-WebSocket-Key")))
		for {
			h, p, err := wstest.ReadFrame(br)
			if err != nil {
				return
			}
			switch h.Op {
			case frame.OpClose:
				nc.Write(frame.AppendHeader(nil, frame.Header{Fin: true, Op: frame.OpClose, Length: int64(len(p))}))
				nc.Write(p)
				return
			case frame.OpText, frame.OpBinary:
				frames <- h
			}
		}
	}()
	return "ws://" + ln.Addr().String(), frames
}

// Messages sent with compression off between compressed ones keep the
// context both sides hold in step: every message arrives intact, both ways.
func TestSetCompressionTakeover(t *testing.T) {
	checkGoroutines(t)
	routes := func(srv *wskit.Server) http.Handler {
		return srv.WebSocket(func(s *wskit.Session) {
			n := 0
			for m := range s.Messages() {
				s.SetCompression(n%3 != 1)
				n++
				s.Send(m.Type, m.Payload)
			}
		})
	}
	for _, tg := range eachEngine(t, deflateOptions(), routes) {
		t.Run(tg.name, func(t *testing.T) {
			s := dial(t, tg.url, &wskit.DialOptions{Options: deflateOptions()})
			for i := range 30 {
				s.SetCompression(i%2 == 0)
				want := fmt.Sprintf("%d %s", i, compressible[:len(compressible)-i])
				if err := s.SendText(want); err != nil {
					t.Fatal(err)
				}
				if m := receive(t, s); m.Text() != want {
					t.Fatalf("message %d came back as %q", i, m.Payload)
				}
			}
		})
	}
}
