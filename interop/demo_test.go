package interop

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/wskit/wskit/internal/wstest"
	"github.com/wskit/wskit/poller"
)

// TestChromiumDemoPage builds the wskit command, runs `wskit serve` as a
// process of its own, and drives the demo page that it serves at / in
// headless Chromium, through the page's controls (#path, #connect, #input,
// #send, #sendBinary, #disconnect, #clear) and, for one message of known
// bytes, through its window.wskitDemo API. It reads back what the page shows:
// #status, the entries of #log, and wskitDemo's sent, received and closed.
// It does so once per engine (-engine std, -engine poll), each with a server
// and a browser of its own.
//
// Each session opens with permessage-deflate, which wskit serve accepts by
// default: the page logs "open with permessage-deflate" and keeps
// ws.extensions in wskitDemo.extensions.
//
// /echo: a text with multi-byte UTF-8 typed into #input and sent with
// #send, another sent with #sendBinary (its UTF-8 bytes, in a binary
// message), and 256 known bytes come back the same; #disconnect closes with
// 1000. /hello: the greeting, "Chromium" → "Hi, Chromium!", and "bye" makes
// the server close with 1000 "Client said BYE". /events (Events callbacks,
// on the event loop with -engine poll): a typed text and the known bytes
// come back the same; #disconnect closes with 1000. The server, which runs
// with -log-level debug, must log each session's open and close, and SIGINT
// must stop it with exit status 0. A path that is no endpoint (/nope)
// closes with 1006, all that a browser learns, and the page then asks the
// server with a GET and shows the 404 and a hint about the path.
func TestChromiumDemoPage(t *testing.T) {
	chromium := findChromium(t)
	bin := buildWskit(t)
	for _, engine := range []string{"std", "poll"} {
		t.Run(engine, func(t *testing.T) {
			if engine == "poll" && !poller.Supported {
				t.Skip("the poll engine is not supported on this platform")
			}
			testDemoPage(t, chromium, bin, engine)
		})
	}
}

func testDemoPage(t *testing.T, chromium, bin, engine string) {
	srv := startDemoServer(t, bin, engine)
	ctx, closeBrowser := startBrowser(t, chromium)
	p := &demoPage{t: t, ctx: ctx, srv: srv}

	start := time.Now()
	p.open(srv.page)
	p.echo()
	p.hello()
	p.events()
	p.badPath()
	t.Logf("drove the page in %v", time.Since(start).Round(time.Millisecond))

	// Close the browser first: Chromium keeps a spare connection that never
	// sends a request, which the shutdown would wait for before it cut it.
	stopLivePanel(t, ctx, srv)
	if err := closeBrowser(); err != nil {
		t.Fatalf("close the browser: %v", err)
	}
	srv.stop(t)

	// A session that the server had to cut at the shutdown would close with
	// 1001. Each ended before it.
	log := srv.stderr.String()
	var problems []string
	for _, want := range []string{`msg="shutting down"`, "msg=stopped"} {
		if !strings.Contains(log, want) {
			problems = append(problems, fmt.Sprintf("no %s in the log", want))
		}
	}
	for _, bad := range []string{"code=1001", "level=WARN", "level=ERROR"} {
		if strings.Contains(log, bad) {
			problems = append(problems, fmt.Sprintf("%s in the log", bad))
		}
	}
	if len(problems) > 0 {
		t.Errorf("wskit serve after SIGINT: %s\nits stderr:\n%s", strings.Join(problems, "; "), log)
		srv.reported.Store(true)
	}
}

// open navigates to the page and waits until its script has run.
func (p *demoPage) open(url string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		p.fatalf("navigate to %s: %v", url, err)
	}
	if resp.Status != http.StatusOK || resp.MimeType != "text/html" {
		p.fatalf("GET %s: %d %s, %s; want 200 and an HTML page", resp.URL, resp.Status, resp.StatusText, resp.MimeType)
	}
	p.waitFor("the page's script", `window.wskitDemo !== undefined && wskitDemo.state === "idle"`)
	p.do("wait for #connect", chromedp.WaitVisible(chromedp.ID("connect")))
}

