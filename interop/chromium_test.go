package interop

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/wskit/wskit"
	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/wstest"
	"github.com/wskit/wskit/poller"
)

// browserOpenJS opens input.path as a WebSocket from a page script and
// defines next(what), which returns the next message, and closed, which
// settles on the close event (closeEvent). The script around it defines
// withTimeout.
const browserOpenJS = `	const url = new URL(input.path, location.href);
	url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
	const ws = new WebSocket(url.href);
	ws.binaryType = "arraybuffer";
	const inbox = [];
	let waiting = null;
	let closeEvent = null;
	ws.onmessage = (e) => {
		if (waiting) { const w = waiting; waiting = null; w.resolve(e.data); } else inbox.push(e.data);
	};
	const closed = new Promise((resolve) => {
		ws.onclose = (e) => {
			closeEvent = { code: e.code, reason: e.reason, wasClean: e.wasClean };
			if (waiting) { const w = waiting; waiting = null; w.reject(new Error("closed while waiting for a message: " + JSON.stringify(closeEvent))); }
			resolve(closeEvent);
		};
	});
	const next = (what) => withTimeout(new Promise((resolve, reject) => {
		if (inbox.length > 0) resolve(inbox.shift());
		else if (closeEvent) reject(new Error("closed: " + JSON.stringify(closeEvent)));
		else waiting = { resolve, reject };
	}), what);
	await withTimeout(new Promise((resolve, reject) => {
		ws.onopen = resolve;
		ws.onerror = () => reject(new Error("WebSocket error before open"));
	}), "open of " + url.href);
`

// browserEchoJS is an async function that the test calls in the page: it
// opens its own WebSocket to input.path on the page's origin, echoes
// input.texts and binary messages (ArrayBuffer) of input.sizes bytes, closes
// with 1000 and input.closeReason, and returns what it saw. It does not use
// anything that the page defines, so any same-origin page will do.
const browserEchoJS = `async (input) => {
	const stepMs = input.stepMs;
	const pattern = (n) => {
		const a = new Uint8Array(n);
		for (let i = 0; i < n; i++) a[i] = (i * 31 + 7) & 0xff;
		return a;
	};
	const sha256 = async (buf) => Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", buf)),
		(b) => b.toString(16).padStart(2, "0")).join("");
	const typeName = (d) => d instanceof ArrayBuffer ? "ArrayBuffer" : d instanceof Blob ? "Blob" : typeof d;
	const withTimeout = (p, what) => new Promise((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error("no " + what + " within " + stepMs + " ms")), stepMs);
		p.then((v) => { clearTimeout(timer); resolve(v); }, (e) => { clearTimeout(timer); reject(e); });
	});
	if (!window.isSecureContext || !crypto.subtle) throw new Error("the page is not a secure context: no crypto.subtle");

` + browserOpenJS + `
	const out = { url: url.href, origin: location.origin, extensions: ws.extensions, protocol: ws.protocol,
		texts: [], binaries: [], close: null };
	for (const s of input.texts) {
		ws.send(s);
		const d = await next("echo of a text");
		out.texts.push({ type: typeName(d), text: typeof d === "string" ? d : null });
	}
	for (const n of input.sizes) {
		ws.send(pattern(n).buffer);
		const d = await next("echo of " + n + " bytes");
		const isBuf = d instanceof ArrayBuffer;
		out.binaries.push({ type: typeName(d), size: isBuf ? d.byteLength : -1,
			sha256: isBuf ? await sha256(d) : "" });
	}
	ws.close(1000, input.closeReason);
	out.close = await withTimeout(closed, "close event");
	return out;
}`

// browserInput is the argument of browserEchoJS.
type browserInput struct {
	Path        string   `json:"path"`
	Texts       []string `json:"texts"`
	Sizes       []int    `json:"sizes"`
	CloseReason string   `json:"closeReason"`
	StepMs      int      `json:"stepMs"`
}

