package wskit

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net"
	"net/http"
	"sync"
	"time"
	"unsafe"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/bufpool"
	"github.com/wskit/wskit/internal/wsconn"
)

// MessageType is the opcode of a data message: Text or Binary.
type MessageType = frame.Opcode

// Message types.
const (
	Text   MessageType = frame.OpText
	Binary MessageType = frame.OpBinary
)

// Message is a whole data message. Its Payload is borrowed: it stays valid
// until the next Receive (or the next step of Messages) and must not be kept
// longer; Clone and Text copy it.
type Message struct {
	Type    MessageType // Text or Binary
	Payload []byte      // borrowed, see above
}

// Text returns the payload as a string (a copy).
func (m Message) Text() string { return string(m.Payload) }

// Clone returns the message with a copy of its payload, safe to keep.
func (m Message) Clone() Message {
	m.Payload = append([]byte(nil), m.Payload...)
	return m
}

// Errors of a Session.
var (
	// ErrClosed is matched by the errors of a session that is closing or
	// has ended: a send after our close frame returns it, and once the
	// session has ended Receive and sends return a *CloseError, which
	// matches it with errors.Is.
	ErrClosed = wsconn.ErrClosed
	// ErrQueueFull is returned by a send refused by a closing queue policy.
	ErrQueueFull = wsconn.ErrQueueFull
	// ErrQueueTimeout is returned by a send that waited Timeout for room.
	ErrQueueTimeout = wsconn.ErrQueueTimeout
	// ErrWriteTimeout ends a session whose write did not complete in Timeout.
	ErrWriteTimeout = wsconn.ErrWriteTimeout
	// ErrCloseTimeout ends a session whose peer did not answer our close.
	ErrCloseTimeout = codec.ErrCloseTimeout
	// ErrPongTimeout ends a session whose peer did not answer a keepalive ping.
	ErrPongTimeout = codec.ErrPongTimeout
	// ErrHandlerPanic ends a session whose handler panicked (close 1011).
	ErrHandlerPanic = errors.New("wskit: handler panicked")
)

// Session is an open WebSocket connection with Ktor's default behaviour:
// messages arrive defragmented; pings are answered, keepalive pings are sent
// and timed, and the close handshake is carried out for you.
//
// Messages and Receive(ctx) with a context that cannot be cancelled read on
// the caller's goroutine, and hand the message over without a copy. While
// the handler holds a message (until the next Receive), nothing is read for
// a moment (holdGrace), so a close or a violation right after a request is
// answered after the request's reply. If the handler takes longer, or is not
// receiving at all, the session's own goroutine reads: it answers pings,
// sees the peer's close or the connection end, and copies messages into a
// queue of Options.IncomingQueue bytes; when that is full, reading pauses,
// which pushes back on the peer.
//
// Sends are safe from any goroutine; while a Writer streams a message, the
// others wait for it. Receive, Reader and Messages are for one goroutine:
// each call releases the message the previous one returned, or drops what
// is left of it.
type Session struct {
	lc       *loopConn // poll engine event sessions
	opts     *Options
	req      *http.Request
	protocol string

	*lifecycle // made when first needed on event sessions of the poll engine
	*receiver  // nil for event sessions on the poll engine

	// Under the output lock (sessionConn.Lock): the hubs s is subscribed
	// to, and (hubsOver, below) whether it has left them for good.
	hubSubs *subscription // the first; the others follow through sibling

	mu       sync.Mutex
	vals     *valueSet // under mu
	client   bool
	owned    bool // the caller runs it (Dial, Server.Upgrade): Close releases its buffers
	engine   Engine
	ended    bool
	failed   bool // event sessions, on the loop: input is dropped after a violation or timeout
	counted  bool // event sessions: counted in the poll engine's sessions
	hubsOver bool // under the output lock, beside the others to save a word
	// readClosed: CloseRead was called, and data messages are dropped.
	// Under mu, or on the loop under the connection's lock.
	readClosed bool
}

