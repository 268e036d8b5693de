//go:build linux

package load

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/internal/bufpool"
	"github.com/wskit/wskit/internal/selfsign"
)

var testCert = func() *selfsign.Cert {
	c, err := selfsign.New()
	if err != nil {
		panic(err)
	}
	return c
}()

// trusting returns a client configuration that trusts testCert.
func trusting() *tls.Config { return &tls.Config{RootCAs: testCert.Pool} }

// Every scenario runs over wss:// on both engines, with every reply
// checked where it can be: on the poll engine the server's record layer
// runs on its loop, as the client's runs on the load tool's.
func TestScenariosTLS(t *testing.T) {
	for _, engine := range []wskit.Engine{wskit.EnginePoll, wskit.EngineStd} {
		t.Run(engine.String(), func(t *testing.T) {
			ts := startServerTLS(t, engine, testCert.ServerConfig())
			tlsRun := func(t *testing.T, cfg Config) *Result {
				t.Helper()
				cfg.TLS = trusting()
				res := mustRun(t, cfg)
				if !strings.HasPrefix(res.TLS, "TLS 1.3, ") {
					t.Errorf("TLS %q", res.TLS)
				}
				return res
			}
			t.Run("echo", func(t *testing.T) {
				before := ts.echoed.Load()
				cfg := ts.small(Echo)
				cfg.Verify = true
				res := tlsRun(t, cfg)
				if res.Open != 20 || res.Messages < 100 || res.Sent != res.Received || ts.echoed.Load()-before != res.Received {
					t.Errorf("open %d, %d echoes, sent %d, received %d, server echoed %d", res.Open, res.Messages, res.Sent, res.Received, ts.echoed.Load()-before)
				}
			})
			// Messages over a record's 16 KiB, several in flight: records
			// are cut by reads and sealed in batches the socket does not
			// always take whole.
			t.Run("pipeline-large", func(t *testing.T) {
				cfg := ts.small(Pipeline)
				cfg.Size, cfg.Pipeline, cfg.Conns, cfg.Verify = 40<<10+3, 4, 8, true
				res := tlsRun(t, cfg)
				if res.Messages < 20 || res.Sent != res.Received {
					t.Errorf("%d echoes, sent %d, received %d", res.Messages, res.Sent, res.Received)
				}
			})
			t.Run("idle", func(t *testing.T) {
				cfg := ts.small(Idle)
				cfg.Size, cfg.Verify = 16<<10, true
				res := tlsRun(t, cfg)
				if res.Open != 20 || res.Messages != 20 || res.Received != 20 {
					t.Errorf("open %d, wake echoes %d, received %d: want 20 each", res.Open, res.Messages, res.Received)
				}
			})
			t.Run("broadcast", func(t *testing.T) {
				cfg := ts.small(Broadcast)
				cfg.Rate = 200
				res := tlsRun(t, cfg)
				if res.Open != 20 || res.Published < 30 || res.Messages != res.Published*20 || res.Missing != 0 {
					t.Errorf("open %d: %d deliveries of %d published, %d missing", res.Open, res.Messages, res.Published, res.Missing)
				}
			})
			t.Run("churn", func(t *testing.T) {
				cfg := ts.small(Churn)
				cfg.Conns, cfg.Verify = 8, true
				res := tlsRun(t, cfg)
				if res.Handshakes < 8 || res.Messages < res.Handshakes-8 || res.Sent != res.Received {
					t.Errorf("%d handshakes, %d echoes, sent %d, received %d", res.Handshakes, res.Messages, res.Sent, res.Received)
				}
			})
		})
	}
	if n := bufpool.Lent(); n != 0 {
		t.Errorf("%d pooled buffers not given back", n)
	}
}

// A certificate the client does not trust, and a server that stops at
// TLS 1.2, fail every connection as a handshake error that says why.
func TestTLSRefused(t *testing.T) {
	ts := startServerTLS(t, wskit.EnginePoll, testCert.ServerConfig())
	tls12 := testCert.ServerConfig()
	tls12.MaxVersion = tls.VersionTLS12
	srv := &http.Server{Handler: http.NotFoundHandler(), TLSConfig: tls12, ErrorLog: log.New(io.Discard, "", 0)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })

	for _, tc := range []struct {
		url  string
		cfg  *tls.Config
		want string
	}{
		{ts.url + "/echo", nil, "certificate"},
		{"wss://" + ln.Addr().String() + "/echo", trusting(), "TLS 1.3 only"},
	} {
		res, err := Run(context.Background(), Config{URL: tc.url, TLS: tc.cfg, Conns: 3, Size: 10, Duration: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		e := res.Errors["handshake"]
		if res.Open != 0 || e.Count != 3 || !strings.Contains(e.First, tc.want) {
			t.Errorf("%s: open %d, errors %v; want 3 handshake errors saying %q", tc.url, res.Open, res.Errors, tc.want)
		}
	}
	// InsecureSkipVerify accepts the same server.
	res := mustRun(t, Config{URL: ts.url + "/echo", TLS: &tls.Config{InsecureSkipVerify: true}, Conns: 3, Size: 10, Duration: 100 * time.Millisecond, PID: os.Getpid()})
	if res.Open != 3 {
		t.Errorf("insecure: open %d", res.Open)
	}
}
