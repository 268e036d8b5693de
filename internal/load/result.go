package load

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Result is what a run measured. Counts and rates cover the measured
// window unless a field says otherwise.
type Result struct {
	Scenario Scenario `json:"scenario"`
	URL      string   `json:"url"`
	Conns    int      `json:"conns"`     // asked for
	Open     int      `json:"open"`      // open when measuring began (Broadcast: subscribers)
	Size     int      `json:"size"`      // bytes of payload per message
	Pipeline int      `json:"pipeline"`  // messages in flight per connection
	Rate     float64  `json:"rate"`      // the limit, per second; 0 for none
	Loops    int      `json:"loops"`     // client event loops
	Seconds  float64  `json:"seconds"`   // the measured window
	Sources  int      `json:"sources"`   // local addresses connected from; 0: the system's choice
	Complete bool     `json:"completed"` // false when the run was cut short
	// TLS is the protocol and cipher suite of wss:// connections, such as
	// "TLS 1.3, TLS_AES_128_GCM_SHA256"; empty over ws://.
	TLS string `json:"tls,omitempty"`
	// Verified says that every reply was checked byte for byte against
	// the message sent (Config.Verify).
	Verified bool `json:"verified"`
	// ConnectSeconds is how long the connections took to open (Churn: the
	// ramp).
	ConnectSeconds float64 `json:"connect_s"`

	// Messages is what was received in the window: echoes (Echo,
	// Pipeline, Churn), the wake-up echoes (Idle) or deliveries to
	// subscribers (Broadcast, including those of the last messages that
	// arrived after the window).
	Messages   int64   `json:"messages"`
	MsgsPerSec float64 `json:"msgs_per_s"`
	// MBPerSec is the payload of Messages, in 10^6 bytes per second.
	MBPerSec float64 `json:"mb_per_s"`
	// Handshakes and HandshakesPerSec count upgrades (Churn).
	Handshakes       int64   `json:"handshakes"`
	HandshakesPerSec float64 `json:"handshakes_per_s"`
	// Published is the publisher's messages, Expected their deliveries to
	// the subscribers open when measuring began, Missing those that did not
	// arrive (Broadcast).
	Published int64 `json:"published"`
	Expected  int64 `json:"expected"`
	Missing   int64 `json:"missing"`
	// WakeSeconds is Idle's wake-up: from the first message sent to the last
	// echo received.
	WakeSeconds float64 `json:"wake_s"`
	// Sent and Received count every message over the whole run, warm-up
	// and drain included: echo clients' messages and their echoes, the
	// publisher's messages and the subscribers' deliveries.
	Sent     int64 `json:"sent"`
	Received int64 `json:"received"`

	// Latency is per message: send to echo (Echo, Pipeline; queueing
	// behind the messages ahead included), send to echo of the wake-up
	// message (Idle), publish to delivery (Broadcast), connect to the
	// upgrade's response (Churn).
	Latency Latency `json:"latency"`
	// Errors are counted by kind: connect, handshake, timeout, closed (by a
	// close frame), eof, reset, protocol, io.
	Errors map[string]ErrorCount `json:"errors"`
	// ClientCPUPercent is this process's CPU time over the window (100 is
	// one CPU busy).
	ClientCPUPercent float64 `json:"client_cpu_percent"`
	// Server is measured when Config.PID is set.
	Server *ServerStats `json:"server,omitempty"`
}

// ServerStats is the server process's use of CPU and memory.
type ServerStats struct {
	PID int `json:"pid"`
	// CPUSeconds is user and system time over the window (Idle: the
	// hold), in the kernel's 10 ms ticks; CPUPercent is it over the
	// window's length (100 is one CPU busy).
	CPUSeconds float64 `json:"cpu_s"`
	CPUPercent float64 `json:"cpu_percent"`
	// CPUMicros is CPU time per message (Echo, Pipeline), per delivery
	// (Broadcast) or per handshake (Churn).
	CPUMicros float64 `json:"cpu_us_per_op"`
	// RSS is the resident memory at the end of the window.
	RSS int64 `json:"rss_bytes"`
	// RSSBefore is the resident memory before the first connection, and
	// RSSPerConn the growth per open connection (Idle). Measure it on a
	// freshly started server: one that has already served more holds freed
	// memory it reuses without growing.
	RSSBefore  int64   `json:"rss_before_bytes"`
	RSSPerConn float64 `json:"rss_per_conn_bytes"`
}

// ErrorTotal returns the number of errors of every kind.
func (r *Result) ErrorTotal() int64 {
	var n int64
	for _, e := range r.Errors {
		n += e.Count
	}
	return n
}

