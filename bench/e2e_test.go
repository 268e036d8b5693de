package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wskit/wskit/bench/internal/harness"
	"github.com/wskit/wskit/bench/internal/servers"
)

var (
	e2eConns = []int{1, 1000}
	e2eSizes = []echoSize{{"64B", 64}, {"16KiB", 16 << 10}}
	e2eModes = []struct {
		name   string
		window int // messages in flight per connection
	}{{"closed", 1}, {"pipe32", 32}}
)

// e2eConnCounts returns the connection counts BenchmarkE2E runs:
// $BENCH_E2E_CONNS (numbers separated by commas) or e2eConns.
func e2eConnCounts(tb testing.TB) []int {
	s := os.Getenv("BENCH_E2E_CONNS")
	if s == "" {
		return e2eConns
	}
	var ns []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			tb.Fatalf("BENCH_E2E_CONNS=%q: want positive numbers", s)
		}
		ns = append(ns, n)
	}
	return ns
}

// e2eImpls returns the servers BenchmarkE2E runs: $BENCH_IMPLS (names
// separated by commas) or servers.Names.
func e2eImpls() []string {
	if s := os.Getenv("BENCH_IMPLS"); s != "" {
		return strings.Split(s, ",")
	}
	return servers.Names
}

// spawnChild runs the server impl in a child process: this test binary,
// re-executed with roleVar set. $BENCH_SERVER_CPUS pins it with taskset to
// those CPUs, with GOMAXPROCS set to their number; $BENCH_SERVER_PROFILE
// names a directory where it writes impl.cpu.pprof and impl.allocs.pprof,
// the latter sampled every $BENCH_SERVER_MEMPROFILERATE bytes if set.
func spawnChild(impl string) (*harness.Child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	rate := 0
	if s := os.Getenv("BENCH_SERVER_MEMPROFILERATE"); s != "" {
		if rate, err = strconv.Atoi(s); err != nil {
			return nil, fmt.Errorf("BENCH_SERVER_MEMPROFILERATE: %w", err)
		}
	}
	argv, env, err := harness.ServerArgs(exe, roleVar, impl, os.Getenv("BENCH_SERVER_CPUS"), os.Getenv("BENCH_SERVER_PROFILE"), rate)
	if err != nil {
		return nil, err
	}
	return harness.Spawn(argv, env)
}

// startChild is spawnChild until the test ends.
func startChild(tb testing.TB, impl string) *harness.Child {
	tb.Helper()
	child, err := spawnChild(impl)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := child.Stop(); err != nil {
			tb.Errorf("server process %s: %v", impl, err)
		}
	})
	return child
}

// e2eServer is a server process and its client connections, dialed as
// needed and reused by the sub-benchmarks: conns=1 uses the first of the
// 1000.
type e2eServer struct {
	child *harness.Child
	raw   bool
	conns []*e2eConn
}

func (s *e2eServer) get(n int) ([]*e2eConn, error) {
	for len(s.conns) < n {
		c, err := dialE2E(s.child.Addr, s.raw)
		if err != nil {
			return nil, fmt.Errorf("connection %d: %w", len(s.conns), err)
		}
		s.conns = append(s.conns, c)
	}
	return s.conns[:n], nil
}

func (s *e2eServer) close() error {
	for _, c := range s.conns {
		c.nc.Close()
	}
	return s.child.Stop()
}

