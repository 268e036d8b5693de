// Command cluster measures broadcast across servers on NATS: wskit-nats
// serve's /chat on three nodes, each a process of its own, with the
// subscribers of one run spread over them; beside one node with them all,
// and beside NATS alone fanning the same messages out to three plain
// nats.go subscribers, one per node (the ceiling of the hop through NATS).
// The subscribers and the publishers are the load tool's (wskit bench
// -scenario broadcast), so that latency runs from the publish to each
// delivery on one clock; the NATS server runs in a process of its own.
//
//	cd bench
//	go run ./cmd/cluster [-c 15000] [-publishers 1] [-rate 100] [-size 64] [-d 10s] [-runs single,core,jetstream,nats-core,nats-jetstream]
//
// Runs:
//
//	single          one wskit-nats serve without NATS: the Hub of one node
//	core            three nodes on core NATS (-nats-mode core)
//	jetstream       three nodes on JetStream (-nats-mode jetstream)
//	jetstream-async the same, publishing without waiting for each acknowledgement (-nats-async)
//	nats-core       NATS alone: the publishers' messages to 3 nats.go subscribers
//	nats-jetstream  the same through a JetStream stream, 3 ordered consumers
//
// Server CPU is that of every server process over the measured window (the
// nodes and nats-server, from /proc in 10 ms ticks), per delivery to a
// WebSocket subscriber; for the NATS runs per message a subscriber got.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/wskit/wskit/internal/load"
)

func main() {
	role := flag.String("role", "", "internal: nats runs a nats-server on -listen")
	listen := flag.String("listen", "127.0.0.1:0", "internal: the nats-server's address")
	conns := flag.Int("c", 15000, "WebSocket subscribers in all, spread over the nodes")
	publishers := flag.Int("publishers", 1, "publishing connections, spread over the nodes, sharing -rate")
	rate := flag.Float64("rate", 100, "messages published per second, in all")
	size := flag.Int("size", 64, "payload bytes of every message")
	dur := flag.Duration("d", 10*time.Second, "measured duration of each run")
	runs := flag.String("runs", "single,core,jetstream,jetstream-async,nats-core,nats-jetstream", "runs, comma-separated")
	asJSON := flag.Bool("json", false, "print the results as JSON")
	procs := flag.Int("node-procs", 0, "GOMAXPROCS of each node of the three-node runs (0: the Go default); one node holds every CPU")
	flag.Parse()
	if *role == "nats" {
		runNATS(*listen)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := config{conns: *conns, publishers: *publishers, rate: *rate, size: *size, dur: *dur, procs: *procs}
	if err := run(ctx, cfg, strings.Split(*runs, ","), *asJSON); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

type config struct {
	conns, publishers, size int
	procs                   int // GOMAXPROCS of each node of several
	rate                    float64
	dur                     time.Duration
}

// row is one run's figures.
type row struct {
	Run           string       `json:"run"`
	Nodes         int          `json:"nodes"`
	Subscribers   int          `json:"subscribers"`
	Publishers    int          `json:"publishers"`
	Rate          float64      `json:"rate"`
	Published     int64        `json:"published"`
	Deliveries    int64        `json:"deliveries"`
	Missing       int64        `json:"missing"`
	PerSec        float64      `json:"deliveries_per_s"`
	Latency       load.Latency `json:"latency"`
	ServerCPU     float64      `json:"server_cpu_s"`
	CPUPerDeliver float64      `json:"server_cpu_us_per_delivery"`
	Errors        int64        `json:"errors"`
}

func run(ctx context.Context, cfg config, runs []string, asJSON bool) error {
	bin, err := os.MkdirTemp("", "cluster")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	// wskit-nats is in the nats module, beside this one in the repository.
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/wskit/wskit").Output()
	if err != nil {
		return fmt.Errorf("go list: %w", err)
	}
	node := filepath.Join(bin, "wskit-nats")
	build := exec.Command("go", "build", "-o", node, "./cmd/wskit-nats")
	build.Dir = filepath.Join(strings.TrimSpace(string(root)), "nats")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build wskit-nats: %v\n%s", err, out)
	}
	var rows []row
	for _, r := range runs {
		var res row
		var err error
		switch r {
		case "single":
			res, err = runNodes(ctx, cfg, node, "", 1)
		case "core", "jetstream", "jetstream-async":
			res, err = runNodes(ctx, cfg, node, r, 3)
		case "nats-core", "nats-jetstream":
			res, err = runCeiling(ctx, cfg, strings.TrimPrefix(r, "nats-"))
		default:
			return fmt.Errorf("unknown run %q", r)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", r, err)
		}
		res.Run = r
		rows = append(rows, res)
		if !asJSON {
			fmt.Fprintf(os.Stderr, "%s: %.0f deliveries/s, p99 %.0f µs\n", r, res.PerSec, res.Latency.P99)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "run\tnodes\tsubscribers\tpublishers\tpublished/s\tdeliveries/s\tmissing\tp50 µs\tp99 µs\tp99.9 µs\tserver CPU µs/delivery\terrors\t")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%.0f\t%.0f\t%d\t%.0f\t%.0f\t%.0f\t%.3f\t%d\t\n", r.Run, r.Nodes, r.Subscribers, r.Publishers,
			r.Rate, r.PerSec, r.Missing, r.Latency.P50, r.Latency.P99, r.Latency.P999, r.CPUPerDeliver, r.Errors)
	}
	return w.Flush()
}

