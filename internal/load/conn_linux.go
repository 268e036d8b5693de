//go:build linux

package load

import (
	"bytes"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/tlsrec"
)

// connState is where a connection is in its life.
type connState uint8

const (
	stIdle       connState = iota // no socket: before its dial, or between Churn's cycles
	stConnecting                  // connect in progress
	stUpgrading                   // request sent, waiting for the response head
	stOpen
	stClosing // Churn: our close frame is queued; waiting for the server's and its end
	stDead    // failed or finished, never dialled again
)

type role uint8

const (
	roleClient    role = iota // echoes, holds or subscribes
	rolePublisher             // Broadcast's publisher
)

// conn is one connection slot of a loop. Under Churn a slot goes through
// many sockets; gen tells their events apart.
type conn struct {
	fd       int
	idx      int32 // in loop.conns
	tgt      int32 // in run.targets
	gen      int32
	state    connState
	role     role
	settled  bool // has been open, or has failed: counted once for the connect phase
	queued   bool // in the loop's queue
	retry    bool // Churn: dial again at the next scan, after a failure
	gotClose bool // Churn: the server's close frame arrived
	started  int64
	owed     int32 // messages (Churn: a dial) waiting in the queue
	head, n  int32 // ring of send times in loop.times
	pend     int   // bytes of prepared frames still to write
	woff     int   // offset in a frame of the next one of them
	ctlLen   uint8 // a control frame to write, in ctl
	ctlOff   uint8
	ctl      [2 + 4 + frame.MaxControlPayload]byte
	hs       []byte // a response head split across reads
	rd       frameReader
	got      int // tcp://: bytes of the next reply received so far
	// wss: the record layer once the handshake is done, and sealed records
	// the socket has not taken yet (from soff on).
	tls    *tlsrec.RecordLayer
	sealed *[]byte
	soff   int
}

// dial opens a socket for c and starts connecting it.
func (l *loop) dial(c *conn, now int64) {
	if l.r.secure[c.tgt] {
		l.dialTLS(c, now)
		return
	}
	fd, err := unix.Socket(l.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		l.fail(c, errConnect, func() string { return "socket: " + err.Error() })
		return
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if len(l.srcs) > 0 {
		// The port is then picked at connect, per destination, instead of
		// at bind among all the ports of the address.
		unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		if err := unix.Bind(fd, l.srcs[l.global(int(c.idx))%len(l.srcs)]); err != nil {
			unix.Close(fd)
			l.fail(c, errConnect, func() string { return "bind: " + err.Error() })
			return
		}
	}
	if err := unix.Connect(fd, l.targets[c.tgt]); err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		l.fail(c, errConnect, func() string { return connectText(err) })
		return
	}
	c.gen++
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: c.idx, Pad: c.gen}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		unix.Close(fd)
		l.fail(c, errIO, func() string { return "epoll_ctl: " + err.Error() })
		return
	}
	c.fd, c.state, c.started, c.gotClose = fd, stConnecting, now, false
	c.rd.reset(l.r.limit, l.r.want)
	l.dialing++
}

func connectText(err error) string {
	if err == unix.EADDRNOTAVAIL {
		return "connect: " + err.Error() + " (out of local ports: add source addresses)"
	}
	return "connect: " + err.Error()
}

// event handles readiness of c.
func (l *loop) event(c *conn, ev uint32) {
	if c.state == stConnecting {
		if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			return
		}
		if !l.connected(c) {
			return
		}
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		if !l.read(c, ev&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0) {
			return
		}
	}
	if ev&unix.EPOLLOUT != 0 {
		l.flush(c)
	}
}

