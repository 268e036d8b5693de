package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/poller"
	"github.com/wskit/wskit/wsraw"
)

// Limits of the server under test, small so that the limit tests are quick.
const (
	maxFrame   = 64 << 10
	maxMessage = 64 << 10
	timeout    = 2 * time.Second
)

// env is a running server with the routes the tests talk to:
//
//	/echo    default session echoing every message with its type
//	/mqtt    the same, but requiring the subprotocol "mqtt"
//	/raw     raw session echoing data frames exactly, recording control frames
//	/close   default session that closes at once with 4000 "bye"
//	/flood   default session that sends until a send fails
type env struct {
	srv    *wskit.Server
	addr   string
	raw    *rawLog
	floods chan []floodResult
}

// variant is the server the tests run against: TestMain runs the whole
// suite once per variant.
type variant struct {
	name   string
	engine wskit.Engine
	events bool // /echo is an Events route (on the loop with the poll engine)
}

var variants = []variant{
	{"std", wskit.EngineStd, false},
	{"poll", wskit.EnginePoll, false},
	{"poll-events", wskit.EnginePoll, true},
}

var current = variants[0]

func TestMain(m *testing.M) {
	code := 0
	for _, v := range variants {
		if v.engine == wskit.EnginePoll && !poller.Supported {
			continue
		}
		current = v
		wrongEngine.Store(0)
		fmt.Printf("=== engine %s\n", v.name)
		c := m.Run()
		if n := wrongEngine.Load(); n > 0 {
			fmt.Printf("--- %d sessions ran on another engine than %s\n", n, v.engine)
			c = 1
		}
		if c != 0 {
			fmt.Printf("--- engine %s FAILED\n", v.name)
			code = c
		}
	}
	os.Exit(code)
}

// serve starts srv on a loopback port with the current variant's engine
// and returns its address; srv.Shutdown stops it.
func serve(t testing.TB, srv *wskit.Server, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, h) }()
	t.Cleanup(func() {
		select {
		case err := <-served:
			if !errors.Is(err, wskit.ErrServerClosed) {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return after Shutdown")
		}
	})
	return ln.Addr().String()
}

// wrongEngine counts sessions that ran on another engine than the
// variant's: a route the poll engine failed to serve itself.
var wrongEngine atomic.Int64

func checkEngine(s *wskit.Session) {
	if s.Engine() != current.engine {
		wrongEngine.Add(1)
	}
}

// echoRoute returns the /echo handler of the current variant.
func echoRoute(srv *wskit.Server, protocols ...string) http.Handler {
	if current.events {
		return srv.WebSocketEvents(wskit.Events{
			OnOpen: checkEngine,
			OnMessage: func(s *wskit.Session, m wskit.Message) {
				s.Send(m.Type, m.Payload)
			},
		}, wskit.Protocols(protocols...))
	}
	return srv.WebSocket(func(s *wskit.Session) {
		checkEngine(s)
		for m := range s.Messages() {
			s.Send(m.Type, m.Payload)
		}
	}, wskit.Protocols(protocols...))
}

func testOptions() wskit.Options {
	o := wskit.DefaultOptions()
	o.Engine = current.engine
	o.MaxFrameSize = maxFrame
	o.MaxMessageSize = maxMessage
	o.Timeout = timeout
	o.HandshakeTimeout = timeout
	o.Subprotocols = []string{"chat.v2", "chat.v1"}
	o.OriginPatterns = []string{"*.allowed.example"}
	o.Logger = slog.New(slog.DiscardHandler)
	return o
}

