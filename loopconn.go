package wskit

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/bufpool"
	"github.com/wskit/wskit/internal/tlsrec"
	"github.com/wskit/wskit/internal/wsconn"
	"github.com/wskit/wskit/poller"
)

// loopConn is an event session on the poll engine: the loop feeds its
// protocol, and its callbacks run on the loop (or on a worker, in order).
// It is one allocation holding the protocol state and the Session, and it
// holds no buffer while idle.
type loopConn struct {
	s     Session
	proto codec.Protocol // guarded by c's lock
	pe    *poller.Conn
	rt    *route
	head  string // the request head (see compactHead), parsed again by Session.Request
	// extra is what the head does not tell, when there is any: the
	// chain's context alone (a context.Context, see keptContext), or a
	// *requestExtra for more (path values, the TLS layer).
	extra any
}

// requestExtra is what Session.Request gives besides the head: what the
// handler chain added, and the TLS connection's record layer, which most
// connections do not have either. When the chain added to the request's
// context, it is that context without its cancellation (as
// context.WithoutCancel, in the same allocation).
type requestExtra struct {
	ctx   context.Context // nil: the engine's request context
	paths *string         // path values (see packPaths), if any
	tls   *tlsLayer       // the record layer, over TLS
}

// tls returns lc's record layer, or nil when lc is not over TLS.
func (lc *loopConn) tls() *tlsLayer {
	if x, ok := lc.extra.(*requestExtra); ok {
		return x.tls
	}
	return nil
}

func (x *requestExtra) Deadline() (time.Time, bool) { return time.Time{}, false }
func (x *requestExtra) Done() <-chan struct{}       { return nil }
func (x *requestExtra) Err() error                  { return nil }
func (x *requestExtra) Value(key any) any           { return x.ctx.Value(key) }

// loopOpen is what an Events session on the loop opens with.
type loopOpen struct {
	head          string
	key, protocol string
	exts          []codec.Negotiated
	rest          []byte          // read past the head
	fields        *[]byte         // pooled: fields for the 101 from the handler chain (see appendFields)
	ctx           context.Context // the chain's, if it went through one
	paths         string          // see packPaths
	vals          *valueSet
	tls           *tlsLayer // over TLS: the record layer, already the connection's Sealer
}

// engine returns the poll engine serving lc.
func (lc *loopConn) engine() *pollEngine { return lc.pe.Handler().(*pollEngine) }

// jobs returns lc's queue for the workers, when Options.Workers is set: it
// is then the connection's context. Called on the loop.
func (lc *loopConn) jobs() *jobQueue {
	q, _ := lc.pe.Context.(*jobQueue)
	return q
}

func newLoopConn(e *pollEngine, c *poller.Conn, rt *route, op loopOpen) {
	lc := &loopConn{pe: c, rt: rt, head: op.head}
	if op.tls != nil {
		op.tls.lc = lc
	}
	switch {
	case op.paths != "" || op.tls != nil:
		x := &requestExtra{ctx: op.ctx, tls: op.tls}
		if paths := op.paths; paths != "" {
			x.paths = &paths
		}
		lc.extra = x
	case op.ctx != nil:
		lc.extra = op.ctx // no allocation: a context is a pointer already
	}
	sh := e.shard(c)
	lc.proto.InitShared(&e.codec[c.Loop()], op.exts)
	lc.s = Session{lc: lc, opts: &e.srv.opts, protocol: op.protocol, engine: EnginePoll, vals: op.vals}
	c.Context = lc
	// The 101 goes out at the end of this loop iteration, before any frame.
	// It is made here and queued in a buffer of its size, not in a chunk
	// for more output: a burst of handshakes holds less meanwhile.
	var room [512]byte
	b := appendAcceptStart(room[:0], op.key, op.protocol, op.exts)
	if op.fields != nil {
		b = append(b, *op.fields...)
		bufpool.Put(op.fields)
	}
	b = append(b, "\r\n\r\n"...)
	c.Lock()
	c.Commit(b)
	c.Unlock()
	if !e.open() {
		lc.close(CloseGoingAway, "server shutting down")
		return
	}
	lc.s.counted = true
	sh.opened(true, routeEvents)
	if e.workers != nil {
		c.Context = &jobQueue{lc: lc}
	}
	lc.dispatch(job{kind: jobOpen})
	if len(op.rest) > 0 {
		lc.onData(op.rest)
	}
	lc.updateTimer()
}

