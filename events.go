package wskit

import "github.com/wskit/wskit/frame"

// Events are lifecycle callbacks in the shape of the browser's WebSocket
// API: open, message, error, close. Any of them may be nil.
//
// Ktor has no such callbacks; its handlers are coroutines. Its idioms map so:
//   - code before the loop in webSocket { … } (often called onConnect) → OnOpen
//   - for (frame in incoming) { … } (onMessage) → OnMessage, with a
//     defragmented message whose payload is borrowed for the call
//   - closeReason.await() after the loop (onClose) → OnClose, with the reason
//   - catch (e: ClosedReceiveChannelException / Throwable) (onError) → OnError,
//     called only when the session did not end with a clean close handshake:
//     a protocol violation, a timeout, a dropped connection (1006), a panic
//
// As in the browser, OnError comes first and OnClose always follows it, and
// the close reason is known in both (Session.CloseReason).
type Events struct {
	// OnOpen is called once the session is open, before any other.
	OnOpen func(s *Session)
	// OnMessage is called with each message. Its payload is borrowed for
	// the call: keep a Clone to use it later.
	OnMessage func(s *Session, m Message)
	// OnPing is called with the payload of each ping the peer sends, after
	// the session has queued its pong, in order with the messages; the
	// payload is borrowed for the call.
	OnPing func(s *Session, payload []byte)
	// OnPong is called with the payload of each pong the peer sends,
	// keepalive and Session.Ping's pongs included, as OnPing is.
	OnPong func(s *Session, payload []byte)
	// OnError is called when the session did not end with a clean close
	// handshake, with the error that ended it, before OnClose.
	OnError func(s *Session, err error)
	// OnClose is called last, once the session has ended, with its close
	// reason.
	OnClose func(s *Session, reason CloseReason)
}

// Run drives s through the callbacks until the session ends.
// Server.WebSocketEvents calls it for each session; a client can call it on
// a dialed session. A panic in OnOpen or OnMessage is logged and closes the
// session with 1011; OnError and OnClose still run.
func (ev Events) Run(s *Session) {
	ev.serve(s)
	<-s.Done()
	if err := s.cause(); err != nil && ev.OnError != nil {
		ev.OnError(s, err)
	}
	if ev.OnClose != nil {
		ev.OnClose(s, s.finalReason())
	}
}

func (ev Events) serve(s *Session) {
	defer func() {
		if v := recover(); v != nil {
			logPanic(s.opts, s.Request(), v)
			s.closeWith(CloseInternalError, "internal error", ErrHandlerPanic)
		}
	}()
	if ev.OnPing != nil || ev.OnPong != nil {
		s.mu.Lock()
		s.ctlEvents = true // pings and pongs come in order with the messages
		s.mu.Unlock()
	}
	s.onEvents = true // Receive from a callback would wait for itself
	if ev.OnOpen != nil {
		ev.OnOpen(s)
	}
	for m := range s.messages() {
		ev.deliver(s, m)
	}
}

// deliver calls the callback for m: a message, or a ping or pong that the
// session gave as one.
func (ev *Events) deliver(s *Session, m Message) {
	switch m.Type {
	case frame.OpPing:
		if ev.OnPing != nil {
			ev.OnPing(s, m.Payload)
		}
	case frame.OpPong:
		if ev.OnPong != nil {
			ev.OnPong(s, m.Payload)
		}
	default:
		if ev.OnMessage != nil {
			ev.OnMessage(s, m)
		}
	}
}
