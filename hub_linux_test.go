package wskit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/race"
)

// hubRoutes serves hub on /events (Events callbacks: greet, subscribe,
// publish every message) and /session (a default session doing the same).
// ended receives each session's end, when not nil.
func hubRoutes(hub *Hub, ended chan<- hubEnd) func(*Server) http.Handler {
	publish := func(m Message) {
		ctx, cancel := context.WithTimeout(context.Background(), ptWait)
		defer cancel()
		hub.Publish(ctx, m.Type, m.Payload)
	}
	report := func(s *Session) {
		if ended != nil {
			r, _ := s.CloseReason()
			ended <- hubEnd{r, s.Err()}
		}
	}
	return func(srv *Server) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/events", srv.WebSocketEvents(Events{
			OnOpen: func(s *Session) {
				s.SendText("You are connected to WebSocket!")
				hub.Subscribe(s)
			},
			OnMessage: func(_ *Session, m Message) { publish(m) },
			OnClose:   func(s *Session, _ CloseReason) { report(s) },
		}))
		mux.Handle("/session", srv.WebSocket(func(s *Session) {
			s.SendText("You are connected to WebSocket!")
			hub.Subscribe(s)
			for m := range s.Messages() {
				publish(m)
			}
			<-s.Done()
			report(s)
		}))
		return mux
	}
}

type hubEnd struct {
	reason CloseReason
	err    error
}

// hubCase is an engine and a route.
type hubCase struct {
	engine Engine
	path   string
}

func (c hubCase) String() string { return c.engine.String() + c.path }

var hubCases = []hubCase{{EngineStd, "/events"}, {EngineStd, "/session"}, {EnginePoll, "/events"}, {EnginePoll, "/session"}}

func newTestHub(t *testing.T, opts HubOptions) *Hub {
	t.Helper()
	h, err := NewHub(opts)
	if err != nil {
		t.Fatalf("NewHub: %v", err)
	}
	return h
}

func hubServer(t *testing.T, c hubCase, hub *Hub, ln net.Listener, ended chan<- hubEnd) string {
	t.Helper()
	opts := ptOptions()
	opts.Engine = c.engine
	opts.MaxQueue = 64 << 10 // what a connection takes before the hub holds messages back
	_, addr := ptStart(t, opts, ln, hubRoutes(hub, ended))
	return addr
}

