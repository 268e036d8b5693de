package interop

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/wskit/wskit/poller"
)

// TestChromiumDashboard opens the demo page in headless Chromium at a
// phone's size (390×844) and a desktop's (1280×900) and watches its live
// panel, fed by /stats, while `wskit bench` puts echo load on the server:
// the panel connects by itself; the newest snapshot shows the load's
// sessions and messages each way; the charts are drawn again and the
// messages chart's pixels change; the page never gets wider than the
// screen, and on the desktop the panel is whole on the screen below the
// echo and chat panels. A screenshot at each size is saved in the test's
// temporary directory (logged with -v).
//
// Then the server is stopped and another started on its address: the panel
// says it reconnects, and does, and charts the new server's snapshots.
//
// With WSKIT_DEMO_SCREENSHOTS=DIR the screenshots go to DIR too, with
// dashboard.png: the desktop's after a longer run of varying load, which is
// docs/img/dashboard.png.
func TestChromiumDashboard(t *testing.T) {
	chromium := findChromium(t)
	bin := buildWskit(t)
	engine := "std"
	if poller.Supported {
		engine = "poll"
	}
	srv := startDemoServer(t, bin, engine)
	ctx, closeBrowser := startBrowser(t, chromium)
	dir := t.TempDir()
	keep := os.Getenv("WSKIT_DEMO_SCREENSHOTS")

	var p *demoPage
	for _, v := range demoViewports {
		t.Run(v.name, func(t *testing.T) {
			p = &demoPage{t: t, ctx: ctx, srv: srv}
			opts := []chromedp.EmulateViewportOption{chromedp.EmulatePortrait}
			if v.mobile {
				opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch)
			}
			p.do(fmt.Sprintf("set the viewport to %d×%d", v.width, v.height), chromedp.EmulateViewport(v.width, v.height, opts...))
			p.open(srv.page)
			p.waitFor("the live panel to connect", `wskitStats.state === "open"`)
			p.waitFor("a first snapshot drawn", `wskitStats.samples.length > 0 && wskitStats.draws > 0`)
			before := p.chartImage("stats-messages")
			draws := p.evalInt(`wskitStats.draws`)

			bench := startBench(t, bin, srv.addr, 16, 20000, 4*time.Second)
			p.waitFor("the load on the chart", fmt.Sprintf(`(() => {
				const s = wskitStats.samples[wskitStats.samples.length - 1];
				return s.sessions >= 16 && s.in.messagesPerSec > 0 && s.out.messagesPerSec > 0 &&
					s.in.bytesPerSec > 0 && s.out.bytesPerSec > 0 && wskitStats.draws > %d &&
					document.getElementById("stats-messages-now").textContent !== "";
			})()`, draws))
			if after := p.chartImage("stats-messages"); after == before {
				p.fatalf("the messages chart looks the same under load as before it")
			}
			p.check(fmt.Sprintf("the page at %d×%d under load", v.width, v.height), p.dashboardLayout().check(v))
			if v.mobile {
				p.do("scroll to the live panel", chromedp.Evaluate[chromedp.Void](`document.getElementById("stats-panel").scrollIntoView(), undefined`))
			}

			shot := p.screenshot(chromedp.CaptureScreenshot())
			file := filepath.Join(dir, "dashboard-"+v.name+".png")
			writeFile(t, file, shot)
			t.Logf("screenshot at %d×%d under load: %s", v.width, v.height, file)
			if keep != "" {
				writeFile(t, filepath.Join(keep, "dashboard-"+v.name+".png"), shot)
			}
			bench.wait(t)
		})
	}
	if t.Failed() {
		return
	}

	p.t = t
	if keep != "" {
		// For docs/img/dashboard.png: minutes of the chart with load that
		// rises and falls, and runs at the screenshot.
		for _, l := range []struct{ conns, rate int }{{50, 3000}, {200, 8000}, {100, 5000}} {
			startBench(t, bin, srv.addr, l.conns, l.rate, 40*time.Second).wait(t)
			time.Sleep(15 * time.Second)
		}
		b := startBench(t, bin, srv.addr, 300, 10000, 8*time.Second)
		time.Sleep(5 * time.Second)
		writeFile(t, filepath.Join(keep, "dashboard.png"), p.screenshot(chromedp.CaptureScreenshot()))
		b.wait(t)
	}

	// The server goes and another comes on its address.
	addr := srv.addr
	srv.stop(t)
	p.waitFor("the panel to see the server go", `wskitStats.state === "reconnecting"`)
	if status := p.evalString(`document.getElementById("stats-status").textContent`); !strings.Contains(status, "reconnecting") {
		p.fatalf("#stats-status says %q while the server is away", status)
	}
	n := p.evalInt(`wskitStats.samples.length`)
	srv = startDemoServer(t, bin, engine, "-addr", addr)
	p.srv = srv
	p.waitFor("the panel back with the new server", fmt.Sprintf(
		`wskitStats.state === "open" && wskitStats.opens >= 2 && wskitStats.samples.length > %d`, n))

	stopLivePanel(t, ctx, srv)
	if err := closeBrowser(); err != nil {
		t.Fatalf("close the browser: %v", err)
	}
	srv.stop(t)
}

