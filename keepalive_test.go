package wskit_test

import (
	"errors"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/frame"
)

const (
	pingPeriod = 50 * time.Millisecond
	pongWait   = 200 * time.Millisecond
)

func keepaliveOptions() wskit.Options {
	o := testOptions()
	o.PingPeriod = pingPeriod
	o.Timeout = pongWait
	return o
}

// A dialed session answers the server's keepalive pings by itself, so the
// session outlives many ping periods.
func TestKeepaliveAnsweredByClient(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, keepaliveOptions())
	res := make(chan ended, 1)
	url := serve(t, srv.WebSocket(echoHandler(res)))
	c := dial(t, url, nil) // default options: no pinger of its own

	time.Sleep(8 * pingPeriod)
	if _, ok := c.CloseReason(); ok {
		t.Fatalf("the session ended after %v: %v", 8*pingPeriod, c.Err())
	}
	select {
	case e := <-res:
		t.Fatalf("the server session ended: %v, %v", e.reason, e.err)
	default:
	}
	c.SendText("alive")
	if m := receive(t, c); m.Text() != "alive" {
		t.Fatalf("got %q", m.Payload)
	}
	c.Close(wskit.CloseNormal, "")
	if e := await(t, res, "the server session to end"); e.reason.Code != wskit.CloseNormal || e.err != nil {
		t.Errorf("server ended with %v, %v; want 1000, nil", e.reason, e.err)
	}
}

// Both ends ping: each answers the other's pings.
func TestKeepaliveBothSides(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, keepaliveOptions())
	url := serve(t, srv.WebSocket(echoHandler(nil)))
	o := keepaliveOptions()
	c := dial(t, url, &wskit.DialOptions{Options: o})
	time.Sleep(8 * pingPeriod)
	c.SendText("alive")
	if m := receive(t, c); m.Text() != "alive" {
		t.Fatalf("got %q", m.Payload)
	}
}

// A peer that never answers pings is closed with 1011 once Timeout passes
// after a ping.
func TestKeepalivePongTimeout(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, keepaliveOptions())
	res := make(chan ended, 1)
	url := serve(t, srv.WebSocket(echoHandler(res)))
	rc := dialRaw(t, url, 0)

	start := time.Now()
	pings := 0
	var code frame.CloseCode
	for {
		h, p, err := rc.read()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if h.Op == frame.OpPing {
			pings++
			if len(p) > frame.MaxControlPayload {
				t.Fatalf("ping payload of %d bytes", len(p))
			}
			continue
		}
		if h.Op != frame.OpClose {
			t.Fatalf("unexpected %v frame", h.Op)
		}
		code, _, err = frame.ParseClose(p)
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	elapsed := time.Since(start)
	if code != wskit.CloseInternalError {
		t.Errorf("close code %v, want 1011", code)
	}
	if pings != 1 {
		t.Errorf("%d pings before the close, want 1", pings)
	}
	if elapsed < pingPeriod+pongWait/2 {
		t.Errorf("closed after %v, before PingPeriod+Timeout (%v)", elapsed, pingPeriod+pongWait)
	}
	t.Logf("closed with %v after %v (PingPeriod+Timeout = %v)", code, elapsed, pingPeriod+pongWait)
	// Like Ktor, the server does not wait for the close reply.
	rc.readEOF()
	e := await(t, res, "the server session to end")
	if e.reason.Code != wskit.CloseInternalError {
		t.Errorf("server CloseReason %v, want 1011", e.reason)
	}
	if !errors.Is(e.err, wskit.ErrPongTimeout) {
		t.Errorf("server Err = %v, want ErrPongTimeout", e.err)
	}
}

// A peer that answers pings but with the wrong payload is not alive.
func TestKeepaliveWrongPong(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, keepaliveOptions())
	res := make(chan ended, 1)
	url := serve(t, srv.WebSocket(echoHandler(res)))
	rc := dialRaw(t, url, 0)
	for {
		h, p, err := rc.read()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if h.Op == frame.OpPing {
			rc.write(frame.Header{Fin: true, Op: frame.OpPong, Masked: true}, append([]byte("not "), p...))
			continue
		}
		if h.Op == frame.OpClose {
			break
		}
	}
	if e := await(t, res, "the server session to end"); e.reason.Code != wskit.CloseInternalError {
		t.Errorf("server CloseReason %v, want 1011", e.reason)
	}
}