// newEnv starts a server for one test and stops it when the test ends,
// checking that no goroutine is left behind.
func newEnv(t *testing.T) *env {
	t.Helper()
	checkLeaks(t)
	srv, err := wskit.NewServer(testOptions())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{srv: srv, raw: &rawLog{conns: map[string]*rawConn{}}, floods: make(chan []floodResult, 1)}
	t.Logf("engine %s", current.name)
	mux := http.NewServeMux()
	mux.Handle("/echo", echoRoute(srv))
	mux.Handle("/mqtt", echoRoute(srv, "mqtt"))
	mux.Handle("/raw", srv.WebSocketRaw(e.rawEcho))
	mux.Handle("/close", srv.WebSocket(func(s *wskit.Session) { s.Close(4000, "bye") }))
	mux.Handle("/flood", srv.WebSocket(e.flood))
	e.addr = serve(t, srv, mux)
	t.Cleanup(func() {
		// Every client is gone by now: each session must end by itself,
		// without Shutdown's help.
		for deadline := time.Now().Add(replyWait); srv.Sessions() > 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("%d sessions still open %v after their clients closed", srv.Sessions(), replyWait)
				break
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Server.Shutdown: %v (a handler did not return)", err)
		}
	})
	return e
}

// checkLeaks makes the test fail if, once it has cleaned up, more
// goroutines run than before it started; it prints their stacks.
func checkLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d goroutines before the test, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// rawLog records what each raw session saw, by the id in its query.
type rawLog struct {
	mu        sync.Mutex
	conns     map[string]*rawConn
	anonymous atomic.Int64 // sessions opened without an id
}

type rawConn struct {
	done    chan struct{}
	control []frame.Frame // control frames received, payloads copied
	err     error         // the session's Err once the handler returned
}

func (l *rawLog) get(id string) *rawConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	rc := l.conns[id]
	if rc == nil {
		rc = &rawConn{done: make(chan struct{})}
		l.conns[id] = rc
	}
	return rc
}

// wait returns the record of session id once its handler has returned.
func (l *rawLog) wait(t testing.TB, id string) *rawConn {
	t.Helper()
	rc := l.get(id)
	select {
	case <-rc.done:
	case <-time.After(replyWait):
		t.Fatalf("raw handler %q did not return", id)
	}
	return rc
}

// rawEcho echoes data frames exactly (fragments stay fragments), records
// control frames, answers none of them, and on a close frame echoes it and
// returns.
func (e *env) rawEcho(s *wsraw.Session) {
	id := s.Request().URL.Query().Get("id")
	if id == "" {
		id = fmt.Sprintf("anonymous %d", e.raw.anonymous.Add(1))
	}
	rc := e.raw.get(id)
	defer close(rc.done)
	for f := range s.Frames() {
		if f.Op.IsControl() {
			f.Payload = bytes.Clone(f.Payload)
			rc.control = append(rc.control, f)
			if f.Op == frame.OpClose {
				s.SendFrame(frame.Header{Fin: true, Op: frame.OpClose}, f.Payload)
				return
			}
			continue
		}
		s.SendFrame(f.Header, f.Payload)
	}
	rc.err = s.Err()
}

// rawTarget returns the /raw URL for a session the log knows as id.
func rawTarget(id string) string { return "/raw?id=" + url.QueryEscape(id) }

// floodResult is how one sender of a /flood handler ended.
type floodResult struct {
	err     error         // the error of the send that failed; nil if none did in 20 s
	blocked time.Duration // how long that send took
	sent    int           // bytes accepted before it
}

// flood sends 32 KiB messages from ?senders= goroutines (default 1) until
// each has had a send fail, and reports how every sender ended.
func (e *env) flood(s *wskit.Session) {
	senders, _ := strconv.Atoi(s.Request().URL.Query().Get("senders"))
	senders = max(senders, 1)
	start := time.Now()
	results := make([]floodResult, senders)
	chunk := make([]byte, 32<<10)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			r := &results[i]
			for time.Since(start) < 20*time.Second {
				t0 := time.Now()
				if r.err = s.SendBinary(chunk); r.err != nil {
					r.blocked = time.Since(t0)
					return
				}
				r.sent += len(chunk)
			}
		})
	}
	wg.Wait()
	e.floods <- results
}
