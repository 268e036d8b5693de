package bench

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/wskit/wskit/frame"
)

// The client's handshake uses RFC 6455's sample key, whose accept value is
// known (§1.3), so nothing is computed per connection.
const (
	handshakeKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	handshakeAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// rawClient is the one client every server is measured with: a TCP
// connection, a hand-written upgrade, and a masked frame built once. An echo
// writes that frame and reads the reply into a reused buffer, so it allocates
// nothing and does as little work as a client can: all the time and every
// allocation measured per echo belong to the server (see
// TestRawClientZeroAllocs).
type rawClient struct {
	nc   net.Conn
	out  []byte // the masked frame sent on every echo
	want []byte // the payload the reply must carry
	buf  []byte // read buffer: buf[r:w] is read and not yet consumed
	r, w int
}

// dialRaw connects to addr (host:port), upgrades on path and prepares a
// masked binary frame carrying payload. Binary, not text: gorilla does not
// validate UTF-8 and wskit does, which would measure a difference in work,
// not in speed.
func dialRaw(addr, path string, payload []byte) (*rawClient, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &rawClient{
		nc:   nc,
		want: payload,
		// Room for the largest frame the reply can come in, and for the
		// handshake response.
		buf: make([]byte, max(len(payload)+frame.MaxHeaderSize, 4096)),
	}
	if err := c.handshake(addr, path); err != nil {
		nc.Close()
		return nil, err
	}
	h := frame.Header{Fin: true, Op: frame.OpBinary, Masked: true, Mask: [4]byte{0x5a, 0x13, 0xc7, 0x2e}, Length: int64(len(payload))}
	c.out = frame.AppendHeader(make([]byte, 0, h.Size()+len(payload)), h)
	n := len(c.out)
	c.out = append(c.out, payload...)
	frame.Mask(c.out[n:], h.Mask, 0)
	return c, nil
}

func (c *rawClient) handshake(addr, path string) error {
	c.nc.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.nc.SetDeadline(time.Time{})
	req := "GET " + path + " HTTP/1.1\r\n" +
		"Host: " + addr + "\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + handshakeKey + "\r\n" +
		"Sec-WebSocket-Version: 13\r\n\r\n"
	if _, err := c.nc.Write([]byte(req)); err != nil {
		return err
	}
	for {
		if end := bytes.Index(c.buf[:c.w], []byte("\r\n\r\n")); end >= 0 {
			resp := c.buf[:end+4]
			// Bytes after the response, if any, are the first frames.
			c.r = end + 4
			if !bytes.HasPrefix(resp, []byte("HTTP/1.1 101 ")) {
				return fmt.Errorf("upgrade refused: %q", resp)
			}
			if !bytes.Contains(resp, []byte(handshakeAccept)) {
				return fmt.Errorf("upgrade response lacks the accept value: %q", resp)
			}
			return nil
		}
		if c.w == len(c.buf) {
			return errors.New("upgrade response too long")
		}
		n, err := c.nc.Read(c.buf[c.w:])
		c.w += n
		if err != nil {
			return err
		}
	}
}

// fill makes buf[r:w] hold at least n bytes, reading as much as the kernel
// has each time (n is at most len(buf)).
func (c *rawClient) fill(n int) error {
	if c.w-c.r >= n {
		return nil
	}
	if len(c.buf)-c.r < n {
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.r = 0
	}
	for c.w-c.r < n {
		m, err := c.nc.Read(c.buf[c.w:])
		c.w += m
		if err != nil && c.w-c.r < n {
			return err
		}
	}
	return nil
}

// echo sends the frame and reads the whole reply: one frame, or several if
// the server fragments (gorilla's NextWriter does above its write buffer).
// With check, the reply's payload is compared with what was sent.
func (c *rawClient) echo(check bool) error {
	if _, err := c.nc.Write(c.out); err != nil {
		return err
	}
	got := 0
	for {
		if err := c.fill(2); err != nil {
			return err
		}
		h, n, err := frame.ParseHeader(c.buf[c.r:c.w])
		for err == nil && n == 0 {
			if err = c.fill(c.w - c.r + 1); err == nil {
				h, n, err = frame.ParseHeader(c.buf[c.r:c.w])
			}
		}
		if err != nil {
			return err
		}
		if h.Op.IsControl() || h.Masked || h.Length > int64(len(c.want)-got) {
			return fmt.Errorf("unexpected frame from the server: %+v after %d bytes", h, got)
		}
		c.r += n
		size := int(h.Length)
		if err := c.fill(size); err != nil {
			return err
		}
		if check && !bytes.Equal(c.buf[c.r:c.r+size], c.want[got:got+size]) {
			return fmt.Errorf("echoed payload differs at bytes %d to %d", got, got+size)
		}
		c.r += size
		got += size
		if h.Fin {
			break
		}
	}
	if got != len(c.want) {
		return fmt.Errorf("echoed %d bytes, sent %d", got, len(c.want))
	}
	if c.r == c.w {
		c.r, c.w = 0, 0
	}
	return nil
}

func (c *rawClient) Close() error { return c.nc.Close() }
