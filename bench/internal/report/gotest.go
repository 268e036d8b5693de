package report

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// BenchRun is one go test -bench invocation's output: for each case (the
// benchmark's name without its impl= element, such as
// E2E/conns=1/size=64B/mode=closed), implementation and unit, the values
// reported, and the lines of the form "key: value" before the first
// benchmark (cmd/compare writes machine, date and order there).
type BenchRun struct {
	Values map[string]map[string]map[string][]float64 // [case][impl][unit]
	Cases  []string                                   // in the order they first appear
	Impls  []string                                   // likewise
	Meta   map[string]string
}

// ParseBench reads the output of go test -bench whose benchmarks name an
// implementation with an impl= element (BenchmarkE2E, BenchmarkFanout,
// BenchmarkEcho, ...). Lines of a run with -count above 1 are further
// samples of the same run.
func ParseBench(r io.Reader) (*BenchRun, error) {
	run := &BenchRun{Values: map[string]map[string]map[string][]float64{}, Meta: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") || !strings.Contains(fields[0], "/impl=") {
			if k, v, ok := strings.Cut(line, ": "); ok && len(run.Cases) == 0 && !strings.ContainsAny(k, " \t") {
				run.Meta[k] = strings.TrimSpace(v)
			}
			continue
		}
		name := strings.TrimPrefix(fields[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i] // the -GOMAXPROCS suffix
			}
		}
		var impl string
		var rest []string
		for _, part := range strings.Split(name, "/") {
			if v, ok := strings.CutPrefix(part, "impl="); ok {
				impl = v
				continue
			}
			rest = append(rest, part)
		}
		c := strings.Join(rest, "/")
		if !slices.Contains(run.Impls, impl) {
			run.Impls = append(run.Impls, impl)
		}
		if run.Values[c] == nil {
			run.Values[c] = map[string]map[string][]float64{}
			run.Cases = append(run.Cases, c)
		}
		if run.Values[c][impl] == nil {
			run.Values[c][impl] = map[string][]float64{}
		}
		// Value and unit pairs follow the iteration count.
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %q: %v", fields[0], fields[i], err)
			}
			unit := fields[i+1]
			run.Values[c][impl][unit] = append(run.Values[c][impl][unit], v)
		}
	}
	return run, sc.Err()
}

// Samples returns the values of unit as samples of run number n, one
// metric per case.
func (r *BenchRun) Samples(n int, unit string) []Sample {
	var out []Sample
	for _, c := range r.Cases {
		for impl, units := range r.Values[c] {
			for _, v := range units[unit] {
				out = append(out, Sample{Run: n, Impl: impl, Metric: c, Value: v})
			}
		}
	}
	return out
}
