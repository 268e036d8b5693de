package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wskit/wskit"
)

// syncBuffer is a bytes.Buffer the server's log and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitLog returns the first submatch of re in the log, waiting for it.
func waitLog(t *testing.T, log *syncBuffer, re *regexp.Regexp) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(log.String()); m != nil {
			return m[1]
		}
	}
	t.Fatalf("the log lacks %v:\n%s", re, log.String())
	return ""
}

// TestServeMetrics runs serve -metrics, puts traffic on /echo and a member
// on /chat, and reads /metrics with the Prometheus text parser: the
// counters must show the traffic, and /debug/vars is served beside.
func TestServeMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var log syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"serve", "-addr", "127.0.0.1:0", "-metrics", "127.0.0.1:0"}, nil, io.Discard, &log)
	}()
	defer func() {
		cancel()
		select {
		case code := <-exit:
			if code != 0 {
				t.Errorf("serve exited with %d:\n%s", code, log.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("serve did not stop")
		}
	}()
	addr := waitLog(t, &log, regexp.MustCompile(`msg=listening addr=(\S+)`))
	maddr := waitLog(t, &log, regexp.MustCompile(`msg=metrics addr=(\S+) path=/debug/vars,/metrics`))

	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	echo, err := wskit.Dial(dctx, "ws://"+addr+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 7
	for range n {
		if err := echo.SendText("hello"); err != nil {
			t.Fatal(err)
		}
		if _, err := echo.Receive(dctx); err != nil {
			t.Fatal(err)
		}
	}
	member, err := wskit.Dial(dctx, "ws://"+addr+"/chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close(wskit.CloseNormal, "")

	families := scrape(t, "http://"+maddr+"/metrics")
	in := value(t, families, "wskit_messages_total", map[string]string{"direction": "in", "type": "text"})
	out := value(t, families, "wskit_messages_total", map[string]string{"direction": "out", "type": "text"})
	if in < n || out < n {
		t.Errorf("wskit_messages_total: %v in and %v out, want at least %d each", in, out, n)
	}
	if got := value(t, families, "wskit_hub_subscribers", map[string]string{"hub": "chat"}); got != 1 {
		t.Errorf("wskit_hub_subscribers{hub=chat} = %v, want 1", got)
	}
	if got := value(t, families, "wskit_handshakes_accepted_total", nil); got < 2 {
		t.Errorf("wskit_handshakes_accepted_total = %v, want 2 or more", got)
	}
	if got := value(t, families, "go_goroutines", nil); got < 1 {
		t.Errorf("go_goroutines = %v", got)
	}

	resp, err := http.Get("http://" + maddr + "/debug/vars")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var vars map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&vars); err != nil {
		t.Fatal(err)
	}
	if _, ok := vars["wskit"]; !ok {
		t.Errorf("/debug/vars has no wskit variable")
	}
	echo.Close(wskit.CloseNormal, "")
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return families
}

// value returns the value of the metric of family name whose labels
// include labels.
func value(t *testing.T, families map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	f, ok := families[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		for k, v := range labels {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Untyped != nil:
			return m.GetUntyped().GetValue()
		}
	}
	t.Fatalf("no metric %s with labels %v", name, labels)
	return 0
}
