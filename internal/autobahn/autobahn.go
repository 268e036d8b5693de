// Package autobahn reimplements the Autobahn|Testsuite "fuzzingclient"
// cases 1.1.1 to 10.1.1 (RFC 6455 conformance of an echo server) and 12.1.1
// to 13.7.18 (permessage-deflate, RFC 7692) in Go, so that a server can be
// checked without Python or Docker.
//
// The 301 cases of sections 1 to 10, their payloads, fragmentation, chop
// sizes, waits and expectations follow autobahntestsuite/case/case*.py
// (version 0.8, with 1014 and 1015 no longer among the invalid close codes
// of 7.9); the 216 of sections 12 and 13 follow case12_x_x.py, with
// synthetic payloads in place of Autobahn's test files (see corpus.go and
// compression.go). Cases 1 to 10 offer no extension. The client
// emulates what those cases rely on in the Autobahn client: masked frames
// written whole, in chops or "synced"; killAfter (fail with 1001 after a
// delay), closeAfter and continueLater; the 1 s close-handshake and
// server-drop timeouts; and the judging of received events and of the close.
//
// Autobahn gives each case two verdicts: the behaviour (the received events
// match an expected outcome: OK, NON-STRICT, INFORMATIONAL, else FAILED) and
// the close behaviour (the right endpoint started the close, the server
// closed TCP after a clean handshake where required, the close code is
// allowed). Result.Close keeps the second; Result.Behavior folds both:
//
//   - close FAILED, UNCLEAN or WRONG CODE fails the case;
//   - close FAILED BY CLIENT (we had to drop the TCP connection because the
//     server kept it open) fails a case that requires a clean close and
//     makes any other OK case NON-STRICT;
//   - INFORMATIONAL cases (7.1.6, 7.13.x) stay INFORMATIONAL.
//
// Differences from Autobahn, all stricter: an RFC 6455 violation in the
// server's frames fails the case (Autobahn only fails the connection and
// judges what follows); 9.x compares the echoed payload, not only its
// length; every case has a hard time limit; after a close the server
// started, we drop TCP when the server has not within 1 s (Autobahn waits
// for a killAfter that not every case sets). In 12.x and 13.x the
// server's permessage-deflate response is checked against every rule of RFC
// 7692 §7 (Autobahn's client accepts any response it can parse), a
// compressed message must inflate within the negotiated window, and a case
// gives up 10 s after an echo is due (it still has Autobahn's 60 to 480 s
// in all).
//
// The client's framing, masking, UTF-8 checks and permessage-deflate are
// written here from RFC 6455, RFC 7692, unicode/utf8 and compress/flate, not
// taken from the frame and codec packages, so that a bug there cannot
// cancel itself out between this client and a server built on them.
package autobahn

import (
	"context"
	"path"
	"strconv"
	"strings"
	"time"
)

// Verdicts of Result.Behavior (and of Result.Close, which adds Autobahn's
// close-specific ones).
const (
	OK             = "OK"
	NonStrict      = "NON-STRICT"
	Informational  = "INFORMATIONAL"
	Unimplemented  = "UNIMPLEMENTED"
	Failed         = "FAILED"
	WrongCode      = "WRONG CODE"
	Unclean        = "UNCLEAN"
	FailedByClient = "FAILED BY CLIENT"
)

// Result is the outcome of one case.
type Result struct {
	ID          string
	Description string
	Behavior    string // OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED or FAILED
	Detail      string // why, when not plainly OK
	Duration    time.Duration

	Close     string // Autobahn's close verdict: OK, INFORMATIONAL, FAILED, UNCLEAN, WRONG CODE, FAILED BY CLIENT
	CloseCode int    // code of the server's close frame; 0 when it sent none
}

// Case is one test case.
type Case struct {
	ID          string
	Description string
	Expectation string

	limit  time.Duration  // hard limit of the whole case
	offers []deflateOffer // permessage-deflate offers of the opening handshake
	open   func(s *session)
}

// Cases returns every case from 1.1.1 to 13.7.18 in Autobahn order.
func Cases() []Case {
	var cs []Case
	cs = append(cs, framingCases()...)
	cs = append(cs, pingCases()...)
	cs = append(cs, rsvCases()...)
	cs = append(cs, opcodeCases()...)
	cs = append(cs, fragmentCases()...)
	cs = append(cs, utf8Cases()...)
	cs = append(cs, closeCases()...)
	cs = append(cs, limitCases()...)
	cs = append(cs, autoFragmentCases()...)
	cs = append(cs, compressionCases()...)
	return cs
}

// Run runs one case against the echo server at url (ws://host:port/path) on
// a fresh TCP connection. timeout bounds the whole case; zero or less means
// the case's own limit.
func Run(ctx context.Context, url string, c Case, timeout time.Duration) Result {
	if timeout <= 0 {
		timeout = c.limit
	}
	return runCase(ctx, url, c, timeout, dial)
}

// RunAll runs, one after another, the cases whose ID filter accepts (all of
// them when filter is nil).
func RunAll(ctx context.Context, url string, filter func(id string) bool) []Result {
	var rs []Result
	for _, c := range Cases() {
		if filter != nil && !filter(c.ID) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		rs = append(rs, Run(ctx, url, c, 0))
	}
	return rs
}

// Summarize counts results by Behavior.
func Summarize(rs []Result) map[string]int {
	m := make(map[string]int)
	for _, r := range rs {
		m[r.Behavior]++
	}
	return m
}

// SummaryLine renders counts as "OK 290, NON-STRICT 3, INFORMATIONAL 3,
// FAILED 0"; UNIMPLEMENTED and unknown verdicts appear only when present.
func SummaryLine(m map[string]int) string {
	parts := []string{
		OK + " " + strconv.Itoa(m[OK]),
		NonStrict + " " + strconv.Itoa(m[NonStrict]),
		Informational + " " + strconv.Itoa(m[Informational]),
	}
	if m[Unimplemented] > 0 {
		parts = append(parts, Unimplemented+" "+strconv.Itoa(m[Unimplemented]))
	}
	parts = append(parts, Failed+" "+strconv.Itoa(m[Failed]))
	for _, k := range sortedKeys(m) {
		switch k {
		case OK, NonStrict, Informational, Unimplemented, Failed:
		default:
			parts = append(parts, k+" "+strconv.Itoa(m[k]))
		}
	}
	return strings.Join(parts, ", ")
}

// Filter returns a case filter in the manner of Autobahn's "cases" and
// "exclude-cases" lists: an ID is run when it matches a pattern of include
// (or include is empty) and no pattern of exclude. A pattern is an ID or
// uses * as a wildcard ("6.*", "9.7.*"); "6" alone selects section 6.
func Filter(include, exclude []string) func(id string) bool {
	match := func(pats []string, id string) bool {
		for _, p := range pats {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			if p == id || strings.HasPrefix(id, p+".") {
				return true
			}
			if ok, err := path.Match(p, id); err == nil && ok {
				return true
			}
		}
		return false
	}
	return func(id string) bool {
		if len(include) > 0 && !match(include, id) {
			return false
		}
		return !match(exclude, id)
	}
}
