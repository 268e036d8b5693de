package wskit

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/bufpool"
	"github.com/wskit/wskit/internal/wsconn"
)

// ErrMessageDropped is returned by the Read of a message reader whose
// message was dropped: Receive or Reader was called, or the session was
// closed, before it was read to its end.
var ErrMessageDropped = errors.New("wskit: the rest of the message was dropped")

// errStreamOnLoop is returned by Writer on an Events session of the poll
// engine, whose sends cannot wait for a stream to end.
var errStreamOnLoop = errors.New("wskit: an Events session on the poll engine cannot stream a message")

// Reader waits for the next message and returns its type and a reader of
// its payload, which reads the message from the connection as it arrives:
// a message of any size within Options.MaxMessageSize is read holding only
// a frame at a time (at most Options.MaxFrameSize). The limit and, for
// text, the UTF-8 check apply as they do to Receive, and a violation fails
// the Read and the session. A message that permessage-deflate compressed,
// or that had begun to arrive when Reader was called while the session's
// own goroutine was reading (see Session), is held whole.
//
// ctx bounds the wait for the message and each Read: when it ends, Read
// returns ctx's error and the session goes on, but the rest of the message
// can no longer be read. The reader is valid until the next Reader,
// Receive or step of Messages, which drop what is left of the message.
// While a message is being read, the peer's pings are answered as Read
// reads, not in between; so read it to its end without long pauses.
func (s *Session) Reader(ctx context.Context) (MessageType, io.Reader, error) {
	if s.receiver == nil || s.onEvents {
		return 0, nil, ErrNotReceiving
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.dropStream()
	s.mu.Lock()
	s.releaseHeld()
	interrupted := false
	for s.reader == readerBackground && !s.ended && !s.stopped && len(s.queue) == 0 && !s.hasNext {
		// The session's goroutine reads: take the read side over, so
		// that the message is not joined whole.
		if s.handover == nil {
			s.handover = make(chan struct{})
		}
		h := s.handover
		s.mu.Unlock()
		s.c.Interrupt()
		interrupted = true
		select {
		case <-h:
		case <-s.done:
		case <-ctx.Done():
		}
		s.mu.Lock()
		if err := ctx.Err(); err != nil {
			s.handover = nil // the session's goroutine reads on
			s.mu.Unlock()
			return 0, nil, err
		}
	}
	s.handover = nil // if the loop ended otherwise, the session's goroutine reads on
	if interrupted && s.reader != readerBackground {
		// The background reader lent a message instead of taking the
		// Interrupt: no Next may see it.
		s.c.ClearInterrupt()
	}
	if m, ok := s.take(); ok {
		s.mu.Unlock()
		r := s.streamReader()
		r.whole.Reset(m.Payload)
		r.s, r.ctx, r.left, r.whole0 = s, ctx, nil, true
		return m.Type, r, nil
	}
	if s.reader != readerNone || s.ended || s.stopped {
		s.mu.Unlock()
		// Waits for the end: Close or CloseRead, or a message Receive
		// would take, which the loop above has let in.
		m, err := s.receive(ctx)
		if err != nil {
			return 0, nil, err
		}
		r := s.streamReader()
		r.whole.Reset(m.Payload)
		r.s, r.ctx, r.left, r.whole0 = s, ctx, nil, true
		return m.Type, r, nil
	}
	s.reader = readerReceiver
	s.mu.Unlock()
	s.c.SetStreaming(true)
	ev, err := s.nextFragment(ctx)
	s.c.SetStreaming(false)
	if err != nil {
		s.mu.Lock()
		s.reader = readerNone
		s.startHold()
		s.mu.Unlock()
		return 0, nil, err
	}
	r := s.streamReader()
	r.s, r.ctx, r.whole0 = s, ctx, false
	r.left, r.fin = ev.Payload, ev.Fin
	r.open = true
	s.streamEnd(r)
	return ev.Op, r, nil
}

// streamReader returns the session's message reader, made by the first
// Reader: a session that never streams does not carry one. s.rmu is held.
func (s *Session) streamReader() *messageReader {
	if s.stream == nil {
		s.stream = new(messageReader)
	}
	return s.stream
}

// nextFragment reads until a data event comes, on the goroutine that owns
// the read side: a message, or the next fragment of a streamed one.
func (s *Session) nextFragment(ctx context.Context) (codec.Event, error) {
	for {
		ev, err := s.c.NextContext(ctx)
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return ev, err
			}
			s.finish(err)
			return ev, s.closeError()
		}
		if ev.Kind == codec.EventMessage {
			return ev, nil
		}
		s.controlEvent(ev)
	}
}

