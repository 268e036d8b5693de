//go:build linux

package load

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wskit/wskit"
)

// testServer is an in-process wskit server: /echo echoes from Events
// callbacks and counts, /chat relays every text to every member, as wskit
// serve's does.
type testServer struct {
	url    string
	echoed atomic.Int64 // messages received to echo
	opened atomic.Int64
}

func startServer(t *testing.T, engine wskit.Engine) *testServer {
	return startServerTLS(t, engine, nil)
}

// startServerTLS starts a testServer that serves wss:// with cfg, or
// ws:// when cfg is nil.
func startServerTLS(t *testing.T, engine wskit.Engine, cfg *tls.Config) *testServer {
	t.Helper()
	opts := wskit.DefaultOptions()
	opts.Engine = engine
	opts.TLSConfig = cfg
	opts.Loops = 2
	opts.Logger = slog.New(slog.DiscardHandler)
	srv, err := wskit.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := wskit.NewHub(wskit.HubOptions{Overflow: wskit.OverflowCloseTryAgain})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{}
	mux := http.NewServeMux()
	mux.Handle("/echo", srv.WebSocketEvents(wskit.Events{
		OnOpen: func(s *wskit.Session) { ts.opened.Add(1) },
		OnMessage: func(s *wskit.Session, m wskit.Message) {
			ts.echoed.Add(1) // before the echo, which the client may count at once
			s.Send(m.Type, m.Payload)
		},
	}))
	mux.Handle("/chat", srv.WebSocketEvents(wskit.Events{
		OnOpen: func(s *wskit.Session) {
			s.SendText("You are connected to WebSocket!")
			hub.Subscribe(s)
		},
		OnMessage: func(s *wskit.Session, m wskit.Message) {
			if m.Type == wskit.Text {
				hub.Publish(context.Background(), wskit.Text, m.Payload)
			}
		},
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, mux) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		hub.Close()
		if err := <-served; !errors.Is(err, wskit.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	ts.url = "ws://" + ln.Addr().String()
	if cfg != nil {
		ts.url = "wss://" + ln.Addr().String()
	}
	return ts
}

// small is a configuration of a short run against ts.
func (ts *testServer) small(s Scenario) Config {
	path := "/echo"
	if s == Broadcast {
		path = "/chat"
	}
	return Config{
		URL: ts.url + path, Scenario: s, Conns: 20, Size: 64, Pipeline: 8,
		Duration: 300 * time.Millisecond, PID: os.Getpid(),
	}
}

func mustRun(t *testing.T, cfg Config) *Result {
	t.Helper()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var b strings.Builder
	res.WriteText(&b)
	t.Logf("\n%s", b.String())
	if len(res.Errors) != 0 {
		t.Errorf("errors: %v", res.Errors)
	}
	if !res.Complete {
		t.Errorf("the run did not complete")
	}
	if res.Server == nil {
		t.Errorf("no server figures with PID set")
	}
	return res
}

func TestScenarios(t *testing.T) {
	for _, engine := range []wskit.Engine{wskit.EnginePoll, wskit.EngineStd} {
		t.Run(engine.String(), func(t *testing.T) {
			t.Run("echo", func(t *testing.T) {
				ts := startServer(t, engine)
				res := mustRun(t, ts.small(Echo))
				checkEchoes(t, ts, res, 1)
			})
			t.Run("pipeline", func(t *testing.T) {
				ts := startServer(t, engine)
				res := mustRun(t, ts.small(Pipeline))
				checkEchoes(t, ts, res, 8)
			})
			t.Run("idle", func(t *testing.T) {
				ts := startServer(t, engine)
				res := mustRun(t, ts.small(Idle))
				if res.Open != 20 || res.Messages != 20 || res.Sent != 20 || res.Received != 20 || ts.echoed.Load() != 20 {
					t.Errorf("open %d, wake echoes %d, sent %d, received %d, server echoed %d: want 20 each",
						res.Open, res.Messages, res.Sent, res.Received, ts.echoed.Load())
				}
				if res.Latency.Count != 20 || res.WakeSeconds <= 0 || res.Server.RSS <= 0 {
					t.Errorf("latencies %d, wake %v s, RSS %d", res.Latency.Count, res.WakeSeconds, res.Server.RSS)
				}
			})
			t.Run("broadcast", func(t *testing.T) {
				ts := startServer(t, engine)
				cfg := ts.small(Broadcast)
				cfg.Rate = 200
				res := mustRun(t, cfg)
				if res.Published < 30 || res.Published > 90 {
					t.Errorf("published %d in %.2f s at 200/s", res.Published, res.Seconds)
				}
				if res.Open != 20 || res.Messages != res.Published*20 || res.Missing != 0 || res.Expected != res.Messages {
					t.Errorf("open %d: %d deliveries of %d published, %d expected, %d missing",
						res.Open, res.Messages, res.Published, res.Expected, res.Missing)
				}
				if res.Latency.Count != res.Messages || res.Latency.P50 <= 0 {
					t.Errorf("latencies %d of %d deliveries, p50 %v µs", res.Latency.Count, res.Messages, res.Latency.P50)
				}
			})
			t.Run("churn", func(t *testing.T) {
				ts := startServer(t, engine)
				res := mustRun(t, ts.small(Churn))
				// Cycles under way as the window opens or closes count on
				// one side only: at most Conns of each.
				if res.Handshakes < 20 || res.Messages < res.Handshakes-20 || res.Messages > res.Handshakes+20 {
					t.Errorf("%d handshakes, %d echoes", res.Handshakes, res.Messages)
				}
				if res.Sent != res.Received || ts.echoed.Load() != res.Received || ts.opened.Load() < res.Handshakes {
					t.Errorf("sent %d, received %d, server echoed %d, opened %d", res.Sent, res.Received, ts.echoed.Load(), ts.opened.Load())
				}
				if res.Latency.Count != res.Handshakes {
					t.Errorf("latencies %d of %d handshakes", res.Latency.Count, res.Handshakes)
				}
			})
		})
	}
}

// checkEchoes checks the counts of an echo or pipeline run.
func checkEchoes(t *testing.T, ts *testServer, res *Result, inFlight int) {
	t.Helper()
	if res.Open != 20 || res.Messages < 100 || res.Latency.Count != res.Messages {
		t.Errorf("open %d, %d echoes, %d latencies", res.Open, res.Messages, res.Latency.Count)
	}
	if res.Sent != res.Received || ts.echoed.Load() != res.Received {
		t.Errorf("sent %d, received %d, server echoed %d", res.Sent, res.Received, ts.echoed.Load())
	}
	if res.Pipeline != inFlight {
		t.Errorf("pipeline %d, want %d", res.Pipeline, inFlight)
	}
	if res.MsgsPerSec <= 0 || res.MBPerSec <= 0 || res.Latency.P50 <= 0 || res.Latency.P999 < res.Latency.P50 {
		t.Errorf("%v msgs/s, %v MB/s, latency %+v", res.MsgsPerSec, res.MBPerSec, res.Latency)
	}
}

// tcp:// runs the same closed loop against a raw TCP echo, the ceiling:
// a reply is the payload's length of bytes back, whatever their framing.
func TestRawTCPEcho(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var echoed atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				n, _ := io.Copy(c, c)
				echoed.Add(n)
			})
		}
	})
	for _, s := range []Scenario{Echo, Pipeline} {
		cfg := Config{URL: "tcp://" + ln.Addr().String(), Scenario: s, Conns: 20, Size: 100, Pipeline: 8,
			Duration: 300 * time.Millisecond, PID: os.Getpid()}
		res := mustRun(t, cfg)
		if res.Open != 20 || res.Messages < 100 || res.Sent != res.Received || res.Latency.Count != res.Messages {
			t.Errorf("%s: open %d, %d echoes, sent %d, received %d, %d latencies", s, res.Open, res.Messages, res.Sent, res.Received, res.Latency.Count)
		}
	}
	if _, err := Run(context.Background(), Config{URL: "tcp://" + ln.Addr().String(), Scenario: Churn}); err == nil {
		t.Error("churn over tcp:// was accepted")
	}
}

