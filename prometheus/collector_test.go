package prometheus_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/poller"
	wsprom "github.com/wskit/wskit/prometheus"
)

const wait = 5 * time.Second

// engines are the engines this platform runs.
func engines() []wskit.Engine {
	if poller.Supported {
		return []wskit.Engine{wskit.EngineStd, wskit.EnginePoll}
	}
	return []wskit.Engine{wskit.EngineStd}
}

// startServer serves an Events echo on /echo and a hub's subscription on
// /chat with engine, and returns the server, the hub and the address.
func startServer(t *testing.T, engine wskit.Engine) (*wskit.Server, *wskit.Hub, string) {
	t.Helper()
	opts := wskit.DefaultOptions()
	opts.Engine, opts.Loops = engine, 2
	opts.Logger = slog.New(slog.DiscardHandler)
	srv, err := wskit.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := wskit.NewHub(wskit.HubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/echo", srv.WebSocketEvents(wskit.Events{OnMessage: func(s *wskit.Session, m wskit.Message) { s.Send(m.Type, m.Payload) }}))
	mux.Handle("/chat", srv.WebSocketEvents(wskit.Events{OnOpen: func(s *wskit.Session) { hub.Subscribe(s) }}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, mux) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
		hub.Close()
	})
	return srv, hub, ln.Addr().String()
}

// traffic runs one echo session (three texts, a binary message, a close
// with 1000), one chat member that receives one published message, and one
// refused upgrade; it returns when the sessions have ended.
func traffic(t *testing.T, srv *wskit.Server, hub *wskit.Hub, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := wskit.Dial(ctx, "ws://"+addr+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		t wskit.MessageType
		p string
	}{{wskit.Text, "one"}, {wskit.Text, "two"}, {wskit.Text, "six"}, {wskit.Binary, "\x00\x01\x02\x03"}} {
		s.Send(m.t, []byte(m.p))
		if got, err := s.Receive(ctx); err != nil || string(got.Payload) != m.p {
			t.Fatalf("echo: %q, %v", got.Payload, err)
		}
	}
	if err := s.Close(wskit.CloseNormal, ""); err != nil {
		t.Fatal(err)
	}
	member, err := wskit.Dial(ctx, "ws://"+addr+"/chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	for hub.Subscribers() != 1 {
		time.Sleep(time.Millisecond)
	}
	hub.PublishText(ctx, "news")
	if got, err := member.Receive(ctx); err != nil || got.Text() != "news" {
		t.Fatalf("chat: %q, %v", got.Payload, err)
	}
	member.Close(wskit.CloseGoingAway, "")
	resp, err := http.Get("http://" + addr + "/echo") // no Upgrade: refused
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET of /echo: %s", resp.Status)
	}
	for deadline := time.Now().Add(wait); ; time.Sleep(time.Millisecond) {
		st := srv.Stats()
		k := st.Sessions.Std.Events
		if srv.ResolvedEngine() == wskit.EnginePoll {
			k = st.Sessions.Poll.Events
		}
		if k.Total == 2 && k.Open == 0 && st.Handshakes.Refused.Upgrade == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sessions did not end: %+v", st)
		}
	}
}

// scrape serves reg's metrics and parses them with the Prometheus text
// parser.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	ts := httptest.NewServer(h)
	defer ts.Close()
	resp, err := http.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("/metrics: %s: %s", resp.Status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return families
}

// value returns the value of the series of family name with the given
// labels (name, value, …), and whether there is one.
func value(families map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := families[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := len(have) == len(labels)/2
		for i := 0; match && i+1 < len(labels); i += 2 {
			match = have[labels[i]] == labels[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestCollector scrapes a server's metrics after known traffic on each
// engine and finds each count in the text Prometheus parses.
func TestCollector(t *testing.T) {
	for _, engine := range engines() {
		t.Run(engine.String(), func(t *testing.T) {
			srv, hub, addr := startServer(t, engine)
			traffic(t, srv, hub, addr)
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(wsprom.NewCollector(srv, wsprom.Hub("chat", hub)))
			families := scrape(t, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
			e := engine.String()
			for _, c := range []struct {
				name   string
				labels []string
				want   float64
			}{
				{"wskit_sessions_total", []string{"engine", e, "kind", "events"}, 2},
				{"wskit_sessions_open", []string{"engine", e, "kind", "events"}, 0},
				{"wskit_sessions_total", []string{"engine", e, "kind", "default"}, 0},
				{"wskit_handshakes_accepted_total", nil, 2},
				{"wskit_handshakes_refused_total", []string{"reason", "upgrade"}, 1},
				{"wskit_handshakes_refused_total", []string{"reason", "limit"}, 0},
				{"wskit_messages_total", []string{"direction", "in", "type", "text"}, 3},
				{"wskit_messages_total", []string{"direction", "out", "type", "text"}, 4}, // the echoes and the news
				{"wskit_messages_total", []string{"direction", "in", "type", "binary"}, 1},
				{"wskit_message_bytes_total", []string{"direction", "out", "type", "binary"}, 4},
				{"wskit_frames_total", []string{"direction", "in"}, 6},
				{"wskit_close_frames_total", []string{"direction", "in", "code", "1000"}, 1},
				{"wskit_close_frames_total", []string{"direction", "out", "code", "1001"}, 1},
				{"wskit_close_frames_total", []string{"direction", "in", "code", "other"}, 0},
				{"wskit_hub_deliveries_total", nil, 1},
				{"wskit_hub_dropped_total", []string{"policy", "drop_oldest"}, 0},
				{"wskit_hub_published_total", []string{"hub", "chat"}, 1},
				{"wskit_hub_subscribers", []string{"hub", "chat"}, 0},
				{"wskit_queue_full_total", nil, 0},
			} {
				got, ok := value(families, c.name, c.labels...)
				if !ok || got != c.want {
					t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
				}
			}
			if f := families["wskit_messages_total"]; f.GetType() != dto.MetricType_COUNTER || f.GetHelp() == "" {
				t.Errorf("wskit_messages_total: type %v, help %q", f.GetType(), f.GetHelp())
			}
			loops := len(families["wskit_loop_iterations_total"].GetMetric())
			switch {
			case engine == wskit.EnginePoll && loops != 2:
				t.Errorf("%d loops in the metrics, want 2", loops)
			case engine == wskit.EngineStd && loops != 0:
				t.Errorf("%d loops on the std engine", loops)
			}
			if engine == wskit.EnginePoll {
				if v, _ := value(families, "wskit_loop_reads_total", "loop", "0"); v == 0 {
					if v, _ = value(families, "wskit_loop_reads_total", "loop", "1"); v == 0 {
						t.Error("no loop read anything")
					}
				}
			}
		})
	}
}

// Namespace renames every metric.
func TestCollectorNamespace(t *testing.T) {
	srv, _, _ := startServer(t, wskit.EngineStd)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(wsprom.NewCollector(srv, wsprom.Namespace("chat_server")))
	families := scrape(t, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if _, ok := value(families, "chat_server_handshakes_accepted_total"); !ok {
		t.Errorf("no chat_server_handshakes_accepted_total among %d families", len(families))
	}
	for name := range families {
		if name[:len("chat_server_")] != "chat_server_" {
			t.Errorf("metric %s outside the namespace", name)
		}
	}
}