// lifecycle is how a session's end is observed. ctx is made when first
// asked for.
type lifecycle struct {
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the connection has ended
	ctl    *control      // under mu; made by the first Ping, OnPing or OnPong

	// Under mu; final once ended is set (and before done is closed). Until
	// then endErr holds the cause recorded for the end, if any, which takes
	// precedence over the transport's error. An event session on the poll
	// engine makes its lifecycle for them when it ends or a cause comes.
	endReason CloseReason
	endErr    error
}

// life returns s's lifecycle, making it if s has none. s.mu is held.
func (s *Session) life() *lifecycle {
	if s.lifecycle == nil {
		s.lifecycle = &lifecycle{}
	}
	return s.lifecycle
}

// cause returns the error recorded for the session's end: its cause until
// it ends, then its error. s.mu is held, or the session has ended.
func (s *Session) cause() error {
	if s.lifecycle == nil {
		return nil
	}
	return s.endErr
}

// finalReason returns the reason the session ended with. s.mu is held, or
// the session has ended.
func (s *Session) finalReason() CloseReason {
	if s.lifecycle == nil {
		return CloseReason{}
	}
	return s.endReason
}

// recordCause makes err the cause of the session's end, unless one is
// recorded or the session has ended. s.mu is held.
func (s *Session) recordCause(err error) {
	if !s.ended && s.cause() == nil {
		s.life().endErr = err
	}
}

// out returns the transport that sends.
func (s *Session) out() sessionConn {
	if s.lc != nil {
		return s.lc
	}
	return s.receiver.c
}

// sessionConn is what a Session sends through.
type sessionConn interface {
	WriteMessage(op frame.Opcode, rsv byte, p []byte) error
	WriteFrame(h frame.Header, p []byte) error
	WritePing(p []byte) error
	WriteClose(code frame.CloseCode, reason string) error
	Abort() error
	RemoteAddr() net.Addr
	LocalAddr() net.Addr
	Extensions() []codec.Negotiated

	// For hubs, with the output locked between Lock and Unlock.
	Lock()
	TryLock() bool
	Unlock()
	Refill()
	Queued() int
	Holding() bool // a message is being streamed: nothing may go in between
	// WaitHolding waits, the output locked on entry and on return, until
	// no message is being streamed, or done is closed (it returns an error).
	WaitHolding(done <-chan struct{}) error
	QueueShared(b *[]byte, r wsconn.Releaser, size int) error
	SharedSize() int
	AppendMessage(op frame.Opcode, p []byte) error
	Protocol() *codec.Protocol
}

// wsconn returns the connection of a session that runs on one, else nil.
func (s *Session) wsconn() *wsconn.Conn {
	if s.lc != nil {
		return nil
	}
	return s.receiver.c
}

// receiver is the reading side of a session whose handler receives, over
// a net.Conn transport.
type receiver struct {
	c     *wsconn.Conn
	meter *shard         // the server's counters; nil on a client
	kept  *keptRequest   // on the poll engine's server side: req is nil
	resp  *http.Response // a client's: the server's answer to the handshake
	onEnd func()         // run once the session has ended, when set

	notify chan struct{} // wakes a waiting receiver: a message came, or Close; made by the first to wait
	grace  *time.Timer   // wakes it when the handler holds a message too long

	rmu sync.Mutex // serialises receivers

	// Under Session.mu.
	reader        reader    // who reads now
	readerRunning bool      // the background reader's goroutine runs
	holdSince     time.Time // when the handler took the message it holds
	graceArmed    bool
	waiting       bool          // a receiver waits on notify
	outstanding   int           // messages handed over and not yet released
	room          chan struct{} // closed when the queue shrinks, made by the reader
	next          Message       // the next message, borrowed from the reader's buffers
	nextPin       wsconn.Pin    // its buffers
	hasNext       bool
	held          wsconn.Pin // buffers of the message the handler has
	holding       bool
	queue         []queued // copies of messages that came while one was held
	queuedBytes   int
	heldCopy      *[]byte // buffer of the queued message returned last
	stopped       bool
	onEvents      bool          // Events callbacks take the messages (set before OnOpen)
	ctlEvents     bool          // pings and pongs go to the handler as messages (Events.Run)
	handover      chan struct{} // closed when the background reader gives the read side to Reader
	dropping      bool          // the fragments of an abandoned streamed message are dropped

	stream *messageReader // Reader's, under rmu; made by the first

	releaseOnce sync.Once
}