// connected finishes a connect and sends the upgrade request.
func (l *loop) connected(c *conn) bool {
	errno, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && errno != 0 {
		err = unix.Errno(errno)
	}
	if err != nil {
		l.fail(c, errConnect, func() string { return connectText(err) })
		return false
	}
	if l.r.raw {
		c.state = stUpgrading
		l.opened(c, l.r.now()) // no handshake; the caller flushes
		return true
	}
	c.state = stUpgrading
	// A fresh socket's buffer takes the whole request.
	req := l.r.reqs[c.tgt]
	n, err := unix.Write(c.fd, req)
	if err != nil || n != len(req) {
		l.fail(c, errIO, func() string { return fmt.Sprintf("writing the upgrade request: %d bytes, %v", n, err) })
		return false
	}
	return true
}

// read reads c until its socket is drained, and reports whether c is still
// open. Edge-triggered: a short read proves the socket drained, unless the
// peer's end was signalled (hup), which must be read to EOF.
func (l *loop) read(c *conn, hup bool) bool {
	for {
		n, err := unix.Read(c.fd, l.buf)
		switch {
		case err == unix.EAGAIN:
			return true
		case err == unix.EINTR:
			continue
		case err != nil:
			l.fail(c, kindOf(err), func() string { return "read: " + err.Error() })
			return false
		case n == 0:
			l.eof(c)
			return false
		}
		if !l.input(c, l.buf[:n], l.r.now()) {
			return false
		}
		if n < len(l.buf) && !hup {
			return true
		}
	}
}

// input handles bytes read from c at now, then writes what they called for.
func (l *loop) input(c *conn, p []byte, now int64) bool {
	if l.r.raw {
		if l.r.want != nil {
			if i := rawMismatch(l.r.want, c.got, p); i >= 0 {
				off := c.got + i
				l.fail(c, errProtocol, func() string {
					return fmt.Sprintf("reply differs from the message sent at byte %d", off)
				})
				return false
			}
		}
		// A reply is the payload's length of bytes echoed.
		c.got += len(p)
		for c.got >= l.r.frameLen {
			c.got -= l.r.frameLen
			if !l.message(c, now) {
				return false
			}
		}
		return l.flush(c)
	}
	if c.tls != nil {
		return l.tlsInput(c, p, now)
	}
	return l.frames(c, p, now) && l.flush(c)
}

// frames handles the plaintext p read from c at now: the response head,
// then frames. The caller flushes c.
func (l *loop) frames(c *conn, p []byte, now int64) bool {
	if c.state == stUpgrading {
		var ok bool
		if p, ok = l.upgrade(c, p, now); !ok {
			return false
		}
	}
	for len(p) > 0 {
		n, ev, err := c.rd.next(p)
		p = p[n:]
		if err != nil {
			l.fail(c, errProtocol, func() string { return err.Error() })
			return false
		}
		switch ev {
		case evMessage:
			if !l.message(c, now) {
				return false
			}
		case evPing:
			l.control(c, frame.OpPong, c.rd.control())
		case evClose:
			if !l.closeFrame(c) {
				return false
			}
		}
	}
	return true
}

// upgrade takes the response head from p and returns the bytes after it.
func (l *loop) upgrade(c *conn, p []byte, now int64) ([]byte, bool) {
	head := p
	if len(c.hs) > 0 {
		c.hs = append(c.hs, p...)
		head = c.hs
	}
	end := bytes.Index(head, []byte("\r\n\r\n"))
	if end < 0 {
		if len(head) > maxResponseHead {
			l.fail(c, errHandshake, func() string { return "response head over 8 KiB" })
			return nil, false
		}
		if len(c.hs) == 0 {
			c.hs = append(make([]byte, 0, 512), p...)
		}
		return nil, true
	}
	if !checkUpgrade(head[:end+4]) {
		line, _, _ := bytes.Cut(head, []byte("\r\n"))
		l.fail(c, errHandshake, func() string { return fmt.Sprintf("upgrade refused: %q", line) })
		return nil, false
	}
	rest := head[end+4:]
	c.hs = nil
	l.opened(c, now)
	return rest, true
}

