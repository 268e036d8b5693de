package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wskit/wskit/bench/internal/report"
	"github.com/wskit/wskit/internal/load"
)

// TestReportFromRawData writes raw data as the suites leave it, in two runs
// on a machine twice as fast in the second, and checks that -report makes
// every README section from it alone: ratios within each run, their range,
// the reference's own values, and the best of each run.
func TestReportFromRawData(t *testing.T) {
	dir := t.TempDir()
	results := filepath.Join(dir, "results")
	data := loadData{
		Machine: "2 × test CPU", Date: "2026-12-01", Runs: 2, Duration: "10s", Reference: "gorilla",
		Impls: []string{"gorilla", "nbio", "wskit-poll-events", "tcp"},
	}
	for run, speed := range []float64{1, 2} {
		for _, s := range scenarios {
			for impl, v := range map[string]float64{"gorilla": 100, "nbio": 150 + 10*float64(run), "wskit-poll-events": 160, "tcp": 200} {
				if impl == "tcp" && !s.raw {
					continue
				}
				k := speed
				if !s.metric.Higher {
					k = 1 // memory does not drift
				}
				data.Samples = append(data.Samples, sample{Run: run + 1, Impl: impl, Scenario: s.metric.Name, Value: v * k, Result: &load.Result{}})
			}
		}
	}
	// A measurement with errors does not count.
	data.Samples = append(data.Samples, sample{Run: 2, Impl: "nbio", Scenario: scenarios[0].metric.Name, Value: 1e9, Errors: 3})
	js, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(results, "fanout"), 0o755)
	if err := os.WriteFile(filepath.Join(results, "comparison.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	for run, speed := range []float64{1, 0.5} {
		var b strings.Builder
		fmt.Fprintf(&b, "machine: 2 × test CPU\ndate: 2026-12-02\nrun: %d\norder: wskit-poll,gorilla-hub\ncommand: BENCH_FANOUT_IMPLS=wskit-poll,gorilla-hub go test -run ^$ -bench Fanout\n", run+1)
		for _, size := range []int{64, 1024} {
			fmt.Fprintf(&b, "BenchmarkFanout/subs=10000/size=%d/impl=wskit-poll-2  100  1 ns/op  %f deliveries/s  0.1 server-writes/delivery\n", size, 800000*speed)
			fmt.Fprintf(&b, "BenchmarkFanout/subs=10000/size=%d/impl=gorilla-hub-2  100  1 ns/op  %f deliveries/s  1 server-writes/delivery\n", size, 100000*speed)
		}
		if err := os.WriteFile(filepath.Join(results, "fanout", fmt.Sprintf("run-%d.txt", run+1)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The fan-out tables sit on another page of the same directory.
	readme := filepath.Join(dir, "performance.md")
	other := filepath.Join(dir, "broadcast.md")
	for page, name := range map[string]string{readme: "comparison", other: "fanout"} {
		begin, end := report.SectionMarkers(name)
		if err := os.WriteFile(page, []byte(fmt.Sprintf("## %s\n%s\nold\n%s\n", name, begin, end)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := &comparer{readme: readme, results: results}
	if err := c.main([]string{"load", "fanout"}, true); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for _, page := range []string{readme, other} {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b...)
	}
	if b, _ := os.ReadFile(other); !strings.Contains(string(b), "| gorilla-hub (reference) |") {
		t.Errorf("the fan-out tables did not go to the page with their markers:\n%s", b)
	}
	for _, want := range []string{
		"Measured 2026-12-01 on 2 × test CPU.",
		"| gorilla (reference) | 150 | 150 | **100** | 150 |",
		"| nbio | 1.55× (1.50–1.60) |",
		"| wskit-poll-events | **1.60× (1.60–1.60)** | **1.60× (1.60–1.60)** | 1.60× (1.60–1.60) | **1.60× (1.60–1.60)** |",
		"| tcp (ceiling) | 2.00× (2.00–2.00) | 2.00× (2.00–2.00) | 2.00× (2.00–2.00) | — |",
		"- echo, 1000 conns × 64 B: wskit-poll-events 2, nbio 1 (of 2 runs)", // a tie in run 2
		"- idle, 19 000 conns: gorilla 2 (of 2 runs)",
		"1 measurements had errors and are left out",
		"Measured 2026-12-02 on 2 × test CPU.",
		"| subs=10000/size=64 | subs=10000/size=1024 |",
		"| gorilla-hub (reference) | 75.0 k | 75.0 k |",
		"| wskit-poll | **8.00× (8.00–8.00)** | **8.00× (8.00–8.00)** |",
		"2 runs of `go test -run ^$ -bench Fanout`",
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("README lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(string(got), "Server CPU per delivery") {
		t.Errorf("a table of a metric the data lacks:\n%s", got)
	}
	if strings.Contains(string(got), "\nold\n") {
		t.Errorf("a section kept its old text:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(results, "comparison.svg")); err != nil {
		t.Errorf("no chart: %v", err)
	}
}
