package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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
			args:   []string{wsURL(ts, "/echo")},
			stderr: "closed: 1000 normal closure",
		},
		{
			name:   "no scheme is ws://",
			args:   []string{"-send", "plain", "-count", "1", strings.TrimPrefix(wsURL(ts, "/echo"), "ws://")},
			stdout: "plain\n",
			stderr: "connected to " + wsURL(ts, "/echo"),
		},
		{name: "no URL", args: []string{"-send", "x"}, code: 2, stderr: "want exactly one URL"},
		{name: "two URLs", args: []string{"ws://a/", "ws://b/"}, code: 2, stderr: "want exactly one URL"},
		{name: "bad scheme", args: []string{"ftp://x/"}, code: 2, stderr: "want a ws:// or wss:// URL"},
		{name: "no host", args: []string{"ws:///echo"}, code: 2, stderr: "has no host"},
		{name: "bad header", args: []string{"-H", "nocolon", "ws://x/"}, code: 2, stderr: "want 'Name: value'"},
		{name: "negative count", args: []string{"-count", "-1", "ws://x/"}, code: 2, stderr: "-count must not be negative"},
		{name: "handshake header", args: []string{"-H", "Sec-WebSocket-Protocol: chat", "ws://x/"}, code: 2, stderr: "offer subprotocols with -subprotocol"},
		{name: "bad subprotocol", args: []string{"-subprotocol", "a b", "ws://x/"}, code: 1,
			stderr: "wskit dial: ws://x/: subprotocol \"a b\" is not an HTTP token\n"},
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
