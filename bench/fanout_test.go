package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wskit/wskit/bench/internal/fanout"
	"github.com/wskit/wskit/bench/internal/harness"
	"github.com/wskit/wskit/poller"
)

// fanoutRole, as roleVar's value, makes the test binary the subscriber
// process of BenchmarkFanout. It is dispatched in init, before TestMain.
const fanoutRole = "fanout-client"

func init() {
	if os.Getenv(roleVar) == fanoutRole {
		os.Exit(fanout.ClientMain(os.Args[1:]))
	}
}

var fanoutSizes = []int{64, 1024}

// fanoutRound is how many messages are published before waiting for their
// delivery: fewer than both hubs' 256 messages of buffer per subscriber, so
// that neither policy for a full buffer ever applies.
const fanoutRound = 32

// fanoutRoundTimeout bounds the wait for one round's delivery.
const fanoutRoundTimeout = 2 * time.Minute

// fanoutSubs returns $BENCH_FANOUT_SUBS or 10000.
func fanoutSubs(tb testing.TB) int {
	s := os.Getenv("BENCH_FANOUT_SUBS")
	if s == "" {
		return 10000
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		tb.Fatalf("BENCH_FANOUT_SUBS=%q: want a positive number", s)
	}
	return n
}

// fanoutImpls returns $BENCH_FANOUT_IMPLS (names separated by commas) or
// fanout.Names.
func fanoutImpls() []string {
	if s := os.Getenv("BENCH_FANOUT_IMPLS"); s != "" {
		return strings.Split(s, ",")
	}
	return fanout.Names
}

// fanoutRig is a broadcast server in this process with n subscribers in a
// subscriber process, and the message it publishes.
type fanoutRig struct {
	impl string
	size int
	srv  fanout.Server
	subs *fanout.Subscribers
	msg  []byte
	seq  uint64 // messages published so far
}

func startFanout(impl string, n, size int) (*fanoutRig, error) {
	if err := poller.RaiseFileLimit(); err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv, err := fanout.Start(impl, ln)
	if err != nil {
		return nil, err
	}
	r := &fanoutRig{impl: impl, size: size, srv: srv, msg: fanout.NewMessage(size)}
	// Under -race a process sleeps 1 s at exit unless told not to.
	env := []string{roleVar + "=" + fanoutRole, "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")}
	r.subs, err = fanout.StartSubscribers(exe, env, ln.Addr().String(), n, size)
	if err != nil {
		srv.Close()
		return nil, err
	}
	// The last subscriptions may trail the handshakes.
	for deadline := time.Now().Add(30 * time.Second); srv.Subscribers() != n; {
		if time.Now().After(deadline) {
			err := fmt.Errorf("%s: %d subscribers of %d after 30s", impl, srv.Subscribers(), n)
			r.close()
			return nil, err
		}
		time.Sleep(time.Millisecond)
	}
	return r, nil
}

// round publishes k messages and waits until every subscriber has them.
func (r *fanoutRig) round(ctx context.Context, k int) error {
	for range k {
		fanout.Number(r.msg, r.seq)
		if err := r.srv.Publish(ctx, r.msg); err != nil {
			return fmt.Errorf("publishing message %d: %w", r.seq, err)
		}
		r.seq++
	}
	return r.subs.Wait(r.seq, fanoutRoundTimeout)
}

// close ends the subscriber process first, so that the server sees its
// connections end rather than ending them itself.
func (r *fanoutRig) close() error {
	err := r.subs.Stop()
	if cerr := r.srv.Close(); err == nil {
		err = cerr
	}
	return err
}

// BenchmarkFanout broadcasts from a server in this process to subscribers
// in a subscriber process (the test binary re-executed, see
// fanout.ClientMain), which reads every connection from one epoll loop and
// checks that each receives every message, whole and in order. One op is one
// message delivered to one subscriber:
//
//   - subs: subscriber connections, $BENCH_FANOUT_SUBS or 10000;
//   - size: payload bytes of each message;
//   - impl: the server (fanout.Names), innermost so that the servers of a
//     case are measured one right after the other.
//
// Messages are published in rounds of fanoutRound, each round waiting for
// the subscribers to report all of its deliveries, so b.N is rounded up to
// a multiple of subs. Besides ns/op it reports deliveries/s; this process's
// CPU time (server-µs/delivery) and heap allocations (server-allocs/delivery,
// server-B/delivery, from runtime.MemStats) and write system calls
// (server-writes/delivery, from /proc/self/io: below 1 when the server
// writes several messages to a connection at once), this process holding
// only the server and the publisher; and the subscriber process's CPU time
// (client-µs/delivery). Only one server runs at a time: the file limit
// does not allow two with 10000 connections each.
func BenchmarkFanout(b *testing.B) {
	n := fanoutSubs(b)
	var rig *fanoutRig
	b.Cleanup(func() {
		if rig != nil {
			if err := rig.close(); err != nil {
				b.Errorf("%s: %v", rig.impl, err)
			}
		}
	})
	b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
		for _, size := range fanoutSizes {
			b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
				for _, impl := range fanoutImpls() {
					b.Run("impl="+impl, func(b *testing.B) {
						if rig != nil && (rig.impl != impl || rig.size != size) {
							err := rig.close()
							rig = nil
							if err != nil {
								b.Fatal(err)
							}
						}
						if rig == nil {
							var err error
							if rig, err = startFanout(impl, n, size); err != nil {
								b.Fatal(err)
							}
						}
						runFanout(b, rig)
					})
				}
			})
		}
	})
}

// runFanout delivers at least b.N messages and reports BenchmarkFanout's
// metrics.
func runFanout(b *testing.B, r *fanoutRig) {
	n := r.subs.N
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := harness.SelfCPU()
	sub0, err := r.subs.CPU()
	if err != nil {
		b.Fatal(err)
	}
	w0, err := fanout.WriteCalls()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(r.size))
	b.ResetTimer()
	done := 0
	for done < b.N {
		k := min(fanoutRound, (b.N-done+n-1)/n)
		if err := r.round(ctx, k); err != nil {
			b.Fatalf("%s: %v", r.impl, err)
		}
		done += k * n
	}
	b.StopTimer()
	cpu1 := harness.SelfCPU()
	sub1, err := r.subs.CPU()
	if err != nil {
		b.Fatal(err)
	}
	w1, err := fanout.WriteCalls()
	if err != nil {
		b.Fatal(err)
	}
	runtime.ReadMemStats(&ms1)
	d := float64(done)
	b.ReportMetric(d/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(float64(cpu1-cpu0)/float64(time.Microsecond)/d, "server-µs/delivery")
	b.ReportMetric(float64(sub1-sub0)/float64(time.Microsecond)/d, "client-µs/delivery")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/d, "server-allocs/delivery")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/d, "server-B/delivery")
	b.ReportMetric(float64(w1-w0)/d, "server-writes/delivery")
}

// TestFanout runs every server of BenchmarkFanout with a few subscribers
// for a few rounds, messages of both sizes: the subscriber process checks
// that every connection receives every message, whole and in order.
func TestFanout(t *testing.T) {
	for _, impl := range fanout.Names {
		for _, size := range fanoutSizes {
			t.Run(fmt.Sprintf("%s/size=%d", impl, size), func(t *testing.T) {
				r, err := startFanout(impl, 20, size)
				if err != nil {
					t.Fatal(err)
				}
				defer func() {
					if err := r.close(); err != nil {
						t.Errorf("close: %v", err)
					}
				}()
				for _, k := range []int{1, fanoutRound, 7} {
					if err := r.round(context.Background(), k); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
}
