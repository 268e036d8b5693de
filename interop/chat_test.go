package interop

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/wskit/wskit/poller"
)

// TestChromiumChat builds the wskit command and, once per engine (-engine
// std, -engine poll), runs `wskit serve -chat-replay 8` and opens its demo
// page in two tabs of one headless Chromium. Through the chat panel's
// controls (#chat-join, #chat-input, #chat-send, #chat-leave) both tabs join
// /chat and are greeted; a text typed in the first tab appears in both tabs'
// #chat-log, then one typed in the second, in that order in both. The first
// tab leaves (close 1000), the second sends a third text, and the first
// joins again: the replay hands it the three texts after the greeting, and
// a fourth text from it reaches both. The other panel stays idle. Then the
// first tab leaves and asks for a room whose name the server refuses: the
// panel says what a name may be. SIGINT must stop the server with status 0
// and no WARN or ERROR in its log.
//
// /chat greets before it subscribes, as Ktor's example does, so a text sent
// the moment the other tab is greeted may be published before that tab has
// subscribed. The replay hands it over then, which spares the test a sleep.
func TestChromiumChat(t *testing.T) {
	chromium := findChromium(t)
	bin := buildWskit(t)
	for _, engine := range []string{"std", "poll"} {
		t.Run(engine, func(t *testing.T) {
			if engine == "poll" && !poller.Supported {
				t.Skip("the poll engine is not supported on this platform")
			}
			testChat(t, chromium, bin, engine)
		})
	}
}

// chatGreeting is what /chat sends first to every member.
const chatGreeting = "You are connected to WebSocket!"

func testChat(t *testing.T, chromium, bin, engine string) {
	srv := startDemoServer(t, bin, engine, "-chat-replay", "8")
	if !strings.Contains(srv.listening, " chat_replay=8") {
		srv.reported.Store(true)
		t.Fatalf("wskit serve -chat-replay 8 logged %q, want chat_replay=8", srv.listening)
	}
	ctx, closeBrowser := startBrowser(t, chromium)
	second := newTab(t, ctx)
	c := &chatTest{t: t, srv: srv}
	one := c.open("tab 1", ctx)
	two := c.open("tab 2", second)

	start := time.Now()
	joined := "joining ws://" + srv.addr + "/chat"
	texts := []string{"hello from tab 1, " + echoTexts[2].text, "hi from tab 2", "tab 1 is away", "tab 1 is back"}
	one.join()
	two.join()
	one.say(texts[0], two)
	two.say(texts[1], one)
	both := []demoLogEntry{{"info", joined}, {"info", "joined"}, {"received", chatGreeting}, {"received", texts[0]}, {"received", texts[1]}}
	c.check("two members", one.want(both...), two.want(both...))

	one.leave()
	two.say(texts[2])
	one.join()
	one.waitFor("the replay", `wskitChat.received.length >= 4`)
	one.say(texts[3], two)
	t.Logf("chatted in %v", time.Since(start).Round(time.Millisecond))

	replayed := []demoLogEntry{{"info", joined}, {"info", "joined"}, {"received", chatGreeting},
		{"received", texts[0]}, {"received", texts[1]}, {"received", texts[2]}}
	c.check("after the first tab left and came back",
		one.want(slices.Concat(both, []demoLogEntry{{"info", "left: 1000"}}, replayed, []demoLogEntry{{"received", texts[3]}})...),
		two.want(slices.Concat(both, []demoLogEntry{{"received", texts[2]}, {"received", texts[3]}})...))

	one.leave()
	one.badRoom("no spaces")

	// Close the browser first: see testDemoPage.
	cctx, cancel := context.WithTimeout(second, 10*time.Second)
	defer cancel()
	if err := chromedp.Cancel(cctx); err != nil {
		t.Fatalf("close the second tab: %v", err)
	}
	if err := closeBrowser(); err != nil {
		t.Fatalf("close the browser: %v", err)
	}
	srv.stop(t)
	log := srv.stderr.String()
	for _, bad := range []string{"level=WARN", "level=ERROR"} {
		if strings.Contains(log, bad) {
			srv.reported.Store(true)
			t.Errorf("%s in the log of wskit serve:\n%s", bad, log)
		}
	}
}

// newTab opens another tab in the browser of ctx. The first Do on a tab's
// context binds the tab to the context it gets, so it gets the tab's own,
// and a timer bounds it instead.
func newTab(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	watchdog := time.AfterFunc(stepTimeout, cancel)
	err := chromedp.Do(tab)
	if !watchdog.Stop() {
		t.Fatalf("open a tab: not ready within %v (%v)", stepTimeout, err)
	}
	if err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return tab
}

// chatTest drives the chat panel of the demo page in several tabs.
type chatTest struct {
	t    *testing.T
	srv  *demoServer
	tabs []*chatTab
}

// chatTab is one tab with the demo page.
type chatTab struct {
	c    *chatTest
	name string
	ctx  context.Context // the tab; each step derives a timeout from it
}

