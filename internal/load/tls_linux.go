//go:build linux

package load

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/wskit/wskit/internal/bufpool"
	"github.com/wskit/wskit/internal/tlsrec"
)

// wss:// targets. crypto/tls has no non-blocking API, so each connection
// shakes hands on a goroutine of its own that lives for the handshake
// only: it dials, runs crypto/tls's client handshake over a transport that
// hands crypto/tls one whole record per Read (so that it reads nothing
// past the server's Finished), and takes the TLS 1.3 application traffic
// secrets from the key log crypto/tls writes to. It then hands the socket
// and a tlsrec.RecordLayer built from those secrets to the connection's
// loop, which goes on without crypto/tls: it seals the prepared frames
// into records per connection and opens the server's records in place in
// its read buffer. At most maxDialing handshakes per loop run at once
// while connections open; under Churn, Conns do.
//
// A TLS 1.2 server is refused: its record layer is not what tlsrec
// speaks, and keeping a *tls.Conn and a goroutine per connection would
// make the client a different one from the ws:// client it is compared
// with. Every connection makes a full handshake: no session is resumed.

// sealBatch is how much plaintext a wss connection seals for one write.
const sealBatch = 64 << 10

// handshakeResult is what a handshake's goroutine hands its loop.
type handshakeResult struct {
	idx, gen int32
	fd       int // -1 on failure
	rec      *tlsrec.RecordLayer
	version  string // such as "TLS 1.3, TLS_AES_128_GCM_SHA256"
	kind     errKind
	err      error
}

