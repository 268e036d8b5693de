// Command wskit-prometheus is wskit's command line with Prometheus metrics:
// its serve -metrics ADDR serves /metrics (the package
// github.com/wskit/wskit/prometheus's collector of the server and of the
// /chat hub, with Go's runtime and process collectors) beside /debug/vars.
// dial and bench are wskit's.
//
//	go run ./cmd/wskit-prometheus serve -metrics 127.0.0.1:9090
//	curl -s 127.0.0.1:9090/metrics
//
// It lives in the prometheus module, not beside cmd/wskit, so that wskit's
// own module never depends on the Prometheus client: both run the same
// command line (internal/cli), this one with an extension that adds
// /metrics.
package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/internal/cli"
	wsprom "github.com/wskit/wskit/prometheus"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Run(ctx, args, stdin, stdout, stderr, &cli.Extension{Metrics: metrics})
}

// metrics is the /metrics handler for srv and its chat hub: a registry of
// its own, so that a test may serve twice in one process.
func metrics(srv *wskit.Server, chat *wskit.Hub) http.Handler {
	reg := prometheus.NewRegistry()
	var opts []wsprom.Option
	if chat != nil {
		opts = append(opts, wsprom.Hub("chat", chat))
	}
	reg.MustRegister(
		wsprom.NewCollector(srv, opts...),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
