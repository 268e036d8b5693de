package nats_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/wskit/wskit"
	wsnats "github.com/wskit/wskit/nats"
)

// While no server answers for the stream, as while a JetStream cluster's
// replicas catch up, History asks again until its context ends: it reads
// the history once the stream answers again, and otherwise reports the broker
// unavailable when ctx ends.
func TestHistoryWaitsForTheStream(t *testing.T) {
	ns := startJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	opts := wsnats.Options{Mode: wsnats.JetStream, Memory: true}
	b, err := wsnats.Connect(ctx, ns.ClientURL(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, m := range []string{"missed", "kept"} {
		if err := b.Publish(ctx, "room", wskit.Text, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	js, err := jetstream.New(b.Conn())
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, b.Options().Stream)
	if err != nil {
		t.Fatal(err)
	}
	direct := func(on bool) {
		t.Helper()
		cfg := stream.CachedInfo().Config
		cfg.AllowDirect = on
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	// No server answers the broker's direct gets.
	direct(false)

	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = b.History(short, "room", 1, func(wskit.BrokerMessage) error { return nil })
	cancelShort()
	if !errors.Is(err, wskit.ErrBrokerUnavailable) || !errors.Is(err, nats.ErrNoResponders) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("History with no stream until ctx ended: %v; want ErrBrokerUnavailable, no responders and the deadline", err)
	}

	type result struct {
		got []string
		err error
	}
	res := make(chan result, 1)
	go func() {
		var got []string
		_, err := b.History(ctx, "room", 1, func(m wskit.BrokerMessage) error {
			got = append(got, string(m.Payload))
			return nil
		})
		res <- result{got, err}
	}()
	time.Sleep(200 * time.Millisecond)
	select {
	case r := <-res:
		t.Fatalf("History returned %q, %v before the stream answered", r.got, r.err)
	default:
	}
	direct(true)
	select {
	case r := <-res:
		if r.err != nil || len(r.got) != 1 || r.got[0] != "kept" {
			t.Fatalf("History once the stream answered: %q, %v; want [kept]", r.got, r.err)
		}
	case <-time.After(wait):
		t.Fatal("History did not return once the stream answered")
	}
	if st := b.Stats(); st.HistoryReads != 2 || st.HistoryErrors != 1 {
		t.Errorf("stats: %d reads, %d errors; want 2 and 1", st.HistoryReads, st.HistoryErrors)
	}
}
