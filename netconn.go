package wskit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// NetConn returns a net.Conn that carries a byte stream over s, for
// tunnelling a protocol (HTTP, SSH, a line protocol) through a WebSocket,
// as coder's and gorilla's NetConn do. Each Write sends its bytes as one
// message of type typ; Read returns the bytes of the messages received, in
// order, with message boundaries lost. A message of the other type closes
// the session with 1003 Unsupported Data and fails the Read. Binary suits
// most protocols: with Text, each Write must be valid UTF-8 on its own.
//
// Read returns io.EOF once the session has ended with 1000 Normal Closure
// or 1001 Going Away, and the session's *CloseError after any other end.
// Close runs the close handshake with 1000. When ctx ends, the session is
// cut with CloseNow.
//
// Deadlines apply to calls in progress too, as net.Conn requires, and a
// call past its deadline returns an error whose Timeout method reports
// true (it matches os.ErrDeadlineExceeded). A read deadline leaves the
// session as it was: a later Read goes on where the stream stopped. A
// write deadline that passes during a write cuts the session, as
// SendContext does: part of the message may have gone out.
//
// The net.Conn takes over receiving: do not call Receive or Messages on s
// while it is in use. An Events session on the poll engine does not
// receive, and its NetConn's Read returns ErrNotReceiving.
func NetConn(ctx context.Context, s *Session, typ MessageType) net.Conn {
	c := &netConn{s: s, typ: typ}
	c.stop = context.AfterFunc(ctx, func() { s.CloseNow() })
	return c
}

type netConn struct {
	s    *Session
	typ  MessageType
	stop func() bool // stops cutting the session when NetConn's ctx ends

	rmu sync.Mutex // serialises Reads
	rem []byte     // the rest of the message being read, borrowed from s
	eof bool       // the session ended with 1000 or 1001

	wmu sync.Mutex // serialises Writes, so that deadlines see one at a time

	rd, wd deadline
}

func (c *netConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for len(c.rem) == 0 {
		if c.eof {
			return 0, io.EOF
		}
		ctx, cancel := context.WithCancel(context.Background())
		if !c.rd.begin(cancel) {
			cancel()
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		}
		m, err := c.s.Receive(ctx)
		c.rd.end()
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil && errors.Is(err, ctx.Err()):
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		case CloseStatus(err) == CloseNormal || CloseStatus(err) == CloseGoingAway:
			c.eof = true
			return 0, io.EOF
		default:
			return 0, err
		}
		if m.Type != c.typ {
			go c.s.Close(CloseUnsupportedData, "unexpected message type")
			return 0, fmt.Errorf("wskit: NetConn received a %v message, want %v", m.Type, c.typ)
		}
		c.rem = m.Payload
	}
	n := copy(p, c.rem)
	c.rem = c.rem[n:]
	return n, nil
}

func (c *netConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if !c.wd.begin(cancel) {
		return 0, c.opError("write", os.ErrDeadlineExceeded)
	}
	err := c.s.SendContext(ctx, c.typ, p)
	c.wd.end()
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			err = os.ErrDeadlineExceeded
		}
		return 0, c.opError("write", err)
	}
	return len(p), nil
}

// Close closes the session with 1000 Normal Closure, waiting for the peer's
// answer up to Options.Timeout.
func (c *netConn) Close() error {
	c.stop()
	return c.s.Close(CloseNormal, "")
}

func (c *netConn) LocalAddr() net.Addr  { return c.s.LocalAddr() }
func (c *netConn) RemoteAddr() net.Addr { return c.s.RemoteAddr() }

func (c *netConn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

func (c *netConn) SetReadDeadline(t time.Time) error {
	c.rd.set(t)
	return nil
}

func (c *netConn) SetWriteDeadline(t time.Time) error {
	c.wd.set(t)
	return nil
}

func (c *netConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "websocket", Source: c.s.LocalAddr(), Addr: c.s.RemoteAddr(), Err: err}
}

// deadline is a read or write deadline of a netConn: when it passes, the
// call in progress, if any, is cancelled, and later calls fail at once
// until it is set again.
type deadline struct {
	mu      sync.Mutex
	timer   *time.Timer
	gen     uint64 // counts sets, so that the timer of an earlier one does nothing
	expired bool
	pending context.CancelFunc // of the call in progress
}

// begin registers the cancel function of a call, unless the deadline has
// passed (it returns false).
func (d *deadline) begin(cancel context.CancelFunc) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.expired {
		return false
	}
	d.pending = cancel
	return true
}

// end unregisters the call in progress.
func (d *deadline) end() {
	d.mu.Lock()
	d.pending = nil
	d.mu.Unlock()
}

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.expired = false
	if t.IsZero() {
		return
	}
	wait := time.Until(t)
	if wait <= 0 {
		d.expireLocked()
		return
	}
	gen := d.gen
	d.timer = time.AfterFunc(wait, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.gen == gen {
			d.expireLocked()
		}
	})
}

func (d *deadline) expireLocked() {
	d.expired = true
	if d.pending != nil {
		d.pending()
		d.pending = nil
	}
}
