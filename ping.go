package wskit

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
)

// Pings of Session.Ping carry 8 bytes: pingMark with the ping's number.
// Keepalive pings count from 1 without the mark, so that neither takes the
// other's pong.
const pingMark = 1 << 63

// control is what a session keeps for control frames beyond the
// protocol's duties: the pings waiting for their pongs and the hooks set
// with OnPing and OnPong. It is made when first needed, under Session.mu,
// so that a session that never pings holds none.
type control struct {
	seq     uint64      // the number of the last ping sent
	waiting []*pingWait // in the order sent
	onPing  func(payload []byte)
	onPong  func(payload []byte)
}

// pingWait is a Ping waiting for its pong.
type pingWait struct {
	seq  uint64
	done chan struct{} // closed when a pong answers it
	at   time.Time     // when the pong came, set before done is closed
}

// control returns s's control state, making it if create is set. s.mu is
// held.
func (s *Session) controlLocked(create bool) *control {
	if s.lifecycle == nil {
		if !create {
			return nil
		}
		s.lifecycle = &lifecycle{}
	}
	if s.ctl == nil && create {
		s.ctl = new(control)
	}
	return s.ctl
}

// Ping sends a ping and waits for its pong, or for ctx to end or the session
// to end first; it returns the round-trip time, from the ping's sending to
// the pong's reading. The payload is the session's, so that it can tell its
// pongs apart: send a ping of your own with SendFrame, and see its pong with
// OnPong or Events.OnPong.
//
// Pings may overlap; a pong answers the ping it echoes and every one sent
// before it (RFC 6455 §5.5.3 lets a peer answer the latest only).
//
// Someone must read for the pong to be seen. A default session reads on
// its own goroutine when its handler is not receiving, but not while the
// handler holds an open Reader, whose reading is the handler's. On the
// poll engine the loop reads for an Events session: do not wait there, in a
// callback run on the loop (without Options.Workers), or the pong cannot be
// read before ctx ends.
func (s *Session) Ping(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if _, _, ended := s.over(); ended {
		return 0, s.closeError()
	}
	s.mu.Lock()
	ctl := s.controlLocked(true)
	ctl.seq++
	w := &pingWait{seq: ctl.seq, done: make(chan struct{})}
	ctl.waiting = append(ctl.waiting, w)
	s.mu.Unlock()
	var payload [8]byte
	binary.BigEndian.PutUint64(payload[:], pingMark|w.seq)
	start := time.Now()
	if err := s.out().WritePing(payload[:]); err != nil {
		s.forgetPing(w)
		return 0, s.sent(err)
	}
	s.readForPong()
	select {
	case <-w.done:
		return w.at.Sub(start), nil
	case <-ctx.Done():
		s.forgetPing(w)
		return 0, ctx.Err()
	case <-s.Done():
		s.forgetPing(w)
		select {
		case <-w.done: // the pong came just before the end
			return w.at.Sub(start), nil
		default:
		}
		return 0, s.closeError()
	}
}

// forgetPing removes w from the pings waiting, unless a pong took it.
func (s *Session) forgetPing(w *pingWait) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctl := s.controlLocked(false)
	for i, x := range ctl.waiting {
		if x == w {
			ctl.waiting = append(ctl.waiting[:i], ctl.waiting[i+1:]...)
			return
		}
	}
}

// readForPong makes sure that someone reads the pong of a Ping on a
// default session: the session's own goroutine, when nobody reads.
func (s *Session) readForPong() {
	if s.receiver == nil {
		return // the loop reads
	}
	s.mu.Lock()
	if s.reader == readerNone {
		s.wakeReader()
	}
	s.mu.Unlock()
}

// OnPing sets f to be called with the payload of each ping the peer sends,
// after the session has queued its pong; nil removes it. On a default
// session f runs on the goroutine that reads: the handler's own inside
// Receive or Reader, or the session's. On an Events session of the poll
// engine it runs where the callbacks do, after Events.OnPing. f must not
// block or call Receive; the payload is borrowed for the call. A panic in
// f is logged and closes the session with 1011.
func (s *Session) OnPing(f func(payload []byte)) {
	s.mu.Lock()
	s.controlLocked(true).onPing = f
	s.mu.Unlock()
}

// OnPong sets f to be called with the payload of each pong the peer sends,
// keepalive and Ping's pongs included; nil removes it. It runs as OnPing's
// function does.
func (s *Session) OnPong(f func(payload []byte)) {
	s.mu.Lock()
	s.controlLocked(true).onPong = f
	s.mu.Unlock()
}

