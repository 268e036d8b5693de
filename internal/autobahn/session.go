package autobahn

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
	"unicode/utf8"
)

// Timeouts of the Autobahn client (WebSocketClientFactory defaults) and of
// this one.
const (
	openHandshakeTimeout  = 5 * time.Second
	closeHandshakeTimeout = time.Second           // our close unanswered: drop
	serverDropTimeout     = time.Second           // handshake done, server keeps TCP open: drop
	defaultLimit          = 15 * time.Second      // hard limit of a case of sections 1 to 7 and 10
	maxLimit              = 30 * time.Second      // of a case of section 9, whose own waits are up to 1000 s
	syncPause             = 10 * time.Microsecond // Autobahn's _QUEUED_WRITE_DELAY
	maxPausedChunks       = 1000                  // larger chopped sends are not paused
	maxFrame              = 256 << 20             // larger frames from the server are not buffered
)

// Connection states of the Autobahn protocol, after the opening handshake.
const (
	stateOpen = iota + 1
	stateClosing
	stateClosed
)

type timer struct {
	at   time.Time
	seq  int
	fn   func()
	dead bool
}

// session is one case on one connection: the Autobahn client protocol
// (WebSocketProtocol with FuzzingProtocol) and the case state (Case) in one.
// Everything runs on the goroutine of loop, as in Twisted's reactor; a reader
// goroutine feeds it bytes and a writer goroutine drains its writes.
type session struct {
	conn net.Conn
	w    *writer
	in   chan []byte
	rerr error // read error, set before in is closed

	// Protocol state.
	state        int
	closedByMe   bool // we sent the first close frame
	failedByMe   bool
	droppedByMe  bool
	wasClean     bool
	notClean     string
	remoteCode   int // -1: none
	remoteReason string
	violation    string // first RFC 6455 violation seen in the server's bytes
	autoFragment int
	txFrames     map[byte]int
	closeTimer   *timer
	dropTimer    *timer

	// permessage-deflate, when the server accepted one of offers.
	offers     []deflateOffer
	pmd        *deflateParams
	tx         *deflater
	rx         *inflater
	deflatedRx int // messages the server sent compressed

	// Receiving.
	buf           []byte
	inMessage     bool
	msgText       bool
	msgBinary     bool
	msgCompressed bool
	msg           []byte

	// Streaming send (beginMessage…endMessage).
	streamOp    byte
	streamKey   [4]byte
	streamPos   int
	streamLen   int
	streamFrame bool

	timers   []*timer
	seq      int
	start    time.Time
	end      time.Time
	timedOut bool
	ctxErr   error

	// Case state.
	received      []event
	matched       bool // received matched an expected outcome
	expected      []outcome
	close         closeExpect
	behavior      string
	behaviorClose string
	result        string
	resultClose   string
	info          string // facts a report adds to the detail, OK or not
	suppressClose bool
	onMessage     func(payload []byte, binary bool) // replaces recording when set
	onLost        func()                            // runs after the standard judging
}

// dialFunc opens a case's connection and completes the opening handshake:
// dial over TCP, HTTP2.dial as an HTTP/2 stream.
type dialFunc func(ctx context.Context, url string, offers []deflateOffer) (conn net.Conn, rest []byte, pmd *deflateParams, err error)

// runCase dials with dial, runs one case and judges it.
func runCase(ctx context.Context, url string, c Case, limit time.Duration, dial dialFunc) Result {
	r := Result{ID: c.ID, Description: c.Description}
	t0 := time.Now()
	hctx, cancel := context.WithTimeout(ctx, min(openHandshakeTimeout, limit))
	conn, rest, pmd, err := dial(hctx, url, c.offers)
	cancel()
	if err != nil {
		r.Behavior, r.Close = Failed, Failed
		r.Detail = "The WebSocket opening handshake was never completed: " + err.Error()
		var ne *negotiationError
		var se *statusError
		switch {
		case errors.As(err, &ne):
			r.Detail = "The server's permessage-deflate response is invalid, so the client fails the connection: " + ne.Error()
		case errors.As(err, &se) && len(c.offers) > 0:
			r.Detail += fmt.Sprintf(" (to the offer %q: a server that cannot accept an offer declines it by leaving it out of its response, RFC 7692 §5 and §7, rather than refuse the handshake)", offerHeader(c.offers))
		}
		r.Duration = time.Since(t0)
		return r
	}
	s := &session{
		conn:       conn,
		in:         make(chan []byte, 64),
		state:      stateOpen,
		remoteCode: -1,
		txFrames:   make(map[byte]int),
		behavior:   Failed,
		result:     "Actual events differ from any expected.",
	}
	s.behaviorClose = Failed
	s.resultClose = "TCP connection was dropped without close handshake"
	s.offers = c.offers
	if pmd != nil {
		s.pmd, s.tx, s.rx = pmd, newDeflater(pmd), newInflater(pmd)
	}
	s.w = newWriter(conn)
	go s.read(rest)
	s.start = time.Now()
	deadline := t0.Add(limit)
	c.open(s)
	s.loop(ctx, deadline)
	s.cleanup()
	return s.report(r, limit)
}