// open navigates a tab to the page and waits until its script has run.
func (c *chatTest) open(name string, ctx context.Context) *chatTab {
	c.t.Helper()
	p := &chatTab{c: c, name: name, ctx: ctx}
	c.tabs = append(c.tabs, p)
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	resp, err := chromedp.Run(sctx, chromedp.NavigateResponse(c.srv.page))
	if err != nil {
		c.fatalf("%s: navigate to %s: %v", name, c.srv.page, err)
	}
	if resp.Status != http.StatusOK {
		c.fatalf("%s: GET %s: %d %s", name, resp.URL, resp.Status, resp.StatusText)
	}
	p.waitFor("the page's script", `window.wskitChat !== undefined && wskitChat.state === "idle"`)
	p.do("wait for #chat-join", chromedp.WaitVisible(chromedp.ID("chat-join")))
	return p
}

// join clicks #chat-join and waits for the greeting.
func (p *chatTab) join() {
	p.c.t.Helper()
	p.do("click #chat-join", chromedp.WaitEnabled(chromedp.ID("chat-join")), chromedp.Click(chromedp.ID("chat-join")))
	p.waitFor("the greeting", `wskitChat.state === "open" && wskitChat.received.length >= 1`)
	s := p.snapshot()
	problems := s.wantState("open", "joined")
	if s.Received[0] != chatGreeting {
		problems = append(problems, fmt.Sprintf("the first text is %s, want %q", pageText(s.Received[0]), chatGreeting))
	}
	p.c.check(p.name+" joined", problems)
}

// say types text into #chat-input, clicks #chat-send, and waits until the
// text reaches this tab and the others given.
func (p *chatTab) say(text string, others ...*chatTab) {
	p.c.t.Helper()
	p.do("type into #chat-input and click #chat-send",
		chromedp.SendKeys(chromedp.ID("chat-input"), text),
		chromedp.Click(chromedp.ID("chat-send")))
	arrived := fmt.Sprintf(`wskitChat.received.includes(%q)`, text)
	for _, q := range append([]*chatTab{p}, others...) {
		q.waitFor(fmt.Sprintf("the text from %s", p.name), arrived)
	}
	if s := p.snapshot(); s.Input != "" {
		p.c.fatalf("%s: #chat-input holds %s after #chat-send, want it empty", p.name, pageText(s.Input))
	}
}

// leave clicks #chat-leave and waits for the close.
func (p *chatTab) leave() {
	p.c.t.Helper()
	p.do("click #chat-leave", chromedp.Click(chromedp.ID("chat-leave")))
	p.waitFor("the close", `wskitChat.closed !== null`)
	s := p.snapshot()
	problems := s.wantState("closed", "left: 1000")
	if c := s.Closed; c == nil || c.Code != 1000 || !c.WasClean {
		problems = append(problems, fmt.Sprintf("wskitChat.closed %+v, want code 1000 and wasClean", c))
	}
	p.c.check(p.name+" left", problems)
}

// badRoom types a room name that the server refuses into #chat-room and
// clicks #chat-join: the browser reports 1006 only, and the panel says what
// a room's name may be.
func (p *chatTab) badRoom(room string) {
	p.c.t.Helper()
	p.do("type a room and click #chat-join",
		chromedp.SendKeys(chromedp.ID("chat-room"), room),
		chromedp.WaitEnabled(chromedp.ID("chat-join")), chromedp.Click(chromedp.ID("chat-join")))
	p.waitFor("the refusal's explanation", `wskitChat.refusal !== null`)
	s := p.snapshot()
	// A plain GET of /chat/{room} is refused before the room is looked at.
	problems := s.wantState("closed", "refused: HTTP 426 Upgrade Required")
	if c := s.Closed; c == nil || c.Code != 1006 {
		problems = append(problems, fmt.Sprintf("wskitChat.closed %+v, want 1006", c))
	}
	want := "a room's name is 1 to 64 letters, digits, '-', '_' or '.'"
	if n := len(s.Log); n == 0 || s.Log[n-1] != (demoLogEntry{"info", want}) {
		problems = append(problems, fmt.Sprintf("#chat-log does not end with the hint %q", want))
	}
	p.c.check(p.name+" asked for room "+room, problems)
}

// want returns what differs from a tab whose chat is open and whose
// #chat-log holds entries, with the other panel untouched.
func (p *chatTab) want(entries ...demoLogEntry) []string {
	s := p.snapshot()
	var problems []string
	for _, pr := range s.wantState("open", "joined") {
		problems = append(problems, p.name+": "+pr)
	}
	for _, pr := range compareLog(s.Log, entries) {
		problems = append(problems, p.name+": "+pr)
	}
	if s.DemoState != "idle" || s.DemoLog != 0 {
		problems = append(problems, fmt.Sprintf("%s: the other panel is %q with %d #log entries, want idle and none", p.name, s.DemoState, s.DemoLog))
	}
	return problems
}

func (p *chatTab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.c.t.Helper()
	doStep(p.ctx, p.fatalf, what, actions...)
}

// waitFor waits until the JS expression predicate is truthy in the tab, for
// at most stepTimeout.
func (p *chatTab) waitFor(what, predicate string) {
	p.c.t.Helper()
	pollStep(p.ctx, p.fatalf, what, predicate)
}

