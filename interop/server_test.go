package interop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/poller"
)

// serverExtensions names the extensions that the server under test accepts
// from a peer that offers permessage-deflate (Chromium and ws always do; the
// Go clients in their offer-deflate tests): the names from its
// Sec-WebSocket-Extensions answer, without parameters, as extensionNames
// gives them. The server of forEachVariant installs no extension, so it
// declines them all; the permessage-deflate tests run servers of their own
// (forEachDeflateVariant).
const serverExtensions = ""

// serverVariant is one way to run the server under test. Each peer's test
// runs once per variant, in a subtest named after it.
type serverVariant struct {
	name   string
	engine wskit.Engine
	events bool // /echo and /hello are Events routes, not default sessions
}

var serverVariants = []serverVariant{
	// net/http: a goroutine per connection, a default session handler.
	{"std", wskit.EngineStd, false},
	// epoll loops; the default session handler runs on its own goroutine.
	{"poll", wskit.EnginePoll, false},
	// epoll loops; the Events callbacks run on the loop.
	{"poll-events", wskit.EnginePoll, true},
}

// echoServer is a running server under test.
type echoServer struct {
	URL     string // http://127.0.0.1:PORT, without a trailing slash
	Addr    string // 127.0.0.1:PORT
	Variant serverVariant

	mu       sync.Mutex
	sessions []sessionInfo // each session, in the order they opened
}

// sessionInfo is what the server under test saw of a session when it
// opened.
type sessionInfo struct {
	Path       string       // of the upgrade request
	Remote     string       // Session.RemoteAddr(): the peer's address
	Engine     wskit.Engine // Session.Engine()
	Events     bool         // the route is an Events route (srv.WebSocketEvents), not a default session
	Extensions string       // Session.Extensions()
	TLS        bool         // Session.Request().TLS is set
}

// sessionExtensions returns Session.Extensions() of each session that
// opened, in order.
func (srv *echoServer) sessionExtensions() []string {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	exts := make([]string, len(srv.sessions))
	for i, s := range srv.sessions {
		exts[i] = s.Extensions
	}
	return exts
}

// sessionInfos returns what the server saw of each session that opened,
// in order.
func (srv *echoServer) sessionInfos() []sessionInfo {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return slices.Clone(srv.sessions)
}

// sessionFrom waits until a session from the peer at remote (its local
// address) has opened, for at most stepTimeout, and returns what the
// server saw of it.
func (srv *echoServer) sessionFrom(remote string) (sessionInfo, bool) {
	var found sessionInfo
	ok := waitUntil(func() bool {
		for _, s := range srv.sessionInfos() {
			if s.Remote == remote {
				found = s
				return true
			}
		}
		return false
	})
	return found, ok
}

// forEachVariant runs test in a subtest per server variant, each against a
// server of its own. A variant that needs the poll engine is skipped where
// it is not supported (outside Linux).
func forEachVariant(t *testing.T, test func(t *testing.T, srv *echoServer)) {
	t.Helper()
	forEachVariantWith(t, nil, test)
}

// forEachVariantWith is forEachVariant with configure applied to each
// server's Options (nil leaves them).
func forEachVariantWith(t *testing.T, configure func(*wskit.Options), test func(t *testing.T, srv *echoServer)) {
	t.Helper()
	for _, v := range serverVariants {
		t.Run(v.name, func(t *testing.T) {
			if v.engine == wskit.EnginePoll && !poller.Supported {
				t.Skip("the poll engine is not supported on this platform")
			}
			test(t, newEchoServer(t, v, configure))
		})
	}
}