// read feeds the loop with what the server sends.
func (s *session) read(first []byte) {
	defer close(s.in)
	if len(first) > 0 {
		s.in <- first
	}
	b := make([]byte, 64<<10)
	for {
		n, err := s.conn.Read(b)
		if n > 0 {
			s.in <- append([]byte(nil), b[:n]...)
		}
		if err != nil {
			s.rerr = err
			return
		}
	}
}

func (s *session) loop(ctx context.Context, deadline time.Time) {
	hard := time.NewTimer(time.Until(deadline))
	defer hard.Stop()
	tick := time.NewTimer(time.Hour)
	defer tick.Stop()
	for s.state != stateClosed {
		var tc <-chan time.Time
		if at, ok := s.nextTimer(); ok {
			tick.Reset(time.Until(at))
			tc = tick.C
		}
		select {
		case b, ok := <-s.in:
			if !ok {
				s.state = stateClosed // the server dropped the TCP connection
				break
			}
			s.dataReceived(b)
		case <-tc:
			s.fireTimers()
		case <-hard.C:
			s.timedOut = true
			s.drop(true)
		case <-ctx.Done():
			s.ctxErr = ctx.Err()
			s.drop(true)
		}
	}
	s.end = time.Now()
	s.connectionLost()
}

// cleanup closes the connection and waits for both goroutines.
func (s *session) cleanup() {
	s.w.stop()
	s.conn.Close()
	for range s.in {
	}
}

// Timers (reactor.callLater).

func (s *session) after(d time.Duration, fn func()) *timer {
	s.seq++
	t := &timer{at: time.Now().Add(d), seq: s.seq, fn: fn}
	s.timers = append(s.timers, t)
	return t
}

func (s *session) nextTimer() (time.Time, bool) {
	var at time.Time
	ok := false
	for _, t := range s.timers {
		if !t.dead && (!ok || t.at.Before(at)) {
			at, ok = t.at, true
		}
	}
	return at, ok
}

func (s *session) fireTimers() {
	for s.state != stateClosed {
		var due *timer
		now := time.Now()
		for _, t := range s.timers {
			if !t.dead && !t.at.After(now) && (due == nil || t.at.Before(due.at) || t.at.Equal(due.at) && t.seq < due.seq) {
				due = t
			}
		}
		if due == nil {
			break
		}
		due.dead = true
		due.fn()
	}
	live := s.timers[:0]
	for _, t := range s.timers {
		if !t.dead {
			live = append(live, t)
		}
	}
	s.timers = live
}

// killAfter fails the connection (close 1001) after d, as Autobahn's killAfter.
func (s *session) killAfter(d time.Duration) {
	s.after(d, func() { s.failConnection(1001, "Going Away") })
}

// closeAfter sends an empty close frame after d, if still open.
func (s *session) closeAfter(d time.Duration) {
	s.after(d, func() { s.sendClose(-1, "") })
}

// continueLater runs fn after d unless the connection is gone.
func (s *session) continueLater(d time.Duration, fn func()) { s.after(d, fn) }

// Sending.

// frameSpec is a frame as the fuzzer may send it: any opcode, RSV, FIN.
type frameSpec struct {
	fin       bool
	rsv       byte
	repeat    int // payload_len: repeat the payload up to this length, when repeating
	repeating bool
	chop      int // write in chops of this many octets, pausing between them
	synced    bool
	payload   []byte
}

type fopt func(*frameSpec)

func noFin(f *frameSpec)       { f.fin = false }
func synced(f *frameSpec)      { f.synced = true }
func rsv(n byte) fopt          { return func(f *frameSpec) { f.rsv = n } }
func chop(n int) fopt          { return func(f *frameSpec) { f.chop = n } }
func repeatTo(n int) fopt      { return func(f *frameSpec) { f.repeat, f.repeating = n, true } }
func withSync(b bool) fopt     { return func(f *frameSpec) { f.synced = b } }
func finIf(fin bool) fopt      { return func(f *frameSpec) { f.fin = fin } }
func rawPayload(p []byte) fopt { return func(f *frameSpec) { f.payload = p } }

