package nats_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/wskit/wskit"
	wsnats "github.com/wskit/wskit/nats"
	"github.com/wskit/wskit/nats/internal/embedded"
)

// wait bounds every wait of these tests.
const wait = 30 * time.Second

// startNATS runs an embedded nats-server on a free loopback port until the
// test ends.
func startNATS(t testing.TB, c embedded.Config) *server.Server {
	t.Helper()
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	ns, err := embedded.Start(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// startJetStream runs an embedded nats-server with JetStream in a
// temporary directory.
func startJetStream(t testing.TB) *server.Server {
	return startNATS(t, embedded.Config{JetStream: true, StoreDir: t.TempDir()})
}

// stamp is the nodes' HubOptions.Stamp: "seq payload".
func stamp(dst []byte, seq uint64, p []byte) []byte {
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, ' ')
	return append(dst, p...)
}

// unstamp splits a stamped message.
func unstamp(m string) (uint64, string, error) {
	n, text, ok := strings.Cut(m, " ")
	if !ok {
		return 0, "", fmt.Errorf("message %q has no sequence", m)
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	return seq, text, err
}

// node is one wskit server on a broker: /hub subscribes each session to
// the topic of its ?topic= (default "lobby"), after the sequence in
// ?after= if given, and publishes every message it sends.
type node struct {
	name   string
	broker *wsnats.Broker
	topics *wskit.Topics
	srv    *wskit.Server
	ln     net.Listener
	served chan error
	// joined receives whether each SubscribeAfter recovered all.
	joined chan bool
	closed bool
}

type nodeConfig struct {
	mode   wsnats.Mode
	engine wskit.Engine
	hub    wskit.HubOptions
	broker wsnats.Options
	// suspend keeps hub.Overflow's OverflowSuspend, which is otherwise
	// taken for the zero value and replaced by OverflowDropOldest.
	suspend bool
}

func startNode(t testing.TB, name, natsURL string, c nodeConfig) *node {
	t.Helper()
	bo := c.broker
	bo.Mode = c.mode
	bo.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		bo.Logger = slog.Default().With("node", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	b, err := wsnats.Connect(ctx, natsURL, bo)
	if err != nil {
		t.Fatal(err)
	}
	ho := c.hub
	ho.Broker = b
	ho.Stamp = stamp
	if ho.Overflow == wskit.OverflowSuspend && !c.suspend {
		ho.Overflow = wskit.OverflowDropOldest
	}
	topics, err := wskit.NewTopics(ho)
	if err != nil {
		t.Fatal(err)
	}
	opts := wskit.DefaultOptions()
	opts.Engine = c.engine
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := wskit.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{name: name, broker: b, topics: topics, srv: srv, served: make(chan error, 1), joined: make(chan bool, 4096)}
	n.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/hub", srv.WebSocket(func(s *wskit.Session) {
		q := s.Request().URL.Query()
		topic := q.Get("topic")
		if topic == "" {
			topic = "lobby"
		}
		if a := q.Get("after"); a != "" {
			after, _ := strconv.ParseUint(a, 10, 64)
			ok, err := topics.SubscribeAfter(context.Background(), topic, s, after)
			if err != nil {
				s.Close(wskit.CloseInternalError, err.Error())
				return
			}
			n.joined <- ok
		} else if err := topics.Subscribe(topic, s); err != nil {
			s.Close(wskit.CloseInternalError, err.Error())
			return
		}
		for m := range s.Messages() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			topics.Publish(ctx, topic, m.Type, m.Payload)
			cancel()
		}
	}))
	go func() { n.served <- srv.Serve(n.ln, mux) }()
	t.Cleanup(n.stop)
	return n
}

// url returns the node's /hub URL with the query q.
func (n *node) url(q string) string {
	u := "ws://" + n.ln.Addr().String() + "/hub"
	if q != "" {
		u += "?" + q
	}
	return u
}

// stop shuts the node down: its sessions get 1001, then its broker closes.
func (n *node) stop() {
	if n.closed {
		return
	}
	n.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.srv.Shutdown(ctx)
	<-n.served
	n.broker.Close()
}

// kill ends the node as a crash would: its connections are cut, and so is
// its connection to NATS, with no goodbye.
func (n *node) kill() {
	if n.closed {
		return
	}
	n.closed = true
	n.broker.Conn().Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no grace: cut
	n.srv.Shutdown(ctx)
	<-n.served
	n.broker.Close()
}

// member is a client subscribed on a node; it keeps what it receives.
type member struct {
	s *wskit.Session

	mu   sync.Mutex
	got  []string // messages without their sequence
	seqs []uint64
	err  error
	more chan struct{} // signalled on every message
	done chan struct{}
}

// join dials n's /hub with the query q and reads until the session ends.
func join(t testing.TB, n *node, q string) *member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	o := wskit.DefaultOptions()
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	o.Timeout = 2 * time.Second
	s, err := wskit.Dial(ctx, n.url(q), &wskit.DialOptions{Options: o})
	if err != nil {
		t.Fatalf("join %s: %v", n.name, err)
	}
	m := &member{s: s, more: make(chan struct{}, 1), done: make(chan struct{})}
	go m.read()
	t.Cleanup(func() { s.Close(wskit.CloseNormal, ""); <-m.done })
	return m
}

func (m *member) read() {
	defer close(m.done)
	for msg := range m.s.Messages() {
		seq, text, err := unstamp(msg.Text())
		m.mu.Lock()
		if err != nil && m.err == nil {
			m.err = err
		}
		m.got = append(m.got, text)
		m.seqs = append(m.seqs, seq)
		m.mu.Unlock()
		select {
		case m.more <- struct{}{}:
		default:
		}
	}
}

// count returns the number of messages m received.
func (m *member) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.got)
}

// received returns copies of what m received.
func (m *member) received() ([]string, []uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.got...), append([]uint64(nil), m.seqs...), m.err
}

// last returns the sequence of the last message m received.
func (m *member) last() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.seqs) == 0 {
		return 0
	}
	return m.seqs[len(m.seqs)-1]
}

// awaitCount waits until every member received at least n messages.
func awaitCount(t testing.TB, members []*member, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for i, m := range members {
		for m.count() < n {
			if time.Now().After(deadline) {
				t.Fatalf("member %d received %d messages, want %d", i, m.count(), n)
			}
			select {
			case <-m.more:
			case <-m.done:
				if m.count() < n {
					t.Fatalf("member %d ended after %d messages, want %d: %v", i, m.count(), n, m.s.Err())
				}
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// awaitSubscribers waits until the nodes' topic has n subscribers in all.
func awaitSubscribers(t testing.TB, nodes []*node, topic string, n int) {
	t.Helper()
	for deadline := time.Now().Add(wait); ; time.Sleep(time.Millisecond) {
		sum := 0
		for _, nd := range nodes {
			if h := nd.topics.Hub(topic); h != nil && !nd.closed {
				sum += h.Subscribers()
			}
		}
		if sum == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers to %s, want %d", sum, topic, n)
		}
	}
}

// publish publishes text to the topic from node n, retrying for a while if
// NATS is away; it reports whether it was published.
func publish(t testing.TB, n *node, topic, text string) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return n.topics.Publish(ctx, topic, wskit.Text, []byte(text))
}

// isUnavailable reports whether err says the broker could not reach NATS.
func isUnavailable(err error) bool { return errors.Is(err, wskit.ErrBrokerUnavailable) }
