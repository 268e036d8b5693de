package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wskit/wskit/poller"
)

// h2NodeReport is what node/h2echo.mjs prints.
type h2NodeReport struct {
	OK           bool   `json:"ok"`
	Node         string `json:"node"`
	WS           string `json:"ws"`
	ALPN         any    `json:"alpn"`
	ConnectProto bool   `json:"connectProtocol"`
	H2           []any  `json:"h2"`
	Checks       []struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"checks"`
	Errors []string `json:"errors"`
}

// TestNodeHTTP2 runs `wskit serve -http2` once per engine, in the clear
// (h2c) and over TLS (-tls-self-signed, h2 by ALPN, the printed certificate
// trusted with --ca), and node/h2echo.mjs against it: Node's own HTTP/2
// client (nghttp2), not Go's, opens 12 WebSocket sessions at once as RFC
// 8441 streams of one connection, four each to /echo, /events and /raw,
// framed by ws's Sender and Receiver, beside a ws session over HTTP/1.1 to
// /echo. Every session echoes a text and 70000 bytes and closes with 1000,
// and the server ends each stream. The server's log must show 12 sessions
// opened with proto=HTTP/2.0 and one with proto=HTTP/1.1, all 13 closed
// with 1000, and no WARN or ERROR.
func TestNodeHTTP2(t *testing.T) {
	node := findNode(t)
	bin := buildWskit(t)
	for _, engine := range []string{"std", "poll"} {
		for _, overTLS := range []bool{false, true} {
			name := engine + "/h2c"
			if overTLS {
				name = engine + "/tls"
			}
			t.Run(name, func(t *testing.T) {
				if engine == "poll" && !poller.Supported {
					t.Skip("the poll engine is not supported on this platform")
				}
				flags := []string{"-http2"}
				if overTLS {
					flags = append(flags, "-tls-self-signed")
				}
				srv := startDemoServer(t, bin, engine, flags...)
				args := []string{"http://" + srv.addr}
				if overTLS {
					ca := filepath.Join(t.TempDir(), "ca.pem")
					cert := demoCertificate(t, srv)
					if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
						t.Fatal(err)
					}
					args = []string{"--ca", ca, "https://" + srv.addr}
				}
				r := runH2Node(t, node, args...)
				if overTLS && r.ALPN != "h2" {
					t.Errorf("ALPN chose %v, want h2", r.ALPN)
				}
				if len(r.H2) != 12 {
					t.Errorf("%d HTTP/2 sessions in the report, want 12", len(r.H2))
				}
				// The server logs a close once the handler has returned,
				// which can be after Node saw the stream end.
				closed := regexp.MustCompile(`(?m)^.*\bmsg="session closed" .*\bcode=1000\b.*$`)
				if !waitUntil(func() bool { return len(closed.FindAllString(srv.stderr.String(), -1)) >= 13 }) {
					t.Errorf("the server logged %d sessions closed with 1000, want 13", len(closed.FindAllString(srv.stderr.String(), -1)))
				}
				srv.stop(t)
				log := srv.stderr.String()
				opens := func(proto string) int {
					return len(regexp.MustCompile(`(?m)^.*\bmsg="session open" .*\bproto=`+regexp.QuoteMeta(proto)+`( |$)`).FindAllString(log, -1))
				}
				if h2, h1 := opens("HTTP/2.0"), opens("HTTP/1.1"); h2 != 12 || h1 != 1 || strings.Contains(log, "level=WARN") || strings.Contains(log, "level=ERROR") {
					srv.reported.Store(true)
					t.Errorf("the server logged %d sessions opened over HTTP/2.0 and %d over HTTP/1.1, want 12 and 1, and no WARN or ERROR:\n%s", h2, h1, log)
				}
			})
		}
	}
}

// runH2Node runs node/h2echo.mjs with args, fails the test unless every
// check of its report passed, and returns the report.
func runH2Node(t *testing.T, node string, args ...string) *h2NodeReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*stepTimeout)
	defer cancel()
	args = append([]string{"h2echo.mjs", "--timeout", strconv.Itoa(int(stepTimeout / time.Millisecond))}, args...)
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = "node"
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var r h2NodeReport
	jsonErr := json.Unmarshal(stdout.Bytes(), &r)
	var exitErr *exec.ExitError
	switch {
	case runErr != nil && !errors.As(runErr, &exitErr):
		t.Fatalf("node %v: %v\nstderr:\n%s", args, runErr, stderr.Bytes())
	case jsonErr != nil:
		t.Fatalf("node %v: %v; stdout is not a report: %v\nstdout:\n%s\nstderr:\n%s", args, runErr, jsonErr, stdout.Bytes(), stderr.Bytes())
	}
	for _, c := range r.Checks {
		if !c.OK {
			t.Errorf("check %q failed: %s", c.Name, c.Detail)
		}
	}
	if runErr != nil || !r.OK {
		t.Fatalf("node %v: %v, report ok=%v, errors %q\nstderr:\n%s", args, runErr, r.OK, r.Errors, stderr.Bytes())
	}
	t.Logf("node %s (ws %s) over HTTP/2: %d checks passed", r.Node, r.WS, len(r.Checks))
	return &r
}
