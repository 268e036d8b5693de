package wskit

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
)

// serveTLS shakes hands with the client of nc, a connection the poll
// engine detached, and hands the TLS connection to net/http, which serves
// it as a connection of its own (a goroutine each).
func (pe *pollEngine) serveTLS(nc net.Conn) {
	ctx := context.Background()
	if t := pe.srv.opts.HandshakeTimeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	tc := tls.Server(nc, pe.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		pe.srv.opts.logger().Debug("wskit: TLS handshake failed", "remote", nc.RemoteAddr(), "err", err)
		tc.Close()
		return
	}
	state := tc.ConnectionState()
	if !pe.handoff.push(&prefixConn{Conn: tc, pe: pe, tls: &state}) {
		tc.Close()
	}
}

// recordConn is the transport under crypto/tls during a handshake on the
// poll engine: it reads one whole TLS record at a time, so that crypto/tls
// never takes bytes past the last record it needs (the loop takes over
// from there), and it keeps what the loop's record layer must know: the
// ClientHello's random (to find the secrets in the key log), the records
// read after the handshake, and the records written since the last read
// (the session tickets sent with the server's Finished, under the
// application secret).
type recordConn struct {
	net.Conn
	hdr         [5]byte
	left        int      // of the record being read
	hello       [38]byte // the start of the first record: a ClientHello
	helloN      int
	readRecords int // records read
	wroteSince  int // records written since the last record was read
}

func (c *recordConn) Read(p []byte) (int, error) {
	if c.left == 0 {
		if _, err := io.ReadFull(c.Conn, c.hdr[:]); err != nil {
			return 0, err
		}
		c.left = int(binary.BigEndian.Uint16(c.hdr[3:]))
		c.readRecords++
		c.wroteSince = 0
		n := copy(p, c.hdr[:])
		if n < len(c.hdr) {
			return 0, io.ErrShortBuffer // crypto/tls reads headers whole
		}
		p = p[n:]
		if len(p) == 0 || c.left == 0 {
			return n, nil
		}
		m, err := c.readBody(p)
		return n + m, err
	}
	return c.readBody(p)
}

// readBody reads at most the rest of the current record.
func (c *recordConn) readBody(p []byte) (int, error) {
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	if c.readRecords == 1 && c.helloN < len(c.hello) {
		c.helloN += copy(c.hello[c.helloN:], p[:n])
	}
	c.left -= n
	return n, err
}

// clientRandom returns the random of the ClientHello that started the
// handshake: after its type (1), length (3) and version (2).
func (c *recordConn) clientRandom() (r [32]byte, ok bool) {
	if c.helloN < len(c.hello) || c.hdr[0] != 22 && c.readRecords == 1 || c.hello[0] != 1 {
		return r, false
	}
	copy(r[:], c.hello[6:])
	return r, true
}

func (c *recordConn) Write(p []byte) (int, error) {
	for b := p; len(b) >= 5; {
		n := 5 + int(binary.BigEndian.Uint16(b[3:]))
		c.wroteSince++
		if n > len(b) {
			break
		}
		b = b[n:]
	}
	return c.Conn.Write(p)
}