// chartImage returns the canvas's pixels as a data URL.
func (p *demoPage) chartImage(id string) string {
	p.t.Helper()
	return p.evalString(fmt.Sprintf(`document.getElementById(%q).toDataURL()`, id))
}

func (p *demoPage) evalString(js string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.fatalf("evaluate %s: %v", js, err)
	}
	return s
}

func (p *demoPage) evalInt(js string) int {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](js))
	if err != nil {
		p.fatalf("evaluate %s: %v", js, err)
	}
	return n
}

// dashboardLayout measures the page with the live panel in it.
func (p *demoPage) dashboardLayout() *dashboardLayout {
	return &dashboardLayout{p.layout()}
}

type dashboardLayout struct{ *demoLayout }

// check returns what is wrong with the page at v: what the demo's layout
// check finds, the live panel's parts out of the viewport's width, and on
// the desktop the panel not whole on the screen.
func (l *dashboardLayout) check(v demoViewport) []string {
	problems := l.demoLayout.check(v)
	for _, id := range []string{"stats-panel", "stats-status", "stats-sessions", "stats-messages", "stats-bytes", "stats-rss", "stats-goroutines"} {
		b, ok := l.Boxes[id]
		switch {
		case !ok:
			problems = append(problems, "no #"+id)
		case b.Left < 0 || b.Right > float64(l.InnerWidth):
			problems = append(problems, fmt.Sprintf("#%s spans %.0f to %.0f px, beyond the viewport's width of %d", id, b.Left, b.Right, l.InnerWidth))
		case !v.mobile && (b.Top < 0 || b.Bottom > float64(l.InnerHeight)):
			problems = append(problems, fmt.Sprintf("#%s spans %.0f to %.0f px, beyond the viewport's height of %d", id, b.Top, b.Bottom, l.InnerHeight))
		}
	}
	if s := l.Boxes["stats-panel"]; s.Top < l.Boxes["echo-panel"].Bottom || s.Top < l.Boxes["chat-panel"].Bottom {
		problems = append(problems, "the live panel does not come below the echo and chat panels")
	}
	return problems
}

// benchRun is a `wskit bench` running.
type benchRun struct {
	cmd    *exec.Cmd
	out    bytes.Buffer
	done   chan struct{}
	err    error
	conns  int
	period time.Duration
}

// startBench runs the echo scenario of `wskit bench` with conns connections
// against /echo at addr for d, at most rate messages a second.
func startBench(t *testing.T, bin, addr string, conns, rate int, d time.Duration) *benchRun {
	t.Helper()
	b := &benchRun{done: make(chan struct{}), conns: conns, period: d}
	b.cmd = exec.Command(bin, "bench", "-scenario", "echo", "-c", fmt.Sprint(conns), "-d", d.String(),
		"-loops", "1", "-rate", fmt.Sprint(rate), "-url", "ws://"+addr+"/echo")
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.out
	b.cmd.WaitDelay = 5 * time.Second
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start wskit bench: %v", err)
	}
	go func() {
		b.err = b.cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() {
		select {
		case <-b.done:
		default:
			b.cmd.Process.Kill()
			<-b.done
		}
	})
	return b
}

// wait waits for the run to end and fails the test unless it succeeded.
func (b *benchRun) wait(t *testing.T) {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(b.period + 2*stepTimeout):
		t.Fatalf("wskit bench -c %d -d %v still runs", b.conns, b.period)
	}
	if b.err != nil {
		t.Fatalf("wskit bench -c %d -d %v: %v\n%s", b.conns, b.period, b.err, b.out.String())
	}
}

// stopLivePanel closes the live panel's session of the page in ctx and
// waits until each server has logged the close of every /stats session it
// opened: a browser closed with it open would leave it for the shutdown to
// cut with 1001.
func stopLivePanel(t *testing.T, ctx context.Context, srvs ...*demoServer) {
	t.Helper()
	doStep(ctx, t.Fatalf, "stop the live panel", chromedp.Evaluate[chromedp.Void](`wskitStats.stop(), undefined`))
	for _, s := range srvs {
		deadline := time.Now().Add(stepTimeout)
		for {
			log := s.stderr.String()
			opened := len(sessionLine("session open", "/stats").FindAllString(log, -1))
			closed := len(sessionLine("session closed", "/stats").FindAllString(log, -1))
			if opened == closed {
				break
			}
			if time.Now().After(deadline) {
				s.reported.Store(true)
				t.Fatalf("wskit serve logged %d /stats sessions open and %d closed; its stderr:\n%s", opened, closed, log)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