// ErrNotReceiving is returned by Receive and Reader on a session whose
// messages go to Events.OnMessage, on either engine (on the std engine,
// such a call from a callback would wait for itself); Messages yields
// nothing there.
var ErrNotReceiving = errors.New("wskit: this session's messages go to its OnMessage callback")

// reader says which goroutine owns the read side.
type reader uint8

const (
	readerNone       reader = iota
	readerReceiver          // a Receive reads directly
	readerBackground        // the session's goroutine reads
	readerStream            // a Reader's message is being read, between its Reads
)

type queued struct {
	m   Message
	buf *[]byte
}

// queuedOverhead is what a queued message costs beyond its buffer: its
// slot in the queue and the buffer's slice header.
const queuedOverhead = int(unsafe.Sizeof(queued{}) + unsafe.Sizeof([]byte(nil)))

// queuedCost is the memory a copy of an n-byte message holds while queued:
// the pooled buffer it is copied into and the overhead, so that empty
// messages are bounded by IncomingQueue too.
func queuedCost(n int) int { return bufpool.Cap(n) + queuedOverhead }

// holdGrace is how long nothing is read while the handler holds a message.
// Long enough for a handler to answer a message that came just before a
// close; short against the keepalive timeout of a peer whose pings must be
// answered.
const holdGrace = 100 * time.Millisecond

func newSession(c *wsconn.Conn, opts *Options, req *http.Request, protocol string, client bool) *Session {
	s := &Session{
		opts: opts, req: req, protocol: protocol, client: client, owned: client,
		lifecycle: &lifecycle{done: make(chan struct{})},
		receiver:  &receiver{c: c},
	}
	// Nobody reads until the handler receives; if it does not within
	// holdGrace, the session's own goroutine starts reading.
	s.mu.Lock() // the timer's goroutine reads grace under the lock
	s.holdSince, s.graceArmed = time.Now(), true
	s.grace = time.AfterFunc(holdGrace, s.graceOver)
	s.mu.Unlock()
	return s
}

// graceOver runs when the grace timer fires: if nobody has been reading for
// holdGrace, the background reader takes over; else the timer is armed for
// the rest of the current hold.
func (s *Session) graceOver() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.graceArmed = false
	if s.reader != readerNone || s.ended {
		return
	}
	if left := holdGrace - time.Since(s.holdSince); left > 0 {
		s.graceArmed = true
		s.grace.Reset(left)
		return
	}
	s.wakeReader()
}

// wakeReader makes the session's own goroutine read while nobody else
// does, starting it if it is not running: a session whose handler reads
// for itself has no goroutine but the handler's. s.mu is held.
func (s *Session) wakeReader() {
	if s.reader != readerNone || s.ended {
		return
	}
	s.reader = readerBackground
	if !s.readerRunning {
		s.readerRunning = true
		go s.readLoop()
	}
}

