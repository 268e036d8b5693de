// Command wskit-exporter serves as Prometheus metrics the counters a wskit
// server publishes through expvar (Server.PublishExpvar), such as those of
// wskit serve -metrics, for a process that does not link the Prometheus
// client itself. Each scrape of /metrics reads the expvar page once.
//
//	wskit-exporter [-addr 127.0.0.1:9091] [-from http://127.0.0.1:9090/debug/vars] [-var wskit]
//
// The metrics are those of the package github.com/wskit/wskit/prometheus.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wskit/wskit"
	wsprom "github.com/wskit/wskit/prometheus"
)

// maxVars bounds the expvar page read at each scrape.
const maxVars = 16 << 20

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("wskit-exporter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9091", "listen `address` for /metrics")
	from := fs.String("from", "http://127.0.0.1:9090/debug/vars", "`URL` of the expvar page to read")
	name := fs.String("var", "wskit", "`name` of the expvar variable holding the Stats")
	timeout := fs.Duration("timeout", 5*time.Second, "bound on reading the expvar page")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", handler(&http.Client{Timeout: *timeout}, *from, *name))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("listening", "addr", ln.Addr().String(), "from", *from, "var", *name)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		log.Error("serve", "err", err)
		return 1
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	return 0
}

// handler serves the metrics of the Stats in the variable name of the
// expvar page at from.
func handler(client *http.Client, from, name string) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(wsprom.NewStatsCollector(func() (wskit.Stats, error) { return fetch(client, from, name) }))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// fetch reads the Stats in the variable name of the expvar page at url.
func fetch(client *http.Client, url, name string) (wskit.Stats, error) {
	var st wskit.Stats
	resp, err := client.Get(url)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s: %s", url, resp.Status)
	}
	var vars map[string]json.RawMessage
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxVars)).Decode(&vars); err != nil {
		return st, fmt.Errorf("%s: %w", url, err)
	}
	raw, ok := vars[name]
	if !ok {
		return st, fmt.Errorf("%s has no variable %q", url, name)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("%s: variable %q: %w", url, name, err)
	}
	return st, nil
}
