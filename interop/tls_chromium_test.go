package interop

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/poller"
)

// trustCert returns the flag that makes Chromium accept cert, and no
// other certificate that does not chain to its roots:
// --ignore-certificate-errors-spki-list with the SHA-256 of cert's public
// key, which Chromium honours with --user-data-dir (startBrowser sets it).
func trustCert(cert *x509.Certificate) chromedp.ExecAllocatorOption {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(sum[:]))
}

// chromiumTLSVersions are Chromium's names of the TLS versions, in a
// response's security details.
var chromiumTLSVersions = map[string]uint16{"TLS 1.3": tls.VersionTLS13, "TLS 1.2": tls.VersionTLS12}

// navigateTLS loads url in the tab of ctx and checks that it came over
// TLS 1.3, and returns the response's security details.
func navigateTLS(ctx context.Context, t *testing.T, url string) *network.SecurityDetails {
	t.Helper()
	nctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	resp, err := chromedp.Run(nctx, chromedp.NavigateResponse(url))
	if err != nil {
		t.Fatalf("navigate to %s: %v", url, err)
	}
	if resp.Status != http.StatusOK || resp.MimeType != "text/html" {
		t.Fatalf("GET %s: %d %s, %s; want 200 and an HTML page", resp.URL, resp.Status, resp.StatusText, resp.MimeType)
	}
	sd := resp.SecurityDetails
	if sd == nil {
		t.Fatalf("GET %s: no security details", url)
	}
	if sd.Protocol != "TLS 1.3" {
		t.Errorf("GET %s: Chromium used %s, want TLS 1.3", url, sd.Protocol)
	}
	t.Logf("%s over %s, %s, %s, certificate for %s", url, sd.Protocol, sd.KeyExchangeGroup, sd.Cipher, sd.SubjectName)
	return sd
}

// TestTLSChromium loads the page at / of the TLS server under test over
// https:// in headless Chromium, which trusts testCert (trustCert), and
// runs browserEchoJS in it against /echo over wss://, on each server
// variant: the texts of echoTexts and binary messages of echoSizes (up to
// 1 MiB) come back the same, checked by SHA-256, and the close with 1000
// is clean. Chromium speaks TLS 1.3, so on poll-events the session is on
// the loop path; the server must report it on its variant's engine and
// route kind.
func TestTLSChromium(t *testing.T) {
	chromium := findChromium(t)
	forEachVariantWith(t, withTLS(nil), func(t *testing.T, srv *echoServer) {
		ctx, _ := startBrowser(t, chromium, trustCert(testCert().Leaf))
		sd := navigateTLS(ctx, t, "https://"+srv.Addr+"/")
		before := len(srv.sessionInfos())
		in := browserInput{Path: "/echo", CloseReason: "chromium done", Sizes: echoSizes, StepMs: int(stepTimeout / time.Millisecond)}
		for _, tc := range echoTexts {
			in.Texts = append(in.Texts, tc.text)
		}
		arg, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		stepCtx, cancel := context.WithTimeout(ctx, 4*stepTimeout)
		defer cancel()
		res, err := chromedp.Run(stepCtx, chromedp.Evaluate[browserResult]("("+browserEchoJS+")("+string(arg)+")", chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("run the echo script in the page: %v", err)
		}
		if want := wssURL(srv.Addr, "/echo"); res.URL != want {
			t.Errorf("the page opened %s, want %s", res.URL, want)
		}
		sessions := srv.sessionInfos()
		if len(sessions) != before+1 {
			t.Fatalf("%d sessions opened on the server, want 1", len(sessions)-before)
		}
		checkServedAt(t, srv, sessions[before], chromiumTLSVersions[sd.Protocol], sd.Cipher, tls13)
		if len(res.Texts) != len(echoTexts) || len(res.Binaries) != len(echoSizes) {
			t.Fatalf("%d text and %d binary echoes, want %d and %d", len(res.Texts), len(res.Binaries), len(echoTexts), len(echoSizes))
		}
		for i, tc := range echoTexts {
			if got := res.Texts[i]; got.Type != "string" || got.Text == nil || *got.Text != tc.text {
				t.Errorf("text %s: echo is %s %s", tc.name, got.Type, describeText(got.Text))
			}
		}
		for i, n := range echoSizes {
			sum := sha256.Sum256(pattern(n))
			if got := res.Binaries[i]; got.Type != "ArrayBuffer" || got.Size != n || got.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("binary %d: echo is %s of %d bytes sha256 %s", n, got.Type, got.Size, got.SHA256)
			}
		}
		if res.Close == nil || res.Close.Code != int(frame.CloseNormal) || !res.Close.WasClean {
			t.Errorf("close event %+v, want code %d and wasClean", res.Close, frame.CloseNormal)
		}
	})
}