// sendFrame sends one masked frame whatever the state, like Autobahn's
// sendFrame.
func (s *session) sendFrame(op byte, payload string, opts ...fopt) {
	f := frameSpec{fin: true, payload: []byte(payload)}
	for _, o := range opts {
		o(&f)
	}
	p := f.payload
	if f.repeating && len(p) > 0 {
		p = repeat(p, f.repeat)
	}
	s.txFrames[op]++
	s.sendData(appendFrame(nil, f.fin, f.rsv, op, p), f.synced, f.chop)
}

// repeat returns p repeated up to n bytes.
func repeat(p []byte, n int) []byte {
	b := bytes.Repeat(p, n/len(p)+1)
	return b[:n]
}

// sendData queues bytes for the writer: in chops of chop octets when chop > 0,
// with a short pause after each chop and after a synced write.
func (s *session) sendData(b []byte, synced bool, chop int) {
	if chop <= 0 {
		s.w.push([]chunk{{b: b, sync: synced, pause: synced}})
		return
	}
	n := (len(b) + chop - 1) / chop
	cs := make([]chunk, 0, n)
	for i := 0; i < len(b); i += chop {
		cs = append(cs, chunk{b: b[i:min(i+chop, len(b))], sync: true, pause: n <= maxPausedChunks})
	}
	s.w.push(cs)
}

// sendMessage sends a data message, fragmented into frames of fragSize (or
// the auto-fragment size) as Autobahn does: a payload that is an exact
// multiple of the size ends with an empty final frame.
func (s *session) sendMessage(payload string, binary bool, fragSize int) {
	if s.state != stateOpen {
		return
	}
	op := byte(1)
	if binary {
		op = 2
	}
	if fragSize <= 0 {
		fragSize = s.autoFragment
	}
	if fragSize <= 0 || len(payload) <= fragSize {
		s.sendFrame(op, payload)
		return
	}
	for i, first := 0, true; ; i, first = i+fragSize, false {
		j, done := i+fragSize, false
		if j > len(payload) {
			j, done = len(payload), true
		}
		fop := byte(0)
		if first {
			fop = op
		}
		s.sendFrame(fop, payload[i:j], finIf(done))
		if done {
			return
		}
	}
}

// sendDeflated sends a data message compressed with permessage-deflate, as
// Autobahn's sendMessage does once it is negotiated: the compressed payload
// is split into frames of fragSize (none when 0), an exact multiple of the
// size ending with an empty final frame, and RSV1 marks the first frame only.
// It returns the size of the compressed payload.
func (s *session) sendDeflated(payload []byte, binary bool, fragSize int) int {
	if s.state != stateOpen {
		return 0
	}
	p := s.tx.compress(payload)
	op := opOf(binary)
	if fragSize <= 0 || len(p) <= fragSize {
		s.sendFrame(op, "", rawPayload(p), rsv(4))
		return len(p)
	}
	for i, first := 0, true; ; i, first = i+fragSize, false {
		j, done := i+fragSize, false
		if j > len(p) {
			j, done = len(p), true
		}
		fop, frsv := byte(0), byte(0)
		if first {
			fop, frsv = op, 4
		}
		s.sendFrame(fop, "", rawPayload(p[i:j]), finIf(done), rsv(frsv))
		if done {
			return len(p)
		}
	}
}

// beginMessage, beginMessageFrame, sendMessageFrameData and endMessage are
// Autobahn's streaming API: one frame's header first, its payload in pieces.
func (s *session) beginMessage(binary bool) {
	if s.state != stateOpen {
		return
	}
	s.streamOp = 1
	if binary {
		s.streamOp = 2
	}
}

func (s *session) beginMessageFrame(length int) {
	if s.state != stateOpen {
		return
	}
	key := maskKey()
	h := appendHeader(nil, false, 0, s.streamOp, length, key)
	s.streamOp = 0
	s.streamKey, s.streamPos, s.streamLen, s.streamFrame = key, 0, length, true
	s.txFrames[h[0]&0x0f]++
	s.sendData(h, false, 0)
}

func (s *session) sendMessageFrameData(p string) {
	if s.state != stateOpen || !s.streamFrame {
		return
	}
	b := []byte(p[:min(len(p), s.streamLen-s.streamPos)])
	s.streamPos = maskBytes(b, s.streamKey, s.streamPos)
	if s.streamPos >= s.streamLen {
		s.streamFrame = false
	}
	s.sendData(b, false, 0)
}

