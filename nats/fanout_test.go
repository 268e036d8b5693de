package nats_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/internal/race"
	wsnats "github.com/wskit/wskit/nats"
)

// Three nodes, 1 000 subscribers spread over them, a publisher on each
// node: every message reaches every subscriber once, in its publisher's
// order; with JetStream, every subscriber on every node sees one order,
// with increasing sequences. The nodes run on both engines.
func TestClusterEveryMessageOnce(t *testing.T) {
	subscribers, perPublisher := 1000, 40
	if race.Enabled {
		subscribers, perPublisher = 300, 20
	}
	type variant struct {
		mode  wsnats.Mode
		async bool // AsyncPublish
	}
	for _, v := range []variant{{wsnats.Core, false}, {wsnats.JetStream, false}, {wsnats.JetStream, true}} {
		mode := v.mode
		for _, engines := range [][]wskit.Engine{{wskit.EnginePoll, wskit.EngineStd, wskit.EnginePoll}, {wskit.EngineStd, wskit.EnginePoll, wskit.EngineStd}} {
			name := fmt.Sprintf("%v/%v-%v-%v", mode, engines[0], engines[1], engines[2])
			if v.async {
				name = fmt.Sprintf("%v-async/%v-%v-%v", mode, engines[0], engines[1], engines[2])
			}
			t.Run(name, func(t *testing.T) {
				ns := startJetStream(t)
				var nodes []*node
				for i, e := range engines {
					nodes = append(nodes, startNode(t, fmt.Sprint("n", i), ns.ClientURL(),
						nodeConfig{mode: mode, engine: e, broker: wsnats.Options{AsyncPublish: v.async}}))
				}
				members := make([]*member, subscribers)
				for i := range members {
					members[i] = join(t, nodes[i%len(nodes)], "")
				}
				awaitSubscribers(t, nodes, "lobby", subscribers)

				var wg sync.WaitGroup
				for p, n := range nodes {
					wg.Go(func() {
						for i := range perPublisher {
							if err := publish(t, n, "lobby", fmt.Sprintf("p%d-%d", p, i)); err != nil {
								t.Errorf("publish on %s: %v", n.name, err)
								return
							}
						}
					})
				}
				wg.Wait()
				total := perPublisher * len(nodes)
				awaitCount(t, members, total)

				var order []string // the first member's, with JetStream everyone's
				for i, m := range members {
					got, seqs, err := m.received()
					if err != nil {
						t.Fatalf("member %d: %v", i, err)
					}
					if len(got) != total {
						t.Fatalf("member %d received %d messages, want %d", i, len(got), total)
					}
					checkPublisherOrder(t, i, got, len(nodes), perPublisher)
					if mode != wsnats.JetStream {
						continue
					}
					for j := 1; j < len(seqs); j++ {
						if seqs[j] <= seqs[j-1] {
							t.Fatalf("member %d: sequence %d after %d", i, seqs[j], seqs[j-1])
						}
					}
					if order == nil {
						order = got
					} else if !slices.Equal(order, got) {
						t.Fatalf("member %d (on %s) saw another order than member 0", i, nodes[i%len(nodes)].name)
					}
				}
				for _, n := range nodes {
					st := n.broker.Stats()
					if st.Topics != 1 || st.PublishErrors != 0 {
						t.Errorf("%s: %+v", n.name, st)
					}
				}
			})
		}
	}
}

// checkPublisherOrder checks that got holds each of publishers' messages
// "p<publisher>-<i>" once, in order.
func checkPublisherOrder(t *testing.T, member int, got []string, publishers, each int) {
	t.Helper()
	next := make([]int, publishers)
	for _, m := range got {
		p, i, ok := strings.Cut(strings.TrimPrefix(m, "p"), "-")
		pn, err1 := strconv.Atoi(p)
		in, err2 := strconv.Atoi(i)
		if !ok || err1 != nil || err2 != nil || pn >= publishers {
			t.Fatalf("member %d: unexpected message %q", member, m)
		}
		if in != next[pn] {
			t.Fatalf("member %d: %q after message %d of publisher %d", member, m, next[pn]-1, pn)
		}
		next[pn]++
	}
	for p, n := range next {
		if n != each {
			t.Fatalf("member %d: %d messages of publisher %d, want %d", member, n, p, each)
		}
	}
}