// readLoop is the background reader: it reads while the read side is its
// own, and ends when a receiver takes it over.
func (s *Session) readLoop() {
	for {
		s.mu.Lock()
		if s.reader != readerBackground || s.ended {
			s.readerRunning = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if !s.readBackground() {
			s.mu.Lock()
			s.readerRunning = false
			s.mu.Unlock()
			return
		}
	}
}

// readBackground reads until a receiver has taken a message and can read on
// its own (it returns true), or the connection ends (false).
func (s *Session) readBackground() bool {
	for {
		ev, err := s.c.Next()
		if errors.Is(err, wsconn.ErrInterrupted) {
			s.mu.Lock()
			if s.handover != nil {
				// Reader takes the read side over.
				s.reader = readerNone
				close(s.handover)
				s.handover = nil
				s.mu.Unlock()
				return false
			}
			s.mu.Unlock()
			continue
		}
		if err != nil {
			s.finish(err)
			return false
		}
		if s.dropping && s.skipDropped(ev) {
			continue
		}
		m := Message{Type: ev.Op, Payload: ev.Payload}
		if ev.Kind != codec.EventMessage {
			var ok bool
			if m, ok = s.controlEvent(ev); !ok {
				continue
			}
		}
		s.mu.Lock()
		if s.pass(m) {
			// Lent without a copy: nothing is read while the handler holds
			// it, and its next Receive reads for itself.
			s.reader = readerNone
			if s.handover != nil {
				close(s.handover)
				s.handover = nil
			}
			s.startHold()
			s.mu.Unlock()
			return true
		}
		s.mu.Unlock()
	}
}

// pass gives m to the handler: borrowed when it has nothing outstanding
// (the buffers stay pinned until it releases m), else as a queued copy once
// there is room. It reports whether m was lent without a copy. s.mu is held.
func (s *Session) pass(m Message) bool {
	if s.stopped || s.readClosed && m.Type.IsData() {
		return false
	}
	if s.outstanding == 0 {
		s.next, s.nextPin, s.hasNext = m, s.c.Pin(), true
		s.outstanding++
		s.signal()
		return true
	}
	cost := queuedCost(len(m.Payload))
	if s.queuedBytes > 0 && s.queuedBytes+cost > s.opts.IncomingQueue && s.meter != nil {
		s.meter.incomingFull.Add(1) // reading pauses until the handler takes one
	}
	for s.queuedBytes > 0 && s.queuedBytes+cost > s.opts.IncomingQueue {
		if s.room == nil {
			s.room = make(chan struct{})
		}
		room := s.room
		s.mu.Unlock()
		<-room // closed by take, or by Close
		s.mu.Lock()
		if s.stopped {
			return false
		}
	}
	buf := bufpool.Get(len(m.Payload))
	*buf = append(*buf, m.Payload...)
	s.queue = append(s.queue, queued{Message{Type: m.Type, Payload: *buf}, buf})
	s.queuedBytes += cost
	s.outstanding++
	s.signal()
	return false
}

// signal wakes a waiting receiver. s.mu is held.
func (s *Session) signal() {
	if !s.waiting {
		return
	}
	s.waiting = false
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// startHold notes that the handler now holds a message and that nobody
// reads; the grace timer hands reading to the background reader if the hold
// lasts. One timer is armed at a time, rather than a reset per message: when
// it fires, graceOver looks at how long the current hold has lasted. s.mu is
// held.
func (s *Session) startHold() {
	s.holdSince = time.Now()
	if !s.graceArmed {
		s.graceArmed = true
		s.grace.Reset(holdGrace)
	}
}

// endReason returns the close reason of a session that ended with err,
// given the protocol's (code, reason, ok): a violation's code, else the
// protocol's, else 1006 with the error's text.
func endReason(code CloseCode, reason string, ok bool, err error) (CloseCode, string) {
	if fcode, freason, failed := codec.CloseFor(err); failed {
		return fcode, freason
	}
	switch {
	case !ok:
		code, reason = frame.CloseAbnormal, ""
		if err != nil {
			reason = err.Error()
		}
	}
	return code, reason
}

// finish records why the session ended and wakes everyone waiting.
func (s *Session) finish(err error) {
	s.c.Close()
	code, reason, ok := s.c.CloseReason()
	if errors.Is(err, wsconn.ErrClosed) {
		err = nil // the close handshake completed
	}
	if werr := s.c.WriteErr(); werr != nil && err != nil && !errors.Is(err, ErrCloseTimeout) {
		err = werr
	}
	if eerr := s.c.EncodeErr(); eerr != nil {
		err = eerr // our 1011 reported it
	}
	s.mu.Lock()
	if cause := s.cause(); cause != nil {
		err = cause // the cause closeWith recorded
	}
	code, reason = endReason(code, reason, ok, err)
	logIfPanic(s, err, "the session was closed with 1011")
	s.ended = true
	s.grace.Stop()
	s.endErr = err
	s.endReason = CloseReason{Code: code, Reason: reason}
	s.mu.Unlock()
	s.leaveHubs()
	close(s.done)
	s.mu.Lock()
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel() // after done: whoever sees the context end sees the reason
	}
	if s.onEnd != nil {
		s.onEnd()
	}

}

// Receive waits for the next message. Once the session has ended and the
// messages that came before the end are taken, it returns a *CloseError
// carrying the close reason; if ctx ends first, ctx's error. With a context
// that cannot be cancelled, such as context.Background(), Receive reads on
// the caller's goroutine, which saves a goroutine switch per message.
func (s *Session) Receive(ctx context.Context) (Message, error) {
	if s.receiver == nil || s.onEvents {
		return Message{}, ErrNotReceiving
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return s.receive(ctx)
}

// receive waits for a message.
func (s *Session) receive(ctx context.Context) (Message, error) {
	if s.stream != nil && (s.stream.open || s.stream.whole0) {
		s.dropStream()
	}
	cancel := ctx.Done() // nil when ctx cannot be cancelled
	s.mu.Lock()
	s.releaseHeld()
	if m, ok := s.take(); ok {
		s.mu.Unlock()
		return m, nil
	}
	if s.reader == readerNone && !s.ended && !s.stopped && cancel == nil {
		s.reader = readerReceiver
		s.mu.Unlock()
		if err := s.c.WaitInput(); err != nil { // idle here, not in readDirect
			s.finish(err)
			return Message{}, s.closeError()
		}
		return s.readDirect()
	}
	return s.receiveWait(ctx)
}

// receiveWait is receive once the message must come from the session's
// own reader: it waits for it. s.mu is held; it unlocks it. It is apart
// from receive, whose frame is on the stack of every idle session, to keep
// that frame small.
//
//go:noinline
func (s *Session) receiveWait(ctx context.Context) (Message, error) {
	cancel := ctx.Done()
	if s.reader == readerNone && !s.ended {
		s.wakeReader()
	}
	if s.notify == nil {
		s.notify = make(chan struct{}, 1)
	}
	for !s.stopped {
		s.waiting = true
		s.mu.Unlock()
		select {
		case <-s.notify:
		case <-s.done:
		case <-cancel:
		}
		s.mu.Lock()
		s.waiting = false
		if m, ok := s.take(); ok {
			s.mu.Unlock()
			return m, nil
		}
		if s.ended || s.stopped || (cancel != nil && ctx.Err() != nil) {
			break
		}
	}
	s.mu.Unlock()
	if cancel != nil && ctx.Err() != nil {
		return Message{}, ctx.Err()
	}
	select { // after Close or CloseRead, the end may take a while
	case <-s.done:
	case <-cancel:
		return Message{}, ctx.Err()
	}
	return Message{}, s.closeError()
}

// readDirect reads on the receiver's goroutine until a message comes or the
// connection ends.
func (s *Session) readDirect() (Message, error) {
	for {
		ev, err := s.c.Next()
		if err != nil {
			s.finish(err)
			return Message{}, s.closeError()
		}
		if s.dropping && s.skipDropped(ev) {
			continue
		}
		m := Message{Type: ev.Op, Payload: ev.Payload}
		if ev.Kind != codec.EventMessage {
			var ok bool
			if m, ok = s.controlEvent(ev); !ok {
				continue
			}
		}
		s.mu.Lock()
		if s.stopped || s.readClosed && m.Type.IsData() {
			s.mu.Unlock()
			continue // read on to the peer's close
		}
		s.held, s.holding = s.c.Pin(), true
		s.outstanding++
		s.reader = readerNone
		s.startHold()
		s.mu.Unlock()
		return m, nil
	}
}

func (s *Session) closeError() error {
	return &CloseError{CloseReason: s.finalReason(), Err: s.cause()}
}

// take returns the oldest message not yet received, if any. s.mu is held.
func (s *Session) take() (Message, bool) {
	if s.hasNext {
		m := s.next
		s.held, s.holding = s.nextPin, true
		s.next, s.nextPin, s.hasNext = Message{}, wsconn.Pin{}, false
		return m, true
	}
	if len(s.queue) == 0 {
		return Message{}, false
	}
	q := s.queue[0]
	s.queue[0] = queued{}
	s.queue = s.queue[1:]
	s.queuedBytes -= queuedCost(len(q.m.Payload))
	s.heldCopy = q.buf
	if s.room != nil {
		close(s.room)
		s.room = nil
	}
	return q.m, true
}

// releaseHeld gives back the buffers of the message returned last and, when
// it was the last outstanding one, lets the reader parse again. s.mu is held.
func (s *Session) releaseHeld() {
	switch {
	case s.holding:
		s.c.Unpin(s.held)
		s.held, s.holding = wsconn.Pin{}, false
	case s.heldCopy != nil:
		bufpool.Put(s.heldCopy)
		s.heldCopy = nil
	default:
		return
	}
	s.outstanding--
}

// Messages returns an iterator over received messages that ends when the
// session does; each message's payload is borrowed until the next step.
// Check Err or CloseReason afterwards for how it ended.
func (s *Session) Messages() iter.Seq[Message] {
	if s.receiver != nil && s.onEvents {
		return func(func(Message) bool) {}
	}
	return s.messages()
}

// messages is Messages for the session's own use.
func (s *Session) messages() iter.Seq[Message] {
	return func(yield func(Message) bool) {
		if s.receiver == nil {
			return
		}
		s.rmu.Lock()
		defer s.rmu.Unlock()
		for {
			m, err := s.receive(context.Background())
			if err != nil || !yield(m) {
				return
			}
		}
	}
}

// Send sends a message of type t (Text or Binary). p is copied before Send
// returns and may be reused.
func (s *Session) Send(t MessageType, p []byte) error {
	if !t.IsData() || t == frame.OpContinuation {
		return fmt.Errorf("wskit: Send takes Text or Binary, not %v", t)
	}
	return s.sent(s.out().WriteMessage(t, 0, p))
}

// SendContext is Send bounded by ctx, for a peer that may stop reading.
// When ctx ends while the send waits for room in the outgoing queue, the
// message is not sent, SendContext returns ctx's error and the session goes
// on. When ctx ends while SendContext is writing, the write is cut: part of
// the message may have gone out, so the session cannot go on. The
// connection is closed and the session ends with 1006, with ctx's error as
// its Err; SendContext returns ctx's error. A message queued behind
// another goroutine's write in progress is accepted and not bounded by
// ctx, as with Send (Options.Timeout bounds that write).
//
// An Events session on the poll engine never waits to send: the loop
// writes for it, and a full queue refuses the send (ErrQueueFull) or
// closes the session, per Options.QueuePolicy. SendContext there only
// refuses to send once ctx has ended.
func (s *Session) SendContext(ctx context.Context, t MessageType, p []byte) error {
	if !t.IsData() || t == frame.OpContinuation {
		return fmt.Errorf("wskit: SendContext takes Text or Binary, not %v", t)
	}
	if s.lc != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		return s.sent(s.lc.WriteMessage(t, 0, p))
	}
	err := s.c.WriteMessageContext(ctx, t, 0, p)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return err
	}
	return s.sent(err)
}

