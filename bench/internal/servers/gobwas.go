package servers

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// gobwasMaxFrame bounds a frame's payload, as gobwas's README asks of
// users of its low-level API (it has no limit of its own); wskit's
// default MaxFrameSize.
const gobwasMaxFrame = 16 << 20

// gobwasFlushAt is how many bytes of replies are written together at most.
const gobwasFlushAt = 64 << 10

var errGobwasFrameTooBig = errors.New("servers: gobwas: frame too big")

// gobwasUpgrader is the zero-copy upgrade of gobwas's README, on a raw
// connection: it accepts the echo path only.
var gobwasUpgrader = ws.Upgrader{
	OnRequest: func(uri []byte) error {
		if path, _, _ := strings.Cut(string(uri), "?"); path != Path {
			return ws.RejectConnectionError(ws.RejectionStatus(http.StatusNotFound))
		}
		return nil
	},
}

// gobwasUpgrade upgrades c within a deadline.
func gobwasUpgrade(c net.Conn) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := gobwasUpgrader.Upgrade(c); err != nil {
		return err
	}
	return c.SetDeadline(time.Time{})
}

// appendWriter is an io.Writer that appends to b, for ws.WriteHeaderBuffer.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// gobwasEcho is the per-frame echo of gobwas's README ("the lower-level
// example without wsutil": ws.ReadHeader, read the payload, ws.Cipher,
// ws.WriteHeader with Masked cleared, write the payload), made zero-copy:
// headers are read with ws.ReadHeaderBuffer from a bufio.Reader (a frame
// costs no read call of its own), checked with ws.CheckHeader, and each
// payload is read straight into the output buffer behind its reply's
// header and unmasked there, and each reply is one write, as the README's
// loop writes each message. With batch set (the -batch variants, not the
// README's), replies to frames that arrived together leave in one write;
// in mode=pipe32 that is worth about ten times the throughput. Pings are
// answered with pongs, pongs dropped, a close frame is echoed (as the
// README does) and ends the connection; fragments are echoed as they come.
type gobwasEcho struct {
	hdr   [ws.MaxHeaderSize]byte // scratch for the header functions
	out   appendWriter
	batch bool
}

// serve answers the frames in br until its buffer is empty, and at least
// one: it blocks until a frame arrives. st is the connection's state
// (whether a fragmented message is under way), which ws.CheckHeader reads
// and serve updates. It returns io.EOF after answering a close frame.
func (e *gobwasEcho) serve(c net.Conn, br *bufio.Reader, st *ws.State) error {
	for {
		h, err := ws.ReadHeaderBuffer(br, e.hdr[:])
		if err != nil {
			return err
		}
		if err := ws.CheckHeader(h, *st); err != nil {
			return err
		}
		if !h.OpCode.IsControl() {
			if h.Fin {
				*st = st.Clear(ws.StateFragmented)
			} else {
				*st = st.Set(ws.StateFragmented)
			}
		}
		if h.Length > gobwasMaxFrame {
			return errGobwasFrameTooBig
		}
		reply := h
		reply.Masked = false
		if h.OpCode == ws.OpPing {
			reply.OpCode = ws.OpPong
		}
		start := len(e.out.b)
		if err := ws.WriteHeaderBuffer(&e.out, reply, e.hdr[:]); err != nil {
			return err
		}
		at := len(e.out.b)
		e.out.b = slices.Grow(e.out.b, int(h.Length))[:at+int(h.Length)]
		p := e.out.b[at:]
		if _, err := io.ReadFull(br, p); err != nil {
			return err
		}
		ws.Cipher(p, h.Mask, 0)
		if h.OpCode == ws.OpPong {
			e.out.b = e.out.b[:start]
		}
		closing := h.OpCode == ws.OpClose
		if closing || !e.batch || br.Buffered() == 0 || len(e.out.b) >= gobwasFlushAt {
			if err := e.flush(c); err != nil {
				return err
			}
		}
		if closing {
			return io.EOF
		}
		if br.Buffered() == 0 {
			return nil
		}
	}
}

func (e *gobwasEcho) flush(c net.Conn) error {
	if len(e.out.b) == 0 {
		return nil
	}
	_, err := c.Write(e.out.b)
	e.out.b = e.out.b[:0]
	return err
}

// startGobwas is gobwas/ws with a goroutine per connection: a raw accept
// loop, the README's zero-copy ws.Upgrader on each connection, and
// gobwasEcho on a bufio.Reader of 4 KiB held by the connection.
func (s *Server) startGobwas(ln net.Listener, batch bool) {
	var held connSet[net.Conn]
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				s.done <- err
				return
			}
			if !held.add(c) {
				c.Close()
				continue
			}
			go func() {
				defer held.done(c)
				defer c.Close()
				if gobwasUpgrade(c) != nil {
					return
				}
				br := bufio.NewReaderSize(c, 4<<10)
				e := gobwasEcho{batch: batch}
				st := ws.StateServerSide
				for e.serve(c, br, &st) == nil {
				}
			}()
		}
	}()
	s.stop = func() error {
		err := ln.Close()
		held.closeAll(func(c net.Conn) { c.Close() })
		return err
	}
}