// echo drives /echo: it connects with the path the page starts with, sends a
// text and binary messages, and disconnects.
func (p *demoPage) echo() {
	p.t.Helper()
	s := p.snapshot()
	if s.Path != "/echo" {
		p.fatalf("#path starts as %q, want /echo", s.Path)
	}
	p.connect("/echo")

	// A text typed into #input, with two, three and four byte UTF-8
	// sequences, sent with #send.
	text := echoTexts[2].text
	p.do("type a text into #input and click #send",
		chromedp.SendKeys(chromedp.ID("input"), text),
		chromedp.Click(chromedp.ID("send")))
	p.waitFor("the echo of the text", `wskitDemo.received.length >= 1`)

	// A text typed into #input and sent with #sendBinary goes as its UTF-8
	// bytes in a binary message.
	typedBytes := echoTexts[1].text + " — ✓"
	p.do("type a text into #input and click #sendBinary",
		chromedp.SendKeys(chromedp.ID("input"), typedBytes),
		chromedp.WaitEnabled(chromedp.ID("sendBinary")), chromedp.Click(chromedp.ID("sendBinary")))
	p.waitFor("the echo of the typed text's bytes", `wskitDemo.received.length >= 2`)

	// Bytes known here, every value 0-255 once, through the page's API.
	known := make([]byte, 256)
	for i := range known {
		known[i] = byte(i*167 + 13) // 167 is odd, so i → byte is a bijection
	}
	p.do("send 256 known bytes with wskitDemo.sendBinary", chromedp.Evaluate[chromedp.Void](
		fmt.Sprintf(`wskitDemo.sendBinary(Uint8Array.from(%s)), undefined`, jsBytes(known))))
	p.waitFor("the echo of the known bytes", `wskitDemo.received.length >= 3`)

	s = p.snapshot()
	var problems []string
	problems = append(problems, s.wantOpen("/echo")...)
	if s.Input != "" {
		problems = append(problems, fmt.Sprintf("#input holds %q after #send and #sendBinary, want it empty", s.Input))
	}
	typedHex := hex.EncodeToString([]byte(typedBytes))
	knownHex := hex.EncodeToString(known)
	want := []demoMessage{{"text", text}, {"binary", typedHex}, {"binary", knownHex}}
	problems = append(problems, compareMessages("wskitDemo.sent", s.Sent, want)...)
	problems = append(problems, compareMessages("wskitDemo.received", s.Received, want)...)
	p.check("/echo, open", problems)

	p.do("click #disconnect", chromedp.Click(chromedp.ID("disconnect")))
	p.waitFor("the close", `wskitDemo.closed !== null`)
	p.srv.waitLog(p, "session closed", "/echo")

	s = p.snapshot()
	problems = s.wantClosed(1000, "")
	problems = append(problems, compareLog(s.Log, []demoLogEntry{
		{"info", "connecting to ws://" + p.srv.addr + "/echo"},
		{"info", "open with " + demoExtensions},
		{"sent", text},
		{"received", text},
		{"sent", "binary " + typedHex},
		{"received", "binary " + typedHex},
		{"sent", "binary " + knownHex},
		{"received", "binary " + knownHex},
		{"info", "closed: 1000"},
	})...)
	problems = append(problems, p.srv.sessionLog("/echo", `code=1000 reason=""`)...)
	p.check("/echo, closed", problems)
}

// hello drives /hello: it clears the log, types /hello into #path, connects,
// answers the greeting, and says bye.
func (p *demoPage) hello() {
	p.t.Helper()
	p.do("click #clear", chromedp.Click(chromedp.ID("clear")))
	if s := p.snapshot(); len(s.Log) != 0 {
		p.fatalf("#log has %d entries after #clear, want none", len(s.Log))
	}
	p.typePath("/hello")
	p.connect("/hello")
	p.waitFor("the greeting", `wskitDemo.received.length >= 1`)
	p.do("type Chromium into #input and click #send",
		chromedp.SendKeys(chromedp.ID("input"), "Chromium"),
		chromedp.Click(chromedp.ID("send")))
	p.waitFor("the answer", `wskitDemo.received.length >= 2`)

	s := p.snapshot()
	problems := s.wantOpen("/hello")
	problems = append(problems, compareMessages("wskitDemo.sent", s.Sent, []demoMessage{{"text", "Chromium"}})...)
	problems = append(problems, compareMessages("wskitDemo.received", s.Received,
		[]demoMessage{{"text", "Please enter your name"}, {"text", "Hi, Chromium!"}})...)
	p.check("/hello, open", problems)

	// "bye" makes the server close.
	p.do("type bye into #input and click #send",
		chromedp.SendKeys(chromedp.ID("input"), "bye"),
		chromedp.Click(chromedp.ID("send")))
	p.waitFor("the server's close", `wskitDemo.closed !== null`)
	p.srv.waitLog(p, "session closed", "/hello")

	s = p.snapshot()
	problems = s.wantClosed(1000, "Client said BYE")
	problems = append(problems, compareLog(s.Log, []demoLogEntry{
		{"info", "connecting to ws://" + p.srv.addr + "/hello"},
		{"info", "open with " + demoExtensions},
		{"received", "Please enter your name"},
		{"sent", "Chromium"},
		{"received", "Hi, Chromium!"},
		{"sent", "bye"},
		{"info", "closed: 1000 Client said BYE"},
	})...)
	problems = append(problems, p.srv.sessionLog("/hello", `code=1000 reason="Client said BYE"`)...)
	p.check("/hello, closed", problems)
}