// SetCompression turns permessage-deflate on or off for the messages sent
// after it returns, as gorilla's EnableWriteCompression does: off, say,
// before sending an image that is compressed already. On, a message is
// compressed when the extension's Threshold and CompressIf approve it, so
// the three compose: the options set the policy for every session, and
// SetCompression overrides it for one. Compression is on when the session
// opens. With sends from several goroutines, a message follows the setting
// in force when it is encoded. It does nothing when permessage-deflate was
// not negotiated; Hub broadcasts, encoded once for every member, do not
// follow it.
func (s *Session) SetCompression(on bool) {
	if s.lc != nil {
		s.lc.pe.Lock()
		s.lc.proto.SetCompression(on)
		s.lc.pe.Unlock()
		return
	}
	s.c.SetCompression(on)
}

// SendText sends a text message. The string must be valid UTF-8: the peer
// closes the session (1007) otherwise.
func (s *Session) SendText(text string) error {
	return s.sent(s.out().WriteMessage(frame.OpText, 0, unsafe.Slice(unsafe.StringData(text), len(text))))
}

// SendBinary sends a binary message.
func (s *Session) SendBinary(p []byte) error {
	return s.sent(s.out().WriteMessage(frame.OpBinary, 0, p))
}

// sent returns the error of a send: once the session has ended, its
// *CloseError, as Receive returns.
func (s *Session) sent(err error) error {
	if err == nil {
		return nil
	}
	return s.sendFailed(err)
}

