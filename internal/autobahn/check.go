package autobahn

import (
	"context"
	"fmt"
)

// T is the part of testing.TB that Check uses.
type T interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
}

// Check runs the cases selected by filter (all when nil) against the echo
// server at url, reports every FAILED case through t.Errorf and logs the
// summary line. It returns the results for further checks.
//
//	rs := autobahn.Check(t, "ws://"+ln.Addr().String()+"/", autobahn.Filter(nil, []string{"9.*"}))
func Check(t T, url string, filter func(id string) bool) []Result {
	t.Helper()
	rs := RunAll(context.Background(), url, filter)
	for _, r := range rs {
		if r.Behavior == Failed {
			t.Errorf("case %s (%s): %s", r.ID, r.Description, r.Detail)
		}
	}
	t.Logf("autobahn: %d cases: %s", len(rs), SummaryLine(Summarize(rs)))
	return rs
}

// String renders a result on one line.
func (r Result) String() string {
	s := fmt.Sprintf("%s %s (close %s", r.ID, r.Behavior, r.Close)
	if r.CloseCode != 0 {
		s += fmt.Sprintf(" %d", r.CloseCode)
	}
	s += fmt.Sprintf(", %v)", r.Duration)
	if r.Detail != "" {
		s += ": " + r.Detail
	}
	return s
}
