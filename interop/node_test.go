package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/codec"
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
	// ExtensionsHeader is the server's Sec-WebSocket-Extensions answer as
	// it came; DeflateParams the permessage-deflate parameters ws agreed to.
	ExtensionsHeader *string        `json:"extensionsHeader"`
	DeflateParams    map[string]any `json:"deflateParams"`
	// TLS is what the connection negotiated over wss://: the version as
	// Node names it ("TLSv1.3"), the suite's standard name, and whether the
	// server's certificate was verified.
	TLS *struct {
		Version    string `json:"version"`
		Cipher     string `json:"cipher"`
		Authorized bool   `json:"authorized"`
	} `json:"tls"`
	Checks []struct {
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

// nodeDeflateCase is a permessage-deflate case of TestNodeWSDeflate: ws's
// perMessageDeflate options, the server's configuration, and the answer the
// server must give. With fragments, ws sends each message in fragments of
// that many bytes (with a ping after the first) and the server splits its
// own into frames of serverFragment bytes (Options.FragmentSize).
type nodeDeflateCase struct {
	name   string
	ws     string // JSON
	server codec.PerMessageDeflate
	want   string

	fragment, serverFragment int
}

func (c nodeDeflateCase) caseName() string { return c.name }
func (c nodeDeflateCase) configure(o *wskit.Options) {
	withDeflate(c.server)(o)
	o.FragmentSize = c.serverFragment
}

// nodeDeflateCases: ws offers client_max_window_bits bare unless it is given
// a number; threshold 0 makes it compress every message.
var nodeDeflateCases = []nodeDeflateCase{
	// The zero value bounds the client's window at 13 bits.
	{"default", `{"threshold":0}`, codec.PerMessageDeflate{}, "permessage-deflate; client_max_window_bits=13", 0, 0},
	{"full-client-window", `{"threshold":0}`, codec.PerMessageDeflate{ClientMaxWindowBits: 15}, "permessage-deflate", 0, 0},
	{"kept-compressor", `{"threshold":0}`, codec.PerMessageDeflate{KeepCompressor: true, ClientMaxWindowBits: 15}, "permessage-deflate", 0, 0},
	{"server-no-context-takeover", `{"threshold":0,"serverNoContextTakeover":true}`, codec.PerMessageDeflate{},
		"permessage-deflate; server_no_context_takeover; client_max_window_bits=13", 0, 0},
	{"client-no-context-takeover", `{"threshold":0,"clientNoContextTakeover":true}`, codec.PerMessageDeflate{},
		"permessage-deflate; client_no_context_takeover", 0, 0},
	{"server-max-window-bits-10", `{"threshold":0,"serverMaxWindowBits":10}`, codec.PerMessageDeflate{},
		"permessage-deflate; server_max_window_bits=10; client_max_window_bits=13", 0, 0},
	// Below the server's bound, the client's own 11 bits stand.
	{"client-max-window-bits-11", `{"threshold":0,"clientMaxWindowBits":11}`, codec.PerMessageDeflate{},
		"permessage-deflate; client_max_window_bits=11", 0, 0},
	// The server does not bound the client's window, so it need not answer
	// client_max_window_bits; ws keeps to its 11 bits anyway.
	{"client-max-window-bits-11-full", `{"threshold":0,"clientMaxWindowBits":11}`, codec.PerMessageDeflate{ClientMaxWindowBits: 15},
		"permessage-deflate", 0, 0},
	{"combined", `{"threshold":0,"serverNoContextTakeover":true,"clientNoContextTakeover":true,"serverMaxWindowBits":10,"clientMaxWindowBits":11}`,
		codec.PerMessageDeflate{},
		"permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_no_context_takeover", 0, 0},
	// The server's own limits.
	{"server-limits", `{"threshold":0}`, codec.PerMessageDeflate{ServerNoContextTakeover: true, ClientMaxWindowBits: 9},
		"permessage-deflate; server_no_context_takeover; client_max_window_bits=9", 0, 0},
	{"server-limits-client-bits-11", `{"threshold":0,"clientMaxWindowBits":11}`,
		codec.PerMessageDeflate{Level: 9, ServerMaxWindowBits: 9, ClientMaxWindowBits: 10},
		"permessage-deflate; client_max_window_bits=10", 0, 0},
	// 8 bits: zlib compresses with 9 when asked for 8, so the receiver must
	// keep a 512-byte window.
	{"window-bits-8", `{"threshold":0,"serverMaxWindowBits":8,"clientMaxWindowBits":8}`,
		codec.PerMessageDeflate{ClientMaxWindowBits: 8},
		"permessage-deflate; server_max_window_bits=8; client_max_window_bits=8", 0, 0},
	// Compressed messages in fragments both ways: RSV1 on the first frame
	// only, a ping between fragments.
	{"fragmented", `{"threshold":0}`, codec.PerMessageDeflate{}, "permessage-deflate; client_max_window_bits=13", 1000, 4096},
	{"fragmented-no-context-takeover", `{"threshold":0,"serverNoContextTakeover":true,"clientNoContextTakeover":true}`,
		codec.PerMessageDeflate{}, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", 777, 1000},
}

// TestNodeWSDeflate echoes deflateMessages between node/echo.mjs (ws with
// perMessageDeflate) and the server under test with permessage-deflate, on
// each server variant and nodeDeflateCases, through a countingProxy. The
// server's answer as ws got it, and Session.Extensions() on the server, must
// be the case's; the messages must go compressed both ways. Then a message
// of maxMessageSize+1 bytes, compressed to a few KiB, must still make the
// server close with 1009.
func TestNodeWSDeflate(t *testing.T) {
	node := findNode(t)
	ms := deflateMessages()
	forEachDeflateVariant(t, nodeDeflateCases, func(t *testing.T, srv *echoServer, c nodeDeflateCase) {
		file := writeMessagesFile(t, ms)
		proxy := startProxy(t, srv.Addr)
		before := len(srv.sessionExtensions())
		up0, down0 := proxy.counts()
		r := runNode(t, node, "--mode", "messages", "--messages", file, "--deflate", c.ws,
			"--fragment", strconv.Itoa(c.fragment),
			"--expect-extensions", "permessage-deflate", wsURL(&echoServer{URL: proxy.URL}, "/echo"))
		up, down := proxy.counts()
		if n := len(r.Checks); n < 2*len(ms)+2 {
			t.Errorf("echo.mjs made %d checks, want at least %d", n, 2*len(ms)+2)
		}
		header := ""
		if r.ExtensionsHeader != nil {
			header = *r.ExtensionsHeader
		}
		t.Logf("ws agreed to %v", r.DeflateParams)
		wantExtensions(t, "the answer ws got", header, c.want)
		wantServerExtensions(t, srv, before, c.want, header)
		wantCompressed(t, "ws → server", up-up0, ms, 2)
		wantCompressed(t, "server → ws", down-down0, ms, 2)
	})
}

// tooBigCase is a case of TestNodeWSDeflateTooBig: the server's
// permessage-deflate and the smallest message it refuses.
type tooBigCase struct {
	name string
	pmd  codec.PerMessageDeflate
	size int
}

func (c tooBigCase) caseName() string           { return c.name }
func (c tooBigCase) configure(o *wskit.Options) { withDeflate(c.pmd)(o) }

// TestNodeWSDeflateTooBig sends from ws with permessage-deflate a message
// exactly at the limit of what it may inflate to, maxMessageSize (by
// default) or a smaller MaxInflatedSize, which must come back; then one
// byte more, which goes compressed to a few KiB, and the server must close
// with 1009 all the same, on each server variant.
func TestNodeWSDeflateTooBig(t *testing.T) {
	node := findNode(t)
	cases := []tooBigCase{
		{"max-message-size", codec.PerMessageDeflate{}, maxMessageSize + 1},
		{"max-inflated-size-256KiB", codec.PerMessageDeflate{MaxInflatedSize: 256 << 10}, 256<<10 + 1},
	}
	forEachDeflateVariant(t, cases, func(t *testing.T, srv *echoServer, c tooBigCase) {
		proxy := startProxy(t, srv.Addr)
		// At the limit, the message comes back.
		atLimit := []wireMessage{{Name: fmt.Sprintf("binary-%dB", c.size-1), Binary: true, Data: pattern(c.size - 1)}}
		runNode(t, node, "--mode", "messages", "--messages", writeMessagesFile(t, atLimit), "--deflate", `{"threshold":0}`,
			"--expect-extensions", "permessage-deflate", wsURL(&echoServer{URL: proxy.URL}, "/echo"))
		up0, _ := proxy.counts()
		r := runNode(t, node, "--mode", "oversize", "--deflate", `{"threshold":0}`,
			"--size", strconv.Itoa(c.size),
			"--expect-code", strconv.Itoa(int(frame.CloseMessageTooBig)),
			"--expect-extensions", "permessage-deflate",
			wsURL(&echoServer{URL: proxy.URL}, "/echo"))
		up, _ := proxy.counts()
		if r.Close == nil || r.Close.Code != int(frame.CloseMessageTooBig) {
			t.Errorf("close seen by ws: %+v, want code %d", r.Close, frame.CloseMessageTooBig)
		}
		t.Logf("ws sent %d bytes on the wire for a message of %d bytes", up-up0, c.size)
		if up-up0 > 64<<10 {
			t.Errorf("ws sent %d bytes for the message: it did not go compressed", up-up0)
		}
	})
}

// nodeServer is a running node/server.mjs.
type nodeServer struct {
	Addr  string // 127.0.0.1:PORT
	stdin io.WriteCloser

	mu     sync.Mutex
	events []nodeServerEvent
	stderr bytes.Buffer
	added  chan struct{} // a value after each event
}

// nodeServerEvent is a line of node/server.mjs's output.
type nodeServerEvent struct {
	Event         string         `json:"event"`
	ID            int            `json:"id"`
	Port          int            `json:"port"`
	WS            string         `json:"ws"`
	Offer         *string        `json:"offer"`
	Extensions    *string        `json:"extensions"`
	DeflateParams map[string]any `json:"deflateParams"`
	Code          int            `json:"code"`
	Reason        string         `json:"reason"`
	Messages      int            `json:"messages"`
	Bytes         int64          `json:"bytes"`
	Error         string         `json:"error"`
}

// startNodeServer runs node/server.mjs with args and waits until it
// listens. A cleanup ends it by closing its stdin.
func startNodeServer(t *testing.T, node string, args ...string) *nodeServer {
	t.Helper()
	ns := &nodeServer{added: make(chan struct{}, 1)}
	cmd := exec.Command(node, append([]string{"server.mjs"}, args...)...)
	cmd.Dir = "node"
	cmd.Stderr = syncWriter{&ns.mu, &ns.stderr}
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if ns.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node server.mjs: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e nodeServerEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e = nodeServerEvent{Event: "unparsed", Error: sc.Text()}
			}
			ns.mu.Lock()
			ns.events = append(ns.events, e)
			ns.mu.Unlock()
			select {
			case ns.added <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		ns.stdin.Close()
		<-done
		if err := cmd.Wait(); err != nil {
			t.Errorf("node server.mjs: %v\nstderr:\n%s", err, ns.stderrText())
		} else if t.Failed() {
			t.Logf("node server.mjs's stderr:\n%s", ns.stderrText())
		}
	})
	e := ns.wait(t, func(e nodeServerEvent) bool { return e.Event == "listening" }, "listening")
	ns.Addr = fmt.Sprintf("127.0.0.1:%d", e.Port)
	t.Logf("ws %s server (node server.mjs %s) listens on %s", e.WS, strings.Join(args, " "), ns.Addr)
	return ns
}