func (s *Session) sendFailed(err error) error {
	if _, _, ended := s.over(); ended {
		return s.closeError()
	}
	return err
}

// SendFrame sends one frame as given: a ping, a pong, or a data frame. A data
// frame with Fin false starts (or continues) a fragmented message, which the
// caller must finish with OpContinuation frames before sending another
// message. Use Close for close frames.
func (s *Session) SendFrame(h frame.Header, payload []byte) error {
	if h.Op == frame.OpClose {
		return errors.New("wskit: send close frames with Session.Close")
	}
	if h.Op.IsReserved() {
		return fmt.Errorf("wskit: cannot send reserved opcode %v", h.Op)
	}
	if h.Op.IsControl() && len(payload) > frame.MaxControlPayload {
		return frame.ErrControlTooLong
	}
	return s.sent(s.out().WriteFrame(h, payload))
}

// Close starts the close handshake with code and reason (at most 123 bytes),
// waits for the peer's close frame or Timeout, and ends the session. Messages
// not yet received are dropped. Closing an ended session returns nil.
//
// An event session on the poll engine does not wait: its callbacks run on
// the loop, which the wait would block. OnClose reports the end.
func (s *Session) Close(code CloseCode, reason string) error {
	if s.lc != nil {
		return s.lc.close(code, reason)
	}
	return s.closeWith(code, reason, nil)
}

