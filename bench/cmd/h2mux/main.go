// Command h2mux compares WebSockets over HTTP/2 (RFC 8441), many sessions
// multiplexed on a few connections, with the same sessions each on an
// HTTP/1.1 connection of its own, on both engines.
//
// For each engine it runs the zoo's -http2 server of that engine
// (wskit-std-http2: default sessions, a goroutine each; wskit-poll-events-http2:
// Events callbacks, on the loops for HTTP/1.1) in a child process: the
// same server for both protocols, which takes HTTP/1.1 upgrades beside
// HTTP/2 streams, up to servers.MaxStreams of them per connection. This
// process opens -sessions sessions with wskit.Dial: over HTTP/1.1, one TCP
// connection each; over HTTP/2, DialOptions.HTTP2 with one
// golang.org/x/net/http2 Transport per -conns group, so that each group's
// sessions are streams of one connection (the number of connections
// dialed is counted and printed). Every session echoes one message, then
// the server's memory is read with all sessions idle (after two GCs and
// debug.FreeOSMemory: VmRSS and the Go heap, per session, as differences
// from before the sessions; goroutines per session); then every session
// echoes messages of -size bytes one at a time (closed loop) for
// -duration, and the server's CPU time (utime+stime from /proc) per
// message and the messages per second are read, and the memory again,
// idle after the load.
//
//	go run ./cmd/h2mux -runs 3 -out results/h2mux-raw.json
//	go run ./cmd/h2mux -engines poll -sizes 64 -duration 3s
//
// The client shares the machine's CPUs with the server: msgs/s is the
// pair's, and HTTP/2 costs the client more too (a goroutine that pumps
// each response body, a pipe for each request body). Compare the
// protocols within a run: -runs repeats the whole set, and the summary
// gives the median of each run's HTTP/2 to HTTP/1.1 ratios.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"golang.org/x/net/http2"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/bench/internal/harness"
	"github.com/wskit/wskit/bench/internal/servers"
	_ "github.com/wskit/wskit/xconnect" // the servers' extended CONNECT
)

// roleVar in the environment makes this binary the server process.
const roleVar = "WSKIT_H2MUX_ROLE"

// impls are the servers, by engine.
var impls = map[string]string{"std": "wskit-std-http2", "poll": "wskit-poll-events-http2"}

func main() {
	if os.Getenv(roleVar) == "server" {
		os.Exit(servers.Main(os.Args[1:]))
	}
	sessions := flag.Int("sessions", 1000, "sessions per case")
	conns := flag.Int("conns", 10, "HTTP/2 connections the sessions share, each carrying sessions/conns of them")
	sizes := flag.String("sizes", "64,1024", "message sizes in bytes, separated by commas")
	engines := flag.String("engines", "std,poll", "engines, separated by commas")
	duration := flag.Duration("duration", 5*time.Second, "load time per case")
	runs := flag.Int("runs", 1, "repeat the whole set this many times")
	cpus := flag.String("cpus", "", "run the server under taskset -c CPUS with GOMAXPROCS set to match")
	out := flag.String("out", "", "write every case's raw figures to this JSON file")
	flag.Parse()
	if *conns < 1 || *sessions < *conns || *sessions%*conns != 0 {
		fatal(fmt.Errorf("-sessions %d must be a multiple of -conns %d", *sessions, *conns))
	}
	var sz []int
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			fatal(fmt.Errorf("-sizes: %q", f))
		}
		sz = append(sz, n)
	}
	exe, err := os.Executable()
	if err != nil {
		fatal(err)
	}
	var all []result
	for run := 1; run <= *runs; run++ {
		for _, engine := range strings.Split(*engines, ",") {
			impl, ok := impls[engine]
			if !ok {
				fatal(fmt.Errorf("-engines: unknown engine %q (std or poll)", engine))
			}
			for _, size := range sz {
				for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
					c := config{impl: impl, engine: engine, proto: proto, size: size, sessions: *sessions, conns: *conns, duration: *duration}
					fmt.Fprintf(os.Stderr, "h2mux: run %d: %s %s %d B\n", run, engine, proto, size)
					r, err := measure(exe, *cpus, c)
					if err != nil {
						fatal(fmt.Errorf("%s %s %d B: %w", engine, proto, size, err))
					}
					r.Run = run
					all = append(all, r)
					fmt.Fprintf(os.Stderr, "h2mux: %.0f msgs/s, %.2f server µs/msg\n", r.msgsPerSec(), r.serverMicros())
				}
			}
		}
	}
	printTable(all)
	summarize(all)
	if *out != "" {
		b, err := json.MarshalIndent(all, "", "  ")
		if err != nil {
			fatal(err)
		}
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			fatal(err)
		}
	}
}

// config is one case.
type config struct {
	impl, engine, proto string
	size                int
	sessions, conns     int
	duration            time.Duration
}

