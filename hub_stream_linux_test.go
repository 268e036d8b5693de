package wskit

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// SubscribeAfter on a session whose Writer is sending a message waits for
// it to end before it queues what the session missed: nothing goes in
// between the fragments.
func TestHubSubscribeAfterWaitsForWriter(t *testing.T) {
	b := newMemBroker()
	hub, err := NewHub(HubOptions{Broker: b, Topic: "t"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"m1", "m2", "m3"} {
		if err := hub.PublishText(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := NewServer(Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 8)
	hs := httptest.NewServer(srv.WebSocket(func(s *Session) {
		for m := range s.Messages() {
			got <- m.Text()
		}
	}))
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(CloseNormal, "")
	w, err := c.Writer(ctx, Text)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("first "))
	subscribed := make(chan error, 1)
	go func() {
		_, err := hub.SubscribeAfter(ctx, c, 1)
		subscribed <- err
	}()
	select {
	case err := <-subscribed:
		t.Fatalf("SubscribeAfter returned (%v) while a Writer was open", err)
	case <-time.After(100 * time.Millisecond):
	}
	w.Write([]byte("part"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-subscribed; err != nil {
		t.Fatalf("SubscribeAfter: %v", err)
	}
	for _, want := range []string{"first part", "m2", "m3"} {
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("the server received %q, want %q", m, want)
			}
		case <-ctx.Done():
			t.Fatalf("waiting for %q", want)
		}
	}
}
