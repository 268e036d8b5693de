package report

import (
	"encoding/xml"
	"math"
	"strings"
	"testing"
)

func sample() *Comparison {
	return &Comparison{
		Machine:  "2 × test CPU",
		Date:     "2026-11-26",
		Impls:    []string{"gorilla", "wskit-poll", "tcp"},
		Ceilings: []string{"tcp"},
		Metrics:  []Metric{{"echo 1000 × 64 B", "msgs/s", true}, {"idle 19 000", "KB/conn", false}},
		Values: map[string]map[string]float64{
			"echo 1000 × 64 B": {"gorilla": 150000, "wskit-poll": 420000, "tcp": 500000},
			"idle 19 000":      {"gorilla": 9.5, "wskit-poll": 1.1},
		},
	}
}

func TestTable(t *testing.T) {
	got := sample().Table()
	for _, want := range []string{
		"Measured 2026-11-26 on 2 × test CPU.",
		"| echo 1000 × 64 B (msgs/s, higher is better) | idle 19 000 (KB/conn, lower is better) |",
		"| gorilla | 150 k | 9.50 |",
		"| wskit-poll | **420 k** | **1.10** |",
		"| tcp (ceiling) | 500 k | — |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
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
	// The background and one bar per measured value (5 of 6).
	if rects != 6 {
		t.Errorf("%d rects, want 6", rects)
	}
	for _, want := range []string{"2026-11-26", "2 × test CPU", "not measured", "#e07b00"} {
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
}

func TestFormatAndMedian(t *testing.T) {
	for v, want := range map[float64]string{1234567: "1.23 M", 45600: "45.6 k", 512: "512", 3.14159: "3.14", 12.34: "12.3"} {
		if got := Format(v); got != want {
			t.Errorf("Format(%v) = %q, want %q", v, got, want)
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
