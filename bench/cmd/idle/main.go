// Command idle measures the memory a server holds for idle WebSocket
// connections. For each implementation it starts the server in a child
// process, then opens -n connections to it from -n/-per client processes
// (each holds at most -per sockets, under the limit on open files, from its
// own source address 127.0.0.2, 127.0.0.3, ... so that ephemeral ports do
// not run out), each completing the opening handshake and then sending
// nothing. Once the server has been idle for -quiet and its CPU time stops
// moving, it reads the server's VmRSS, its Go heap (after two GCs, so that
// sync.Pools' victim caches are emptied: pooled objects are shared, not per
// connection) and its VmRSS again once it has returned freed memory to the
// operating system (debug.FreeOSMemory; "RSS freed"), and prints them per
// connection, as differences from before the connections:
//
//	go run ./cmd/idle -n 19000
//	go run ./cmd/idle -impl wskit-poll-events,gorilla -n 5000
//
// The server's socket count is read from /proc to check that it holds the
// connections.
//
// Servers that accept permessage-deflate (the -deflate variants of the zoo:
// gorilla-deflate, wskit-std-deflate, wskit-poll-events-deflate and their
// -nocontext forms) get clients that offer it ("permessage-deflate;
// client_max_window_bits", as browsers do) and fail unless it is accepted;
// the negotiated response is printed. With -echo SIZE each connection then
// sends one message of SIZE bytes of JSON-like text (compressed when
// negotiated) and reads its echo (which must come back compressed when
// negotiated) before going idle, so that the server holds whatever a
// connection keeps after its first message: with context takeover, the
// client's window and the server's compressor. -churn has the clients open
// (and echo on) all their connections and close them; the server then
// collects garbage twice (emptying its pools) and the clients open them
// again, so that the server's second round of allocations reuses memory
// the first round freed, as in a server that has been running a while. -runs
// repeats the whole set, servers in turn, and prints the median of each
// column. The TLS variants of the zoo (-tls) get clients that make a TLS 1.3
// handshake first (crypto/tls, any certificate accepted) and speak
// WebSocket over it. -json prints one JSON object per measurement instead
// of the table:
//
//	go run ./cmd/idle -n 10000 -per 5000 -runs 3 -echo 1024 \
//		-impl gorilla-deflate,wskit-poll-events-deflate,wskit-poll-events-deflate-nocontext
package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wskit/wskit/bench/internal/harness"
	"github.com/wskit/wskit/bench/internal/servers"
)

// roleVar in the environment makes this binary a server or a client
// process of the coordinator.
const roleVar = "WSKIT_IDLE_ROLE"