// opened starts c's work once its upgrade is through.
func (l *loop) opened(c *conn, now int64) {
	c.state = stOpen
	l.dialing--
	l.open++
	if !c.settled {
		c.settled = true
		l.settled++
	}
	switch l.r.cfg.Scenario {
	case Echo, Pipeline:
		if l.phase <= phaseMeasure {
			l.want(c, l.r.cfg.Pipeline, now)
		}
	case Churn:
		l.tot.hs++
		if l.phase == phaseMeasure {
			l.win.hs++
			l.hist.Record(now - c.started)
		}
		l.send(c, 1, now)
	}
}

// message handles a data message that c received at now.
func (l *loop) message(c *conn, now int64) bool {
	if l.r.cfg.Scenario == Broadcast {
		l.delivery(c, now)
		return true
	}
	if !l.r.raw && (c.rd.msgOp != frame.OpBinary || c.rd.msgLen != int64(l.r.cfg.Size)) {
		op, n := c.rd.msgOp, c.rd.msgLen
		l.fail(c, errProtocol, func() string {
			return fmt.Sprintf("reply: %v message of %d bytes, want binary of %d", op, n, l.r.cfg.Size)
		})
		return false
	}
	if off := c.rd.differs(); off >= 0 {
		l.fail(c, errProtocol, func() string {
			return fmt.Sprintf("reply differs from the message sent at byte %d", off)
		})
		return false
	}
	if c.n == 0 {
		l.fail(c, errProtocol, func() string { return "a message arrived with none in flight" })
		return false
	}
	t := l.times[int(c.idx)*l.r.cfg.Pipeline+int(c.head)]
	c.head = (c.head + 1) % int32(l.r.cfg.Pipeline)
	c.n--
	l.inflight--
	l.tot.recv++
	switch l.r.cfg.Scenario {
	case Echo, Pipeline:
		if l.phase == phaseMeasure {
			l.win.msgs++
			l.hist.Record(now - t)
		}
		if l.phase <= phaseMeasure {
			l.want(c, 1, now)
		}
	case Idle:
		if l.phase == phaseWake {
			l.win.msgs++
			l.hist.Record(now - t)
			l.wakeLast = now
		}
	case Churn:
		if l.phase == phaseMeasure {
			l.win.msgs++
		}
		c.state = stClosing
		l.control(c, frame.OpClose, l.r.closePayload)
	}
	return true
}

// delivery counts a message a subscriber received at now, if it carries a
// stamp; servers may send others, such as a greeting.
func (l *loop) delivery(c *conn, now int64) {
	if c.role == rolePublisher {
		return // a server that relays to everyone relays to it too
	}
	t, skip, ok := parseStamp(c.rd.head())
	if !ok || c.rd.msgOp != frame.OpText || c.rd.msgLen != int64(l.r.cfg.Size+skip) {
		l.tot.other++
		return
	}
	l.tot.recv++
	if l.phase >= phaseMeasure {
		l.win.msgs++
		l.hist.Record(now - t)
	}
}

// closeFrame handles the server's close frame on c.
func (l *loop) closeFrame(c *conn) bool {
	if c.state == stClosing {
		c.gotClose = true // the end of the connection comes next
		return true
	}
	code, reason, _ := frame.ParseClose(c.rd.control())
	l.fail(c, errClosed, func() string { return fmt.Sprintf("closed by the server: %d %q", code, reason) })
	return false
}

// eof handles the end of c's input.
func (l *loop) eof(c *conn) {
	if c.state == stClosing && c.gotClose {
		l.drop(c)
		c.state = stIdle
		if l.phase <= phaseMeasure {
			l.enqueue(c)
		}
		return
	}
	l.fail(c, errEOF, func() string { return "the server ended the connection without a close frame" })
}

// want asks for k more messages on c: at once, or through the queue when
// they are rate-limited. The caller flushes c.
func (l *loop) want(c *conn, k int, now int64) {
	if l.rated {
		c.owed += int32(k)
		l.enqueue(c)
		return
	}
	l.send(c, k, now)
}

