package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/bufpool"
	"github.com/wskit/wskit/internal/race"
	"github.com/wskit/wskit/internal/wstest"
	"github.com/wskit/wskit/poller"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of loggers
// and goroutines; the other test files use this name.
type syncBuffer = wstest.SyncBuffer

// waitFor polls cond until it holds or fails the test after a few seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// newTestServer serves newMux with the serve command's default options and
// returns it with its log, at debug level.
func newTestServer(t *testing.T) (*httptest.Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := parseServeFlags(nil, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := wskit.NewServer(c.options(log))
	if err != nil {
		t.Fatal(err)
	}
	chat, err := wskit.NewHub(c.chatOptions())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(newMux(srv, chat, newTestFeed(t, srv), log))
	t.Cleanup(func() {
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		chat.Close()
	})
	return ts, logs
}

func wsURL(ts *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(ts.URL, "http") + path
}

func dialTest(t *testing.T, ts *httptest.Server, path string) *wskit.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := wskit.Dial(ctx, wsURL(ts, path), nil)
	if err != nil {
		t.Fatalf("Dial %s: %v", path, err)
	}
	t.Cleanup(func() { s.Close(wskit.CloseNormal, "") })
	return s
}

func receive(t *testing.T, s *wskit.Session) wskit.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := s.Receive(ctx)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return m.Clone()
}

func TestEcho(t *testing.T) {
	ts, logs := newTestServer(t)
	s := dialTest(t, ts, "/echo")
	msgs := []wskit.Message{
		{Type: wskit.Text, Payload: []byte("hello")},
		{Type: wskit.Binary, Payload: []byte{0, 1, 0xfe, 0xff}},
		{Type: wskit.Text, Payload: []byte("héllo, 世界")},
		{Type: wskit.Binary, Payload: bytes.Repeat([]byte{7}, 100_000)},
		{Type: wskit.Text, Payload: []byte{}},
	}
	for _, want := range msgs {
		if err := s.Send(want.Type, want.Payload); err != nil {
			t.Fatal(err)
		}
		got := receive(t, s)
		if got.Type != want.Type || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("echo of %v (%d bytes) = %v (%d bytes)", want.Type, len(want.Payload), got.Type, len(got.Payload))
		}
	}
	if err := s.Close(wskit.CloseNormal, "done"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the close to be logged", func() bool { return strings.Contains(logs.String(), "session closed") })
	log := logs.String()
	for _, want := range []string{"session open", "path=/echo", "remote=127.0.0.1:", "code=1000", "reason=done"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// TestHello follows the Ktor guide's test of its /echo greeting route.
func TestHello(t *testing.T) {
	ts, _ := newTestServer(t)
	s := dialTest(t, ts, "/hello")
	if m := receive(t, s); m.Type != wskit.Text || m.Text() != "Please enter your name" {
		t.Fatalf("greeting = %v %q", m.Type, m.Payload)
	}
	if err := s.SendText("JetBrains"); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, s); m.Type != wskit.Text || m.Text() != "Hi, JetBrains!" {
		t.Fatalf("reply = %v %q", m.Type, m.Payload)
	}
	if err := s.SendBinary([]byte("bye")); err != nil { // not text: ignored
		t.Fatal(err)
	}
	if err := s.SendText("BYE"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := s.Receive(ctx)
	var ce *wskit.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("Receive after BYE: %v, want a *wskit.CloseError", err)
	}
	want := wskit.CloseReason{Code: wskit.CloseNormal, Reason: "Client said BYE"}
	if ce.CloseReason != want || ce.Err != nil {
		t.Fatalf("closed with %v (err %v), want %v", ce.CloseReason, ce.Err, want)
	}
}

// rawClient speaks WebSocket by hand, to see frames exactly as sent.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, ts *httptest.Server, path string) *rawClient {
	t.Helper()
	addr := ts.Listener.Addr().String()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return upgradeRaw(t, conn, addr, path)
}

// upgradeRaw sends an opening handshake for path on conn and checks the
// answer.
func upgradeRaw(t *testing.T, conn net.Conn, addr, path string) *rawClient {
	t.Helper()
	// The key and accept value of RFC 6455 §1.3.
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake status %s", resp.Status)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("Sec-WebSocket-Accept = %q", got)
	}
	return &rawClient{conn: conn, br: br}
}

