package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wskit/wskit"
)

// dialRun runs wskit dial with args and stdin and returns its exit code and
// output.
func dialRun(t *testing.T, ctx context.Context, stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	if ctx == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var out, errOut syncBuffer
	code = runDial(ctx, args, stdin, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRunDial(t *testing.T) {
	ts, _ := newTestServer(t)
	tests := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string
		stderr string // a part of it
	}{
		{
			name:   "send and count",
			args:   []string{"-send", "hello", "-send", "world", "-count", "2", wsURL(ts, "/echo")},
			stdout: "hello\nworld\n",
			stderr: "closed: 1000 normal closure",
		},
		{
			name:   "flags after the URL",
			args:   []string{wsURL(ts, "/echo"), "-count", "1", "-send", "after"},
			stdout: "after\n",
		},
		{
			name:   "http URL",
			args:   []string{"-send", "x", "-count", "1", ts.URL + "/echo"},
			stdout: "x\n",
		},
		{
			name:   "binary",
			args:   []string{"-binary", "-send", "abc", "-send", "", "-count", "2", wsURL(ts, "/echo")},
			stdout: "[binary] 616263\n[binary]\n",
		},
		{
			name:   "hello",
			args:   []string{"-send", "JetBrains", "-count", "2", wsURL(ts, "/hello")},
			stdout: "Please enter your name\nHi, JetBrains!\n",
		},
		{
			name:   "stdin lines with count",
			stdin:  "one\r\n\ntwo",
			args:   []string{"-count", "3", wsURL(ts, "/echo")},
			stdout: "one\n\ntwo\n",
		},
		{
			name:   "end of input closes",
			args:   []string{"-wait", "0", wsURL(ts, "/echo")},
			stderr: "closed: 1000 normal closure",
		},
		{
			name:   "piped lines and their replies",
			stdin:  "hi\nthere\n",
			args:   []string{"-wait", "300ms", wsURL(ts, "/echo")},
			stdout: "hi\nthere\n",
			stderr: "closed: 1000 normal closure",
		},
		{
			name:   "replies after the greeting",
			stdin:  "Gopher",
			args:   []string{"-wait", "300ms", wsURL(ts, "/hello")},
			stdout: "Please enter your name\nHi, Gopher!\n",
		},
		{
			name:   "deflate is offered and negotiated",
			args:   []string{"-send", "squeeze squeeze squeeze squeeze", "-count", "1", wsURL(ts, "/echo")},
			stdout: "squeeze squeeze squeeze squeeze\n",
			stderr: "(extensions permessage-deflate; client_max_window_bits=13)",
		},
		{
			name:   "-deflate=false offers nothing",
			args:   []string{"-deflate=false", "-send", "plain", "-count", "1", wsURL(ts, "/echo")},
			stdout: "plain\n",
			stderr: wsURL(ts, "/echo") + "\n",
		},
		{
			name:   "send without count waits for the reply",
			args:   []string{"-send", "x", "-wait", "300ms", wsURL(ts, "/echo")},
			stdout: "x\n",
			stderr: "closed: 1000 normal closure",
		},
		{
			name:   "no scheme is ws://",
			args:   []string{"-send", "plain", "-count", "1", strings.TrimPrefix(wsURL(ts, "/echo"), "ws://")},
			stdout: "plain\n",
			stderr: "connected to " + wsURL(ts, "/echo"),
		},
		{
			name:   "a slash line from a pipe is a message",
			stdin:  "/ping\n",
			args:   []string{"-wait", "300ms", wsURL(ts, "/echo")},
			stdout: "/ping\n",
		},
		{name: "no URL", args: []string{"-send", "x"}, code: 2, stderr: "want exactly one URL"},
		{name: "two URLs", args: []string{"ws://a/", "ws://b/"}, code: 2, stderr: "want exactly one URL"},
		{name: "bad scheme", args: []string{"ftp://x/"}, code: 2, stderr: "want a ws:// or wss:// URL"},
		{name: "no host", args: []string{"ws:///echo"}, code: 2, stderr: "has no host"},
		{name: "bad header", args: []string{"-H", "nocolon", "ws://x/"}, code: 2, stderr: "want 'Name: value'"},
		{name: "negative count", args: []string{"-count", "-1", "ws://x/"}, code: 2, stderr: "-count must not be negative"},
		{name: "negative wait", args: []string{"-wait", "-1s", "ws://x/"}, code: 2, stderr: "-wait must not be negative"},
		{name: "handshake header", args: []string{"-H", "Sec-WebSocket-Protocol: chat", "ws://x/"}, code: 2, stderr: "offer subprotocols with -subprotocol"},
		{name: "bad subprotocol", args: []string{"-subprotocol", "a b", "ws://x/"}, code: 1,
			stderr: "wskit dial: ws://x/: invalid options: subprotocol \"a b\" is not an HTTP token\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := dialRun(t, nil, strings.NewReader(tt.stdin), tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if stdout != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout, tt.stdout)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q lacks %q", stderr, tt.stderr)
			}
		})
	}
}