func main() {
	switch os.Getenv(roleVar) {
	case "server":
		os.Exit(servers.Main(os.Args[1:]))
	case "client":
		os.Exit(clientMain(os.Args[1:]))
	}
	impls := flag.String("impl", strings.Join(slices.DeleteFunc(slices.Clone(servers.Names), servers.IsRaw), ","), "implementations, separated by commas")
	n := flag.Int("n", 19000, "idle connections")
	per := flag.Int("per", 9000, "connections per client process")
	quiet := flag.Duration("quiet", 5*time.Second, "wait after the last handshake before measuring")
	cpus := flag.String("cpus", "", "run the server under taskset -c CPUS with GOMAXPROCS set to match")
	heapDir := flag.String("heapprofile", "", "write each server's heap profile, connections held, to DIR/IMPL.heap.pprof")
	echo := flag.Int("echo", 0, "after the handshake, send one message of this many bytes of JSON-like text on each connection and read its echo (0: none)")
	runs := flag.Int("runs", 1, "measure every implementation this many times, in turn, and print the medians")
	churn := flag.Bool("churn", false, "have the clients open (and echo on) all connections, close them, and open them again: the server's memory then holds what a long-running one reuses")
	jsonOut := flag.Bool("json", false, "print one JSON object per measurement on stdout instead of the table")
	flag.IntVar(&parallel, "parallel", 64, "handshakes each client process keeps in progress at once")
	classes := flag.Bool("classes", false, "also print, per connection, where the runtime's memory went (its /memory/classes/ metrics once freed memory is returned)")
	flag.Parse()

	exe, err := os.Executable()
	if err != nil {
		fatal(err)
	}
	names := strings.Split(*impls, ",")
	rows := make(map[string][][]float64)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "impl\trun\tconns\tsockets\tRSS before MiB\tRSS after MiB\t"+strings.Join(columns, "\t")+"\tconnect s\tnegotiated\t")
	for run := 1; run <= *runs; run++ {
		for _, impl := range names {
			fmt.Fprintf(os.Stderr, "idle: %s: run %d: %d connections\n", impl, run, *n)
			r, err := measure(exe, impl, *n, *per, *echo, *churn, *quiet, *cpus, *heapDir)
			if err != nil {
				fatal(fmt.Errorf("%s: %w", impl, err))
			}
			row := r.perConn()
			rows[impl] = append(rows[impl], row)
			if *jsonOut {
				if err := json.NewEncoder(os.Stdout).Encode(r.record(impl, run, *echo)); err != nil {
					fatal(err)
				}
				continue
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f\t%.1f\t%s\t%.1f\t%s\t\n",
				impl, run, r.conns, r.sockets, mib(r.rss0), mib(r.rss1), formatRow(row), r.connect.Seconds(), r.negotiated)
			tw.Flush()
			if *classes {
				printClasses(os.Stdout, impl, r)
			}
		}
	}
	if *runs > 1 && !*jsonOut {
		fmt.Fprintf(tw, "\nmedian of %d runs\t"+strings.Repeat("\t", len(columns)-1)+"\t\n", *runs)
		fmt.Fprintln(tw, "impl\t"+strings.Join(columns, "\t")+"\t")
		for _, impl := range names {
			med := make([]float64, len(columns))
			for i := range med {
				var col []float64
				for _, row := range rows[impl] {
					col = append(col, row[i])
				}
				med[i] = median(col)
			}
			fmt.Fprintf(tw, "%s\t%s\t\n", impl, formatRow(med))
		}
		tw.Flush()
	}
}

// columns are the figures per connection of a result.
var columns = []string{"RSS B/conn", "RSS freed B/conn", "heap B/conn", "stacks B/conn", "goroutines/conn"}

func (r result) perConn() []float64 {
	return []float64{
		perConn(r.rss1-r.rss0, r.conns),
		perConn(r.rssFree1-r.rssFree0, r.conns),
		perConn(int64(r.st1.HeapObjects)-int64(r.st0.HeapObjects), r.conns),
		perConn(int64(r.st1.Stacks)-int64(r.st0.Stacks), r.conns),
		perConn(int64(r.st1.Goroutines)-int64(r.st0.Goroutines), r.conns),
	}
}

// record is a measurement as -json prints it.
type record struct {
	Impl             string  `json:"impl"`
	Run              int     `json:"run"`
	Conns            int     `json:"conns"`
	Sockets          int     `json:"sockets"`
	Echo             int     `json:"echo_bytes"`
	RSSBefore        int64   `json:"rss_before_bytes"`
	RSSAfter         int64   `json:"rss_after_bytes"`
	RSSPerConn       float64 `json:"rss_per_conn_bytes"`
	RSSFreedPerConn  float64 `json:"rss_freed_per_conn_bytes"`
	HeapPerConn      float64 `json:"heap_per_conn_bytes"`
	StacksPerConn    float64 `json:"stacks_per_conn_bytes"`
	GoroutinesPerCon float64 `json:"goroutines_per_conn"`
	ConnectSeconds   float64 `json:"connect_s"`
	Negotiated       string  `json:"negotiated"`
}

func (r result) record(impl string, run, echo int) record {
	row := r.perConn()
	return record{
		Impl: impl, Run: run, Conns: r.conns, Sockets: r.sockets, Echo: echo,
		RSSBefore: r.rss0, RSSAfter: r.rss1,
		RSSPerConn: row[0], RSSFreedPerConn: row[1], HeapPerConn: row[2], StacksPerConn: row[3], GoroutinesPerCon: row[4],
		ConnectSeconds: r.connect.Seconds(), Negotiated: r.negotiated,
	}
}

