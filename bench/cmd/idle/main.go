// Command idle measures the memory a server holds for idle WebSocket
// connections. For each implementation it starts the server in a child
// process, then opens -n connections to it from -n/-per client processes
// (each holds at most -per sockets, under the limit on open files, from its
// own source address 127.0.0.2, 127.0.0.3, ... so that ephemeral ports do
// not run out), each completing the opening handshake and then sending
// nothing. Once the server has been idle for -quiet and its CPU time stops
// moving, it reads the server's VmRSS and its Go heap (after a GC), and
// prints them per connection, as differences from before the connections:
//
//	go run ./cmd/idle -n 19000
//	go run ./cmd/idle -impl wskit-poll-events,gorilla -n 5000
//
// The server's socket count is read from /proc to check that it holds the
// connections.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
	impls := flag.String("impl", "gorilla,nbio,wskit-std,wskit-poll-session,wskit-poll-events", "implementations, separated by commas")
	n := flag.Int("n", 19000, "idle connections")
	per := flag.Int("per", 9000, "connections per client process")
	quiet := flag.Duration("quiet", 5*time.Second, "wait after the last handshake before measuring")
	cpus := flag.String("cpus", "", "run the server under taskset -c CPUS with GOMAXPROCS set to match")
	heapDir := flag.String("heapprofile", "", "write each server's heap profile, connections held, to DIR/IMPL.heap.pprof")
	flag.Parse()

	exe, err := os.Executable()
	if err != nil {
		fatal(err)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "impl\tconns\tsockets\tRSS before MiB\tRSS after MiB\tRSS B/conn\theap B/conn\tstacks B/conn\tgoroutines/conn\tconnect s\t")
	for _, impl := range strings.Split(*impls, ",") {
		fmt.Fprintf(os.Stderr, "idle: %s: %d connections\n", impl, *n)
		r, err := measure(exe, impl, *n, *per, *quiet, *cpus, *heapDir)
		if err != nil {
			fatal(fmt.Errorf("%s: %w", impl, err))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%.0f\t%.0f\t%.0f\t%.2f\t%.1f\t\n",
			impl, r.conns, r.sockets, mib(r.rss0), mib(r.rss1),
			perConn(r.rss1-r.rss0, r.conns),
			perConn(int64(r.st1.HeapObjects)-int64(r.st0.HeapObjects), r.conns),
			perConn(int64(r.st1.Stacks)-int64(r.st0.Stacks), r.conns),
			perConn(int64(r.st1.Goroutines)-int64(r.st0.Goroutines), r.conns),
			r.connect.Seconds())
	}
	tw.Flush()
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
	st0, st1       servers.Stats
	connect        time.Duration
}

// measure runs one implementation: server, baseline, clients, measurement.
func measure(exe, impl string, n, per int, quiet time.Duration, cpus, heapDir string) (r result, err error) {
	argv, env, err := harness.ServerArgs(exe, roleVar, impl, cpus, "", 0)
	if err != nil {
		return r, err
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
		c, err := startClient(exe, srv.Addr, fmt.Sprintf("127.0.0.%d", i+2), k)
		if err != nil {
			return r, err
		}
		clients = append(clients, c)
	}
	for _, c := range clients {
		if err := c.wait(); err != nil {
			return r, err
		}
		r.conns += c.n
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
	n     int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready chan error
}

func startClient(exe, addr, src string, n int) (*client, error) {
	cmd, stdin, stdout, err := harness.StartPiped([]string{exe, "-addr", addr, "-src", src, "-n", strconv.Itoa(n)}, []string{roleVar + "=client"})
	if err != nil {
		return nil, err
	}
	c := &client{n: n, cmd: cmd, stdin: stdin, ready: make(chan error, 1)}
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		if strings.TrimSpace(line) != "ready" {
			c.ready <- fmt.Errorf("client %s: %q", src, line)
			return
		}
		c.ready <- nil
	}()
	return c, nil
}

func (c *client) wait() error {
	select {
	case err := <-c.ready:
		return err
	case <-time.After(5 * time.Minute):
		return fmt.Errorf("client process %d: not ready after 5 minutes", c.cmd.Process.Pid)
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

// clientMain opens -n connections from -src, upgrades each, prints
// "ready" and holds them until the end of stdin.
func clientMain(args []string) int {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	addr := fs.String("addr", "", "server host:port")
	src := fs.String("src", "127.0.0.1", "source address")
	n := fs.Int("n", 1000, "connections")
	par := fs.Int("parallel", 64, "handshakes in progress at once")
	if err := fs.Parse(args); err != nil {
		return 2
	}
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
					if err = harness.Upgrade(nc, *addr, servers.Path); err == nil {
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
	if first != nil {
		fmt.Fprintln(os.Stderr, "idle client:", first)
		fmt.Println("error")
		return 1
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return 0
}
