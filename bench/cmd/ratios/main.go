// Command ratios summarises benchmark output whose cases name an
// implementation (impl=X, as BenchmarkE2E and BenchmarkFanout do) as ratios
// taken within each run: every file given is one run (one go test invocation), and an
// implementation's value is divided by the base's value from the same file
// before the median over files is taken, so that drift between runs on a
// noisy machine cancels out.
//
//	go run ./cmd/ratios -base gorilla e2e-1.txt e2e-2.txt e2e-3.txt
//	go run ./cmd/ratios -base tcp -metric server-µs/msg e2e-*.txt
//
// With -base "" it prints the medians themselves. Lines of a file with
// -count above 1 are taken as further samples of the same run.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

func main() {
	base := flag.String("base", "gorilla", "implementation the others are divided by; empty prints the values")
	metric := flag.String("metric", "msgs/s", "metric to compare (a unit of the benchmark lines)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: ratios [-base IMPL] [-metric UNIT] RUN.txt...")
		os.Exit(2)
	}
	// values[case][impl] holds one value per sample, over all files.
	values := map[string]map[string][]float64{}
	var cases, impls []string
	for _, name := range flag.Args() {
		runs, order, err := parse(name, *metric)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ratios:", err)
			os.Exit(1)
		}
		for _, impl := range order {
			if !slices.Contains(impls, impl) {
				impls = append(impls, impl)
			}
		}
		for c, byImpl := range runs {
			if values[c] == nil {
				values[c] = map[string][]float64{}
				cases = append(cases, c)
			}
			for impl, vs := range byImpl {
				b := 1.0
				if *base != "" {
					bs := byImpl[*base]
					if len(bs) == 0 {
						continue
					}
					b = median(bs)
				}
				for _, v := range vs {
					values[c][impl] = append(values[c][impl], v/b)
				}
			}
		}
	}
	slices.Sort(cases)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	if *base != "" {
		fmt.Fprintf(tw, "%s / %s (median of per-run ratios)\t", *metric, *base)
	} else {
		fmt.Fprintf(tw, "%s (median)\t", *metric)
	}
	for _, impl := range impls {
		fmt.Fprintf(tw, "%s\t", impl)
	}
	fmt.Fprintln(tw)
	for _, c := range cases {
		fmt.Fprintf(tw, "%s\t", c)
		for _, impl := range impls {
			vs := values[c][impl]
			switch {
			case len(vs) == 0:
				fmt.Fprint(tw, "-\t")
			case *base != "":
				fmt.Fprintf(tw, "%.2f\t", median(vs))
			case median(vs) >= 100:
				fmt.Fprintf(tw, "%.0f\t", median(vs))
			default:
				fmt.Fprintf(tw, "%.3g\t", median(vs))
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// parse reads one run: for each case (the name without impl=, such as
// conns=1/size=64B/mode=closed) and implementation, the metric's values;
// and the implementations in the order they appear.
func parse(name, metric string) (out map[string]map[string][]float64, order []string, err error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	out = map[string]map[string][]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") || !strings.Contains(fields[0], "/impl=") {
			continue
		}
		name := fields[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i] // the -GOMAXPROCS suffix
			}
		}
		var impl string
		var rest []string
		parts := strings.Split(name, "/")
		if parts[0] == "BenchmarkE2E" {
			parts = parts[1:] // the benchmark the tool was first written for
		}
		for _, part := range parts {
			if v, ok := strings.CutPrefix(part, "impl="); ok {
				impl = v
				continue
			}
			rest = append(rest, part)
		}
		if !slices.Contains(order, impl) {
			order = append(order, impl)
		}
		c := strings.Join(rest, "/")
		for i := 3; i < len(fields); i++ {
			if fields[i] != metric {
				continue
			}
			v, err := strconv.ParseFloat(fields[i-1], 64)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %v", name, err)
			}
			if out[c] == nil {
				out[c] = map[string][]float64{}
			}
			out[c][impl] = append(out[c][impl], v)
		}
	}
	return out, order, sc.Err()
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
