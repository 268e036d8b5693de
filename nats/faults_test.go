package nats_test

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/wskit/wskit"
	"github.com/wskit/wskit/internal/race"
	wsnats "github.com/wskit/wskit/nats"
	"github.com/wskit/wskit/nats/internal/embedded"
)

// publisher publishes "m0", "m1", … to the topic lobby from a node, a
// message every millisecond, until stopped; it keeps which were accepted.
type publisher struct {
	n    *node
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	acked    []int
	refused  int
	nonClear []error // refusals that do not say the broker is away
}

func startPublisher(t *testing.T, n *node) *publisher {
	p := &publisher{n: n, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			case <-time.After(time.Millisecond):
			}
			err := publish(t, p.n, "lobby", fmt.Sprint("m", i))
			p.mu.Lock()
			switch {
			case err == nil:
				p.acked = append(p.acked, i)
			case isUnavailable(err):
				p.refused++
			default:
				p.refused++
				p.nonClear = append(p.nonClear, err)
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// ackedCount returns how many messages were accepted.
func (p *publisher) ackedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// awaitAcked waits until n more messages were accepted.
func (p *publisher) awaitAcked(t *testing.T, n int) {
	t.Helper()
	want := p.ackedCount() + n
	for deadline := time.Now().Add(wait); p.ackedCount() < want; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages accepted, want %d", p.ackedCount(), want)
		}
	}
}

func (p *publisher) finish() []int {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked
}

// numbers returns the numbers of messages "m<i>".
func numbers(t *testing.T, got []string) []int {
	t.Helper()
	var out []int
	for _, m := range got {
		i, err := strconv.Atoi(strings.TrimPrefix(m, "m"))
		if err != nil {
			t.Fatalf("unexpected message %q", m)
		}
		out = append(out, i)
	}
	return out
}

// checkStream checks what a member received with JetStream: sequences
// that increase (none twice) and, among the numbers, every accepted one.
func checkStream(t *testing.T, who string, got []string, seqs []uint64, acked []int) {
	t.Helper()
	for j := 1; j < len(seqs); j++ {
		if seqs[j] <= seqs[j-1] {
			t.Fatalf("%s: sequence %d after %d", who, seqs[j], seqs[j-1])
		}
	}
	nums := numbers(t, got)
	for j := 1; j < len(nums); j++ {
		if nums[j] <= nums[j-1] {
			t.Fatalf("%s: m%d after m%d", who, nums[j], nums[j-1])
		}
	}
	for _, a := range acked {
		if _, ok := slices.BinarySearch(nums, a); !ok {
			t.Fatalf("%s misses m%d, which was accepted", who, a)
		}
	}
}