func (ns *nodeServer) stderrText() string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ns.stderr.String()
}

// wait returns the first event that match accepts, waiting for it for at
// most stepTimeout.
func (ns *nodeServer) wait(t *testing.T, match func(nodeServerEvent) bool, what string) nodeServerEvent {
	t.Helper()
	deadline := time.After(stepTimeout)
	for {
		ns.mu.Lock()
		for _, e := range ns.events {
			if match(e) {
				ns.mu.Unlock()
				return e
			}
		}
		ns.mu.Unlock()
		select {
		case <-ns.added:
		case <-deadline:
			ns.mu.Lock()
			defer ns.mu.Unlock()
			t.Fatalf("node server.mjs printed no %s event within %v; events %+v\nstderr:\n%s", what, stepTimeout, ns.events, ns.stderr.String())
		}
	}
}

// lastOpen returns the id of the last connection that opened, 0 if none.
func (ns *nodeServer) lastOpen() int {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	id := 0
	for _, e := range ns.events {
		if e.Event == "open" {
			id = e.ID
		}
	}
	return id
}

type syncWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// failsDial marks an offer that the server answers against RFC 7692, so
// that wskit's client must fail the dial.
const failsDial = "!fail"

// nodeServerDeflateConfigs are the ws servers that TestNodeWSServerDeflate
// runs, with their answer to each of clientDeflateOffers. ws echoes the
// offer's parameters, drops a bare client_max_window_bits and adds its own.
var nodeServerDeflateConfigs = []struct {
	name string
	ws   string // ws's perMessageDeflate options, JSON
	want map[string]string
}{
	{"default", `{"threshold":0}`, map[string]string{
		"default":                    "permessage-deflate",
		"server-no-context-takeover": "permessage-deflate; server_no_context_takeover",
		"client-no-context-takeover": "permessage-deflate; client_no_context_takeover",
		"server-max-window-bits-10":  "permessage-deflate; server_max_window_bits=10",
		"client-max-window-bits-11":  "permessage-deflate; client_max_window_bits=11",
		"combined":                   "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11",
	}},
	{"no-context-takeover", `{"threshold":0,"serverNoContextTakeover":true,"clientNoContextTakeover":true}`, map[string]string{
		"default":                    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
		"server-no-context-takeover": "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
		"client-no-context-takeover": "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
		"server-max-window-bits-10":  "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10",
		"client-max-window-bits-11":  "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=11",
		"combined":                   "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11",
	}},
	{"client-max-window-bits-10", `{"threshold":0,"clientMaxWindowBits":10}`, map[string]string{
		"default":                    "permessage-deflate; client_max_window_bits=10",
		"server-no-context-takeover": "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
		"client-no-context-takeover": "permessage-deflate; client_no_context_takeover; client_max_window_bits=10",
		"server-max-window-bits-10":  "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10",
		"client-max-window-bits-11":  "permessage-deflate; client_max_window_bits=10",
		"combined":                   "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=10",
	}},
	// ws adds server_max_window_bits=10 to its answer even when the offer
	// did not have the parameter, which RFC 7692 §7.1.2.1 forbids: the
	// client must fail those.
	{"server-max-window-bits-10", `{"threshold":0,"serverMaxWindowBits":10}`, map[string]string{
		"default":                    failsDial,
		"server-no-context-takeover": failsDial,
		"client-no-context-takeover": failsDial,
		"server-max-window-bits-10":  "permessage-deflate; server_max_window_bits=10",
		"client-max-window-bits-11":  failsDial,
		"combined":                   "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11",
	}},
}

