package wskit_test

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/wsraw"
)

// waitSessions polls srv.Sessions until it is n.
func waitSessions(t *testing.T, srv *wskit.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for srv.Sessions() != n {
		if time.Now().After(deadline) {
			t.Fatalf("Sessions() = %d, want %d", srv.Sessions(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestShutdown(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	res := make(chan ended, 3)
	mux := http.NewServeMux()
	mux.Handle("/ws", srv.WebSocket(echoHandler(res)))
	mux.Handle("/raw", srv.WebSocketRaw(func(s *wsraw.Session) {
		for f := range s.Frames() {
			if f.Op == frame.OpClose { // answer the server's own close
				return
			}
		}
	}))
	url := serve(t, mux)
	a := dial(t, url+"/ws", nil)
	b := dial(t, url+"/ws", nil)
	r := dial(t, url+"/raw", nil)
	waitSessions(t, srv, 3)

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if n := srv.Sessions(); n != 0 {
		t.Errorf("Sessions() = %d after Shutdown, want 0", n)
	}
	for _, c := range []*wskit.Session{a, b, r} {
		if ce := receiveClose(t, c); ce.Code != wskit.CloseGoingAway {
			t.Errorf("client saw %v, want 1001", ce.CloseReason)
		}
	}
	for range 2 {
		if e := await(t, res, "a server session to end"); e.reason.Code != wskit.CloseGoingAway {
			t.Errorf("server session ended with %v, want 1001", e.reason)
		}
	}

	// A new upgrade after Shutdown is refused or closed at once with 1001.
	dialAfterShutdown(t, url+"/ws")
	if n := srv.Sessions(); n != 0 {
		t.Errorf("Sessions() = %d, want 0", n)
	}
	// A second Shutdown has nothing to do.
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown = %v", err)
	}
}

// dialAfterShutdown dials url on a server that has been shut down: the
// upgrade must be refused, or the session closed at once with 1001.
func dialAfterShutdown(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	c, err := wskit.Dial(ctx, url, nil)
	cancel()
	if err != nil {
		var he *wskit.HandshakeError
		if !errors.As(err, &he) {
			t.Fatalf("Dial after Shutdown = %v, want a refusal or a session closed with 1001", err)
		}
		return
	}
	defer c.Close(wskit.CloseNormal, "")
	if ce := receiveClose(t, c); ce.Code != wskit.CloseGoingAway {
		t.Errorf("a session opened after Shutdown ended with %v, want 1001", ce.CloseReason)
	}
}

// A raw route after Shutdown behaves as a default one: no session, and the
// client learns why (a refusal, or a 1001 close frame), not a bare cut.
func TestShutdownRawRoute(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	url := serve(t, srv.WebSocketRaw(func(s *wsraw.Session) {
		for f := range s.Frames() {
			if f.Op == frame.OpClose {
				return
			}
		}
	}))
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	dialAfterShutdown(t, url)
	if n := srv.Sessions(); n != 0 {
		t.Errorf("Sessions() = %d, want 0", n)
	}
}

// When handlers do not return in time, Shutdown cuts the connections and
// returns the context's error.
func TestShutdownDeadline(t *testing.T) {
	srv := newServer(t, testOptions())
	release := make(chan struct{})
	returned := make(chan struct{})
	url := serve(t, srv.WebSocket(func(s *wskit.Session) {
		defer close(returned)
		<-release // ignores the session entirely
	}))
	c := dial(t, url, nil)
	waitSessions(t, srv, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want context.DeadlineExceeded", err)
	}
	// The client got the 1001 close; its echo could not be read by the
	// stuck handler... but the session's own reader did read it. Either
	// way the client's session ends.
	ce := receiveClose(t, c)
	t.Logf("client ended with %v", ce.CloseReason)
	if ce.Code != wskit.CloseGoingAway && ce.Code != wskit.CloseAbnormal {
		t.Errorf("client saw %v, want 1001 or 1006", ce.CloseReason)
	}
	close(release)
	await(t, returned, "the handler")
	waitSessions(t, srv, 0)
}

func TestSessionsCount(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	url := serve(t, srv.WebSocket(echoHandler(nil)))
	if srv.Sessions() != 0 {
		t.Fatal("a new server has sessions")
	}
	var cs []*wskit.Session
	for i := range 3 {
		cs = append(cs, dial(t, url, nil))
		waitSessions(t, srv, i+1)
	}
	for i, c := range cs {
		c.Close(wskit.CloseNormal, "")
		waitSessions(t, srv, len(cs)-i-1)
	}
}

// A session Shutdown cannot close, because the caller of UpgradeRaw never
// lets it go, makes Shutdown return the context's error when it ends, and
// leaves nothing of Shutdown's running.
func TestShutdownDeadlineLeavesNoWaiter(t *testing.T) {
	srv := newServer(t, testOptions())
	upgraded := make(chan *wsraw.Session, 1)
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := srv.UpgradeRaw(w, r)
		if err != nil {
			t.Errorf("UpgradeRaw: %v", err)
			return
		}
		upgraded <- s // kept, and let go only at the end
	}))
	c := dial(t, url, nil)
	kept := await(t, upgraded, "the raw session")
	defer kept.CloseNow()
	waitSessions(t, srv, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want context.DeadlineExceeded", err)
	}
	receiveClose(t, c)
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "(*Server).Shutdown") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a goroutine of Shutdown still runs after it returned:\n%s", stacks)
		}
	}
}
