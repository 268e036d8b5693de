//go:build unix

package cli

import "syscall"

// smallReceiveBuffer is a net.Dialer Control that sets SO_RCVBUF to n
// before the connection is made: set after it, Linux may stop the flow.
func smallReceiveBuffer(n int) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
		}); cerr != nil {
			return cerr
		}
		return err
	}
}