// joinHub dials n clients on path and waits until all are subscribed.
func joinHub(t *testing.T, hub *Hub, addr, path string, n int) []*ptPeer {
	t.Helper()
	before := hub.Subscribers()
	peers := make([]*ptPeer, n)
	for i := range peers {
		peers[i] = ptDial(t, addr, path)
		if err := peers[i].expect(frame.OpText, []byte("You are connected to WebSocket!")); err != nil {
			t.Fatalf("client %d: greeting: %v", i, err)
		}
	}
	waitFor(t, "subscribers", func() bool { return hub.Subscribers() == before+n })
	return peers
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(ptWait); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// readTexts reads n text messages from p.
func readTexts(p *ptPeer, n int) ([]string, error) {
	got := make([]string, 0, n)
	for len(got) < n {
		h, payload, err := p.readFrame()
		if err != nil {
			return got, fmt.Errorf("after %d messages: %w", len(got), err)
		}
		if h.Op != frame.OpText || !h.Fin {
			return got, fmt.Errorf("after %d messages: got %v fin=%v", len(got), h.Op, h.Fin)
		}
		got = append(got, string(payload))
	}
	return got, nil
}

// The Ktor guide's SharedFlow test, scaled up: every client sends, and every
// client receives every message, the sender included, in one order. Senders
// send in bursts far beyond the hub's buffer: a subscriber that reads is not
// dropped because messages come faster than a loop iteration hands them over.
func TestHubEveryoneSeesEverythingInOrder(t *testing.T) {
	sizes := []struct{ clients, senders, each int }{{2, 2, 1}, {2, 2, 300}, {1000, 20, 5}}
	if race.Enabled {
		sizes[2] = struct{ clients, senders, each int }{300, 10, 5}
	}
	for _, c := range hubCases {
		for _, size := range sizes {
			if size.clients > 2 && c.path == "/session" && c.engine == EnginePoll && race.Enabled {
				continue
			}
			t.Run(fmt.Sprintf("%v/clients=%d/each=%d", c, size.clients, size.each), func(t *testing.T) {
				ptLeakCheck(t)
				hub := newTestHub(t, HubOptions{Buffer: 8, Overflow: OverflowCloseTryAgain})
				addr := hubServer(t, c, hub, nil, nil)
				peers := joinHub(t, hub, addr, c.path, size.clients)
				total := size.senders * size.each
				results := make([][]string, len(peers))
				errs := make(chan error, len(peers))
				var wg sync.WaitGroup
				for i, p := range peers {
					wg.Go(func() {
						got, err := readTexts(p, total)
						results[i] = got
						if err != nil {
							errs <- fmt.Errorf("client %d: %w", i, err)
						}
					})
				}
				for s := range size.senders {
					go func() {
						var burst []byte
						for k := range size.each {
							burst = append(burst, ptFrame(true, frame.OpText, []byte(fmt.Sprintf("client %d says %d", s, k)))...)
						}
						peers[s].write(burst)
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Fatal(err)
				}
				want := results[0]
				seen := map[string]bool{}
				for _, m := range want {
					seen[m] = true
				}
				if len(seen) != total {
					t.Fatalf("client 0 got %d distinct messages of %d: %q", len(seen), total, want)
				}
				// Each sender's messages keep their order.
				last := map[string]int{}
				for _, m := range want {
					var s, k int
					fmt.Sscanf(m, "client %d says %d", &s, &k)
					key := strconv.Itoa(s)
					if prev, ok := last[key]; ok && k != prev+1 {
						t.Fatalf("sender %d's messages out of order: %q", s, want)
					}
					last[key] = k
				}
				for i, got := range results {
					if strings.Join(got, "\n") != strings.Join(want, "\n") {
						t.Fatalf("client %d saw another order than client 0:\n%q\n%q", i, got, want)
					}
				}
				if st := hub.Stats(); st.Disconnected != 0 || st.Dropped != 0 {
					t.Fatalf("stats %+v: nobody should have been dropped", st)
				}
				for _, p := range peers {
					p.nc.Close()
				}
				waitFor(t, "everyone to leave", func() bool { return hub.Subscribers() == 0 })
			})
		}
	}
}

// Late joiners get the last Replay messages first.
func TestHubReplay(t *testing.T) {
	for _, c := range hubCases {
		t.Run(c.String(), func(t *testing.T) {
			ptLeakCheck(t)
			hub := newTestHub(t, HubOptions{Replay: 3})
			t.Cleanup(hub.Close)
			addr := hubServer(t, c, hub, nil, nil)
			ctx := context.Background()
			for i := range 5 {
				if err := hub.PublishText(ctx, fmt.Sprint("before ", i)); err != nil {
					t.Fatal(err)
				}
			}
			p := ptDial(t, addr, c.path)
			got, err := readTexts(p, 4)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"You are connected to WebSocket!", "before 2", "before 3", "before 4"}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("late joiner got %q, want %q", got, want)
			}
			hub.PublishText(ctx, "after")
			if err := p.expect(frame.OpText, []byte("after")); err != nil {
				t.Fatal(err)
			}
			// A second joiner replays the newest three.
			q := ptDial(t, addr, c.path)
			got, err = readTexts(q, 4)
			if err != nil {
				t.Fatal(err)
			}
			want = []string{"You are connected to WebSocket!", "before 3", "before 4", "after"}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("second joiner got %q, want %q", got, want)
			}
			p.nc.Close()
			q.nc.Close()
			waitFor(t, "everyone to leave", func() bool { return hub.Subscribers() == 0 })
		})
	}
}