// onData feeds bytes read by the loop to the protocol and delivers what
// they complete. Meanwhile the protocol tallies frames, messages and bytes
// in the loop's shard with plain adds (sends from other goroutines
// included: they hold the connection's lock, as the loop does), and the
// tally goes to the counters at the end: atomic adds per batch of input,
// not per message.
func (lc *loopConn) onData(in []byte) {
	sh := lc.s.shard()
	lc.receive(in, &sh.tally)
	c := lc.pe
	c.Lock()
	lc.proto.SetTally(nil)
	c.Unlock()
	sh.tally.AddTo(&sh.proto)
}

// receive is onData with the protocol tallying in t.
func (lc *loopConn) receive(in []byte, t *codec.Tally) {
	c := lc.pe
	state := codec.StateOpen
	for first := true; len(in) > 0 && !lc.s.failed; first = false {
		c.Lock()
		if first {
			lc.proto.SetTally(t)
		}
		ev, n, ok, err := lc.proto.Receive(in)
		drop := lc.s.readClosed
		in = in[n:]
		if k := lc.proto.Replies(); k > 0 {
			c.Commit(lc.proto.AppendReplies(c.Buffer(k)))
		}
		state = lc.proto.State()
		c.Unlock()
		if err != nil {
			lc.fail(err)
			return
		}
		if ok && ev.Kind != codec.EventMessage && ev.Kind != codec.EventClose {
			lc.control(ev)
		}
		if ok && ev.Kind == codec.EventMessage && !drop {
			lc.dispatch(job{kind: jobMessage, m: Message{Type: ev.Op, Payload: ev.Payload}})
			if c.ReadPaused() && len(in) > 0 {
				// The workers' queue is full: the rest waits, and the
				// queue holds at most one message past IncomingQueue.
				c.Unread(in)
				break
			}
		}
		if state == codec.StateClosed {
			if lc.tls() != nil {
				// The peer's close_notify may follow its close frame:
				// closing with it unread would reset the connection.
				c.CloseWithError(nil, lc.linger())
			} else {
				c.Close()
			}
			return
		}
	}
	// The last payload has been delivered: an idle session holds no buffer.
	lc.proto.ReturnLent()
	// Only keepalive, a close in progress or a running timer can have
	// moved the deadline; the common case takes no lock for it.
	if lc.s.opts.PingPeriod > 0 || state != codec.StateOpen {
		lc.updateTimer()
	}
}

// onRecords takes bytes read over TLS: the record layer decrypts them in
// place, and the plaintext goes on as onData's input.
func (lc *loopConn) onRecords(in []byte) {
	if lc.s.failed {
		return // the connection is closing: what follows is dropped
	}
	c := lc.pe
	tl := lc.tls()
	rec := &tl.rec
	c.Lock()
	tl.activity()
	c.Unlock()
	for len(in) > 0 && !lc.s.failed {
		c.Lock() // senders seal under it: the record layer is one state
		ev, n, ok, err := rec.Receive(in)
		owed := rec.Replies() > 0
		if owed {
			c.SealOwed() // a KeyUpdate the peer asked for, or the alert of a fault
		}
		c.Unlock()
		in = in[n:]
		if err != nil {
			lc.fail(err)
			return
		}
		switch {
		case !ok:
		case ev.Kind == tlsrec.EventData:
			lc.onData(ev.Data)
		case ev.Kind == tlsrec.EventClose:
			lc.closeNotified()
		}
	}
	c.Lock()
	rec.ReturnLent()
	c.Unlock()
}