// send schedules k prepared messages on c, sent at now. The caller flushes
// c.
func (l *loop) send(c *conn, k int, now int64) {
	p := int32(l.r.cfg.Pipeline)
	base := int(c.idx) * int(p)
	for range k {
		l.times[base+int((c.head+c.n)%p)] = now
		c.n++
	}
	c.pend += k * l.r.frameLen
	l.inflight += k
	l.tot.sent += int64(k)
}

// control queues a control frame on c. If one is being written, the new
// one is dropped: RFC 6455 §5.5.3 lets a pong answer only the latest ping.
func (l *loop) control(c *conn, op frame.Opcode, payload []byte) {
	if c.role == rolePublisher {
		l.pubq = appendMasked(l.pubq, op, payload, l.r.key)
		return
	}
	if c.ctlOff > 0 {
		return
	}
	c.ctlLen = uint8(len(appendMasked(c.ctl[:0], op, payload, l.r.key)))
}

// flush writes c's output until it is all written or the socket is full,
// and reports whether c is still open. Control frames go between data
// frames, never inside one.
func (l *loop) flush(c *conn) bool {
	if c.tls != nil {
		return l.flushTLS(c)
	}
	const (
		ctl = iota
		data
		published
	)
	out := l.r.out
	for c.fd >= 0 {
		var (
			b    []byte
			kind int
		)
		switch {
		case c.ctlOff < c.ctlLen && (c.ctlOff > 0 || c.woff == 0):
			b, kind = c.ctl[c.ctlOff:c.ctlLen], ctl
		case c.pend > 0:
			b, kind = out[c.woff:min(len(out), c.woff+c.pend)], data
		case c.role == rolePublisher && l.pubOff < len(l.pubq):
			b, kind = l.pubq[l.pubOff:], published
		default:
			return true
		}
		n, err := unix.Write(c.fd, b)
		switch {
		case err == unix.EAGAIN:
			return true
		case err == unix.EINTR:
			continue
		case err != nil:
			l.fail(c, kindOf(err), func() string { return "write: " + err.Error() })
			return false
		}
		switch kind {
		case ctl:
			if c.ctlOff += uint8(n); c.ctlOff == c.ctlLen {
				c.ctlOff, c.ctlLen = 0, 0
			}
		case data:
			c.pend -= n
			c.woff = (c.woff + n) % l.r.frameLen
		case published:
			if l.pubOff += n; l.pubOff == len(l.pubq) {
				l.pubq, l.pubOff = l.pubq[:0], 0
			}
		}
		if n < len(b) {
			return true // the socket is full: EPOLLOUT comes when it drains
		}
	}
	return false
}

// fail counts an error of c's and ends its socket. Under Churn the slot
// dials again after the next scan.
func (l *loop) fail(c *conn, k errKind, msg func() string) {
	if l.phase < phaseDone {
		l.errs.add(k, msg)
	}
	l.drop(c)
	c.state = stDead
	if l.r.cfg.Scenario == Churn && l.phase <= phaseMeasure {
		c.state, c.retry = stIdle, true
	}
	if !c.settled {
		c.settled = true
		l.settled++
	}
}

// drop closes c's socket, if any, and forgets its output and messages in
// flight. The caller sets c.state.
func (l *loop) drop(c *conn) {
	switch c.state {
	case stConnecting, stUpgrading:
		l.dialing--
	case stOpen, stClosing:
		l.open--
	}
	c.state = stIdle
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
	l.inflight -= int(c.n)
	c.n, c.head, c.owed, c.pend, c.woff, c.ctlLen, c.ctlOff = 0, 0, 0, 0, 0, 0, 0
	c.hs, c.got = nil, 0
	c.dropTLS()
	if c.role == rolePublisher {
		l.pubq, l.pubOff = l.pubq[:0], 0
	}
}

// kindOf sorts an error of a read or write.
func kindOf(err error) errKind {
	switch err {
	case unix.ECONNRESET, unix.EPIPE:
		return errReset
	case unix.ETIMEDOUT:
		return errTimeout
	}
	return errIO
}
