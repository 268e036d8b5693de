package wskit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/race"
)

// memBroker is a BrokerHistory in memory, for the core's tests of hubs on
// a broker: one log of numbered messages for all topics, as a JetStream
// stream keeps, and a goroutine per subscription that delivers in order.
type memBroker struct {
	mu     sync.Mutex
	seq    uint64
	log    []memEntry
	keep   int // the newest messages kept per topic; 0: all
	subs   map[*memSub]struct{}
	follow map[string]int // subscriptions per topic
	down   bool           // publishes and History fail with ErrBrokerUnavailable
}

type memEntry struct {
	topic string
	msg   BrokerMessage
}

func newMemBroker() *memBroker {
	return &memBroker{subs: make(map[*memSub]struct{}), follow: make(map[string]int)}
}

func (b *memBroker) Publish(_ context.Context, topic string, t MessageType, p []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return fmt.Errorf("%w: down for the test", ErrBrokerUnavailable)
	}
	b.seq++
	e := memEntry{topic, BrokerMessage{Seq: b.seq, Type: t, Payload: append([]byte(nil), p...)}}
	b.log = append(b.log, e)
	if b.keep > 0 {
		var kept []memEntry
		n := 0
		for i := len(b.log) - 1; i >= 0; i-- {
			if b.log[i].topic == topic {
				n++
				if n > b.keep {
					continue
				}
			}
			kept = append(kept, b.log[i])
		}
		slices.Reverse(kept)
		b.log = kept
	}
	for s := range b.subs {
		if s.topic == topic {
			s.push(e.msg)
		}
	}
	return nil
}

func (b *memBroker) Subscribe(topic string, replay int, deliver func(BrokerMessage)) (BrokerSubscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &memSub{b: b, topic: topic, deliver: deliver, more: make(chan struct{}, 1), stop: make(chan struct{})}
	var kept []BrokerMessage
	for _, e := range b.log {
		if e.topic == topic {
			kept = append(kept, e.msg)
		}
	}
	for _, m := range kept[max(0, len(kept)-replay):] {
		s.push(m)
	}
	b.subs[s] = struct{}{}
	b.follow[topic]++
	go s.run()
	return s, nil
}

func (b *memBroker) KeepsHistory() bool { return true }

func (b *memBroker) History(_ context.Context, topic string, after uint64, fn func(BrokerMessage) error) (bool, error) {
	b.mu.Lock()
	if b.down {
		b.mu.Unlock()
		return false, fmt.Errorf("%w: down for the test", ErrBrokerUnavailable)
	}
	var msgs []BrokerMessage
	complete := false
	for _, e := range b.log {
		if e.topic == topic && e.msg.Seq == after {
			complete = true
		}
		if e.topic == topic && e.msg.Seq > after {
			msgs = append(msgs, e.msg)
		}
	}
	b.mu.Unlock()
	for _, m := range msgs {
		if err := fn(m); err != nil {
			return false, err
		}
	}
	return complete, nil
}

// following returns the number of subscriptions to topic.
func (b *memBroker) following(topic string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.follow[topic]
}

type memSub struct {
	b       *memBroker
	topic   string
	deliver func(BrokerMessage)
	mu      sync.Mutex
	queue   []BrokerMessage
	more    chan struct{}
	stop    chan struct{}
	once    sync.Once
}

func (s *memSub) push(m BrokerMessage) {
	s.mu.Lock()
	s.queue = append(s.queue, m)
	s.mu.Unlock()
	select {
	case s.more <- struct{}{}:
	default:
	}
}

func (s *memSub) run() {
	for {
		select {
		case <-s.stop:
			return
		case <-s.more:
		}
		s.mu.Lock()
		q := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, m := range q {
			s.deliver(m)
		}
	}
}

func (s *memSub) Unsubscribe() error {
	s.once.Do(func() {
		s.b.mu.Lock()
		delete(s.b.subs, s)
		s.b.follow[s.topic]--
		s.b.mu.Unlock()
		close(s.stop)
	})
	return nil
}

// seqStamp is the tests' HubOptions.Stamp: "seq payload".
func seqStamp(dst []byte, seq uint64, p []byte) []byte {
	dst = strconv.AppendUint(dst, seq, 10)
	return append(append(dst, ' '), p...)
}