// TestNodeWSServerDeflate runs node/server.mjs, a ws echo server with
// perMessageDeflate, once per nodeServerDeflateConfigs, and dials it with
// wskit's client with each of clientDeflateOffers, through a countingProxy.
// Session.Extensions() on the client must be the answer ws sent, exactly,
// and the config's; deflateMessages must come back, compressed both ways.
// An answer that breaks RFC 7692 must fail the dial.
func TestNodeWSServerDeflate(t *testing.T) {
	node := findNode(t)
	ms := deflateMessages()
	for _, sc := range nodeServerDeflateConfigs {
		t.Run(sc.name, func(t *testing.T) {
			ns := startNodeServer(t, node, "--deflate", sc.ws)
			proxy := startProxy(t, ns.Addr)
			url := "ws://" + proxy.Addr + "/"
			for _, offer := range clientDeflateOffers {
				t.Run(offer.name, func(t *testing.T) {
					want := answerTo(sc.want, offer)
					last := ns.lastOpen()
					up0, down0 := proxy.counts()
					s, err := dialDeflate(t, url, offer)
					open := ns.wait(t, func(e nodeServerEvent) bool { return e.Event == "open" && e.ID > last }, "open")
					answer := ""
					if open.Extensions != nil {
						answer = *open.Extensions
					}
					offered := "<none>"
					if open.Offer != nil {
						offered = *open.Offer
					}
					t.Logf("offer %q, ws answered %q and agreed to %v", offered, answer, open.DeflateParams)
					if want == failsDial {
						if err == nil {
							t.Fatalf("Dial accepted the answer %q, which RFC 7692 forbids; Session.Extensions() %q", answer, s.Extensions())
						}
						t.Logf("Dial failed as it should: %v", err)
						if !strings.Contains(err.Error(), "server_max_window_bits") {
							t.Errorf("Dial: %v; want an error that names server_max_window_bits", err)
						}
						return
					}
					if err != nil {
						t.Fatalf("Dial (offer %q, answer %q): %v", offered, answer, err)
					}
					wantExtensions(t, "ws's answer", answer, want)
					if got := s.Extensions(); got != answer {
						t.Errorf("Session.Extensions() %q, want the answer ws sent, %q", got, answer)
					}
					wskitEcho(t, s, ms)
					wskitClose(t, s)
					closed := ns.wait(t, func(e nodeServerEvent) bool { return e.Event == "close" && e.ID == open.ID }, "close")
					if closed.Code != int(frame.CloseNormal) || closed.Messages != 2*len(ms) {
						t.Errorf("ws saw close %d %q after %d messages, want %d after %d", closed.Code, closed.Reason, closed.Messages, frame.CloseNormal, 2*len(ms))
					}
					up, down := proxy.counts()
					wantCompressed(t, "wskit → ws", up-up0, ms, 2)
					wantCompressed(t, "ws → wskit", down-down0, ms, 2)
				})
			}
		})
	}
}