// newEchoServer starts the server under test with v's engine on a loopback
// port, serving with wskit.Server.Serve. It serves:
//
//	/echo   a session that sends back every message with its type.
//	        A message of more than maxMessageSize bytes makes it close with
//	        1009. Pings, closes and the TCP close are the session's own work.
//	/hello  a session that sends the text helloText, then closes with
//	        helloCode and helloReason.
//	/fanout a session that answers a text "N SIZE" with the N texts
//	        fanoutText(i, SIZE), i = 0..N-1, each sent by a goroutine of
//	        its own, all at once (fanout): Send from many goroutines.
//	/       a small same-origin HTML page, for the browser.
//
// With v.events the two sessions are Events callbacks (OnMessage echoes,
// OnOpen greets and closes); else they are default session handlers.
// A cross-origin upgrade is refused with 403 (wskit's default Origin policy).
//
// configure, when not nil, changes the Options last: the permessage-deflate
// tests install Extensions with it, the TLS tests a TLSConfig. What each
// session showed when it opened is recorded (echoServer.sessionInfos): its
// path, peer, engine, route kind, Session.Extensions() and whether its
// request had TLS state.
//
// Every session must report v's engine (Session.Engine), so that a variant
// cannot quietly run on the other one. When the test ends, every session
// must have ended by itself (its peer is gone by then); then Shutdown must
// stop Serve with ErrServerClosed.
func newEchoServer(t *testing.T, v serverVariant, configure func(*wskit.Options)) *echoServer {
	t.Helper()
	opts := wskit.DefaultOptions()
	opts.Engine = v.engine
	opts.MaxMessageSize = maxMessageSize
	opts.MaxFrameSize = maxMessageSize
	if configure != nil {
		configure(&opts)
	}
	srv, err := wskit.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	if e := srv.ResolvedEngine(); e != v.engine {
		t.Fatalf("engine %v resolves to %v", v.engine, e)
	}
	es := &echoServer{Variant: v}
	var sessions, elsewhere atomic.Int64
	opened := func(s *wskit.Session) {
		sessions.Add(1)
		if s.Engine() != v.engine {
			elsewhere.Add(1)
		}
		info := sessionInfo{Remote: s.RemoteAddr().String(), Engine: s.Engine(), Events: v.events, Extensions: s.Extensions()}
		if r := s.Request(); r != nil {
			info.Path, info.TLS = r.URL.Path, r.TLS != nil
		}
		es.mu.Lock()
		es.sessions = append(es.sessions, info)
		es.mu.Unlock()
	}
	mux := http.NewServeMux()
	if v.events {
		mux.Handle("/echo", srv.WebSocketEvents(wskit.Events{
			OnOpen: opened,
			OnMessage: func(s *wskit.Session, m wskit.Message) {
				s.Send(m.Type, m.Payload)
			},
		}))
		mux.Handle("/fanout", srv.WebSocketEvents(wskit.Events{
			OnOpen:    opened,
			OnMessage: fanout,
		}))
		mux.Handle("/hello", srv.WebSocketEvents(wskit.Events{
			// On the poll engine Close does not wait for the peer's close.
			OnOpen: func(s *wskit.Session) {
				opened(s)
				if err := s.SendText(helloText); err != nil {
					return
				}
				s.Close(helloCode, helloReason)
			},
		}))
	} else {
		mux.Handle("/echo", srv.WebSocket(func(s *wskit.Session) {
			opened(s)
			for m := range s.Messages() {
				if err := s.Send(m.Type, m.Payload); err != nil {
					return
				}
			}
		}))
		mux.Handle("/fanout", srv.WebSocket(func(s *wskit.Session) {
			opened(s)
			for m := range s.Messages() {
				fanout(s, m)
			}
		}))
		mux.Handle("/hello", srv.WebSocket(func(s *wskit.Session) {
			opened(s)
			if err := s.SendText(helloText); err != nil {
				return
			}
			s.Close(helloCode, helloReason)
		}))
	}
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, testPage)
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, mux) }()
	t.Cleanup(func() {
		deadline := time.Now().Add(stepTimeout)
		for srv.Sessions() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := srv.Sessions(); n > 0 {
			t.Errorf("%s: %d sessions still open %v after the test's peers were gone", v.name, n, stepTimeout)
		}
		start := time.Now()
		shutdown(t, v.name, srv, served)
		if d := time.Since(start); d > time.Second {
			t.Logf("%s: Shutdown took %v", v.name, d.Round(time.Millisecond))
		}
		if n := elsewhere.Load(); n > 0 {
			t.Errorf("%s: %d of %d sessions ran on another engine than %v", v.name, n, sessions.Load(), v.engine)
		}
	})
	es.Addr = ln.Addr().String()
	es.URL = "http://" + es.Addr
	return es
}

// shutdown shuts srv down and checks that its Serve, which reports on
// served, returned ErrServerClosed.
func shutdown(t *testing.T, name string, srv *wskit.Server, served <-chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*stepTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("%s: Shutdown: %v", name, err)
	}
	select {
	case err := <-served:
		if !errors.Is(err, wskit.ErrServerClosed) {
			t.Errorf("%s: Serve returned %v, want ErrServerClosed", name, err)
		}
	case <-ctx.Done():
		t.Errorf("%s: Serve did not return after Shutdown", name)
	}
}

// fanout answers a text "N SIZE" with N texts fanoutText(i, SIZE), sent at
// once from N goroutines, without waiting for them: on the Events variant it
// runs on the event loop, which must not block.
func fanout(s *wskit.Session, m wskit.Message) {
	var n, size int
	if _, err := fmt.Sscanf(string(m.Payload), "%d %d", &n, &size); err != nil || n > 1000 {
		s.Close(wskit.CloseCode(4400), "want N SIZE")
		return
	}
	for i := range n {
		go s.SendText(fanoutText(i, size))
	}
}

// fanoutText is the i-th text of /fanout: JSON-like text of size+13*i bytes,
// so that the texts differ but share most of their words.
func fanoutText(i, size int) string { return string(jsonText(size+13*i, i)) }

const testPage = `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>wskit interop</title>
<p>wskit interop test page. The tests open their own WebSocket to /echo.</p>
</html>
`
