package cli

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
			name:   "server closes before count",
			args:   []string{"-send", "bye", "-count", "5", wsURL(ts, "/hello")},
			code:   1,
			stdout: "Please enter your name\n",
			stderr: "closed: 1000 normal closure: Client said BYE\nwskit dial: received 1 of 5 messages",
		},
		{
			name:   "not found",
			args:   []string{"-send", "x", wsURL(ts, "/nope")},
			code:   1,
			stderr: "refused the WebSocket upgrade with HTTP status 404 Not Found: 404 page not found",
		},
		{
			name:   "deflate is offered and negotiated",
			args:   []string{"-send", "squeeze squeeze squeeze squeeze", "-count", "1", wsURL(ts, "/echo")},
			stdout: "squeeze squeeze squeeze squeeze\n",
			stderr: "(extensions permessage-deflate)",
		},
		{
			name:   "-deflate=false offers nothing",
			args:   []string{"-deflate=false", "-send", "plain", "-count", "1", wsURL(ts, "/echo")},
			stdout: "plain\n",
			stderr: wsURL(ts, "/echo") + "\n",
		},
		{
			name:   "headers and subprotocols are sent",
			args:   []string{"-H", "X-Test: 1", "-subprotocol", "chat", "-send", "x", "-count", "1", wsURL(ts, "/echo")},
			stdout: "x\n",
		},
		{name: "no URL", args: []string{"-send", "x"}, code: 2, stderr: "want exactly one URL"},
		{name: "two URLs", args: []string{"ws://a/", "ws://b/"}, code: 2, stderr: "want exactly one URL"},
		{name: "bad scheme", args: []string{"ftp://x/"}, code: 2, stderr: "want a ws:// or wss:// URL"},
		{name: "no host", args: []string{"ws:///echo"}, code: 2, stderr: "has no host"},
		{name: "bad header", args: []string{"-H", "nocolon", "ws://x/"}, code: 2, stderr: "want 'Name: value'"},
		{name: "negative count", args: []string{"-count", "-1", "ws://x/"}, code: 2, stderr: "-count must not be negative"},
		{name: "help", args: []string{"-h"}, code: 0, stderr: "Usage: wskit dial"},
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
	code, _, stderr := dialRun(t, nil, nil, "ws://"+addr+"/echo")
	if code != 1 || !strings.Contains(stderr, "wskit dial: ") || !strings.Contains(stderr, addr) {
		t.Errorf("exit %d, stderr %q; want 1 and the address", code, stderr)
	}
}

// A redirect is reported with its Location, and not followed.
func TestRunDialRedirect(t *testing.T) {
	ts := httptest.NewServer(http.RedirectHandler("/elsewhere", http.StatusFound))
	defer ts.Close()
	code, _, stderr := dialRun(t, nil, nil, "-send", "x", wsURL(ts, "/echo"))
	want := "refused the WebSocket upgrade with HTTP status 302 Found, a redirect to /elsewhere, which is not followed"
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, want)
	}
}