// setupTLS prepares the run's TLS configuration for each wss target.
func (r *run) setupTLS(urls []string) {
	r.secure = make([]bool, len(urls))
	r.tlsCfgs = make([]*tls.Config, len(urls))
	for i, raw := range urls {
		u, _ := url.Parse(raw) // checked by withDefaults
		if u.Scheme != "wss" {
			continue
		}
		if r.keys == nil {
			r.keys = new(tlsrec.KeyLog)
		}
		cfg := r.cfg.TLS.Clone()
		if cfg == nil {
			cfg = new(tls.Config)
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
		cfg.NextProtos = []string{"http/1.1"}
		cfg.ClientSessionCache = nil
		cfg.KeyLogWriter = keyLogTee{r.keys, cfg.KeyLogWriter}
		r.secure[i], r.tlsCfgs[i] = true, cfg
	}
	if r.keys != nil {
		r.hsCtx, r.hsCancel = context.WithCancel(context.Background())
	}
}

// keyLogTee gives crypto/tls's key log lines to the run's KeyLog and to
// the application's KeyLogWriter, if it set one.
type keyLogTee struct {
	keys *tlsrec.KeyLog
	user io.Writer
}

func (k keyLogTee) Write(p []byte) (int, error) {
	if k.user != nil {
		k.user.Write(p)
	}
	return k.keys.Write(p)
}

// endHandshakes stops the handshakes still under way once the loops have
// stopped, waits for their goroutines and closes what they handed over.
func (r *run) endHandshakes() {
	if r.hsCancel == nil {
		return
	}
	r.hsCancel()
	r.hsWG.Wait()
	for _, l := range r.loops {
		for _, h := range l.takeHandshakes() {
			h.close()
		}
	}
}

func (h *handshakeResult) close() {
	if h.fd >= 0 {
		unix.Close(h.fd)
		h.rec.Release()
	}
}

// dialTLS starts the handshake of c, a slot of a wss target, on a
// goroutine of its own.
func (l *loop) dialTLS(c *conn, now int64) {
	c.gen++
	c.state, c.started, c.gotClose = stConnecting, now, false
	c.rd.reset(l.r.limit, l.r.want)
	l.dialing++
	var src netip.Addr
	if n := len(l.r.cfg.Sources); n > 0 {
		src = l.r.cfg.Sources[l.global(int(c.idx))%n]
	}
	idx, gen, tgt := c.idx, c.gen, int(c.tgt)
	r := l.r
	r.hsWG.Add(1)
	go func() {
		defer r.hsWG.Done()
		ctx, cancel := context.WithTimeout(r.hsCtx, r.cfg.DialTimeout)
		defer cancel()
		h := r.handshake(ctx, tgt, src)
		h.idx, h.gen = idx, gen
		l.hsMu.Lock()
		l.hsDone = append(l.hsDone, h)
		l.hsMu.Unlock()
		l.wake()
	}()
}

// handshake dials target tgt from src (if valid) and runs the TLS
// handshake; it returns the socket, non-blocking, and the record layer to
// go on with.
func (r *run) handshake(ctx context.Context, tgt int, src netip.Addr) handshakeResult {
	fail := func(k errKind, err error) handshakeResult {
		if ctx.Err() != nil && r.hsCtx.Err() == nil {
			k = errTimeout
		}
		return handshakeResult{fd: -1, kind: k, err: err}
	}
	d := net.Dialer{}
	if src.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			// The port is then picked at connect, per destination.
			return rc.Control(func(fd uintptr) {
				unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
			})
		}
	}
	nc, err := d.DialContext(ctx, "tcp", r.targets[tgt].String())
	if err != nil {
		return fail(errConnect, fmt.Errorf("connect: %w", err))
	}
	defer nc.Close() // the loop gets a duplicate of the socket
	hc := &handshakeConn{Conn: nc}
	tc := tls.Client(hc, r.tlsCfgs[tgt])
	err = tc.HandshakeContext(ctx)
	// Take the secrets whatever happened, so that none stay in the log.
	random, haveRandom := tlsrec.ClientRandom(hc.written)
	var secrets tlsrec.Secrets
	haveSecrets := false
	if haveRandom {
		secrets, haveSecrets = r.keys.Take(random)
	}
	if err != nil {
		if errors.Is(err, errRecordTooLong) || isProtocolVersion(err) {
			err = fmt.Errorf("%w (the load tool speaks TLS 1.3 only)", err)
		}
		return fail(errHandshake, fmt.Errorf("TLS handshake: %w", err))
	}
	state := tc.ConnectionState()
	if state.Version != tls.VersionTLS13 || !haveSecrets {
		return fail(errHandshake, errors.New("TLS handshake: no TLS 1.3 traffic secrets in the key log"))
	}
	// The handshake sealed nothing under the client's application secret
	// and, reading one record at a time, opened nothing under the
	// server's; counting makes sure of it.
	wseq, err := tlsrec.CountSealed(state.CipherSuite, secrets.Client, hc.written)
	if err != nil {
		return fail(errHandshake, fmt.Errorf("TLS: %w", err))
	}
	rseq, err := tlsrec.CountSealed(state.CipherSuite, secrets.Server, hc.read)
	if err != nil {
		return fail(errHandshake, fmt.Errorf("TLS: %w", err))
	}
	rec, err := tlsrec.New(tlsrec.Config{
		Suite: state.CipherSuite, Role: tlsrec.Client, Secrets: secrets,
		ReadSeq: uint64(rseq), WriteSeq: uint64(wseq),
	})
	if err != nil {
		return fail(errHandshake, fmt.Errorf("TLS: %w", err))
	}
	fd, err := dupSocket(nc)
	if err != nil {
		rec.Release()
		return fail(errIO, err)
	}
	return handshakeResult{fd: fd, rec: rec, version: "TLS 1.3, " + tls.CipherSuiteName(state.CipherSuite)}
}

// isProtocolVersion says whether err is a protocol_version alert, sent or
// received: crypto/tls wraps the alert it receives in an unexported type.
func isProtocolVersion(err error) bool {
	var ae tls.AlertError
	return (errors.As(err, &ae) && ae == 70) || strings.Contains(err.Error(), "protocol version not supported")
}

