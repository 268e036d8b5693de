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
	Type    MessageType
	Payload []byte
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
	// ErrClosed is returned by sends after the session has ended.
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
// A goroutine reads for the session. It hands each message over without a
// copy and, while the handler holds it (until the next Receive), only reads
// ahead for a moment (holdGrace) without parsing: so a close or a violation
// right after a request is answered after the request's reply. If the
// handler takes longer, the reader goes on parsing, answers pings and sees
// the peer's close, and copies further messages into a queue of
// Options.IncomingQueue bytes; when that is full, reading pauses, which
// pushes back on the peer. Either way the session sees the connection end.
//
// Sends are safe from any goroutine. Receive and Messages are for one
// goroutine: each call releases the message the previous one returned.
type Session struct {
	c        *wsconn.Conn
	opts     *Options
	req      *http.Request
	protocol string
	client   bool

	ctx    context.Context
	cancel context.CancelFunc

	handoff  chan Message  // the next message, borrowed from the reader's buffers
	done     chan struct{} // closed when the connection has ended
	stop     chan struct{} // closed by Close: no more messages are wanted
	stopOnce sync.Once

	rmu sync.Mutex // serialises receivers

	mu          sync.Mutex
	outstanding int       // messages handed over and not yet released
	holdUntil   time.Time // end of the read-ahead without parsing
	queuedBytes int
	room        chan struct{} // closed when outstanding drops to 0, made by the reader
	handoffPin  wsconn.Pin    // buffers of the message in handoff
	held        wsconn.Pin    // buffers of the message the handler has
	holding     bool
	queue       []queued // copies of messages parsed while one was held
	heldCopy    *[]byte  // buffer of the queued message returned last
	stopped     bool
	ended       bool

	// Set before done is closed, read after.
	reason CloseReason
	err    error
	cause  error // set by closeWith under mu, becomes err

	releaseOnce sync.Once
}

type queued struct {
	m   Message
	buf *[]byte
}