// proc is a child process: a node or nats-server.
type proc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

var listening = regexp.MustCompile(`(?:msg=listening addr=|NATS listening on )(\S+)`)

// start starts a child, with env added to this process's environment, and
// waits for the address it logs.
func start(env []string, name string, args ...string) (*proc, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		cmd.Wait()
	}()
	select {
	case p.addr = <-addr:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before listening", filepath.Base(name))
	case <-time.After(2 * time.Minute):
		p.stop()
		return nil, fmt.Errorf("%s did not listen", filepath.Base(name))
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop interrupts the child and waits for it.
func (p *proc) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// startNATS starts nats-server in a child process (this program with
// -role nats).
func startNATS() (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return start(nil, self, "-role", "nats")
}

// runNATS runs a nats-server with JetStream until interrupted.
func runNATS(listen string) {
	host, port, _ := net.SplitHostPort(listen)
	p := -1
	fmt.Sscan(port, &p)
	if p == 0 {
		p = -1
	}
	store, err := os.MkdirTemp("", "cluster-nats")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.RemoveAll(store)
	ns, err := server.NewServer(&server.Options{Host: host, Port: p, NoLog: true, NoSigs: true, JetStream: true, StoreDir: store, MaxPayload: 8 << 20})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(os.Stderr, "nats-server not ready")
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "NATS listening on %s\n", ns.ClientURL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	ns.Shutdown()
	ns.WaitForShutdown()
}

// cpu sums the CPU time of procs.
func cpu(procs []*proc) time.Duration {
	var sum time.Duration
	for _, p := range procs {
		if d, err := load.ProcessCPU(p.pid()); err == nil {
			sum += d
		}
	}
	return sum
}

// runNodes runs n wskit-nats serve nodes (on NATS in mode, unless "") and
// the load tool's broadcast against their /chat.
func runNodes(ctx context.Context, cfg config, bin, mode string, n int) (row, error) {
	var servers []*proc
	defer func() {
		for i := len(servers) - 1; i >= 0; i-- {
			servers[i].stop()
		}
	}()
	var natsURL string
	if mode != "" {
		ns, err := startNATS()
		if err != nil {
			return row{}, err
		}
		natsURL = ns.addr
		servers = append(servers, ns)
	}
	var urls []string
	for range n {
		args := []string{"serve", "-addr", "127.0.0.1:0"}
		switch mode {
		case "":
		case "jetstream-async":
			args = append(args, "-nats", natsURL, "-nats-mode", "jetstream", "-nats-async")
		default:
			args = append(args, "-nats", natsURL, "-nats-mode", mode)
		}
		var env []string
		if n > 1 && cfg.procs > 0 {
			env = []string{fmt.Sprint("GOMAXPROCS=", cfg.procs)}
		}
		p, err := start(env, bin, args...)
		if err != nil {
			return row{}, err
		}
		servers = append(servers, p)
		urls = append(urls, "ws://"+p.addr+"/chat")
	}
	var before, after atomic.Int64
	var measuring, drained atomic.Bool
	lc := load.Config{
		Scenario: load.Broadcast, URL: urls[0], URLs: urls[1:], Conns: cfg.conns, Publishers: cfg.publishers,
		Rate: cfg.rate, Size: cfg.size, Duration: cfg.dur, Ramp: 3 * time.Second,
		ProgressInterval: 20 * time.Millisecond,
		Progress: func(p load.Progress) {
			switch {
			case p.Phase == "running" && !measuring.Swap(true):
				before.Store(int64(cpu(servers)))
			case p.Phase == "draining" && !drained.Swap(true):
				after.Store(int64(cpu(servers)))
			}
		},
	}
	res, err := load.Run(ctx, lc)
	if err != nil {
		return row{}, err
	}
	if !drained.Load() {
		after.Store(int64(cpu(servers)))
	}
	used := time.Duration(after.Load() - before.Load())
	r := row{
		Nodes: n, Subscribers: res.Open, Publishers: cfg.publishers, Rate: float64(res.Published) / res.Seconds,
		Published: res.Published, Deliveries: res.Messages, Missing: res.Missing, PerSec: res.MsgsPerSec,
		Latency: res.Latency, ServerCPU: used.Seconds(), Errors: res.ErrorTotal(),
	}
	if res.Messages > 0 {
		r.CPUPerDeliver = float64(used.Microseconds()) / float64(res.Messages)
	}
	return r, nil
}

// runCeiling publishes the same messages to NATS alone, core or through a
// JetStream stream, and times their arrival at three subscribers.
func runCeiling(ctx context.Context, cfg config, mode string) (row, error) {
	ns, err := startNATS()
	if err != nil {
		return row{}, err
	}
	defer ns.stop()
	const subject = "wskit.chat"
	var conns []*nats.Conn
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	connect := func() (*nats.Conn, error) {
		nc, err := nats.Connect(ns.addr)
		if err == nil {
			conns = append(conns, nc)
		}
		return nc, err
	}
	base := time.Now()
	hists := make([]load.Histogram, 3)
	var mu sync.Mutex
	var got atomic.Int64
	var measuring atomic.Bool
	receive := func(i int, data []byte) {
		if len(data) < 8 || !measuring.Load() {
			return
		}
		lat := int64(time.Since(base)) - int64(binary.LittleEndian.Uint64(data))
		mu.Lock()
		hists[i].Record(lat)
		mu.Unlock()
		got.Add(1)
	}
	var js jetstream.JetStream
	pub, err := connect()
	if err != nil {
		return row{}, err
	}
	if mode == "jetstream" {
		if js, err = jetstream.New(pub); err != nil {
			return row{}, err
		}
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "CEILING", Subjects: []string{"wskit.>"}, MaxMsgsPerSubject: 1000}); err != nil {
			return row{}, err
		}
	}
	for i := range 3 {
		nc, err := connect()
		if err != nil {
			return row{}, err
		}
		if mode == "core" {
			if _, err := nc.Subscribe(subject, func(m *nats.Msg) { receive(i, m.Data) }); err != nil {
				return row{}, err
			}
			nc.Flush()
			continue
		}
		sjs, _ := jetstream.New(nc)
		cons, err := sjs.OrderedConsumer(ctx, "CEILING", jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverNewPolicy})
		if err != nil {
			return row{}, err
		}
		cc, err := cons.Consume(func(m jetstream.Msg) { receive(i, m.Data()) })
		if err != nil {
			return row{}, err
		}
		defer cc.Stop()
	}
	servers := []*proc{ns}
	measuring.Store(true)
	cpu0, start := cpu(servers), time.Now()
	var published atomic.Int64
	var perrs atomic.Int64
	var wg sync.WaitGroup
	deadline := start.Add(cfg.dur)
	each := cfg.rate / float64(cfg.publishers)
	for range cfg.publishers {
		wg.Go(func() {
			msg := make([]byte, max(cfg.size, 8))
			for k := 0; ; k++ {
				at := start.Add(time.Duration(float64(k) / each * float64(time.Second)))
				if at.After(deadline) || ctx.Err() != nil {
					return
				}
				time.Sleep(time.Until(at))
				// Timed from when it was due, so that a publisher that
				// falls behind shows in the latency, as the load tool's
				// does (it stops sending when the server stops reading).
				binary.LittleEndian.PutUint64(msg, uint64(at.Sub(base)))
				var err error
				if js != nil {
					_, err = js.Publish(ctx, subject, msg)
				} else {
					err = pub.Publish(subject, msg)
				}
				if err != nil {
					perrs.Add(1)
					continue
				}
				published.Add(1)
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	for want := published.Load() * 3; got.Load() < want && time.Since(start) < cfg.dur+5*time.Second; {
		time.Sleep(10 * time.Millisecond)
	}
	used := cpu(servers) - cpu0
	var h load.Histogram
	mu.Lock()
	for i := range hists {
		h.Merge(&hists[i])
	}
	mu.Unlock()
	r := row{
		Nodes: 3, Subscribers: 3, Publishers: cfg.publishers, Rate: float64(published.Load()) / secs,
		Published: published.Load(), Deliveries: got.Load(), Missing: published.Load()*3 - got.Load(),
		PerSec: float64(got.Load()) / secs, Latency: h.Summary(), ServerCPU: used.Seconds(), Errors: perrs.Load(),
	}
	if got.Load() > 0 {
		r.CPUPerDeliver = float64(used.Microseconds()) / float64(got.Load())
	}
	return r, nil
}