// WriteText writes r as a table for people.
func (r *Result) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", name, fmt.Sprintf(format, args...))
	}
	what := fmt.Sprintf("%d conns × %s", r.Conns, bytesText(int64(r.Size)))
	switch r.Scenario {
	case Pipeline:
		what += fmt.Sprintf(", %d in flight each", r.Pipeline)
	case Broadcast:
		what = fmt.Sprintf("%d subscribers × %s", r.Conns, bytesText(int64(r.Size)))
	}
	if r.Rate > 0 {
		what += fmt.Sprintf(", limit %s/s", count(r.Rate))
	}
	row("scenario", "%s  %s", r.Scenario, r.URL)
	from := ""
	if r.Sources > 0 {
		from = fmt.Sprintf(" from %d source addresses", r.Sources)
	}
	if r.Verified {
		from += ", every reply checked byte for byte"
	}
	row("load", "%s, %s, %d loops%s", what, secondsText(r.Seconds), r.Loops, from)
	if r.TLS != "" {
		row("tls", "%s, a full handshake per connection", r.TLS)
	}
	cut := map[bool]string{true: "", false: " (run cut short)"}[r.Complete]
	if r.Scenario == Churn {
		row("connections", "%d cycles at once%s", r.Conns, cut)
	} else {
		row("connections", "%d of %d open in %s%s", r.Open, r.Conns, secondsText(r.ConnectSeconds), cut)
	}
	switch r.Scenario {
	case Echo, Pipeline:
		row("throughput", "%s msgs/s  %.2f MB/s  (%s echoes)", count(r.MsgsPerSec), r.MBPerSec, count(float64(r.Messages)))
	case Idle:
		row("wake-up", "%s echoes in %s", count(float64(r.Messages)), msText(r.WakeSeconds*1e6))
	case Broadcast:
		row("throughput", "%s deliveries/s  %.2f MB/s", count(r.MsgsPerSec), r.MBPerSec)
		row("deliveries", "%s of %s expected (%s published, %s missing)",
			count(float64(r.Messages)), count(float64(r.Expected)), count(float64(r.Published)), count(float64(r.Missing)))
	case Churn:
		row("throughput", "%s handshakes/s  (%s handshakes, %s echoes)", count(r.HandshakesPerSec), count(float64(r.Handshakes)), count(float64(r.Messages)))
	}
	l := r.Latency
	label := map[Scenario]string{Echo: "latency", Pipeline: "latency", Idle: "wake latency", Broadcast: "delivery latency", Churn: "handshake latency"}[r.Scenario]
	if l.Count == 0 {
		row(label, "none recorded")
	} else {
		row(label, "p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s, n %s)",
			msText(l.P50), msText(l.P90), msText(l.P99), msText(l.P999), msText(l.Max), msText(l.Mean), count(float64(l.Count)))
	}
	if len(r.Errors) == 0 {
		row("errors", "none")
	} else {
		kinds := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		for i, k := range kinds {
			name := ""
			if i == 0 {
				name = "errors"
			}
			e := r.Errors[k]
			row(name, "%s %d, first: %s", k, e.Count, e.First)
		}
	}
	if s := r.Server; s != nil {
		per := map[Scenario]string{Echo: "msg", Pipeline: "msg", Broadcast: "delivery", Churn: "handshake"}[r.Scenario]
		cpu := fmt.Sprintf("CPU %.1f%% (%.2f s)", s.CPUPercent, s.CPUSeconds)
		if per != "" && s.CPUMicros > 0 {
			cpu += fmt.Sprintf("  %.2f µs/%s", s.CPUMicros, per)
		}
		if r.Scenario == Idle {
			cpu += " while held"
		}
		row("server", "pid %d  %s", s.PID, cpu)
		mem := "RSS " + bytesText(s.RSS)
		if r.Scenario == Idle {
			mem += fmt.Sprintf(" (%s before)  %s per connection", bytesText(s.RSSBefore), bytesText(int64(s.RSSPerConn)))
		}
		row("", "%s", mem)
	}
	row("client", "CPU %.1f%%", r.ClientCPUPercent)
	return tw.Flush()
}

// count writes n with thousands separated by spaces, rounded.
func count(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// msText writes a duration given in microseconds.
func msText(us float64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%.0f µs", us)
	case us < 10_000:
		return fmt.Sprintf("%.2f ms", us/1000)
	case us < 1_000_000:
		return fmt.Sprintf("%.1f ms", us/1000)
	}
	return fmt.Sprintf("%.2f s", us/1e6)
}

func secondsText(s float64) string { return fmt.Sprintf("%.2f s", s) }

// bytesText writes n bytes with a binary unit.
func bytesText(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}