// closeWith closes with code and reason and, when cause is not nil, makes it
// the session's error.
func (s *Session) closeWith(code CloseCode, reason string, cause error) error {
	var buf [frame.MaxControlPayload]byte
	if _, err := frame.AppendClose(buf[:0], code, reason); err != nil {
		return err
	}
	s.mu.Lock()
	if cause != nil {
		s.recordCause(cause)
	}
	s.stopped = true
	s.dropQueue()
	s.signal() // a waiting receiver returns
	if s.room != nil {
		close(s.room) // a reader waiting for room drops its message
		s.room = nil
	}
	s.abandonStream()
	s.wakeReader() // someone must read the peer's close
	s.mu.Unlock()
	// A close already sent or a dead connection ends the session anyway.
	sent := s.c.WriteClose(code, reason) == nil
	<-s.done
	if s.owned {
		s.releaseBuffers()
	}
	if err := s.cause(); sent && errors.Is(err, ErrCloseTimeout) {
		return err
	}
	return nil
}

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} {
	if s.lc == nil {
		return s.done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lifecycle == nil {
		s.lifecycle = &lifecycle{}
	}
	if s.done == nil {
		s.done = make(chan struct{})
		if s.ended {
			close(s.done)
		}
	}
	return s.done
}

// Context returns a context cancelled when the session ends. On a server it
// derives from the upgrade request's context and carries its values.
func (s *Session) Context() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lifecycle == nil {
		s.lifecycle = &lifecycle{}
	}
	if s.ctx == nil {
		s.ctx, s.cancel = context.WithCancel(s.requestContext())
		if s.ended {
			s.cancel()
		}
	}
	return s.ctx
}