// stuckPeer dials path, with extra header lines, and a tiny receive buffer;
// it reads the greeting and nothing more, so that the server's output to it
// backs up after a few messages.
func stuckPeer(t *testing.T, addr, path string, extra ...string) *ptPeer {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return serr
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &ptPeer{t: t, nc: nc.(*net.TCPConn)}
	p.br = bufio.NewReaderSize(nc, 64<<10)
	t.Cleanup(func() { nc.Close() })
	if err := p.upgrade(addr, path, extra...); err != nil {
		t.Fatal(err)
	}
	h, greeting, err := p.readFrame()
	if err == nil && h.Rsv&frame.RSV1 != 0 {
		greeting = inflateMessage(t, greeting)
	}
	if err != nil || h.Op != frame.OpText || string(greeting) != "You are connected to WebSocket!" {
		t.Fatalf("greeting: %v %q %v", h.Op, ptShort(greeting), err)
	}
	return p
}

// hubFlood publishes n messages of size bytes numbered from first, each
// starting with its number and a space.
func hubFlood(ctx context.Context, hub *Hub, first, n, size int) error {
	for i := first; i < first+n; i++ {
		msg := []byte(strconv.Itoa(i) + " ")
		msg = append(msg, strings.Repeat("x", size-len(msg))...)
		if err := hub.Publish(ctx, Text, msg); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
	}
	return nil
}

// readNumbers reads n messages of hubFlood and returns their numbers.
func readNumbers(p *ptPeer, n int) ([]int, error) {
	texts, err := readTexts(p, n)
	nums := make([]int, len(texts))
	for i, s := range texts {
		nums[i], _ = strconv.Atoi(s[:strings.IndexByte(s, ' ')])
	}
	return nums, err
}

// hubMostLoad returns the most memory a subscriber of h keeps in use.
func hubMostLoad(h *Hub) (most int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, sub := range h.subs {
		sub.out.Lock()
		most = max(most, sub.load())
		sub.out.Unlock()
	}
	return most
}

// Under every policy, a subscriber that stops reading does not hold up
// one that reads; then each policy does its part to the slow one, when its
// buffer is full in messages, in its bytes, or in the hub's bytes. What the
// bounds count stays within them, and so does the heap.
func TestHubOverflow(t *testing.T) {
	const (
		size  = 16 << 10
		cost  = 40 << 10 // of a message of size: its frame in a 32 KiB buffer, and bookkeeping
		flood = 200      // messages: far more than a stuck peer's buffers hold
	)
	bounds := []struct {
		name string
		opts HubOptions
	}{
		{"messages", HubOptions{Buffer: 4, SubscriberBytes: -1, HubBytes: -1}},
		{"subscriber bytes", HubOptions{Buffer: 2 * flood, SubscriberBytes: 12 * cost, HubBytes: -1}},
		{"hub bytes", HubOptions{Buffer: 2 * flood, SubscriberBytes: -1, HubBytes: 8 * cost}},
	}
	for _, c := range hubCases {
		for _, policy := range []Overflow{OverflowDropOldest, OverflowDropLatest, OverflowCloseTryAgain, OverflowClosePolicy, OverflowSuspend} {
			for _, b := range bounds {
				t.Run(fmt.Sprintf("%v/%v/%s", c, policy, b.name), func(t *testing.T) {
					testHubOverflow(t, c, policy, b.opts, size, flood)
				})
			}
		}
	}
}

