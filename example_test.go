package wskit_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/wskit/wskit"
)

// An echo route on a Go 1.22 mux pattern, and a client that dials it.
func ExampleServer_WebSocket() {
	srv, err := wskit.NewServer(wskit.Options{})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /echo", srv.WebSocket(func(s *wskit.Session) {
		for m := range s.Messages() {
			if err := s.Send(m.Type, m.Payload); err != nil {
				return
			}
		}
	}))
	hs := httptest.NewServer(mux)
	defer hs.Close()

	ctx := context.Background()
	c, err := wskit.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/echo", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(wskit.CloseNormal, "")
	if err := c.SendText("hello, wskit"); err != nil {
		log.Fatal(err)
	}
	m, err := c.Receive(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.Type, m.Text())
	// Output: text hello, wskit
}

// Browser-style callbacks: OnOpen, OnMessage, OnError, OnClose.
func ExampleEvents() {
	srv, err := wskit.NewServer(wskit.Options{})
	if err != nil {
		log.Fatal(err)
	}
	closed := make(chan wskit.CloseReason, 1)
	mux := http.NewServeMux()
	mux.Handle("GET /greet", srv.WebSocketEvents(wskit.Events{
		OnOpen: func(s *wskit.Session) { s.SendText("Please enter your name") },
		OnMessage: func(s *wskit.Session, m wskit.Message) {
			if m.Text() == "bye" {
				s.Close(wskit.CloseNormal, "Client said BYE")
				return
			}
			s.SendText("Hi, " + m.Text() + "!")
		},
		OnError: func(s *wskit.Session, err error) { fmt.Println("error:", err) },
		OnClose: func(s *wskit.Session, r wskit.CloseReason) { closed <- r },
	}))
	hs := httptest.NewServer(mux)
	defer hs.Close()

	ctx := context.Background()
	c, err := wskit.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/greet", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(wskit.CloseNormal, "") // releases the ended session's buffers
	for _, say := range []string{"JetBrains", "bye"} {
		m, _ := c.Receive(ctx)
		fmt.Println(m.Text())
		c.SendText(say)
	}
	_, err = c.Receive(ctx)
	fmt.Println("client:", err)
	fmt.Println("server:", <-closed)
	// Output:
	// Please enter your name
	// Hi, JetBrains!
	// client: wskit: session closed: 1000 normal closure: Client said BYE
	// server: 1000 normal closure: Client said BYE
}