// printClasses prints the runtime's memory classes that moved, per
// connection, once freed memory was returned.
func printClasses(w io.Writer, impl string, r result) {
	names := make([]string, 0, len(r.free1.Classes))
	for n := range r.free1.Classes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		d := perConn(int64(r.free1.Classes[n])-int64(r.free0.Classes[n]), r.conns)
		if d >= 0.5 || d <= -0.5 {
			fmt.Fprintf(w, "    %s %s: %.0f B/conn\n", impl, n, d)
		}
	}
}

func formatRow(row []float64) string {
	return fmt.Sprintf("%.0f\t%.0f\t%.0f\t%.0f\t%.2f", row[0], row[1], row[2], row[3], row[4])
}

func median(x []float64) float64 {
	x = slices.Clone(x)
	slices.Sort(x)
	if len(x)%2 == 1 {
		return x[len(x)/2]
	}
	return (x[len(x)/2-1] + x[len(x)/2]) / 2
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "idle:", err)
	os.Exit(1)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func perConn(b int64, n int) float64 { return float64(b) / float64(n) }

type result struct {
	conns, sockets int
	rss0, rss1     int64
	// VmRSS once the server has returned the memory it freed to the
	// operating system (debug.FreeOSMemory), before and after.
	rssFree0, rssFree1 int64
	st0, st1           servers.Stats
	free0, free1       servers.Stats // once freed memory is returned
	connect            time.Duration
	negotiated         string // the server's Sec-WebSocket-Extensions, "-" for none
}

// measure runs one implementation: server, baseline, clients, measurement.
func measure(exe, impl string, n, per, echo int, churn bool, quiet time.Duration, cpus, heapDir string) (r result, err error) {
	argv, env, err := harness.ServerArgs(exe, roleVar, impl, cpus, "", 0)
	if err != nil {
		return r, err
	}
	if heapDir != "" {
		// Every allocation recorded, so that the profile accounts for each
		// byte held rather than a sample.
		argv = append(argv, "-memprofilerate", "1")
	}
	srv, err := harness.Spawn(argv, env)
	if err != nil {
		return r, err
	}
	defer srv.Stop()
	if err := settle(srv, time.Second); err != nil {
		return r, err
	}
	// RSS first, then the heap after a GC, then the sockets, the debug
	// listener's connection included.
	if r.rss0, err = harness.RSS(srv.Pid); err != nil {
		return r, err
	}
	if r.st0, err = srv.Stats(true); err != nil {
		return r, err
	}
	sock0, err := harness.Sockets(srv.Pid)
	if err != nil {
		return r, err
	}
	if r.free0, err = srv.FreeOSMemory(); err != nil {
		return r, err
	}
	if r.rssFree0, err = harness.RSS(srv.Pid); err != nil {
		return r, err
	}

	start := time.Now()
	var clients []*client
	defer func() {
		for _, c := range clients {
			c.stop()
		}
	}()
	for i := 0; n > 0; i++ {
		k := min(n, per)
		n -= k
		c, err := startClient(exe, srv.Addr, fmt.Sprintf("127.0.0.%d", i+2), k, servers.Deflate(impl), servers.IsTLS(impl), echo, churn)
		if err != nil {
			return r, err
		}
		clients = append(clients, c)
	}
	if churn {
		// Every client has closed its first round of connections. Once the
		// server has seen the ends, two GCs free what they held (pooled
		// objects included), so that the second round reuses that memory.
		for _, c := range clients {
			if err := c.wait("churned"); err != nil {
				return r, err
			}
		}
		if err := settle(srv, 2*time.Second); err != nil {
			return r, err
		}
		if _, err := srv.Stats(true); err != nil {
			return r, err
		}
		for _, c := range clients {
			if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
				return r, err
			}
		}
	}
	r.negotiated = "-"
	for _, c := range clients {
		if err := c.wait("ready"); err != nil {
			return r, err
		}
		r.conns += c.n
		if c.negotiated != "" {
			r.negotiated = c.negotiated
		}
	}
	r.connect = time.Since(start)

	if err := settle(srv, quiet); err != nil {
		return r, err
	}
	if r.rss1, err = harness.RSS(srv.Pid); err != nil {
		return r, err
	}
	if r.st1, err = srv.Stats(true); err != nil {
		return r, err
	}
	sock1, err := harness.Sockets(srv.Pid)
	if err != nil {
		return r, err
	}
	r.sockets = sock1 - sock0
	if r.free1, err = srv.FreeOSMemory(); err != nil {
		return r, err
	}
	if r.rssFree1, err = harness.RSS(srv.Pid); err != nil {
		return r, err
	}
	if heapDir != "" {
		if err := saveHeapProfile(srv, filepath.Join(heapDir, impl+".heap.pprof")); err != nil {
			return r, err
		}
	}
	if r.sockets < r.conns {
		return r, fmt.Errorf("the server holds %d sockets more than before, want %d", r.sockets, r.conns)
	}
	return r, nil
}