// write sends one masked frame.
func (c *rawClient) write(t *testing.T, fin bool, op frame.Opcode, payload string) {
	t.Helper()
	h := frame.Header{Fin: fin, Op: op, Masked: true, Mask: [4]byte{0x12, 0x34, 0x56, 0x78}, Length: int64(len(payload))}
	b := frame.AppendHeader(nil, h)
	n := len(b)
	b = append(b, payload...)
	frame.Mask(b[n:], h.Mask, 0)
	if _, err := c.conn.Write(b); err != nil {
		t.Fatal(err)
	}
}

// read returns the next frame; the server's are never masked.
func (c *rawClient) read(t *testing.T) frame.Frame {
	t.Helper()
	var hdr []byte
	for {
		b, err := c.br.ReadByte()
		if err != nil {
			t.Fatalf("reading a frame header: %v", err)
		}
		hdr = append(hdr, b)
		h, n, err := frame.ParseHeader(hdr)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			continue
		}
		if h.Masked {
			t.Fatal("the server sent a masked frame")
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, p); err != nil {
			t.Fatal(err)
		}
		return frame.Frame{Header: h, Payload: p}
	}
}

func TestRaw(t *testing.T) {
	ts, logs := newTestServer(t)
	c := dialRaw(t, ts, "/raw")
	type sent struct {
		fin     bool
		op      frame.Opcode
		payload string
	}
	expect := func(want sent) {
		t.Helper()
		f := c.read(t)
		if f.Fin != want.fin || f.Op != want.op || string(f.Payload) != want.payload || f.Rsv != 0 {
			t.Fatalf("got frame fin=%v op=%v %q, want fin=%v op=%v %q", f.Fin, f.Op, f.Payload, want.fin, want.op, want.payload)
		}
	}

	// A text message in three fragments comes back as three fragments.
	fragments := []sent{
		{false, frame.OpText, "Hel"},
		{false, frame.OpContinuation, "lo, "},
		{true, frame.OpContinuation, "raw"},
	}
	for _, f := range fragments {
		c.write(t, f.fin, f.op, f.payload)
	}
	for _, f := range fragments {
		expect(f)
	}

	// A ping is answered with a pong of the same payload, also between
	// fragments; a pong is not answered.
	c.write(t, true, frame.OpPing, "p1")
	expect(sent{true, frame.OpPong, "p1"})
	c.write(t, true, frame.OpPong, "unsolicited")
	c.write(t, false, frame.OpBinary, "\x00\x01")
	c.write(t, true, frame.OpPing, "p2")
	c.write(t, true, frame.OpContinuation, "\x02")
	expect(sent{false, frame.OpBinary, "\x00\x01"})
	expect(sent{true, frame.OpPong, "p2"})
	expect(sent{true, frame.OpContinuation, "\x02"})

	// The close frame is echoed, then the connection ends.
	closePayload, _ := frame.AppendClose(nil, 4001, "raw bye")
	c.write(t, true, frame.OpClose, string(closePayload))
	expect(sent{true, frame.OpClose, string(closePayload)})
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Fatalf("after the close: %v, want io.EOF", err)
	}
	waitFor(t, "the close to be logged", func() bool { return strings.Contains(logs.String(), "session closed") })
	if log := logs.String(); !strings.Contains(log, "path=/raw") || !strings.Contains(log, "code=4001") {
		t.Errorf("log lacks the raw session's path or close code:\n%s", log)
	}
}