// browserResult is what browserEchoJS returns.
type browserResult struct {
	URL        string `json:"url"`
	Origin     string `json:"origin"`
	Extensions string `json:"extensions"`
	Protocol   string `json:"protocol"`
	Texts      []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	} `json:"texts"`
	Binaries []struct {
		Type   string `json:"type"`
		Size   int    `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"binaries"`
	Close *struct {
		Code     int    `json:"code"`
		Reason   string `json:"reason"`
		WasClean bool   `json:"wasClean"`
	} `json:"close"`
}

// TestChromium loads the page at / of the server under test in headless
// Chromium, and runs browserEchoJS in it against /echo, on each server
// variant. Each variant gets a browser of its own, started after its server
// and closed before it.
func TestChromium(t *testing.T) {
	chromium := findChromium(t)
	forEachVariant(t, func(t *testing.T, srv *echoServer) { testChromium(t, chromium, srv) })
}

func testChromium(t *testing.T, chromium string, srv *echoServer) {
	ctx, _ := startBrowser(t, chromium)
	version, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.userAgent`))
	if err != nil {
		t.Fatalf("read the user agent: %v", err)
	}
	t.Logf("user agent: %s", version)
	if p := chromedp.FromContext(ctx).Browser.Process(); p != nil {
		if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.Pid)); err == nil {
			t.Logf("command line: %s", strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " "))
		}
	}

	stepCtx, stepCancel := context.WithTimeout(ctx, 4*stepTimeout)
	defer stepCancel()
	resp, err := chromedp.Run(stepCtx, chromedp.NavigateResponse(srv.URL+"/"))
	if err != nil {
		t.Fatalf("navigate to %s/: %v", srv.URL, err)
	}
	if resp.Status != http.StatusOK || resp.MimeType != "text/html" {
		t.Fatalf("GET %s: %d %s, %s; want 200 and an HTML page", resp.URL, resp.Status, resp.StatusText, resp.MimeType)
	}

	in := browserInput{
		Path:        "/echo",
		CloseReason: "chromium done",
		Sizes:       echoSizes,
		StepMs:      int(stepTimeout / time.Millisecond),
	}
	for _, tc := range echoTexts {
		in.Texts = append(in.Texts, tc.text)
	}
	arg, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	res, err := chromedp.Run(stepCtx, chromedp.Evaluate[browserResult](
		"("+browserEchoJS+")("+string(arg)+")", chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("run the echo script in the page: %v", err)
	}

	t.Logf("browser at %s used %s, extensions %q", res.Origin, res.URL, res.Extensions)
	if res.Origin != srv.URL {
		t.Errorf("page origin %q, want %q", res.Origin, srv.URL)
	}
	if extensionNames(res.Extensions) != serverExtensions {
		t.Errorf("ws.extensions %q, want %q", res.Extensions, serverExtensions)
	}
	if len(res.Texts) != len(echoTexts) {
		t.Fatalf("%d text echoes, want %d", len(res.Texts), len(echoTexts))
	}
	for i, tc := range echoTexts {
		got := res.Texts[i]
		if got.Type != "string" || got.Text == nil || *got.Text != tc.text {
			t.Errorf("text %s: echo is %s %s, want string %s", tc.name, got.Type, describeText(got.Text), describeText(&tc.text))
		}
	}
	if len(res.Binaries) != len(echoSizes) {
		t.Fatalf("%d binary echoes, want %d", len(res.Binaries), len(echoSizes))
	}
	for i, n := range echoSizes {
		sum := sha256.Sum256(pattern(n))
		want := hex.EncodeToString(sum[:])
		got := res.Binaries[i]
		if got.Type != "ArrayBuffer" || got.Size != n || got.SHA256 != want {
			t.Errorf("binary %d: echo is %s of %d bytes sha256 %s, want ArrayBuffer of %d bytes sha256 %s",
				n, got.Type, got.Size, got.SHA256, n, want)
		}
	}
	if res.Close == nil || res.Close.Code != int(frame.CloseNormal) || !res.Close.WasClean {
		t.Errorf("close event %+v, want code %d and wasClean", res.Close, frame.CloseNormal)
	}
}

// findChromium returns the browser to run: $WSKIT_CHROMIUM if set, else
// Debian's chromium binary, else chromium or chromium-browser on the PATH.
//
// Debian's /usr/bin/chromium is a shell script that adds flags of its own
// (from /etc/chromium.d), so the real binary behind it comes first.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("WSKIT_CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			missingPeer(t, "WSKIT_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	for _, p := range []string{"/usr/lib/chromium/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	missingPeer(t, "chromium is not installed (apt-get install chromium)")
	return ""
}

func describeText(s *string) string {
	switch {
	case s == nil:
		return "null"
	case len(*s) <= 40:
		return fmt.Sprintf("%q", *s)
	default:
		return fmt.Sprintf("%q... (%d bytes)", (*s)[:20], len(*s))
	}
}

// browserLog returns the last lines of the browser's output, without the
// errors about D-Bus that Chromium prints where no D-Bus runs (CI, containers).
func browserLog(out string) string {
	const keep = 40
	var lines []string
	for line := range strings.Lines(out) {
		if !strings.Contains(line, "dbus/") {
			lines = append(lines, line)
		}
	}
	if len(lines) > keep {
		lines = append([]string{fmt.Sprintf("(%d lines before)\n", len(lines)-keep)}, lines[len(lines)-keep:]...)
	}
	return strings.Join(lines, "")
}

// startBrowser starts headless Chromium with a fresh profile and returns the
// context of its first tab, and a func that closes the browser and waits for
// it to exit. A cleanup closes it too, and logs its output when the test
// failed. TestChromium and TestChromiumDemoPage both use it, so they run the
// browser the same way (see docs/testing.md); the TLS tests add a flag with
// extra, to trust the server's certificate.
func startBrowser(t *testing.T, chromium string, extra ...chromedp.ExecAllocatorOption) (context.Context, func() error) {
	t.Helper()
	output := new(wstest.SyncBuffer)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		// Exactly these flags; chromedp adds --remote-debugging-pipe and the
		// first page, about:blank. Not the helpers chromedp.Headless and
		// chromedp.DisableGPU: they add flags of their own.
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(output),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(opts, extra...)...)
	// Cleanups run last-in first-out: the browser closes, then the allocator
	// waits for it and the output is logged, then t.TempDir removes the
	// profile.
	t.Cleanup(func() {
		cancelAlloc()
		if t.Failed() {
			t.Logf("browser output (without the D-Bus errors of a machine without D-Bus):\n%s", browserLog(output.String()))
		}
	})
	ctx, cancel := chromedp.NewContext(allocCtx)
	closeBrowser := sync.OnceValue(func() error {
		defer cancel()
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		return chromedp.Cancel(cctx)
	})
	t.Cleanup(func() {
		if err := closeBrowser(); err != nil {
			t.Logf("closing the browser: %v", err)
		}
	})

	// The first Do starts the browser. A timeout on its context would stop
	// the browser when it fires, later too, so a timer bounds the start
	// instead, and the steps after it get a context with a timeout.
	start := time.Now()
	watchdog := time.AfterFunc(2*stepTimeout, cancelAlloc)
	err := chromedp.Do(ctx)
	if !watchdog.Stop() {
		t.Fatalf("start %s: not ready within %v (%v)", chromium, 2*stepTimeout, err)
	}
	if err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	t.Logf("%s started in %v", chromium, time.Since(start).Round(time.Millisecond))
	return ctx, closeBrowser
}

// browserMessagesJS is an async function that the test calls in the page: it
// opens its own WebSocket to input.path on the page's origin, echoes
// input.messages one at a time, then all at once (every send before the
// first echo is read), closes with 1000 and input.closeReason, and returns
// ws.extensions and, for each echo, whether it is the message sent (type and
// bytes) and its SHA-256. A text message comes as input's text, a binary one
// as base64.
const browserMessagesJS = `async (input) => {
	const stepMs = input.stepMs;
	const sha256 = async (buf) => Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", buf)),
		(b) => b.toString(16).padStart(2, "0")).join("");
	const typeName = (d) => d instanceof ArrayBuffer ? "ArrayBuffer" : d instanceof Blob ? "Blob" : typeof d;
	const withTimeout = (p, what) => new Promise((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error("no " + what + " within " + stepMs + " ms")), stepMs);
		p.then((v) => { clearTimeout(timer); resolve(v); }, (e) => { clearTimeout(timer); reject(e); });
	});
	const fromBase64 = (s) => { const bin = atob(s); const a = new Uint8Array(bin.length);
		for (let i = 0; i < bin.length; i++) a[i] = bin.charCodeAt(i); return a; };
	const sameBytes = (a, b) => { if (a.length !== b.length) return false;
		for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false; return true; };
	if (!window.isSecureContext || !crypto.subtle) throw new Error("the page is not a secure context: no crypto.subtle");
	const messages = input.messages.map((m) => ({ name: m.name, binary: m.binary,
		data: m.binary ? fromBase64(m.base64) : m.text }));

