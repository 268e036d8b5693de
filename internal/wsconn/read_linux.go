//go:build linux

package wsconn

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

// rawReader reads through the connection's RawConn, which waits for input
// with no buffer: the Conn's read buffer is taken only when a read finds
// bytes. Its function value is made once, so that a read allocates nothing.
type rawReader struct {
	c      *Conn
	rc     syscall.RawConn
	fn     func(fd uintptr) bool
	peekFn func(fd uintptr) bool
	n      int
	err    error
	one    [1]byte // what peek reads into
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
	r.fn, r.peekFn = r.try, r.peek
	return r
}

// peek reports whether a read would not wait: input, the end of the
// stream or an error is there. It reads nothing.
func (r *rawReader) peek(fd uintptr) bool {
	_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&r.one[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return errno != syscall.EAGAIN
}

// wait returns once a read would not wait, or the connection's read
// deadline has passed (os.ErrDeadlineExceeded), or it is closed.
func (r *rawReader) wait() error { return r.rc.Read(r.peekFn) }

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