// TestRunDialInteractive types lines one at a time and ends the input.
func TestRunDialInteractive(t *testing.T) {
	ts, _ := newTestServer(t)
	stdinR, stdinW := io.Pipe()
	var stdout, stderr syncBuffer
	exit := make(chan int, 1)
	go func() { exit <- runDial(context.Background(), []string{wsURL(ts, "/hello")}, stdinR, &stdout, &stderr) }()
	waitFor(t, "the greeting", func() bool { return stdout.String() == "Please enter your name\n" })
	io.WriteString(stdinW, "Gopher\n")
	waitFor(t, "the reply", func() bool { return strings.HasSuffix(stdout.String(), "Hi, Gopher!\n") })
	stdinW.Close()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("dial did not end after the input did")
	}
	if !strings.Contains(stderr.String(), "closed: 1000") {
		t.Errorf("stderr %q lacks the close code", stderr.String())
	}
}

// TestRunDialInterrupt cancels the context, as SIGINT does.
func TestRunDialInterrupt(t *testing.T) {
	ts, _ := newTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	exit := make(chan int, 1)
	go func() { exit <- runDial(ctx, []string{"-send", "x", wsURL(ts, "/echo")}, nil, &stdout, &stderr) }()
	waitFor(t, "the echo", func() bool { return stdout.String() == "x\n" })
	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("dial did not end after the interrupt")
	}
}

func TestRunDialRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	code, _, stderr := dialRun(t, nil, nil, addr+"/echo")
	want := "wskit dial: ws://" + addr + "/echo: dial tcp " + addr + ": connect: connection refused\n"
	if code != 1 || stderr != want {
		t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, want)
	}
}

// TestRunDialTimeout dials a server that accepts the connection and never
// answers the handshake.
func TestRunDialTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	code, _, stderr := dialRun(t, nil, nil, "-timeout", "200ms", "ws://"+ln.Addr().String()+"/")
	want := "wskit dial: ws://" + ln.Addr().String() + "/: the opening handshake took longer than -timeout 200ms\n"
	if code != 1 || stderr != want {
		t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, want)
	}
}