func (s *session) endMessage() {
	if s.state != stateOpen {
		return
	}
	s.sendFrame(0, "")
}

// sendCloseFrame sends a close frame with code (none when < 0) and reason
// (none when nil), valid or not, if the connection is open.
func (s *session) sendCloseFrame(code int, reason []byte, reply bool) {
	if s.state != stateOpen {
		return
	}
	var p []byte
	if code >= 0 {
		p = binary.BigEndian.AppendUint16(p, uint16(code))
	}
	p = append(p, reason...)
	s.sendFrame(8, "", rawPayload(p))
	s.state = stateClosing
	s.closedByMe = !reply
	if s.closedByMe {
		s.closeTimer = s.after(closeHandshakeTimeout, func() {
			s.wasClean = false
			s.notClean = "peer did not respond (in time) in closing handshake"
			s.drop(true)
		})
	}
}

// sendClose is Autobahn's sendClose: a close frame with an optional code and
// a reason cut to 123 bytes.
func (s *session) sendClose(code int, reason string) {
	var r []byte
	if reason != "" {
		r = []byte(reason[:min(len(reason), 123)])
	}
	s.sendCloseFrame(code, r, false)
}

// failConnection fails the connection the way Autobahn does with failByDrop
// off: a close frame if none was sent yet, else drop TCP.
func (s *session) failConnection(code int, reason string) {
	if s.state == stateClosed {
		return
	}
	s.failedByMe = true
	if s.state != stateClosing {
		s.sendClose(code, reason)
		return
	}
	s.drop(false)
}

func (s *session) protocolViolation(reason string) {
	if s.violation == "" {
		s.violation = reason
	}
	s.failConnection(1002, reason)
}

func (s *session) invalidPayload(reason string) {
	if s.violation == "" {
		s.violation = reason
	}
	s.failConnection(1007, reason)
}

// drop closes the TCP connection from our side.
func (s *session) drop(abort bool) {
	if s.state == stateClosed {
		return
	}
	s.droppedByMe = true
	s.state = stateClosed
	if abort {
		s.w.abort()
		s.conn.Close()
	} else {
		s.w.closeAfterFlush()
	}
}

// Receiving.

func (s *session) dataReceived(b []byte) {
	if s.state != stateOpen && s.state != stateClosing {
		return
	}
	if len(s.buf) == 0 {
		s.buf = b // the reader hands over a fresh slice
	} else {
		s.buf = append(s.buf, b...)
	}
	for s.state != stateClosed && s.processFrame() {
	}
	if len(s.buf) == 0 {
		s.buf = nil
	}
}

