package wskit_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/frame"
)

// recorder collects the callbacks of one session in order, with the close
// reason each one could see.
type recorder struct {
	mu     sync.Mutex
	events []string
	errs   []error
	closed chan struct{}
}

func newRecorder() *recorder { return &recorder{closed: make(chan struct{})} }

func (r *recorder) add(s *wskit.Session, what string) {
	if cr, ok := s.CloseReason(); ok {
		what += fmt.Sprintf("[%d]", cr.Code)
	}
	r.mu.Lock()
	r.events = append(r.events, what)
	r.mu.Unlock()
}

// events returns Events that record into r; onMessage runs inside OnMessage.
func (r *recorder) eventsWith(onMessage func(*wskit.Session, wskit.Message)) wskit.Events {
	return wskit.Events{
		OnOpen: func(s *wskit.Session) { r.add(s, "open") },
		OnMessage: func(s *wskit.Session, m wskit.Message) {
			r.add(s, "message "+m.Text())
			if onMessage != nil {
				onMessage(s, m)
			}
		},
		OnError: func(s *wskit.Session, err error) {
			r.mu.Lock()
			r.errs = append(r.errs, err)
			r.mu.Unlock()
			r.add(s, "error")
		},
		OnClose: func(s *wskit.Session, reason wskit.CloseReason) {
			r.add(s, fmt.Sprintf("close %d %s", reason.Code, reason.Reason))
			close(r.closed)
		},
	}
}

func (r *recorder) wait(t *testing.T) (string, []error) {
	t.Helper()
	await(t, r.closed, "OnClose")
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.events, " | "), r.errs
}

func echoMessage(s *wskit.Session, m wskit.Message) { s.Send(m.Type, m.Payload) }

func TestEventsOrderOnCleanClose(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	rec := newRecorder()
	url := serve(t, srv.WebSocketEvents(rec.eventsWith(echoMessage)))
	c := dial(t, url, nil)
	for _, s := range []string{"a", "b", "c"} {
		c.SendText(s)
		if m := receive(t, c); m.Text() != s {
			t.Fatalf("echo %q, want %q", m.Payload, s)
		}
	}
	c.Close(4000, "done")
	got, errs := rec.wait(t)
	if want := "open | message a | message b | message c | close 4000 done[4000]"; got != want {
		t.Errorf("callbacks:\n got %s\nwant %s", got, want)
	}
	if len(errs) != 0 {
		t.Errorf("OnError after a clean close: %v", errs)
	}
}

func TestEventsServerCloses(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	rec := newRecorder()
	url := serve(t, srv.WebSocketEvents(rec.eventsWith(func(s *wskit.Session, m wskit.Message) {
		s.Close(wskit.CloseNormal, "bye "+m.Text())
	})))
	c := dial(t, url, nil)
	c.SendText("x")
	if ce := receiveClose(t, c); ce.CloseReason != (wskit.CloseReason{Code: 1000, Reason: "bye x"}) {
		t.Errorf("client saw %v", ce.CloseReason)
	}
	got, errs := rec.wait(t)
	if want := "open | message x | close 1000 bye x[1000]"; got != want {
		t.Errorf("callbacks:\n got %s\nwant %s", got, want)
	}
	if len(errs) != 0 {
		t.Errorf("OnError after a clean close: %v", errs)
	}
}

func TestEventsProtocolViolation(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	rec := newRecorder()
	url := serve(t, srv.WebSocketEvents(rec.eventsWith(echoMessage)))
	rc := dialRaw(t, url, 0)
	rc.write(frame.Header{Fin: true, Op: frame.OpText, Masked: true}, []byte("ok"))
	rc.write(frame.Header{Fin: true, Op: frame.OpText}, []byte("unmasked"))
	rc.readClose()
	rc.finish()
	got, errs := rec.wait(t)
	if want := "open | message ok | error[1002] | close 1002 client frame is not masked[1002]"; got != want {
		t.Errorf("callbacks:\n got %s\nwant %s", got, want)
	}
	var pe *frame.ProtocolError
	if len(errs) != 1 || !errors.As(errs[0], &pe) || pe.Code != wskit.CloseProtocolError {
		t.Errorf("OnError got %v, want one *frame.ProtocolError with 1002", errs)
	}
}

func TestEventsConnectionCut(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	rec := newRecorder()
	url := serve(t, srv.WebSocketEvents(rec.eventsWith(nil)))
	rc := dialRaw(t, url, 0)
	rc.nc.Close()
	got, errs := rec.wait(t)
	if !strings.HasPrefix(got, "open | error[1006] | close 1006 ") {
		t.Errorf("callbacks: %s; want open, error and close with 1006", got)
	}
	if len(errs) != 1 || errs[0] == nil {
		t.Errorf("OnError got %v, want the transport's error", errs)
	}
}

func TestEventsPanic(t *testing.T) {
	checkGoroutines(t)
	for _, tc := range []struct {
		name string
		edit func(*wskit.Events)
		want string
	}{
		{"in OnMessage", func(ev *wskit.Events) {
			ev.OnMessage = func(*wskit.Session, wskit.Message) { panic("boom") }
		}, "open | error[1011] | close 1011 internal error[1011]"},
		{"in OnOpen", func(ev *wskit.Events) {
			open := ev.OnOpen
			ev.OnOpen = func(s *wskit.Session) { open(s); panic("boom") }
		}, "open | error[1011] | close 1011 internal error[1011]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log syncBuffer
			opts := testOptions()
			opts.Logger = newTextLogger(&log)
			srv := newServer(t, opts)
			rec := newRecorder()
			ev := rec.eventsWith(nil)
			tc.edit(&ev)
			url := serve(t, srv.WebSocketEvents(ev))
			c := dial(t, url, nil)
			c.SendText("x")
			if ce := receiveClose(t, c); ce.Code != wskit.CloseInternalError {
				t.Errorf("client saw %v, want 1011", ce.CloseReason)
			}
			got, errs := rec.wait(t)
			if got != tc.want {
				t.Errorf("callbacks:\n got %s\nwant %s", got, tc.want)
			}
			if len(errs) != 1 || !errors.Is(errs[0], wskit.ErrHandlerPanic) {
				t.Errorf("OnError got %v, want ErrHandlerPanic", errs)
			}
			if !strings.Contains(log.String(), "boom") {
				t.Errorf("the panic was not logged:\n%s", log.String())
			}
		})
	}
}

// Nil callbacks are skipped; Run works on a dialed session too.
func TestEventsOnClient(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	url := serve(t, srv.WebSocketEvents(wskit.Events{
		OnOpen: func(s *wskit.Session) { s.SendText("hello") },
	}))
	c := dial(t, url, nil)
	rec := newRecorder()
	ev := rec.eventsWith(func(s *wskit.Session, m wskit.Message) { s.Close(4002, "got it") })
	ev.OnOpen = nil
	ev.Run(c)
	got, errs := rec.wait(t)
	if want := "message hello | close 4002 got it[4002]"; got != want {
		t.Errorf("callbacks:\n got %s\nwant %s", got, want)
	}
	if len(errs) != 0 {
		t.Errorf("OnError: %v", errs)
	}
}