func TestWebsocketURL(t *testing.T) {
	tests := map[string]string{
		"localhost:8080":          "ws://localhost:8080/",
		"127.0.0.1:9/echo":        "ws://127.0.0.1:9/echo",
		":8080/chat/room":         "ws://localhost:8080/chat/room",
		"example.com":             "ws://example.com/",
		"[::1]:8080/echo?x=1":     "ws://[::1]:8080/echo?x=1",
		"ws://example.com":        "ws://example.com/",
		"wss://example.com:8443/": "wss://example.com:8443/",
		"http://example.com/a":    "ws://example.com/a",
		"HTTPS://example.com/a":   "wss://example.com/a",
	}
	for raw, want := range tests {
		if got, err := websocketURL(raw); err != nil || got != want {
			t.Errorf("websocketURL(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
	for raw, want := range map[string]string{
		"ftp://example.com/": "want a ws:// or wss:// URL",
		"ws:///echo":         "has no host",
		"/echo":              "has no host",
		"localhost:port":     "invalid port",
	} {
		if _, err := websocketURL(raw); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("websocketURL(%q): error %v, want one with %q", raw, err, want)
		}
	}
}

// TestRunDialNotWebSocket dials servers that answer with another HTTP
// response than 101: one line says so, with the status and one line of the
// body at most.
func TestRunDialNotWebSocket(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        string
	}{
		{
			name: "an HTML page", status: 200, contentType: "text/html; charset=utf-8",
			body: "<!doctype html>\n<html><head>\n<title>\n  Demo &amp; more\n</title></head>\n<body>" + strings.Repeat("<p>text</p>\n", 100) + "</body></html>",
			want: "the server answered HTTP status 200 OK, not a WebSocket upgrade: Demo & more",
		},
		{
			name: "an HTML page without a title", status: 404, contentType: "text/html",
			body: "<html><body><h1>Not here</h1></body></html>",
			want: "the server refused the WebSocket upgrade with HTTP status 404 Not Found",
		},
		{
			name: "lines of text", status: 500, contentType: "text/plain",
			body: "\n\n  database down  \nstack trace line 1\nstack trace line 2\n",
			want: "the server refused the WebSocket upgrade with HTTP status 500 Internal Server Error: database down",
		},
		{
			name: "a long line", status: 403, contentType: "text/plain",
			body: "é" + strings.Repeat("x", 300),
			want: "the server refused the WebSocket upgrade with HTTP status 403 Forbidden: é" + strings.Repeat("x", maxBodyLine-2) + "…",
		},
		{
			name: "escape sequences", status: 400, contentType: "text/plain",
			body: "bad \x1b[31mrequest\x07",
			want: "the server refused the WebSocket upgrade with HTTP status 400 Bad Request: bad ?[31mrequest?",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer ts.Close()
			code, stdout, stderr := dialRun(t, nil, nil, "-send", "x", wsURL(ts, "/echo"))
			want := "wskit dial: " + wsURL(ts, "/echo") + ": " + tt.want + "\n"
			if code != 1 || stdout != "" || stderr != want {
				t.Errorf("exit %d, stdout %q, stderr\n%q\nwant 1, nothing and\n%q", code, stdout, stderr, want)
			}
		})
	}
}

// TestRunDialRequest checks what -H, -origin and -subprotocol send, with a
// route that reports the request.
func TestRunDialRequest(t *testing.T) {
	o := wskit.DefaultOptions()
	o.Subprotocols = []string{"chat", "superchat"}
	srv, err := wskit.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/request", srv.WebSocket(func(s *wskit.Session) {
		h := s.Request().Header
		s.SendText("origin " + h.Get("Origin"))
		s.SendText("x-test " + strings.Join(h.Values("X-Test"), ","))
		s.SendText("subprotocol " + s.Subprotocol())
		s.Close(wskit.CloseNormal, "")
	}))
	ts := httptest.NewServer(mux)
	defer ts.Close()
	url := wsURL(ts, "/request")
	code, stdout, stderr := dialRun(t, nil, nil, "-H", "X-Test: 1", "-H", "x-test:2", "-origin", ts.URL,
		"-subprotocol", "other", "-subprotocol", "superchat", url)
	want := "origin " + ts.URL + "\nx-test 1,2\nsubprotocol superchat\n"
	if code != 0 || stdout != want || !strings.Contains(stderr, "(subprotocol superchat)") {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0, %q and the subprotocol", code, stdout, stderr, want)
	}

	// Another origin is refused by the Origin policy, as for a browser.
	code, _, stderr = dialRun(t, nil, nil, "-origin", "http://elsewhere.example", url)
	if want := "refused the WebSocket upgrade with HTTP status 403 Forbidden: wskit: cross-origin request from elsewhere.example refused"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, want)
	}
}

