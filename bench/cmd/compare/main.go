// Command compare runs the full comparison of wskit with the Go WebSocket
// servers of the zoo, and writes the results table into the README and a
// bar chart beside it:
//
//	cd bench && go run ./cmd/compare            # 3 runs of 10 s per case: about 40 minutes
//	cd bench && go run ./cmd/compare -runs 1 -d 3s -dry   # a quick look, nothing written
//
// Each server of the zoo (internal/servers) is started as a process of its
// own (cmd/benchserver), fresh for every case, and measured by `wskit
// bench`, one client for all: echo with 1000 connections and 64 B messages,
// echo with 100 connections and 16 KiB messages, idle with 19 000
// connections (server RSS per connection) and churn (handshakes per
// second). The plain TCP echo runs the cases it can, as the ceiling. Runs
// go one after another, every server once per run, so that the machine's
// drift falls between runs; the table shows medians over runs. The table
// and chart say the machine and the date.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/wskit/wskit/bench/internal/report"
	"github.com/wskit/wskit/bench/internal/servers"
	"github.com/wskit/wskit/internal/load"
)

// scenario is one column of the comparison.
type scenario struct {
	metric report.Metric
	args   []string // for wskit bench, besides -url, -pid, -d and -json
	raw    bool     // the plain TCP echo can run it
	value  func(r *load.Result) float64
}

var scenarios = []scenario{
	{
		metric: report.Metric{Name: "echo, 1000 conns × 64 B", Unit: "msgs/s", Higher: true},
		args:   []string{"-scenario", "echo", "-c", "1000", "-size", "64"},
		raw:    true,
		value:  func(r *load.Result) float64 { return r.MsgsPerSec },
	},
	{
		metric: report.Metric{Name: "echo, 100 conns × 16 KiB", Unit: "MB/s", Higher: true},
		args:   []string{"-scenario", "echo", "-c", "100", "-size", "16384"},
		raw:    true,
		value:  func(r *load.Result) float64 { return r.MBPerSec },
	},
	{
		metric: report.Metric{Name: "idle, 19 000 conns", Unit: "KB RSS per conn", Higher: false},
		args:   []string{"-scenario", "idle", "-c", "19000", "-size", "64"},
		raw:    true,
		value: func(r *load.Result) float64 {
			if r.Server == nil {
				return math.NaN()
			}
			return r.Server.RSSPerConn / 1000
		},
	},
	{
		metric: report.Metric{Name: "churn, 100 at once", Unit: "handshakes/s", Higher: true},
		args:   []string{"-scenario", "churn", "-c", "100", "-size", "64"},
		value:  func(r *load.Result) float64 { return r.HandshakesPerSec },
	},
}

