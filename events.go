package wskit

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
	OnOpen    func(s *Session)
	OnMessage func(s *Session, m Message)
	OnError   func(s *Session, err error)
	OnClose   func(s *Session, reason CloseReason)
}

// Run drives s through the callbacks until the session ends. Server.Handle
// calls it for each session; a client can call it on a dialed session. A
// panic in OnOpen or OnMessage is logged and closes the session with 1011;
// OnError and OnClose still run.
func (ev Events) Run(s *Session) {
	ev.serve(s)
	<-s.Done()
	if err := s.err; err != nil && ev.OnError != nil {
		ev.OnError(s, err)
	}
	if ev.OnClose != nil {
		ev.OnClose(s, s.reason)
	}
}

func (ev Events) serve(s *Session) {
	defer func() {
		if v := recover(); v != nil {
			logPanic(s.opts, s.Request(), v)
			s.closeWith(CloseInternalError, "internal error", ErrHandlerPanic)
		}
	}()
	if ev.OnOpen != nil {
		ev.OnOpen(s)
	}
	for m := range s.Messages() {
		if ev.OnMessage != nil {
			ev.OnMessage(s, m)
		}
	}
}