// events drives /events, the Events echo: it clears the log, types /events
// into #path, connects, sends a text and known bytes, and disconnects.
func (p *demoPage) events() {
	p.t.Helper()
	p.do("click #clear", chromedp.Click(chromedp.ID("clear")))
	p.typePath("/events")
	p.connect("/events")

	text := echoTexts[2].text
	p.do("type a text into #input and click #send",
		chromedp.SendKeys(chromedp.ID("input"), text),
		chromedp.Click(chromedp.ID("send")))
	p.waitFor("the echo of the text", `wskitDemo.received.length >= 1`)
	known := pattern(300)
	p.do("send 300 known bytes with wskitDemo.sendBinary", chromedp.Evaluate[chromedp.Void](
		fmt.Sprintf(`wskitDemo.sendBinary(Uint8Array.from(%s)), undefined`, jsBytes(known))))
	p.waitFor("the echo of the known bytes", `wskitDemo.received.length >= 2`)

	s := p.snapshot()
	knownHex := hex.EncodeToString(known)
	want := []demoMessage{{"text", text}, {"binary", knownHex}}
	problems := s.wantOpen("/events")
	problems = append(problems, compareMessages("wskitDemo.sent", s.Sent, want)...)
	problems = append(problems, compareMessages("wskitDemo.received", s.Received, want)...)
	p.check("/events, open", problems)

	p.do("click #disconnect", chromedp.Click(chromedp.ID("disconnect")))
	p.waitFor("the close", `wskitDemo.closed !== null`)
	p.srv.waitLog(p, "session closed", "/events")
	s = p.snapshot()
	problems = s.wantClosed(1000, "")
	problems = append(problems, p.srv.sessionLog("/events", `code=1000 reason=""`)...)
	problems = append(problems, compareLog(s.Log, []demoLogEntry{
		{"info", "connecting to ws://" + p.srv.addr + "/events"},
		{"info", "open with " + demoExtensions},
		{"sent", text},
		{"received", text},
		{"sent", "binary " + knownHex},
		{"received", "binary " + knownHex},
		{"info", "closed: 1000"},
	})...)
	p.check("/events, closed", problems)
}

// badPath connects to a path that the server does not serve: the browser
// reports 1006, and the page finds the HTTP status with a GET and shows it
// with a hint.
func (p *demoPage) badPath() {
	p.t.Helper()
	p.do("click #clear", chromedp.Click(chromedp.ID("clear")))
	p.typePath("/nope")
	p.do("click #connect", chromedp.WaitEnabled(chromedp.ID("connect")), chromedp.Click(chromedp.ID("connect")))
	p.waitFor("the refusal's explanation", `wskitDemo.refusal !== null`)
	s := p.snapshot()
	problems := s.wantEnabled(true)
	if c := s.Closed; c == nil || c.Code != 1006 || c.WasClean {
		problems = append(problems, fmt.Sprintf("wskitDemo.closed %+v, want 1006, not clean", c))
	}
	if r := s.Refusal; r == nil || r.Status != http.StatusNotFound || r.StatusText != "Not Found" {
		problems = append(problems, fmt.Sprintf("wskitDemo.refusal %+v, want status 404 Not Found", r))
	}
	if s.State != "closed" || s.StatusState != "closed" || s.Status != "refused: HTTP 404 Not Found" {
		problems = append(problems, fmt.Sprintf("state %q, #status %q (data-state %q); want closed, %q",
			s.State, s.Status, s.StatusState, "refused: HTTP 404 Not Found"))
	}
	problems = append(problems, compareLog(s.Log, []demoLogEntry{
		{"info", "connecting to ws://" + p.srv.addr + "/nope"},
		{"info", "error (see the close code)"},
		{"info", "closed: 1006 (not clean)"},
		{"info", "the server refused the upgrade: /nope answers HTTP 404 Not Found, it is no WebSocket endpoint: is the path right?"},
	})...)
	p.check("/nope", problems)
}

