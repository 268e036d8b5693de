package wskit_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/poller"
)

// engineTarget is a server on one engine, for a test that runs an API on
// each.
type engineTarget struct {
	name string
	srv  *wskit.Server
	url  string // ws://host:port
}

// eachEngine serves routes(srv) under Server.Serve on the std engine and,
// where the platform has it, on the poll engine, each with a Server of its
// own made with opts. The servers are shut down at the end of the test.
func eachEngine(t *testing.T, opts wskit.Options, routes func(*wskit.Server) http.Handler) []engineTarget {
	t.Helper()
	engines := []wskit.Engine{wskit.EngineStd}
	if poller.Supported {
		engines = append(engines, wskit.EnginePoll)
	}
	var out []engineTarget
	for _, e := range engines {
		o := opts
		o.Engine = e
		srv := newServer(t, o)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln, routes(srv)) }()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if err := await(t, served, "Serve to return"); !errors.Is(err, wskit.ErrServerClosed) {
				t.Errorf("Serve = %v, want ErrServerClosed", err)
			}
		})
		out = append(out, engineTarget{name: e.String(), srv: srv, url: "ws://" + ln.Addr().String()})
	}
	return out
}
