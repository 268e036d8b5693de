package main

import (
	"context"
	"expvar"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wskit/wskit"
	wsprom "github.com/wskit/wskit/prometheus"
)

var seq atomic.Int64

// TestExporter reads a server's Stats from its expvar page and serves the
// same metrics as the collector in the server's process.
func TestExporter(t *testing.T) {
	opts := wskit.DefaultOptions()
	opts.Logger = slog.New(slog.DiscardHandler)
	srv, err := wskit.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("wskit-exporter-test-%d", seq.Add(1))
	srv.PublishExpvar(name)
	mux := http.NewServeMux()
	mux.Handle("/echo", srv.WebSocketEvents(wskit.Events{OnMessage: func(s *wskit.Session, m wskit.Message) { s.Send(m.Type, m.Payload) }}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, mux) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	}()
	vars := httptest.NewServer(expvar.Handler())
	defer vars.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := wskit.Dial(ctx, "ws://"+ln.Addr().String()+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	s.SendText("hello")
	if _, err := s.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close(wskit.CloseNormal, "")
	for srv.Sessions() > 0 {
		time.Sleep(time.Millisecond)
	}

	client := &http.Client{Timeout: 5 * time.Second}
	exported := scrape(t, handler(client, vars.URL, name))
	reg := prometheus.NewRegistry()
	reg.MustRegister(wsprom.NewCollector(srv))
	direct := scrape(t, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if exported != direct {
		t.Errorf("the exporter's metrics differ from the collector's:\n%s\n---\n%s", exported, direct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(exported))
	if err != nil {
		t.Fatal(err)
	}
	var in float64
	for _, m := range families["wskit_messages_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["direction"] == "in" && labels["type"] == "text" {
			in = m.GetCounter().GetValue()
		}
	}
	if in != 1 {
		t.Errorf("wskit_messages_total{direction=in,type=text} = %v, want 1", in)
	}

	// A variable that is not there fails the scrape.
	ts := httptest.NewServer(handler(client, vars.URL, name+"-missing"))
	defer ts.Close()
	resp, err := http.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK || !strings.Contains(string(body), "missing") {
		t.Errorf("scrape of a missing variable: %s %q", resp.Status, body)
	}
}

// scrape returns the body h serves.
func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	ts := httptest.NewServer(h)
	defer ts.Close()
	resp, err := http.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s %v: %s", resp.Status, err, b)
	}
	return string(b)
}

// run serves until its context ends, and rejects bad flags.
func TestRun(t *testing.T) {
	if code := run(context.Background(), []string{"-nope"}, io.Discard); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"-addr", "127.0.0.1:0"}, io.Discard) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}