// dupSocket returns a non-blocking duplicate of nc's socket, for a loop's
// epoll; closing nc then leaves the connection open.
func dupSocket(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, errors.New("not a socket")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := raw.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("dup: %w", derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

var errRecordTooLong = errors.New("TLS record longer than 2^14+256 bytes")

// handshakeConn is the transport under crypto/tls's handshake: each Read
// returns bytes of one record at most, read whole from the socket first,
// so that crypto/tls never takes bytes past the server's Finished, which
// the loop's record layer reads instead. It keeps what went both ways:
// the ClientHello's random names the connection in the key log, and the
// records are counted under the traffic secrets.
type handshakeConn struct {
	net.Conn
	pending []byte // the rest of the record being handed over
	read    []byte // every record read
	written []byte
}

func (c *handshakeConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		var hdr [tlsrec.HeaderLen]byte
		if _, err := io.ReadFull(c.Conn, hdr[:]); err != nil {
			return 0, err
		}
		size := int(hdr[3])<<8 | int(hdr[4])
		if size > tlsrec.MaxCiphertext {
			return 0, errRecordTooLong
		}
		start := len(c.read)
		c.read = append(c.read, hdr[:]...)
		c.read = append(c.read, make([]byte, size)...)
		if _, err := io.ReadFull(c.Conn, c.read[start+tlsrec.HeaderLen:]); err != nil {
			return 0, err
		}
		c.pending = c.read[start:]
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *handshakeConn) Write(p []byte) (int, error) {
	c.written = append(c.written, p...)
	return c.Conn.Write(p)
}

// takeHandshakes returns the handshakes finished since the last call.
func (l *loop) takeHandshakes() []handshakeResult {
	l.hsMu.Lock()
	done := l.hsDone
	l.hsDone = l.hsSpare[:0]
	l.hsMu.Unlock()
	l.hsSpare = done
	return done
}

// handshaken puts the connections whose handshakes finished on the loop,
// and sends their upgrade requests.
func (l *loop) handshaken() {
	for _, h := range l.takeHandshakes() {
		c := &l.conns[h.idx]
		if c.gen != h.gen || c.state != stConnecting || c.fd >= 0 {
			h.close() // timed out meanwhile
			continue
		}
		if h.err != nil {
			err := h.err
			l.fail(c, h.kind, func() string { return err.Error() })
			continue
		}
		if l.tlsVersion == "" {
			l.tlsVersion = h.version
		}
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: c.idx, Pad: c.gen}
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, h.fd, &ev); err != nil {
			h.close()
			l.fail(c, errIO, func() string { return "epoll_ctl: " + err.Error() })
			continue
		}
		c.fd, c.tls = h.fd, h.rec
		c.state = stUpgrading
		l.sbuf, _ = c.tls.AppendRecords(l.sbuf[:0], l.r.reqs[c.tgt])
		// A fresh socket's buffer takes the whole request.
		n, err := unix.Write(c.fd, l.sbuf)
		if err != nil || n != len(l.sbuf) {
			l.fail(c, errIO, func() string { return fmt.Sprintf("writing the upgrade request: %d bytes, %v", n, err) })
			continue
		}
	}
}

// tlsInput opens the records in p, read from c at now, handles the
// plaintext they carry as input does, and writes what they called for.
func (l *loop) tlsInput(c *conn, p []byte, now int64) bool {
	for len(p) > 0 {
		ev, n, ok, err := c.tls.Receive(p)
		p = p[n:]
		if err != nil {
			// The alert owed goes out, best effort, before the socket closes.
			if out := c.tls.AppendReplies(l.sbuf[:0]); len(out) > 0 && c.sealed == nil {
				unix.Write(c.fd, out)
			}
			l.fail(c, errProtocol, func() string { return err.Error() })
			return false
		}
		if !ok {
			break
		}
		if ev.Kind == tlsrec.EventData && !l.frames(c, ev.Data, now) {
			return false
		}
		// After the server's close_notify its end of TCP follows.
	}
	c.tls.ReturnLent() // an idle connection holds no buffer
	return l.flush(c)
}