// BenchmarkE2E echoes over loopback TCP with the server in its own process,
// so that its CPU time can be told from the client's. Every WebSocket
// server is driven by the same client (e2eConn: prepared masked frames,
// replies counted from their headers); tcp gets the same payloads without
// framing. One op is one message echoed, over all the connections:
//
//   - conns: client connections, each on its own goroutine (and a second
//     one for the writes when the window exceeds inlineWindow);
//   - size: payload bytes of each message;
//   - mode: closed keeps one message in flight per connection (send, wait
//     for the reply, repeat); pipe32 keeps 32;
//   - impl: the server. It is the innermost level, every server running
//     side by side from its first case on, so that the servers of a case
//     are measured one right after the other: a noisy machine's drift then
//     falls between cases more than between servers.
//
// Besides ns/op and MB/s (payload one way) it reports msgs/s, the server
// process's CPU time per message (server-µs/msg, utime+stime from
// /proc/PID/stat in 10 ms ticks), this process's (client-µs/msg), and the
// server's heap allocations per message (server-allocs/msg, server-B/msg,
// from its runtime.MemStats). The client and the server share the
// machine's CPUs unless BENCH_SERVER_CPUS pins the server (see doc.go).
func BenchmarkE2E(b *testing.B) {
	fleet := map[string]*e2eServer{}
	b.Cleanup(func() {
		for impl, s := range fleet {
			if err := s.close(); err != nil {
				b.Errorf("server process %s: %v", impl, err)
			}
		}
	})
	server := func(impl string) (*e2eServer, error) {
		if s := fleet[impl]; s != nil {
			return s, nil
		}
		child, err := spawnChild(impl)
		if err != nil {
			return nil, err
		}
		s := &e2eServer{child: child, raw: servers.IsRaw(impl)}
		fleet[impl] = s
		return s, nil
	}
	for _, n := range e2eConnCounts(b) {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			for _, size := range e2eSizes {
				b.Run("size="+size.name, func(b *testing.B) {
					for _, mode := range e2eModes {
						b.Run("mode="+mode.name, func(b *testing.B) {
							for _, impl := range e2eImpls() {
								b.Run("impl="+impl, func(b *testing.B) {
									s, err := server(impl)
									if err != nil {
										b.Fatal(err)
									}
									conns, err := s.get(n)
									if err != nil {
										b.Fatal(err)
									}
									runE2E(b, s.child, conns, s.raw, size.n, mode.window)
								})
							}
						})
					}
				})
			}
		})
	}
}

// runE2E echoes b.N messages of size bytes over conns, with window
// messages in flight on each, and reports the metrics of BenchmarkE2E.
func runE2E(b *testing.B, child *harness.Child, conns []*e2eConn, raw bool, size, window int) {
	p := payload(size)
	var out []byte
	if raw {
		out = bytes.Repeat(p, window)
	} else {
		out = clientFrames(p, window)
	}
	deadline := time.Now().Add(5 * time.Minute) // a hang fails instead
	for _, c := range conns {
		c.rc = replyCounter{raw: raw, size: size}
		c.nc.SetDeadline(deadline)
	}
	st0, err := child.Stats(false)
	if err != nil {
		b.Fatal(err)
	}
	cpu0, err := child.CPU()
	if err != nil {
		b.Fatal(err)
	}
	self0 := harness.SelfCPU()
	var (
		bud   budget
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	bud.left.Store(int64(b.N))
	b.SetBytes(int64(size))
	b.ResetTimer()
	for _, c := range conns {
		wg.Go(func() {
			var err error
			if window == 1 {
				err = c.runClosed(&bud, out)
			} else {
				err = c.runWindow(&bud, out, window)
			}
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	self1 := harness.SelfCPU()
	cpu1, cerr := child.CPU()
	st1, serr := child.Stats(false)
	if first != nil {
		b.Fatal(first)
	}
	if cerr != nil || serr != nil {
		b.Fatal(cerr, serr)
	}
	n := float64(b.N)
	b.ReportMetric(n/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu1-cpu0)/float64(time.Microsecond)/n, "server-µs/msg")
	b.ReportMetric(float64(self1-self0)/float64(time.Microsecond)/n, "client-µs/msg")
	b.ReportMetric(float64(st1.Mallocs-st0.Mallocs)/n, "server-allocs/msg")
	b.ReportMetric(float64(st1.TotalAlloc-st0.TotalAlloc)/n, "server-B/msg")
}