// brokerRoutes serves topics on /: a session subscribes to ?room= (after
// ?after= when given: its result goes to recovered) and publishes every
// message to it.
func brokerRoutes(topics *Topics, recovered chan<- bool) func(*Server) http.Handler {
	return func(srv *Server) http.Handler {
		return srv.WebSocket(func(s *Session) {
			q := s.Request().URL.Query()
			room := q.Get("room")
			if a := q.Get("after"); a != "" {
				after, _ := strconv.ParseUint(a, 10, 64)
				ok, err := topics.SubscribeAfter(context.Background(), room, s, after)
				if err != nil {
					s.Close(CloseInternalError, err.Error())
					return
				}
				recovered <- ok
			} else if err := topics.Subscribe(room, s); err != nil {
				s.Close(CloseInternalError, err.Error())
				return
			}
			for m := range s.Messages() {
				topics.Publish(context.Background(), room, m.Type, m.Payload)
			}
		})
	}
}

// Two nodes on one broker: what is published on either reaches the members
// of both once, stamped with the broker's sequence, in its order; a node
// follows a topic only while it has members in it.
func TestHubBrokerNodes(t *testing.T) {
	ptLeakCheck(t)
	b := newMemBroker()
	var nodes []*Topics
	var addrs []string
	for _, e := range []Engine{EnginePoll, EngineStd} {
		topics, err := NewTopics(HubOptions{Broker: b, Topic: "rooms.", Stamp: seqStamp, Replay: 4})
		if err != nil {
			t.Fatal(err)
		}
		opts := ptOptions()
		opts.Engine = e
		_, addr := ptStart(t, opts, nil, brokerRoutes(topics, nil))
		nodes, addrs = append(nodes, topics), append(addrs, addr)
	}
	var peers []*ptPeer
	for i := range 6 {
		peers = append(peers, ptDial(t, addrs[i%2], "/?room=a"))
	}
	waitFor(t, "members", func() bool {
		return nodes[0].Hub("a") != nil && nodes[1].Hub("a") != nil &&
			nodes[0].Hub("a").Subscribers()+nodes[1].Hub("a").Subscribers() == 6
	})
	if n := b.following("rooms.a"); n != 2 {
		t.Fatalf("%d subscriptions on the broker, want one per node", n)
	}
	for i, p := range peers[:2] {
		for j := range 5 {
			p.mustWrite(ptFrame(true, frame.OpText, []byte(fmt.Sprintf("from %d: %d", i, j))))
		}
	}
	var first []string
	for i, p := range peers {
		got, err := readTexts(p, 10)
		if err != nil {
			t.Fatalf("peer %d: %v", i, err)
		}
		for j, m := range got {
			if !strings.HasPrefix(m, strconv.Itoa(j+1)+" ") {
				t.Fatalf("peer %d: message %d is %q, want sequence %d", i, j, m, j+1)
			}
		}
		if first == nil {
			first = got
		} else if !slices.Equal(first, got) {
			t.Fatalf("peer %d received %q, peer 0 %q", i, got, first)
		}
	}
	for _, p := range peers {
		p.nc.Close()
	}
	waitFor(t, "the nodes to forget the room", func() bool {
		return b.following("rooms.a") == 0 && nodes[0].Len() == 0 && nodes[1].Len() == 0
	})

	// Publishing needs no hub on the node; a refusal comes back wrapped.
	if err := nodes[0].Publish(context.Background(), "b", Text, []byte("x")); err != nil || nodes[0].Len() != 0 {
		t.Fatalf("publish to a room nobody is in: %v, %d rooms", err, nodes[0].Len())
	}
	b.mu.Lock()
	b.down = true
	b.mu.Unlock()
	if err := nodes[0].Publish(context.Background(), "b", Text, []byte("x")); !errors.Is(err, ErrBrokerUnavailable) {
		t.Fatalf("publish while the broker is down: %v", err)
	}
}

