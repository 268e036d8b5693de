// Package report turns the comparison's measurements into the README's
// tables and a bar chart in SVG, all stamped with the machine and the date
// they were measured on.
//
// Every figure is a ratio taken within one run: a server's value divided
// by the reference server's value from the same run, so that the
// machine's drift between runs (2× on a shared machine) cancels out. A
// cell is the median of those ratios over the runs, with their smallest and
// largest beside it; the reference's row shows its own values.
package report

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
)

// Metric is one column of a comparison: a scenario or benchmark case and
// what is read from it.
type Metric struct {
	Name   string // "echo, 1000 conns × 64 B"
	Unit   string // "msgs/s"
	Higher bool   // whether more is better
}

// Sample is one measurement: a server's value of a metric in one run.
type Sample struct {
	Run    int
	Impl   string
	Metric string
	Value  float64
}

// Spread summarises a server's ratios to the reference over the runs.
type Spread struct {
	Median, Min, Max float64
	N                int // runs in which both were measured
}

// Comparison holds the summary of each implementation for each metric.
type Comparison struct {
	Machine string // "2 × AMD EPYC, Linux 6.8, Go 1.26"
	Date    string // "2026-11-26"
	Impls   []string
	Metrics []Metric
	// Reference is the implementation every ratio divides by.
	Reference string
	// Runs is how many runs the samples came from.
	Runs int
	// Values[metric][impl] is the median of impl's values over the runs;
	// a missing or NaN value is shown as "—".
	Values map[string]map[string]float64
	// Ratios[metric][impl] summarises impl's value divided by Reference's
	// in the same run.
	Ratios map[string]map[string]Spread
	// Best[metric][impl] counts the runs in which impl had the best value
	// of metric, ceilings left out; a tie counts for each. BestOf[metric]
	// is the number of runs that had one.
	Best   map[string]map[string]int
	BestOf map[string]int
	// Notes go under the table, such as how it was measured.
	Notes []string
	// Unranked tables mark no best: their values sit at a floor (zero
	// allocations, say) where who is lowest is noise.
	Unranked bool
	// Ceilings are shown but never best, such as a plain TCP echo.
	Ceilings []string
	// Title, when set, heads the table in place of the machine and date,
	// for a table among others that share them.
	Title string
}

// Summarize fills c.Values, c.Ratios, c.Best and c.Runs from samples, for
// c.Metrics, c.Impls and c.Reference. Several samples of one server, metric
// and run count as their median.
func (c *Comparison) Summarize(samples []Sample) {
	type key struct {
		metric string
		run    int
	}
	byRun := map[key]map[string][]float64{}
	runs := map[int]bool{}
	for _, s := range samples {
		if math.IsNaN(s.Value) {
			continue
		}
		k := key{s.Metric, s.Run}
		if byRun[k] == nil {
			byRun[k] = map[string][]float64{}
		}
		byRun[k][s.Impl] = append(byRun[k][s.Impl], s.Value)
		runs[s.Run] = true
	}
	c.Runs = len(runs)
	c.Values = map[string]map[string]float64{}
	c.Ratios = map[string]map[string]Spread{}
	c.Best = map[string]map[string]int{}
	c.BestOf = map[string]int{}
	runList := make([]int, 0, len(runs))
	for r := range runs {
		runList = append(runList, r)
	}
	slices.Sort(runList)
	for _, m := range c.Metrics {
		values := map[string][]float64{}
		ratios := map[string][]float64{}
		best := map[string]int{}
		for _, run := range runList {
			vs := byRun[key{m.Name, run}]
			if vs == nil {
				continue
			}
			ref := math.NaN()
			if rv := vs[c.Reference]; len(rv) > 0 {
				ref = Median(rv)
			}
			// The best of the run; a tie counts for each.
			var winners []string
			wv := 0.0
			for _, impl := range c.Impls {
				if len(vs[impl]) == 0 {
					continue
				}
				v := Median(vs[impl])
				values[impl] = append(values[impl], v)
				if ref > 0 {
					ratios[impl] = append(ratios[impl], v/ref)
				}
				switch {
				case slices.Contains(c.Ceilings, impl):
				case len(winners) == 0 || (m.Higher && v > wv) || (!m.Higher && v < wv):
					winners, wv = []string{impl}, v
				case v == wv:
					winners = append(winners, impl)
				}
			}
			for _, w := range winners {
				best[w]++
			}
			if len(winners) > 0 {
				c.BestOf[m.Name]++
			}
		}
		c.Values[m.Name] = map[string]float64{}
		for impl, vs := range values {
			c.Values[m.Name][impl] = Median(vs)
		}
		c.Ratios[m.Name] = map[string]Spread{}
		for impl, rs := range ratios {
			c.Ratios[m.Name][impl] = Spread{Median: Median(rs), Min: slices.Min(rs), Max: slices.Max(rs), N: len(rs)}
		}
		c.Best[m.Name] = best
	}
}

