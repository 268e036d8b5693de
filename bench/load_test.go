package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wskit/wskit/bench/internal/servers"
	"github.com/wskit/wskit/internal/load"
)

// loadCases are the comparison's scenarios (cmd/compare) at small sizes,
// so that go test -bench and benchstat can compare commits in minutes.
var loadCases = []struct {
	name string
	cfg  load.Config
	raw  bool // the plain TCP echo runs it
}{
	{"echo/conns=100/size=64", load.Config{Scenario: load.Echo, Conns: 100, Size: 64}, true},
	{"echo/conns=20/size=16384", load.Config{Scenario: load.Echo, Conns: 20, Size: 16 << 10}, true},
	{"pipeline/conns=20/size=64/p=16", load.Config{Scenario: load.Pipeline, Conns: 20, Size: 64, Pipeline: 16}, true},
	{"idle/conns=1000", load.Config{Scenario: load.Idle, Conns: 1000, Size: 64}, true},
	{"churn/conns=20", load.Config{Scenario: load.Churn, Conns: 20, Size: 64}, false},
}

// BenchmarkLoad runs wskit bench's engine (internal/load) against every
// server of the zoo, in this process, for $BENCH_LOAD_TIME (default 1 s)
// per op, every reply checked byte for byte (load.Config.Verify). Reported:
// msgs/s (handshakes/s for churn), MB/s, p50-µs and p99-µs. Client and server share the process and its CPUs, so read the
// figures beside one another, across commits with benchstat:
//
//	go test -run '^$' -bench Load -count 6 > new.txt; benchstat -col /impl new.txt
//
// cmd/compare measures at full size with the server in a process of its
// own.
func BenchmarkLoad(b *testing.B) {
	window := time.Second
	if v := os.Getenv("BENCH_LOAD_TIME"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("BENCH_LOAD_TIME: %v", err)
		}
		window = d
	}
	impls := servers.Names
	if v := os.Getenv("BENCH_IMPLS"); v != "" {
		impls = strings.Split(v, ",")
	}
	for _, lc := range loadCases {
		for _, impl := range impls {
			if servers.IsRaw(impl) && !lc.raw {
				continue
			}
			b.Run(fmt.Sprintf("%s/impl=%s", lc.name, impl), func(b *testing.B) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				srv, err := servers.Start(impl, ln)
				if err != nil {
					b.Fatal(err)
				}
				defer srv.Close()
				cfg := lc.cfg
				cfg.Duration = window
				cfg.Verify = true // every reply checked, as cmd/compare does
				cfg.URL = "ws://" + ln.Addr().String() + servers.URI
				if servers.IsRaw(impl) {
					cfg.URL = "tcp://" + ln.Addr().String()
				}
				var rate, mb, p50, p99 float64
				for range b.N {
					res, err := load.Run(context.Background(), cfg)
					if err != nil {
						b.Fatal(err)
					}
					if n := res.ErrorTotal(); n > 0 {
						b.Fatalf("%d errors: %v", n, res.Errors)
					}
					rate += res.MsgsPerSec
					if cfg.Scenario == load.Churn {
						rate += res.HandshakesPerSec - res.MsgsPerSec
					}
					mb += res.MBPerSec
					p50 += res.Latency.P50
					p99 += res.Latency.P99
				}
				n := float64(b.N)
				unit := "msgs/s"
				if cfg.Scenario == load.Churn {
					unit = "handshakes/s"
				}
				b.ReportMetric(rate/n, unit)
				b.ReportMetric(mb/n, "MB/s")
				b.ReportMetric(p50/n, "p50-µs")
				b.ReportMetric(p99/n, "p99-µs")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
