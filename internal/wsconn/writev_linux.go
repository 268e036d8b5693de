package wsconn

import (
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// newVectorWriter returns the connection's own writev when it has one (the
// poll engine's detached connections), a writev on the descriptor of a
// socket from package net, or net.Buffers.
func newVectorWriter(nc net.Conn) vectorWriter {
	if vw, ok := nc.(vectorWriter); ok {
		return vw
	}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			w := &rawWritev{rc: rc}
			w.fn = w.write
			return w
		}
	}
	return &buffersWriter{nc: nc}
}

// rawWritev writes with writev(2) through the runtime's poller, which waits
// for room and keeps the connection's deadlines. Unlike net.Buffers it
// allocates nothing per call.
type rawWritev struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool // w.write, made once
	v   [][]byte
	n   int64
	err error
}

// maxIovecs bounds one writev, as IOV_MAX does.
const maxIovecs = 1024

type iovecs struct{ v []unix.Iovec }

var iovecPool = sync.Pool{New: func() any { return new(iovecs) }}

func (w *rawWritev) Writev(v [][]byte) (int64, error) {
	w.v, w.n, w.err = v, 0, nil
	if err := w.rc.Write(w.fn); err != nil && w.err == nil {
		w.err = err
	}
	n, err := w.n, w.err
	w.v, w.err = nil, nil
	return n, err
}

// write runs with the descriptor; false asks the runtime to wait until it
// is writable.
func (w *rawWritev) write(fd uintptr) bool {
	iov := iovecPool.Get().(*iovecs)
	defer iovecPool.Put(iov)
	for len(w.v) > 0 {
		vec := iov.v[:0]
		for _, b := range w.v {
			if len(vec) == maxIovecs {
				break
			}
			if len(b) > 0 {
				vec = append(vec, unix.Iovec{Base: &b[0]})
				vec[len(vec)-1].SetLen(len(b))
			}
		}
		iov.v = vec[:0]
		if len(vec) == 0 {
			w.v = nil
			break
		}
		n, _, errno := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&vec[0])), uintptr(len(vec)))
		clear(vec)
		switch errno {
		case 0:
		case unix.EAGAIN:
			return false
		case unix.EINTR:
			continue
		default:
			w.err = os.NewSyscallError("writev", errno)
			return true
		}
		w.n += int64(n)
		w.consume(int(n))
	}
	return true
}

// consume drops n written bytes from the front of w.v.
func (w *rawWritev) consume(n int) {
	for n > 0 && len(w.v) > 0 {
		if n < len(w.v[0]) {
			w.v[0] = w.v[0][n:]
			return
		}
		n -= len(w.v[0])
		w.v = w.v[1:]
	}
	for len(w.v) > 0 && len(w.v[0]) == 0 {
		w.v = w.v[1:]
	}
}
