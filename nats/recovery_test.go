package nats_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wskit/wskit"
	wsnats "github.com/wskit/wskit/nats"
)

// messages returns the texts prefix0 to prefix<n-1>, from first on.
func messages(first, n int) []string {
	var out []string
	for i := first; i < first+n; i++ {
		out = append(out, fmt.Sprint("m", i))
	}
	return out
}

// expectExactly waits until m received want and checks it received only
// that.
func expectExactly(t *testing.T, who string, m *member, want []string) []uint64 {
	t.Helper()
	awaitCount(t, []*member{m}, len(want))
	time.Sleep(50 * time.Millisecond) // room for anything that should not come
	got, seqs, err := m.received()
	if err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s received %q, want %q", who, got, want)
	}
	return seqs
}

func awaitJoined(t *testing.T, n *node, want bool) {
	t.Helper()
	select {
	case ok := <-n.joined:
		if ok != want {
			t.Fatalf("SubscribeAfter on %s recovered all: %v, want %v", n.name, ok, want)
		}
	case <-time.After(wait):
		t.Fatalf("no SubscribeAfter on %s", n.name)
	}
}

// With JetStream, the replay comes from the stream to a newcomer on any
// node, and a member that comes back to another node with the sequence of
// the last message it received gets what it missed, then the rest, none
// twice and none skipped; from the replay of a node that keeps it, or
// else from the stream, up to its limits.
func TestClusterReplayAndRecovery(t *testing.T) {
	ns := startJetStream(t)
	cfg := nodeConfig{mode: wsnats.JetStream, engine: wskit.EnginePoll, hub: wskit.HubOptions{Replay: 5},
		broker: wsnats.Options{MaxMsgsPerTopic: 50}}
	var nodes []*node
	for i := range 3 {
		nodes = append(nodes, startNode(t, fmt.Sprint("n", i), ns.ClientURL(), cfg))
	}
	pub := func(first, n int) {
		t.Helper()
		for _, m := range messages(first, n) {
			if err := publish(t, nodes[0], "room", m); err != nil {
				t.Fatal(err)
			}
		}
	}
	b := join(t, nodes[0], "topic=room")
	awaitSubscribers(t, nodes, "room", 1)
	pub(0, 20)
	bSeqs := expectExactly(t, "b", b, messages(0, 20))

	// A newcomer on a node that follows nothing yet gets the replay from
	// the stream; the next one from that node's hub.
	for i := range 2 {
		c := join(t, nodes[2], "topic=room")
		expectExactly(t, fmt.Sprint("newcomer ", i), c, messages(15, 5))
	}

	// b leaves, 10 messages go by, b comes back to another node.
	b.s.Close(wskit.CloseGoingAway, "")
	<-b.done
	awaitSubscribers(t, nodes, "room", 2)
	pub(20, 10)
	b2 := join(t, nodes[1], fmt.Sprint("topic=room&after=", bSeqs[len(bSeqs)-1]))
	awaitJoined(t, nodes[1], true)
	pub(30, 1)
	b2Seqs := expectExactly(t, "b back on n1", b2, messages(20, 11))

	// From a node whose replay holds what was missed.
	d := join(t, nodes[2], fmt.Sprint("topic=room&after=", b2Seqs[7]))
	awaitJoined(t, nodes[2], true)
	expectExactly(t, "d on n2", d, messages(28, 3))
	if st := nodes[1].broker.Stats(); st.HistoryReads != 1 {
		t.Errorf("n1 read the history %d times, want 1", st.HistoryReads)
	}
	if st := nodes[2].broker.Stats(); st.HistoryReads != 0 {
		t.Errorf("n2 read the history %d times, want 0 (its replay held it)", st.HistoryReads)
	}

	// Past the stream's 50 messages per topic: what is kept, and the
	// report that some are gone.
	pub(31, 60)
	e := join(t, nodes[1], fmt.Sprint("topic=room&after=", bSeqs[0]))
	awaitJoined(t, nodes[1], false)
	expectExactly(t, "e", e, messages(41, 50))
	if st := nodes[1].topics.Hub("room").Stats(); st.Recovered != 1 || st.Unrecovered != 1 {
		t.Errorf("n1's hub: %+v", st)
	}
}
