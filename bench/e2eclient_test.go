package bench

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/wskit/wskit/bench/internal/harness"
	"github.com/wskit/wskit/bench/internal/servers"
	"github.com/wskit/wskit/frame"
)

// e2eConn is one client connection of BenchmarkE2E. Like rawClient it
// sends frames prepared once and reads replies into a reused buffer, but
// it only counts the replies: it parses each server frame's header and
// skips the payload without copying it, so that many connections, and
// many messages in flight on each, cost the client as little as possible.
// On a raw TCP server it counts bytes instead.
type e2eConn struct {
	nc  net.Conn
	buf []byte
	rc  replyCounter
}

// dialE2E connects to addr, upgrades on servers.URI unless raw, and checks
// one 64-byte echo.
func dialE2E(addr string, raw bool) (*e2eConn, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &e2eConn{nc: nc, buf: make([]byte, 32<<10)}
	if err := c.check(addr, raw); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func (c *e2eConn) check(addr string, raw bool) error {
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.nc.SetDeadline(time.Time{})
	p := payload(64)
	out, want := p, p
	if !raw {
		if err := harness.Upgrade(c.nc, addr, servers.URI); err != nil {
			return err
		}
		out = clientFrames(p, 1)
		want = serverReply(p, len(p))
	}
	if _, err := c.nc.Write(out); err != nil {
		return err
	}
	got := c.buf[:len(want)]
	if _, err := io.ReadFull(c.nc, got); err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("echo differs: got %x, want %x", got, want)
	}
	return nil
}

// clientFrames returns n copies of a masked binary frame carrying p, back
// to back. Every connection sends the same bytes, so they share them.
func clientFrames(p []byte, n int) []byte {
	h := frame.Header{Fin: true, Op: frame.OpBinary, Masked: true, Mask: [4]byte{0x5a, 0x13, 0xc7, 0x2e}, Length: int64(len(p))}
	one := frame.AppendHeader(make([]byte, 0, h.Size()+len(p)), h)
	hl := len(one)
	one = append(one, p...)
	frame.Mask(one[hl:], h.Mask, 0)
	return bytes.Repeat(one, n)
}

// budget hands out the b.N messages of a run to the connections.
type budget struct{ left atomic.Int64 }

// claim takes up to n messages and returns how many it got.
func (b *budget) claim(n int) int {
	v := b.left.Add(int64(-n))
	if v >= 0 {
		return n
	}
	return max(n+int(v), 0)
}

// runClosed echoes one message at a time until the budget runs out: out is
// one message as sent.
func (c *e2eConn) runClosed(bud *budget, out []byte) error {
	for bud.claim(1) == 1 {
		if _, err := c.nc.Write(out); err != nil {
			return err
		}
		for got := 0; got == 0; {
			n, err := c.nc.Read(c.buf)
			m, perr := c.rc.feed(c.buf[:n])
			if perr != nil {
				return perr
			}
			if got += m; got > 1 {
				return fmt.Errorf("%d replies to one message", got)
			}
			if err != nil && got == 0 {
				return err
			}
		}
	}
	return nil
}

// inlineWindow is the most bytes a window may hold for runWindow to write
// on the reading goroutine: the socket buffers on either side hold that
// much, so neither end's writes can wait on the other's reads.
const inlineWindow = 16 << 10

// runWindow keeps up to window messages in flight until the budget runs
// out: out holds window messages as sent. For each batch of replies read it
// claims as many new messages and sends them in one write. A window larger
// than inlineWindow is written by a second goroutine, so that the client
// cannot deadlock with a server that stops reading while its replies are
// not read.
func (c *e2eConn) runWindow(bud *budget, out []byte, window int) error {
	msgLen := len(out) / window
	inFlight := bud.claim(window)
	if inFlight == 0 {
		return nil
	}
	if len(out) <= inlineWindow {
		return c.runInline(bud, out, msgLen, inFlight)
	}
	credits := make(chan int, window)
	werr := make(chan error, 1)
	go func() {
		var err error
		for n := range credits {
			if err == nil {
				if _, err = c.nc.Write(out[:n*msgLen]); err != nil {
					c.nc.Close() // unblocks the reader
				}
			}
		}
		werr <- err
	}()
	credits <- inFlight
	var err error
	for inFlight > 0 {
		n, rerr := c.nc.Read(c.buf)
		m, perr := c.rc.feed(c.buf[:n])
		if perr != nil {
			err = perr
			break
		}
		if m > inFlight {
			err = fmt.Errorf("%d replies with %d messages in flight", m, inFlight)
			break
		}
		inFlight -= m
		if m > 0 {
			if g := bud.claim(m); g > 0 {
				credits <- g
				inFlight += g
			}
		}
		if rerr != nil && inFlight > 0 {
			err = rerr
			break
		}
	}
	if err != nil {
		c.nc.Close() // unblocks the writer
	}
	close(credits)
	if e := <-werr; e != nil && err == nil {
		err = e
	}
	return err
}

