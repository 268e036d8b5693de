package autobahn

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/internal/race"
	_ "github.com/wskit/wskit/xconnect"
)

// startWskitH2 serves wskit's echo on /echo with WebSockets over HTTP/2
// (h2c) beside HTTP/1.1, on engine, and returns the base ws:// URL.
func startWskitH2(t *testing.T, engine wskit.Engine) string {
	t.Helper()
	o := wskit.DefaultOptions()
	o.Engine = engine
	o.HTTP2 = true
	o.MaxFrameSize = 64 << 20
	o.MaxMessageSize = 64 << 20
	o.Logger = slog.New(slog.DiscardHandler)
	srv, err := wskit.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/echo", srv.WebSocket(func(s *wskit.Session) {
		for m := range s.Messages() {
			if s.Send(m.Type, m.Payload) != nil {
				return
			}
		}
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, mux) }()
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		<-served
	})
	return "ws://" + ln.Addr().String()
}

// TestHTTP2Cases runs cases as RFC 8441 streams against wskit's echo, on
// each engine: they must get the verdicts they get over TCP, every case on
// one HTTP/2 connection. A few cases of each kind run always (a clean
// close, a violation the server fails with 1002 and must then end its
// stream for, invalid UTF-8, a close with an invalid code, 1 MiB messages
// whole and in 64 KiB frames, a close started with data still in flight);
// all of sections 1 to 10 unless -short or -race (.ci/run runs them against
// wskit serve -http2 too).
func TestHTTP2Cases(t *testing.T) {
	ids := Filter([]string{"1.1.1", "2.5", "4.1.1", "5.19", "6.4.1", "7.1.6", "7.9.1", "9.1.3", "9.5.1"}, nil)
	all := !testing.Short() && !race.Enabled
	if all {
		ids = Filter(nil, []string{"12", "13"})
	}
	for _, engine := range []wskit.Engine{wskit.EngineStd, wskit.EnginePoll} {
		t.Run(engine.String(), func(t *testing.T) {
			url := startWskitH2(t, engine) + "/echo"
			h := NewHTTP2()
			defer h.Close()
			var rs []Result
			for _, c := range Cases() {
				if !ids(c.ID) {
					continue
				}
				r := h.Run(context.Background(), url, c, 0)
				rs = append(rs, r)
				want := OK
				if c.ID == "7.1.6" || c.ID == "7.13.1" || c.ID == "7.13.2" {
					want = Informational
				}
				if r.Behavior != want {
					t.Errorf("case %s over HTTP/2: %s, want %s: %s", c.ID, r.Behavior, want, r.Detail)
				}
			}
			if all && len(rs) != 301 {
				t.Errorf("ran %d cases, want 301", len(rs))
			}
			if h.Conns() != 1 {
				t.Errorf("the cases opened %d HTTP/2 connections, want 1", h.Conns())
			}
		})
	}
}

// TestHTTP2Refused: a server without RFC 8441 fails the case's opening
// handshake, and says why.
func TestHTTP2Refused(t *testing.T) {
	url := startEcho(t, noFault) // HTTP/1.1 only
	h := NewHTTP2()
	defer h.Close()
	r := h.Run(context.Background(), url, Cases()[0], 0)
	if r.Behavior != Failed || r.Detail == "" {
		t.Errorf("against an HTTP/1.1 server: %s %q, want FAILED with the reason", r.Behavior, r.Detail)
	}
}

// TestMainHTTP2: -http2 runs the cases over one HTTP/2 connection and
// says so before the summary.
func TestMainHTTP2(t *testing.T) {
	url := startWskitH2(t, wskit.EngineStd) + "/echo"
	var out, errb bytes.Buffer
	if code := runMain(context.Background(), []string{"-http2", "-url", url, "-cases", "1.1.1,2.5", "-expect", "OK=2"}, &out, &errb); code != 0 {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
	if !strings.HasSuffix(out.String(), "2 cases as streams of 1 HTTP/2 connection(s)\nOK 2, NON-STRICT 0, INFORMATIONAL 0, FAILED 0\n") {
		t.Errorf("output:\n%s", out.String())
	}
}
