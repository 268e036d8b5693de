package wskit

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net"
	"net/http"
	"sync"
	"unsafe"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
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
// Sends are safe from any goroutine. Receive and Messages are meant for one
// goroutine at a time (they serialise if not). While a received message is
// held (until the next Receive) nothing more is read, so a handler that does
// not read pushes back on its peer; a session that only sends should still
// range over Messages, or Close, to see the peer's close.
type Session struct {
	c        *wsconn.Conn
	opts     *Options
	req      *http.Request
	protocol string
	client   bool

	ctx    context.Context
	cancel context.CancelFunc

	deliver  chan Message  // hand-off of one borrowed message
	release  chan struct{} // the receiver is done with it
	stop     chan struct{} // closed when no more messages are wanted
	stopOnce sync.Once
	done     chan struct{} // closed when the connection has ended

	rmu     sync.Mutex
	holding bool

	// Set before done is closed, read after.
	reason CloseReason
	err    error

	emu   sync.Mutex
	cause error // set by closeWith, becomes err

	releaseOnce sync.Once
}

func newSession(c *wsconn.Conn, opts *Options, req *http.Request, protocol string, client bool) *Session {
	parent := context.Background()
	if req != nil && !client {
		parent = req.Context()
	}
	s := &Session{
		c: c, opts: opts, req: req, protocol: protocol, client: client,
		deliver: make(chan Message),
		release: make(chan struct{}),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(parent)
	go s.readLoop()
	return s
}

// readLoop owns the read side: it answers control frames (through the
// codec) and hands messages over one at a time.
func (s *Session) readLoop() {
	var err error
	for {
		var ev codec.Event
		ev, err = s.c.Next()
		if err != nil {
			break
		}
		if ev.Kind != codec.EventMessage {
			continue
		}
		select {
		case s.deliver <- Message{Type: ev.Op, Payload: ev.Payload}:
		case <-s.stop:
			continue
		}
		select {
		case <-s.release:
		case <-s.stop:
		}
	}
	s.finish(err)
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
	s.emu.Lock()
	if s.cause != nil {
		err = s.cause
	}
	s.emu.Unlock()
	s.err = err
	s.reason = CloseReason{Code: code, Reason: reason}
	s.cancel()
	close(s.done)
}

// Receive waits for the next message. After the session has ended it returns
// a *CloseError carrying the close reason; if ctx ends first, ctx's error.
func (s *Session) Receive(ctx context.Context) (Message, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return s.receive(ctx)
}

// receive waits for a message; ctx may be nil (wait until the end).
func (s *Session) receive(ctx context.Context) (Message, error) {
	var cancel <-chan struct{}
	if ctx != nil {
		cancel = ctx.Done()
	}
	if s.holding {
		s.holding = false
		select {
		case s.release <- struct{}{}:
		case <-s.stop:
		case <-s.done:
		}
	}
	select {
	case m := <-s.deliver:
		s.holding = true
		return m, nil
	case <-s.done:
		return Message{}, &CloseError{CloseReason: s.reason, Err: s.err}
	case <-cancel:
		return Message{}, ctx.Err()
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
	if cause != nil {
		s.emu.Lock()
		s.cause = cause
		s.emu.Unlock()
	}
	s.stopOnce.Do(func() { close(s.stop) })
	// A close already sent or a dead connection ends the session anyway.
	s.c.WriteClose(code, reason)
	<-s.done
	if s.client {
		s.releaseBuffers()
	}
	if errors.Is(s.err, ErrCloseTimeout) {
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

func (s *Session) releaseBuffers() {
	s.releaseOnce.Do(s.c.Release)
}