// TestTLSChromiumDemo builds the wskit command and runs `wskit serve
// -tls-self-signed -chat-replay 8` once per engine, reads the certificate
// it prints, and opens its demo page over https:// in two tabs of a
// headless Chromium that trusts that certificate (trustCert). Through
// window.wskitDemo the first tab connects over wss:// to /events (the
// Events echo: on -engine poll over TLS 1.3, the loop path) and then to
// /echo (a default session, served by net/http over TLS), sends a text and
// 300 known bytes on each, gets them back, and disconnects with 1000.
// Through window.wskitChat both tabs join /chat (an Events route too): a
// text from each tab reaches both, in order, and both leave with 1000.
// SIGINT must then stop the server with status 0 and no WARN or ERROR in
// its log.
func TestTLSChromiumDemo(t *testing.T) {
	chromium := findChromium(t)
	bin := buildWskit(t)
	for _, engine := range []string{"std", "poll"} {
		t.Run(engine, func(t *testing.T) {
			if engine == "poll" && !poller.Supported {
				t.Skip("the poll engine is not supported on this platform")
			}
			testTLSDemo(t, chromium, bin, engine)
		})
	}
}

func testTLSDemo(t *testing.T, chromium, bin, engine string) {
	srv := startDemoServer(t, bin, engine, "-tls-self-signed", "-chat-replay", "8")
	cert := demoCertificate(t, srv)
	ctx, closeBrowser := startBrowser(t, chromium, trustCert(cert))
	second := newTab(t, ctx)
	fatalf := func(format string, args ...any) {
		t.Helper()
		srv.reported.Store(true)
		t.Fatalf("%s\nwskit serve's stderr:\n%s", fmt.Sprintf(format, args...), srv.stderr.String())
	}
	for _, tab := range []context.Context{ctx, second} {
		navigateTLS(tab, t, srv.page)
		pollStep(tab, fatalf, "the page's script", `window.wskitDemo !== undefined && wskitDemo.state === "idle"`)
	}

	start := time.Now()
	for _, path := range []string{"/events", "/echo"} {
		demoEchoTLS(ctx, t, fatalf, srv, path)
	}
	demoChatTLS(t, fatalf, srv, ctx, second)
	t.Logf("drove the page over wss:// in %v", time.Since(start).Round(time.Millisecond))

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
	if problems := srv.sessionLog("/echo", `code=1000 reason=""`); len(problems) > 0 {
		srv.reported.Store(true)
		t.Errorf("%s\nwskit serve's stderr:\n%s", strings.Join(problems, "; "), log)
	}
}

// demoCertificate returns the certificate that `wskit serve
// -tls-self-signed` printed on its stderr before it logged its address.
func demoCertificate(t *testing.T, srv *demoServer) *x509.Certificate {
	t.Helper()
	out := srv.stderr.String()
	i := strings.Index(out, "-----BEGIN CERTIFICATE-----")
	if i < 0 {
		srv.reported.Store(true)
		t.Fatalf("wskit serve -tls-self-signed printed no certificate; its stderr:\n%s", out)
	}
	block, _ := pem.Decode([]byte(out[i:]))
	if block == nil {
		t.Fatalf("the certificate wskit serve printed is not PEM:\n%s", out[i:])
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("the certificate wskit serve printed: %v", err)
	}
	return cert
}

