// Command compare runs the comparisons docs/performance.md shows, keeps their raw
// data under results/ and writes that page's tables and chart from it:
//
//	cd bench && go run ./cmd/compare                 # every suite, 3 runs: about an hour
//	cd bench && go run ./cmd/compare -report         # only rewrite the tables from results/
//	cd bench && go run ./cmd/compare -runs 1 -d 2s -dry -suites load   # a quick look, nothing written
//
// The suites:
//
//	load    every server of the zoo as a process of its own (cmd/benchserver), fresh
//	        for every case, measured by `wskit bench -verify`, one client for all: echo
//	        with 1000 connections × 64 B, echo with 100 × 16 KiB, idle with 19 000
//	        connections (server RSS per connection), churn (handshakes/s); tcp, the
//	        ceiling, runs all but churn. Raw data: results/comparison.json (every
//	        wskit bench result); docs/performance.md section "comparison" and results/comparison.svg.
//	e2e     BenchmarkE2E (server in a child process, 1 and 1000 connections, 64 B and
//	        16 KiB, closed loop and 32 in flight): results/e2e/run-N.txt; section "e2e".
//	fanout  BenchmarkFanout (10 000 subscribers in a child process):
//	        results/fanout/run-N.txt; section "fanout".
//	echo    BenchmarkEcho and BenchmarkEchoParallel (in process, beside gorilla):
//	        results/echo/run-N.txt; section "echo".
//
// Within a run every server is measured once per case, in an order drawn at
// random for that run (-seed makes it repeatable; the orders are kept with
// the data), so that neither a fixed position nor the machine's drift
// favours one server. Every cell of a table is a ratio to a reference
// server taken within each run, the median over the runs with the range
// in brackets; the reference's row shows its own median values. Under each
// table a line says which server was best in how many runs. The tables say
// the machine and the date.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/wskit/wskit/bench/internal/fanout"
	"github.com/wskit/wskit/bench/internal/harness"
	"github.com/wskit/wskit/bench/internal/report"
	"github.com/wskit/wskit/bench/internal/servers"
	"github.com/wskit/wskit/internal/load"
)

