package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/wskit/wskit/internal/load"
)

const benchSynopsis = `wskit bench [flags] [URL...]

Puts load on a WebSocket server at URL (ws:// or wss://; or -url) and reports
throughput, latency percentiles, errors by kind and, with -pid, the server
process's CPU time and memory. A tcp://host:port URL runs echo, pipeline or
idle against a raw TCP echo server with the same payloads and no framing:
the ceiling a WebSocket server is measured against. Connections are driven by a few epoll loops
(Linux only) sending frames prepared once; replies are counted from their
frame headers, and with -verify compared byte for byte with what was sent.
Over wss:// each connection makes a full TLS 1.3 handshake (on a goroutine
while it opens; -insecure or -ca to trust a self-signed server), and the
loops then seal and open its records themselves; TLS 1.2 is refused.

Scenarios (-scenario):
  echo       -c connections in a closed loop, one message of -size bytes in flight each
  pipeline   the same with -p messages in flight per connection
  idle       -c connections held open and silent for -d (server RSS per connection
             with -pid), then one message on every one: the wake-up latency
  broadcast  -c subscribers to a URL that relays every text message to every
             connection (wskit serve's /chat); one more connection publishes
             stamped messages at -rate (default 100/s): publish-to-delivery latency.
             With several URLs (the nodes of a cluster) the subscribers, and the
             -publishers, are dealt over them in turn
  churn      -c cycles at once of connect, upgrade, echo one message, close: handshakes/s

More than about 28 000 connections to one server address need several
source addresses (-src 127.0.0.2,127.0.0.3,...). The exit code is 0 after a
run without errors, 1 when errors were counted or nothing could be measured,
2 for bad usage.`

// benchConfig holds the flags of wskit bench.
type benchConfig struct {
	load     load.Config
	json     bool
	progress bool
	insecure bool   // wss://: accept any certificate
	caFile   string // wss://: PEM certificates to trust
}

// sourcesValue is a comma-separated list of local addresses.
type sourcesValue []netip.Addr

func (s *sourcesValue) String() string {
	var b strings.Builder
	for i, a := range *s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(a.String())
	}
	return b.String()
}

func (s *sourcesValue) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("source address %q: %v", f, err)
		}
		*s = append(*s, a)
	}
	return nil
}

func parseBenchFlags(args []string, stdout, stderr io.Writer) (benchConfig, error) {
	var (
		c        benchConfig
		scenario string
		size     = int64(64)
		url      string
	)
	fs := newFlagSet("bench", benchSynopsis, stdout, stderr)
	fs.StringVar(&url, "url", "", "server `URL`; default ws://127.0.0.1:8080/echo, or /chat for broadcast")
	fs.StringVar(&scenario, "scenario", "echo", "`name`: echo, pipeline, idle, broadcast or churn")
	fs.IntVar(&c.load.Conns, "c", 1000, "how many `connections`: clients, held connections, subscribers or parallel cycles")
	fs.Var((*sizeValue)(&size), "size", "payload of every message in `bytes`, such as 64, 16KiB or 1MiB")
	fs.IntVar(&c.load.Pipeline, "p", 16, "`messages` in flight per connection (pipeline)")
	fs.DurationVar(&c.load.Duration, "d", 10*time.Second, "measured `duration` (idle: how long connections are held)")
	fs.DurationVar(&c.load.Ramp, "ramp", 0, "open the connections over this `duration`")
	fs.Float64Var(&c.load.Rate, "rate", 0, "limit of `messages` per second in all (churn: cycles begun; broadcast: published, 0 means 100); 0 for none")
	fs.IntVar(&c.load.Publishers, "publishers", 1, "broadcast: publishing `connections`, sharing -rate")
	fs.Var((*sourcesValue)(&c.load.Sources), "src", "local `addresses` to connect from, in turn, such as 127.0.0.2,127.0.0.3")
	fs.IntVar(&c.load.PID, "pid", 0, "server process `id` to measure CPU time and RSS of (from /proc)")
	fs.IntVar(&c.load.Loops, "loops", 0, "client event `loops`; 0 means one per CPU")
	fs.BoolVar(&c.load.Verify, "verify", false, "check every reply byte for byte against the message sent (not broadcast)")
	fs.BoolVar(&c.insecure, "insecure", false, "wss://: accept any certificate, such as a self-signed one, without checking it")
	fs.StringVar(&c.caFile, "ca", "", "wss://: trust the certificates in this PEM `file` (such as the one wskit serve -tls-self-signed prints)")
	fs.BoolVar(&c.json, "json", false, "print the result as JSON instead of a table")
	fs.BoolVar(&c.progress, "progress", false, "show progress on stderr even when it is not a terminal")
	rest, err := fs.parse(args)
	if err != nil {
		return c, err
	}
	switch {
	case len(rest) > 0 && url != "":
		return c, errors.New("want the URLs as arguments or -url, not both")
	case len(rest) > 1 && scenario != string(load.Broadcast):
		return c, errors.New("want at most one URL (several are for broadcast)")
	case len(rest) > 0:
		url, c.load.URLs = rest[0], rest[1:]
	case url == "" && scenario == string(load.Broadcast):
		url = "ws://127.0.0.1:8080/chat"
	case url == "":
		url = "ws://127.0.0.1:8080/echo"
	}
	if size > 1<<30 {
		return c, errors.New("-size is over 1GiB")
	}
	if c.load.Publishers < 1 {
		return c, errors.New("-publishers must be at least 1")
	}
	c.load.URL, c.load.Scenario, c.load.Size = url, load.Scenario(scenario), int(size)
	c.load.TLS, err = clientTLS(c.insecure, c.caFile)
	return c, err
}