func newSession(c *wsconn.Conn, opts *Options, req *http.Request, protocol string, client bool) *Session {
	parent := context.Background()
	if req != nil && !client {
		parent = req.Context()
	}
	s := &Session{
		c: c, opts: opts, req: req, protocol: protocol, client: client,
		handoff: make(chan Message, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(parent)
	go s.readLoop()
	return s
}

// readLoop owns the read side: it parses while the handler holds no message
// and only reads ahead while it does.
func (s *Session) readLoop() {
	var err error
	for err == nil {
		if s.busy() {
			switch ferr := s.c.Fill(s.opts.IncomingQueue, s.holdUntil); {
			case ferr == nil:
			case errors.Is(ferr, wsconn.ErrBufferFull):
				s.waitRoom()
			case errors.Is(ferr, wsconn.ErrTimerDue):
				err = s.parseBuffered() // a pong may be waiting in the input
			default:
				// The connection ended: what it sent before still counts
				// (a close frame gives the close reason).
				if err = s.parseBuffered(); err == nil {
					err = ferr
				}
			}
			continue
		}
		var ev codec.Event
		if ev, err = s.c.Next(); err == nil && ev.Kind == codec.EventMessage {
			s.pass(Message{Type: ev.Op, Payload: ev.Payload})
		}
	}
	s.finish(err)
}

// holdGrace is how long the reader waits, without parsing, for the handler
// to be done with a message before it parses on. Long enough for a handler
// to answer a message that came just before a close; short against the
// keepalive timeout of a peer whose pings must be answered.
const holdGrace = 100 * time.Millisecond

// busy reports whether the reader should only read ahead: the handler has
// yet to take and release a message, and not for long.
func (s *Session) busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outstanding > 0 && !s.stopped && time.Now().Before(s.holdUntil)
}

// pass hands m over, borrowed, when the handler has nothing outstanding;
// its buffers stay pinned until the handler releases it. Otherwise it queues
// a copy, waiting for room in the queue.
func (s *Session) pass(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	if s.outstanding == 0 {
		s.handoffPin = s.c.Pin()
		s.outstanding++
		s.holdUntil = time.Now().Add(holdGrace)
		s.handoff <- m // empty: nothing was outstanding
		return
	}
	for s.queuedBytes > 0 && s.queuedBytes+len(m.Payload) > s.opts.IncomingQueue {
		s.mu.Unlock()
		s.waitRoom()
		s.mu.Lock()
		if s.stopped {
			return
		}
	}
	s.enqueue(m)
}

// enqueue queues a copy of m. s.mu is held.
func (s *Session) enqueue(m Message) {
	buf := bufpool.Get(len(m.Payload))
	*buf = append(*buf, m.Payload...)
	s.queue = append(s.queue, queued{Message{Type: m.Type, Payload: *buf}, buf})
	s.queuedBytes += len(m.Payload)
	s.outstanding++
}

// parseBuffered parses the bytes read ahead, queueing copies of the messages
// among them, when the input must be looked at before the handler is ready.
func (s *Session) parseBuffered() error {
	for {
		ev, ok, err := s.c.NextBuffered()
		if err != nil || !ok {
			return err
		}
		if ev.Kind != codec.EventMessage {
			continue
		}
		s.mu.Lock()
		if !s.stopped {
			s.enqueue(Message{Type: ev.Op, Payload: ev.Payload})
		}
		s.mu.Unlock()
	}
}

// waitRoom waits until the handler has taken a queued message or released
// every one.
func (s *Session) waitRoom() {
	s.mu.Lock()
	if s.outstanding == 0 || s.stopped {
		s.mu.Unlock()
		return
	}
	if s.room == nil {
		s.room = make(chan struct{})
	}
	room := s.room
	s.mu.Unlock()
	select {
	case <-room:
	case <-s.stop:
	}
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
	var pe *frame.ProtocolError
	switch {
	case errors.As(err, &pe):
		code, reason = pe.Code, pe.Reason
	case !ok:
		code = frame.CloseAbnormal
		if err != nil {
			reason = err.Error()
		}
	}
	s.mu.Lock()
	if s.cause != nil {
		err = s.cause
	}
	s.ended = true
	s.mu.Unlock()
	s.err = err
	s.reason = CloseReason{Code: code, Reason: reason}
	close(s.done)
	s.cancel() // after done: whoever sees the context end sees the reason

}

// Receive waits for the next message. Once the session has ended and the
// messages that came before the end are taken, it returns a *CloseError
// carrying the close reason; if ctx ends first, ctx's error.
func (s *Session) Receive(ctx context.Context) (Message, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return s.receive(ctx)
}

// receive waits for a message; ctx may be nil (wait until the end).
func (s *Session) receive(ctx context.Context) (Message, error) {
	s.mu.Lock()
	s.releaseHeld()
	m, ok := s.take()
	s.mu.Unlock()
	if ok {
		return m, nil
	}
	var cancel <-chan struct{}
	if ctx != nil {
		cancel = ctx.Done()
	}
	select {
	case m := <-s.handoff:
		s.mu.Lock()
		s.held, s.holding = s.handoffPin, true
		s.mu.Unlock()
		return m, nil
	case <-s.done:
	case <-s.stop:
	case <-cancel:
	}
	s.mu.Lock()
	m, ok = s.take()
	s.mu.Unlock()
	if ok {
		return m, nil
	}
	if cancel != nil && ctx.Err() != nil {
		return Message{}, ctx.Err()
	}
	<-s.done
	return Message{}, &CloseError{CloseReason: s.reason, Err: s.err}
}

// take returns the oldest message not yet received, if any. s.mu is held.
func (s *Session) take() (Message, bool) {
	select {
	case m := <-s.handoff:
		s.held, s.holding = s.handoffPin, true
		return m, true
	default:
	}
	if len(s.queue) == 0 {
		return Message{}, false
	}
	q := s.queue[0]
	s.queue[0] = queued{}
	s.queue = s.queue[1:]
	s.queuedBytes -= len(q.m.Payload)
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
	if s.outstanding--; s.outstanding == 0 {
		if s.room != nil {
			close(s.room)
			s.room = nil
		}
		s.c.Wake()
	}
}

// Messages returns an iterator over received messages that ends when the
// session does; each message's payload is borrowed until the next step.
// Check Err or CloseReason afterwards for how it ended.
func (s *Session) Messages() iter.Seq[Message] {
	return func(yield func(Message) bool) {
		s.rmu.Lock()
		defer s.rmu.Unlock()
		for {
			m, err := s.receive(nil)
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
	return s.c.WriteMessage(t, 0, p)
}

// SendText sends a text message. The string must be valid UTF-8: the peer
// closes the session (1007) otherwise.
func (s *Session) SendText(text string) error {
	return s.c.WriteMessage(frame.OpText, 0, unsafe.Slice(unsafe.StringData(text), len(text)))
}

// SendBinary sends a binary message.
func (s *Session) SendBinary(p []byte) error { return s.c.WriteMessage(frame.OpBinary, 0, p) }

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
	return s.c.WriteFrame(h, payload)
}

// Ping sends a ping with the given payload (at most 125 bytes). Its pong is
// consumed by the session.
func (s *Session) Ping(payload []byte) error { return s.c.WritePing(payload) }

// Close starts the close handshake with code and reason (at most 123 bytes),
// waits for the peer's close frame or Timeout, and ends the session. Messages
// not yet received are dropped. Closing an ended session returns nil.
func (s *Session) Close(code CloseCode, reason string) error {
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
		s.cause = cause
	}
	s.stopped = true
	s.dropQueue()
	s.mu.Unlock()
	s.stopOnce.Do(func() { close(s.stop) })
	s.c.Wake() // input read ahead may hold the peer's close
	// A close already sent or a dead connection ends the session anyway.
	sent := s.c.WriteClose(code, reason) == nil
	<-s.done
	if s.client {
		s.releaseBuffers()
	}
	if sent && errors.Is(s.err, ErrCloseTimeout) {
		return s.err
	}
	return nil
}

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Context returns a context cancelled when the session ends. On a server it
// derives from the upgrade request's context and carries its values.
func (s *Session) Context() context.Context { return s.ctx }

// CloseReason returns why the session ended: the peer's close code and
// reason, or ours, or the code of the protocol violation that failed it, or
// 1006 Abnormal Closure when the connection ended without a close frame.
// ok is false while the session is open.
func (s *Session) CloseReason() (r CloseReason, ok bool) {
	select {
	case <-s.done:
		return s.reason, true
	default:
		return r, false
	}
}

// Err returns the error that ended the session, or nil while it is open and
// after a completed close handshake. A violation by the peer is a
// *frame.ProtocolError; a connection that just ended is the transport's error.
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Request returns the HTTP request that opened the session: remote address,
// headers, URL. On a client it is the request that was sent. Do not read its
// body.
func (s *Session) Request() *http.Request { return s.req }

// Subprotocol returns the negotiated subprotocol, or "".
func (s *Session) Subprotocol() string { return s.protocol }

// Extensions returns the negotiated Sec-WebSocket-Extensions value, or "".
func (s *Session) Extensions() string { return "" }

// RemoteAddr returns the peer's network address.
func (s *Session) RemoteAddr() net.Addr { return s.c.NetConn().RemoteAddr() }

// LocalAddr returns the local network address.
func (s *Session) LocalAddr() net.Addr { return s.c.NetConn().LocalAddr() }

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
		select {
		case <-s.handoff:
			s.c.Unpin(s.handoffPin)
		default:
		}
		s.mu.Unlock()
		s.c.Release()
	})
}