// TestVerify runs echo against servers that change one byte of the tenth
// reply on each connection: with Verify every such reply is a protocol
// error that names the byte, without it the run counts them as echoes.
func TestVerify(t *testing.T) {
	const size, bad = 200, 123
	opts := wskit.DefaultOptions()
	opts.Logger = slog.New(slog.DiscardHandler)
	srv, err := wskit.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	counts := map[*wskit.Session]int{}
	mux := http.NewServeMux()
	mux.Handle("/corrupt", srv.WebSocketEvents(wskit.Events{
		OnMessage: func(s *wskit.Session, m wskit.Message) {
			mu.Lock()
			n := counts[s]
			counts[s]++
			mu.Unlock()
			p := m.Payload
			if n == 9 {
				p = slices.Clone(p)
				p[bad] ^= 0x20
			}
			s.Send(m.Type, p)
		},
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln, mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})

	rawLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { rawLn.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := rawLn.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 4096)
				var off int
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if i := 9*size + bad - off; i >= 0 && i < n {
						buf[i] ^= 0x20
					}
					off += n
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			})
		}
	})

	for _, url := range []string{"ws://" + ln.Addr().String() + "/corrupt", "tcp://" + rawLn.Addr().String()} {
		for _, verify := range []bool{false, true} {
			cfg := Config{URL: url, Scenario: Echo, Conns: 4, Size: size, Duration: 300 * time.Millisecond, Verify: verify}
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			e := res.Errors["protocol"]
			switch {
			case res.Verified != verify:
				t.Errorf("%s, verify %v: Verified %v", url, verify, res.Verified)
			case !verify && res.ErrorTotal() != 0:
				t.Errorf("%s without verify: errors %v", url, res.Errors)
			case verify && (e.Count != 4 || !strings.Contains(e.First, fmt.Sprintf("differs from the message sent at byte %d", bad))):
				t.Errorf("%s with verify: errors %v; want 4 protocol errors at byte %d", url, res.Errors, bad)
			}
		}
	}
}