// runBench runs wskit bench and returns the exit code.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parseBenchFlags(args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "wskit bench: %v\n", err)
		return 2
	}
	tty := isTerminal(stderr)
	var bar *progressBar
	if tty || c.progress {
		bar = &progressBar{w: stderr, tty: tty, scenario: c.load.Scenario}
		c.load.Progress = bar.update
	}
	res, err := load.Run(ctx, c.load)
	bar.clear()
	if err != nil {
		fmt.Fprintf(stderr, "wskit bench: %v\n", err)
		if errors.Is(err, load.ErrUnsupported) {
			return 1
		}
		return 2
	}
	if c.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(res)
	} else {
		err = res.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "wskit bench: %v\n", err)
		return 1
	}
	if res.ErrorTotal() > 0 || res.Seconds == 0 {
		return 1
	}
	return 0
}

// progressBar draws a run's progress on one line of a terminal, or prints
// a line per update elsewhere.
type progressBar struct {
	w        io.Writer
	tty      bool
	scenario load.Scenario
	last     load.Progress
	lastAt   time.Time
	drawn    bool
}

const barWidth = 24

func (b *progressBar) update(p load.Progress) {
	now := time.Now()
	var rate float64
	if b.drawn && p.Phase == b.last.Phase && now.After(b.lastAt) {
		rate = float64(p.Count-b.last.Count) / now.Sub(b.lastAt).Seconds()
	}
	b.last, b.lastAt = p, now

	frac := 1.0
	switch {
	case p.Phase == "connecting" && p.Conns > 0:
		frac = float64(p.Open) / float64(p.Conns)
	case p.Length > 0:
		frac = min(p.Elapsed.Seconds()/p.Length.Seconds(), 1)
	}
	fill := int(frac * barWidth)
	line := fmt.Sprintf("%-10s [%s%s] ", p.Phase, strings.Repeat("#", fill), strings.Repeat(".", barWidth-fill))
	if p.Length > 0 && p.Phase != "connecting" {
		line += fmt.Sprintf("%4.1fs/%s  ", p.Elapsed.Seconds(), p.Length)
	}
	line += fmt.Sprintf("%d/%d open  %.0f %s  %d errors", p.Open, p.Conns, rate, b.unit(), p.Errors)
	if b.tty {
		fmt.Fprintf(b.w, "\r%s\x1b[K", line)
	} else {
		fmt.Fprintln(b.w, line)
	}
	b.drawn = true
}

// unit names what Progress.Count counts, per second.
func (b *progressBar) unit() string {
	switch b.scenario {
	case load.Broadcast:
		return "deliveries/s"
	case load.Churn:
		return "handshakes/s"
	}
	return "msgs/s"
}

// clear removes the bar from a terminal; b may be nil.
func (b *progressBar) clear() {
	if b != nil && b.tty && b.drawn {
		fmt.Fprint(b.w, "\r\x1b[K")
	}
}
