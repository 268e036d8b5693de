package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/wskit/wskit/frame"
)

// nodeReport is the JSON that node/echo.mjs prints.
type nodeReport struct {
	Peer       string  `json:"peer"`
	WS         string  `json:"ws"`
	Node       string  `json:"node"`
	Mode       string  `json:"mode"`
	OK         bool    `json:"ok"`
	Extensions *string `json:"extensions"`
	Checks     []struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"checks"`
	Close *struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	} `json:"close"`
	Messages []struct {
		Binary bool    `json:"binary"`
		Text   *string `json:"text"`
	} `json:"messages"`
	Errors []string `json:"errors"`
	MS     int      `json:"ms"`
}

// TestNodeWS runs node/echo.mjs, a client on the `ws` npm package, against
// the server under test, on each server variant.
func TestNodeWS(t *testing.T) {
	node := findNode(t)
	forEachVariant(t, func(t *testing.T, srv *echoServer) { testNodeWS(t, node, srv) })
}

func testNodeWS(t *testing.T, node string, srv *echoServer) {
	t.Run("echo", func(t *testing.T) {
		r := runNode(t, node, "--mode", "echo",
			"--close-code", "1000", "--close-reason", "node ws done",
			"--expect-extensions", serverExtensions,
			wsURL(srv, "/echo"))
		// echo.mjs checked every echo; check the counts and the close here
		// too, so that a script that checks nothing cannot pass.
		if n := len(r.Checks); n < len(echoSizes)+len(echoTexts)+3 {
			t.Errorf("echo.mjs made %d checks, want at least %d", n, len(echoSizes)+len(echoTexts)+3)
		}
		if r.Close == nil || r.Close.Code != int(frame.CloseNormal) {
			t.Errorf("close seen by ws: %+v, want code %d", r.Close, frame.CloseNormal)
		}
	})

	t.Run("server-close", func(t *testing.T) {
		r := runNode(t, node, "--mode", "server-close",
			"--expect-text", helloText,
			"--expect-code", strconv.Itoa(helloCode), "--expect-reason", helloReason,
			wsURL(srv, "/hello"))
		if r.Close == nil || r.Close.Code != helloCode || r.Close.Reason != helloReason {
			t.Errorf("close seen by ws: %+v, want %d %q", r.Close, helloCode, helloReason)
		}
		if len(r.Messages) != 1 || r.Messages[0].Text == nil || *r.Messages[0].Text != helloText {
			t.Errorf("messages seen by ws: %+v, want one text %q", r.Messages, helloText)
		}
	})

	t.Run("oversize", func(t *testing.T) {
		r := runNode(t, node, "--mode", "oversize",
			"--size", strconv.Itoa(maxMessageSize+1),
			"--expect-code", strconv.Itoa(int(frame.CloseMessageTooBig)),
			wsURL(srv, "/echo"))
		if r.Close == nil || r.Close.Code != int(frame.CloseMessageTooBig) {
			t.Errorf("close seen by ws: %+v, want code %d", r.Close, frame.CloseMessageTooBig)
		}
	})
}

// findNode returns the path of node, after it checks that node/node_modules
// holds ws. The tests run in the package directory, so node/ is relative.
func findNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		missingPeer(t, "node is not installed: %v", err)
	}
	if _, err := os.Stat(filepath.Join("node", "node_modules", "ws", "package.json")); err != nil {
		missingPeer(t, "the ws npm package is not installed in interop/node/node_modules (npm ci): %v", err)
	}
	return node
}

// runNode runs node/echo.mjs with args, fails the test unless it exits 0 with
// a report whose checks all passed, and returns the report.
func runNode(t *testing.T, node string, args ...string) *nodeReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*stepTimeout)
	defer cancel()
	args = append([]string{"echo.mjs", "--timeout", strconv.Itoa(int(stepTimeout / time.Millisecond))}, args...)
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = "node"
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()

	var r nodeReport
	jsonErr := json.Unmarshal(stdout.Bytes(), &r)
	var exitErr *exec.ExitError
	switch {
	case runErr != nil && !errors.As(runErr, &exitErr):
		t.Fatalf("node %v: %v\nstderr:\n%s", args, runErr, stderr.Bytes())
	case jsonErr != nil:
		t.Fatalf("node %v: %v; stdout is not a report: %v\nstdout:\n%s\nstderr:\n%s",
			args, runErr, jsonErr, stdout.Bytes(), stderr.Bytes())
	}
	for _, c := range r.Checks {
		if !c.OK {
			t.Errorf("ws check %q failed: %s", c.Name, c.Detail)
		}
	}
	if runErr != nil || !r.OK {
		t.Fatalf("node %v: %v, report ok=%v, errors %q\nstderr:\n%s", args, runErr, r.OK, r.Errors, stderr.Bytes())
	}
	ext := "<none>"
	if r.Extensions != nil {
		ext = strconv.Quote(*r.Extensions)
	}
	t.Logf("ws %s on node %s, mode %s: %d checks passed in %d ms, extensions %s",
		r.WS, r.Node, r.Mode, len(r.Checks), r.MS, ext)
	return &r
}
