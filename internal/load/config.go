package load

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"runtime"
	"time"
)

// Scenario names a workload.
type Scenario string

// The scenarios.
const (
	// Echo keeps Conns connections in a closed loop: each sends a message of
	// Size bytes, waits for its echo, and sends the next.
	Echo Scenario = "echo"
	// Pipeline is Echo with Pipeline messages in flight per connection.
	Pipeline Scenario = "pipeline"
	// Idle opens Conns connections and holds them, silent, for Duration,
	// then sends one message on every connection and times the echoes.
	Idle Scenario = "idle"
	// Broadcast holds Conns subscriber connections to a URL that relays
	// every text message to every connection (wskit serve's /chat), plus
	// one publisher that sends stamped messages at Rate; latency runs from
	// the publish to each delivery.
	Broadcast Scenario = "broadcast"
	// Churn runs Conns cycles in parallel, each as fast as it can: connect,
	// upgrade, echo one message, close.
	Churn Scenario = "churn"
)

// Scenarios lists every scenario.
var Scenarios = []Scenario{Echo, Pipeline, Idle, Broadcast, Churn}

// DefaultBroadcastRate is the publisher's rate when Config.Rate is 0.
const DefaultBroadcastRate = 100

// ErrUnsupported is returned by Run where it cannot run: it needs epoll.
var ErrUnsupported = errors.New("load: the load generator needs Linux (epoll); not supported on " + runtime.GOOS)

// Config describes a run.
type Config struct {
	// URL is the target, ws://host:port/path or wss://host:port/path.
	// tcp://host:port runs echo, pipeline or idle against a raw TCP echo
	// server, with the same payloads and no framing: the ceiling that a
	// WebSocket server is compared with.
	URL string
	// URLs are further targets, ws:// or wss:// as URL: connections are dealt over
	// URL and these in turn, and so are Broadcast's publishers, so that
	// the subscribers of one run may span the servers of a cluster.
	URLs     []string
	Scenario Scenario
	// Conns is how many connections: clients (Echo, Pipeline), held
	// connections (Idle), subscribers (Broadcast) or cycles at once (Churn).
	Conns int
	// Size is every message's payload in bytes.
	Size int
	// Pipeline is how many messages each connection keeps in flight under
	// Pipeline; the other scenarios have one.
	Pipeline int
	// Duration is how long the run is measured (Idle: how long the
	// connections are held before the wake-up).
	Duration time.Duration
	// Ramp spreads the opening of connections over this long. Measuring
	// starts once they are all open; under Echo and Pipeline each works as
	// soon as it is open.
	Ramp time.Duration
	// Rate limits the messages sent per second, over all connections: under
	// Churn the cycles begun, under Broadcast the publishers' messages, all
	// together (0 there means DefaultBroadcastRate). 0 is no limit; Idle
	// ignores it.
	Rate float64
	// Publishers is how many connections publish under Broadcast, each at
	// Rate/Publishers, on loops of their own; 0 means 1. Loops is raised
	// to Publishers if needed.
	Publishers int
	// Sources are local addresses to connect from, in turn: each has its own
	// ~28 000 ephemeral ports towards one server address.
	Sources []netip.Addr
	// PID is the server's process, on this machine, whose CPU time and
	// memory are reported; 0 for none.
	PID int
	// Loops is how many event loops drive the connections; 0 means one per
	// CPU (GOMAXPROCS).
	Loops int
	// Verify checks every reply byte for byte against the message sent
	// (Echo, Pipeline, Idle, Churn; tcp:// too): a reply that differs is
	// a protocol error. The check compares the bytes where they were read,
	// against the one payload all messages share, without copying them.
	Verify bool
	// DialTimeout bounds a connection's connect and upgrade, and one whole
	// cycle under Churn; 0 means 10 s.
	DialTimeout time.Duration
	// DrainTimeout bounds the wait for the replies still in flight at the
	// end, and for Idle's wake-up; 0 means 5 s.
	DrainTimeout time.Duration
	// TLS configures the client side of wss:// targets: RootCAs, or
	// InsecureSkipVerify to accept any certificate. nil means the system's
	// roots. ServerName defaults to each URL's host. The load tool speaks
	// TLS 1.3 only (see tls_linux.go), offers http/1.1 by ALPN and resumes
	// no session, so that every connection costs the server a full
	// handshake.
	TLS *tls.Config
	// Progress, when set, is called every ProgressInterval (0: 250 ms)
	// while the run goes on, from a goroutine of Run's.
	Progress         func(Progress)
	ProgressInterval time.Duration
}