// A member that comes back with the sequence of the last message it
// received gets what it missed: from the replay of a node that keeps it,
// else from the broker's history, then the rest, none twice.
func TestHubBrokerRecovery(t *testing.T) {
	ptLeakCheck(t)
	b := newMemBroker()
	b.keep = 20
	recovered := make(chan bool, 4)
	var addrs []string
	var nodes []*Topics
	for range 2 {
		topics, err := NewTopics(HubOptions{Broker: b, Stamp: seqStamp, Replay: 3})
		if err != nil {
			t.Fatal(err)
		}
		_, addr := ptStart(t, ptOptions(), nil, brokerRoutes(topics, recovered))
		addrs, nodes = append(addrs, addr), append(nodes, topics)
	}
	publish := func(from, n int) {
		for i := from; i < from+n; i++ {
			if err := nodes[0].Publish(context.Background(), "r", Text, []byte(fmt.Sprint("m", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	stay := ptDial(t, addrs[1], "/?room=r")
	waitFor(t, "a member", func() bool { return nodes[1].Hub("r") != nil && nodes[1].Hub("r").Subscribers() == 1 })
	publish(0, 10)
	if _, err := readTexts(stay, 10); err != nil {
		t.Fatal(err)
	}
	sent := 10
	for _, c := range []struct {
		node      int
		after     uint64
		want      []string
		recovered bool
	}{
		{0, 4, []string{"5 m4", "6 m5", "7 m6", "8 m7", "9 m8", "10 m9"}, true}, // from the history
		{1, 8, []string{"9 m8", "10 m9", "11 m10"}, true},                       // from n1's replay
		{1, 12, nil, true}, // missed nothing
	} {
		p := ptDial(t, addrs[c.node], fmt.Sprintf("/?room=r&after=%d", c.after))
		if ok := ptAwait(t, recovered, "SubscribeAfter"); ok != c.recovered {
			t.Fatalf("after %d: recovered all %v, want %v", c.after, ok, c.recovered)
		}
		got, err := readTexts(p, len(c.want))
		if err != nil || !slices.Equal(got, c.want) {
			t.Fatalf("after %d on n%d: %q, %v; want %q", c.after, c.node, got, err, c.want)
		}
		publish(sent, 1) // then the live ones, once
		sent++
		want := fmt.Sprintf("%d m%d", sent, sent-1)
		if err := p.expect(frame.OpText, []byte(want)); err != nil {
			t.Fatalf("after %d: %v, want %q", c.after, err, want)
		}
		if _, err := readTexts(stay, 1); err != nil {
			t.Fatal(err)
		}
		p.nc.Close()
	}
	// Past what the broker keeps (20 messages): the rest, and false.
	publish(100, 30)
	p := ptDial(t, addrs[0], "/?room=r&after=3")
	if ok := ptAwait(t, recovered, "SubscribeAfter"); ok {
		t.Fatal("recovered all though the broker dropped messages")
	}
	got, err := readTexts(p, 20)
	if err != nil || got[0] != "24 m110" || got[19] != "43 m129" {
		t.Fatalf("%q, %v", got, err)
	}
	if st := nodes[0].Hub("r").Stats(); st.Unrecovered != 1 {
		t.Fatalf("stats: %+v", st)
	}

	// A history that cannot be read leaves the session unsubscribed, with
	// the error: here the route closes it with 1011.
	p.nc.Close()
	left := func() bool { h := nodes[0].Hub("r"); return h == nil || h.Subscribers() == 0 }
	waitFor(t, "n0's members to leave", left)
	b.mu.Lock()
	b.down = true
	b.mu.Unlock()
	p = ptDial(t, addrs[0], "/?room=r&after=3")
	if h, payload, err := p.readFrame(); err != nil || h.Op != frame.OpClose || len(payload) < 2 ||
		CloseCode(payload[0])<<8|CloseCode(payload[1]) != CloseInternalError {
		t.Fatalf("%v %q, %v; want a close frame with 1011", h.Op, payload, err)
	}
	if !left() {
		t.Fatalf("n0's room has %d subscribers after a failed recovery, want none", nodes[0].Hub("r").Subscribers())
	}
}

// Without a broker, SubscribeAfter recovers from the replay, numbered by the
// hub, and reports false when the replay no longer holds the message after.
func TestHubSubscribeAfterReplay(t *testing.T) {
	ptLeakCheck(t)
	hub := newTestHub(t, HubOptions{Replay: 5, Stamp: seqStamp})
	t.Cleanup(hub.Close) // its replay holds pooled buffers
	after := make(chan *Session, 1)
	_, addr := ptStart(t, ptOptions(), nil, func(srv *Server) http.Handler {
		return srv.WebSocketEvents(Events{OnOpen: func(s *Session) { after <- s }})
	})
	first := ptDial(t, addr, "/")
	hub.Subscribe(ptAwait(t, after, "a session"))
	for i := range 10 {
		hub.PublishText(context.Background(), fmt.Sprint("m", i))
	}
	if _, err := readTexts(first, 10); err != nil {
		t.Fatal(err)
	}
	first.nc.Close()
	for _, c := range []struct {
		after     uint64
		recovered bool
		want      []string
	}{
		{7, true, []string{"8 m7", "9 m8", "10 m9"}},
		{5, true, []string{"6 m5", "7 m6", "8 m7", "9 m8", "10 m9"}},
		{4, false, []string{"6 m5", "7 m6", "8 m7", "9 m8", "10 m9"}}, // the replay
		{10, true, nil},
		{0, true, []string{"6 m5", "7 m6", "8 m7", "9 m8", "10 m9"}}, // nothing asked: the replay
	} {
		p := ptDial(t, addr, "/")
		ok, err := hub.SubscribeAfter(context.Background(), ptAwait(t, after, "a session"), c.after)
		if err != nil || ok != c.recovered {
			t.Fatalf("after %d: %v, %v; want %v", c.after, ok, err, c.recovered)
		}
		got, err := readTexts(p, len(c.want))
		if err != nil || !slices.Equal(got, c.want) {
			t.Fatalf("after %d: %q, %v; want %q", c.after, got, err, c.want)
		}
		if h, m, err := p.readFrameWithin(20 * time.Millisecond); err == nil {
			t.Fatalf("after %d: then %v %q", c.after, h.Op, m)
		}
		p.nc.Close()
	}
}

// captureBroker keeps the deliver function of the last subscription, so
// that a test can deliver as a broker would.
type captureBroker struct {
	mu      sync.Mutex
	deliver func(BrokerMessage)
}

func (b *captureBroker) Publish(context.Context, string, MessageType, []byte) error { return nil }

func (b *captureBroker) Subscribe(_ string, _ int, deliver func(BrokerMessage)) (BrokerSubscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.deliver = deliver
	return b, nil
}

func (b *captureBroker) Unsubscribe() error { return nil }

// A message from the broker is fanned out as a local publish is: nothing
// allocated per message in steady state, stamped or not.
func TestHubBrokerDeliveryDoesNotAllocate(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector allocates")
	}
	const subscribers = 50
	for _, stamped := range []bool{false, true} {
		for _, c := range hubCases {
			t.Run(fmt.Sprintf("%v/stamped=%v", c, stamped), func(t *testing.T) {
				b := &captureBroker{}
				opts := HubOptions{Broker: b, Topic: "t"}
				if stamped {
					opts.Stamp = seqStamp
				}
				hub := newTestHub(t, opts)
				addr := hubServer(t, c, hub, nil, nil)
				peers := joinHub(t, hub, addr, c.path, subscribers)
				msg := []byte(strings.Repeat("m", 64))
				for _, p := range peers {
					p.nc.SetReadDeadline(time.Now().Add(time.Minute))
				}
				b.mu.Lock()
				deliver := b.deliver
				b.mu.Unlock()
				seq := uint64(1_000_000) // seven digits for the whole test
				frameLen := 2 + len(seqStamp(nil, seq, msg))
				if !stamped {
					frameLen = 2 + len(msg)
				}
				buf := make([]byte, frameLen)
				ptZeroAllocs(t, "deliver to "+strconv.Itoa(subscribers)+" subscribers", func() error {
					seq++
					deliver(BrokerMessage{Seq: seq, Type: Binary, Payload: msg})
					for _, p := range peers {
						if _, err := io.ReadFull(p.br, buf); err != nil {
							return err
						}
					}
					return nil
				})
			})
		}
	}
}

// Messages without a sequence (core NATS numbers none) recover nothing:
// SubscribeAfter subscribes with the replay and reports false.
func TestHubSubscribeAfterUnnumbered(t *testing.T) {
	ptLeakCheck(t)
	b := &captureBroker{}
	hub := newTestHub(t, HubOptions{Broker: b, Topic: "t", Replay: 5, Stamp: seqStamp})
	t.Cleanup(hub.Close)
	opened := make(chan *Session, 2)
	_, addr := ptStart(t, ptOptions(), nil, func(srv *Server) http.Handler {
		return srv.WebSocketEvents(Events{OnOpen: func(s *Session) { opened <- s }})
	})
	first := ptDial(t, addr, "/")
	if err := hub.Subscribe(ptAwait(t, opened, "a session")); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	deliver := b.deliver
	b.mu.Unlock()
	for _, m := range []string{"a", "b", "c"} {
		deliver(BrokerMessage{Type: Text, Payload: []byte(m)})
	}
	if _, err := readTexts(first, 3); err != nil {
		t.Fatal(err)
	}
	// first stays: a node that no member follows the topic on forgets
	// its replay.
	p := ptDial(t, addr, "/")
	ok, err := hub.SubscribeAfter(context.Background(), ptAwait(t, opened, "a session"), 2)
	if err != nil || ok {
		t.Fatalf("SubscribeAfter: %v, %v; want false", ok, err)
	}
	if got, err := readTexts(p, 3); err != nil || !slices.Equal(got, []string{"0 a", "0 b", "0 c"}) {
		t.Fatalf("%q, %v; want the replay", got, err)
	}
	p.nc.Close()
	first.nc.Close()
}
