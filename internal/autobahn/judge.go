package autobahn

import (
	"bytes"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Autobahn's Case: expected events and close, and the verdicts.

// event is one entry of Autobahn's "received" list.
type event struct {
	kind    string // "message", "pong" or "timeout"
	payload []byte // for "timeout": the tag
	binary  bool
}

func message(p string, binary bool) event {
	return event{kind: "message", payload: []byte(p), binary: binary}
}
func pongOf(p string) event      { return event{kind: "pong", payload: []byte(p)} }
func timeoutOf(tag string) event { return event{kind: "timeout", payload: []byte(tag)} }

func (e event) String() string {
	switch e.kind {
	case "message":
		t := "text"
		if e.binary {
			t = "binary"
		}
		return fmt.Sprintf("%s(%s)", t, short(e.payload))
	case "timeout":
		return "timeout(" + string(e.payload) + ")"
	}
	return e.kind + "(" + short(e.payload) + ")"
}

// short renders a payload for a report: quoted when short printable text,
// else its length and first bytes.
func short(p []byte) string {
	if len(p) <= 32 && utf8.Valid(p) {
		return fmt.Sprintf("%q", p)
	}
	n := min(len(p), 8)
	return fmt.Sprintf("%d bytes % x…", len(p), p[:n])
}

func sameEvents(a, b []event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].kind != b[i].kind || a[i].binary != b[i].binary || !bytes.Equal(a[i].payload, b[i].payload) {
			return false
		}
	}
	return true
}

// outcome is one expected list of events and the verdict it earns.
type outcome struct {
	behavior string
	events   []event
}

// closeExpect is Autobahn's expectedClose.
type closeExpect struct {
	byMe         bool  // we (the fuzzer) send the first close frame
	codes        []int // close codes the server may send
	requireClean bool  // full closing handshake, then the server drops TCP
	fatal        bool  // closedByWrongEndpointIsFatal
}

// record appends an event to "received" and closes when it completes the
// expected events (Autobahn's finishWhenDone).
func (s *session) record(e event) {
	s.received = append(s.received, e)
	for _, o := range s.expected {
		if !sameEvents(s.received, o.events) {
			return
		}
	}
	if s.close.byMe && !s.suppressClose && len(s.close.codes) > 0 {
		s.sendClose(s.close.codes[0], "")
	}
}

// Case expectations.

func (s *session) expect(behavior string, evs ...event) {
	s.expected = append(s.expected, outcome{behavior: behavior, events: evs})
}

// expectNormalClose: we close with 1000 once the expected events arrived,
// and the server completes a clean close.
func (s *session) expectNormalClose() {
	s.close = closeExpect{byMe: true, codes: []int{1000}, requireClean: true}
}

// expectFail: the server fails the connection with one of codes (or drops TCP).
func (s *session) expectFail(codes ...int) {
	s.close = closeExpect{codes: codes}
}

// connectionLost judges the case, as Case.onConnectionLost.
func (s *session) connectionLost() {
	s.state = stateClosed
	if !s.wasClean && !s.droppedByMe && s.notClean == "" {
		s.notClean = "peer dropped the TCP connection without previous WebSocket closing handshake"
	}
	for _, o := range s.expected {
		if sameEvents(s.received, o.events) {
			s.matched = true
			s.behavior = o.behavior
			s.result = "Actual events match at least one expected."
			break
		}
	}
	switch {
	case s.close.byMe != s.closedByMe:
		s.behaviorClose = Failed
		s.resultClose = "The connection was failed by the wrong endpoint"
	case s.close.requireClean && !s.wasClean:
		s.behaviorClose = Unclean
		s.resultClose = "The spec requires the connection to be failed cleanly here"
	case s.remoteCode >= 0 && !containsInt(s.close.codes, s.remoteCode):
		s.behaviorClose = WrongCode
		s.resultClose = fmt.Sprintf("The close code should have been %s or empty", joinInts(s.close.codes))
	case s.droppedByMe:
		s.behaviorClose = FailedByClient
		s.resultClose = "It is preferred that the server close the TCP connection"
	default:
		s.behaviorClose = OK
		s.resultClose = "Connection was properly closed"
	}
	if s.close.fatal && s.close.byMe != s.closedByMe {
		s.behavior = Failed
	}
	if s.onLost != nil {
		s.onLost()
	}
}

