package autobahn

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
)

// fault makes the echo server misbehave, to check the judging.
type fault int

const (
	noFault     fault = iota
	keepOpen          // never close TCP; wait for the client to do it
	dropOnError       // on a violation, close TCP without a close frame
	binaryEcho        // echo every message as binary
	corruptEcho       // flip a byte of every echoed message of 1 KiB or more
	rsvEcho           // set RSV1 on echoed messages
	abruptClose       // close TCP at once after the closing handshake, without lingering
)

// startEcho serves a strict echo server built on codec.Protocol on a
// loopback port and returns its ws:// URL.
func startEcho(t testing.TB, f fault) string {
	return serveLoopback(t, func(c net.Conn) { serveEcho(c, f) })
}

// serveLoopback runs serve for each connection to a loopback port until the
// test ends, and returns the port's ws:// URL.
func serveLoopback(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return "ws://" + ln.Addr().String() + "/"
}

// serveEcho performs the opening handshake and echoes every message until
// the connection closes.
func serveEcho(c net.Conn, f fault) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	if err := acceptHandshake(c, br); err != nil {
		return
	}
	p := codec.NewProtocol(codec.Config{Role: codec.Server, MaxMessageSize: 64 << 20, MaxFrameSize: 64 << 20})
	defer p.Release()
	buf := make([]byte, 64<<10)
	var out []byte
	for {
		n, rerr := br.Read(buf)
		in := buf[:n]
		for len(in) > 0 {
			ev, k, ok, err := p.Receive(in)
			in = in[k:]
			out = p.AppendReplies(out) // pongs and close frames, in order
			if err != nil && f == dropOnError {
				return
			}
			if err != nil || !ok {
				break
			}
			if ev.Kind == codec.EventMessage {
				op, at := ev.Op, len(out)
				if f == binaryEcho {
					op = frame.OpBinary
				}
				out, _ = p.AppendMessage(out, op, 0, ev.Payload)
				switch {
				case f == rsvEcho && len(out) > at:
					out[at] |= frame.RSV1
				case f == corruptEcho && len(ev.Payload) >= 1024:
					out[len(out)-len(ev.Payload)/2] ^= 0x01
				}
			}
		}
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
		if p.State() == codec.StateClosed {
			switch f {
			case keepOpen:
				io.Copy(io.Discard, c)
			case abruptClose:
			default:
				lingeringClose(c)
			}
			return
		}
		if rerr != nil {
			return
		}
	}
}

// lingeringClose sends FIN (over TLS, close_notify) and waits (briefly)
// for the peer to close, so that unread input does not turn the close
// into a reset.
func lingeringClose(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	io.Copy(io.Discard, c)
}

func acceptHandshake(c net.Conn, br *bufio.Reader) error {
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	if err != nil {
		return err
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "GET" || f[2] != "HTTP/1.1" {
		return reject(c, "400 Bad Request")
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return reject(c, "400 Bad Request")
	}
	key := h.Get("Sec-Websocket-Key")
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 16 ||
		!hasToken(h.Values("Upgrade"), "websocket") || !hasToken(h.Values("Connection"), "upgrade") {
		return reject(c, "400 Bad Request")
	}
	if h.Get("Sec-Websocket-Version") != "13" {
		return reject(c, "426 Upgrade Required\r\nSec-WebSocket-Version: 13")
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	_, err = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+
		base64.StdEncoding.EncodeToString(sum[:])+"\r\n\r\n")
	return err
}

func reject(c net.Conn, status string) error {
	io.WriteString(c, "HTTP/1.1 "+status+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	return errors.New("handshake rejected: " + status)
}

// TestCodecEcho runs every case of sections 1 to 10 against the codec echo
// server (which offers no permessage-deflate: see TestNoDeflateServer).
func TestCodecEcho(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole suite")
	}
	url := startEcho(t, noFault)
	filter := Filter(nil, []string{"12", "13"})
	rs := Check(t, url, filter)
	for _, r := range rs {
		if r.Behavior != OK {
			t.Log(r)
		}
	}
	if len(rs) != 301 {
		t.Errorf("ran %d cases, want 301", len(rs))
	}
}

// TestJudging checks that misbehaving servers get the verdicts Autobahn
// would give them.
func TestJudging(t *testing.T) {
	tests := []struct {
		f    fault
		id   string
		want string
		code int
	}{
		{noFault, "1.1.1", OK, 1000},
		{noFault, "2.5", OK, 1002},
		{keepOpen, "1.1.1", Failed, 1000},  // FAILED BY CLIENT where a clean close is required
		{keepOpen, "7.3.1", Failed, 0},     // same, after an empty close
		{keepOpen, "2.5", NonStrict, 1002}, // FAILED BY CLIENT where it is not
		{dropOnError, "2.5", OK, 0},        // dropping TCP is a valid way to fail
		{dropOnError, "6.4.1", OK, 0},
		{dropOnError, "7.9.1", OK, 0},
		{binaryEcho, "1.1.1", Failed, 1001}, // no match, so killAfter closes with 1001
		{binaryEcho, "1.2.1", OK, 1000},
		{binaryEcho, "9.1.1", Failed, 1000},
		{corruptEcho, "9.2.1", Failed, 1000},
		{corruptEcho, "9.8.6", Failed, 1000},
		{rsvEcho, "1.1.1", Failed, 1002}, // our 1002, echoed
		{abruptClose, "4.1.5", OK, 1002}, // the close frame survives the reset of unread input
		{abruptClose, "1.1.8", OK, 1000},
	}
	urls := map[fault]string{}
	byID := map[string]Case{}
	for _, c := range Cases() {
		byID[c.ID] = c
	}
	for _, tc := range tests {
		if urls[tc.f] == "" {
			urls[tc.f] = startEcho(t, tc.f)
		}
		r := Run(context.Background(), urls[tc.f], byID[tc.id], 0)
		if r.Behavior != tc.want || r.CloseCode != tc.code {
			t.Errorf("fault %d, case %s: got %s close code %d, want %s close code %d\n\t%v", tc.f, tc.id, r.Behavior, r.CloseCode, tc.want, tc.code, r)
		}
	}
}