// awaitAll waits until each member received the last accepted message.
func awaitAll(t *testing.T, members []*member, acked []int) {
	t.Helper()
	last := fmt.Sprint("m", acked[len(acked)-1])
	deadline := time.Now().Add(wait)
	for i, m := range members {
		for {
			got, _, _ := m.received()
			if slices.Contains(got, last) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("member %d did not receive %s (it has %d messages)", i, last, len(got))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// awaitConnected waits until every node's broker is connected.
func awaitConnected(t *testing.T, nodes []*node) {
	t.Helper()
	for deadline := time.Now().Add(wait); ; time.Sleep(5 * time.Millisecond) {
		up := 0
		for _, n := range nodes {
			if n.broker.Stats().Connected {
				up++
			}
		}
		if up == len(nodes) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the nodes did not reconnect to NATS")
		}
	}
}

// NATS goes away mid-stream and comes back on the same port and store:
// meanwhile publishes fail with ErrBrokerUnavailable (core NATS buffers
// them within its reconnect buffer), sessions stay open, and afterwards
// the nodes follow their topics again. With JetStream every member then
// has every accepted message once, in one order; with core NATS none
// twice, and everything published once the nodes are back.
func TestClusterNATSRestart(t *testing.T) {
	subscribers := 150
	if race.Enabled {
		subscribers = 60
	}
	for _, mode := range []wsnats.Mode{wsnats.Core, wsnats.JetStream} {
		t.Run(mode.String(), func(t *testing.T) {
			store := t.TempDir()
			ns := startNATS(t, embedded.Config{JetStream: true, StoreDir: store})
			addr := ns.Addr().String()
			var nodes []*node
			for i, e := range []wskit.Engine{wskit.EnginePoll, wskit.EngineStd, wskit.EnginePoll} {
				nodes = append(nodes, startNode(t, fmt.Sprint("n", i), ns.ClientURL(), nodeConfig{mode: mode, engine: e}))
			}
			members := make([]*member, subscribers)
			for i := range members {
				members[i] = join(t, nodes[i%3], "")
			}
			awaitSubscribers(t, nodes, "lobby", subscribers)
			p := startPublisher(t, nodes[1])
			p.awaitAcked(t, 100)

			ns.Shutdown()
			ns.WaitForShutdown()
			time.Sleep(300 * time.Millisecond)
			ns = startNATS(t, embedded.Config{Listen: addr, JetStream: true, StoreDir: store})
			awaitConnected(t, nodes)
			p.awaitAcked(t, 100)
			settled := p.ackedCount()
			p.awaitAcked(t, 100)
			acked := p.finish()
			awaitAll(t, members, acked)
			t.Logf("%d accepted, %d refused while NATS was away", len(acked), p.refused)
			for _, err := range p.nonClear {
				t.Errorf("publish refused without ErrBrokerUnavailable: %v", err)
			}
			if mode == wsnats.JetStream && p.refused == 0 {
				t.Error("no JetStream publish was refused while NATS was away")
			}
			var order []string
			for i, m := range members {
				got, seqs, err := m.received()
				if err != nil {
					t.Fatal(err)
				}
				who := fmt.Sprintf("member %d on %s", i, nodes[i%3].name)
				if mode == wsnats.JetStream {
					checkStream(t, who, got, seqs, acked)
					if order == nil {
						order = got
					} else if !slices.Equal(order, got) {
						t.Fatalf("%s saw another order than member 0", who)
					}
					continue
				}
				checkStream(t, who, got, nil, acked[settled:])
			}
			for _, n := range nodes {
				if st := n.broker.Stats(); st.Disconnects == 0 || st.Reconnects == 0 {
					t.Errorf("%s: %+v", n.name, st)
				}
			}
		})
	}
}

// A node dies mid-stream: its members come back on the other nodes with
// the sequence of the last message they received, and have, with what they
// had, every accepted message once, in the order of the members that
// stayed; the other nodes go on unhindered.
func TestClusterNodeKilled(t *testing.T) {
	subscribers := 150
	if race.Enabled {
		subscribers = 60
	}
	ns := startJetStream(t)
	var nodes []*node
	for i, e := range []wskit.Engine{wskit.EnginePoll, wskit.EngineStd, wskit.EnginePoll} {
		nodes = append(nodes, startNode(t, fmt.Sprint("n", i), ns.ClientURL(), nodeConfig{mode: wsnats.JetStream, engine: e, hub: wskit.HubOptions{Replay: 16}}))
	}
	members := make([]*member, subscribers)
	for i := range members {
		members[i] = join(t, nodes[i%3], "")
	}
	awaitSubscribers(t, nodes, "lobby", subscribers)
	p := startPublisher(t, nodes[0])
	p.awaitAcked(t, 100)

	nodes[2].kill()
	// Its members come back, each to one of the others.
	type moved struct {
		before, after *member
	}
	var movers []moved
	for i := 2; i < subscribers; i += 3 {
		m := members[i]
		<-m.done
		n := nodes[i%2]
		movers = append(movers, moved{m, join(t, n, fmt.Sprint("after=", m.last()))})
	}
	p.awaitAcked(t, 100)
	acked := p.finish()
	var stayed []*member
	for i, m := range members {
		if i%3 != 2 {
			stayed = append(stayed, m)
		}
	}
	awaitAll(t, stayed, acked)
	for _, mv := range movers {
		awaitAll(t, []*member{mv.after}, acked)
	}
	order, _, _ := stayed[0].received()
	for i, m := range stayed {
		got, seqs, err := m.received()
		if err != nil {
			t.Fatal(err)
		}
		checkStream(t, fmt.Sprint("member ", i), got, seqs, acked)
		if !slices.Equal(order, got) {
			t.Fatalf("member %d saw another order", i)
		}
	}
	for i, mv := range movers {
		got1, seqs1, _ := mv.before.received()
		got2, seqs2, _ := mv.after.received()
		got, seqs := append(got1, got2...), append(seqs1, seqs2...)
		checkStream(t, fmt.Sprint("moved member ", i), got, seqs, acked)
		if !slices.Equal(order, got) {
			t.Fatalf("moved member %d: %d messages, want the %d of the others in their order", i, len(got), len(order))
		}
	}
}

// Two nats-servers joined by routes, nodes on each: the messages of every
// node reach every member on both modes, with JetStream in one order.
func TestClusterRoutes(t *testing.T) {
	subscribers := 300
	if race.Enabled {
		subscribers = 90
	}
	ports := freeAddrs(t, 2)
	var servers []*server.Server
	for i := range 2 {
		servers = append(servers, startNATS(t, embedded.Config{
			Name: fmt.Sprint("nats", i), Cluster: ports[i], Routes: ports,
			JetStream: true, StoreDir: t.TempDir(),
		}))
	}
	for _, mode := range []wsnats.Mode{wsnats.Core, wsnats.JetStream} {
		t.Run(mode.String(), func(t *testing.T) {
			var nodes []*node
			for i := range 3 {
				nodes = append(nodes, startNode(t, fmt.Sprint("n", i), servers[i%2].ClientURL(), nodeConfig{mode: mode, engine: wskit.EnginePoll,
					broker: wsnats.Options{Prefix: "routes-" + mode.String(), Stream: "ROUTES_" + strings.ToUpper(mode.String())}}))
			}
			members := make([]*member, subscribers)
			for i := range members {
				members[i] = join(t, nodes[i%3], "")
			}
			awaitSubscribers(t, nodes, "lobby", subscribers)
			if mode == wsnats.Core {
				// Each server's interest in the topic: its nodes' and
				// the other server's, by the route.
				awaitInterest(t, servers[0], nodes[0].broker.Subject("lobby"), 3)
				awaitInterest(t, servers[1], nodes[0].broker.Subject("lobby"), 2)
			}
			var wg sync.WaitGroup
			const each = 30
			for p, n := range nodes {
				wg.Go(func() {
					for i := range each {
						if err := publish(t, n, "lobby", fmt.Sprintf("p%d-%d", p, i)); err != nil {
							t.Errorf("publish on %s: %v", n.name, err)
							return
						}
					}
				})
			}
			wg.Wait()
			awaitCount(t, members, each*len(nodes))
			var order []string
			for i, m := range members {
				got, _, err := m.received()
				if err != nil {
					t.Fatal(err)
				}
				checkPublisherOrder(t, i, got, len(nodes), each)
				if mode == wsnats.JetStream {
					if order == nil {
						order = got
					} else if !slices.Equal(order, got) {
						t.Fatalf("member %d saw another order", i)
					}
				}
			}
		})
	}
}

// freeAddrs returns n loopback addresses with free ports.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, ln.Addr().String())
		ln.Close()
	}
	return addrs
}

// awaitInterest waits until ns counts n subscriptions to subject.
func awaitInterest(t *testing.T, ns *server.Server, subject string, n int) {
	t.Helper()
	for deadline := time.Now().Add(wait); ns.GlobalAccount().Interest(subject) < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d subscriptions to %s, want %d", ns.Name(), ns.GlobalAccount().Interest(subject), subject, n)
		}
	}
}