// result is one case's raw figures, as written to -out.
type result struct {
	Run      int    `json:"run"`
	Engine   string `json:"engine"`
	Impl     string `json:"impl"`
	Proto    string `json:"proto"`
	Size     int    `json:"size"`
	Sessions int    `json:"sessions"`
	TCPConns int    `json:"tcp_conns"` // connections the client dialed

	Msgs      int64         `json:"msgs"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	ServerCPU time.Duration `json:"server_cpu_ns"`
	ClientCPU time.Duration `json:"client_cpu_ns"`

	// The server before the sessions, with them idle after one echo each,
	// and idle again after the load: VmRSS after debug.FreeOSMemory, the
	// Go heap's live objects after two GCs, goroutines.
	RSS0, RSSIdle, RSSLoaded                 int64  `json:"-"`
	Heap0, HeapIdle, HeapLoaded              uint64 `json:"-"`
	Goroutines0, GoroutinesIdle, GoroutinesL uint64 `json:"-"`
	Memory                                   struct {
		RSS        [3]int64  `json:"rss_bytes"`
		Heap       [3]uint64 `json:"heap_objects_bytes"`
		Goroutines [3]uint64 `json:"goroutines"`
	} `json:"server_memory"` // before, idle, after load
}

func (r *result) msgsPerSec() float64 { return float64(r.Msgs) / r.Elapsed.Seconds() }
func (r *result) serverMicros() float64 {
	return float64(r.ServerCPU.Microseconds()) / float64(max(r.Msgs, 1))
}
func (r *result) clientMicros() float64 {
	return float64(r.ClientCPU.Microseconds()) / float64(max(r.Msgs, 1))
}
func (r *result) perSession(v int64) float64 { return float64(v) / float64(r.Sessions) }

// measure runs one case against a server process of its own.
func measure(exe, cpus string, c config) (result, error) {
	r := result{Engine: c.engine, Impl: c.impl, Proto: c.proto, Size: c.size, Sessions: c.sessions}
	argv, env, err := harness.ServerArgs(exe, roleVar, c.impl, cpus, "", 0)
	if err != nil {
		return r, err
	}
	child, err := harness.Spawn(argv, env)
	if err != nil {
		return r, err
	}
	defer child.Stop()
	snap := func() (int64, servers.Stats, error) {
		st, err := child.FreeOSMemory()
		if err != nil {
			return 0, st, err
		}
		rss, err := harness.RSS(child.Pid)
		return rss, st, err
	}
	rss, st, err := snap()
	if err != nil {
		return r, err
	}
	r.RSS0, r.Heap0, r.Goroutines0 = rss, st.HeapObjects, st.Goroutines

	cl := &client{addr: child.Addr, proto: c.proto}
	defer cl.close()
	if err := cl.open(c.sessions, c.conns); err != nil {
		return r, err
	}
	r.TCPConns = int(cl.dials.Load())
	payload := make([]byte, c.size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	if _, err := cl.echo(payload, 0); err != nil { // one each
		return r, err
	}
	if rss, st, err = snap(); err != nil {
		return r, err
	}
	r.RSSIdle, r.HeapIdle, r.GoroutinesIdle = rss, st.HeapObjects, st.Goroutines

	cpu0, err := child.CPU()
	if err != nil {
		return r, err
	}
	self0 := harness.SelfCPU()
	start := time.Now()
	r.Msgs, err = cl.echo(payload, c.duration)
	r.Elapsed = time.Since(start)
	r.ClientCPU = harness.SelfCPU() - self0
	cpu1, cerr := child.CPU()
	if err != nil {
		return r, err
	}
	if cerr != nil {
		return r, cerr
	}
	r.ServerCPU = cpu1 - cpu0
	if rss, st, err = snap(); err != nil {
		return r, err
	}
	r.RSSLoaded, r.HeapLoaded, r.GoroutinesL = rss, st.HeapObjects, st.Goroutines
	r.Memory.RSS = [3]int64{r.RSS0, r.RSSIdle, r.RSSLoaded}
	r.Memory.Heap = [3]uint64{r.Heap0, r.HeapIdle, r.HeapLoaded}
	r.Memory.Goroutines = [3]uint64{r.Goroutines0, r.GoroutinesIdle, r.GoroutinesL}
	return r, nil
}

// client holds the sessions of a case.
type client struct {
	addr     string
	proto    string
	sessions []*wskit.Session
	trs      []*http2.Transport
	dials    atomic.Int32 // TCP connections dialed
}

// open dials n sessions: over HTTP/1.1 each on its own connection, over
// HTTP/2 n/conns on each of conns transports, one connection each.
func (cl *client) open(n, conns int) error {
	url := "ws://" + cl.addr + servers.Path
	opts := make([]*wskit.DialOptions, conns)
	for i := range opts {
		opts[i] = &wskit.DialOptions{NetDialContext: cl.dial}
		if cl.proto == "HTTP/2" {
			tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return cl.dial(ctx, network, addr)
			}}
			cl.trs = append(cl.trs, tr)
			opts[i] = &wskit.DialOptions{HTTP2: true, HTTP2Transport: tr}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl.sessions = make([]*wskit.Session, n)
	per := n / conns
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	// A group at a time per connection: the first dial of a transport makes
	// its connection, and the others wait for its SETTINGS.
	for g := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g * per; i < (g+1)*per; i++ {
				s, err := wskit.Dial(ctx, url, opts[g])
				if err != nil {
					errs <- fmt.Errorf("session %d: %w", i, err)
					return
				}
				cl.sessions[i] = s
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (cl *client) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err == nil {
		cl.dials.Add(1)
	}
	return c, err
}

// echo has every session send p and wait for its echo, once when d is 0,
// else over and over for d; it returns the number of echoes.
func (cl *client) echo(p []byte, d time.Duration) (int64, error) {
	var total atomic.Int64
	var stop atomic.Bool
	if d > 0 {
		t := time.AfterFunc(d, func() { stop.Store(true) })
		defer t.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var first atomic.Pointer[error]
	for _, s := range cl.sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if err := s.SendBinary(p); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
				m, err := s.Receive(ctx)
				if err == nil && len(m.Payload) != len(p) {
					err = fmt.Errorf("echo of %d bytes came back with %d", len(p), len(m.Payload))
				}
				if err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
				total.Add(1)
				if d == 0 || stop.Load() {
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := first.Load(); e != nil {
		return total.Load(), *e
	}
	return total.Load(), nil
}

func (cl *client) close() {
	var wg sync.WaitGroup
	for _, s := range cl.sessions {
		if s != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.Close(wskit.CloseNormal, "")
			}()
		}
	}
	wg.Wait()
	for _, tr := range cl.trs {
		tr.CloseIdleConnections()
	}
}

// printTable prints every case's figures, memory per session as
// differences from the server before the sessions.
func printTable(all []result) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "run\tengine\tproto\tsize\tsessions\tTCP conns\tmsgs/s\tserver µs/msg\tclient µs/msg\tRSS B/session\theap B/session\tgoroutines/session\tRSS after load B/session\theap after load B/session")
	for _, r := range all {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.0f\t%.0f\t%.2f\t%.0f\t%.0f\n", r.Run, r.Engine, r.Proto, r.Size, r.Sessions, r.TCPConns,
			r.msgsPerSec(), r.serverMicros(), r.clientMicros(), r.perSession(r.RSSIdle-r.RSS0), r.perSession(int64(r.HeapIdle)-int64(r.Heap0)),
			r.perSession(int64(r.GoroutinesIdle)-int64(r.Goroutines0)), r.perSession(r.RSSLoaded-r.RSS0), r.perSession(int64(r.HeapLoaded)-int64(r.Heap0)))
	}
	tw.Flush()
}

// summarize prints, per engine and size, the medians over runs of each
// run's HTTP/2 figures divided by its HTTP/1.1 ones.
func summarize(all []result) {
	type key struct {
		engine string
		size   int
	}
	ratios := map[key][][]float64{}
	var keys []key
	for _, h2 := range all {
		if h2.Proto != "HTTP/2" {
			continue
		}
		i := slices.IndexFunc(all, func(h1 result) bool {
			return h1.Proto == "HTTP/1.1" && h1.Run == h2.Run && h1.Engine == h2.Engine && h1.Size == h2.Size
		})
		if i < 0 {
			continue
		}
		h1 := all[i]
		k := key{h2.Engine, h2.Size}
		if _, ok := ratios[k]; !ok {
			keys = append(keys, k)
		}
		ratios[k] = append(ratios[k], []float64{
			h2.msgsPerSec() / h1.msgsPerSec(),
			h2.serverMicros() / h1.serverMicros(),
			float64(h2.RSSIdle-h2.RSS0) / float64(h1.RSSIdle-h1.RSS0),
			(float64(h2.HeapIdle) - float64(h2.Heap0)) / (float64(h1.HeapIdle) - float64(h1.Heap0)),
		})
	}
	if len(keys) == 0 {
		return
	}
	fmt.Println("\nHTTP/2 ÷ HTTP/1.1, median of the runs' ratios")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "engine\tsize\truns\tmsgs/s\tserver µs/msg\tRSS/session\theap/session")
	for _, k := range keys {
		rs := ratios[k]
		med := make([]float64, 4)
		for j := range med {
			var col []float64
			for _, r := range rs {
				col = append(col, r[j])
			}
			med[j] = median(col)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%.2f\t%.1f\t%.1f\n", k.engine, k.size, len(rs), med[0], med[1], med[2], med[3])
	}
	tw.Flush()
}

func median(x []float64) float64 {
	x = slices.Clone(x)
	sort.Float64s(x)
	if len(x)%2 == 1 {
		return x[len(x)/2]
	}
	return (x[len(x)/2-1] + x[len(x)/2]) / 2
}

func fatal(err error) {
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "h2mux:", err)
	os.Exit(1)
}