// Rename renames the metrics of the summaries from old to new names (after
// Summarize, whose samples name them the old way); c.Metrics is the
// caller's to rename.
func (c *Comparison) Rename(names map[string]string) {
	for old, name := range names {
		if v, ok := c.Values[old]; ok {
			delete(c.Values, old)
			c.Values[name] = v
		}
		if r, ok := c.Ratios[old]; ok {
			delete(c.Ratios, old)
			c.Ratios[name] = r
		}
		if b, ok := c.Best[old]; ok {
			delete(c.Best, old)
			c.Best[name] = b
		}
		if n, ok := c.BestOf[old]; ok {
			delete(c.BestOf, old)
			c.BestOf[name] = n
		}
	}
}

func (c *Comparison) value(m Metric, impl string) (float64, bool) {
	v, ok := c.Values[m.Name][impl]
	return v, ok && !math.IsNaN(v)
}

func (c *Comparison) ratio(m Metric, impl string) (Spread, bool) {
	s, ok := c.Ratios[m.Name][impl]
	return s, ok && s.N > 0 && !math.IsNaN(s.Median)
}

// best returns the implementation with the best median ratio of m, or
// without ratios the best median value.
func (c *Comparison) best(m Metric) string {
	best, bv := "", 0.0
	for _, impl := range c.Impls {
		if slices.Contains(c.Ceilings, impl) {
			continue
		}
		v, ok := 0.0, false
		if c.Reference != "" {
			var s Spread
			s, ok = c.ratio(m, impl)
			v = s.Median
		} else {
			v, ok = c.value(m, impl)
		}
		if !ok {
			continue
		}
		if best == "" || (m.Higher && v > bv) || (!m.Higher && v < bv) {
			best, bv = impl, v
		}
	}
	return best
}

// ties reports whether impl's figure of m is the best one.
func (c *Comparison) ties(m Metric, impl string) bool {
	best := c.best(m)
	if best == "" || slices.Contains(c.Ceilings, impl) {
		return false
	}
	if impl == best {
		return true
	}
	if c.Reference != "" {
		a, aok := c.ratio(m, impl)
		b, bok := c.ratio(m, best)
		return aok && bok && a.Median == b.Median
	}
	a, aok := c.value(m, impl)
	b, bok := c.value(m, best)
	return aok && bok && a == b
}