func TestIndex(t *testing.T) {
	ts, _ := newTestServer(t)
	resp, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	page := string(body)
	for _, id := range []string{"path", "connect", "disconnect", "status", "input", "send", "sendBinary", "log",
		"chat-join", "chat-leave", "chat-status", "chat-input", "chat-send", "chat-log", "chat-room", "echo-panel", "chat-panel"} {
		if !strings.Contains(page, `id="`+id+`"`) {
			t.Errorf("page lacks #%s", id)
		}
	}
	for _, want := range []string{"window.wskitDemo", "sendText(s)", "sendBinary(u8)", "received", "closed", "window.wskitChat", `"/chat"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") || strings.Contains(page, "src=") {
		t.Error("page loads an external resource")
	}

	for _, path := range []string{"/nope", "/index.html"} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %s, want 404", path, resp.Status)
		}
	}
	// A WebSocket route asked for by a plain GET says what it is.
	resp, err = http.Get(ts.URL + "/echo")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("plain GET /echo = %s, want 426", resp.Status)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"0", 0, false},
		{"512", 512, false},
		{"1KiB", 1 << 10, false},
		{"64MiB", 64 << 20, false},
		{"64mib", 64 << 20, false},
		{"2 GiB", 2 << 30, false},
		{"1TiB", 1 << 40, false},
		{"100B", 100, false},
		{" 7KiB ", 7 << 10, false},
		{"9223372036854775807", 1<<63 - 1, false},
		{"", 0, true},
		{"MiB", 0, true},
		{"-1", 0, true},
		{"1.5MiB", 0, true},
		{"64MB", 0, true},
		{"64M", 0, true},
		{"12 34", 0, true},
		{"9223372036854775808", 0, true},
		{"8388608TiB", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 100: "100", 1024: "1KiB", 1536: "1536", 64 << 20: "64MiB", 3 << 30: "3GiB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
		if back, err := parseSize(formatSize(n)); err != nil || back != n {
			t.Errorf("parseSize(formatSize(%d)) = %d, %v", n, back, err)
		}
	}
}

func TestParseServeFlags(t *testing.T) {
	c, err := parseServeFlags(nil, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := serveConfig{addr: ":8080", engine: "auto", maxMessage: 64 << 20, timeout: 15 * time.Second, deflate: true, logFormat: "text"}
	if c != want {
		t.Errorf("defaults = %+v, want %+v", c, want)
	}
	o := c.options(nil)
	if o.MaxFrameSize != 64<<20 || o.MaxMessageSize != 64<<20 || o.PingPeriod != 0 || o.Timeout != 15*time.Second {
		t.Errorf("options = %+v", o)
	}
	if len(o.Extensions) != 1 || o.Extensions[0].Name() != "permessage-deflate" {
		t.Errorf("extensions = %v, want permessage-deflate", o.Extensions)
	}

	if h := c.chatOptions(); h.Replay != 0 || h.Buffer != 256 || h.Overflow != wskit.OverflowCloseTryAgain ||
		h.Broker != nil || h.Stamp != nil {
		t.Errorf("chat options = %+v", h)
	}

	c, err = parseServeFlags([]string{"-addr", "127.0.0.1:0", "-max-message", "1KiB", "-ping", "5s", "-timeout", "2s", "-deflate=false", "-chat-replay", "10",
		"-log-level", "DEBUG", "-log-format", "json"}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want = serveConfig{addr: "127.0.0.1:0", engine: "auto", maxMessage: 1024, ping: 5 * time.Second, timeout: 2 * time.Second, chatReplay: 10,
		logLevel: slog.LevelDebug, logFormat: "json"}
	if c != want {
		t.Errorf("parsed %+v, want %+v", c, want)
	}
	if h := c.chatOptions(); h.Replay != 10 {
		t.Errorf("-chat-replay 10: chat options %+v", h)
	}
	if o := c.options(nil); len(o.Extensions) != 0 {
		t.Errorf("-deflate=false: extensions = %v", o.Extensions)
	}

	bad := map[string][]string{
		"unknown engine":          {"-engine", "nope"},
		"-max-message must be":    {"-max-message", "0"},
		"unknown unit":            {"-max-message", "10MB"},
		"-ping must not be":       {"-ping", "-1s"},
		"-timeout must not be":    {"-timeout", "-1s"},
		"-chat-replay must not":   {"-chat-replay", "-1"},
		"unexpected argument":     {"extra"},
		"flag provided but not":   {"-nope"},
		"invalid value \"x\" for": {"-ping", "x"},
		"want debug, info, warn":  {"-log-level", "verbose"},
		"want text or json":       {"-log-format", "xml"},
	}
	for want, args := range bad {
		var stderr syncBuffer
		if code := runServe(context.Background(), args, io.Discard, &stderr); code != 2 {
			t.Errorf("serve %q: exit %d, want 2", args, code)
		}
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("serve %q: stderr %q lacks %q", args, stderr.String(), want)
		}
	}
}

// engines are the -engine values the tests run with.
func engines() []string {
	if poller.Supported {
		return []string{"std", "poll"}
	}
	return []string{"std"}
}

// TestRunServe runs the serve command in process until its context ends.
func TestRunServe(t *testing.T) {
	for _, engine := range engines() {
		t.Run(engine, func(t *testing.T) { testRunServe(t, engine) })
	}
}

func testRunServe(t *testing.T, engine string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- runServe(ctx, []string{"-addr", "127.0.0.1:0", "-engine", engine}, io.Discard, &stderr)
	}()
	var addr string
	waitFor(t, "the listen address", func() bool {
		addr = listenAddr(stderr.String())
		return addr != ""
	})
	s, err := wskit.Dial(ctx, "ws://"+addr+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendText("hi"); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, s); m.Text() != "hi" {
		t.Fatalf("echo = %q", m.Payload)
	}
	// A member's own text comes back to it: it has subscribed before its
	// first message is read.
	chat, err := wskit.Dial(ctx, "ws://"+addr+"/chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := receive(t, chat); m.Text() != chatGreeting {
		t.Fatalf("/chat greeted with %q", m.Payload)
	}
	if err := chat.SendText("hi all"); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, chat); m.Text() != "hi all" {
		t.Fatalf("/chat sent %q, want %q", m.Payload, "hi all")
	}
	cancel()
	// Receive again: while a message is held the session reads nothing.
	for _, s := range []*wskit.Session{s, chat} {
		rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer rcancel()
		if _, err := s.Receive(rctx); err == nil {
			t.Fatal("Receive after the shutdown returned a message")
		}
		if r, _ := s.CloseReason(); r.Code != wskit.CloseGoingAway {
			t.Errorf("session closed with %v, want 1001", r)
		}
	}
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d, stderr:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	log := stderr.String()
	for _, want := range []string{"shutting down", "stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// listenAddr finds the address in the "listening" log line, or "".
func listenAddr(log string) string {
	for line := range strings.Lines(log) {
		if !strings.Contains(line, "msg=listening") {
			continue
		}
		for field := range strings.FieldsSeq(line) {
			if a, ok := strings.CutPrefix(field, "addr="); ok {
				return a
			}
		}
	}
	return ""
}

func TestPageURL(t *testing.T) {
	tests := map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080/",
		"[::]:8080":      "http://localhost:8080/",
		"0.0.0.0:1":      "http://localhost:1/",
		"[::1]:9":        "http://[::1]:9/",
	}
	for addr, want := range tests {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := pageURL(a, false); got != want {
			t.Errorf("pageURL(%s) = %q, want %q", addr, got, want)
		}
		if got, want := pageURL(a, true), "https"+strings.TrimPrefix(want, "http"); got != want {
			t.Errorf("pageURL(%s, true) = %q, want %q", addr, got, want)
		}
	}
}

// TestHandshakeSizeLimit: an opening handshake whose headers exceed
// MaxHandshakeSize is refused with 431 before it reaches the routes, one
// under it upgrades, and one that stalls is cut after the handshake
// timeout; on each engine.
func TestHandshakeSizeLimit(t *testing.T) {
	for _, engine := range engines() {
		t.Run(engine, func(t *testing.T) { testHandshakeSizeLimit(t, engine) })
	}
}

func testHandshakeSizeLimit(t *testing.T, engine string) {
	log := slog.New(slog.DiscardHandler)
	opts := wskit.DefaultOptions()
	opts.HandshakeTimeout = 300 * time.Millisecond
	opts.Engine, _ = wskit.ParseEngine(engine)
	opts.Logger = log
	srv, err := wskit.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	chat, err := wskit.NewHub(serveConfig{}.chatOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer chat.Close()
	go srv.Serve(ln, newMux(srv, chat, newTestFeed(t, srv), log))
	defer srv.Shutdown(context.Background())
	maxHandshake := opts.MaxHandshakeSize
	t.Run("slow client", func(t *testing.T) {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		io.WriteString(nc, "GET /echo HTTP/1.1\r\nHost: x\r\n") // and nothing more
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(nc); err != nil {
			t.Fatalf("the connection was not closed after the handshake timeout: %v", err)
		}
	})
	for _, tc := range []struct {
		name   string
		pad    int
		status int
	}{
		{"under the limit", maxHandshake / 2, http.StatusSwitchingProtocols},
		{"over the limit", 2 * maxHandshake, http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(5 * time.Second))
			req := "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
				"X-Pad: " + strings.Repeat("p", tc.pad) + "\r\n\r\n"
			if _, err := io.WriteString(nc, req); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
}

// chatServer serves the demo routes with /chat's hub at hand, so that a test
// can wait for members to subscribe.
type chatServer struct {
	addr string
	hub  *wskit.Hub
	logs *syncBuffer // at debug level, where /chat logs its sessions
}

// startChat serves newMux on engine with the serve command's flags and
// args. Its cleanup shuts the server down and checks that every member
// left the hub and that every pooled buffer came back.
func startChat(t *testing.T, engine string, args ...string) *chatServer {
	t.Helper()
	c, err := parseServeFlags(append([]string{"-engine", engine}, args...), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	lent := bufpool.Lent()
	cs := &chatServer{logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(cs.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := wskit.NewServer(c.options(log))
	if err != nil {
		t.Fatal(err)
	}
	if cs.hub, err = wskit.NewHub(c.chatOptions()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cs.addr = ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, newMux(srv, cs.hub, newTestFeed(t, srv), log)) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := wstest.Await(t, served, "Serve to return", 10*time.Second); !errors.Is(err, wskit.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		waitFor(t, "every member to leave the hub", func() bool { return cs.hub.Subscribers() == 0 })
		cs.hub.Close()
		waitFor(t, "the pooled buffers to come back", func() bool { return bufpool.Lent() == lent })
	})
	return cs
}

// join dials /chat and reads the greeting.
func (cs *chatServer) join(t *testing.T) *wskit.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := wskit.Dial(ctx, "ws://"+cs.addr+"/chat", nil)
	if err != nil {
		t.Fatalf("Dial /chat: %v", err)
	}
	t.Cleanup(func() { s.Close(wskit.CloseNormal, "") })
	if m := receive(t, s); m.Type != wskit.Text || m.Text() != chatGreeting {
		t.Fatalf("/chat greeted with %v %q, want %q", m.Type, m.Payload, chatGreeting)
	}
	return s
}

// waitMembers waits until n sessions have subscribed: /chat greets before
// it subscribes, so a member that has the greeting may yet miss a text
// published by another.
func (cs *chatServer) waitMembers(t *testing.T, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d members", n), func() bool { return cs.hub.Subscribers() == n })
}

// sessionLogs counts the lines of msg that the server logged for /chat.
func (cs *chatServer) sessionLogs(msg string) int {
	n := 0
	for line := range strings.Lines(cs.logs.String()) {
		if strings.Contains(line, `msg="`+msg+`"`) && strings.Contains(line, " path=/chat") {
			n++
		}
	}
	return n
}

// TestChat is the Ktor guide's test of its SharedFlow chat, scaled up: on
// each engine, every member gets the greeting, then every text that any
// member sent, each once, in one order for all that keeps each sender's own;
// binary messages are ignored; joins and leaves are logged.
func TestChat(t *testing.T) {
	for _, engine := range engines() {
		// Every member gets every text: members² deliveries, which the race
		// detector makes slow enough on a busy machine to need fewer.
		many := 1000
		if race.Enabled {
			many = 600
		}
		for _, tc := range []struct{ members, each int }{{2, 100}, {many, 1}} {
			t.Run(fmt.Sprintf("%s/%d", engine, tc.members), func(t *testing.T) {
				testChat(t, engine, tc.members, tc.each)
			})
		}
	}
}

func testChat(t *testing.T, engine string, members, each int) {
	cs := startChat(t, engine)
	start := time.Now()
	ss := make([]*wskit.Session, members)
	for i := range ss {
		ss[i] = cs.join(t)
	}
	cs.waitMembers(t, members)
	joined := time.Since(start)

	// Every member sends at once, far more texts in all than chatBuffer:
	// members that read are not closed however fast texts come. The end
	// marker, sent when all have read, must come next at every member.
	start = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := make([][]string, members)
	var wg sync.WaitGroup
	for i, s := range ss {
		wg.Go(func() {
			if err := s.SendBinary([]byte("not for the chat")); err != nil {
				t.Errorf("member %d: SendBinary: %v", i, err)
				return
			}
			for j := range each {
				if err := s.SendText(fmt.Sprintf("%d.%d", i, j)); err != nil {
					t.Errorf("member %d: SendText: %v", i, err)
					return
				}
			}
		})
		wg.Go(func() {
			for range members * each {
				m, err := s.Receive(ctx)
				if err != nil {
					t.Errorf("member %d: Receive after %d of %d texts: %v", i, len(got[i]), members*each, err)
					return
				}
				got[i] = append(got[i], m.Text())
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if err := ss[0].SendText("end"); err != nil {
		t.Fatal(err)
	}
	for i, s := range ss {
		m, err := s.Receive(ctx)
		if err != nil || m.Text() != "end" {
			t.Fatalf("member %d: after every text, got %q, %v; want the end marker", i, m.Payload, err)
		}
	}
	t.Logf("%d members joined in %v; %d texts reached each in %v", members, joined.Round(time.Millisecond),
		members*each, time.Since(start).Round(time.Millisecond))

	next := make([]int, members) // of each sender, the next text expected
	for k, text := range got[0] {
		var i, j int
		if _, err := fmt.Sscanf(text, "%d.%d", &i, &j); err != nil || i < 0 || i >= members || j != next[i] {
			t.Fatalf("member 0's text %d is %q; a sender's texts must come once each, in order", k, text)
		}
		next[i]++
	}
	for i := 1; i < members; i++ {
		for k := range got[0] {
			if got[i][k] != got[0][k] {
				t.Fatalf("member %d's text %d is %q, member 0's is %q: the orders differ", i, k, got[i][k], got[0][k])
			}
		}
	}

	for _, s := range ss {
		if err := s.Close(wskit.CloseNormal, "bye"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every leave to be logged", func() bool { return cs.sessionLogs("session closed") == members })
	if n := cs.sessionLogs("session open"); n != members {
		t.Errorf("%d joins logged, want %d", n, members)
	}
	if !strings.Contains(cs.logs.String(), `code=1000 reason=bye`) {
		t.Errorf("no leave with code=1000 reason=bye in the log:\n%.2000s", cs.logs.String())
	}
	cs.waitMembers(t, 0)
}

// TestChatReplay: a member that joins gets the greeting, then the last
// -chat-replay texts sent before it joined, then what is sent after.
func TestChatReplay(t *testing.T) {
	sent := []string{"one", "two", "three"}
	for _, engine := range engines() {
		for _, replay := range []int{0, 2, 5} {
			t.Run(fmt.Sprintf("%s/%d", engine, replay), func(t *testing.T) {
				cs := startChat(t, engine, "-chat-replay", fmt.Sprint(replay))
				first := cs.join(t)
				for _, text := range sent {
					if err := first.SendText(text); err != nil {
						t.Fatal(err)
					}
					if m := receive(t, first); m.Text() != text {
						t.Fatalf("the sender got %q back, want %q", m.Payload, text)
					}
				}
				late := cs.join(t)
				// The late member's own text is published after it subscribed.
				if err := late.SendText("four"); err != nil {
					t.Fatal(err)
				}
				want := append(sent[max(0, len(sent)-replay):len(sent):len(sent)], "four")
				for _, w := range want {
					if m := receive(t, late); m.Text() != w {
						t.Fatalf("the late member got %q, want %q (all: %q)", m.Payload, w, want)
					}
				}
				if m := receive(t, first); m.Text() != "four" {
					t.Fatalf("the first member got %q, want %q", m.Payload, "four")
				}
			})
		}
	}
}

// TestChatNonReader: a member that never reads does not slow the others,
// who get every text at once, and is closed with 1013 once it lags more
// than chatBuffer texts, or the hub's bytes, behind; what reached it until
// then is in order.
func TestChatNonReader(t *testing.T) {
	for _, engine := range engines() {
		t.Run(engine, func(t *testing.T) { testChatNonReader(t, engine) })
	}
}

func testChatNonReader(t *testing.T, engine string) {
	const (
		size   = 64 << 10
		limit  = 1 << 30 / size // texts sent before the test gives up on the overflow
		prompt = 2 * time.Second
	)
	cs := startChat(t, engine)
	a, b := cs.join(t), cs.join(t)
	// A small receive buffer, so that the texts soon pile up in the hub.
	d := net.Dialer{Control: smallReceiveBuffer(4 << 10)}
	conn, err := d.Dial("tcp", cs.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	lazy := upgradeRaw(t, conn, cs.addr, "/chat")
	conn.SetDeadline(time.Time{})
	cs.waitMembers(t, 3)

	filler := strings.Repeat("x", size)
	text := func(n int) string { return fmt.Sprintf("%06d ", n) + filler }
	var worst time.Duration
	exchange := func(n int) {
		t.Helper()
		start := time.Now()
		want := text(n)
		if err := a.SendText(want); err != nil {
			t.Fatal(err)
		}
		for name, s := range map[string]*wskit.Session{"a": a, "b": b} {
			if m := receive(t, s); m.Text() != want {
				t.Fatalf("%s got %.20q, want %.20q", name, m.Payload, want)
			}
		}
		worst = max(worst, time.Since(start))
	}
	start := time.Now()
	n := 0
	for ; cs.hub.Subscribers() == 3; n++ {
		if n == limit {
			t.Fatalf("%d texts of %d KiB went out, and the member that never reads is still subscribed", n, size>>10)
		}
		exchange(n)
	}
	dropped := n
	for range 10 {
		exchange(n)
		n++
	}
	t.Logf("the hub dropped the member that never reads after %d texts of %d KiB (%v); the slowest of %d texts took %v to reach the two others",
		dropped, size>>10, time.Since(start).Round(time.Millisecond), n, worst.Round(time.Microsecond))
	if worst > prompt {
		t.Errorf("a text took %v to reach the members that read, want under %v", worst, prompt)
	}

	// Now it reads: the greeting, texts in order from the first, and the
	// close.
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if f := lazy.read(t); f.Op != frame.OpText || string(f.Payload) != chatGreeting {
		t.Fatalf("the first frame is %v %.40q, want the greeting", f.Op, f.Payload)
	}
	got := 0
	for {
		h, p, err := wstest.ReadFrameLimit(lazy.br, size+64)
		if err != nil {
			t.Fatalf("after %d texts: %v, want more texts, then a close frame", got, err)
		}
		if h.Op == frame.OpClose {
			code, reason, err := frame.ParseClose(p)
			if err != nil || code != frame.CloseTryAgainLater {
				t.Fatalf("closed with %v %q (%v) after %d texts, want 1013", code, reason, err, got)
			}
			break
		}
		if h.Op != frame.OpText || !h.Fin || string(p) != text(got) {
			t.Fatalf("frame %d is %v (fin %v) %.20q, want text %.20q", got, h.Op, h.Fin, p, text(got))
		}
		got++
	}
	t.Logf("the member that never read got %d texts, then 1013", got)
	if got > dropped {
		t.Errorf("it got %d texts, but was dropped after %d", got, dropped)
	}
	closePayload, _ := frame.AppendClose(nil, frame.CloseTryAgainLater, "")
	lazy.write(t, true, frame.OpClose, string(closePayload))
	if _, err := io.Copy(io.Discard, lazy.br); err != nil {
		t.Fatalf("after the close: %v, want EOF", err)
	}
	waitFor(t, "the close to be logged", func() bool { return strings.Contains(cs.logs.String(), "code=1013") })
}

// TestChatRooms: /chat/{room} keeps each room's texts to its members, apart
// from the lobby at /chat, on each engine; a bad room name is refused.
func TestChatRooms(t *testing.T) {
	for _, engine := range engines() {
		t.Run(engine, func(t *testing.T) {
			cs := startChat(t, engine)
			dial := func(path string) *wskit.Session {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				s, err := wskit.Dial(ctx, "ws://"+cs.addr+path, nil)
				if err != nil {
					t.Fatalf("Dial %s: %v", path, err)
				}
				t.Cleanup(func() { s.Close(wskit.CloseNormal, "") })
				if m := receive(t, s); m.Text() != chatGreeting {
					t.Fatalf("%s greeted with %q", path, m.Payload)
				}
				return s
			}
			k1, k2, g := dial("/chat/kotlin"), dial("/chat/kotlin"), dial("/chat/go")
			lobby := cs.join(t)
			cs.waitMembers(t, 1)
			// A member has subscribed once its own text comes back.
			for i, s := range []*wskit.Session{k1, k2, g} {
				ready := fmt.Sprintf("ready %d", i)
				s.SendText(ready)
				for receive(t, s).Text() != ready {
				}
			}
			k1.SendText("hello kotlin")
			g.SendText("hello go")
			lobby.SendText("hello lobby")
			for _, c := range []struct {
				s    *wskit.Session
				want string
			}{{k1, "hello kotlin"}, {k2, "hello kotlin"}, {g, "hello go"}, {lobby, "hello lobby"}} {
				for {
					m := receive(t, c.s).Text()
					if m == c.want {
						break
					}
					if !strings.HasPrefix(m, "ready ") {
						t.Fatalf("got %q, want %q", m, c.want)
					}
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := wskit.Dial(ctx, "ws://"+cs.addr+"/chat/bad%20room", nil)
			var he *wskit.HandshakeError
			if !errors.As(err, &he) || he.StatusCode != http.StatusBadRequest {
				t.Fatalf("a bad room: %v, want 400", err)
			}
		})
	}
}

// TestServeSelfSigned runs wskit serve -tls-self-signed on each engine and
// wskit dial against it over wss://, trusting the printed certificate with
// -ca, and then with -insecure; without either, the dial fails.
func TestServeSelfSigned(t *testing.T) {
	for _, engine := range engines() {
		t.Run(engine, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var stderr syncBuffer
			exit := make(chan int, 1)
			go func() {
				exit <- runServe(ctx, []string{"-addr", "127.0.0.1:0", "-engine", engine, "-tls-self-signed"}, io.Discard, &stderr)
			}()
			var addr string
			waitFor(t, "the listen address", func() bool {
				addr = listenAddr(stderr.String())
				return addr != ""
			})
			log := stderr.String()
			if !strings.Contains(log, "page=https://127.0.0.1:") || !strings.Contains(log, "SHA-256 fingerprint") {
				t.Fatalf("the log does not show the https page and the fingerprint:\n%s", log)
			}
			start := strings.Index(log, "-----BEGIN CERTIFICATE-----")
			end := strings.Index(log, "-----END CERTIFICATE-----")
			if start < 0 || end < 0 {
				t.Fatalf("no certificate in the log:\n%s", log)
			}
			caFile := filepath.Join(t.TempDir(), "ca.pem")
			os.WriteFile(caFile, []byte(log[start:end+len("-----END CERTIFICATE-----")]+"\n"), 0o600)
			url := "wss://localhost:" + strings.TrimPrefix(addr, "127.0.0.1:") + "/echo"
			for _, trust := range [][]string{{"-ca", caFile}, {"-insecure"}} {
				var out, errOut bytes.Buffer
				args := append(append([]string{}, trust...), "-send", "over tls", "-count", "1", url)
				if code := runDial(ctx, args, strings.NewReader(""), &out, &errOut); code != 0 || out.String() != "over tls\n" {
					t.Fatalf("dial %v: exit %d, stdout %q, stderr %s", trust, code, out.String(), errOut.String())
				}
			}
			var out, errOut bytes.Buffer
			if code := runDial(ctx, []string{"-send", "x", "-count", "1", url}, strings.NewReader(""), &out, &errOut); code == 0 {
				t.Fatalf("a dial that does not trust the certificate succeeded: %s", out.String())
			}
			cancel()
			if code := <-exit; code != 0 {
				t.Errorf("exit %d:\n%s", code, stderr.String())
			}
		})
	}
}

// TestServeHTTP2: serve -http2 takes WebSockets over HTTP/2 beside
// HTTP/1.1, over TLS and h2c, and dial -http2 opens them; without -http2
// a dial over HTTP/2 fails and says why.
func TestServeHTTP2(t *testing.T) {
	for _, engine := range engines() {
		for _, tls := range []bool{true, false} {
			for _, on := range []bool{true, false} {
				name := fmt.Sprintf("%s/tls=%v/http2=%v", engine, tls, on)
				t.Run(name, func(t *testing.T) {
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					var stderr syncBuffer
					args := []string{"-addr", "127.0.0.1:0", "-engine", engine, "-log-level", "debug"}
					if tls {
						args = append(args, "-tls-self-signed")
					}
					if on {
						args = append(args, "-http2")
					}
					exit := make(chan int, 1)
					go func() { exit <- runServe(ctx, args, io.Discard, &stderr) }()
					var addr string
					waitFor(t, "the listen address", func() bool {
						addr = listenAddr(stderr.String())
						return addr != ""
					})
					if !strings.Contains(stderr.String(), fmt.Sprintf("http2=%v", on)) {
						t.Errorf("the listening line does not say http2=%v:\n%s", on, stderr.String())
					}
					base := "ws://" + addr
					if tls {
						base = "wss://localhost:" + strings.TrimPrefix(addr, "127.0.0.1:")
					}
					for _, path := range []string{"/echo", "/events", "/raw"} {
						var out, errOut bytes.Buffer
						code := runDial(ctx, []string{"-insecure", "-http2", "-send", "over h2", "-count", "1", base + path}, strings.NewReader(""), &out, &errOut)
						if on && (code != 0 || out.String() != "over h2\n") {
							t.Errorf("dial -http2 %s: exit %d, stdout %q, stderr %s", path, code, out.String(), errOut.String())
						}
						if !on && code == 0 {
							t.Errorf("dial -http2 %s succeeded against a server without -http2", path)
						}
						if on {
							waitFor(t, "the HTTP/2 session's open in the log", func() bool {
								return countOpens(stderr.String(), path, "HTTP/2.0") == 1
							})
						}
						out.Reset()
						errOut.Reset()
						if code := runDial(ctx, []string{"-insecure", "-send", "over h1", "-count", "1", base + path}, strings.NewReader(""), &out, &errOut); code != 0 || out.String() != "over h1\n" {
							t.Errorf("dial %s over HTTP/1.1: exit %d, stdout %q, stderr %s", path, code, out.String(), errOut.String())
						}
						waitFor(t, "the HTTP/1.1 session's open in the log", func() bool {
							return countOpens(stderr.String(), path, "HTTP/1.1") == 1
						})
					}
					cancel()
					if code := <-exit; code != 0 {
						t.Errorf("exit %d:\n%s", code, stderr.String())
					}
				})
			}
		}
	}
}

// countOpens counts the session opens to path over proto in a log of
// wskit serve.
func countOpens(log, path, proto string) int {
	n := 0
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, `msg="session open"`) && strings.Contains(line, " path="+path+" ") && strings.Contains(line, " proto="+proto) {
			n++
		}
	}
	return n
}