` + browserOpenJS + `
	const out = { url: url.href, origin: location.origin, extensions: ws.extensions, echoes: [], close: null };
	const record = async (phase, m, d) => {
		const type = typeName(d);
		let same = false, bytes = null;
		if (m.binary && d instanceof ArrayBuffer) {
			bytes = new Uint8Array(d);
			same = sameBytes(bytes, m.data);
		} else if (!m.binary && typeof d === "string") {
			bytes = new TextEncoder().encode(d);
			same = d === m.data;
		}
		out.echoes.push({ phase, name: m.name, type, same, size: bytes ? bytes.length : -1,
			sha256: bytes ? await sha256(bytes) : "" });
	};
	for (const m of messages) {
		ws.send(m.data);
		await record("one-by-one", m, await next("echo of " + m.name));
	}
	for (const m of messages) ws.send(m.data);
	for (const m of messages) await record("all-at-once", m, await next("echo of " + m.name + " (all at once)"));
	ws.close(1000, input.closeReason);
	out.close = await withTimeout(closed, "close event");
	return out;
}`

// browserMessagesInput is the argument of browserMessagesJS.
type browserMessagesInput struct {
	Path        string           `json:"path"`
	Messages    []browserMessage `json:"messages"`
	CloseReason string           `json:"closeReason"`
	StepMs      int              `json:"stepMs"`
}

type browserMessage struct {
	Name   string `json:"name"`
	Binary bool   `json:"binary"`
	Text   string `json:"text"`
	Base64 string `json:"base64"`
}

// browserMessagesResult is what browserMessagesJS returns.
type browserMessagesResult struct {
	URL        string `json:"url"`
	Origin     string `json:"origin"`
	Extensions string `json:"extensions"`
	Echoes     []struct {
		Phase  string `json:"phase"`
		Name   string `json:"name"`
		Type   string `json:"type"`
		Same   bool   `json:"same"`
		Size   int    `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"echoes"`
	Close *struct {
		Code     int    `json:"code"`
		Reason   string `json:"reason"`
		WasClean bool   `json:"wasClean"`
	} `json:"close"`
}

// browserEchoMessages runs browserMessagesJS in the page of ctx (which must
// be a page of the server's origin) against path, checks every echo and the
// close, and returns ws.extensions.
func browserEchoMessages(ctx context.Context, t *testing.T, path string, ms []wireMessage) string {
	t.Helper()
	in := browserMessagesInput{Path: path, CloseReason: "chromium done", StepMs: int(stepTimeout / time.Millisecond)}
	for _, m := range ms {
		bm := browserMessage{Name: m.Name, Binary: m.Binary}
		if m.Binary {
			bm.Base64 = base64.StdEncoding.EncodeToString(m.Data)
		} else {
			bm.Text = string(m.Data)
		}
		in.Messages = append(in.Messages, bm)
	}
	arg, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	stepCtx, cancel := context.WithTimeout(ctx, 4*stepTimeout)
	defer cancel()
	res, err := chromedp.Run(stepCtx, chromedp.Evaluate[browserMessagesResult](
		"("+browserMessagesJS+")("+string(arg)+")", chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("run the messages script in the page against %s: %v", path, err)
	}
	t.Logf("browser at %s used %s, extensions %q", res.Origin, res.URL, res.Extensions)
	if len(res.Echoes) != 2*len(ms) {
		t.Fatalf("%d echoes, want %d", len(res.Echoes), 2*len(ms))
	}
	for i, e := range res.Echoes {
		m := ms[i%len(ms)]
		sum := sha256.Sum256(m.Data)
		wantType := "string"
		if m.Binary {
			wantType = "ArrayBuffer"
		}
		if e.Name != m.Name || !e.Same || e.Type != wantType || e.Size != len(m.Data) || e.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s %s: echo is %s of %d bytes sha256 %s (same as sent: %v), want %s of %d bytes sha256 %x",
				e.Phase, e.Name, e.Type, e.Size, e.SHA256, e.Same, wantType, len(m.Data), sum)
		}
	}
	if res.Close == nil || res.Close.Code != int(frame.CloseNormal) || !res.Close.WasClean {
		t.Errorf("close event %+v, want code %d and wasClean", res.Close, frame.CloseNormal)
	}
	return res.Extensions
}

// chromiumDeflateConfigs are the server's permessage-deflate configurations
// that Chromium meets. Chromium offers
// "permessage-deflate; client_max_window_bits"; the zero value bounds its
// window at 13 bits.
var chromiumDeflateConfigs = []deflateServerConfig{
	{"default", codec.PerMessageDeflate{}, "permessage-deflate; client_max_window_bits=13"},
	{"full-client-window", codec.PerMessageDeflate{ClientMaxWindowBits: 15}, "permessage-deflate"},
	{"kept-compressor", codec.PerMessageDeflate{KeepCompressor: true}, "permessage-deflate; client_max_window_bits=13"},
	{"server-no-context-takeover", codec.PerMessageDeflate{ServerNoContextTakeover: true},
		"permessage-deflate; server_no_context_takeover; client_max_window_bits=13"},
	{"client-max-window-bits-10", codec.PerMessageDeflate{ClientMaxWindowBits: 10},
		"permessage-deflate; client_max_window_bits=10"},
	{"combined", codec.PerMessageDeflate{Level: 9, ServerNoContextTakeover: true, ClientNoContextTakeover: true,
		ServerMaxWindowBits: 9, ClientMaxWindowBits: 9},
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=9"},
}

// TestChromiumDeflate echoes deflateMessages between headless Chromium and
// the server under test with permessage-deflate installed, once per server
// variant and configuration (chromiumDeflateConfigs), through a
// countingProxy. ws.extensions in the browser and Session.Extensions() on
// the server must both be the configuration's answer, and the messages must
// have gone compressed both ways. Each variant starts one browser, which
// goes to each configuration's server in turn; the proxy's cleanup cuts the
// spare connection Chromium keeps to it before the server shuts down.
func TestChromiumDeflate(t *testing.T) {
	chromium := findChromium(t)
	ms := deflateMessages()
	for _, v := range serverVariants {
		t.Run(v.name, func(t *testing.T) {
			if v.engine == wskit.EnginePoll && !poller.Supported {
				t.Skip("the poll engine is not supported on this platform")
			}
			ctx, _ := startBrowser(t, chromium)
			for _, c := range chromiumDeflateConfigs {
				t.Run(c.name, func(t *testing.T) {
					srv := newEchoServer(t, v, c.configure)
					proxy := startProxy(t, srv.Addr)
					navCtx, cancel := context.WithTimeout(ctx, stepTimeout)
					defer cancel()
					if _, err := chromedp.Run(navCtx, chromedp.NavigateResponse(proxy.URL+"/")); err != nil {
						t.Fatalf("navigate to %s/: %v", proxy.URL, err)
					}
					before := len(srv.sessionExtensions())
					up0, down0 := proxy.counts()
					ext := browserEchoMessages(ctx, t, "/echo", ms)
					up, down := proxy.counts()
					wantExtensions(t, "ws.extensions in Chromium", ext, c.want)
					wantServerExtensions(t, srv, before, c.want, ext)
					wantCompressed(t, "Chromium → server", up-up0, ms, 2)
					wantCompressed(t, "server → Chromium", down-down0, ms, 2)
				})
			}
		})
	}
}