// Table returns the comparison as a Markdown table, one row per
// implementation. The reference's row shows its median values; every other
// cell is the median of the per-run ratios to it, with their range over
// the runs in brackets. The best of each column is in bold; under the table
// a line says which server was best in how many runs. With a Title, the
// columns are headed by the metrics' names alone.
func (c *Comparison) Table() string {
	var b strings.Builder
	if c.Title != "" {
		fmt.Fprintf(&b, "%s\n\n", c.Title)
	} else {
		fmt.Fprintf(&b, "Measured %s on %s.\n\n", c.Date, c.Machine)
	}
	b.WriteString("| server |")
	for _, m := range c.Metrics {
		if c.Title != "" {
			fmt.Fprintf(&b, " %s |", m.Name) // the title says the unit
			continue
		}
		if c.Reference != "" {
			fmt.Fprintf(&b, " %s (%s; × %s, %s) |", m.Name, m.Unit, c.Reference, direction(m))
		} else {
			fmt.Fprintf(&b, " %s (%s, %s) |", m.Name, m.Unit, direction(m))
		}
	}
	b.WriteString("\n| --- |")
	for range c.Metrics {
		b.WriteString(" ---: |")
	}
	b.WriteString("\n")
	for _, impl := range c.Impls {
		switch {
		case impl == c.Reference:
			fmt.Fprintf(&b, "| %s (reference) |", impl)
		case slices.Contains(c.Ceilings, impl):
			fmt.Fprintf(&b, "| %s (ceiling) |", impl)
		default:
			fmt.Fprintf(&b, "| %s |", impl)
		}
		for _, m := range c.Metrics {
			cell := c.cell(m, impl)
			if !c.Unranked && c.ties(m, impl) && cell != "—" {
				cell = "**" + cell + "**"
			}
			fmt.Fprintf(&b, " %s |", cell)
		}
		b.WriteString("\n")
	}
	if lines := c.bestLines(); len(lines) > 0 && !c.Unranked {
		b.WriteString("\nBest in each run:\n")
		for _, l := range lines {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, n := range c.Notes {
		fmt.Fprintf(&b, "\n%s\n", n)
	}
	return b.String()
}

// cell formats impl's figure for m.
func (c *Comparison) cell(m Metric, impl string) string {
	if c.Reference == "" || impl == c.Reference {
		if v, ok := c.value(m, impl); ok {
			return Format(v)
		}
		return "—"
	}
	s, ok := c.ratio(m, impl)
	if !ok {
		return "—"
	}
	if s.N == 1 {
		return FormatRatio(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", FormatRatio(s.Median), trimRatio(s.Min), trimRatio(s.Max))
}

// bestLines says, per metric, which servers were best in how many runs.
func (c *Comparison) bestLines() []string {
	var lines []string
	for _, m := range c.Metrics {
		counts := c.Best[m.Name]
		if len(counts) == 0 {
			continue
		}
		impls := make([]string, 0, len(counts))
		for impl := range counts {
			impls = append(impls, impl)
		}
		slices.SortFunc(impls, func(a, b string) int {
			if counts[a] != counts[b] {
				return counts[b] - counts[a]
			}
			return strings.Compare(a, b)
		})
		parts := make([]string, len(impls))
		for i, impl := range impls {
			parts[i] = fmt.Sprintf("%s %d", impl, counts[impl])
		}
		lines = append(lines, fmt.Sprintf("%s: %s (of %d runs)", m.Name, strings.Join(parts, ", "), c.BestOf[m.Name]))
	}
	return lines
}

func direction(m Metric) string {
	if m.Higher {
		return "higher is better"
	}
	return "lower is better"
}

// Format prints v with three significant digits and k/M suffixes.
func Format(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return trim(v/1e6) + " M"
	case a >= 1e4:
		return trim(v/1e3) + " k"
	default:
		return trim(v)
	}
}

// FormatRatio prints a ratio such as 1.23×.
func FormatRatio(r float64) string { return trimRatio(r) + "×" }

func trimRatio(r float64) string {
	switch a := math.Abs(r); {
	case a >= 100:
		return fmt.Sprintf("%.0f", r)
	case a >= 10:
		return fmt.Sprintf("%.1f", r)
	}
	return fmt.Sprintf("%.2f", r)
}

func trim(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// Chart returns an SVG bar chart: one panel per metric, a bar per
// implementation. With a reference, a bar is the median ratio to it, a
// whisker spans the ratios' range over the runs and a line marks 1×; the
// reference's bar is labelled with its own value. Without one, bars are
// median values, each panel scaled to its largest. The best bar is in the
// highlight colour, wskit's bars are marked by colour too.
func (c *Comparison) Chart() []byte {
	const (
		width    = 900
		left     = 170 // room for implementation names
		right    = 150 // room for values
		barH     = 16
		gap      = 4
		panelGap = 34
		top      = 56
	)
	panelH := len(c.Impls)*(barH+gap) + 24
	height := top + len(c.Metrics)*(panelH+panelGap) + 10
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	title := "WebSocket servers compared, " + c.Date
	if c.Reference != "" {
		title += fmt.Sprintf(": ratios to %s within each run, median and range of %d runs", c.Reference, c.Runs)
	}
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="16" font-weight="bold">%s</text>`+"\n", esc(title))
	fmt.Fprintf(&b, `<text x="10" y="40" fill="#555">%s</text>`+"\n", esc(c.Machine))
	scale := float64(width - left - right)
	y := top
	for _, m := range c.Metrics {
		fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y+12, esc(fmt.Sprintf("%s — %s, %s", m.Name, m.Unit, direction(m))))
		y += 20
		// bar returns impl's bar length, whisker range and label.
		bar := func(impl string) (v, lo, hi float64, label string, ok bool) {
			if c.Reference == "" {
				v, ok = c.value(m, impl)
				return v, v, v, Format(v), ok
			}
			if impl == c.Reference {
				rv, ok := c.value(m, impl)
				return 1, 1, 1, "1× = " + Format(rv) + " " + m.Unit, ok
			}
			s, ok := c.ratio(m, impl)
			return s.Median, s.Min, s.Max, FormatRatio(s.Median), ok
		}
		peak := 0.0
		for _, impl := range c.Impls {
			if _, _, hi, _, ok := bar(impl); ok && hi > peak {
				peak = hi
			}
		}
		panelTop := y
		best := c.best(m)
		for _, impl := range c.Impls {
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, y+barH-4, esc(impl))
			v, lo, hi, label, ok := bar(impl)
			if !ok || peak <= 0 {
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#999">not measured</text>`+"\n", left+4, y+barH-4)
				y += barH + gap
				continue
			}
			w := max(int(math.Round(scale*v/peak)), 1)
			fill := "#9aa5b1"
			if strings.HasPrefix(impl, "wskit") {
				fill = "#3b82c4"
			}
			if impl == best {
				fill = "#e07b00"
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", left, y, w, barH, fill)
			end := w
			if hi > lo {
				x0 := left + int(math.Round(scale*lo/peak))
				x1 := left + int(math.Round(scale*hi/peak))
				fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#222"/>`+"\n", x0, y+barH/2, x1, y+barH/2)
				end = max(end, x1-left)
			}
			fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", left+end+6, y+barH-4, esc(label))
			y += barH + gap
		}
		if c.Reference != "" && peak > 0 {
			x := left + int(math.Round(scale/peak))
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#555" stroke-dasharray="3,3"/>`+"\n", x, panelTop-2, x, y)
		}
		y += panelGap
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func esc(s string) string { return html.EscapeString(s) }

// Markers delimit the generated comparison of a README; Section's markers
// delimit the others.
const (
	BeginMarker = "<!-- comparison:begin (generated by bench/cmd/compare; do not edit) -->"
	EndMarker   = "<!-- comparison:end -->"
)

// ErrNoMarkers is returned by Replace when the document lacks the markers.
var ErrNoMarkers = errors.New("report: the markers of the generated section are missing")

// Replace returns doc with the text between the comparison's markers
// replaced by content.
func Replace(doc, content string) (string, error) {
	return replace(doc, BeginMarker, EndMarker, content)
}

// SectionMarkers returns the markers of the generated section name.
func SectionMarkers(name string) (begin, end string) {
	return "<!-- " + name + ":begin (generated by bench/cmd/compare; do not edit) -->", "<!-- " + name + ":end -->"
}

// ReplaceSection returns doc with the text between the markers of section
// name replaced by content.
func ReplaceSection(doc, name, content string) (string, error) {
	begin, end := SectionMarkers(name)
	out, err := replace(doc, begin, end, content)
	if err != nil {
		return "", fmt.Errorf("section %s: %w", name, err)
	}
	return out, nil
}

func replace(doc, begin, end, content string) (string, error) {
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < i {
		return "", ErrNoMarkers
	}
	return doc[:i+len(begin)] + "\n" + strings.TrimSpace(content) + "\n" + doc[j:], nil
}

// Median returns the median of vs, NaN when empty.
func Median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