// received handles a ping or a pong that a reader got: a pong answers the
// Pings it covers, and the hook set for it runs. It reports false when a
// hook panicked; the session is then closing with 1011.
func (s *Session) received(ev codec.Event) bool {
	s.mu.Lock()
	ctl := s.controlLocked(false)
	if ctl == nil {
		s.mu.Unlock()
		return true
	}
	hook := ctl.onPing
	if ev.Kind == codec.EventPong {
		hook = ctl.onPong
		ctl.answer(ev.Payload, time.Now())
	}
	s.mu.Unlock()
	if hook == nil {
		return true
	}
	return s.runHook(hook, ev.Payload)
}

// answer completes the Pings that a pong with payload p answers.
func (ctl *control) answer(p []byte, at time.Time) {
	if len(p) != 8 || len(ctl.waiting) == 0 {
		return
	}
	v := binary.BigEndian.Uint64(p)
	if v&pingMark == 0 {
		return // a keepalive's
	}
	seq := v &^ pingMark
	n := 0
	for _, w := range ctl.waiting {
		if w.seq > seq {
			break
		}
		w.at = at
		close(w.done)
		n++
	}
	if n > 0 {
		clear(ctl.waiting[:n])
		ctl.waiting = append(ctl.waiting[:0], ctl.waiting[n:]...)
	}
}

// runHook calls a hook of OnPing or OnPong. A panic is logged and closes
// the session with 1011, without waiting: the caller reads, and must read
// on to the peer's answer.
func (s *Session) runHook(f func([]byte), payload []byte) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			logPanic(s.opts, s.Request(), v)
			s.closeNowait(CloseInternalError, "internal error", ErrHandlerPanic)
			ok = false
		}
	}()
	f(payload)
	return true
}

// closeNowait sends a close frame with code and reason, making cause the
// session's error, and returns at once.
func (s *Session) closeNowait(code CloseCode, reason string, cause error) {
	if s.lc != nil {
		s.lc.setCause(cause)
		s.lc.WriteClose(code, reason)
		return
	}
	s.mu.Lock()
	s.recordCause(cause)
	s.mu.Unlock()
	s.c.WriteClose(code, reason)
}

// controlEvent handles a ping or a pong that a reader of a default session
// got. It returns it as a Message of type frame.OpPing or frame.OpPong when
// Events.Run takes them so, in order with the messages, for Events.OnPing
// and Events.OnPong.
func (s *Session) controlEvent(ev codec.Event) (Message, bool) {
	if ev.Kind != codec.EventPing && ev.Kind != codec.EventPong {
		return Message{}, false
	}
	s.received(ev)
	s.mu.Lock()
	deliver := s.ctlEvents
	s.mu.Unlock()
	if !deliver {
		return Message{}, false
	}
	op := frame.OpPing
	if ev.Kind == codec.EventPong {
		op = frame.OpPong
	}
	return Message{Type: op, Payload: ev.Payload}, true
}

// control handles a ping or a pong the loop read for an Events session: a
// pong answers the Pings it covers at once, and the callbacks for it are
// queued in order with the messages.
func (lc *loopConn) control(ev codec.Event) {
	s := &lc.s
	s.mu.Lock()
	hooked := false
	if ctl := s.controlLocked(false); ctl != nil {
		if ev.Kind == codec.EventPong {
			ctl.answer(ev.Payload, time.Now())
		}
		hooked = ctl.onPing != nil || ctl.onPong != nil
	}
	s.mu.Unlock()
	evs := &lc.rt.events
	op := frame.OpPing
	if ev.Kind == codec.EventPong {
		op = frame.OpPong
	}
	if (op == frame.OpPing && evs.OnPing == nil || op == frame.OpPong && evs.OnPong == nil) && !hooked {
		return
	}
	lc.dispatch(job{kind: jobMessage, m: Message{Type: op, Payload: ev.Payload}})
}

// runControl calls the callbacks of a ping or a pong: Events' and then the
// session's. A panic is recovered by the caller, as for OnMessage.
func (lc *loopConn) runControl(m Message) {
	s := &lc.s
	evs := &lc.rt.events
	s.mu.Lock()
	var hook func([]byte)
	if ctl := s.controlLocked(false); ctl != nil {
		hook = ctl.onPing
		if m.Type == frame.OpPong {
			hook = ctl.onPong
		}
	}
	s.mu.Unlock()
	switch {
	case m.Type == frame.OpPing && evs.OnPing != nil:
		evs.OnPing(s, m.Payload)
	case m.Type == frame.OpPong && evs.OnPong != nil:
		evs.OnPong(s, m.Payload)
	}
	if hook != nil {
		hook(m.Payload)
	}
}