func saveHeapProfile(srv *harness.Child, path string) error {
	resp, err := http.Get("http://" + srv.DebugAddr + "/debug/pprof/heap")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// settle waits d, then until the server's CPU time stays put for a second
// (at most 30 s more).
func settle(srv *harness.Child, d time.Duration) error {
	time.Sleep(d)
	for range 30 {
		a, err := srv.CPU()
		if err != nil {
			return err
		}
		time.Sleep(time.Second)
		b, err := srv.CPU()
		if err != nil {
			return err
		}
		if b-a <= 10*time.Millisecond {
			return nil
		}
	}
	return nil
}

// client is a client process holding n connections.
type client struct {
	n          int
	cmd        *exec.Cmd
	stdin      io.WriteCloser
	lines      chan string // the client's output, line by line
	negotiated string      // after ready: the server's extensions response
}

// parallel is -parallel: handshakes in progress at once per client.
var parallel = 64

func startClient(exe, addr, src string, n int, deflate, useTLS bool, echo int, churn bool) (*client, error) {
	argv := []string{exe, "-addr", addr, "-src", src, "-n", strconv.Itoa(n), "-echo", strconv.Itoa(echo), "-parallel", strconv.Itoa(parallel)}
	if deflate {
		argv = append(argv, "-deflate")
	}
	if useTLS {
		argv = append(argv, "-tls")
	}
	if churn {
		argv = append(argv, "-churn")
	}
	cmd, stdin, stdout, err := harness.StartPiped(argv, []string{roleVar + "=client"})
	if err != nil {
		return nil, err
	}
	c := &client{n: n, cmd: cmd, stdin: stdin, lines: make(chan string, 2)}
	go func() {
		defer close(c.lines)
		br := bufio.NewReader(stdout)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			c.lines <- strings.TrimSpace(line)
		}
	}()
	return c, nil
}

// wait waits for the client to print word ("ready" or "churned").
func (c *client) wait(word string) error {
	select {
	case line, ok := <-c.lines:
		w, rest, _ := strings.Cut(line, "\t")
		if !ok || w != word {
			return fmt.Errorf("client process %d printed %q, want %q", c.cmd.Process.Pid, line, word)
		}
		if w == "ready" {
			c.negotiated = rest
		}
		return nil
	case <-time.After(5 * time.Minute):
		return fmt.Errorf("client process %d: not %s after 5 minutes", c.cmd.Process.Pid, word)
	}
}