// A raw client that answers pings correctly keeps the session alive.
func TestKeepaliveRawPongs(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, keepaliveOptions())
	url := serve(t, srv.WebSocket(echoHandler(nil)))
	rc := dialRaw(t, url, 0)
	deadline := time.Now().Add(8 * pingPeriod)
	pings := 0
	for time.Now().Before(deadline) {
		h, p, err := rc.read()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if h.Op != frame.OpPing {
			t.Fatalf("got %v, want only pings", h.Op)
		}
		pings++
		rc.write(frame.Header{Fin: true, Op: frame.OpPong, Masked: true}, p)
	}
	if pings < 4 {
		t.Errorf("%d pings in %v with PingPeriod %v", pings, 8*pingPeriod, pingPeriod)
	}
}

// Close against a peer that never answers the close frame returns
// ErrCloseTimeout after Timeout and drops the connection.
func TestCloseHandshakeTimeout(t *testing.T) {
	checkGoroutines(t)
	opts := testOptions()
	opts.Timeout = pongWait
	srv := newServer(t, opts)
	type result struct {
		err     error
		elapsed time.Duration
		end     ended
	}
	res := make(chan result, 1)
	url := serve(t, srv.WebSocket(func(s *wskit.Session) {
		start := time.Now()
		err := s.Close(wskit.CloseGoingAway, "leaving")
		res <- result{err: err, elapsed: time.Since(start), end: endOf(s)}
	}))
	rc := dialRaw(t, url, 0)
	if code, reason := rc.readClose(); code != wskit.CloseGoingAway || reason != "leaving" {
		t.Errorf("close frame %v %q, want 1001 leaving", code, reason)
	}
	// Never answer; the server must drop the connection.
	rc.readEOF()
	r := await(t, res, "Close to return")
	if !errors.Is(r.err, wskit.ErrCloseTimeout) {
		t.Errorf("Close = %v, want ErrCloseTimeout", r.err)
	}
	if r.elapsed < pongWait/2 {
		t.Errorf("Close returned after %v, before Timeout %v", r.elapsed, pongWait)
	}
	if r.end.reason.Code != wskit.CloseGoingAway || !errors.Is(r.end.err, wskit.ErrCloseTimeout) {
		t.Errorf("after the timeout: CloseReason %v, Err %v; want 1001 and ErrCloseTimeout", r.end.reason, r.end.err)
	}
}

// Session.Close documents "Closing an ended session returns nil"; that
// holds after a close handshake that timed out, too: the timeout was
// reported by the Close that waited for it.
func TestCloseAfterCloseTimeout(t *testing.T) {
	checkGoroutines(t)
	opts := testOptions()
	opts.Timeout = pongWait
	srv := newServer(t, opts)
	res := make(chan [2]error, 1)
	url := serve(t, srv.WebSocket(func(s *wskit.Session) {
		first := s.Close(wskit.CloseGoingAway, "leaving")
		res <- [2]error{first, s.Close(wskit.CloseNormal, "")}
	}))
	rc := dialRaw(t, url, 0)
	rc.readClose()
	rc.readEOF()
	errs := await(t, res, "Close to return")
	if !errors.Is(errs[0], wskit.ErrCloseTimeout) {
		t.Fatalf("first Close = %v, want ErrCloseTimeout", errs[0])
	}
	if errs[1] != nil {
		t.Errorf("Close of the session that ended by a close timeout = %v, want nil", errs[1])
	}
}

// A dialed session whose owner is busy (a message is waiting and nobody
// calls Receive) still answers keepalive pings, as Ktor's reader does.
func TestKeepaliveWhileReceiverBusy(t *testing.T) {
	checkGoroutines(t)
	// A pong may wait for a busy machine's scheduler: this test is about
	// the pongs coming at all, so it gives them longer than the others.
	opts := keepaliveOptions()
	opts.Timeout = 500 * time.Millisecond
	srv := newServer(t, opts)
	res := make(chan ended, 1)
	url := serve(t, srv.WebSocket(func(s *wskit.Session) {
		s.SendText("first")
		s.SendText("second")
		echoHandler(res)(s)
	}))
	c := dial(t, url, nil)
	time.Sleep(2 * (opts.PingPeriod + opts.Timeout)) // without Receive
	if _, ok := c.CloseReason(); ok {
		t.Fatalf("the session ended while its owner was busy: %v", c.Err())
	}
	for _, want := range []string{"first", "second"} {
		if m := receive(t, c); m.Text() != want {
			t.Fatalf("got %q, want %q", m.Payload, want)
		}
	}
	c.Close(wskit.CloseNormal, "")
	if e := await(t, res, "the server session to end"); e.reason.Code != wskit.CloseNormal {
		t.Errorf("server ended with %v, %v; want 1000 (not a ping timeout)", e.reason, e.err)
	}
}