func testHubOverflow(t *testing.T, c hubCase, policy Overflow, opts HubOptions, size, flood int) {
	ptLeakCheck(t)
	opts.Overflow, opts.Timeout = policy, 300*time.Millisecond
	hub := newTestHub(t, opts)
	ended := make(chan hubEnd, 4)
	addr := hubServer(t, c, hub, ptListen(t, 0, 8192), ended)
	slow := stuckPeer(t, addr, c.path)
	// The greeting comes before the subscription: wait for it,
	// so that joinHub counts from 1.
	waitFor(t, "the slow subscriber", func() bool { return hub.Subscribers() == 1 })
	fast := joinHub(t, hub, addr, c.path, 1)[0]
	heap := heapInUse()
	checkBounds := func(i int) {
		t.Helper()
		if held := hub.Stats().HeldBytes; opts.HubBytes > 0 && held > int64(opts.HubBytes) {
			t.Fatalf("after message %d the hub holds %d bytes, past its bound of %d", i, held, opts.HubBytes)
		}
		if load := hubMostLoad(hub); opts.SubscriberBytes > 0 && load > int64(opts.SubscriberBytes) {
			t.Fatalf("after message %d a subscriber keeps %d bytes, past its bound of %d", i, load, opts.SubscriberBytes)
		}
	}

	// The fast subscriber reads all along.
	fastNums := make(chan int, 4*flood)
	go func() {
		for {
			n, err := readNumbers(fast, 1)
			if err != nil {
				close(fastNums)
				return
			}
			fastNums <- n[0]
		}
	}()
	expectFast := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			select {
			case n, ok := <-fastNums:
				if !ok || n != i {
					t.Fatalf("fast subscriber: got %d (open %v), want %d", n, ok, i)
				}
			case <-time.After(ptWait):
				t.Fatalf("fast subscriber: message %d did not come", i)
			}
		}
	}
	// Publishing in step with the fast subscriber, which is then
	// never behind.
	ctx := context.Background()
	var err error
	failed := -1
	for i := range flood {
		if err = hubFlood(ctx, hub, i, 1, size); err != nil {
			failed = i
			break
		}
		checkBounds(i)
		expectFast(i, i+1)
	}
	if opts.Buffer > flood {
		// Nothing but the bytes held it back: the heap holds
		// what the bound allows, what the connection of the
		// slow subscriber takes before the hub holds anything
		// back, and what the fast one is being written.
		bound := max(opts.SubscriberBytes, opts.HubBytes)
		if grown := heapInUse() - heap; grown > int64(2*bound+2<<20) {
			t.Fatalf("the heap grew by %d KiB under a bound of %d KiB", grown>>10, bound>>10)
		}
	}
	if policy == OverflowSuspend {
		// The publisher waited for the slow subscriber, then
		// gave up: the message reached nobody.
		if !errors.Is(err, ErrPublishTimeout) {
			t.Fatalf("publish under suspend with a stuck subscriber: %v, want ErrPublishTimeout", err)
		}
		select {
		case n := <-fastNums:
			t.Fatalf("fast subscriber got message %d, which timed out", n)
		case <-time.After(100 * time.Millisecond):
		}
		// Once the slow one reads, publishing goes on, and it
		// has every message before the failed one, in order.
		slowErr := make(chan error, 1)
		go func() {
			nums, err := readNumbers(slow, failed+1)
			if err == nil {
				for i, n := range nums[:failed] {
					if n != i {
						err = fmt.Errorf("slow subscriber got %v", nums)
						break
					}
				}
			}
			slowErr <- err
		}()
		if err := hubFlood(ctx, hub, failed, 1, size); err != nil {
			t.Fatal(err)
		}
		if err := ptAwait(t, slowErr, "the slow subscriber's messages"); err != nil {
			t.Fatal(err)
		}
		expectFast(failed, failed+1)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	st := hub.Stats()
	switch policy {
	case OverflowCloseTryAgain, OverflowClosePolicy:
		want := CloseTryAgainLater
		if policy == OverflowClosePolicy {
			want = ClosePolicyViolation
		}
		if st.Disconnected != 1 || st.Subscribers != 1 {
			t.Fatalf("stats %+v: want one subscriber disconnected, one left", st)
		}
		end := ptAwait(t, ended, "the slow session's end")
		if end.reason.Code != want || !errors.Is(end.err, ErrSlowSubscriber) {
			t.Fatalf("slow session ended with %v, %v; want %d and ErrSlowSubscriber", end.reason, end.err, want)
		}
	default:
		if st.Dropped == 0 || st.Subscribers != 2 {
			t.Fatalf("stats %+v: want drops and both subscribed", st)
		}
		// The slow one now reads: what it gets is in order, and
		// with drop-oldest it ends with the newest, with
		// drop-latest it begins with the oldest.
		// Markers numbered flood follow, until it has one.
		read := make(chan []int, 1)
		go func() {
			var got []int
			for {
				n, err := readNumbers(slow, 1)
				if err != nil || n[0] == flood {
					read <- got
					return
				}
				got = append(got, n[0])
			}
		}()
		var got []int
		for done := false; !done; {
			if err := hubFlood(ctx, hub, flood, 1, size); err != nil {
				t.Fatal(err)
			}
			select {
			case got = <-read:
				done = true
			case <-time.After(20 * time.Millisecond):
			}
		}
		if len(got) == 0 || len(got) >= flood {
			t.Fatalf("slow subscriber got %d messages: want some dropped", len(got))
		}
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("slow subscriber's messages out of order: %v", got)
			}
		}
		if policy == OverflowDropLatest && got[0] != 0 {
			t.Fatalf("drop-latest: the slow subscriber should keep the oldest, got %v", got)
		}
		if policy == OverflowDropOldest && got[len(got)-1] != flood-1 {
			t.Fatalf("drop-oldest: the slow subscriber should end with the newest, got %v", got)
		}
	}
}

