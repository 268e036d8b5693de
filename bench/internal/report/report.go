// Package report turns the comparison's measurements into the README's
// table and a bar chart in SVG, both stamped with the machine and the date
// they were measured on.
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

// Metric is one column of the comparison: a scenario and what is read from
// it.
type Metric struct {
	Name   string // "echo 1000 × 64 B"
	Unit   string // "msgs/s"
	Higher bool   // whether more is better
}

// Comparison holds the median of each implementation for each metric.
type Comparison struct {
	Machine string // "2 × AMD EPYC, Linux 6.8, Go 1.26"
	Date    string // "2026-11-26"
	Impls   []string
	Metrics []Metric
	// Values[metric][impl]; a missing or NaN value is shown as "—".
	Values map[string]map[string]float64
	// Notes under the table, such as how it was measured.
	Notes []string
	// Ceilings are shown but never best, such as a plain TCP echo.
	Ceilings []string
}

func (c *Comparison) value(m Metric, impl string) (float64, bool) {
	v, ok := c.Values[m.Name][impl]
	return v, ok && !math.IsNaN(v)
}

// best returns the implementation with the best value of m.
func (c *Comparison) best(m Metric) string {
	best, bv := "", 0.0
	for _, impl := range c.Impls {
		v, ok := c.value(m, impl)
		if !ok || slices.Contains(c.Ceilings, impl) {
			continue
		}
		if best == "" || (m.Higher && v > bv) || (!m.Higher && v < bv) {
			best, bv = impl, v
		}
	}
	return best
}

// Table returns the comparison as a Markdown table, one row per
// implementation, the best value of each column in bold.
func (c *Comparison) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on %s.\n\n", c.Date, c.Machine)
	b.WriteString("| server |")
	for _, m := range c.Metrics {
		fmt.Fprintf(&b, " %s (%s, %s) |", m.Name, m.Unit, direction(m))
	}
	b.WriteString("\n| --- |")
	for range c.Metrics {
		b.WriteString(" ---: |")
	}
	b.WriteString("\n")
	for _, impl := range c.Impls {
		if slices.Contains(c.Ceilings, impl) {
			fmt.Fprintf(&b, "| %s (ceiling) |", impl)
		} else {
			fmt.Fprintf(&b, "| %s |", impl)
		}
		for _, m := range c.Metrics {
			v, ok := c.value(m, impl)
			switch {
			case !ok:
				b.WriteString(" — |")
			case impl == c.best(m):
				fmt.Fprintf(&b, " **%s** |", Format(v))
			default:
				fmt.Fprintf(&b, " %s |", Format(v))
			}
		}
		b.WriteString("\n")
	}
	for _, n := range c.Notes {
		fmt.Fprintf(&b, "\n%s\n", n)
	}
	return b.String()
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
// implementation, each panel scaled to its own largest value, the best bar
// in the highlight colour, wskit's bars marked by colour too.
func (c *Comparison) Chart() []byte {
	const (
		width    = 900
		left     = 170 // room for implementation names
		right    = 90  // room for values
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
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="16" font-weight="bold">%s</text>`+"\n", esc("WebSocket servers compared, "+c.Date))
	fmt.Fprintf(&b, `<text x="10" y="40" fill="#555">%s</text>`+"\n", esc(c.Machine))
	y := top
	for _, m := range c.Metrics {
		fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y+12, esc(fmt.Sprintf("%s — %s, %s", m.Name, m.Unit, direction(m))))
		y += 20
		peak := 0.0
		for _, impl := range c.Impls {
			if v, ok := c.value(m, impl); ok && v > peak {
				peak = v
			}
		}
		best := c.best(m)
		for _, impl := range c.Impls {
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, y+barH-4, esc(impl))
			v, ok := c.value(m, impl)
			if !ok || peak <= 0 {
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#999">not measured</text>`+"\n", left+4, y+barH-4)
				y += barH + gap
				continue
			}
			w := int(math.Round(float64(width-left-right) * v / peak))
			fill := "#9aa5b1"
			if strings.HasPrefix(impl, "wskit") {
				fill = "#3b82c4"
			}
			if impl == best {
				fill = "#e07b00"
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", left, y, max(w, 1), barH, fill)
			fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", left+max(w, 1)+6, y+barH-4, esc(Format(v)))
			y += barH + gap
		}
		y += panelGap
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func esc(s string) string { return html.EscapeString(s) }

// Markers delimit the generated part of a README.
const (
	BeginMarker = "<!-- comparison:begin (generated by bench/cmd/compare; do not edit) -->"
	EndMarker   = "<!-- comparison:end -->"
)

// ErrNoMarkers is returned by Replace when the document lacks the markers.
var ErrNoMarkers = errors.New("report: the markers of the generated section are missing")

// Replace returns doc with the text between the markers replaced by
// content.
func Replace(doc, content string) (string, error) {
	i := strings.Index(doc, BeginMarker)
	j := strings.Index(doc, EndMarker)
	if i < 0 || j < i {
		return "", ErrNoMarkers
	}
	return doc[:i+len(BeginMarker)] + "\n" + strings.TrimSpace(content) + "\n" + doc[j:], nil
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
