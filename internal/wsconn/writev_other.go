//go:build !linux

package wsconn

import "net"

// newVectorWriter returns the connection's own writev when it has one, or
// net.Buffers.
func newVectorWriter(nc net.Conn) vectorWriter {
	if vw, ok := nc.(vectorWriter); ok {
		return vw
	}
	return &buffersWriter{nc: nc}
}
