package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wskit/wskit/internal/load"
)

func TestParseBenchFlags(t *testing.T) {
	tests := []struct {
		args []string
		want func(c benchConfig) bool
		err  string
	}{
		{args: nil, want: func(c benchConfig) bool {
			l := c.load
			return l.URL == "ws://127.0.0.1:8080/echo" && l.Scenario == load.Echo && l.Conns == 1000 && l.Size == 64 &&
				l.Duration == 10*time.Second && l.Pipeline == 16 && !l.Verify && !c.json && !c.progress
		}},
		{args: []string{"-scenario", "broadcast"}, want: func(c benchConfig) bool {
			return c.load.URL == "ws://127.0.0.1:8080/chat" && c.load.Scenario == load.Broadcast
		}},
		{args: []string{"ws://h:1/x", "-scenario", "pipeline", "-p", "4", "-size", "16KiB", "-c", "7", "-d", "2s", "-ramp", "1s",
			"-rate", "500", "-src", "127.0.0.2, 127.0.0.3", "-pid", "42", "-loops", "3", "-verify", "-json", "-progress"},
			want: func(c benchConfig) bool {
				l := c.load
				return l.URL == "ws://h:1/x" && l.Scenario == load.Pipeline && l.Pipeline == 4 && l.Size == 16<<10 &&
					l.Conns == 7 && l.Duration == 2*time.Second && l.Ramp == time.Second && l.Rate == 500 &&
					len(l.Sources) == 2 && l.Sources[1] == netip.MustParseAddr("127.0.0.3") && l.PID == 42 && l.Loops == 3 &&
					l.Verify && c.json && c.progress
			}},
		{args: []string{"-url", "ws://a/", "ws://b/"}, err: "not both"},
		{args: []string{"ws://a/", "ws://b/"}, err: "at most one URL"},
		{args: []string{"-scenario", "broadcast", "-publishers", "3", "ws://a/", "ws://b/", "ws://c/"},
			want: func(c benchConfig) bool {
				l := c.load
				return l.URL == "ws://a/" && len(l.URLs) == 2 && l.URLs[1] == "ws://c/" && l.Publishers == 3
			}},
		{args: []string{"-scenario", "broadcast", "-publishers", "0"}, err: "-publishers"},
		{args: []string{"-src", "127.0.0.300"}, err: "source address"},
		{args: []string{"-size", "2GiB"}, err: "over 1GiB"},
		{args: []string{"-size", "lots"}, err: "size"},
		{args: []string{"-insecure", "wss://h:1/x"}, want: func(c benchConfig) bool {
			return c.load.URL == "wss://h:1/x" && c.load.TLS != nil && c.load.TLS.InsecureSkipVerify
		}},
		{args: []string{"-ca", "/nonexistent/ca.pem", "wss://h:1/x"}, err: "ca.pem"},
	}
	for _, tt := range tests {
		c, err := parseBenchFlags(tt.args, io.Discard, io.Discard)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: got %v, want an error with %q", tt.args, err, tt.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tt.args, err)
		case !tt.want(c):
			t.Errorf("%q: got %+v", tt.args, c)
		}
	}
}

