package wskit

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
)

// heapInUse returns the live heap after two collections, which also empty
// the pools.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// The attack on wskit serve's /chat: members that stop reading, and small
// compressed texts that inflate to megabytes. What the hub keeps for the
// members stays within its byte bounds, however many texts come.
func TestHubCompressedFloodMemory(t *testing.T) {
	const (
		inflated = 8 << 20
		bombs    = 12
	)
	bomb := deflateMessage(t, make([]byte, inflated))
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		t.Run(engine.String(), func(t *testing.T) {
			ptLeakCheck(t)
			hub := newTestHub(t, HubOptions{Overflow: OverflowDropLatest})
			opts := ptOptions()
			opts.Engine = engine
			opts.Timeout = time.Minute // the members that do not read stay, however slow the flood
			opts.Extensions = []codec.Extension{&codec.PerMessageDeflate{}}
			_, addr := ptStart(t, opts, ptListen(t, 0, 8192), func(srv *Server) http.Handler {
				return srv.WebSocketEvents(Events{
					OnOpen: func(s *Session) {
						s.SendText("You are connected to WebSocket!")
						hub.Subscribe(s)
					},
					OnMessage: func(_ *Session, m Message) { hub.Publish(context.Background(), m.Type, m.Payload) },
				})
			})
			// Members that do not read, with compression and without.
			stuck := []*ptPeer{stuckPeer(t, addr, "/", offerDeflate), stuckPeer(t, addr, "/")}
			// The attacker reads all it gets.
			attacker := ptDial(t, addr, "/", offerDeflate)
			go io.Copy(io.Discard, attacker.nc)
			waitFor(t, "three members", func() bool { return hub.Subscribers() == 3 })

			before := heapInUse()
			wire := ptFrameHeader(frame.Header{Fin: true, Rsv: frame.RSV1, Op: frame.OpText, Masked: true, Mask: ptMask, Length: int64(len(bomb))}, bomb)
			for i := range bombs {
				attacker.mustWrite(wire)
				waitFor(t, "the text to be published", func() bool { return hub.Stats().Published == uint64(i+1) })
			}
			grown := heapInUse() - before
			t.Logf("%d texts of %d KiB inflating to %d MiB: the heap grew by %.1f MiB", bombs, len(bomb)>>10, inflated>>20, float64(grown)/(1<<20))
			// Each member that does not read holds its bound and one text
			// more (whose encodings it shares with the others), and the
			// attacker's last text may not be released yet.
			if limit := int64(2*(defaultSubscriberBytes+inflated) + inflated + 4<<20); grown > limit {
				t.Fatalf("the heap grew by %d MiB, want at most %d MiB", grown>>20, limit>>20)
			}
			if st := hub.Stats(); st.Dropped == 0 || st.Subscribers != 3 {
				t.Fatalf("stats %+v: want texts dropped for the members that do not read, and all subscribed", st)
			}
			// They read at last, and leave.
			for _, p := range stuck {
				if err := p.closeHandshake(CloseNormal, ""); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// Many subscribers that stop reading hold the same messages back: the hub
// counts each message once against HubBytes, so that they fall behind
// together as far as one would; then the policy applies to all of them,
// while the one that reads gets everything.
func TestHubBytesCountSharedMessagesOnce(t *testing.T) {
	const (
		size  = 16 << 10
		cost  = 40 << 10 // of a message of size: its frame in a 32 KiB buffer, and bookkeeping
		slow  = 6
		first = 16 // messages that fit the hub's bound, counted once
		more  = 24
	)
	for _, c := range hubCases {
		for _, policy := range []Overflow{OverflowDropLatest, OverflowDropOldest, OverflowCloseTryAgain} {
			t.Run(fmt.Sprintf("%v/%v", c, policy), func(t *testing.T) {
				ptLeakCheck(t)
				opts := HubOptions{Buffer: 256, SubscriberBytes: 2 * (first + more) * cost, HubBytes: (first + 8) * cost, Overflow: policy}
				hub := newTestHub(t, opts)
				addr := hubServer(t, c, hub, ptListen(t, 0, 8192), nil)
				for i := range slow {
					stuckPeer(t, addr, c.path)
					waitFor(t, "a slow subscriber", func() bool { return hub.Subscribers() == i+1 })
				}
				fast := joinHub(t, hub, addr, c.path, 1)[0]
				heap := heapInUse()
				ctx := context.Background()
				publish := func(from, to int) {
					t.Helper()
					for i := from; i < to; i++ {
						if err := hubFlood(ctx, hub, i, 1, size); err != nil {
							t.Fatal(err)
						}
						if n, err := readNumbers(fast, 1); err != nil || n[0] != i {
							t.Fatalf("the fast subscriber got %v, %v; want message %d", n, err, i)
						}
						if held := hub.Stats().HeldBytes; held > int64(opts.HubBytes) {
							t.Fatalf("after message %d the hub holds %d KiB, past its bound of %d KiB", i, held>>10, opts.HubBytes>>10)
						}
					}
				}
				publish(0, first)
				st := hub.Stats()
				if st.Dropped != 0 || st.Disconnected != 0 || st.HeldBytes == 0 || st.HeldBytes > first*cost {
					t.Fatalf("after %d messages held back for %d subscribers: %+v; want none dropped, and at most %d KiB held", first, slow, st, first*cost>>10)
				}
				publish(first, first+more)
				st = hub.Stats()
				switch policy {
				case OverflowCloseTryAgain:
					if st.Disconnected != slow || st.Subscribers != 1 {
						t.Fatalf("after %d messages: %+v; want the slow subscribers closed past the hub's bound", first+more, st)
					}
				default:
					if st.Dropped == 0 || st.Subscribers != slow+1 {
						t.Fatalf("after %d messages: %+v; want drops past the hub's bound, and everyone subscribed", first+more, st)
					}
				}
				// The messages held back, and those the connections took before.
				if grown := heapInUse() - heap; grown > int64(opts.HubBytes+2<<20) {
					t.Fatalf("the heap grew by %d KiB under a bound of %d KiB", grown>>10, opts.HubBytes>>10)
				}
			})
		}
	}
}

// The replay counts against HubBytes, and gives up its oldest messages to
// stay within it; a new subscriber is handed the newest replayed messages
// that fit its SubscriberBytes, with the encoding made for it.
func TestHubReplayBytes(t *testing.T) {
	const (
		size    = 16 << 10
		replay  = 10
		hubMax  = 8 * size      // less than the copies of 10 messages
		subMax  = 7 * size      // two messages and their frames, not three
		leastOf = size + 32<<10 // a copy, and a frame in a 32 KiB buffer
	)
	for _, c := range hubCases {
		t.Run(c.String(), func(t *testing.T) {
			ptLeakCheck(t)
			hub := newTestHub(t, HubOptions{Replay: replay, SubscriberBytes: subMax, HubBytes: hubMax})
			t.Cleanup(hub.Close)
			addr := hubServer(t, c, hub, nil, nil)
			ctx := context.Background()
			if err := hubFlood(ctx, hub, 0, replay, size); err != nil {
				t.Fatal(err)
			}
			replayed := func() uint64 {
				hub.mu.Lock()
				defer hub.mu.Unlock()
				return hub.seq - hub.replayed
			}
			if st, n := hub.Stats(), replayed(); st.HeldBytes > hubMax || n >= replay || n == 0 {
				t.Fatalf("%d messages replayed in %d KiB, under a bound of %d KiB", n, st.HeldBytes>>10, hubMax>>10)
			}
			p := ptDial(t, addr, c.path)
			if err := p.expect(frame.OpText, []byte("You are connected to WebSocket!")); err != nil {
				t.Fatal(err)
			}
			var got []int
			for len(got) == 0 || got[len(got)-1] != replay-1 {
				n, err := readNumbers(p, 1)
				if err != nil {
					t.Fatalf("after %v: %v", got, err)
				}
				got = append(got, n[0])
			}
			if len(got) > subMax/leastOf || got[0] != replay-len(got) {
				t.Fatalf("the new subscriber got %v; want the newest messages that fit in %d KiB", got, subMax>>10)
			}
			if st := hub.Stats(); st.HeldBytes > hubMax {
				t.Fatalf("with the new subscriber's encodings the hub holds %d KiB, past its bound of %d KiB", st.HeldBytes>>10, hubMax>>10)
			}
			if err := hubFlood(ctx, hub, replay, 1, size); err != nil {
				t.Fatal(err)
			}
			if n, err := readNumbers(p, 1); err != nil || n[0] != replay {
				t.Fatalf("then got %v, %v; want message %d", n, err, replay)
			}
			p.nc.Close()
			waitFor(t, "the subscriber to leave", func() bool { return hub.Subscribers() == 0 })
		})
	}
}

// A message costs its buffers and its bookkeeping, so that even empty
// messages fill a byte bound.
func TestHubEmptyMessagesAreNotFree(t *testing.T) {
	const bound = 64 << 10
	hub := newTestHub(t, HubOptions{Replay: 1000, HubBytes: bound})
	defer hub.Close()
	for range 1000 {
		if err := hub.Publish(context.Background(), Binary, nil); err != nil {
			t.Fatal(err)
		}
	}
	hub.mu.Lock()
	replayed := hub.seq - hub.replayed
	hub.mu.Unlock()
	held := hub.Stats().HeldBytes
	if held > bound || replayed >= 1000 || replayed == 0 {
		t.Fatalf("%d empty messages replayed in %d bytes under a bound of %d", replayed, held, bound)
	}
	t.Logf("an empty message replayed costs %d bytes", held/int64(replayed))
}
