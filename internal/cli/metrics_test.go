package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wskit/wskit"
)

// wskit serve -metrics serves the server's counters and the chat hub's at
// /debug/vars, on an address of their own, until it stops.
func TestServeMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- runServe(ctx, []string{"-addr", "127.0.0.1:0", "-metrics", "127.0.0.1:0"}, io.Discard, &stderr)
	}()
	var addr, metrics string
	waitFor(t, "the listen addresses", func() bool {
		addr, metrics = listenAddr(stderr.String()), metricsAddr(stderr.String())
		return addr != "" && metrics != ""
	})
	s, err := wskit.Dial(ctx, "ws://"+addr+"/chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := receive(t, s); m.Text() != chatGreeting {
		t.Fatalf("/chat greeted with %q", m.Payload)
	}
	s.SendText("hi all")
	receive(t, s)
	var vars struct {
		Wskit     wskit.Stats    `json:"wskit"`
		WskitChat wskit.HubStats `json:"wskit_chat"`
		Cmdline   []string       `json:"cmdline"`
	}
	resp, err := http.Get("http://" + metrics + "/debug/vars")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&vars)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if vars.Wskit.Handshakes.Accepted != 1 || vars.Wskit.In.Text.Messages != 1 || vars.WskitChat.Published != 1 || len(vars.Cmdline) == 0 {
		t.Errorf("/debug/vars: %+v", vars)
	}
	if resp, err := http.Get("http://" + addr + "/debug/vars"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("/debug/vars on the demo's address: %v, %v", resp.Status, err)
	}
	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d, stderr:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	if _, err := http.Get("http://" + metrics + "/debug/vars"); err == nil {
		t.Error("/debug/vars still served after the stop")
	}
}

// metricsAddr finds the address in the "metrics" log line, or "".
func metricsAddr(log string) string {
	for line := range strings.Lines(log) {
		if !strings.Contains(line, "msg=metrics") {
			continue
		}
		for field := range strings.FieldsSeq(line) {
			if a, ok := strings.CutPrefix(field, "addr="); ok {
				return a
			}
		}
	}
	return ""
}
