package interop

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/wskit/wskit/poller"
)

// TestChromiumHTTP2Demo builds the wskit command and, once per engine,
// runs `wskit serve -tls-self-signed -http2` and loads its demo page in
// headless Chromium, which trusts the printed certificate (trustCert). The
// page must come over HTTP/2 (its navigation entry's nextHopProtocol is
// "h2"), and Chromium must then open the page's wss:// sessions to /echo,
// /events and /raw as RFC 8441 streams of that connection: through
// window.wskitDemo each sends a text and 300 known bytes, gets them back,
// and disconnects with 1000, and the server's log must show each session
// opened with proto=HTTP/2.0 and closed with 1000. The fallback runs the
// same page against `wskit serve -tls-self-signed` without -http2: the
// page comes over http/1.1, and the same sessions are HTTP/1.1 upgrades
// (proto=HTTP/1.1). SIGINT must stop each server with status 0 and no
// WARN or ERROR in its log.
func TestChromiumHTTP2Demo(t *testing.T) {
	chromium := findChromium(t)
	bin := buildWskit(t)
	for _, engine := range []string{"std", "poll"} {
		for _, h2 := range []bool{true, false} {
			name := engine + "/http2"
			if !h2 {
				name = engine + "/http1.1"
			}
			t.Run(name, func(t *testing.T) {
				if engine == "poll" && !poller.Supported {
					t.Skip("the poll engine is not supported on this platform")
				}
				testHTTP2Demo(t, chromium, bin, engine, h2)
			})
		}
	}
}

func testHTTP2Demo(t *testing.T, chromium, bin, engine string, h2 bool) {
	flags := []string{"-tls-self-signed"}
	wantPage, wantProto := "http/1.1", "HTTP/1.1"
	if h2 {
		flags = append(flags, "-http2")
		wantPage, wantProto = "h2", "HTTP/2.0"
	}
	srv := startDemoServer(t, bin, engine, flags...)
	if want := fmt.Sprintf("http2=%v", h2); !strings.Contains(srv.listening, want) {
		t.Errorf("the listening line lacks %s: %s", want, srv.listening)
	}
	cert := demoCertificate(t, srv)
	ctx, closeBrowser := startBrowser(t, chromium, trustCert(cert))
	fatalf := func(format string, args ...any) {
		t.Helper()
		srv.reported.Store(true)
		t.Fatalf("%s\nwskit serve's stderr:\n%s", fmt.Sprintf(format, args...), srv.stderr.String())
	}
	navigateTLS(ctx, t, srv.page)
	pollStep(ctx, fatalf, "the page's script", `window.wskitDemo !== undefined && wskitDemo.state === "idle"`)
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	proto, err := chromedp.Run(sctx, chromedp.Evaluate[string](`performance.getEntriesByType("navigation")[0].nextHopProtocol`))
	cancel()
	if err != nil {
		fatalf("read the page's nextHopProtocol: %v", err)
	}
	if proto != wantPage {
		fatalf("the page came over %q, want %q", proto, wantPage)
	}

	paths := []string{"/echo", "/events", "/raw"}
	for _, path := range paths {
		demoEchoTLS(ctx, t, fatalf, srv, path)
		// The server logs the close once the handler has returned, which
		// can be after the page saw the close.
		pollLog(t, fatalf, srv, "session closed", path)
	}
	t.Logf("page over %s, sessions over %s", proto, wantProto)

	if err := closeBrowser(); err != nil {
		t.Fatalf("close the browser: %v", err)
	}
	srv.stop(t)
	log := srv.stderr.String()
	var problems []string
	for _, path := range paths {
		opens := sessionLine("session open", path).FindAllString(log, -1)
		if len(opens) != 1 || !regexp.MustCompile(`\bproto=`+regexp.QuoteMeta(wantProto)+`( |$)`).MatchString(opens[0]) {
			problems = append(problems, fmt.Sprintf("%s: the server logged the opens %q, want one with proto=%s", path, opens, wantProto))
		}
		problems = append(problems, srv.sessionLog(path, "code=1000")...)
	}
	for _, bad := range []string{"level=WARN", "level=ERROR"} {
		if strings.Contains(log, bad) {
			problems = append(problems, bad+" in the log")
		}
	}
	if len(problems) > 0 {
		srv.reported.Store(true)
		t.Errorf("%s\nwskit serve's stderr:\n%s", strings.Join(problems, "\n"), log)
	}
}

// pollLog waits until the server has logged msg for a session to path.
func pollLog(t *testing.T, fatalf func(string, ...any), srv *demoServer, msg, path string) {
	t.Helper()
	re := sessionLine(msg, path)
	if !waitUntil(func() bool { return re.MatchString(srv.stderr.String()) }) {
		fatalf("wskit serve logged no %q for %s within %v", msg, path, stepTimeout)
	}
}