// streamEnd gives the read side up once a streamed message has been read
// to its end: nobody reads until a receiver does, or until holdGrace, as
// after a message returned by Receive. While it has not ended, the reader
// keeps the read side between Reads.
func (s *Session) streamEnd(r *messageReader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.open && !r.fin && !s.stopped {
		s.reader = readerStream
		return
	}
	if r.open && !r.fin {
		// Close or CloseRead came while the message was read: the
		// session's goroutine reads on, dropping the rest.
		s.dropping = true
		r.open = false
	}
	s.reader = readerNone
	if s.stopped {
		s.wakeReader()
		return
	}
	s.startHold()
}

// dropStream drops what is left of a streamed message before the next
// message is received. s.rmu is held.
func (s *Session) dropStream() {
	r := s.stream
	if r == nil {
		return
	}
	if r.whole0 {
		r.whole0 = false
		r.whole.Reset(nil)
		return
	}
	if !r.open {
		return
	}
	r.open, r.left = false, nil
	if r.fin {
		return
	}
	s.mu.Lock()
	if s.reader != readerStream {
		s.mu.Unlock()
		return // the session's goroutine took over and drops it
	}
	s.reader = readerReceiver
	s.mu.Unlock()
	for {
		ev, err := s.nextFragment(context.Background())
		if err != nil || ev.Fin {
			break
		}
	}
	s.mu.Lock()
	s.reader = readerNone
	s.mu.Unlock()
}

// abandonStream lets the session's goroutine read on past a streamed
// message that is not being read, dropping the rest, so that Close and
// CloseRead see the peer's answer. s.mu is held.
func (s *Session) abandonStream() {
	if s.reader == readerStream {
		s.reader = readerNone
		s.dropping = true
	}
}

// skipDropped reports whether ev is a fragment of a streamed message that
// was abandoned, which the reader drops. Only the goroutine that owns the
// read side calls it.
func (s *Session) skipDropped(ev codec.Event) bool {
	if ev.Kind != codec.EventMessage {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dropping {
		return false
	}
	if ev.Fin {
		s.dropping = false
	}
	return true
}

// messageReader reads one message for Reader: from the connection frame by
// frame, or from a message received whole.
type messageReader struct {
	s      *Session
	ctx    context.Context
	left   []byte // the rest of the current fragment, borrowed
	fin    bool   // the current fragment is the last
	open   bool   // a streamed message is being read
	whole  bytesReader
	whole0 bool // the message was received whole
}

func (r *messageReader) Read(p []byte) (int, error) {
	s := r.s
	for !r.whole0 && len(r.left) == 0 {
		if !r.open || r.fin {
			if r.open {
				return 0, io.EOF
			}
			return 0, ErrMessageDropped
		}
		s.mu.Lock()
		if s.reader != readerStream {
			s.mu.Unlock()
			r.open = false
			return 0, ErrMessageDropped
		}
		s.reader = readerReceiver
		s.mu.Unlock()
		ev, err := s.nextFragment(r.ctx)
		if err != nil {
			s.mu.Lock()
			if s.ended {
				s.reader = readerNone
			} else {
				s.reader = readerStream
			}
			s.mu.Unlock()
			if r.ctx.Err() != nil && errors.Is(err, r.ctx.Err()) {
				// What was read stays in the protocol's state, but this
				// reader's context has ended: the rest is dropped.
				s.mu.Lock()
				s.abandonStream()
				s.wakeReader()
				s.mu.Unlock()
				r.open = false
			}
			return 0, err
		}
		r.left, r.fin = ev.Payload, ev.Fin
		s.streamEnd(r)
	}
	// The bytes are borrowed: Close, CloseNow and CloseRead set stopped
	// under s.mu before they give the buffers back.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		r.left, r.open = nil, false
		if r.whole0 {
			r.whole0 = false
			r.whole.Reset(nil)
		}
		return 0, ErrMessageDropped
	}
	if r.whole0 {
		return r.whole.Read(p)
	}
	n := copy(p, r.left)
	r.left = r.left[n:]
	return n, nil
}