func main() {
	impls := flag.String("impls", strings.Join(servers.Names, ","), "servers to compare, separated by commas")
	runs := flag.Int("runs", 3, "runs of every case")
	dur := flag.Duration("d", 10*time.Second, "measured time of each case")
	readme := flag.String("readme", "../README.md", "README whose generated section gets the table")
	chart := flag.String("chart", "results/comparison.svg", "where the bar chart goes")
	data := flag.String("json", "results/comparison.json", "where every measurement goes")
	dry := flag.Bool("dry", false, "print the table; write nothing")
	flag.Parse()
	if err := compare(strings.Split(*impls, ","), *runs, *dur, *readme, *chart, *data, *dry); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

// sample is one measurement, as results/comparison.json keeps it.
type sample struct {
	Run      int          `json:"run"`
	Impl     string       `json:"impl"`
	Scenario string       `json:"scenario"`
	Value    float64      `json:"value"`
	Result   *load.Result `json:"result"`
}

func compare(impls []string, runs int, dur time.Duration, readme, chart, data string, dry bool) error {
	for _, impl := range impls {
		if !servers.Known(impl) {
			return fmt.Errorf("unknown server %q", impl)
		}
	}
	bin, err := os.MkdirTemp("", "compare")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	for _, pkg := range []string{"./cmd/benchserver", "github.com/wskit/wskit/cmd/wskit"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	c := &report.Comparison{
		Machine: machine(),
		Date:    time.Now().UTC().Format("2006-01-02"),
		Impls:   impls,
		Values:  map[string]map[string]float64{},
	}
	for _, impl := range impls {
		if servers.IsRaw(impl) {
			c.Ceilings = append(c.Ceilings, impl)
		}
	}
	for _, s := range scenarios {
		c.Metrics = append(c.Metrics, s.metric)
	}
	var samples []sample
	values := map[string]map[string][]float64{}
	for run := 1; run <= runs; run++ {
		for _, impl := range impls {
			for _, s := range scenarios {
				if servers.IsRaw(impl) && !s.raw {
					continue
				}
				res, err := measure(bin, impl, s, dur)
				if err != nil {
					return fmt.Errorf("run %d, %s, %s: %w", run, impl, s.metric.Name, err)
				}
				v := s.value(res)
				fmt.Fprintf(os.Stderr, "run %d  %-20s %-28s %s %s (errors %d)\n", run, impl, s.metric.Name, report.Format(v), s.metric.Unit, res.ErrorTotal())
				samples = append(samples, sample{run, impl, s.metric.Name, v, res})
				if res.ErrorTotal() > 0 || math.IsNaN(v) {
					continue // a run with errors does not count
				}
				if values[s.metric.Name] == nil {
					values[s.metric.Name] = map[string][]float64{}
				}
				values[s.metric.Name][impl] = append(values[s.metric.Name][impl], v)
			}
		}
	}
	for name, byImpl := range values {
		c.Values[name] = map[string]float64{}
		for impl, vs := range byImpl {
			c.Values[name][impl] = report.Median(vs)
		}
	}
	c.Notes = []string{fmt.Sprintf("Medians of %d runs of %v per case, each server a fresh process, all measured by `wskit bench` "+
		"(`cd bench && go run ./cmd/compare` regenerates this table and the chart). "+
		"`tcp` is a plain TCP echo without framing, the ceiling; it has no handshake to churn. "+
		"Client and server share the machine's CPUs.", runs, dur)}
	table := c.Table()
	if dry {
		fmt.Print(table)
		return nil
	}
	doc, err := os.ReadFile(readme)
	if err != nil {
		return err
	}
	updated, err := report.Replace(string(doc), table)
	if err != nil {
		return fmt.Errorf("%s: %w", readme, err)
	}
	for _, p := range []string{chart, data} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
	}
	js, err := json.MarshalIndent(samples, "", "\t")
	if err != nil {
		return err
	}
	if err := os.WriteFile(data, append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(chart, c.Chart(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(readme, []byte(updated), 0o644)
}

// measure starts impl as its own process and runs one case against it.
func measure(bin, impl string, s scenario, dur time.Duration) (*load.Result, error) {
	srv := exec.Command(filepath.Join(bin, "benchserver"), "-impl", impl, "-addr", "127.0.0.1:0")
	stdin, err := srv.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := srv.StdoutPipe()
	if err != nil {
		return nil, err
	}
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return nil, err
	}
	defer func() {
		stdin.Close() // benchserver stops at the end of its input
		done := make(chan error, 1)
		go func() { done <- srv.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			srv.Process.Kill()
			<-done
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("benchserver did not start: %w", err)
	}
	addr, _, _ := strings.Cut(strings.TrimSpace(line), " ")
	url := "ws://" + addr + servers.URI
	if servers.IsRaw(impl) {
		url = "tcp://" + addr
	}
	args := append([]string{"bench", "-json", "-url", url, "-pid", fmt.Sprint(srv.Process.Pid), "-d", dur.String()}, s.args...)
	ctx, cancel := context.WithTimeout(context.Background(), dur+2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "wskit"), args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		return nil, fmt.Errorf("wskit %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	var res load.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("wskit bench's JSON: %v\n%s%s", err, out.String(), errOut.String())
	}
	return &res, nil
}

// machine describes this computer: CPUs, their model, the kernel and Go.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	kernel := runtime.GOOS
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d × %s, %s, %s", runtime.NumCPU(), model, kernel, runtime.Version())
}