// TestNodeWSServerDeflateConcurrentSends dials a ws echo server with
// permessage-deflate and context takeover both ways with wskit's client,
// and sends 320 texts that share most of their words from 8 goroutines at
// once. Each compressed message may refer to the ones before it, so the
// client must put them on the wire in the order it compressed them: ws must
// inflate every one (else it fails the connection), and the echoes must be
// the texts sent, each once.
func TestNodeWSServerDeflateConcurrentSends(t *testing.T) {
	node := findNode(t)
	ns := startNodeServer(t, node, "--deflate", `{"threshold":0}`)
	s, err := dialDeflate(t, "ws://"+ns.Addr+"/", clientDeflateOffers[0])
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if got := s.Extensions(); got != "permessage-deflate" {
		t.Errorf("Session.Extensions() %q, want %q", got, "permessage-deflate")
	}
	const senders, each, size = 8, 40, 1500
	errs := make(chan error, senders)
	for g := range senders {
		go func() {
			for i := range each {
				if err := s.SendText(fanoutText(g*each+i, size)); err != nil {
					errs <- fmt.Errorf("sender %d, text %d: %w", g, i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	set := newFanoutSet(senders*each, size)
	ctx, cancel := context.WithTimeout(context.Background(), 4*stepTimeout)
	defer cancel()
	for range senders * each {
		m, err := s.Receive(ctx)
		if err != nil {
			t.Fatalf("read after %d of %d echoes: %v", len(set.seen), senders*each, err)
		}
		if problem := set.take(m.Payload); problem != "" {
			t.Errorf("%s", problem)
		}
	}
	for range senders {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	wskitClose(t, s)
}
