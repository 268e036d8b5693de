package report

import (
	"encoding/xml"
	"math"
	"strings"
	"testing"
)

// sample is a comparison of three runs on a machine that slows down by
// half in the second run and speeds up in the third: the ratios stay.
func sample() *Comparison {
	c := &Comparison{
		Machine:   "2 × test CPU",
		Date:      "2026-11-26",
		Impls:     []string{"gorilla", "wskit-poll", "nbio", "tcp"},
		Ceilings:  []string{"tcp"},
		Reference: "gorilla",
		Metrics:   []Metric{{"echo 1000 × 64 B", "msgs/s", true}, {"idle 19 000", "KB/conn", false}},
	}
	var s []Sample
	for run, speed := range []float64{1, 0.5, 1.5} {
		s = append(s,
			Sample{run, "gorilla", "echo 1000 × 64 B", 150000 * speed},
			Sample{run, "wskit-poll", "echo 1000 × 64 B", 150000 * speed * []float64{2.8, 3, 2.5}[run]},
			Sample{run, "nbio", "echo 1000 × 64 B", 150000 * speed * []float64{2.9, 2.9, 2.9}[run]},
			Sample{run, "tcp", "echo 1000 × 64 B", 500000 * speed},
			Sample{run, "gorilla", "idle 19 000", 9.5},
			Sample{run, "wskit-poll", "idle 19 000", []float64{1.1, 1.2, 1.0}[run]},
			Sample{run, "nbio", "idle 19 000", math.NaN()},
		)
	}
	c.Summarize(s)
	return c
}

func TestSummarize(t *testing.T) {
	c := sample()
	if c.Runs != 3 {
		t.Errorf("%d runs, want 3", c.Runs)
	}
	r := c.Ratios["echo 1000 × 64 B"]["wskit-poll"]
	if r.N != 3 || math.Abs(r.Median-2.8) > 1e-9 || math.Abs(r.Min-2.5) > 1e-9 || math.Abs(r.Max-3) > 1e-9 {
		t.Errorf("wskit-poll's echo ratios %+v, want median 2.8 of 2.5–3", r)
	}
	if v := c.Values["echo 1000 × 64 B"]["gorilla"]; v != 150000 {
		t.Errorf("gorilla's median %v", v)
	}
	best := c.Best["echo 1000 × 64 B"]
	if best["nbio"] != 2 || best["wskit-poll"] != 1 || best["tcp"] != 0 {
		t.Errorf("best per run %v: want nbio 2, wskit-poll 1, never the ceiling", best)
	}
	if _, ok := c.Ratios["idle 19 000"]["nbio"]; ok {
		t.Error("NaN values made a ratio")
	}
}

func TestTable(t *testing.T) {
	got := sample().Table()
	for _, want := range []string{
		"Measured 2026-11-26 on 2 × test CPU.",
		"| echo 1000 × 64 B (msgs/s; × gorilla, higher is better) | idle 19 000 (KB/conn; × gorilla, lower is better) |",
		"| gorilla (reference) | 150 k | 9.50 |",
		"| wskit-poll | 2.80× (2.50–3.00) | **0.12× (0.11–0.13)** |",
		"| nbio | **2.90× (2.90–2.90)** | — |",
		"| tcp (ceiling) | 3.33× (3.33–3.33) | — |",
		"- echo 1000 × 64 B: nbio 2, wskit-poll 1 (of 3 runs)",
		"- idle 19 000: wskit-poll 3 (of 3 runs)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

// TestUnrankedTable marks no leader in a table of values at a floor.
func TestUnrankedTable(t *testing.T) {
	c := sample()
	c.Unranked = true
	got := c.Table()
	if strings.Contains(got, "**") || strings.Contains(got, "Best in each run") {
		t.Errorf("an unranked table marks a best:\n%s", got)
	}
	if !strings.Contains(got, "| nbio | 2.90× (2.90–2.90) | — |") {
		t.Errorf("an unranked table lost its cells:\n%s", got)
	}
}

func TestChartIsWellFormedSVG(t *testing.T) {
	svg := sample().Chart()
	d := xml.NewDecoder(strings.NewReader(string(svg)))
	rects := 0
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("not well-formed: %v", err)
			}
			break
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	// The background and one bar per measured value (6 of 8).
	if rects != 7 {
		t.Errorf("%d rects, want 7", rects)
	}
	for _, want := range []string{"2026-11-26", "2 × test CPU", "not measured", "#e07b00", "1× = 150 k msgs/s", "2.80×", "stroke-dasharray"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("chart lacks %q", want)
		}
	}
}

