package wskit

import (
	"context"
	"crypto/tls"
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