// scenario is one column of the load suite.
type scenario struct {
	metric report.Metric
	args   []string // for wskit bench, besides -url, -pid, -d, -verify and -json
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

// goSuite is a suite of go test benchmarks whose cases name a server
// (impl=X), run once per run with the servers in that run's order.
type goSuite struct {
	name    string   // results/NAME/, the section NAME of docs/performance.md
	bench   string   // -bench
	args    []string // further go test flags
	implEnv string   // the variable that orders the servers
	impls   []string
	tables  []goTable
	what    string // how it is measured, for the note under the tables
}

// goTable is one table of a goSuite: every case as a column.
type goTable struct {
	title     string
	unit      string // the benchmark metric
	higher    bool
	reference string // "" shows medians
	ceilings  []string
	unranked  bool // see report.Comparison.Unranked
}

var goSuites = []goSuite{
	{
		name: "e2e", bench: "E2E", args: []string{"-timeout", "60m"}, implEnv: "BENCH_IMPLS", impls: servers.Names,
		tables: []goTable{
			{title: "Messages per second, × gorilla within each run:", unit: "msgs/s", higher: true, reference: "gorilla", ceilings: []string{"tcp"}},
			{title: "Server CPU per message, × the plain TCP echo within each run:", unit: "server-µs/msg", reference: "tcp", ceilings: []string{"tcp"}},
			{title: "Server allocations per message (medians):", unit: "server-allocs/msg", ceilings: []string{"tcp"}, unranked: true},
		},
		what: "Each server in a child process, the client in the benchmark's process over loopback; conns=1 and 1000, 64 B and 16 KiB, one message in flight per connection (closed) or 32 (pipe32).",
	},
	{
		name: "fanout", bench: "Fanout", args: []string{"-benchtime", "3s", "-timeout", "60m"}, implEnv: "BENCH_FANOUT_IMPLS", impls: fanout.Names,
		tables: []goTable{
			{title: "Deliveries per second, × gorilla-hub within each run:", unit: "deliveries/s", higher: true, reference: "gorilla-hub"},
			{title: "Server CPU per delivery, × gorilla-hub within each run:", unit: "server-µs/delivery", reference: "gorilla-hub"},
			{title: "Write system calls per delivery (medians; 1 is one per message and connection):", unit: "server-writes/delivery", unranked: true},
		},
		what: "One publisher in the benchmark's process, the subscribers (subs=) in a child process that checks every message at every connection; rounds of 32 messages.",
	},
	{
		name: "echo", bench: "^BenchmarkEcho", args: []string{"-benchmem"}, implEnv: "BENCH_ECHO_IMPLS",
		impls: []string{"gorilla", "gorillareadmessage", "gorillacopy", "wskit", "wskitraw"},
		tables: []goTable{
			{title: "Messages per second, × gorilla within each run:", unit: "msgs/s", higher: true, reference: "gorilla"},
			{title: "Allocations per echo, server and client together (the client allocates none; medians):", unit: "allocs/op", unranked: true},
		},
		what: "Client and server in one process over loopback, the closed loop on one connection (Echo) and on 16 (EchoParallel).",
	},
}

func main() {
	suites := flag.String("suites", "load,e2e,fanout,echo", "suites to run, separated by commas")
	impls := flag.String("impls", strings.Join(servers.Names, ","), "servers of the load suite, separated by commas")
	ref := flag.String("ref", "gorilla", "the load suite's reference server")
	runs := flag.Int("runs", 3, "runs of every case")
	dur := flag.Duration("d", 10*time.Second, "measured time of each case of the load suite")
	benchtime := flag.String("benchtime", "", "go test -benchtime for the other suites (default: each suite's own)")
	seed := flag.Uint64("seed", 0, "seed of the servers' order in each run; 0 draws one")
	readme := flag.String("readme", "../docs/performance.md", "the page whose generated sections get the tables; a section whose markers are on another page of its directory goes there")
	results := flag.String("results", "results", "directory of the raw data and the chart")
	dry := flag.Bool("dry", false, "print the tables; write nothing")
	onlyReport := flag.Bool("report", false, "measure nothing: rewrite the tables of docs/performance.md and the chart from the raw data in -results")
	flag.Parse()
	if *seed == 0 {
		*seed = rand.Uint64()
	}
	c := &comparer{
		impls: strings.Split(*impls, ","), ref: *ref, runs: *runs, dur: *dur, benchtime: *benchtime,
		seed: *seed, readme: *readme, results: *results, dry: *dry,
	}
	if err := c.main(strings.Split(*suites, ","), *onlyReport); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

type comparer struct {
	impls     []string
	ref       string
	runs      int
	dur       time.Duration
	benchtime string
	seed      uint64
	readme    string
	results   string
	dry       bool
	rng       *rand.Rand
	bin       string // built benchserver and wskit
}

func (c *comparer) main(suites []string, onlyReport bool) error {
	for _, s := range suites {
		if s != "load" && !slices.ContainsFunc(goSuites, func(g goSuite) bool { return g.name == s }) {
			return fmt.Errorf("unknown suite %q (want load, e2e, fanout or echo)", s)
		}
	}
	c.rng = rand.New(rand.NewPCG(c.seed, 0))
	defer func() {
		if c.bin != "" {
			os.RemoveAll(c.bin)
		}
	}()
	if c.dry && !onlyReport {
		dir, err := os.MkdirTemp("", "compare-results")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		c.results = dir
	}
	if !onlyReport {
		fmt.Fprintf(os.Stderr, "compare: seed %d\n", c.seed)
	}
	sections := map[string]string{}
	for _, s := range suites {
		var (
			text string
			err  error
		)
		switch {
		case s == "load" && !onlyReport:
			err = c.measureLoad()
		case !onlyReport:
			err = c.measureGo(suite(s))
		}
		if err != nil {
			return err
		}
		if s == "load" {
			text, err = c.reportLoad()
		} else {
			text, err = c.reportGo(suite(s))
		}
		if err != nil {
			return err
		}
		sections[s] = text
	}
	if c.dry {
		for _, s := range suites {
			fmt.Printf("== %s\n\n%s\n", s, sections[s])
		}
		return nil
	}
	return c.writeSections(suites, sections)
}

// writeSections puts each suite's tables in the page that holds its
// markers: -readme, or another page of its directory (the fan-out tables
// sit with the broadcast docs).
func (c *comparer) writeSections(suites []string, sections map[string]string) error {
	pages, err := filepath.Glob(filepath.Join(filepath.Dir(c.readme), "*.md"))
	if err != nil {
		return err
	}
	pages = append([]string{c.readme}, slices.DeleteFunc(pages, func(p string) bool { return p == c.readme })...)
	docs := map[string]string{}
	var changed []string
	for _, s := range suites {
		name := s
		if s == "load" {
			name = "comparison"
		}
		begin, _ := report.SectionMarkers(name)
		page := ""
		for _, p := range pages {
			doc, ok := docs[p]
			if !ok {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				doc = string(b)
				docs[p] = doc
			}
			if strings.Contains(doc, begin) {
				page = p
				break
			}
		}
		if page == "" {
			return fmt.Errorf("section %s: no page in %s holds its markers", name, filepath.Dir(c.readme))
		}
		updated, err := report.ReplaceSection(docs[page], name, sections[s])
		if err != nil {
			return fmt.Errorf("%s: %w", page, err)
		}
		docs[page] = updated
		if !slices.Contains(changed, page) {
			changed = append(changed, page)
		}
	}
	for _, p := range changed {
		if err := os.WriteFile(p, []byte(docs[p]), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func suite(name string) goSuite {
	i := slices.IndexFunc(goSuites, func(g goSuite) bool { return g.name == name })
	return goSuites[i]
}

// order returns impls in a random order of this run's.
func (c *comparer) order(impls []string) []string {
	o := slices.Clone(impls)
	c.rng.Shuffle(len(o), func(i, j int) { o[i], o[j] = o[j], o[i] })
	return o
}

// loadData is results/comparison.json: everything the load suite's table
// is made from.
type loadData struct {
	Machine   string   `json:"machine"`
	Date      string   `json:"date"`
	Runs      int      `json:"runs"`
	Duration  string   `json:"duration"`
	Reference string   `json:"reference"`
	Impls     []string `json:"impls"`
	Seed      uint64   `json:"seed"`
	// Orders[run-1][scenario] is the order in which the servers ran.
	Orders  [][][]string `json:"orders"`
	Samples []sample     `json:"samples"`
}

// sample is one measurement of the load suite.
type sample struct {
	Run      int          `json:"run"`
	Impl     string       `json:"impl"`
	Scenario string       `json:"scenario"`
	Value    float64      `json:"value"`
	Errors   int64        `json:"errors"`
	Result   *load.Result `json:"result"`
}

func (c *comparer) loadPath() string { return filepath.Join(c.results, "comparison.json") }

func (c *comparer) measureLoad() error {
	for _, impl := range c.impls {
		if !servers.Known(impl) {
			return fmt.Errorf("unknown server %q", impl)
		}
	}
	if !slices.Contains(c.impls, c.ref) {
		return fmt.Errorf("the reference %q is not among the servers", c.ref)
	}
	if err := c.build(); err != nil {
		return err
	}
	data := loadData{
		Machine: machine(), Date: today(), Runs: c.runs, Duration: c.dur.String(), Reference: c.ref,
		Impls: c.impls, Seed: c.seed,
	}
	for run := 1; run <= c.runs; run++ {
		var orders [][]string
		for _, s := range scenarios {
			order := c.order(c.impls)
			orders = append(orders, order)
			for _, impl := range order {
				if servers.IsRaw(impl) && !s.raw {
					continue
				}
				res, err := c.measure(impl, s)
				if err != nil {
					return fmt.Errorf("run %d, %s, %s: %w", run, impl, s.metric.Name, err)
				}
				v := s.value(res)
				fmt.Fprintf(os.Stderr, "run %d  %-20s %-28s %s %s (errors %d)\n", run, impl, s.metric.Name, report.Format(v), s.metric.Unit, res.ErrorTotal())
				data.Samples = append(data.Samples, sample{run, impl, s.metric.Name, v, res.ErrorTotal(), res})
			}
		}
		data.Orders = append(data.Orders, orders)
	}
	js, err := json.MarshalIndent(data, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.results, 0o755); err != nil {
		return err
	}
	return os.WriteFile(c.loadPath(), append(js, '\n'), 0o644)
}

// reportLoad makes the load suite's table from results/comparison.json and
// writes the chart beside it.
func (c *comparer) reportLoad() (string, error) {
	js, err := os.ReadFile(c.loadPath())
	if err != nil {
		return "", err
	}
	var data loadData
	if err := json.Unmarshal(js, &data); err != nil {
		return "", fmt.Errorf("%s: %w", c.loadPath(), err)
	}
	cmp := &report.Comparison{Machine: data.Machine, Date: data.Date, Impls: data.Impls, Reference: data.Reference}
	for _, impl := range data.Impls {
		if servers.IsRaw(impl) {
			cmp.Ceilings = append(cmp.Ceilings, impl)
		}
	}
	for _, s := range scenarios {
		cmp.Metrics = append(cmp.Metrics, s.metric)
	}
	var samples []report.Sample
	failed := 0
	for _, s := range data.Samples {
		if s.Errors > 0 {
			failed++ // a measurement with errors does not count
			continue
		}
		samples = append(samples, report.Sample{Run: s.Run, Impl: s.Impl, Metric: s.Scenario, Value: s.Value})
	}
	cmp.Summarize(samples)
	note := fmt.Sprintf("%d runs of %s per case, every server a fresh process measured by `wskit bench -verify` "+
		"(every reply checked byte for byte), the servers in a random order in each run for each case. "+
		"A cell is the median over the runs of the server's value divided by %s's in the same run, "+
		"the range of those ratios in brackets; %s's row shows its own medians. "+
		"`tcp` is a plain TCP echo without framing, the ceiling; it has no handshake to churn. "+
		"Client and server share the machine's CPUs. Raw data: `bench/results/comparison.json`; "+
		"`cd bench && go run ./cmd/compare -suites load` measures again, `-report` rewrites this table from the data.",
		data.Runs, data.Duration, data.Reference, data.Reference)
	if failed > 0 {
		note += fmt.Sprintf(" %d measurements had errors and are left out.", failed)
	}
	cmp.Notes = []string{note}
	if !c.dry {
		if err := os.WriteFile(filepath.Join(c.results, "comparison.svg"), cmp.Chart(), 0o644); err != nil {
			return "", err
		}
	}
	return "![Bar chart of the comparison](../bench/results/comparison.svg)\n\n" + cmp.Table(), nil
}

func (c *comparer) suiteDir(s goSuite) string { return filepath.Join(c.results, s.name) }

// measureGo runs s -runs times, each run one go test invocation written to
// results/NAME/run-N.txt after lines that say the machine, the date and
// the order of the servers.
func (c *comparer) measureGo(s goSuite) error {
	dir := c.suiteDir(s)
	old, _ := filepath.Glob(filepath.Join(dir, "run-*.txt"))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for run := 1; run <= c.runs; run++ {
		order := c.order(s.impls)
		args := append([]string{"test", "-run", "^$", "-bench", s.bench}, s.args...)
		if c.benchtime != "" {
			args = append(args, "-benchtime", c.benchtime)
		}
		var out bytes.Buffer
		fmt.Fprintf(&out, "machine: %s\ndate: %s\nrun: %d\norder: %s\nseed: %d\ncommand: %s=%s go %s\n",
			machine(), today(), run, strings.Join(order, ","), c.seed, s.implEnv, strings.Join(order, ","), strings.Join(args, " "))
		fmt.Fprintf(os.Stderr, "== %s, run %d of %d: go %s (%s=%s)\n", s.name, run, c.runs, strings.Join(args, " "), s.implEnv, strings.Join(order, ","))
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), s.implEnv+"="+strings.Join(order, ","))
		progress := benchLines(os.Stderr)
		cmd.Stdout = io.MultiWriter(&out, progress)
		cmd.Stderr = os.Stderr
		err := cmd.Run()
		progress.Close()
		if err != nil {
			return fmt.Errorf("%s, run %d: %v", s.name, run, err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("run-%d.txt", run)), out.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// reportGo makes s's tables from results/NAME/run-*.txt.
func (c *comparer) reportGo(s goSuite) (string, error) {
	files, err := filepath.Glob(filepath.Join(c.suiteDir(s), "run-*.txt"))
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return "", fmt.Errorf("no raw data for %s in %s: measure it with -suites %s", s.name, c.suiteDir(s), s.name)
	}
	var (
		runs                       []*report.BenchRun
		cases, impls               []string
		machineName, date, command string
	)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		r, err := report.ParseBench(bytes.NewReader(b))
		if err != nil {
			return "", fmt.Errorf("%s: %w", f, err)
		}
		runs = append(runs, r)
		for _, cs := range r.Cases {
			if !slices.Contains(cases, cs) {
				cases = append(cases, cs)
			}
		}
		for _, impl := range r.Impls {
			if !slices.Contains(impls, impl) {
				impls = append(impls, impl)
			}
		}
		machineName, date = r.Meta["machine"], r.Meta["date"]
		if cmd := r.Meta["command"]; cmd != "" {
			command = cmd
		}
	}
	// Rows in the suite's order, then any others the data has.
	rows := slices.DeleteFunc(slices.Clone(s.impls), func(impl string) bool { return !slices.Contains(impls, impl) })
	for _, impl := range impls {
		if !slices.Contains(rows, impl) {
			rows = append(rows, impl)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on %s.\n\n", date, machineName)
	for _, t := range s.tables {
		cmp := &report.Comparison{Impls: rows, Reference: t.reference, Ceilings: t.ceilings, Title: t.title, Unranked: t.unranked}
		if t.reference != "" && !slices.Contains(rows, t.reference) {
			continue
		}
		for _, cs := range cases {
			cmp.Metrics = append(cmp.Metrics, report.Metric{Name: cs, Unit: t.unit, Higher: t.higher})
		}
		var samples []report.Sample
		for i, r := range runs {
			samples = append(samples, r.Samples(i+1, t.unit)...)
		}
		if len(samples) == 0 {
			continue // the benchmark did not report this metric
		}
		cmp.Summarize(samples)
		// Columns are named without the benchmark's name when all share it.
		if prefix, _, ok := strings.Cut(cases[0], "/"); ok && !slices.ContainsFunc(cases, func(cs string) bool {
			return !strings.HasPrefix(cs, prefix+"/")
		}) {
			renamed := map[string]string{}
			for i, m := range cmp.Metrics {
				short := strings.TrimPrefix(m.Name, prefix+"/")
				renamed[m.Name] = short
				cmp.Metrics[i].Name = short
			}
			cmp.Rename(renamed)
		}
		b.WriteString(cmp.Table())
		b.WriteString("\n")
	}
	if _, cmd, ok := strings.Cut(command, " go "); ok {
		command = "go " + cmd // the order differs from run to run
	}
	how := fmt.Sprintf("%s %d runs of `%s`, the servers in a random order in each run "+
		"(innermost in each case, so that they run one right after the other). Ratios are taken within each run; "+
		"a cell is their median over the runs with their range in brackets. Raw data: `bench/results/%s/`; "+
		"`cd bench && go run ./cmd/compare -suites %s` measures again, `-report` rewrites these tables from the data.",
		s.what, len(runs), command, s.name, s.name)
	b.WriteString(how + "\n")
	return b.String(), nil
}

// benchLines copies the benchmark lines written to it to w as they come,
// so that a long run shows progress; Close waits until all are copied.
func benchLines(w io.Writer) io.WriteCloser {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Benchmark") {
				fmt.Fprintln(w, "  "+sc.Text())
			}
		}
		io.Copy(io.Discard, pr)
	}()
	return &waitCloser{pw, done}
}

type waitCloser struct {
	*io.PipeWriter
	done chan struct{}
}

func (w *waitCloser) Close() error {
	err := w.PipeWriter.Close()
	<-w.done
	return err
}

// build compiles cmd/benchserver and wskit into a temporary directory,
// once.
func (c *comparer) build() error {
	if c.bin != "" {
		return nil
	}
	bin, err := os.MkdirTemp("", "compare")
	if err != nil {
		return err
	}
	for _, pkg := range []string{"./cmd/benchserver", "github.com/wskit/wskit/cmd/wskit"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	c.bin = bin
	return nil
}

// measure starts impl as its own process and runs one case against it.
func (c *comparer) measure(impl string, s scenario) (*load.Result, error) {
	addr, pid, stop, err := harness.StartBenchserver(c.bin, impl)
	if err != nil {
		return nil, err
	}
	defer stop()
	url := "ws://" + addr + servers.URI
	if servers.IsRaw(impl) {
		url = "tcp://" + addr
	}
	args := append([]string{"bench", "-json", "-verify", "-url", url, "-pid", fmt.Sprint(pid), "-d", c.dur.String()}, s.args...)
	ctx, cancel := context.WithTimeout(context.Background(), c.dur+2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "wskit"), args...)
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

func today() string { return time.Now().UTC().Format("2006-01-02") }

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