// stop ends the client process, closing its connections.
func (c *client) stop() {
	c.stdin.Close()
	done := make(chan struct{})
	go func() {
		c.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// clientMain opens -n connections from -src (with -tls, each makes a TLS
// 1.3 handshake first, accepting any certificate), upgrades each (offering
// permessage-deflate with -deflate), echoes one message of -echo bytes on
// each when asked, prints "ready" (followed by a tab and the server's
// extensions response with -deflate) and holds them until the end of stdin.
// With -churn it first opens them all, closes them, prints "churned" and
// waits for a line on stdin.
func clientMain(args []string) int {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	addr := fs.String("addr", "", "server host:port")
	src := fs.String("src", "127.0.0.1", "source address")
	n := fs.Int("n", 1000, "connections")
	par := fs.Int("parallel", 64, "handshakes in progress at once")
	deflate := fs.Bool("deflate", false, "offer permessage-deflate and require it")
	echo := fs.Int("echo", 0, "bytes of one message to echo on each connection after the handshake (0: none)")
	churn := fs.Bool("churn", false, "open (and echo on) the connections, close them all, and do it again")
	useTLS := fs.Bool("tls", false, "make a TLS 1.3 handshake on each connection before the upgrade")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var msg []byte
	if *echo > 0 {
		msg = harness.JSONText(*echo, 1)
	}
	var negotiated atomic.Value
	d := net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP(*src)},
		Timeout:   30 * time.Second,
		// Bind the source address only; the port is picked at connect,
		// which is fast, where bind's own search for a free port slows
		// down as the ports fill.
		Control: func(network, address string, rc syscall.RawConn) error {
			var err error
			rc.Control(func(fd uintptr) {
				err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
			})
			return err
		},
	}
	// open opens, upgrades and (with -echo) echoes on n connections.
	open := func() ([]net.Conn, error) {
		conns := make([]net.Conn, *n)
		var (
			next  atomic.Int64
			wg    sync.WaitGroup
			mu    sync.Mutex
			first error
		)
		for range *par {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= len(conns) {
						return
					}
					nc, err := d.Dial("tcp", *addr)
					if err == nil {
						nc.SetDeadline(time.Now().Add(30 * time.Second))
						if *useTLS {
							tc := tls.Client(nc, &tls.Config{
								InsecureSkipVerify: true, // the server's certificate is self-signed
								MinVersion:         tls.VersionTLS13,
								NextProtos:         []string{"http/1.1"},
							})
							err = tc.Handshake()
							nc = tc
						}
					}
					if err == nil {
						err = upgrade(nc, *addr, *deflate, msg, &negotiated)
						if err == nil {
							err = nc.SetDeadline(time.Time{})
						}
					}
					if err != nil {
						mu.Lock()
						if first == nil {
							first = fmt.Errorf("connection %d: %w", i, err)
						}
						mu.Unlock()
						next.Store(int64(len(conns)))
						return
					}
					conns[i] = nc
				}
			})
		}
		wg.Wait()
		return conns, first
	}
	stdin := bufio.NewReader(os.Stdin)
	conns, err := open()
	if err == nil && *churn {
		for _, c := range conns {
			c.Close()
		}
		// The coordinator lets the server collect what they held first.
		fmt.Println("churned")
		if _, err := stdin.ReadString('\n'); err != nil {
			return 1
		}
		conns, err = open()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "idle client:", err)
		fmt.Println("error")
		return 1
	}
	if *deflate {
		fmt.Printf("ready\t%s\n", negotiated.Load())
	} else {
		fmt.Println("ready")
	}
	io.Copy(io.Discard, stdin)
	runtime.KeepAlive(conns)
	return 0
}

// upgrade performs the handshake on nc, offering permessage-deflate when
// deflate is set (and then storing the response in negotiated), then
// echoes msg unless it is nil. With deflate the echo goes compressed and
// must come back compressed.
func upgrade(nc net.Conn, addr string, deflate bool, msg []byte, negotiated *atomic.Value) error {
	if !deflate {
		if err := harness.Upgrade(nc, addr, servers.URI); err != nil {
			return err
		}
	} else {
		ext, err := harness.UpgradeDeflate(nc, addr, servers.URI)
		if err != nil {
			return err
		}
		negotiated.Store(ext)
	}
	if msg == nil {
		return nil
	}
	compressed, err := harness.Echo(nc, msg, deflate)
	if err == nil && deflate && !compressed {
		err = errors.New("the server's echo came uncompressed")
	}
	return err
}