// closeNotified ends the connection after the peer's close_notify, which
// says that it sends nothing more: as crypto/tls reports it as the end of
// the stream, and net/http's sessions end then, so does this one. Unless
// the close handshake was done, it ends as at a TCP EOF, with 1006, and
// its error says why. The output queued goes out, then a close_notify of
// our own (RFC 8446 §6.1), as crypto/tls's Close sends.
func (lc *loopConn) closeNotified() {
	c := lc.pe
	c.Lock()
	done := lc.proto.State() == codec.StateClosed
	c.Unlock()
	if !done {
		lc.setCause(errCloseNotify)
	}
	c.CloseWithError(errCloseNotify, 0)
}

// errCloseNotify ends a session whose peer ended its TLS stream before
// the close handshake. It matches io.EOF, which the same end gives over
// crypto/tls.
var errCloseNotify error = closeNotifyError{}

type closeNotifyError struct{}

func (closeNotifyError) Error() string {
	return "wskit: the peer ended its TLS stream (close_notify) without a close frame"
}

func (closeNotifyError) Unwrap() error { return io.EOF }

// fail ends the connection after a violation or a timeout. The close frame
// the protocol queued (or, over TLS, the alert the record layer sealed)
// goes out first; then, as on net/http, the writing side is shut down and
// input drained for a while, so that the peer reads it rather than a reset.
func (lc *loopConn) fail(err error) {
	lc.s.failed = true
	lc.setCause(err)
	var alert *tlsrec.AlertError
	switch _, _, ok := codec.CloseFor(err); {
	case errors.As(err, &alert):
		// A fault in the records: RFC 8446 §6.2 has the alert sent (the
		// caller sealed it), and no close frame can follow a fatal alert.
		// After the peer's own fatal alert, nothing is owed.
	case !ok:
		lc.pe.Abort(err) // the peer did not answer our close: nothing to wait for
		return
	case errors.Is(err, codec.ErrPongTimeout):
		lc.pe.CloseWithError(err, 0) // the 1011 goes out, or the write timeout ends it
		return
	}
	lc.pe.CloseWithError(err, lc.linger())
}

// linger is how long a closing connection reads and drops input, waiting
// for the peer's end, before its socket is closed.
func (lc *loopConn) linger() time.Duration {
	linger := 2 * time.Second
	if t := lc.s.opts.Timeout; t > 0 && t < linger {
		linger = t
	}
	return linger
}

// onTimer runs the protocol's timers.
func (lc *loopConn) onTimer() {
	if lc.s.failed {
		return
	}
	c := lc.pe
	c.Lock()
	now := time.Now()
	if tl := lc.tls(); tl != nil {
		tl.tick(now.UnixNano())
	}
	out, err := lc.proto.Tick(now, c.Buffer(32))
	c.Commit(out)
	if k := lc.proto.Replies(); k > 0 {
		c.Commit(lc.proto.AppendReplies(c.Buffer(k)))
	}
	if err == nil {
		lc.updateTimerLocked()
	}
	c.Unlock()
	if err != nil {
		lc.fail(err)
	}
}

// updateTimer sets the wheel to the protocol's next deadline.
func (lc *loopConn) updateTimer() {
	lc.pe.Lock()
	lc.updateTimerLocked()
	lc.pe.Unlock()
}

// updateTimerLocked is updateTimer with c locked.
func (lc *loopConn) updateTimerLocked() {
	c := lc.pe
	d, ok := lc.proto.Deadline()
	var at int64
	switch {
	case !ok:
	case d.IsZero():
		at = time.Now().UnixNano() // a timer needs its start
	default:
		at = d.UnixNano()
	}
	if t := lc.tls(); t != nil && !t.shed() && (at == 0 || t.checkAt < at) {
		at = t.checkAt
	}
	if at == 0 {
		c.SetTimer(time.Time{})
	} else {
		c.SetTimer(time.Unix(0, at))
	}
}

