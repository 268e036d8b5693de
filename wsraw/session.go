// Package wsraw gives raw WebSocket sessions, Ktor's webSocketRaw: every
// frame as it arrives, control frames and fragments included, and every
// frame written exactly as given. Nothing is automatic: no pong, no close
// reply, no reassembly, no keepalive. The limits still hold: an oversize
// frame or message, a protocol violation or invalid UTF-8 in a text message
// sends its close frame (1009, 1002, 1007) and ends the session.
//
// Sessions come from wskit.Server.WebSocketRaw and wskit.Server.UpgradeRaw.
// Their names match those of wskit.Session where they do the same:
// SendFrame, CloseReason, Request, Subprotocol, RemoteAddr, LocalAddr.
package wsraw

import (
	"context"
	"errors"
	"iter"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/rawhook"
	"github.com/wskit/wskit/internal/wsconn"
)

// Session is a raw WebSocket connection. SendFrame is safe from any
// goroutine; ReceiveFrame and Frames from one goroutine at a time.
type Session struct {
	c        *wsconn.Conn
	req      *http.Request
	protocol string
	err      error
	owned    bool   // the caller runs it: its buffers go back at Close
	onClose  func() // for owned sessions, called at the first CloseNow
	// For owned sessions: readIdle, reading, or closed (then whoever
	// leaves the connection last releases it).
	state atomic.Int32
}

const (
	readIdle int32 = iota
	reading
	closed
)

func init() {
	rawhook.NewSession = func(c *wsconn.Conn, req *http.Request, protocol string, owned bool, onClose func()) any {
		return &Session{c: c, req: req, protocol: protocol, owned: owned, onClose: onClose}
	}
}

// ErrClosed is returned by ReceiveFrame once both close frames have passed,
// or by sends after the session has ended. It is wskit.ErrClosed.
var ErrClosed = wsconn.ErrClosed

// ReceiveFrame returns the next frame. Its payload is unmasked and
// borrowed until the next ReceiveFrame. The mask bit and key are as
// received. If ctx ends first, ReceiveFrame returns its error, and the
// session goes on: a frame half read is kept for the next call.
func (s *Session) ReceiveFrame(ctx context.Context) (frame.Frame, error) {
	if s.err != nil {
		return frame.Frame{}, s.err
	}
	if s.owned && !s.state.CompareAndSwap(readIdle, reading) {
		return frame.Frame{}, ErrClosed
	}
	ev, err := s.c.NextContext(ctx)
	if s.owned && !s.state.CompareAndSwap(reading, readIdle) {
		s.c.Release() // closed while reading: the reader releases
		return frame.Frame{}, ErrClosed
	}
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return frame.Frame{}, err
		}
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
			f, err := s.ReceiveFrame(context.Background())
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

// SendFrame sends one frame exactly as given: opcode, FIN, RSV bits and
// payload, unchecked, so a test can send what a conformant peer would not.
// Close frames too: a raw session closes by sending one, reading on until
// the peer's, and calling CloseNow. Masking follows the role (a server
// never masks). After a close frame has been sent, only pings and pongs
// can follow.
func (s *Session) SendFrame(h frame.Header, payload []byte) error {
	return s.c.WriteFrame(h, payload)
}

// CloseReason returns the code and reason of the first close frame seen
// either way, or of the violation that ended the session; ok is false while
// none has been. Unlike wskit.Session's, it does not report 1006 for a
// connection that ended without a close frame: a raw session keeps no
// account of how it ended beyond the frames.
func (s *Session) CloseReason() (r frame.CloseReason, ok bool) {
	code, reason, ok := s.c.CloseReason()
	return frame.CloseReason{Code: code, Reason: reason}, ok
}

// CloseNow closes the network connection at once, without a close frame:
// send one with SendFrame first for a clean close. A ReceiveFrame in
// progress returns.
func (s *Session) CloseNow() error {
	err := s.c.Close()
	if !s.owned {
		return err
	}
	switch s.state.Swap(closed) {
	case closed:
		return err
	case readIdle:
		s.c.Release()
	}
	if s.onClose != nil {
		s.onClose()
	}
	return err
}

// Request returns the HTTP request that opened the session.
func (s *Session) Request() *http.Request { return s.req }

// Subprotocol returns the negotiated subprotocol, or "".
func (s *Session) Subprotocol() string { return s.protocol }

// RemoteAddr returns the peer's network address.
func (s *Session) RemoteAddr() net.Addr { return s.c.RemoteAddr() }

// LocalAddr returns the local network address.
func (s *Session) LocalAddr() net.Addr { return s.c.LocalAddr() }