// bytesReader reads a byte slice, as bytes.Reader does, without the rest of
// bytes.Reader's methods.
type bytesReader struct{ b []byte }

func (r *bytesReader) Reset(b []byte) { r.b = b }

func (r *bytesReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// Writer returns a writer that sends one message of type typ in fragments
// as it is written, for a message too large to hold whole: each fragment
// holds up to 32 KiB of what was written, and Close sends the last one.
// Until Close, the session's other data messages wait, as do the Hub
// messages for it; pings, pongs and Close still go out. Close must be
// called. A streamed message is not compressed.
//
// ctx bounds each fragment's send as it bounds SendContext: a wait for
// room ends with ctx's error; a write cut by ctx ends the session. After
// an error, Write and Close return it, and the message stays unfinished:
// the session can send no other data message, so close it.
//
// An Events session on the poll engine cannot stream (its sends must never
// wait): Writer returns an error there.
func (s *Session) Writer(ctx context.Context, typ MessageType) (io.WriteCloser, error) {
	if !typ.IsData() || typ == frame.OpContinuation {
		return nil, errors.New("wskit: Writer takes Text or Binary")
	}
	if s.lc != nil {
		return nil, errStreamOnLoop
	}
	err := s.c.BeginStream(ctx.Done())
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, s.sendFailed(err)
	}
	w := writerPool.Get().(*messageWriter)
	w.s, w.c, w.ctx, w.op = s, s.c, ctx, typ
	w.buf = bufpool.Get(fragmentSize)
	return w, nil
}

// fragmentSize is the most a Writer's fragment holds.
const fragmentSize = 32 << 10

var writerPool = sync.Pool{New: func() any { return new(messageWriter) }}

type messageWriter struct {
	s      *Session
	c      *wsconn.Conn
	ctx    context.Context
	op     frame.Opcode // of the next fragment: the type, then OpContinuation
	buf    *[]byte
	err    error
	closed bool
}

func (w *messageWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("wskit: Write after Close")
	}
	n := 0
	for len(p) > 0 && w.err == nil {
		b := *w.buf
		if len(b) == 0 && len(p) >= fragmentSize {
			// A whole fragment's worth: sent without a copy.
			w.send(p[:fragmentSize], false)
			n += fragmentSize
			p = p[fragmentSize:]
			continue
		}
		k := copy(b[len(b):fragmentSize], p)
		*w.buf = b[:len(b)+k]
		n += k
		p = p[k:]
		if len(*w.buf) == fragmentSize {
			w.send(*w.buf, false)
			*w.buf = (*w.buf)[:0]
		}
	}
	if w.err != nil {
		return n, w.err
	}
	return n, nil
}

// send sends one fragment.
func (w *messageWriter) send(p []byte, fin bool) {
	err := w.c.WriteFragment(w.ctx, frame.Header{Fin: fin, Op: w.op, Length: int64(len(p))}, p)
	w.op = frame.OpContinuation
	if err != nil {
		if w.ctx.Err() == nil || !errors.Is(err, w.ctx.Err()) {
			err = w.s.sendFailed(err)
		}
		w.err = err
	}
}

// Close sends the last fragment, ending the message, and lets the
// session's other sends go on.
func (w *messageWriter) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err == nil {
		w.send(*w.buf, true)
	}
	if w.err != nil && !errors.Is(w.err, ErrClosed) {
		// The message cannot be finished, and no other may start: the
		// session ends.
		w.s.closeNowait(CloseInternalError, "message left unfinished", w.err)
	}
	w.c.EndStream()
	err := w.err
	bufpool.Put(w.buf)
	*w = messageWriter{}
	writerPool.Put(w)
	return err
}
