package interop

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// What the server under test (newEchoServer) promises. The peers check it.
const (
	// maxMessageSize is the server's message size limit: a message of this
	// size is echoed, one byte more makes the server close with 1009.
	maxMessageSize = 1 << 20

	// /hello sends helloText, then closes with helloCode and helloReason.
	helloText   = "hello from the server under test"
	helloCode   = 4000
	helloReason = "bye"
)

// stepTimeout bounds each step of a peer: a dial, one echo, one close.
const stepTimeout = 15 * time.Second

// Text messages that every peer echoes: empty, ASCII, multi-byte UTF-8 (two,
// three and four byte sequences), and long ones across the 7-bit and 16-bit
// length boundaries.
var echoTexts = []struct{ name, text string }{
	{"empty", ""},
	{"ascii", "hello, wskit"},
	{"utf8", "héllo wörld — Ελληνικά — 日本語 — 🦀🚀"},
	{"126-bytes", strings.Repeat("x", 126)},
	{"utf8-65538-bytes", strings.Repeat("€", 21846)},
}

// Binary message sizes that every peer echoes: the length encodings of RFC
// 6455 (7-bit up to 125, 16-bit up to 65535, 64-bit above) and the server's
// limit exactly.
var echoSizes = []int{0, 1, 125, 126, 127, 65535, 65536, maxMessageSize}

// pattern returns n bytes where byte i is (i*31 + 7) & 0xff. node/echo.mjs
// and the browser script build the same bytes.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + 7)
	}
	return b
}

// wsURL turns the http:// address of srv into the ws:// address of path.
func wsURL(srv *echoServer, path string) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + path
}

// missingPeer skips the test because a peer (a program, a package) is not
// installed. With CI=true it fails the test instead: CI installs every peer
// with interop/install.sh, so a missing one there is a broken setup.
func missingPeer(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s; CI=true, so a missing peer fails (run interop/install.sh)", msg)
	}
	t.Skipf("%s; run interop/install.sh (with CI=true this fails)", msg)
}

// extensionNames returns the extension names of a Sec-WebSocket-Extensions
// value, without their parameters, joined with ", ".
func extensionNames(header string) string {
	var names []string
	for ext := range strings.SplitSeq(header, ",") {
		name, _, _ := strings.Cut(ext, ";")
		if name = strings.TrimSpace(name); name != "" {
			names = append(names, name)
		}
	}
	return strings.Join(names, ", ")
}

// describe shortens a payload for a failure message.
func describe(p []byte) string {
	switch {
	case len(p) == 0:
		return "0 bytes"
	case len(p) <= 32:
		return fmt.Sprintf("%d bytes %x", len(p), p)
	}
	return fmt.Sprintf("%d bytes, first %x", len(p), p[:16])
}