func TestBenchUsage(t *testing.T) {
	var stdout, stderr syncBuffer
	if code := run(context.Background(), []string{"bench", "-scenario", "nap", "ws://127.0.0.1:1/"}, nil, &stdout, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), `unknown scenario "nap"`) {
		t.Errorf("unknown scenario: exit %d, stderr %q", code, stderr.String())
	}
	stderr = syncBuffer{}
	if code := run(context.Background(), []string{"bench", "-h"}, nil, &stdout, &stderr); code != 0 ||
		!strings.Contains(stdout.String(), "-scenario") || !strings.Contains(stdout.String(), "churn") || stderr.String() != "" {
		t.Errorf("bench -h: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

// TestBench runs every scenario briefly against the demo server's routes.
func TestBench(t *testing.T) {
	if runtime.GOOS != "linux" {
		var stderr syncBuffer
		if code := run(context.Background(), []string{"bench", "-d", "1s", "ws://127.0.0.1:1/"}, nil, io.Discard, &stderr); code != 1 ||
			!strings.Contains(stderr.String(), "not supported") {
			t.Errorf("exit %d, stderr %q, want 1 and not supported", code, stderr.String())
		}
		return
	}
	ts, _ := newTestServer(t)
	pid := strconv.Itoa(os.Getpid())
	for _, sc := range load.Scenarios {
		t.Run(string(sc), func(t *testing.T) {
			path := "/echo"
			if sc == load.Broadcast {
				path = "/chat"
			}
			var stdout, stderr syncBuffer
			args := []string{"bench", "-scenario", string(sc), "-c", "10", "-p", "4", "-d", "200ms", "-pid", pid, "-json", wsURL(ts, path)}
			code := run(context.Background(), args, nil, &stdout, &stderr)
			var res load.Result
			if err := json.Unmarshal([]byte(stdout.String()), &res); err != nil {
				t.Fatalf("exit %d, output %q: %v\nstderr: %s", code, stdout.String(), err, stderr.String())
			}
			if code != 0 || len(res.Errors) != 0 || !res.Complete || res.Server == nil || res.Open != 10 && sc != load.Churn {
				t.Errorf("exit %d, %+v\nstderr: %s", code, res, stderr.String())
			}
			if res.Messages == 0 || res.Sent == 0 || (sc != load.Broadcast && res.Sent != res.Received) {
				t.Errorf("%d messages, %d sent, %d received", res.Messages, res.Sent, res.Received)
			}
		})
	}
	t.Run("table", func(t *testing.T) {
		var stdout, stderr syncBuffer
		args := []string{"bench", "-c", "5", "-d", "300ms", "-progress", "-url", wsURL(ts, "/echo")}
		if code := run(context.Background(), args, nil, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
		}
		for _, want := range []string{"scenario     echo", "throughput", "msgs/s", "latency      p50", "errors       none", "client"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("the table has no %q:\n%s", want, stdout.String())
			}
		}
		if !strings.Contains(stderr.String(), "running    [") || strings.Contains(stderr.String(), "\r") {
			t.Errorf("progress lines, not a terminal: %q", stderr.String())
		}
	})
	t.Run("refused", func(t *testing.T) {
		var stdout, stderr syncBuffer
		args := []string{"bench", "-c", "3", "-d", "100ms", "ws://127.0.0.1:1/echo"}
		if code := run(context.Background(), args, nil, &stdout, &stderr); code != 1 ||
			!strings.Contains(stdout.String(), "connect 3, first: connect: connection refused") {
			t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
		}
	})
}

// TestBenchTLS runs wskit bench -verify over wss:// against wskit serve
// -tls-self-signed on each engine, trusting the printed certificate with
// -ca, then with -insecure; without either every connection fails its
// handshake.
func TestBenchTLS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the load generator needs epoll")
	}
	for _, engine := range engines() {
		t.Run(engine, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var serveErr syncBuffer
			exit := make(chan int, 1)
			go func() {
				exit <- runServe(ctx, []string{"-addr", "127.0.0.1:0", "-engine", engine, "-tls-self-signed"}, io.Discard, &serveErr)
			}()
			var addr string
			waitFor(t, "the listen address", func() bool {
				addr = listenAddr(serveErr.String())
				return addr != ""
			})
			log := serveErr.String()
			start := strings.Index(log, "-----BEGIN CERTIFICATE-----")
			end := strings.Index(log, "-----END CERTIFICATE-----")
			if start < 0 || end < 0 {
				t.Fatalf("no certificate in the log:\n%s", log)
			}
			caFile := filepath.Join(t.TempDir(), "ca.pem")
			os.WriteFile(caFile, []byte(log[start:end+len("-----END CERTIFICATE-----")]+"\n"), 0o600)
			url := "wss://localhost:" + strings.TrimPrefix(addr, "127.0.0.1:")
			for _, tc := range []struct {
				trust []string
				path  string
				args  []string
			}{
				{[]string{"-ca", caFile}, "/events", []string{"-scenario", "pipeline", "-p", "4", "-size", "20KiB"}},
				{[]string{"-ca", caFile}, "/echo", []string{"-scenario", "churn"}},
				{[]string{"-insecure"}, "/raw", nil},
			} {
				var stdout, stderr syncBuffer
				args := append([]string{"bench", "-verify", "-c", "6", "-d", "200ms", "-json"}, tc.trust...)
				args = append(append(args, tc.args...), url+tc.path)
				code := run(ctx, args, nil, &stdout, &stderr)
				var res load.Result
				if err := json.Unmarshal([]byte(stdout.String()), &res); err != nil {
					t.Fatalf("%v: exit %d, output %q: %v\nstderr: %s", args, code, stdout.String(), err, stderr.String())
				}
				if code != 0 || len(res.Errors) != 0 || res.Messages == 0 || !res.Verified || !strings.HasPrefix(res.TLS, "TLS 1.3") {
					t.Errorf("%v: exit %d, %+v\nstderr: %s", args, code, res, stderr.String())
				}
			}
			var stdout, stderr syncBuffer
			code := run(ctx, []string{"bench", "-c", "2", "-d", "100ms", url + "/echo"}, nil, &stdout, &stderr)
			if code != 1 || !strings.Contains(stdout.String(), "handshake 2, first: TLS handshake: tls: failed to verify certificate") {
				t.Errorf("without -ca: exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
			}
			cancel()
			if code := <-exit; code != 0 {
				t.Errorf("serve exit %d:\n%s", code, serveErr.String())
			}
		})
	}
}
