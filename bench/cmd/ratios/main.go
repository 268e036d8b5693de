// Command ratios summarises benchmark output whose cases name an
// implementation (impl=X, as BenchmarkE2E, BenchmarkFanout and
// BenchmarkEcho do) as ratios taken within each run: every file given is
// one run (one go test invocation), and an implementation's value is
// divided by the base's value from the same file before the median over
// files is taken, so that drift between runs on a noisy machine cancels
// out. The range of the per-run ratios follows in brackets.
//
//	go run ./cmd/ratios -base gorilla e2e-1.txt e2e-2.txt e2e-3.txt
//	go run ./cmd/ratios -base tcp -metric server-µs/msg e2e-*.txt
//
// With -base "" it prints the medians themselves. Lines of a file with
// -count above 1 are taken as further samples of the same run. cmd/compare
// runs these benchmarks and writes the README's tables from the same
// arithmetic (internal/report).
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"text/tabwriter"

	"github.com/wskit/wskit/bench/internal/report"
)

func main() {
	base := flag.String("base", "gorilla", "implementation the others are divided by; empty prints the values")
	metric := flag.String("metric", "msgs/s", "metric to compare (a unit of the benchmark lines)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: ratios [-base IMPL] [-metric UNIT] RUN.txt...")
		os.Exit(2)
	}
	var (
		samples      []report.Sample
		cases, impls []string
	)
	for i, name := range flag.Args() {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ratios:", err)
			os.Exit(1)
		}
		run, err := report.ParseBench(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "ratios: %s: %v\n", name, err)
			os.Exit(1)
		}
		for _, c := range run.Cases {
			if !slices.Contains(cases, c) {
				cases = append(cases, c)
			}
		}
		for _, impl := range run.Impls {
			if !slices.Contains(impls, impl) {
				impls = append(impls, impl)
			}
		}
		samples = append(samples, run.Samples(i, *metric)...)
	}
	c := &report.Comparison{Impls: impls, Reference: *base}
	for _, name := range cases {
		c.Metrics = append(c.Metrics, report.Metric{Name: name, Unit: *metric})
	}
	c.Summarize(samples)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	if *base != "" {
		fmt.Fprintf(tw, "%s / %s (median of per-run ratios, range)\t", *metric, *base)
	} else {
		fmt.Fprintf(tw, "%s (median)\t", *metric)
	}
	for _, impl := range impls {
		fmt.Fprintf(tw, "%s\t", impl)
	}
	fmt.Fprintln(tw)
	for _, m := range c.Metrics {
		fmt.Fprintf(tw, "%s\t", m.Name)
		for _, impl := range impls {
			v, ok := c.Values[m.Name][impl]
			s, rok := c.Ratios[m.Name][impl]
			switch {
			case *base == "" && ok:
				fmt.Fprintf(tw, "%.3g\t", v)
			case *base != "" && rok && s.N > 1:
				fmt.Fprintf(tw, "%.2f (%.2f–%.2f)\t", s.Median, s.Min, s.Max)
			case *base != "" && rok:
				fmt.Fprintf(tw, "%.2f\t", s.Median)
			default:
				fmt.Fprint(tw, "-\t")
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}
