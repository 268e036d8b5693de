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

// The Ktor guide's chat over a SharedFlow: every text goes to everyone, the
// sender included, in one order. Publish never waits under
// OverflowCloseTryAgain, so these callbacks may run on the poll engine's
// event loop; a member that stops reading is closed with 1013.
func ExampleHub() {
	srv, err := wskit.NewServer(wskit.DefaultOptions())
	if err != nil {
		log.Fatal(err)
	}
	chat, err := wskit.NewHub(wskit.HubOptions{Replay: 1, Overflow: wskit.OverflowCloseTryAgain})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /chat", srv.Handle(wskit.Events{
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