func TestReplace(t *testing.T) {
	doc := "intro\n" + BeginMarker + "\nold\n" + EndMarker + "\nafter\n"
	got, err := Replace(doc, "new table")
	if err != nil {
		t.Fatal(err)
	}
	if want := "intro\n" + BeginMarker + "\nnew table\n" + EndMarker + "\nafter\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := Replace("no markers", "x"); err != ErrNoMarkers {
		t.Errorf("without markers: %v", err)
	}
	b, e := SectionMarkers("fanout")
	doc = "a\n" + b + "\nold\n" + e + "\n" + BeginMarker + "\nkeep\n" + EndMarker + "\n"
	got, err = ReplaceSection(doc, "fanout", "new")
	if want := "a\n" + b + "\nnew\n" + e + "\n" + BeginMarker + "\nkeep\n" + EndMarker + "\n"; err != nil || got != want {
		t.Errorf("section: got %q, %v; want %q", got, err, want)
	}
	if _, err := ReplaceSection(doc, "e2e", "x"); err == nil {
		t.Error("a missing section was replaced")
	}
}

func TestParseBench(t *testing.T) {
	const out = `machine: 2 × test CPU
order: b,a
goos: linux
pkg: github.com/wskit/wskit/bench
BenchmarkE2E/conns=1/size=64B/mode=closed/impl=b-2         	   10000	     10000 ns/op	    100000 msgs/s	        12.5 server-µs/msg
BenchmarkE2E/conns=1/size=64B/mode=closed/impl=a-2         	   10000	     20000 ns/op	     50000 msgs/s	        25.0 server-µs/msg
BenchmarkFanout/subs=20/size=64/impl=a 	 100	 1.5 ns/op	 600000 deliveries/s
BenchmarkE2E/conns=1/size=64B/mode=closed/impl=a-2         	   10000	     20000 ns/op	     60000 msgs/s
    e2e_test.go:12: note: ignored
PASS
ok  	github.com/wskit/wskit/bench	3.2s
`
	r, err := ParseBench(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if r.Meta["machine"] != "2 × test CPU" || r.Meta["order"] != "b,a" {
		t.Errorf("meta %v", r.Meta)
	}
	if strings.Join(r.Cases, " ") != "E2E/conns=1/size=64B/mode=closed Fanout/subs=20/size=64" || strings.Join(r.Impls, " ") != "b a" {
		t.Errorf("cases %q, impls %q", r.Cases, r.Impls)
	}
	if got := r.Values["E2E/conns=1/size=64B/mode=closed"]["a"]["msgs/s"]; len(got) != 2 || got[0] != 50000 || got[1] != 60000 {
		t.Errorf("a's msgs/s %v", got)
	}
	if got := len(r.Samples(7, "msgs/s")); got != 3 {
		t.Errorf("%d samples of msgs/s, want 3", got)
	}
}

func TestFormatAndMedian(t *testing.T) {
	for v, want := range map[float64]string{1234567: "1.23 M", 45600: "45.6 k", 512: "512", 3.14159: "3.14", 12.34: "12.3"} {
		if got := Format(v); got != want {
			t.Errorf("Format(%v) = %q, want %q", v, got, want)
		}
	}
	for r, want := range map[float64]string{1.234: "1.23×", 0.0567: "0.06×", 12.34: "12.3×", 250: "250×"} {
		if got := FormatRatio(r); got != want {
			t.Errorf("FormatRatio(%v) = %q, want %q", r, got, want)
		}
	}
	if m := Median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median %v", m)
	}
	if m := Median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median %v", m)
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("median of nothing is not NaN")
	}
}