// typePath replaces what #path holds with path, like a user: End, a
// Backspace for each character, then the new path. (chromedp.SetValue cannot
// set "": it sets the value to "undefined".)
func (p *demoPage) typePath(path string) {
	p.t.Helper()
	old := p.snapshot().Path
	p.do("type "+path+" into #path",
		chromedp.WaitEnabled(chromedp.ID("path")),
		chromedp.SendKeys(chromedp.ID("path"), kb.End+strings.Repeat(kb.Backspace, utf8.RuneCountInString(old))+path))
	if s := p.snapshot(); s.Path != path {
		p.fatalf("#path holds %q after typing %s over %q", s.Path, path, old)
	}
}

// connect clicks #connect and waits until the session to path is open, and
// until the server's log says so.
func (p *demoPage) connect(path string) {
	p.t.Helper()
	p.do("click #connect", chromedp.WaitEnabled(chromedp.ID("connect")), chromedp.Click(chromedp.ID("connect")))
	p.waitFor("the session to "+path+" to open",
		`wskitDemo.state === "open" && document.getElementById("status").dataset.state === "open"`)
	p.do("wait for #input", chromedp.WaitEnabled(chromedp.ID("input")))
	p.srv.waitLog(p, "session open", path)
}

// demoExtensions is what wskit serve, which accepts permessage-deflate by
// default, answers Chromium's offer ("permessage-deflate;
// client_max_window_bits"), bounding the browser's window at 13 bits: the
// page shows it in #log ("open with ...") and in wskitDemo.extensions.
const demoExtensions = "permessage-deflate; client_max_window_bits=13"

// demoPage drives the demo page in a browser tab.
type demoPage struct {
	t   *testing.T
	ctx context.Context // the tab; each step derives a timeout from it
	srv *demoServer
}

// do runs actions in the page, within stepTimeout.
func (p *demoPage) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	doStep(p.ctx, p.fatalf, what, actions...)
}

// waitFor waits until the JS expression predicate is truthy in the page,
// for at most stepTimeout.
func (p *demoPage) waitFor(what, predicate string) {
	p.t.Helper()
	pollStep(p.ctx, p.fatalf, what, predicate)
}

// doStep runs actions in the tab of ctx within stepTimeout, or fails.
func doStep(ctx context.Context, fatalf func(string, ...any), what string, actions ...chromedp.Action[chromedp.Void]) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		fatalf("%s: %v", what, err)
	}
}

// pollStep waits until the JS expression predicate is truthy in the tab of
// ctx, for at most stepTimeout, or fails.
func pollStep(ctx context.Context, fatalf func(string, ...any), what, predicate string) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](predicate,
		chromedp.WithPollingInterval(10*time.Millisecond), chromedp.WithPollingTimeout(stepTimeout)))
	if errors.Is(err, chromedp.ErrPollingTimeout) {
		fatalf("waited %v for %s: %s stayed false", stepTimeout, what, predicate)
	}
	if err != nil {
		fatalf("waiting for %s (%s): %v", what, predicate, err)
	}
}

// check fails the test with the problems of a step, if any.
func (p *demoPage) check(step string, problems []string) {
	p.t.Helper()
	if len(problems) > 0 {
		p.fatalf("%s:\n\t%s", step, strings.Join(problems, "\n\t"))
	}
}

// fatalf fails the test with the message, what the page shows and the
// server's log.
func (p *demoPage) fatalf(format string, args ...any) {
	p.t.Helper()
	msg := fmt.Sprintf(format, args...)
	var page string
	if s, err := p.read(); err != nil {
		page = fmt.Sprintf("(could not read the page: %v)", err)
	} else {
		page = s.String()
	}
	p.srv.reported.Store(true)
	p.t.Fatalf("%s\nthe page:\n%s\nwskit serve's stderr:\n%s", msg, page, p.srv.stderr.String())
}

// snapshot returns what the page shows, or fails the test.
func (p *demoPage) snapshot() *demoSnapshot {
	p.t.Helper()
	s, err := p.read()
	if err != nil {
		p.srv.reported.Store(true)
		p.t.Fatalf("read the page: %v\nwskit serve's stderr:\n%s", err, p.srv.stderr.String())
	}
	return s
}

func (p *demoPage) read() (*demoSnapshot, error) {
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[*demoSnapshot](demoSnapshotJS))
	if err == nil && s == nil {
		err = errors.New("the snapshot script returned null")
	}
	return s, err
}

