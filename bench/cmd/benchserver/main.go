// Command benchserver serves one echo server of the benchmarks' zoo until
// SIGTERM or the end of its standard input:
//
//	benchserver -impl wskit-poll-events -addr 127.0.0.1:9001
//
// It prints "ADDR DEBUGADDR" on one line once listening. The debug listener
// serves /debug/stats (goroutines, heap, cumulative allocations; ?gc=1
// collects first) and /debug/pprof/. -cpuprofile writes a CPU profile of the
// whole run, -memprofile an allocation profile at exit (-memprofilerate 1
// records every allocation). Started with its stdin at /dev/null, it needs
// -stdin=false.
package main

import (
	"os"

	"github.com/wskit/wskit/bench/internal/servers"
	_ "github.com/wskit/wskit/xconnect" // the -http2 variants need extended CONNECT
)

func main() { os.Exit(servers.Main(os.Args[1:])) }
