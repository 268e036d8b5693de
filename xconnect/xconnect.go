// Package xconnect turns on RFC 8441 (WebSockets over HTTP/2) in net/http
// for the whole program, when the program imports it:
//
//	import _ "github.com/wskit/wskit/xconnect"
//
// Go's net/http has the extended CONNECT that RFC 8441 needs, but its
// HTTP/2 server advertises it (SETTINGS_ENABLE_CONNECT_PROTOCOL) only under
// GODEBUG=http2xconnect=1, which it reads from the environment once, when
// the package is initialized; there is no setting on http.Server, and
// golang.org/x/net/http2 reads the same switch the same way. This package
// adds http2xconnect=1 to GODEBUG in its own initialization. Go runs it
// before net/http's: packages are initialized in the order of their import
// paths, each after the packages it imports (the rule since Go 1.21), this
// one imports neither net/http nor anything that does, and
// "github.com/..." sorts before "net/http".
//
// The switch is the process's: every HTTP/2 server of the program then
// advertises extended CONNECT, and browsers send WebSockets to its origins
// over HTTP/2 where they can. A handler that is not a wskit route then
// sees CONNECT requests it may not expect. Import this package only in a
// program whose WebSocket routes are wskit's (Options.HTTP2 needs it), and
// put it in a main package, not a library. A reverse proxy in front of the
// server must support RFC 8441 too, or keep WebSockets on HTTP/1.1.
package xconnect

import (
	"os"
	"strings"
)

func init() {
	if Enabled() {
		return
	}
	v := os.Getenv("GODEBUG")
	if v != "" {
		v += ","
	}
	os.Setenv("GODEBUG", v+"http2xconnect=1")
}

// Enabled reports whether GODEBUG asks net/http for extended CONNECT. It
// says what net/http saw only if GODEBUG was not changed after it started.
func Enabled() bool {
	return strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1")
}