// A published message is encoded once per distinct set of parameters;
// takeover connections drop their context after a shared compressed
// message, so their own messages still inflate.
func TestHubDeflateShared(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		t.Run(engine.String(), func(t *testing.T) {
			ptLeakCheck(t)
			hub := newTestHub(t, HubOptions{})
			opts := ptOptions()
			opts.Engine = engine
			opts.Extensions = []codec.Extension{&codec.PerMessageDeflate{}}
			_, addr := ptStart(t, opts, nil, func(srv *Server) http.Handler {
				return srv.WebSocketEvents(Events{
					OnOpen: func(s *Session) { hub.Subscribe(s) },
					OnMessage: func(s *Session, m Message) {
						// Echo to the sender, then to everyone: the
						// session's own compressed messages interleave with
						// shared ones.
						s.Send(m.Type, m.Payload)
						m = m.Clone() // borrowed until we return
						go hub.Publish(context.Background(), m.Type, m.Payload)
					},
				})
			})
			url := "ws://" + addr + "/"
			offers := []*codec.PerMessageDeflate{{}, {ClientNoContextTakeover: true}, {ServerNoContextTakeover: true}, {ServerMaxWindowBits: 10}, nil}
			clients := make([]*Session, len(offers))
			for i, pmd := range offers {
				o := ptOptions()
				if pmd != nil {
					o.Extensions = []codec.Extension{pmd}
				}
				dopts := &DialOptions{Options: o}
				s, err := Dial(context.Background(), url, dopts)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close(CloseNormal, "") })
				clients[i] = s
			}
			waitFor(t, "subscribers", func() bool { return hub.Subscribers() == len(clients) })
			hub.mu.Lock()
			sharings := len(hub.sharings)
			hub.mu.Unlock()
			// The two takeover offers share; no-takeover on the server side
			// too (it does not change shared messages); window 10 differs;
			// and the plain one.
			if sharings != 3 {
				t.Fatalf("%d sharings, want 3", sharings)
			}
			text := strings.Repeat("the quick brown fox jumps over the lazy dog ", 20)
			ctx, cancel := context.WithTimeout(context.Background(), ptWait)
			defer cancel()
			for round := range 3 {
				msg := fmt.Sprint(round, text)
				if err := clients[0].SendText(msg); err != nil {
					t.Fatal(err)
				}
				for i, c := range clients {
					n := 1
					if i == 0 {
						n = 2 // its echo and the broadcast
					}
					for range n {
						m, err := c.Receive(ctx)
						if err != nil {
							t.Fatalf("client %d round %d: %v", i, round, err)
						}
						if m.Text() != msg {
							t.Fatalf("client %d round %d: got %q", i, round, m.Text())
						}
					}
				}
			}
		})
	}
}