// fatalf fails the test with the tab's name in front of the message.
func (p *chatTab) fatalf(format string, args ...any) {
	p.c.t.Helper()
	p.c.fatalf("%s: %s", p.name, fmt.Sprintf(format, args...))
}

func (p *chatTab) snapshot() *chatSnapshot {
	p.c.t.Helper()
	s, err := p.read()
	if err != nil {
		p.c.srv.reported.Store(true)
		p.c.t.Fatalf("%s: read the page: %v\nwskit serve's stderr:\n%s", p.name, err, p.c.srv.stderr.String())
	}
	return s
}

func (p *chatTab) read() (*chatSnapshot, error) {
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[*chatSnapshot](chatSnapshotJS))
	if err == nil && s == nil {
		err = errors.New("the snapshot script returned null")
	}
	return s, err
}

// check fails the test with the problems of a step, if any.
func (c *chatTest) check(step string, problems ...[]string) {
	c.t.Helper()
	var all []string
	for _, p := range problems {
		all = append(all, p...)
	}
	if len(all) > 0 {
		c.fatalf("%s:\n\t%s", step, strings.Join(all, "\n\t"))
	}
}

// fatalf fails the test with the message, what each tab's chat panel shows
// and the server's log.
func (c *chatTest) fatalf(format string, args ...any) {
	c.t.Helper()
	var b strings.Builder
	b.WriteString(fmt.Sprintf(format, args...))
	for _, p := range c.tabs {
		if s, err := p.read(); err != nil {
			fmt.Fprintf(&b, "\n%s: (could not read the page: %v)", p.name, err)
		} else {
			fmt.Fprintf(&b, "\n%s:\n%s", p.name, s)
		}
	}
	c.srv.reported.Store(true)
	c.t.Fatalf("%s\nwskit serve's stderr:\n%s", b.String(), c.srv.stderr.String())
}

// chatSnapshotJS reads what the chat panel shows into a chatSnapshot.
const chatSnapshotJS = `(() => {
	const $ = (id) => document.getElementById(id);
	const c = window.wskitChat;
	const enabled = {};
	for (const id of ["chat-join", "chat-leave", "chat-input", "chat-send"]) {
		enabled[id] = $(id) ? !$(id).disabled : false;
	}
	return {
		state: c ? c.state : "(no window.wskitChat)",
		status: $("chat-status") ? $("chat-status").textContent : "(no #chat-status)",
		statusState: $("chat-status") ? $("chat-status").dataset.state || "" : "",
		input: $("chat-input") ? $("chat-input").value : "",
		enabled: enabled,
		received: c ? c.received : [],
		closed: c ? c.closed : null,
		log: Array.from(document.querySelectorAll("#chat-log li"), (li) => ({ class: li.className, text: li.textContent })),
		demoState: window.wskitDemo ? wskitDemo.state : "(no window.wskitDemo)",
		demoLog: document.querySelectorAll("#log li").length,
	};
})()`

// chatSnapshot is what chatSnapshotJS returns.
type chatSnapshot struct {
	State       string          `json:"state"`
	Status      string          `json:"status"`
	StatusState string          `json:"statusState"`
	Input       string          `json:"input"`
	Enabled     map[string]bool `json:"enabled"`
	Received    []string        `json:"received"`
	Closed      *struct {
		Code     int    `json:"code"`
		Reason   string `json:"reason"`
		WasClean bool   `json:"wasClean"`
	} `json:"closed"`
	Log       []demoLogEntry `json:"log"`
	DemoState string         `json:"demoState"`
	DemoLog   int            `json:"demoLog"`
}

func (s *chatSnapshot) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\twskitChat.state %q, #chat-status %q (data-state %q), #chat-input %q\n",
		s.State, s.Status, s.StatusState, s.Input)
	fmt.Fprintf(&b, "\tenabled: %v\n", s.Enabled)
	fmt.Fprintf(&b, "\twskitChat.closed: %+v\n", s.Closed)
	fmt.Fprintf(&b, "\t#chat-log (%d entries):\n", len(s.Log))
	for _, e := range s.Log {
		fmt.Fprintf(&b, "\t\t%-8s %s\n", e.Class, pageText(e.Text))
	}
	return b.String()
}

// wantState returns what differs from a chat panel in state, whose
// #chat-status says status: while open, #chat-join is disabled and the
// others enabled; otherwise the other way around.
func (s *chatSnapshot) wantState(state, status string) []string {
	var problems []string
	if s.State != state || s.StatusState != state || s.Status != status {
		problems = append(problems, fmt.Sprintf("wskitChat.state %q, #chat-status %q (data-state %q); want %s, %q",
			s.State, s.Status, s.StatusState, state, status))
	}
	for _, id := range []string{"chat-join", "chat-leave", "chat-input", "chat-send"} {
		want := (id == "chat-join") != (state == "open")
		if s.Enabled[id] != want {
			problems = append(problems, fmt.Sprintf("#%s enabled %v, want %v", id, s.Enabled[id], want))
		}
	}
	return problems
}