// demoSnapshotJS reads what the demo page shows into a demoSnapshot.
const demoSnapshotJS = `(() => {
	const $ = (id) => document.getElementById(id);
	const d = window.wskitDemo;
	const controls = {};
	for (const id of ["path", "connect", "disconnect", "input", "send", "sendBinary"]) {
		controls[id] = $(id) ? !$(id).disabled : false;
	}
	return {
		state: d ? d.state : "(no window.wskitDemo)",
		status: $("status") ? $("status").textContent : "(no #status)",
		statusState: $("status") ? $("status").dataset.state || "" : "",
		path: $("path") ? $("path").value : "",
		input: $("input") ? $("input").value : "",
		enabled: controls,
		sent: d ? d.sent : [],
		received: d ? d.received : [],
		closed: d ? d.closed : null,
		extensions: d ? d.extensions : null,
		refusal: d ? d.refusal : null,
		log: Array.from(document.querySelectorAll("#log li"), (li) => ({ class: li.className, text: li.textContent })),
	};
})()`

// demoSnapshot is what demoSnapshotJS returns.
type demoSnapshot struct {
	State       string          `json:"state"`
	Status      string          `json:"status"`
	StatusState string          `json:"statusState"`
	Path        string          `json:"path"`
	Input       string          `json:"input"`
	Enabled     map[string]bool `json:"enabled"`
	Sent        []demoMessage   `json:"sent"`
	Received    []demoMessage   `json:"received"`
	Closed      *struct {
		Code     int    `json:"code"`
		Reason   string `json:"reason"`
		WasClean bool   `json:"wasClean"`
	} `json:"closed"`
	Log        []demoLogEntry `json:"log"`
	Extensions *string        `json:"extensions"` // wskitDemo.extensions: ws.extensions once open
	Refusal    *struct {
		Status     int    `json:"status"`
		StatusText string `json:"statusText"`
		Hint       string `json:"hint"`
	} `json:"refusal"` // wskitDemo.refusal
}

// demoMessage is an entry of wskitDemo.sent or wskitDemo.received.
type demoMessage struct {
	Type string `json:"type"`
	Data string `json:"data"`
}

// demoLogEntry is an <li> of #log.
type demoLogEntry struct {
	Class string `json:"class"`
	Text  string `json:"text"`
}

func (s *demoSnapshot) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\twskitDemo.state %q, #status %q (data-state %q), #path %q, #input %q\n",
		s.State, s.Status, s.StatusState, s.Path, s.Input)
	fmt.Fprintf(&b, "\tenabled: %v\n", s.Enabled)
	fmt.Fprintf(&b, "\twskitDemo.closed: %+v\n", s.Closed)
	fmt.Fprintf(&b, "\t#log (%d entries):\n", len(s.Log))
	for _, e := range s.Log {
		fmt.Fprintf(&b, "\t\t%-8s %s\n", e.Class, pageText(e.Text))
	}
	return b.String()
}

// wantOpen returns what differs from a page with an open session to path.
func (s *demoSnapshot) wantOpen(path string) []string {
	var problems []string
	if s.State != "open" || s.StatusState != "open" || s.Status != "open ("+path+")" {
		problems = append(problems, fmt.Sprintf("state %q, #status %q (data-state %q); want open, %q",
			s.State, s.Status, s.StatusState, "open ("+path+")"))
	}
	if s.Path != path {
		problems = append(problems, fmt.Sprintf("#path %q, want %q", s.Path, path))
	}
	if s.Extensions == nil || *s.Extensions != demoExtensions {
		problems = append(problems, fmt.Sprintf("wskitDemo.extensions %s, want %q", pageTextOrNull(s.Extensions), demoExtensions))
	}
	return append(problems, s.wantEnabled(false)...)
}

// wantClosed returns what differs from a page whose session closed cleanly
// with code and reason.
func (s *demoSnapshot) wantClosed(code int, reason string) []string {
	var problems []string
	c := s.Closed
	if c == nil || c.Code != code || c.Reason != reason || !c.WasClean {
		problems = append(problems, fmt.Sprintf("wskitDemo.closed %+v, want code %d, reason %q, wasClean", c, code, reason))
	}
	status := fmt.Sprintf("closed: %d", code)
	if reason != "" {
		status += " " + reason
	}
	if s.State != "closed" || s.StatusState != "closed" || s.Status != status {
		problems = append(problems, fmt.Sprintf("state %q, #status %q (data-state %q); want closed, %q",
			s.State, s.Status, s.StatusState, status))
	}
	return append(problems, s.wantEnabled(true)...)
}

// wantEnabled returns which controls are in the wrong state: with no session
// (idle) #path and #connect are enabled and the others disabled; with an open
// session it is the other way around.
func (s *demoSnapshot) wantEnabled(idle bool) []string {
	var problems []string
	for _, id := range []string{"path", "connect", "disconnect", "input", "send", "sendBinary"} {
		want := (id == "path" || id == "connect") == idle
		if s.Enabled[id] != want {
			problems = append(problems, fmt.Sprintf("#%s enabled %v, want %v", id, s.Enabled[id], want))
		}
	}
	return problems
}