// Topics keep rooms apart and forget empty ones.
func TestTopics(t *testing.T) {
	ptLeakCheck(t)
	topics, err := NewTopics(HubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, addr := ptStart(t, ptOptions(), nil, func(srv *Server) http.Handler {
		return srv.WebSocketEvents(Events{
			OnOpen: func(s *Session) {
				topics.Subscribe(s.Request().URL.Query().Get("room"), s)
				s.SendText("joined")
			},
			OnMessage: func(s *Session, m Message) {
				topics.Publish(context.Background(), s.Request().URL.Query().Get("room"), m.Type, m.Payload)
			},
		})
	})
	a := ptDial(t, addr, "/?room=a")
	b := ptDial(t, addr, "/?room=b")
	for _, p := range []*ptPeer{a, b} {
		if err := p.expect(frame.OpText, []byte("joined")); err != nil {
			t.Fatal(err)
		}
	}
	if topics.Len() != 2 {
		t.Fatalf("%d topics, want 2", topics.Len())
	}
	a.mustWrite(ptFrame(true, frame.OpText, []byte("to a")))
	b.mustWrite(ptFrame(true, frame.OpText, []byte("to b")))
	if err := a.expect(frame.OpText, []byte("to a")); err != nil {
		t.Fatal(err)
	}
	if err := b.expect(frame.OpText, []byte("to b")); err != nil {
		t.Fatal(err)
	}
	a.nc.Close()
	waitFor(t, "room a to go", func() bool { return topics.Len() == 1 && topics.Hub("a") == nil })
	b.nc.Close()
	waitFor(t, "room b to go", func() bool { return topics.Len() == 0 })

	// A session that cannot subscribe leaves no room behind.
	ended := make(chan *Session, 1)
	_, addr = ptStart(t, ptOptions(), nil, func(srv *Server) http.Handler {
		return srv.WebSocketEvents(Events{OnClose: func(s *Session, _ CloseReason) { ended <- s }})
	})
	ptDial(t, addr, "/").nc.Close()
	s := ptAwait(t, ended, "the session's end")
	if err := topics.Subscribe("c", s); !errors.Is(err, ErrClosed) {
		t.Fatalf("subscribing an ended session: %v, want ErrClosed", err)
	}
	if topics.Len() != 0 {
		t.Fatalf("%d topics after a refused subscription, want 0", topics.Len())
	}
}

// A client session can subscribe too: its messages are masked one by one.
func TestHubClientSubscriber(t *testing.T) {
	ptLeakCheck(t)
	_, addr := ptStart(t, ptOptions(), nil, ptRoutes(Events{}))
	hub := newTestHub(t, HubOptions{})
	o := ptOptions()
	s, err := Dial(context.Background(), "ws://"+addr+"/events", &DialOptions{Options: o})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(CloseNormal, "")
	if err := hub.Subscribe(s); err != nil {
		t.Fatal(err)
	}
	if err := hub.Subscribe(s); !errors.Is(err, ErrSubscribed) {
		t.Fatalf("second Subscribe: %v, want ErrSubscribed", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ptWait)
	defer cancel()
	for i := range 3 {
		hub.PublishText(ctx, fmt.Sprint("to the server ", i))
	}
	for i := range 3 {
		m, err := s.Receive(ctx)
		if err != nil || m.Text() != fmt.Sprint("to the server ", i) {
			t.Fatalf("echo %d: %q, %v", i, m.Payload, err)
		}
	}
	if !hub.Unsubscribe(s) || hub.Subscribers() != 0 {
		t.Fatal("Unsubscribe did not remove the session")
	}
}

func TestHubOptionsRejected(t *testing.T) {
	for _, o := range []HubOptions{{Replay: -1}, {Buffer: -1}, {Overflow: OverflowClosePolicy + 1}} {
		if _, err := NewHub(o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("NewHub(%+v): %v, want ErrInvalidOptions", o, err)
		}
	}
	h := newTestHub(t, HubOptions{})
	if err := h.Publish(context.Background(), frame.OpPing, nil); err == nil {
		t.Error("publishing a ping succeeded")
	}
	h.Close()
	if err := h.PublishText(context.Background(), "x"); !errors.Is(err, ErrHubClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
}

// Publishing allocates nothing in steady state: the message, its encoding
// and the connections' chunk lists come from pools.
func TestHubPublishDoesNotAllocate(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector allocates")
	}
	const subscribers = 50
	for _, c := range hubCases {
		t.Run(c.String(), func(t *testing.T) {
			hub := newTestHub(t, HubOptions{})
			addr := hubServer(t, c, hub, nil, nil)
			peers := joinHub(t, hub, addr, c.path, subscribers)
			msg := []byte(strings.Repeat("m", 64))
			frameLen := 2 + len(msg)
			buf := make([]byte, frameLen)
			for _, p := range peers {
				p.nc.SetReadDeadline(time.Now().Add(time.Minute))
			}
			ctx := context.Background()
			ptZeroAllocs(t, "publish to "+strconv.Itoa(subscribers)+" subscribers", func() error {
				if err := hub.Publish(ctx, Binary, msg); err != nil {
					return err
				}
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

// Sessions that end while they subscribe leave nothing behind: a Subscribe
// that loses the race returns ErrClosed, and no hub counts the session nor
// keeps a room for it. Each session subscribes on a goroutine of its own,
// as its peer closes or aborts; a hub whose replay is encoded anew for
// each subscriber holds Subscribe long enough for the end to come in
// between.
func TestHubSubscribeRacesEnd(t *testing.T) {
	rounds, batch := 40, 8
	if race.Enabled {
		rounds = 15
	}
	replayed := []byte(strings.Repeat("a shared message to replay, compressed for each new subscriber ", 2<<10))
	for _, c := range hubCases {
		t.Run(c.String(), func(t *testing.T) {
			ptLeakCheck(t)
			plain := newTestHub(t, HubOptions{Overflow: OverflowDropLatest})
			topics, err := NewTopics(HubOptions{Overflow: OverflowDropLatest})
			if err != nil {
				t.Fatal(err)
			}
			opened := make(chan *Session, batch)
			opts := ptOptions()
			opts.Engine = c.engine
			opts.Extensions = []codec.Extension{&codec.PerMessageDeflate{}}
			_, addr := ptStart(t, opts, nil, func(srv *Server) http.Handler {
				mux := http.NewServeMux()
				mux.Handle("/events", srv.WebSocketEvents(Events{OnOpen: func(s *Session) { opened <- s }}))
				mux.Handle("/session", srv.WebSocket(func(s *Session) {
					opened <- s
					for range s.Messages() {
					}
				}))
				return mux
			})
			var hubs []*Hub
			var lost atomic.Int64
			errs := make(chan error, batch*3)
			for round := range rounds {
				replay := newTestHub(t, HubOptions{Replay: 4, Overflow: OverflowDropLatest})
				t.Cleanup(replay.Close)
				for range 4 {
					replay.Publish(context.Background(), Text, replayed)
				}
				hubs = append(hubs, replay)
				peers := make([]*ptPeer, batch)
				for i := range peers {
					peers[i] = ptDial(t, addr, c.path, offerDeflate)
				}
				var wg sync.WaitGroup
				for i, p := range peers {
					s := ptAwait(t, opened, "a session")
					room := strconv.Itoa(i % 3)
					wg.Go(func() {
						for _, err := range []error{replay.Subscribe(s), plain.Subscribe(s), topics.Subscribe(room, s)} {
							switch {
							case errors.Is(err, ErrClosed):
								lost.Add(1)
							case err != nil:
								errs <- err
							}
						}
					})
					if (round+i)%2 == 0 {
						p.reset()
					} else {
						p.nc.Close()
					}
				}
				wg.Wait()
				select {
				case err := <-errs:
					t.Fatalf("Subscribe: %v, want nil or ErrClosed", err)
				default:
				}
			}
			hubs = append(hubs, plain)
			left := func() (subs int) {
				for _, h := range hubs {
					subs += h.Subscribers()
				}
				return subs
			}
			for deadline := time.Now().Add(ptWait); left() > 0 || topics.Len() > 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the sessions ended, and %d subscriptions and %d rooms are left", left(), topics.Len())
				}
			}
			t.Logf("%d of %d subscriptions came too late", lost.Load(), rounds*batch*3)
		})
	}
}
