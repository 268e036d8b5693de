package interop

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wskit/wskit"
)

// serverExtensions names the extensions that the server under test accepts
// from a peer that offers permessage-deflate (Chromium and ws always do; the
// Go clients in their offer-deflate tests): the names from its
// Sec-WebSocket-Extensions answer, without parameters, as extensionNames
// gives them. wskit declines every extension for now.
const serverExtensions = ""

// newEchoServer starts the server under test, wskit's net/http engine, on a
// loopback httptest.Server, which closes when the test ends. It serves:
//
//	/echo   a default session that sends back every message with its type.
//	        A message of more than maxMessageSize bytes makes it close with
//	        1009. Pings, closes and the TCP close are the session's own work.
//	/hello  a default session that sends the text helloText, then closes
//	        with helloCode and helloReason.
//	/       a small same-origin HTML page, for the browser.
//
// A cross-origin upgrade is refused with 403 (wskit's default Origin policy).
func newEchoServer(t *testing.T) *httptest.Server {
	t.Helper()
	opts := wskit.DefaultOptions()
	opts.MaxMessageSize = maxMessageSize
	opts.MaxFrameSize = maxMessageSize
	srv, err := wskit.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/echo", srv.WebSocket(func(s *wskit.Session) {
		for m := range s.Messages() {
			if err := s.Send(m.Type, m.Payload); err != nil {
				return
			}
		}
	}))
	mux.Handle("/hello", srv.WebSocket(func(s *wskit.Session) {
		if err := s.SendText(helloText); err != nil {
			return
		}
		s.Close(helloCode, helloReason)
	}))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, testPage)
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

const testPage = `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>wskit interop</title>
<p>wskit interop test page. The tests open their own WebSocket to /echo.</p>
</html>
`
