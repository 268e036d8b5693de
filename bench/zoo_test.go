package bench

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wskit/wskit/bench/internal/harness"
	"github.com/wskit/wskit/bench/internal/servers"
	_ "github.com/wskit/wskit/xconnect" // for the -http2 variants
)

var zooSizes = []int{64, 16 << 10}

// TestZoo starts every server of the zoo in this process and checks that it
// echoes 64 B and 16 KiB messages exactly (rawClient compares payloads),
// then that BenchmarkE2E's client counts its replies, one at a time and 32
// in flight.
func TestZoo(t *testing.T) {
	for _, impl := range append(servers.Names[:len(servers.Names):len(servers.Names)], servers.Variants...) {
		t.Run(impl, func(t *testing.T) {
			if raceEnabled && strings.HasPrefix(impl, "nbio") {
				t.Skip("nbio has data races of its own (nbhttp's ServerProcessor.OnComplete reads the connection's address unsynchronized)")
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv, err := servers.Start(impl, ln)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := srv.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
			addr := ln.Addr().String()
			raw := servers.IsRaw(impl)
			for _, size := range zooSizes {
				checkEcho(t, addr, raw, size)
				checkCounted(t, addr, raw, size)
			}
		})
	}
}

// checkEcho echoes a few messages of size bytes and compares them.
func checkEcho(t *testing.T, addr string, raw bool, size int) {
	t.Helper()
	p := payload(size)
	if raw {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		got := make([]byte, size)
		for range 3 {
			if _, err := nc.Write(p); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(nc, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, p) {
				t.Fatalf("%d bytes: echo differs", size)
			}
		}
		return
	}
	c, err := dialRaw(addr, servers.URI, p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	for range 3 {
		if err := c.echo(true); err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
	}
}

// checkCounted runs the benchmark's client for 100 messages of size bytes
// in each mode.
func checkCounted(t *testing.T, addr string, raw bool, size int) {
	t.Helper()
	c, err := dialE2E(addr, raw)
	if err != nil {
		t.Fatal(err)
	}
	defer c.nc.Close()
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	for _, mode := range e2eModes {
		c.rc = replyCounter{raw: raw, size: size}
		var bud budget
		bud.left.Store(100)
		var p []byte
		if raw {
			p = bytes.Repeat(payload(size), mode.window)
		} else {
			p = clientFrames(payload(size), mode.window)
		}
		if mode.window == 1 {
			err = c.runClosed(&bud, p)
		} else {
			err = c.runWindow(&bud, p, mode.window)
		}
		if err != nil {
			t.Fatalf("%d bytes, %s: %v", size, mode.name, err)
		}
		if left := bud.left.Load(); left > 0 {
			t.Fatalf("%d bytes, %s: %d messages not sent", size, mode.name, left)
		}
	}
}

// TestServerProcess runs servers in child processes as BenchmarkE2E does
// and checks what the harness reads about them.
func TestServerProcess(t *testing.T) {
	for _, impl := range []string{"wskit-poll-events", "tcp"} {
		t.Run(impl, func(t *testing.T) {
			child := startChild(t, impl)
			raw := servers.IsRaw(impl)
			checkEcho(t, child.Addr, raw, 64)
			if _, err := child.CPU(); err != nil {
				t.Error(err)
			}
			if rss, err := harness.RSS(child.Pid); err != nil || rss <= 0 {
				t.Errorf("RSS: %d, %v", rss, err)
			}
			if n, err := harness.Sockets(child.Pid); err != nil || n < 2 {
				t.Errorf("sockets: %d, %v; want the listeners at least", n, err)
			}
			st, err := child.Stats(true)
			if err != nil || st.Goroutines == 0 || st.HeapObjects == 0 || st.Mallocs == 0 {
				t.Errorf("stats: %+v, %v", st, err)
			}
		})
	}
}
