package cli

import (
	"context"
	"expvar"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wskit/wskit"
)

// The -metrics flag of wskit serve: /debug/vars on a listener of its own,
// so that the counters are not served to the demo's visitors. expvar shows
// the server's Stats as "wskit" (the name Server.PublishExpvar would give
// them), the chat hub's as "wskit_chat", and Go's memstats and cmdline.
// Prometheus metrics at /metrics come with the wskit command of the module
// github.com/wskit/wskit/prometheus, or from its wskit-exporter, which
// reads this page: the wskit module itself links no metrics library.

// served holds what the published variables read: the server and hub of
// the serve running, since expvar's names are taken once per process.
var served struct {
	srv  atomic.Pointer[wskit.Server]
	chat atomic.Pointer[wskit.Hub]
	once sync.Once
}

// publishVars publishes the variables, once per process.
func publishVars() {
	served.once.Do(func() {
		expvar.Publish("wskit", expvar.Func(func() any {
			if srv := served.srv.Load(); srv != nil {
				return srv.Stats()
			}
			return nil
		}))
		expvar.Publish("wskit_chat", expvar.Func(func() any {
			if h := served.chat.Load(); h != nil {
				return h.Stats()
			}
			return nil
		}))
	})
}

// serveMetrics serves /debug/vars on ln for srv and chat until ctx ends,
// and /metrics with metrics' handler, when there is one.
func serveMetrics(ctx context.Context, ln net.Listener, srv *wskit.Server, chat *wskit.Hub, metrics func(*wskit.Server, *wskit.Hub) http.Handler, log *slog.Logger) {
	publishVars()
	served.srv.Store(srv)
	served.chat.Store(chat)
	mux := http.NewServeMux()
	mux.Handle("GET /debug/vars", expvar.Handler())
	paths := "/debug/vars"
	if metrics != nil {
		mux.Handle("GET /metrics", metrics(srv, chat))
		paths += ",/metrics"
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("metrics", "addr", ln.Addr().String(), "path", paths)
	go hs.Serve(ln)
	go func() {
		<-ctx.Done()
		hs.Close()
	}()
}
