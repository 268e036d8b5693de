package interop

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// demoViewport is a screen size the demo page must suit.
type demoViewport struct {
	name          string
	width, height int64
	mobile        bool
}

var demoViewports = []demoViewport{
	{"phone", 390, 844, true},
	{"desktop", 1280, 900, false},
}

// TestChromiumDemoLayout opens the demo page served by `wskit serve` in
// headless Chromium at a phone's size (390×844, mobile) and a desktop's
// (1280×900). At both the page fits the width: no horizontal scrolling, no
// control cut off on the right. On the desktop the echo and chat panels stand
// side by side and both are whole on the screen; on the phone one comes
// above the other. The intro names every endpoint, /events too.
//
// At each size it opens a session to /echo, sends a text and the same text
// as binary, joins the chat and says something, waits for a few snapshots
// on the live panel, then takes a screenshot,
// saved in the test's temporary directory (logged with -v). With
// WSKIT_DEMO_SCREENSHOTS=DIR they are copied to DIR too, with demo.png, the
// desktop's at three quarters of its size, which is the README's picture,
// docs/img/demo.png.
func TestChromiumDemoLayout(t *testing.T) {
	chromium := findChromium(t)
	bin := buildWskit(t)
	srv := startDemoServer(t, bin, "std")
	ctx, closeBrowser := startBrowser(t, chromium)
	dir := t.TempDir()
	keep := os.Getenv("WSKIT_DEMO_SCREENSHOTS")

	for _, v := range demoViewports {
		t.Run(v.name, func(t *testing.T) {
			p := &demoPage{t: t, ctx: ctx, srv: srv}
			opts := []chromedp.EmulateViewportOption{chromedp.EmulatePortrait}
			if v.mobile {
				opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch)
			}
			p.do(fmt.Sprintf("set the viewport to %d×%d", v.width, v.height), chromedp.EmulateViewport(v.width, v.height, opts...))
			p.open(srv.page)

			problems := p.layout().check(v)

			// Some traffic, for the screenshot and for the layout with
			// entries in the logs.
			p.connect("/echo")
			p.do("send a text and its bytes",
				chromedp.SendKeys(chromedp.ID("input"), "hello from the "+v.name),
				chromedp.Click(chromedp.ID("send")),
				chromedp.SendKeys(chromedp.ID("input"), "bytes ✓"),
				chromedp.Click(chromedp.ID("sendBinary")))
			p.waitFor("the echoes", `wskitDemo.received.length >= 2`)
			p.do("join the chat", chromedp.Click(chromedp.ID("chat-join")))
			p.waitFor("the greeting", `wskitChat.state === "open" && wskitChat.received.length >= 1`)
			p.do("say something in the chat",
				chromedp.SendKeys(chromedp.ID("chat-input"), "hi, everyone"),
				chromedp.Click(chromedp.ID("chat-send")))
			p.waitFor("the chat text", `wskitChat.received.length >= 2`)
			p.waitFor("a few snapshots on the live panel", `wskitStats.samples.length >= 3 && wskitStats.draws > 0`)
			p.do("scroll to the top", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0), undefined`))
			for _, pr := range p.layout().check(v) {
				problems = append(problems, "with messages: "+pr)
			}

			shot := p.screenshot(chromedp.CaptureScreenshot())
			file := filepath.Join(dir, "demo-"+v.name+".png")
			writeFile(t, file, shot)
			t.Logf("screenshot at %d×%d: %s", v.width, v.height, file)
			if keep != "" {
				writeFile(t, filepath.Join(keep, "demo-"+v.name+".png"), shot)
				if !v.mobile {
					writeFile(t, filepath.Join(keep, "demo.png"), p.screenshot(scaledScreenshot(v.width, v.height, 0.75)))
				}
			}

			p.do("leave the chat and disconnect", chromedp.Click(chromedp.ID("chat-leave")), chromedp.Click(chromedp.ID("disconnect")))
			p.waitFor("both closes", `wskitChat.closed !== null && wskitDemo.closed !== null`)
			p.check(fmt.Sprintf("the page at %d×%d", v.width, v.height), problems)
		})
	}
	stopLivePanel(t, ctx, srv)
	if err := closeBrowser(); err != nil {
		t.Fatalf("close the browser: %v", err)
	}
	srv.stop(t)
}

// demoLayoutJS measures the demo page.
const demoLayoutJS = `(() => {
	const box = (el) => {
		const b = el.getBoundingClientRect();
		return { top: b.top, bottom: b.bottom, left: b.left, right: b.right };
	};
	const boxes = {};
	for (const el of document.querySelectorAll("section, input, button, .log, canvas, #status, #chat-status, #stats-status")) {
		boxes[el.id || el.className] = box(el);
	}
	return {
		innerWidth: window.innerWidth,
		innerHeight: window.innerHeight,
		scrollWidth: document.documentElement.scrollWidth,
		intro: (document.querySelector("p.lead") || { textContent: "(no p.lead)" }).textContent,
		boxes: boxes,
	};
})()`

// demoLayout is what demoLayoutJS returns.
type demoLayout struct {
	InnerWidth  int64              `json:"innerWidth"`
	InnerHeight int64              `json:"innerHeight"`
	ScrollWidth int64              `json:"scrollWidth"`
	Intro       string             `json:"intro"`
	Boxes       map[string]pageBox `json:"boxes"`
}

// pageBox is an element's bounding box, in CSS pixels from the viewport's
// top left corner.
type pageBox struct {
	Top, Bottom, Left, Right float64
}

func (p *demoPage) layout() *demoLayout {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	l, err := chromedp.Run(ctx, chromedp.Evaluate[*demoLayout](demoLayoutJS))
	if err != nil || l == nil {
		p.fatalf("measure the page: %v", err)
	}
	return l
}

// check returns what is wrong with the layout at v.
func (l *demoLayout) check(v demoViewport) []string {
	var problems []string
	// A phone's browser widens its layout viewport to fit a page that does
	// not fit, and shows it zoomed out.
	if l.InnerWidth != v.width || l.InnerHeight != v.height {
		problems = append(problems, fmt.Sprintf("the page is laid out %d×%d on a screen of %d×%d: it does not fit", l.InnerWidth, l.InnerHeight, v.width, v.height))
	}
	if l.ScrollWidth > l.InnerWidth {
		problems = append(problems, fmt.Sprintf("the page is %d px wide in a viewport of %d: it scrolls sideways", l.ScrollWidth, l.InnerWidth))
	}
	for _, id := range []string{"echo-panel", "chat-panel", "path", "connect", "disconnect", "input", "send", "sendBinary", "clear",
		"log", "status", "chat-room", "chat-join", "chat-leave", "chat-status", "chat-log", "chat-input", "chat-send"} {
		b, ok := l.Boxes[id]
		switch {
		case !ok:
			problems = append(problems, "no #"+id)
		case b.Left < 0 || b.Right > float64(l.InnerWidth):
			problems = append(problems, fmt.Sprintf("#%s spans %.0f to %.0f px, beyond the viewport's width of %d", id, b.Left, b.Right, l.InnerWidth))
		}
	}
	for _, route := range []string{"/echo", "/events", "/hello", "/raw", "/chat", "/stats"} {
		if !strings.Contains(l.Intro, route) {
			problems = append(problems, fmt.Sprintf("the intro does not name %s: %q", route, l.Intro))
		}
	}
	echo, chat := l.Boxes["echo-panel"], l.Boxes["chat-panel"]
	if v.mobile {
		if chat.Top < echo.Bottom {
			problems = append(problems, fmt.Sprintf("on a phone the chat panel (top %.0f) does not come below the echo panel (bottom %.0f)", chat.Top, echo.Bottom))
		}
		return problems
	}
	if chat.Left < echo.Right {
		problems = append(problems, fmt.Sprintf("the panels are not side by side: echo %+v, chat %+v", echo, chat))
	}
	for _, id := range []string{"echo-panel", "chat-panel", "log", "chat-log", "send", "chat-send"} {
		if b := l.Boxes[id]; b.Top < 0 || b.Bottom > float64(l.InnerHeight) {
			problems = append(problems, fmt.Sprintf("#%s spans %.0f to %.0f px, beyond the viewport's height of %d", id, b.Top, b.Bottom, l.InnerHeight))
		}
	}
	return problems
}

// screenshot runs a screenshot action and returns the PNG.
func (p *demoPage) screenshot(a chromedp.Action[[]byte]) []byte {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, a)
	if err != nil || len(png) == 0 {
		p.fatalf("take a screenshot: %v (%d bytes)", err, len(png))
	}
	return png
}

// scaledScreenshot takes a screenshot of the viewport, width×height CSS
// pixels, at scale.
func scaledScreenshot(width, height int64, scale float64) chromedp.Action[[]byte] {
	return func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
		r, err := cdp.Call(ctx, t, page.CaptureScreenshot, page.CaptureScreenshotParams{
			Clip: &page.Viewport{Width: float64(width), Height: float64(height), Scale: scale},
		})
		if err != nil {
			return nil, err
		}
		return r.Data, nil
	}
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
