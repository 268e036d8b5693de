package wskit_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"

	"github.com/wskit/wskit"
)

// The Ktor guide's chat over a SharedFlow: every text goes to everyone, the
// sender included, in one order. Publish never waits under
// OverflowCloseTryAgain, so these callbacks may run on the poll engine's
// event loop; a member that stops reading is closed with 1013.
func ExampleHub() {
	srv, err := wskit.NewServer(wskit.Options{})
	if err != nil {
		log.Fatal(err)
	}
	chat, err := wskit.NewHub(wskit.HubOptions{Replay: 1, Overflow: wskit.OverflowCloseTryAgain})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /chat", srv.WebSocketEvents(wskit.Events{
		OnOpen: func(s *wskit.Session) {
			s.SendText("You are connected to WebSocket!")
			chat.Subscribe(s) // until the session ends
		},
		OnMessage: func(s *wskit.Session, m wskit.Message) {
			chat.Publish(context.Background(), m.Type, m.Payload)
		},
	}))
	hs := httptest.NewServer(mux)
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/chat"

	ctx := context.Background()
	alice, err := wskit.Dial(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close(wskit.CloseNormal, "")
	m, _ := alice.Receive(ctx)
	fmt.Println("alice:", m.Text())
	alice.SendText("hello from alice")
	m, _ = alice.Receive(ctx)
	fmt.Println("alice:", m.Text())

	// Bob comes later: the replay gives him the last message.
	bob, err := wskit.Dial(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close(wskit.CloseNormal, "")
	for range 2 {
		m, _ = bob.Receive(ctx)
		fmt.Println("bob:", m.Text())
	}
	// Typed values go through the hub's Converter, JSON by default.
	chat.PublishValue(ctx, map[string]string{"from": "server"})
	m, _ = alice.Receive(ctx)
	fmt.Println("alice:", m.Text())
	m, _ = bob.Receive(ctx)
	fmt.Println("bob:", m.Text())
	// Output:
	// alice: You are connected to WebSocket!
	// alice: hello from alice
	// bob: You are connected to WebSocket!
	// bob: hello from alice
	// alice: {"from":"server"}
	// bob: {"from":"server"}
}

// A client that comes back with the sequence of the last message it
// received gets what it missed. Stamp puts each message's sequence in
// front of it; here the hub numbers its own messages and keeps them for
// Replay, and with a Broker that keeps history (NATS JetStream) the client
// may come back to any server.
func ExampleHub_SubscribeAfter() {
	srv, err := wskit.NewServer(wskit.Options{})
	if err != nil {
		log.Fatal(err)
	}
	news, err := wskit.NewHub(wskit.HubOptions{
		Replay: 100,
		Stamp: func(dst []byte, seq uint64, p []byte) []byte { // "<seq> <text>"
			return append(append(strconv.AppendUint(dst, seq, 10), ' '), p...)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(srv.WebSocketEvents(wskit.Events{
		OnOpen: func(s *wskit.Session) {
			after, err := strconv.ParseUint(s.Request().URL.Query().Get("after"), 10, 64)
			if err != nil {
				news.Subscribe(s)
				return
			}
			if all, _ := news.SubscribeAfter(context.Background(), s, after); !all {
				s.SendText("some messages are gone")
			}
		},
	}))
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http")

	ctx := context.Background()
	for _, text := range []string{"one", "two", "three"} {
		news.PublishText(ctx, text)
	}
	// Back after message 1: messages 2 and 3 first, then the next.
	s, err := wskit.Dial(ctx, url+"?after=1", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(wskit.CloseNormal, "")
	for range 2 {
		m, _ := s.Receive(ctx)
		fmt.Println(m.Text())
	}
	news.PublishText(ctx, "four")
	m, _ := s.Receive(ctx)
	fmt.Println(m.Text())
	// Output:
	// 2 two
	// 3 three
	// 4 four
}
