package interop

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/gorilla/websocket"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/poller"
)

type chiUser struct{}

// TestChiRouter mounts wskit routes on chi, the router Go users pick most
// after net/http, behind chi's own middleware and an auth middleware:
// chi's URL parameters and the middlewares' context values reach the
// session on both engines, a refusal is the middleware's, and gorilla's
// client sees the 101 carry the chain's fields.
func TestChiRouter(t *testing.T) {
	for _, engine := range []wskit.Engine{wskit.EngineStd, wskit.EnginePoll} {
		t.Run(engine.String(), func(t *testing.T) {
			if engine == wskit.EnginePoll && !poller.Supported {
				t.Skip("no poll engine here")
			}
			o := wskit.DefaultOptions()
			o.Engine = engine
			srv, err := wskit.NewServer(o)
			if err != nil {
				t.Fatal(err)
			}
			saw := make(chan string, 4)
			report := func(s *wskit.Session) {
				r := s.Request()
				saw <- fmt.Sprintf("%v room=%s user=%v request-id=%v", s.Engine(), chi.URLParam(r, "room"),
					s.Context().Value(chiUser{}), middleware.GetReqID(s.Context()) != "")
			}
			auth := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					user := r.Header.Get("X-User")
					if user == "" {
						w.Header().Set("WWW-Authenticate", "X-User")
						http.Error(w, "no user", http.StatusUnauthorized)
						return
					}
					w.Header().Set("X-Greeting", "hello "+user)
					next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), chiUser{}, user)))
				})
			}
			r := chi.NewRouter()
			r.Use(middleware.RequestID, middleware.Recoverer)
			r.Route("/rooms/{room}", func(r chi.Router) {
				r.Use(auth)
				r.Handle("/events", srv.WebSocketEvents(wskit.Events{
					OnOpen:    report,
					OnMessage: func(s *wskit.Session, m wskit.Message) { s.Send(m.Type, m.Payload) },
				}))
				r.Handle("/session", srv.WebSocket(func(s *wskit.Session) {
					report(s)
					for m := range s.Messages() {
						s.Send(m.Type, m.Payload)
					}
				}))
			})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(ln, r)
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				srv.Shutdown(ctx)
			})
			base := "ws://" + ln.Addr().String()
			d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
			for _, kind := range []string{"events", "session"} {
				_, resp, err := d.Dial(base+"/rooms/kotlin/"+kind, nil)
				if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != "X-User" {
					t.Fatalf("%s without a user: %v %v", kind, resp, err)
				}
				c, resp, err := d.Dial(base+"/rooms/kotlin/"+kind, http.Header{"X-User": {"ada"}})
				if err != nil {
					t.Fatalf("%s: %v", kind, err)
				}
				if g := resp.Header.Get("X-Greeting"); g != "hello ada" {
					t.Errorf("%s: the 101 has X-Greeting %q", kind, g)
				}
				want := fmt.Sprintf("%v room=kotlin user=ada request-id=true", engine)
				select {
				case got := <-saw:
					if got != want {
						t.Errorf("%s: the session saw %q, want %q", kind, got, want)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("%s: no session", kind)
				}
				if err := c.WriteMessage(websocket.TextMessage, []byte("hi "+kind)); err != nil {
					t.Fatal(err)
				}
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, p, err := c.ReadMessage(); err != nil || !strings.HasPrefix(string(p), "hi ") {
					t.Fatalf("%s: echo %q %v", kind, p, err)
				}
				c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
				c.Close()
			}
		})
	}
}
