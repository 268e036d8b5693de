package nats_test

import "syscall"

// smallRcvBuf gives a socket a small receive buffer before it connects.
func smallRcvBuf(_, _ string, c syscall.RawConn) error {
	var err error
	c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	return err
}