// TestRunDialJSON checks -json: a JSON object per message, then the close.
func TestRunDialJSON(t *testing.T) {
	ts, _ := newTestServer(t)
	before := time.Now()
	code, stdout, stderr := dialRun(t, nil, strings.NewReader("multi\\nline\n"), "-json", "-wait", "200ms", wsURL(ts, "/hello"))
	if code != 0 {
		t.Fatalf("exit %d; stderr %s", code, stderr)
	}
	type message struct {
		Type  string
		Data  any
		Time  time.Time
		Close *struct {
			Code   int
			Reason string
			Error  *string
		}
	}
	var got []message
	for line := range strings.Lines(stdout) {
		var m message
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, m)
	}
	if len(got) != 3 || got[0].Data != "Please enter your name" || got[1].Data != `Hi, multi\nline!` ||
		got[0].Type != "text" || got[2].Close == nil || got[2].Close.Code != 1000 || got[2].Close.Error != nil {
		t.Fatalf("stdout:\n%s", stdout)
	}
	if got[0].Time.Before(before) || got[1].Time.Before(got[0].Time) || time.Since(got[1].Time) > 10*time.Second {
		t.Errorf("times %v, %v: not in order after %v", got[0].Time, got[1].Time, before)
	}

	code, stdout, _ = dialRun(t, nil, nil, "-json", "-binary", "-send", "\x00\x01\xff", "-count", "1", wsURL(ts, "/echo"))
	if want := `{"type":"binary","data":"AAH/","time":`; code != 0 || !strings.HasPrefix(stdout, want) ||
		!strings.HasSuffix(stdout, "}\n"+`{"close":{"code":1000,"reason":""}}`+"\n") {
		t.Errorf("exit %d, stdout %q; want 0, %s... and the close", code, stdout, want)
	}
}

// TestRunDialWait checks how long a piped dial waits for replies: -wait
// after the last one.
func TestRunDialWait(t *testing.T) {
	ts, _ := newTestServer(t)
	for _, wait := range []time.Duration{0, 300 * time.Millisecond} {
		start := time.Now()
		code, stdout, stderr := dialRun(t, nil, nil, "-send", "x", "-wait", wait.String(), wsURL(ts, "/echo"))
		took := time.Since(start)
		if code != 0 || !strings.Contains(stderr, "closed: 1000") {
			t.Errorf("-wait %v: exit %d, stderr %q", wait, code, stderr)
		}
		if took > wait+2*time.Second || took < wait {
			t.Errorf("-wait %v: took %v", wait, took)
		}
		if wait > 0 && stdout != "x\n" {
			t.Errorf("-wait %v: stdout %q, want the reply", wait, stdout)
		}
	}
}

// A redirect is reported with its Location, and not followed.
func TestRunDialRedirect(t *testing.T) {
	ts := httptest.NewServer(http.RedirectHandler("/elsewhere", http.StatusFound))
	defer ts.Close()
	code, _, stderr := dialRun(t, nil, nil, "-send", "x", wsURL(ts, "/echo"))
	want := "the server answered HTTP status 302 Found, a redirect to /elsewhere, which is not followed"
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, want)
	}
}

// typist writes lines to a dial's stdin, a pipe, and reads its output.
type typist struct {
	t              *testing.T
	in             *io.PipeWriter
	stdout, stderr *syncBuffer
	exit           chan int
}