// Progress is a run's state as Config.Progress sees it.
type Progress struct {
	Phase   string        // connecting, running, holding, waking or draining
	Elapsed time.Duration // since the phase began
	Length  time.Duration // the phase's planned length, 0 when open-ended
	Open    int           // connections open
	Conns   int           // connections asked for
	// Count is what the run counts, since it began: replies (Echo,
	// Pipeline, Idle), deliveries (Broadcast) or handshakes (Churn).
	Count  int64
	Errors int64
}

// withDefaults returns c with its zero values filled in, or an error if c
// cannot run.
func (c Config) withDefaults() (Config, error) {
	if c.Scenario == "" {
		c.Scenario = Echo
	}
	if c.Scenario != Pipeline {
		c.Pipeline = 1
	}
	if c.Scenario == Broadcast && c.Rate == 0 {
		c.Rate = DefaultBroadcastRate
	}
	if c.Scenario == Idle {
		c.Rate = 0
	}
	if c.Loops == 0 {
		c.Loops = runtime.GOMAXPROCS(0)
	}
	c.Loops = min(c.Loops, max(c.Conns, 1))
	if c.Scenario == Broadcast {
		c.Publishers = max(c.Publishers, 1)
		c.Loops = max(c.Loops, c.Publishers) // one publisher a loop
	} else {
		c.Publishers = 0
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 5 * time.Second
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = 250 * time.Millisecond
	}
	switch {
	case !validScenario(c.Scenario):
		return c, fmt.Errorf("load: unknown scenario %q (want echo, pipeline, idle, broadcast or churn)", c.Scenario)
	case c.Conns < 1:
		return c, errors.New("load: want at least one connection")
	case c.Size < 0:
		return c, errors.New("load: the message size must not be negative")
	case c.Scenario == Broadcast && c.Size < stampLen:
		return c, fmt.Errorf("load: broadcast messages carry a %d-byte stamp: want a size of at least %d", stampLen, stampLen)
	case c.Pipeline < 1:
		return c, errors.New("load: want at least one message in flight")
	case c.Duration <= 0:
		return c, errors.New("load: the duration must be positive")
	case c.Ramp < 0 || c.Rate < 0 || c.Loops < 0 || c.DialTimeout < 0 || c.DrainTimeout < 0 || c.ProgressInterval < 0:
		return c, errors.New("load: ramp, rate, loops and timeouts must not be negative")
	case c.PID < 0:
		return c, errors.New("load: bad server process id")
	case c.Publishers < 0:
		return c, errors.New("load: the number of publishers must not be negative")
	}
	for _, t := range c.URLs {
		u, err := url.Parse(t)
		if err != nil {
			return c, fmt.Errorf("load: %w", err)
		}
		if (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return c, fmt.Errorf("load: further URL %q: want ws:// or wss://host:port/path", t)
		}
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return c, fmt.Errorf("load: %w", err)
	}
	if u.Scheme == "tcp" && len(c.URLs) > 0 {
		return c, errors.New("load: a raw TCP echo takes one URL")
	}
	switch {
	case u.Scheme == "tcp" && (c.Scenario == Echo || c.Scenario == Pipeline || c.Scenario == Idle):
	case u.Scheme == "tcp":
		return c, fmt.Errorf("load: tcp:// (raw echo, no WebSocket) serves echo, pipeline and idle, not %s", c.Scenario)
	case u.Scheme != "ws" && u.Scheme != "wss":
		return c, fmt.Errorf("load: URL %q: want ws:// or wss://host:port/path, or tcp://host:port for a raw echo", c.URL)
	}
	if u.Host == "" {
		return c, fmt.Errorf("load: URL %q has no host", c.URL)
	}
	for _, a := range c.Sources {
		if !a.IsValid() {
			return c, errors.New("load: invalid source address")
		}
	}
	return c, nil
}

func validScenario(s Scenario) bool {
	for _, v := range Scenarios {
		if s == v {
			return true
		}
	}
	return false
}
