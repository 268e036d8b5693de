package wskit_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/wskit/wskit"
)

// serveExample serves h with srv on a loopback port, on the default engine
// (the poll engine on Linux), and returns its ws:// base URL and a stop
// function.
func serveExample(srv *wskit.Server, h http.Handler) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln, h)
	return "ws://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}
}

type userCtxKey struct{}

// A route behind an ordinary auth middleware, on a mux pattern with a path
// value: the session sees the room from the path and the user the
// middleware put in the context, on either engine.
func ExampleServer_WebSocketEvents_middleware() {
	srv, err := wskit.NewServer(wskit.Options{})
	if err != nil {
		log.Fatal(err)
	}
	auth := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok {
				http.Error(w, "who are you?", http.StatusUnauthorized)
				return
			}
			w.Header().Set("Set-Cookie", "seen=1") // goes out in the 101
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userCtxKey{}, user)))
		})
	}
	mux := http.NewServeMux()
	mux.Handle("GET /rooms/{room}", auth(srv.WebSocketEvents(wskit.Events{
		OnOpen: func(s *wskit.Session) {
			room := s.Request().PathValue("room")
			s.SendText(fmt.Sprintf("%s joined %s", s.Context().Value(userCtxKey{}), room))
		},
	})))
	base, stop := serveExample(srv, mux)
	defer stop()

	ctx := context.Background()
	_, err = wskit.Dial(ctx, base+"/rooms/kotlin", nil)
	var he *wskit.HandshakeError
	if errors.As(err, &he) {
		fmt.Println("without a token:", he.StatusCode)
	}
	c, err := wskit.Dial(ctx, base+"/rooms/kotlin", &wskit.DialOptions{Header: http.Header{"Authorization": {"Bearer ada"}}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(wskit.CloseNormal, "")
	m, _ := c.Receive(ctx)
	fmt.Println(m.Text())
	// Output:
	// without a token: 401
	// ada joined kotlin
}

// An accept hook authenticates each upgrade, refuses with a status of its
// choosing, and attaches the user to the session as a typed value that
// every callback reads.
func ExampleOnAccept() {
	srv, err := wskit.NewServer(wskit.Options{})
	if err != nil {
		log.Fatal(err)
	}
	user := wskit.NewKey[string]("user")
	tokens := map[string]string{"t-ada": "ada"} // a database, say: a hook may block
	login := wskit.OnAccept(func(h *wskit.Handshake) error {
		name, ok := tokens[h.Request.URL.Query().Get("token")]
		if !ok {
			return &wskit.Refusal{Status: http.StatusUnauthorized, Body: "unknown token"}
		}
		user.Set(h, name)
		return nil
	})
	mux := http.NewServeMux()
	mux.Handle("GET /say", srv.WebSocketEvents(wskit.Events{
		OnMessage: func(s *wskit.Session, m wskit.Message) {
			name, _ := user.Get(s)
			s.SendText(name + " says " + m.Text())
		},
	}, login))
	base, stop := serveExample(srv, mux)
	defer stop()

	ctx := context.Background()
	if _, err := wskit.Dial(ctx, base+"/say?token=nope", nil); err != nil {
		fmt.Println(err)
	}
	c, err := wskit.Dial(ctx, base+"/say?token=t-ada", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(wskit.CloseNormal, "")
	c.SendText("hello")
	m, _ := c.Receive(ctx)
	fmt.Println(m.Text())
	// Output:
	// wskit: handshake failed: expected status 101 but was 401 Unauthorized: unknown token
	// ada says hello
}

// Upgrade takes a request over from inside an ordinary handler, gorilla's
// way; the fields the handler set go out in the 101.
func ExampleServer_Upgrade() {
	srv, err := wskit.NewServer(wskit.Options{})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Trace", "t-42")
		s, err := srv.Upgrade(w, r)
		if err != nil {
			return // the refusal has been sent
		}
		defer s.Close(wskit.CloseNormal, "")
		for m := range s.Messages() {
			s.Send(m.Type, m.Payload)
		}
	})
	base, stop := serveExample(srv, mux)
	defer stop()

	ctx := context.Background()
	c, err := wskit.Dial(ctx, base+"/ws", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(wskit.CloseNormal, "")
	c.SendText("ping")
	m, _ := c.Receive(ctx)
	fmt.Println(m.Text())
	// Output: ping
}