// wrongCodeFails is the onConnectionLost of most 7.x cases.
func (s *session) wrongCodeFails() {
	s.onLost = func() {
		if s.behaviorClose == WrongCode {
			s.behavior = Failed
			s.result = s.resultClose
		}
	}
}

// report turns the verdicts into a Result.
func (s *session) report(r Result, limit time.Duration) Result {
	r.Duration = s.end.Sub(s.start)
	r.Close = s.behaviorClose
	if s.remoteCode >= 0 {
		r.CloseCode = s.remoteCode
	}
	r.Behavior = s.behavior
	var why []string
	switch s.behaviorClose {
	case Failed, Unclean, WrongCode:
		if r.Behavior != Informational {
			r.Behavior = Failed
		}
	case FailedByClient:
		// The server did not close TCP in time after the closing handshake
		// (RFC 6455 §5.5.1 and §7.1.1): a failure where the case requires a
		// clean close, else a SHOULD missed.
		switch {
		case s.close.requireClean && r.Behavior != Informational:
			r.Behavior = Failed
		case r.Behavior == OK:
			r.Behavior = NonStrict
		}
	}
	if s.behavior != OK {
		why = append(why, s.behavior+": "+s.result)
		if s.onMessage == nil && len(s.expected) > 0 && !s.matched {
			why = append(why, "got "+eventsString(s.received)+", want "+s.wantString())
		}
	}
	if s.behaviorClose != OK && s.behaviorClose != Informational {
		why = append(why, fmt.Sprintf("close %s: %s (%s)", s.behaviorClose, s.resultClose, s.closeFacts()))
	}
	if s.violation != "" {
		if r.Behavior != Informational {
			r.Behavior = Failed
		}
		why = append(why, "server violated RFC 6455: "+s.violation)
	}
	if s.timedOut {
		r.Behavior = Failed
		why = append(why, fmt.Sprintf("case did not finish within %v", limit))
	}
	if s.ctxErr != nil {
		r.Behavior = Failed
		why = append(why, "interrupted: "+s.ctxErr.Error())
	}
	if s.info != "" {
		why = append(why, s.info)
	}
	r.Detail = strings.Join(why, "; ")
	return r
}

func (s *session) closeFacts() string {
	code := "none"
	if s.remoteCode >= 0 {
		code = fmt.Sprint(s.remoteCode)
	}
	f := fmt.Sprintf("closedByMe=%v droppedByMe=%v wasClean=%v remoteCode=%s", s.closedByMe, s.droppedByMe, s.wasClean, code)
	if s.remoteReason != "" {
		f += fmt.Sprintf(" remoteReason=%q", s.remoteReason)
	}
	if s.notClean != "" {
		f += ", " + s.notClean
	}
	if s.rerr != nil && !strings.Contains(s.rerr.Error(), "use of closed") && s.rerr.Error() != "EOF" {
		f += ", read: " + s.rerr.Error()
	}
	return f
}

func (s *session) wantString() string {
	var parts []string
	for _, o := range s.expected {
		parts = append(parts, o.behavior+" "+eventsString(o.events))
	}
	return strings.Join(parts, " or ")
}

func eventsString(evs []event) string {
	var parts []string
	for i, e := range evs {
		if i == 8 {
			parts = append(parts, fmt.Sprintf("… %d more", len(evs)-i))
			break
		}
		parts = append(parts, e.String())
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func joinInts(xs []int) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprint(x))
	}
	return strings.Join(parts, ",")
}
