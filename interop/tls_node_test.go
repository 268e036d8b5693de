package interop

import (
	"crypto/tls"
	"strconv"
	"testing"

	"github.com/wskit/wskit/frame"
)

// nodeTLSVersions are Node's names of the TLS versions, for echo.mjs's
// --max-tls and its report.
var nodeTLSVersions = map[uint16]string{tls.VersionTLS13: "TLSv1.3", tls.VersionTLS12: "TLSv1.2"}

// TestTLSNodeWS runs node/echo.mjs, ws on Node.js (its TLS is OpenSSL's),
// against the TLS server under test over wss://, on each server variant,
// over TLS 1.3 and TLS 1.2 (--max-tls): it trusts testCert through ws's ca
// option (--ca), so the server's certificate is verified. The echo mode
// echoes texts and binary messages up to 1 MiB, pings, and closes with
// 1000; the server-close mode reads /hello's text and its close. ws must
// report the TLS version asked for and a verified certificate, and the
// server each session on its variant's engine and route kind.
func TestTLSNodeWS(t *testing.T) {
	node := findNode(t)
	ca := testCertFile(t)
	forEachTLSVariant(t, nil, func(t *testing.T, srv *echoServer, v tlsVersion) {
		run := func(t *testing.T, args ...string) *nodeReport {
			t.Helper()
			before := len(srv.sessionInfos())
			r := runNode(t, node, append([]string{"--ca", ca, "--max-tls", nodeTLSVersions[v.id]}, args...)...)
			if r.TLS == nil {
				t.Fatalf("ws reported no TLS state for %s", args[len(args)-1])
			}
			if !r.TLS.Authorized {
				t.Errorf("ws did not verify the server's certificate against testCert")
			}
			version := uint16(0)
			for id, name := range nodeTLSVersions {
				if name == r.TLS.Version {
					version = id
				}
			}
			sessions := srv.sessionInfos()
			if len(sessions) != before+1 {
				t.Fatalf("%d sessions opened on the server, want 1", len(sessions)-before)
			}
			checkServedAt(t, srv, sessions[before], version, r.TLS.Cipher, v)
			return r
		}
		t.Run("echo", func(t *testing.T) {
			r := run(t, "--mode", "echo",
				"--close-code", "1000", "--close-reason", "node ws done",
				"--expect-extensions", serverExtensions,
				wssURL(srv.Addr, "/echo"))
			if n := len(r.Checks); n < len(echoSizes)+len(echoTexts)+3 {
				t.Errorf("echo.mjs made %d checks, want at least %d", n, len(echoSizes)+len(echoTexts)+3)
			}
			if r.Close == nil || r.Close.Code != int(frame.CloseNormal) {
				t.Errorf("close seen by ws: %+v, want code %d", r.Close, frame.CloseNormal)
			}
		})
		t.Run("server-close", func(t *testing.T) {
			r := run(t, "--mode", "server-close",
				"--expect-text", helloText,
				"--expect-code", strconv.Itoa(helloCode), "--expect-reason", helloReason,
				wssURL(srv.Addr, "/hello"))
			if r.Close == nil || r.Close.Code != helloCode || r.Close.Reason != helloReason {
				t.Errorf("close seen by ws: %+v, want %d %q", r.Close, helloCode, helloReason)
			}
		})
	})
}