// runInline is runWindow reading and writing on one goroutine.
func (c *e2eConn) runInline(bud *budget, out []byte, msgLen, inFlight int) error {
	if _, err := c.nc.Write(out[:inFlight*msgLen]); err != nil {
		return err
	}
	for inFlight > 0 {
		n, rerr := c.nc.Read(c.buf)
		m, err := c.rc.feed(c.buf[:n])
		if err != nil {
			return err
		}
		if m > inFlight {
			return fmt.Errorf("%d replies with %d messages in flight", m, inFlight)
		}
		inFlight -= m
		if m > 0 {
			if g := bud.claim(m); g > 0 {
				if _, err := c.nc.Write(out[:g*msgLen]); err != nil {
					return err
				}
				inFlight += g
			}
		}
		if rerr != nil && inFlight > 0 {
			return rerr
		}
	}
	return nil
}

// replyCounter counts whole replies of size bytes in the stream from the
// server. For WebSocket it follows frame headers, which may be split
// across reads, and skips payloads; a reply may come in fragments.
type replyCounter struct {
	raw  bool
	size int
	got  int  // payload bytes of the current reply so far
	skip int  // payload bytes of the current frame not yet seen
	fin  bool // the current frame ends its reply
	hdr  [frame.MaxHeaderSize]byte
	hn   int // bytes of a split header in hdr
}

func (r *replyCounter) feed(p []byte) (int, error) {
	if r.raw {
		r.got += len(p)
		n := r.got / r.size
		r.got %= r.size
		return n, nil
	}
	msgs := 0
	for len(p) > 0 {
		if r.skip > 0 {
			n := min(r.skip, len(p))
			r.skip -= n
			p = p[n:]
			if r.skip == 0 {
				m, err := r.endFrame()
				if msgs += m; err != nil {
					return msgs, err
				}
			}
			continue
		}
		var (
			h   frame.Header
			n   int
			err error
		)
		if r.hn == 0 {
			if h, n, err = frame.ParseHeader(p); err != nil {
				return msgs, err
			}
			if n == 0 { // shorter than a header: keep it for the next read
				r.hn = copy(r.hdr[:], p)
				return msgs, nil
			}
			p = p[n:]
		} else {
			had := r.hn
			r.hn += copy(r.hdr[r.hn:], p)
			if h, n, err = frame.ParseHeader(r.hdr[:r.hn]); err != nil {
				return msgs, err
			}
			if n == 0 {
				return msgs, nil // all of p went into hdr
			}
			p = p[n-had:]
			r.hn = 0
		}
		wantOp := frame.OpBinary
		if r.got > 0 {
			wantOp = frame.OpContinuation
		}
		if h.Masked || h.Op != wantOp || h.Length > int64(r.size-r.got) {
			return msgs, fmt.Errorf("unexpected frame from the server: %+v after %d bytes", h, r.got)
		}
		r.got += int(h.Length)
		r.skip = int(h.Length)
		r.fin = h.Fin
		if r.skip == 0 {
			m, err := r.endFrame()
			if msgs += m; err != nil {
				return msgs, err
			}
		}
	}
	return msgs, nil
}

// endFrame returns 1 when the frame just skipped ends a reply.
func (r *replyCounter) endFrame() (int, error) {
	if !r.fin {
		return 0, nil
	}
	if r.got != r.size {
		return 0, fmt.Errorf("reply of %d bytes, want %d", r.got, r.size)
	}
	r.got = 0
	return 1, nil
}
