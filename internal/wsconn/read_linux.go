//go:build linux

package wsconn

import (
	"io"
	"os"
	"syscall"
)

// rawReader reads through the connection's RawConn, which waits for input
// with no buffer: the Conn's read buffer is taken only when a read finds
// bytes. Its function value is made once, so that a read allocates nothing.
type rawReader struct {
	c   *Conn
	rc  syscall.RawConn
	fn  func(fd uintptr) bool
	n   int
	err error
}

// newRawReader returns a rawReader for c's connection, or nil when it has
// no RawConn (TLS, a wrapper).
func newRawReader(c *Conn) *rawReader {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawReader{c: c, rc: rc}
	r.fn = r.try
	return r
}

// try reads once; false means nothing was there, so wait for input.
func (r *rawReader) try(fd uintptr) bool {
	b := r.c.takeReadBuf()
	r.n, r.err = syscall.Read(int(fd), b)
	switch r.err {
	case syscall.EAGAIN:
		r.c.dropReadBuf()
		return false
	case syscall.EINTR:
		return false
	}
	return true
}

func (r *rawReader) read() (int, error) {
	if err := r.rc.Read(r.fn); err != nil {
		return 0, err
	}
	switch {
	case r.err != nil:
		return 0, os.NewSyscallError("read", r.err)
	case r.n <= 0:
		return 0, io.EOF
	}
	return r.n, nil
}
