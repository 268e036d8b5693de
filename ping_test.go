package wskit_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/wsraw"
)

// pingRoutes serves /session (a default session that pings the client
// when asked), /events (an Events session on the loop that does so from a
// goroutine of its own) and /raw (a raw session that answers no ping, only
// the close).
func pingRoutes(results chan<- error) func(*wskit.Server) http.Handler {
	pingBack := func(s *wskit.Session) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		rtt, err := s.Ping(ctx)
		if err == nil && rtt <= 0 {
			err = fmt.Errorf("round trip %v", rtt)
		}
		results <- err
	}
	return func(srv *wskit.Server) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/session", srv.WebSocket(func(s *wskit.Session) {
			for m := range s.Messages() {
				if m.Text() == "ping me" {
					pingBack(s)
				}
			}
		}))
		mux.Handle("/events", srv.WebSocketEvents(wskit.Events{OnMessage: func(s *wskit.Session, m wskit.Message) {
			if m.Text() == "ping me" {
				go pingBack(s) // not on the loop, which must read the pong
			}
		}}))
		mux.Handle("/raw", srv.WebSocketRaw(func(s *wsraw.Session) {
			for f := range s.Frames() {
				if f.Op == frame.OpClose {
					s.SendFrame(frame.Header{Fin: true, Op: frame.OpClose}, f.Payload)
					return
				}
			}
		}))
		return mux
	}
}