// flushTLS is flush for a wss connection: it seals the output flush would
// write into records, in the loop's scratch buffer, and writes them; the
// records the socket does not take wait in a pooled buffer of the
// connection's, given back once written.
func (l *loop) flushTLS(c *conn) bool {
	for c.fd >= 0 {
		scratch := c.sealed == nil
		var b []byte
		if scratch {
			l.sbuf = l.sealNext(c, l.sbuf[:0])
			if c.fd < 0 {
				return false
			}
			if len(l.sbuf) == 0 {
				return true
			}
			b = l.sbuf
		} else {
			b = (*c.sealed)[c.soff:]
		}
		n, ok := l.write(c, b)
		if !ok {
			return false
		}
		if scratch {
			if n < len(b) {
				c.sealed = bufpool.Get(len(b) - n)
				*c.sealed = append((*c.sealed)[:0], b[n:]...)
				c.soff = 0
				return true // EPOLLOUT comes when the socket drains
			}
			continue
		}
		if c.soff += n; c.soff < len(*c.sealed) {
			return true
		}
		bufpool.Put(c.sealed)
		c.sealed, c.soff = nil, 0
	}
	return false
}

// write writes b to c's socket and returns how much it took (0 when it
// is full); false when c failed.
func (l *loop) write(c *conn, b []byte) (int, bool) {
	for {
		n, err := unix.Write(c.fd, b)
		switch {
		case err == unix.EAGAIN:
			return 0, true
		case err == unix.EINTR:
			continue
		case err != nil:
			l.fail(c, kindOf(err), func() string { return "write: " + err.Error() })
			return 0, false
		}
		return n, true
	}
}

// sealNext appends to dst the records of c's next output, up to about
// sealBatch bytes, in the order flush writes it: what the record layer
// owes the server, a control frame between data frames, prepared frames,
// the publisher's messages. What is sealed counts as written.
func (l *loop) sealNext(c *conn, dst []byte) []byte {
	dst = c.tls.AppendReplies(dst)
	out := l.r.out
	for len(dst) < sealBatch {
		var plain []byte
		switch {
		case c.ctlLen > 0 && c.woff == 0:
			plain = c.ctl[:c.ctlLen]
			c.ctlLen = 0
		case c.pend > 0:
			k := min(c.pend, len(out)-c.woff, sealBatch)
			plain = out[c.woff : c.woff+k]
			c.pend -= k
			c.woff = (c.woff + k) % l.r.frameLen
		case c.role == rolePublisher && l.pubOff < len(l.pubq):
			plain = l.pubq[l.pubOff:]
			l.pubq, l.pubOff = l.pubq[:0], 0
		default:
			return dst
		}
		var err error
		if dst, err = c.tls.AppendRecords(dst, plain); err != nil {
			l.fail(c, errProtocol, func() string { return "sealing: " + err.Error() })
			return dst[:0]
		}
	}
	return dst
}

// closeTLS writes, best effort, a close frame and a close_notify to c,
// open and at a frame boundary.
func (l *loop) closeTLS(c *conn) {
	if c.sealed != nil {
		return
	}
	b, err := c.tls.AppendRecords(l.sbuf[:0], l.r.closeFrame)
	if err == nil {
		b, _ = c.tls.AppendAlert(b, tlsrec.AlertCloseNotify)
		unix.Write(c.fd, b)
	}
	l.sbuf = b[:0]
}

// dropTLS gives back what a wss connection holds.
func (c *conn) dropTLS() {
	if c.tls != nil {
		c.tls.Release()
		c.tls = nil
	}
	if c.sealed != nil {
		bufpool.Put(c.sealed)
		c.sealed, c.soff = nil, 0
	}
}