// processFrame handles the frame at the start of s.buf, if complete, with
// the checks of Autobahn's processData. After a violation it goes on, as
// Autobahn does when it fails the connection with a close frame.
func (s *session) processFrame() bool {
	b := s.buf
	if len(b) < 2 {
		return false
	}
	fin := b[0]&0x80 != 0
	rsvBits := b[0] >> 4 & 7
	op := b[0] & 0x0f
	masked := b[1]&0x80 != 0
	l7 := int(b[1] & 0x7f)
	hl := 2
	switch l7 {
	case 126:
		hl += 2
	case 127:
		hl += 8
	}
	if masked {
		hl += 4
	}
	if len(b) < hl {
		return false
	}
	var n uint64
	switch l7 {
	case 126:
		n = uint64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		n = binary.BigEndian.Uint64(b[2:])
	default:
		n = uint64(l7)
	}
	if n > maxFrame {
		if s.violation == "" {
			s.violation = fmt.Sprintf("frame header announces %d payload bytes", n)
		}
		s.failedByMe = true
		s.drop(true)
		return false
	}
	if uint64(len(b)-hl) < n {
		return false
	}
	p := b[hl : hl+int(n)]
	if masked {
		var key [4]byte
		copy(key[:], b[hl-4:hl])
		maskBytes(p, key, 0)
	}
	s.buf = b[hl+int(n):]

	// permessage-deflate gives RSV1 a meaning on the first frame of a data
	// message (RFC 7692 §6): it marks the message compressed.
	deflated := false
	switch {
	case rsvBits == 0:
	case s.pmd == nil:
		s.protocolViolation(fmt.Sprintf("RSV = %d and no extension negotiated", rsvBits))
	case rsvBits != 4:
		s.protocolViolation(fmt.Sprintf("RSV = %d; permessage-deflate defines RSV1 alone", rsvBits))
	case op >= 8:
		s.protocolViolation("RSV1 set on a control frame (RFC 7692 §6)")
	case op == 0:
		s.protocolViolation("RSV1 set on a continuation frame (RFC 7692 §6)")
	default:
		deflated = true
	}
	if masked {
		s.protocolViolation("masked server-to-client frame")
	}
	if l7 == 126 && n < 126 || l7 == 127 && n < 65536 {
		s.protocolViolation("invalid data frame length (not using minimal length encoding)")
	}
	if op > 7 {
		if !fin {
			s.protocolViolation("fragmented control frame")
		}
		if n > 125 {
			s.protocolViolation("control frame with payload length > 125 octets")
		}
		switch op {
		case 8:
			if n == 1 {
				s.protocolViolation("received close control frame with payload len 1")
			}
			s.onCloseFrame(p)
		case 9:
			if s.state == stateOpen {
				s.sendFrame(10, "", rawPayload(bytes.Clone(p)))
			}
		case 10:
			s.record(event{kind: "pong", payload: bytes.Clone(p)})
		default:
			s.protocolViolation(fmt.Sprintf("control frame using reserved opcode %d", op))
		}
		return true
	}
	switch {
	case op > 2:
		s.protocolViolation(fmt.Sprintf("data frame using reserved opcode %d", op))
	case !s.inMessage && op == 0:
		s.protocolViolation("received continuation data frame outside fragmented message")
	case s.inMessage && op != 0:
		s.protocolViolation("received non-continuation data frame while inside fragmented message")
	}
	if !s.inMessage {
		s.inMessage = true
		s.msgText, s.msgBinary = op == 1, op == 2
		s.msgCompressed = deflated
		s.msg = s.msg[:0]
	}
	if !s.failedByMe {
		s.msg = append(s.msg, p...)
	}
	if fin {
		s.inMessage = false
		msg := s.msg
		if s.msgCompressed && !s.failedByMe {
			s.deflatedRx++
			out, err := s.rx.inflate(msg, maxFrame)
			if err != nil {
				s.protocolViolation(fmt.Sprintf("compressed message %d cannot be inflated: %v", s.deflatedRx, err))
			}
			msg = out
		}
		if s.msgText && !s.failedByMe && !utf8.Valid(msg) {
			s.invalidPayload("text message payload is not valid UTF-8")
		}
		if !s.failedByMe {
			m := bytes.Clone(msg)
			if s.onMessage != nil {
				s.onMessage(m, s.msgBinary)
			} else {
				s.record(event{kind: "message", payload: m, binary: s.msgBinary})
			}
		}
	}
	return true
}

// validCloseCode says whether a close frame may carry code (RFC 6455 §7.4
// and the IANA registry).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// onCloseFrame is Autobahn's onCloseFrame for a client.
func (s *session) onCloseFrame(p []byte) {
	code := -1
	var reason []byte
	if len(p) >= 2 {
		code = int(binary.BigEndian.Uint16(p))
		if len(p) > 2 {
			reason = p[2:]
		}
	}
	s.remoteCode = code
	if code >= 0 && !validCloseCode(code) {
		s.protocolViolation(fmt.Sprintf("invalid close code %d", code))
	}
	if reason != nil {
		if utf8.Valid(reason) {
			s.remoteReason = string(reason)
		} else {
			s.invalidPayload("invalid close reason (non-UTF8 payload)")
		}
	}
	switch s.state {
	case stateClosing:
		// The reply to our close (or a second close): the server must now drop TCP.
		if s.closeTimer != nil {
			s.closeTimer.dead = true
		}
		s.wasClean = true
		s.watchDrop("server did not drop TCP connection (in time)", true)
	case stateOpen:
		// The server starts the closing handshake: answer with 1000.
		s.wasClean = true
		s.sendCloseFrame(1000, nil, true)
		// Autobahn waits for its killAfter here; a case without one would hang.
		s.watchDrop("server did not drop TCP connection (in time) after the closing handshake it started", false)
	}
}

// watchDrop drops the connection when the server has not closed it within
// serverDropTimeout; unclean says whether that spoils the close.
func (s *session) watchDrop(why string, unclean bool) {
	if s.dropTimer != nil {
		return
	}
	s.dropTimer = s.after(serverDropTimeout, func() {
		if unclean {
			s.wasClean = false
		}
		s.notClean = why
		s.drop(true)
	})
}