// requestContext returns the context of the request that opened the
// session, which the session's own derives from.
func (s *Session) requestContext() context.Context {
	switch {
	case s.lc != nil:
		return s.lc.requestContext()
	case s.receiver != nil && s.kept != nil:
		return s.kept.context(s)
	case s.req != nil && !s.client:
		return s.req.Context()
	}
	return context.Background()
}

// over reports whether the session has ended, with its reason and error.
func (s *Session) over() (r CloseReason, err error, ok bool) {
	if s.lc != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.ended {
			return r, nil, false
		}
		return s.finalReason(), s.cause(), true
	}
	select {
	case <-s.done:
		return s.finalReason(), s.cause(), true
	default:
		return r, nil, false
	}
}

// CloseReason returns why the session ended: the peer's close code and
// reason, or ours, or the code of the protocol violation that failed it, or
// 1006 Abnormal Closure when the connection ended without a close frame.
// ok is false while the session is open.
func (s *Session) CloseReason() (r CloseReason, ok bool) {
	r, _, ok = s.over()
	return r, ok
}

// Err returns the error that ended the session, or nil while it is open and
// after a completed close handshake. A violation by the peer is a
// *frame.ProtocolError; a connection that just ended is the transport's error.
func (s *Session) Err() error {
	_, err, _ := s.over()
	return err
}

// Request returns the HTTP request that opened the session, as the handler
// chain passed it on: remote address, headers, URL, path values, the
// context with the values middleware put there, and over TLS the
// connection's state (TLS). On a client it is the request that was sent.
// Do not read its body.
//
// A session on the poll engine keeps only the request's head (and what the
// chain added, and the TLS state): each call parses it again into a new
// Request, so keep what you need rather than call it for each message.
func (s *Session) Request() *http.Request {
	switch {
	case s.lc != nil:
		return s.lc.request()
	case s.receiver != nil && s.kept != nil:
		return s.kept.request(s)
	}
	return s.req
}

// values implements ValueHolder.
func (s *Session) values(create bool) *valueSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.vals == nil && create {
		s.vals = new(valueSet)
	}
	return s.vals
}

// Response returns the server's answer to the opening handshake of a
// session opened by Dial: its status, header fields (Set-Cookie among them,
// see http.Response.Cookies), TLS state, and the request in Request. Its
// body is empty. On a server's session it is nil.
func (s *Session) Response() *http.Response {
	if s.receiver == nil {
		return nil
	}
	return s.resp
}

// Engine returns the transport the session runs on: EngineStd or
// EnginePoll on a server; EngineAuto on a client.
func (s *Session) Engine() Engine { return s.engine }

// Subprotocol returns the negotiated subprotocol, or "".
func (s *Session) Subprotocol() string { return s.protocol }

// Extensions returns the negotiated Sec-WebSocket-Extensions value as the
// server answered it, such as "permessage-deflate; server_no_context_takeover",
// or "" when none was negotiated.
func (s *Session) Extensions() string {
	return string(codec.ResponseHeader(nil, s.out().Extensions()))
}

// RemoteAddr returns the peer's network address.
func (s *Session) RemoteAddr() net.Addr { return s.out().RemoteAddr() }

// LocalAddr returns the local network address.
func (s *Session) LocalAddr() net.Addr { return s.out().LocalAddr() }

// dropQueue returns the queued messages' buffers. s.mu is held.
func (s *Session) dropQueue() {
	for _, q := range s.queue {
		bufpool.Put(q.buf)
	}
	s.queue, s.queuedBytes = nil, 0
}

// releaseBuffers returns every buffer once the session is over and its
// handler has returned.
func (s *Session) releaseBuffers() {
	s.releaseOnce.Do(func() {
		s.mu.Lock()
		s.releaseHeld()
		s.dropQueue()
		if s.hasNext {
			s.c.Unpin(s.nextPin)
			s.next, s.nextPin, s.hasNext = Message{}, wsconn.Pin{}, false
		}
		s.mu.Unlock()
		logIfPanic(s, s.c.Release(), "ignored at the end of the session")
	})
}
