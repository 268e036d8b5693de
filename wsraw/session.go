// Package wsraw gives raw WebSocket sessions, Ktor's webSocketRaw: every
// frame as it arrives, control frames and fragments included, and every
// frame written exactly as given. Nothing is automatic: no pong, no close
// reply, no reassembly, no keepalive. The limits still hold: an oversize
// frame or message, a protocol violation or invalid UTF-8 in a text message
// sends its close frame (1009, 1002, 1007) and ends the session.
//
// Sessions come from wskit.Server.WebSocketRaw.
package wsraw

import (
	"errors"
	"iter"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/wsconn"
)

// Session is a raw WebSocket connection. WriteFrame is safe from any
// goroutine; ReadFrame and Frames from one goroutine at a time.
type Session struct {
	c        *wsconn.Conn
	req      *http.Request
	protocol string
	err      error
	owned    bool // the caller runs it: its buffers go back at Close
	// For owned sessions: readIdle, reading, or closed (then whoever
	// leaves the connection last releases it).
	state atomic.Int32
}

const (
	readIdle int32 = iota
	reading
	closed
)

// New wraps an upgraded connection. It is how wskit's server builds raw
// sessions; c's protocol must be in raw mode. An owned session, which no
// route handler runs, gives its buffers back at Close.
func New(c *wsconn.Conn, req *http.Request, protocol string, owned bool) *Session {
	return &Session{c: c, req: req, protocol: protocol, owned: owned}
}

// ErrClosed is returned by ReadFrame once both close frames have passed, or
// by writes after the session has ended.
var ErrClosed = wsconn.ErrClosed

// ReadFrame returns the next frame. Its payload is unmasked and borrowed
// until the next ReadFrame. The mask bit and key are as received.
func (s *Session) ReadFrame() (frame.Frame, error) {
	if s.err != nil {
		return frame.Frame{}, s.err
	}
	if s.owned && !s.state.CompareAndSwap(readIdle, reading) {
		return frame.Frame{}, ErrClosed
	}
	ev, err := s.c.Next()
	if s.owned && !s.state.CompareAndSwap(reading, readIdle) {
		s.c.Release() // closed while reading: the reader releases
		return frame.Frame{}, ErrClosed
	}
	if err != nil {
		s.err = err
		return frame.Frame{}, err
	}
	h := frame.Header{Fin: true, Length: int64(len(ev.Payload))}
	switch ev.Kind {
	case codec.EventMessage:
		h.Fin, h.Rsv, h.Op = ev.Fin, ev.Rsv, ev.Op
	case codec.EventPing:
		h.Op = frame.OpPing
	case codec.EventPong:
		h.Op = frame.OpPong
	case codec.EventClose:
		h.Op = frame.OpClose
	}
	return frame.Frame{Header: h, Payload: ev.Payload}, nil
}

// Frames returns an iterator over received frames; it stops at the first
// error, which Err then returns (nil after a completed close handshake).
func (s *Session) Frames() iter.Seq[frame.Frame] {
	return func(yield func(frame.Frame) bool) {
		for {
			f, err := s.ReadFrame()
			if err != nil || !yield(f) {
				return
			}
		}
	}
}

// Err returns the error that stopped reading: nil while reading goes on and
// after both close frames have passed.
func (s *Session) Err() error {
	if errors.Is(s.err, wsconn.ErrClosed) {
		return nil
	}
	return s.err
}

// WriteFrame writes one frame exactly as given: opcode, FIN, RSV bits and
// payload, unchecked, so a test can send what a conformant peer would not.
// Masking follows the role (a server never masks). After a close frame has
// been written, only pings and pongs can follow.
func (s *Session) WriteFrame(h frame.Header, payload []byte) error {
	return s.c.WriteFrame(h, payload)
}

// CloseReason returns the code and reason of the first close frame seen
// either way, or of the violation that ended the session.
func (s *Session) CloseReason() (code frame.CloseCode, reason string, ok bool) {
	return s.c.CloseReason()
}

// Close closes the network connection at once, without a close frame:
// write one with WriteFrame first for a clean close.
func (s *Session) Close() error {
	err := s.c.Close()
	if s.owned && s.state.Swap(closed) == readIdle {
		s.c.Release()
	}
	return err
}

// Request returns the HTTP request that opened the session.
func (s *Session) Request() *http.Request { return s.req }

// Subprotocol returns the negotiated subprotocol, or "".
func (s *Session) Subprotocol() string { return s.protocol }

// RemoteAddr returns the peer's network address.
func (s *Session) RemoteAddr() net.Addr { return s.c.NetConn().RemoteAddr() }