// demoEchoTLS drives wskitDemo in the tab of ctx: it connects to path,
// sends a text and 300 known bytes, reads them back, and disconnects.
func demoEchoTLS(ctx context.Context, t *testing.T, fatalf func(string, ...any), srv *demoServer, path string) {
	t.Helper()
	text := "over wss:// to " + path + ", " + echoTexts[2].text
	known := pattern(300)
	doStep(ctx, fatalf, "connect to "+path, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`wskitDemo.connect(%q), undefined`, path)))
	pollStep(ctx, fatalf, "the session to "+path+" to open", `wskitDemo.state === "open"`)
	doStep(ctx, fatalf, "send on "+path, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`wskitDemo.sendText(%q), wskitDemo.sendBinary(Uint8Array.from(%s)), undefined`, text, jsBytes(known))))
	pollStep(ctx, fatalf, "the echoes on "+path, `wskitDemo.received.length >= 2`)
	doStep(ctx, fatalf, "disconnect from "+path, chromedp.Evaluate[chromedp.Void](`wskitDemo.disconnect(), undefined`))
	pollStep(ctx, fatalf, "the close of "+path, `wskitDemo.closed !== null`)

	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.Evaluate[*demoSnapshot](demoSnapshotJS))
	if err != nil || s == nil {
		fatalf("read the page: %v", err)
	}
	want := []demoMessage{{"text", text}, {"binary", hex.EncodeToString(known)}}
	problems := compareMessages("wskitDemo.sent", s.Sent, want)
	problems = append(problems, compareMessages("wskitDemo.received", s.Received, want)...)
	problems = append(problems, s.wantClosed(1000, "")...)
	// #log keeps the sessions before: this one's starts at its last
	// "connecting to".
	connecting := ""
	for _, e := range s.Log {
		if strings.HasPrefix(e.Text, "connecting to ") {
			connecting = e.Text
		}
	}
	if want := "connecting to wss://" + srv.addr + path; connecting != want {
		problems = append(problems, fmt.Sprintf("#log says %q, want %q", connecting, want))
	}
	if len(problems) > 0 {
		fatalf("%s over wss://:\n\t%s\nthe page:\n%s", path, strings.Join(problems, "\n\t"), s)
	}
}

// demoChatTLS drives wskitChat in two tabs: both join /chat, each sends a
// text that reaches both, in order, then both leave.
func demoChatTLS(t *testing.T, fatalf func(string, ...any), srv *demoServer, tabs ...context.Context) {
	t.Helper()
	texts := []string{"from tab 1 over wss://", "from tab 2 over wss://, " + echoTexts[2].text}
	for i, tab := range tabs {
		doStep(tab, fatalf, fmt.Sprintf("tab %d joins /chat", i+1), chromedp.Evaluate[chromedp.Void](`wskitChat.join(""), undefined`))
		pollStep(tab, fatalf, fmt.Sprintf("tab %d's greeting", i+1), `wskitChat.state === "open" && wskitChat.received.length >= 1`)
	}
	for i, text := range texts {
		doStep(tabs[i], fatalf, fmt.Sprintf("tab %d sends", i+1), chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`wskitChat.send(%q), undefined`, text)))
		for j, tab := range tabs {
			pollStep(tab, fatalf, fmt.Sprintf("text %d in tab %d", i+1, j+1), fmt.Sprintf(`wskitChat.received.length >= %d`, 2+i))
		}
	}
	want := append([]string{chatGreeting}, texts...)
	for i, tab := range tabs {
		doStep(tab, fatalf, fmt.Sprintf("tab %d leaves", i+1), chromedp.Evaluate[chromedp.Void](`wskitChat.leave(), undefined`))
		pollStep(tab, fatalf, fmt.Sprintf("tab %d's close", i+1), `wskitChat.closed !== null`)
		sctx, cancel := context.WithTimeout(tab, stepTimeout)
		got, err := chromedp.Run(sctx, chromedp.Evaluate[chatState](`({received: wskitChat.received, closed: wskitChat.closed})`))
		cancel()
		if err != nil {
			fatalf("read tab %d's chat: %v", i+1, err)
		}
		if strings.Join(got.Received, "\n") != strings.Join(want, "\n") || got.Closed == nil || got.Closed.Code != 1000 || !got.Closed.WasClean {
			fatalf("tab %d's chat over wss:// got %q, closed %+v; want %q and a clean 1000", i+1, got.Received, got.Closed, want)
		}
	}
}

// chatState is what demoChatTLS reads of wskitChat.
type chatState struct {
	Received []string `json:"received"`
	Closed   *struct {
		Code     int    `json:"code"`
		Reason   string `json:"reason"`
		WasClean bool   `json:"wasClean"`
	} `json:"closed"`
}