// startDial runs wskit dial with args and a pipe for stdin.
func startDial(t *testing.T, args ...string) *typist {
	t.Helper()
	r, w := io.Pipe()
	ty := &typist{t: t, in: w, stdout: &syncBuffer{}, stderr: &syncBuffer{}, exit: make(chan int, 1)}
	go func() { ty.exit <- runDial(context.Background(), args, r, ty.stdout, ty.stderr) }()
	t.Cleanup(func() { w.Close() })
	waitFor(t, "the session to open", func() bool { return strings.Contains(ty.stderr.String(), "connected to ") })
	return ty
}

// typeLine writes a line and waits until want is in stdout (if set) and in
// stderr (if set).
func (ty *typist) typeLine(line, stdout, stderr string) {
	ty.t.Helper()
	io.WriteString(ty.in, line+"\n")
	waitFor(ty.t, fmt.Sprintf("%q after %q", stdout+stderr, line), func() bool {
		return strings.Contains(ty.stdout.String(), stdout) && strings.Contains(ty.stderr.String(), stderr)
	})
}

// wait waits for the exit code.
func (ty *typist) wait() int {
	ty.t.Helper()
	select {
	case code := <-ty.exit:
		return code
	case <-time.After(10 * time.Second):
		ty.t.Fatalf("dial did not end; stderr:\n%s", ty.stderr.String())
		return -1
	}
}

// TestRunDialCommands runs the commands of -commands from a pipe: /ping,
// which shows the round-trip time, with and without a payload, //, an
// unknown one, /close with a bad code, then /close with a code and a
// reason, after which nothing is read.
func TestRunDialCommands(t *testing.T) {
	ts, _ := newTestServer(t)
	ty := startDial(t, "-commands", wsURL(ts, "/echo"))
	if !strings.Contains(ty.stderr.String(), "/help lists the commands") {
		t.Errorf("the connected line does not point to /help: %q", ty.stderr.String())
	}
	ty.typeLine("/ping", "", "pong in ")
	ty.typeLine("/ping hello", "", `pong "hello" in `)
	for _, re := range []string{`\npong in [0-9.]+(ns|µs|ms|s)\n`, `\npong "hello" in [0-9.]+(ns|µs|ms|s)\n`} {
		if !regexp.MustCompile(re).MatchString(ty.stderr.String()) {
			t.Errorf("stderr %q lacks a line matching %s", ty.stderr.String(), re)
		}
	}
	ty.typeLine("/ping "+strings.Repeat("p", 126), "", "a ping's payload is at most 125 bytes, not 126")
	ty.typeLine("x", "x\n", "")
	ty.typeLine("//slash", "x\n/slash\n", "")
	ty.typeLine("/nope", "", "unknown command /nope; commands:\n  /ping")
	ty.typeLine("/help", "", "/close [code [reason]]")
	ty.typeLine("/close 999", "", `/close: "999" is not a close code that may be sent`)
	ty.typeLine("/close 4000 done here", "", "closed: 4000")
	if code := ty.wait(); code != 0 {
		t.Errorf("exit %d after /close 4000; stderr:\n%s", code, ty.stderr.String())
	}
	if got, want := ty.stdout.String(), "x\n/slash\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if !strings.Contains(ty.stderr.String(), "closed: 4000 private: done here\n") {
		t.Errorf("stderr %q lacks the close with 4000 and its reason", ty.stderr.String())
	}
}

// TestRunDialQuit ends a session with /quit, before -count messages came.
func TestRunDialQuit(t *testing.T) {
	ts, _ := newTestServer(t)
	ty := startDial(t, "-commands", "-count", "5", wsURL(ts, "/echo"))
	ty.typeLine("a", "a\n", "")
	ty.typeLine("/quit", "", "closed: 1000 normal closure\n")
	if code := ty.wait(); code != 1 {
		t.Errorf("exit %d, want 1: 1 of 5 messages", code)
	}
	if !strings.Contains(ty.stderr.String(), "received 1 of 5 messages") {
		t.Errorf("stderr %q does not say how many messages came", ty.stderr.String())
	}
}