func compareMessages(name string, got, want []demoMessage) []string {
	if len(got) != len(want) {
		return []string{fmt.Sprintf("%s has %d entries %s, want %d %s", name, len(got), describeMessages(got), len(want), describeMessages(want))}
	}
	var problems []string
	for i := range want {
		if got[i] != want[i] {
			problems = append(problems, fmt.Sprintf("%s[%d] is %s, want %s", name, i, describeMessages(got[i:i+1]), describeMessages(want[i:i+1])))
		}
	}
	return problems
}

func describeMessages(ms []demoMessage) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.Type + " " + pageText(m.Data)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func compareLog(got, want []demoLogEntry) []string {
	if len(got) != len(want) {
		return []string{fmt.Sprintf("#log has %d entries, want %d", len(got), len(want))}
	}
	var problems []string
	for i := range want {
		if got[i] != want[i] {
			problems = append(problems, fmt.Sprintf("#log entry %d is %s %s, want %s %s",
				i, got[i].Class, pageText(got[i].Text), want[i].Class, pageText(want[i].Text)))
		}
	}
	return problems
}

// pageText quotes a text of the page for a failure message, shortened to
// 200 characters.
func pageText(s string) string {
	const keep = 200
	if n := utf8.RuneCountInString(s); n > keep {
		return fmt.Sprintf("%q... (%d characters)", string([]rune(s)[:keep]), n)
	}
	return fmt.Sprintf("%q", s)
}

func pageTextOrNull(s *string) string {
	if s == nil {
		return "null"
	}
	return pageText(*s)
}

