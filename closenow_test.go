package wskit_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wskit/wskit"
)

// CloseNow cuts the connection without a close frame: the peer sees 1006,
// and the session that called it ends with 1006 and ErrClosed, on a client
// and on the server's sessions of both engines.
func TestCloseNow(t *testing.T) {
	checkGoroutines(t)
	ends := make(chan ended, 4)
	routes := func(srv *wskit.Server) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/session", srv.WebSocket(func(s *wskit.Session) {
			for m := range s.Messages() {
				if m.Text() == "cut" {
					s.CloseNow()
				}
			}
			ends <- endOf(s)
		}))
		mux.Handle("/events", srv.WebSocketEvents(wskit.Events{
			OnMessage: func(s *wskit.Session, m wskit.Message) {
				if m.Text() == "cut" {
					s.CloseNow()
				}
			},
			OnClose: func(s *wskit.Session, r wskit.CloseReason) { ends <- endOf(s) },
		}))
		return mux
	}
	for _, tg := range eachEngine(t, testOptions(), routes) {
		for _, path := range []string{"/session", "/events"} {
			t.Run(tg.name+path+"/server", func(t *testing.T) {
				s := dial(t, tg.url+path, nil)
				s.SendText("cut")
				if ce := receiveClose(t, s); ce.Code != wskit.CloseAbnormal {
					t.Errorf("the client saw %v, want 1006", ce.CloseReason)
				}
				e := await(t, ends, "the server's session to end")
				if e.reason.Code != wskit.CloseAbnormal || !errors.Is(e.err, wskit.ErrClosed) {
					t.Errorf("the server's session ended with %v, %v; want 1006 and ErrClosed", e.reason, e.err)
				}
			})
			t.Run(tg.name+path+"/client", func(t *testing.T) {
				s := dial(t, tg.url+path, nil)
				if err := s.CloseNow(); err != nil {
					t.Fatalf("CloseNow: %v", err)
				}
				if e := endOf(s); !e.ok || e.reason.Code != wskit.CloseAbnormal || !errors.Is(e.err, wskit.ErrClosed) {
					t.Errorf("after CloseNow the client's session ended with %+v; want 1006 and ErrClosed", e)
				}
				checkEnded(t, "SendText after CloseNow", s.SendText("late"), wskit.CloseAbnormal)
				if err := s.Close(wskit.CloseNormal, ""); err != nil {
					t.Errorf("Close after CloseNow: %v", err)
				}
				if e := await(t, ends, "the server's session to end"); e.reason.Code != wskit.CloseAbnormal {
					t.Errorf("the server's session ended with %v, want 1006", e.reason)
				}
			})
		}
	}
}

// After CloseRead a session only sends: what comes is dropped, pings are
// still answered and OnPing still called, and the peer's close still ends
// it; on the server's sessions of both engines and on a client.
func TestCloseRead(t *testing.T) {
	checkGoroutines(t)
	type report struct {
		received, pings int
		end             ended
	}
	reports := make(chan report, 2)
	sendThree := func(s *wskit.Session) {
		for _, m := range []string{"a", "b", "c"} {
			s.SendText(m)
		}
	}
	routes := func(srv *wskit.Server) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/session", srv.WebSocket(func(s *wskit.Session) {
			s.CloseRead()
			sendThree(s)
			n := 0
			for range s.Messages() { // waits for the end
				n++
			}
			reports <- report{received: n, pings: -1, end: endOf(s)}
		}))
		mux.Handle("/events", srv.WebSocketEvents(wskit.Events{
			OnOpen: func(s *wskit.Session) {
				countsKey.Set(s, &counts{})
				s.CloseRead()
				sendThree(s)
			},
			OnMessage: func(s *wskit.Session, m wskit.Message) { countsOf(s).received.Add(1) },
			OnPing:    func(s *wskit.Session, p []byte) { countsOf(s).pings.Add(1) },
			OnClose: func(s *wskit.Session, r wskit.CloseReason) {
				c := countsOf(s)
				reports <- report{int(c.received.Load()), int(c.pings.Load()), endOf(s)}
			},
		}))
		mux.Handle("/chatty", srv.WebSocket(func(s *wskit.Session) {
			sendThree(s)
			n := 0
			for range s.Messages() {
				n++
			}
			reports <- report{received: n, pings: -1, end: endOf(s)}
		}))
		return mux
	}
	for _, tg := range eachEngine(t, testOptions(), routes) {
		for _, path := range []string{"/session", "/events"} {
			t.Run(tg.name+path, func(t *testing.T) {
				s := dial(t, tg.url+path, nil)
				for range 100 {
					if err := s.SendBinary(make([]byte, 1000)); err != nil {
						t.Fatal(err)
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				if _, err := s.Ping(ctx); err != nil {
					t.Fatalf("Ping after the server's CloseRead: %v", err)
				}
				for _, want := range []string{"a", "b", "c"} {
					if m := receive(t, s); m.Text() != want {
						t.Fatalf("received %q, want %q", m.Payload, want)
					}
				}
				if err := s.Close(4003, "done sending"); err != nil {
					t.Fatalf("Close: %v", err)
				}
				r := await(t, reports, "the server's session to end")
				if r.received != 0 {
					t.Errorf("the server received %d messages after CloseRead, want 0", r.received)
				}
				if path == "/events" && r.pings != 1 {
					t.Errorf("OnPing ran %d times after CloseRead, want 1", r.pings)
				}
				if r.end.reason.Code != 4003 || r.end.err != nil {
					t.Errorf("the server's session ended with %v, %v; want 4003 and no error", r.end.reason, r.end.err)
				}
			})
		}
		t.Run(tg.name+"/client", func(t *testing.T) {
			s := dial(t, tg.url+"/chatty", nil)
			s.CloseRead()
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if _, err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping after CloseRead: %v", err)
			}
			short, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancelShort()
			if m, err := s.Receive(short); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Receive after CloseRead = %q, %v; want the context's deadline", m.Payload, err)
			}
			if err := s.SendText("one way"); err != nil {
				t.Fatalf("SendText after CloseRead: %v", err)
			}
			if err := s.Close(4003, "done sending"); err != nil {
				t.Fatalf("Close: %v", err)
			}
			r := await(t, reports, "the server's session to end")
			if r.received != 1 || r.end.reason.Code != 4003 {
				t.Errorf("the server received %d messages and ended with %v; want 1 and 4003", r.received, r.end.reason)
			}
		})
	}
}

// counts is what an Events session of TestCloseRead saw.
type counts struct{ received, pings atomic.Int32 }

var countsKey = wskit.NewKey[*counts]("counts")

func countsOf(s *wskit.Session) *counts {
	c, _ := countsKey.Get(s)
	return c
}

// checkEnded fails the test unless err is the *CloseError of a session that
// ended with code.
func checkEnded(t *testing.T, what string, err error, code wskit.CloseCode) {
	t.Helper()
	var ce *wskit.CloseError
	if !errors.As(err, &ce) || ce.Code != code || !errors.Is(err, wskit.ErrClosed) {
		t.Errorf("%s: %v; want a *CloseError with %d", what, err, code)
	}
}