// onClose ends the session once the loop has closed the connection.
func (lc *loopConn) onClose(err error) {
	// A Close from another goroutine may be moving the protocol on.
	lc.pe.Lock()
	code, reason, ok := lc.proto.CloseReason()
	perr := lc.proto.Err()
	handshakeDone := lc.proto.State() == codec.StateClosed && perr == nil
	lc.pe.Unlock()
	lc.s.mu.Lock()
	cause := lc.s.cause()
	lc.s.mu.Unlock()
	switch {
	case cause != nil:
		err = cause
	case handshakeDone:
		err = nil // the close handshake completed
	case perr != nil:
		err = perr
	case errors.Is(err, poller.ErrClosed):
		err = io.ErrUnexpectedEOF // the engine stopped
	case errors.Is(err, poller.ErrWriteTimeout):
		err = ErrWriteTimeout
	}
	code, reason = endReason(code, reason, ok, err)
	logIfPanic(&lc.s, err, "the session was closed with 1011")
	lc.s.leaveHubs()
	lc.pe.Lock() // a sender may be in the Protocol's sending side
	rerr := lc.proto.Release()
	if tl := lc.tls(); tl != nil {
		tl.rec.Release()
	}
	lc.pe.Unlock()
	logIfPanic(&lc.s, rerr, "ignored at the end of the session")
	s := &lc.s
	s.mu.Lock()
	s.ended = true
	l := s.life()
	l.endReason = CloseReason{Code: code, Reason: reason}
	l.endErr = err
	if s.done != nil {
		close(s.done)
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.mu.Unlock()
	if s.counted {
		lc.engine().sessions.Add(-1)
		s.shard().closed(true, routeEvents)
	}
	lc.dispatch(job{kind: jobClose})
}

// dispatch runs a callback on the loop, or queues it for a worker.
func (lc *loopConn) dispatch(j job) {
	if q := lc.jobs(); q != nil {
		q.push(j)
		return
	}
	lc.run(j)
}

// run calls the callback for j. A panic in OnOpen or OnMessage closes the
// session with 1011; OnError and OnClose run after any panic.
func (lc *loopConn) run(j job) {
	ev := &lc.rt.events
	s := &lc.s
	if j.kind == jobClose {
		defer lc.recoverLate()
		if err := s.cause(); err != nil && ev.OnError != nil {
			ev.OnError(s, err)
		}
		if ev.OnClose != nil {
			ev.OnClose(s, s.finalReason())
		}
		return
	}
	defer lc.recover()
	switch j.kind {
	case jobOpen:
		if ev.OnOpen != nil {
			ev.OnOpen(s)
		}
	case jobMessage:
		if lc.s.opts.Workers > 0 && lc.panicked() {
			return // queued before a callback panicked; the loop drops them so
		}
		switch j.m.Type {
		case frame.OpPing, frame.OpPong:
			lc.runControl(j.m)
		default:
			if ev.OnMessage != nil {
				ev.OnMessage(s, j.m)
			}
		}
	}
}

func (lc *loopConn) recover() {
	if v := recover(); v != nil {
		logPanic(lc.s.opts, lc.s.Request(), v)
		lc.setCause(ErrHandlerPanic)
		lc.WriteClose(CloseInternalError, "internal error")
	}
}

func (lc *loopConn) recoverLate() {
	if v := recover(); v != nil {
		logPanic(lc.s.opts, lc.s.Request(), v)
	}
}

// panicked reports whether a callback panicked.
func (lc *loopConn) panicked() bool {
	lc.s.mu.Lock()
	defer lc.s.mu.Unlock()
	return lc.s.cause() == ErrHandlerPanic
}

// setCause makes err the session's error, unless one is set.
func (lc *loopConn) setCause(err error) {
	lc.s.mu.Lock()
	lc.s.recordCause(err)
	lc.s.mu.Unlock()
}

// request parses the head again for Session.Request, with what the chain
// added and the TLS state.
func (lc *loopConn) request() *http.Request {
	r, err := parseHead(expandHead(nil, lc.head), lc.pe.RemoteAddr())
	if err != nil {
		return nil
	}
	r = r.WithContext(lc.requestContext())
	if tl := lc.tls(); tl != nil {
		r.TLS = tl.state.connectionState()
	}
	if x, ok := lc.extra.(*requestExtra); ok && x.paths != nil {
		for name, value := range unpackPaths(*x.paths) {
			r.SetPathValue(name, value)
		}
	}
	return r
}

// requestContext returns the context of the session's request: the
// chain's, or the engine's own.
func (lc *loopConn) requestContext() context.Context {
	switch x := lc.extra.(type) {
	case *requestExtra: // first: it is a context.Context too
		if x.ctx != nil {
			return x
		}
	case context.Context:
		return context.WithoutCancel(x)
	}
	return lc.engine().requestContext(lc.pe)
}

// close is Session.Close: it sends the close frame and returns.
func (lc *loopConn) close(code CloseCode, reason string) error {
	var buf [frame.MaxControlPayload]byte
	if _, err := frame.AppendClose(buf[:0], code, reason); err != nil {
		return err
	}
	lc.WriteClose(code, reason)
	return nil
}

// admit applies the queue bound to a send of n bytes. c is locked. The
// loop cannot wait for room, so QueueBlock refuses the send instead.
func (lc *loopConn) admit(n int) error {
	c := lc.pe
	q := c.Queued()
	if q == 0 || q+n <= lc.s.opts.MaxQueue {
		return nil
	}
	lc.s.shard().queue.QueueFull.Add(1)
	switch lc.s.opts.QueuePolicy {
	case QueueCloseTryAgain:
		lc.closeLocked(CloseTryAgainLater, "outgoing queue full")
	case QueueClosePolicy:
		lc.closeLocked(ClosePolicyViolation, "outgoing queue full")
	}
	return ErrQueueFull
}

func (lc *loopConn) closeLocked(code CloseCode, reason string) {
	c := lc.pe
	b, err := lc.proto.AppendClose(c.Buffer(4+len(reason)+frame.MaxHeaderSize), code, reason)
	c.Commit(b)
	if err == nil {
		lc.updateTimerLocked()
	}
}

func sendErr(err error) error {
	if errors.Is(err, codec.ErrCloseSent) || errors.Is(err, poller.ErrClosed) || errors.Is(err, codec.ErrReleased) {
		return ErrClosed
	}
	return err
}

// Extensions returns the negotiated extensions.
func (lc *loopConn) Extensions() []codec.Negotiated { return lc.proto.Extensions() }

// Lock locks the output.
func (lc *loopConn) Lock() { lc.pe.Lock() }

// TryLock locks the output if it is free.
func (lc *loopConn) TryLock() bool { return lc.pe.TryLock() }

// Unlock unlocks the output.
func (lc *loopConn) Unlock() { lc.pe.Unlock() }

// Refill makes the loop call fillHubs once the output has drained.
func (lc *loopConn) Refill() { lc.pe.Refill() }

// Queued returns the output bytes waiting; the output is locked.
func (lc *loopConn) Queued() int { return lc.pe.Queued() }

// QueueShared queues bytes shared with other connections, which keep size
// bytes alive.
func (lc *loopConn) QueueShared(b *[]byte, r wsconn.Releaser, size int) error {
	return sendErr(lc.pe.CommitShared(b, r, size))
}

// Holding implements sessionConn: the loop streams no message.
func (lc *loopConn) Holding() bool { return false }

// WaitHolding implements sessionConn.
func (lc *loopConn) WaitHolding(<-chan struct{}) error { return nil }

// SharedSize returns the memory that shared output queued on the connection
// keeps alive; the output is locked.
func (lc *loopConn) SharedSize() int { return lc.pe.SharedSize() }

// AppendMessage queues a data message with the output locked, without the
// queue bound: for fillHubs.
func (lc *loopConn) AppendMessage(op frame.Opcode, p []byte) error {
	c := lc.pe
	b, err := lc.proto.AppendMessage(c.Buffer(lc.proto.MessageSize(len(p))), op, 0, p)
	if err != nil {
		c.Commit(b[:0])
		lc.encodeFailed(err)
		return sendErr(err)
	}
	return sendErr(c.Commit(b))
}

// Protocol returns the protocol state; the output is locked.
func (lc *loopConn) Protocol() *codec.Protocol { return &lc.proto }

// fillFirst hands over what hubs hold for the session before a message of
// its own, so that output keeps the order in which it was given. The output
// is locked.
func (lc *loopConn) fillFirst() {
	if lc.s.hubSubs != nil {
		lc.s.fillHubs()
	}
}

// WriteMessage sends a data message.
func (lc *loopConn) WriteMessage(op frame.Opcode, rsv byte, p []byte) error {
	c := lc.pe
	c.Lock()
	defer c.Unlock()
	size := lc.proto.MessageSize(len(p))
	if err := lc.admit(size); err != nil {
		return err
	}
	lc.fillFirst()
	if len(p) >= lendMin && c.Lendable(p) {
		// An echo of a payload the loop just read: written from the read
		// buffer when the callback returns, not copied into the output.
		var h [frame.MaxHeaderSize]byte
		if head, ok := lc.proto.AppendMessageHead(h[:0], op, rsv, len(p)); ok {
			c.CommitInput(head, p)
			return nil
		}
	}
	b, err := lc.proto.AppendMessage(c.Buffer(size), op, rsv, p)
	if err != nil {
		c.Commit(b[:0])
		lc.encodeFailed(err)
		return sendErr(err)
	}
	return sendErr(c.Commit(b))
}

// lendMin is the least payload sent from the loop's read buffer rather than
// copied: below it, a copy costs less than the iovec and its bookkeeping.
const lendMin = 2048

// encodeFailed closes the session with 1011 when an extension panicked
// while encoding a message. c is locked.
func (lc *loopConn) encodeFailed(err error) {
	var pan *codec.PanicError
	if errors.As(err, &pan) {
		lc.setCause(err)
		lc.closeLocked(CloseInternalError, "internal error")
	}
}

// WriteFrame sends one frame as given.
func (lc *loopConn) WriteFrame(h frame.Header, p []byte) error {
	c := lc.pe
	c.Lock()
	defer c.Unlock()
	size := len(p) + frame.MaxHeaderSize
	if err := lc.admit(size); err != nil {
		return err
	}
	if h.Op.IsData() || h.Op == frame.OpClose {
		lc.fillFirst()
	}
	b, err := lc.proto.AppendFrame(c.Buffer(size), h, p)
	if err != nil {
		c.Commit(b[:0])
		return sendErr(err)
	}
	return sendErr(c.Commit(b))
}

// WritePing sends a ping.
func (lc *loopConn) WritePing(p []byte) error {
	c := lc.pe
	c.Lock()
	defer c.Unlock()
	b, err := lc.proto.AppendPing(c.Buffer(len(p)+frame.MaxHeaderSize), p)
	if err != nil {
		c.Commit(b[:0])
		return err
	}
	return sendErr(c.Commit(b))
}

// WriteClose sends a close frame and starts the close timer.
func (lc *loopConn) WriteClose(code frame.CloseCode, reason string) error {
	c := lc.pe
	c.Lock()
	lc.fillFirst()
	b, err := lc.proto.AppendClose(c.Buffer(len(reason)+2+frame.MaxHeaderSize), code, reason)
	if err == nil {
		err = c.Commit(b)
	} else {
		c.Commit(b[:0])
	}
	lc.updateTimerLocked()
	c.Unlock()
	return sendErr(err)
}

// Abort closes the connection at once.
func (lc *loopConn) Abort() error {
	lc.pe.Abort(wsconn.ErrClosed)
	return nil
}

func (lc *loopConn) RemoteAddr() net.Addr { return lc.pe.RemoteAddr() }
func (lc *loopConn) LocalAddr() net.Addr  { return lc.pe.LocalAddr() }