// jsBytes writes b as a JS array literal.
func jsBytes(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprint(c)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// buildWskit builds the wskit command from the root module (the directory
// above this one) and returns the path of the binary. When this test runs
// with -race, so does the command: a race that it finds makes it exit with
// status 66, which stop reports with the race in its stderr.
func buildWskit(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go") // go test puts $GOROOT/bin first on the PATH
	if err != nil {
		t.Fatalf("find the go command to build wskit: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "wskit")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	args := []string{"build", "-o", bin}
	if raceEnabled() {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, goTool, append(args, "github.com/wskit/wskit/cmd/wskit")...)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s (in ..): %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	t.Logf("%s: built in %v", strings.Join(cmd.Args[1:], " "), time.Since(start).Round(time.Millisecond))
	return bin
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// demoServer is a running `wskit serve`.
type demoServer struct {
	cmd        *exec.Cmd
	stderr     wstest.SyncBuffer
	addr, page string // from its "listening" log line
	listening  string // that line

	exited  chan struct{} // closed when cmd.Wait returned
	waitErr error         // what it returned; read after exited

	reported atomic.Bool // the stderr is in a failure message already
}

var (
	listeningLine = regexp.MustCompile(`(?m)^.*\bmsg=listening\b.*$`)
	addrAttr      = regexp.MustCompile(`\baddr=(\S+)`)
	pageAttr      = regexp.MustCompile(`\bpage=(\S+)`)
	engineAttr    = regexp.MustCompile(`\bengine=(\S+)`)
)

// startDemoServer starts bin serve with -engine engine and flags on a free
// port of 127.0.0.1 and waits for its log line with the address and the
// engine (and a page on https:// when flags ask for TLS). It logs at debug
// level, where each session's open and close is. A cleanup kills it if it
// still runs.
func startDemoServer(t *testing.T, bin, engine string, flags ...string) *demoServer {
	t.Helper()
	s := &demoServer{exited: make(chan struct{})}
	s.cmd = exec.Command(bin, append([]string{"serve", "-addr", "127.0.0.1:0", "-engine", engine, "-log-level", "debug"}, flags...)...)
	s.cmd.Stderr = &s.stderr
	if os.Getenv("GORACE") == "" {
		// A -race build sleeps 1 s before it exits, by default.
		s.cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	}
	s.cmd.WaitDelay = 5 * time.Second
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() && !s.reported.Load() {
			t.Logf("wskit serve's stderr:\n%s", s.stderr.String())
		}
	})

	deadline := time.NewTimer(stepTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	scheme := "http://"
	if slices.Contains(flags, "-tls-self-signed") || slices.Contains(flags, "-tls-cert") {
		scheme = "https://"
	}
	for {
		if line := listeningLine.FindString(s.stderr.String()); line != "" {
			a, pg := addrAttr.FindStringSubmatch(line), pageAttr.FindStringSubmatch(line)
			if a == nil || pg == nil || pg[1] != scheme+a[1]+"/" {
				s.reported.Store(true)
				t.Fatalf("wskit serve logged %q: want addr=HOST:PORT and page=%sHOST:PORT/", line, scheme)
			}
			if e := engineAttr.FindStringSubmatch(line); e == nil || e[1] != engine {
				s.reported.Store(true)
				t.Fatalf("wskit serve -engine %s logged %q: want engine=%s", engine, line, engine)
			}
			s.addr, s.page, s.listening = a[1], pg[1], line
			t.Logf("wskit serve -engine %s %s(pid %d) listens on %s", engine, strings.Join(append(flags, ""), " "), s.cmd.Process.Pid, s.addr)
			return s
		}
		select {
		case <-tick.C:
		case <-s.exited:
			s.reported.Store(true)
			t.Fatalf("wskit serve exited (%v) before it logged its address; stderr:\n%s", s.waitErr, s.stderr.String())
		case <-deadline.C:
			s.reported.Store(true)
			t.Fatalf("wskit serve logged no msg=listening line within %v; stderr:\n%s", stepTimeout, s.stderr.String())
		}
	}
}

// sessionLine matches the server's log line msg for a session to path.
func sessionLine(msg, path string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^.*\bmsg="` + regexp.QuoteMeta(msg) + `" .*\bpath=` + regexp.QuoteMeta(path) + `\b.*$`)
}

// waitLog waits until the server has logged msg for a session to path: the
// server logs a close after the handler returns, which can be after the
// browser saw the close.
func (s *demoServer) waitLog(p *demoPage, msg, path string) {
	p.t.Helper()
	re := sessionLine(msg, path)
	deadline := time.Now().Add(stepTimeout)
	for !re.MatchString(s.stderr.String()) {
		if time.Now().After(deadline) {
			p.fatalf("wskit serve logged no %q for %s within %v", msg, path, stepTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sessionLog returns what is wrong with the server's log of the one session
// to path: it must have opened once and closed once with closeAttrs and no
// error.
func (s *demoServer) sessionLog(path, closeAttrs string) []string {
	log := s.stderr.String()
	opened := sessionLine("session open", path).FindAllString(log, -1)
	closed := sessionLine("session closed", path).FindAllString(log, -1)
	if len(opened) != 1 || len(closed) != 1 {
		return []string{fmt.Sprintf("the server logged %d opens and %d closes of a session to %s, want 1 and 1", len(opened), len(closed), path)}
	}
	if !strings.Contains(closed[0], " "+closeAttrs) || strings.Contains(closed[0], " err=") {
		return []string{fmt.Sprintf("the server logged %q, want %s and no err", closed[0], closeAttrs)}
	}
	return nil
}

// stop sends SIGINT and checks that the server exits with status 0.
func (s *demoServer) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("send SIGINT to wskit serve: %v", err)
	}
	const grace = 5*time.Second + stepTimeout // the server's own shutdown grace is 5 s
	start := time.Now()
	defer func() { t.Logf("wskit serve exited %v after SIGINT", time.Since(start).Round(time.Millisecond)) }()
	select {
	case <-s.exited:
	case <-time.After(grace):
		s.reported.Store(true)
		t.Fatalf("wskit serve did not exit within %v of SIGINT; stderr:\n%s", grace, s.stderr.String())
	}
	if s.waitErr != nil {
		s.reported.Store(true)
		t.Fatalf("wskit serve after SIGINT: %v, want exit status 0; stderr:\n%s", s.waitErr, s.stderr.String())
	}
}

// TestDemoDeflate builds the wskit command and, once per engine, runs
// `wskit serve` twice: as it comes, which accepts permessage-deflate on
// every endpoint but /raw, and with -deflate=false. Through a countingProxy
// in front of each, headless Chromium (from the page at /) and
// node/echo.mjs (ws with perMessageDeflate, threshold 0) echo
// deflateMessages on /echo (default sessions) and /events (Events
// callbacks), and on /raw (raw sessions, which echo frame by frame): with
// deflate, /echo and /events must answer "permessage-deflate;
// client_max_window_bits=13" to both (ws offers the parameter too) and the
// messages must go compressed both ways; with -deflate=false, and on /raw
// always, nothing may be negotiated and the messages go as they are. SIGINT must
// then stop both servers with status 0 and no WARN or ERROR in their logs.
func TestDemoDeflate(t *testing.T) {
	chromium := findChromium(t)
	node := findNode(t)
	bin := buildWskit(t)
	ms := deflateMessages()
	file := writeMessagesFile(t, ms)
	for _, engine := range []string{"std", "poll"} {
		t.Run(engine, func(t *testing.T) {
			if engine == "poll" && !poller.Supported {
				t.Skip("the poll engine is not supported on this platform")
			}
			on := startDemoServer(t, bin, engine)
			off := startDemoServer(t, bin, engine, "-deflate=false")
			for _, c := range []struct {
				srv  *demoServer
				want string
			}{{on, "deflate=true"}, {off, "deflate=false"}} {
				if !strings.Contains(c.srv.listening, " "+c.want) {
					t.Errorf("wskit serve logged %q, want %s", c.srv.listening, c.want)
				}
			}
			onProxy, offProxy := startProxy(t, on.addr), startProxy(t, off.addr)
			type endpoint struct {
				name  string
				proxy *countingProxy
				path  string
				want  string // the answer; "" for none
			}
			endpoints := []endpoint{
				{"deflate/echo", onProxy, "/echo", demoExtensions},
				{"deflate/events", onProxy, "/events", demoExtensions},
				{"no-deflate/echo", offProxy, "/echo", ""},
				{"no-deflate/events", offProxy, "/events", ""},
				{"deflate/raw", onProxy, "/raw", ""}, // raw routes never negotiate
			}
			wantWire := func(t *testing.T, who string, e endpoint, up, down int64) {
				t.Helper()
				if e.want != "" {
					wantCompressed(t, who+" → wskit serve", up, ms, 2)
					wantCompressed(t, "wskit serve → "+who, down, ms, 2)
				} else {
					wantUncompressed(t, who+" → wskit serve", up, ms, 2)
					wantUncompressed(t, "wskit serve → "+who, down, ms, 2)
				}
			}

			ctx, closeBrowser := startBrowser(t, chromium)
			for _, e := range endpoints {
				t.Run("chromium/"+e.name, func(t *testing.T) {
					navCtx, cancel := context.WithTimeout(ctx, stepTimeout)
					defer cancel()
					if _, err := chromedp.Run(navCtx, chromedp.NavigateResponse(e.proxy.URL+"/")); err != nil {
						t.Fatalf("navigate to %s/: %v", e.proxy.URL, err)
					}
					up0, down0 := e.proxy.counts()
					ext := browserEchoMessages(ctx, t, e.path, ms)
					up, down := e.proxy.counts()
					if ext != e.want {
						t.Errorf("ws.extensions %q, want %q", ext, e.want)
					}
					wantWire(t, "Chromium", e, up-up0, down-down0)
				})
			}
			// Close the browser before the servers: see testDemoPage.
			stopLivePanel(t, ctx, on, off)
			if err := closeBrowser(); err != nil {
				t.Fatalf("close the browser: %v", err)
			}

			for _, e := range endpoints {
				t.Run("node/"+e.name, func(t *testing.T) {
					up0, down0 := e.proxy.counts()
					wantNames := "permessage-deflate"
					if e.want == "" {
						wantNames = ""
					}
					r := runNode(t, node, "--mode", "messages", "--messages", file, "--deflate", `{"threshold":0}`,
						"--expect-extensions", wantNames, "ws://"+e.proxy.Addr+e.path)
					up, down := e.proxy.counts()
					header := "<none>"
					if r.ExtensionsHeader != nil {
						header = *r.ExtensionsHeader
					}
					if (e.want == "" && r.ExtensionsHeader != nil) || (e.want != "" && header != e.want) {
						t.Errorf("Sec-WebSocket-Extensions answer %s, want %q", header, e.want)
					}
					if n := len(r.Checks); n < 2*len(ms)+2 {
						t.Errorf("echo.mjs made %d checks, want at least %d", n, 2*len(ms)+2)
					}
					wantWire(t, "ws", e, up-up0, down-down0)
				})
			}

			for _, srv := range []*demoServer{on, off} {
				srv.stop(t)
				log := srv.stderr.String()
				for _, bad := range []string{"code=1001", "level=WARN", "level=ERROR"} {
					if strings.Contains(log, bad) {
						t.Errorf("%s in the log of wskit serve %s", bad, srv.listening)
						srv.reported.Store(true)
					}
				}
				for _, path := range []string{"/echo", "/raw"} {
					if srv == off && path == "/raw" {
						continue
					}
					if n := len(sessionLine("session closed", path).FindAllString(log, -1)); n == 0 {
						t.Errorf("wskit serve logged no closed session to %s", path)
					}
				}
				if t.Failed() && !srv.reported.Load() {
					srv.reported.Store(true)
					t.Logf("wskit serve's stderr:\n%s", log)
				}
			}
		})
	}
}