// Ping waits for its pong and returns the round-trip time, from a client
// and from the server's sessions of both engines; overlapping pings all
// get theirs.
func TestPing(t *testing.T) {
	checkGoroutines(t)
	results := make(chan error, 16)
	for _, tg := range eachEngine(t, testOptions(), pingRoutes(results)) {
		for _, path := range []string{"/session", "/events"} {
			t.Run(tg.name+path, func(t *testing.T) {
				s := dial(t, tg.url+path, nil)
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				rtt, err := s.Ping(ctx)
				if err != nil || rtt <= 0 {
					t.Fatalf("Ping = %v, %v; want a positive round trip", rtt, err)
				}
				var wg sync.WaitGroup
				errs := make(chan error, 8)
				for range 8 {
					wg.Go(func() {
						if _, err := s.Ping(ctx); err != nil {
							errs <- err
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Errorf("overlapping Ping: %v", err)
				}
				// The server pings the client, which reads on its own
				// goroutine: nobody here calls Receive.
				if err := s.SendText("ping me"); err != nil {
					t.Fatal(err)
				}
				if err := await(t, results, "the server's Ping"); err != nil {
					t.Errorf("server's Ping: %v", err)
				}
			})
		}
	}
}

// A Ping whose pong never comes returns when its context ends, and the
// session goes on.
func TestPingUnanswered(t *testing.T) {
	checkGoroutines(t)
	for _, tg := range eachEngine(t, testOptions(), pingRoutes(nil)) {
		t.Run(tg.name, func(t *testing.T) {
			s := dial(t, tg.url+"/raw", nil)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			if _, err := s.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Ping = %v, want context.DeadlineExceeded", err)
			}
			if err := s.SendText("still open"); err != nil {
				t.Errorf("SendText after the unanswered Ping: %v", err)
			}
		})
	}
}

// controlLog records what a session's callbacks saw, in order.
type controlLog struct {
	mu   sync.Mutex
	seen []string
	more chan struct{}
}

func newControlLog() *controlLog { return &controlLog{more: make(chan struct{}, 64)} }

func (l *controlLog) add(format string, args ...any) {
	l.mu.Lock()
	l.seen = append(l.seen, fmt.Sprintf(format, args...))
	l.mu.Unlock()
	l.more <- struct{}{}
}

// waitFor waits until the log holds n entries and returns them.
func (l *controlLog) waitFor(t *testing.T, n int) []string {
	t.Helper()
	for {
		l.mu.Lock()
		got := append([]string(nil), l.seen...)
		l.mu.Unlock()
		if len(got) >= n {
			return got
		}
		await(t, l.more, fmt.Sprintf("entry %d of the log, after %q", len(got)+1, got))
	}
}

// Events.OnPing and OnPong see the peer's pings and pongs in order with
// the messages: on the loop, on the loop's workers, and under Events.Run
// on the std engine and on a client.
func TestEventsOnPingOnPong(t *testing.T) {
	checkGoroutines(t)
	logs := make(chan *controlLog, 4)
	events := func() wskit.Events {
		l := newControlLog()
		return wskit.Events{
			OnOpen:    func(s *wskit.Session) { logs <- l },
			OnMessage: func(s *wskit.Session, m wskit.Message) { l.add("message %s", m.Payload) },
			OnPing:    func(s *wskit.Session, p []byte) { l.add("ping %s", p) },
			OnPong:    func(s *wskit.Session, p []byte) { l.add("pong %s", p) },
		}
	}
	routes := func(srv *wskit.Server) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			srv.UpgradeEvents(w, r, events())
		})
	}
	for _, workers := range []int{0, 2} {
		o := testOptions()
		o.Workers = workers
		for _, tg := range eachEngine(t, o, routes) {
			t.Run(fmt.Sprintf("%s/workers=%d", tg.name, workers), func(t *testing.T) {
				s := dial(t, tg.url, nil)
				l := await(t, logs, "the session to open")
				ping := func(p string) {
					if err := s.SendFrame(frame.Header{Fin: true, Op: frame.OpPing}, []byte(p)); err != nil {
						t.Fatal(err)
					}
				}
				pong := func(p string) {
					if err := s.SendFrame(frame.Header{Fin: true, Op: frame.OpPong}, []byte(p)); err != nil {
						t.Fatal(err)
					}
				}
				s.SendText("a")
				ping("p1")
				s.SendText("b")
				pong("q1")
				ping("p2")
				s.SendText("c")
				want := []string{"message a", "ping p1", "message b", "pong q1", "ping p2", "message c"}
				if got := l.waitFor(t, len(want)); strings.Join(got, ", ") != strings.Join(want, ", ") {
					t.Errorf("callbacks saw %q, want %q", got, want)
				}
			})
		}
	}

	// A client's Events.Run sees the pongs of its own Ping and of a ping
	// sent with SendFrame.
	srv := newServer(t, testOptions())
	url := serve(t, echoRoutes(srv))
	s := dial(t, url+"/echo", nil)
	ev := events()
	go ev.Run(s)
	l := await(t, logs, "the client's OnOpen")
	if err := s.SendFrame(frame.Header{Fin: true, Op: frame.OpPing}, []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if got := l.waitFor(t, 1); got[0] != "pong mine" {
		t.Errorf("the client's OnPong saw %q, want pong mine", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping under Events.Run: %v", err)
	}
	if got := l.waitFor(t, 2); !strings.HasPrefix(got[1], "pong ") || len(got[1]) != len("pong ")+8 {
		t.Errorf("the client's OnPong saw %q, want the 8-byte pong of Ping", got[1])
	}
}

// Session.OnPing and OnPong hooks run on default sessions (server and
// client) and on Events sessions; a panic in one closes the session with
// 1011.
func TestSessionOnPingOnPong(t *testing.T) {
	checkGoroutines(t)
	type seen struct{ kind, payload string }
	server := make(chan seen, 16)
	hook := func(s *wskit.Session) {
		s.OnPing(func(p []byte) {
			if string(p) == "boom" {
				panic("boom")
			}
			server <- seen{"ping", string(p)}
		})
		s.OnPong(func(p []byte) { server <- seen{"pong", string(p)} })
	}
	routes := func(srv *wskit.Server) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/session", srv.WebSocket(func(s *wskit.Session) {
			hook(s)
			for range s.Messages() {
			}
		}))
		mux.Handle("/events", srv.WebSocketEvents(wskit.Events{OnOpen: hook}))
		return mux
	}
	for _, tg := range eachEngine(t, testOptions(), routes) {
		for _, path := range []string{"/session", "/events"} {
			t.Run(tg.name+path, func(t *testing.T) {
				s := dial(t, tg.url+path, nil)
				pongs := make(chan string, 4)
				s.OnPong(func(p []byte) { pongs <- string(p) })
				s.SendText("opened") // the hooks are set once the server has read it
				// The server's hooks may not be set yet when the first
				// ping comes: ping until one is seen.
				var got seen
				for got.kind == "" {
					s.SendFrame(frame.Header{Fin: true, Op: frame.OpPing}, []byte("hello"))
					select {
					case got = <-server:
					case <-time.After(10 * time.Millisecond):
					}
				}
				if got != (seen{"ping", "hello"}) {
					t.Errorf("server's OnPing saw %v", got)
				}
				if p := await(t, pongs, "the client's OnPong"); p != "hello" {
					t.Errorf("client's OnPong saw %q, want hello", p)
				}
				s.SendFrame(frame.Header{Fin: true, Op: frame.OpPong}, []byte("unasked"))
				for got = await(t, server, "the server's OnPong"); got.kind == "ping"; got = await(t, server, "the server's OnPong") {
				}
				if got != (seen{"pong", "unasked"}) {
					t.Errorf("server's OnPong saw %v", got)
				}
				s.SendFrame(frame.Header{Fin: true, Op: frame.OpPing}, []byte("boom"))
				if ce := receiveClose(t, s); ce.Code != wskit.CloseInternalError {
					t.Errorf("after a panicking hook the session closed with %v, want 1011", ce.CloseReason)
				}
			})
		}
	}
}
