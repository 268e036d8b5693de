package wskit

import (
	"github.com/wskit/wskit/internal/bufpool"
	"github.com/wskit/wskit/internal/wsconn"
)

// CloseNow closes the connection at once, without the close handshake: for
// a peer that cannot be trusted to answer, or a program that is going away.
// Output not yet written is dropped, and the peer sees the connection end
// without a close frame. The session ends with 1006 Abnormal Closure and
// ErrClosed as its error, unless it had ended already. CloseNow waits for
// the end, except on an Events session of the poll engine, whose callbacks
// run on the loop (see [Session.Close]). A session of Dial or
// Server.Upgrade gives its buffers back.
func (s *Session) CloseNow() error {
	if s.lc != nil {
		s.lc.setCause(ErrClosed)
		s.lc.pe.Abort(ErrClosed)
		return nil
	}
	s.mu.Lock()
	s.recordCause(ErrClosed)
	s.stopped = true
	s.dropQueue()
	s.signal() // a waiting receiver returns
	if s.room != nil {
		close(s.room) // a reader waiting for room drops its message
		s.room = nil
	}
	s.mu.Unlock()
	s.c.Abort()
	s.mu.Lock()
	s.abandonStream()
	s.wakeReader() // the reader's read fails, and it ends the session
	s.mu.Unlock()
	<-s.done
	if s.owned {
		s.releaseBuffers()
	}
	return nil
}

// CloseRead is for a session that only sends: messages that come from now
// on are dropped, as are those received and not taken yet, while the
// session goes on reading for its own sake: it answers pings, calls the
// OnPing and OnPong hooks, and sees the peer's close. Receive and Messages
// then wait for the session to end as if no message came, and
// Events.OnMessage is no longer called; Context and Done tell of the end.
// A message that comes is not a violation, unlike in coder/websocket: it is
// dropped.
func (s *Session) CloseRead() {
	if s.lc != nil {
		s.lc.pe.Lock() // the loop reads it under this lock
		s.readClosed = true
		s.lc.pe.Unlock()
		return
	}
	s.mu.Lock()
	s.readClosed = true
	if s.hasNext && s.next.Type.IsData() {
		s.c.Unpin(s.nextPin)
		s.next, s.nextPin, s.hasNext = Message{}, wsconn.Pin{}, false
		s.outstanding--
	}
	kept := s.queue[:0]
	for _, q := range s.queue {
		if q.m.Type.IsData() {
			s.queuedBytes -= queuedCost(len(q.m.Payload))
			s.outstanding--
			bufpool.Put(q.buf)
			continue
		}
		kept = append(kept, q)
	}
	clear(s.queue[len(kept):])
	s.queue = kept
	if s.room != nil {
		close(s.room)
		s.room = nil
	}
	if s.ctlEvents {
		// Events.Run goes on receiving, for OnPing and OnPong.
		s.mu.Unlock()
		return
	}
	s.stopped = true
	s.signal()
	s.abandonStream()
	s.wakeReader()
	s.mu.Unlock()
}
