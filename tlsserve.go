package wskit

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"os"
	"reflect"
	"runtime"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/internal/bufpool"
	"github.com/wskit/wskit/internal/tlsrec"
	"github.com/wskit/wskit/poller"
)

// TLS on the poll engine. crypto/tls shakes hands on a goroutine that
// lives for the handshake, over the detached connection, reading one whole
// record at a time, and reads the first request head. An upgrade to a
// bare Events route over TLS 1.3 then goes back to the loop, which runs
// the record layer itself (internal/tlsrec) with the traffic secrets that
// crypto/tls exported through its key log: no goroutine and no buffer per
// idle connection, as over plain TCP. Anything else (TLS 1.2, a plain
// request, middleware, default and raw sessions) is served by net/http
// over the *tls.Conn, a goroutine per connection.

// tlsEngine is what the poll engine keeps to serve TLS.
type tlsEngine struct {
	cfg  *tls.Config // the server's, with keys logged to keys
	keys *tlsrec.KeyLog

	// Handshakes run on goroutines that, done with one, wait a while for
	// the next: a handshake grows its goroutine's stack to tens of KiB,
	// which a new goroutine grows again, copying it at each step.
	next     chan net.Conn // to a goroutine waiting for a handshake
	waiting  atomic.Int32  // goroutines waiting
	waitMost int32         // goroutines that may wait: two per CPU

	serverName atomic.Pointer[string] // the last kept, shared by the states that have it
}

// tlsHandshakerWait is how long a goroutine done with a handshake waits
// for the next one before it ends.
const tlsHandshakerWait = time.Second

// startTLS has a goroutine shake hands with the client of nc, a
// connection the loop detached: one waiting for work, or a new one.
func (pe *pollEngine) startTLS(nc net.Conn) {
	select {
	case pe.tls.next <- nc:
	default:
		go pe.handshaker(nc)
	}
}

// handshaker serves nc's handshake, then waits for more, until none comes
// for tlsHandshakerWait, enough of them wait, or the engine stops.
func (pe *pollEngine) handshaker(nc net.Conn) {
	var timer *time.Timer
	for {
		pe.serveTLS(nc)
		if pe.tls.waiting.Add(1) > pe.tls.waitMost {
			pe.tls.waiting.Add(-1)
			return
		}
		if timer == nil {
			timer = time.NewTimer(tlsHandshakerWait)
		} else {
			timer.Reset(tlsHandshakerWait)
		}
		select {
		case nc = <-pe.tls.next:
			pe.tls.waiting.Add(-1)
			timer.Stop()
		case <-timer.C:
			pe.tls.waiting.Add(-1)
			return
		case <-pe.stopped:
			pe.tls.waiting.Add(-1)
			timer.Stop()
			return
		}
	}
}

// newTLSEngine makes the configuration the engine shakes hands with:
// cfg's, with the keys logged to the engine's KeyLog, also in the
// configurations cfg.GetConfigForClient returns, which crypto/tls then
// uses instead; a handshake whose secrets the engine does not learn goes
// to net/http, a goroutine per connection.
func newTLSEngine(cfg *tls.Config) *tlsEngine {
	te := &tlsEngine{keys: new(tlsrec.KeyLog), next: make(chan net.Conn), waitMost: int32(2 * runtime.GOMAXPROCS(0))}
	te.cfg = cfg.Clone()
	te.cfg.KeyLogWriter = &keyLogTee{keys: te.keys, app: cfg.KeyLogWriter}
	if get := cfg.GetConfigForClient; get != nil {
		te.cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := get(hello)
			if c == nil || err != nil {
				return c, err // with none, crypto/tls goes on with te.cfg
			}
			// A clone keeps c's session ticket keys (and, without any, the
			// server's are used, as for c itself): resumption is unchanged.
			c = c.Clone()
			c.KeyLogWriter = &keyLogTee{keys: te.keys, app: c.KeyLogWriter}
			return c, nil
		}
	}
	return te
}

// keyLogTee takes crypto/tls's key log lines for the engine's KeyLog, and
// passes them on to the application's KeyLogWriter when it has one.
type keyLogTee struct {
	keys *tlsrec.KeyLog
	app  io.Writer
}

func (w *keyLogTee) Write(p []byte) (int, error) {
	if w.app != nil {
		w.app.Write(p)
	}
	return w.keys.Write(p)
}

// serveTLS shakes hands with the client of nc, a connection the poll
// engine detached, then reads its first request head and serves it: on
// the loop or through net/http.
func (pe *pollEngine) serveTLS(nc net.Conn) {
	ctx := context.Background()
	deadline := time.Time{}
	if t := pe.srv.opts.HandshakeTimeout; t > 0 {
		deadline = time.Now().Add(t)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	rc := &recordConn{Conn: nc, written: bufpool.Get(4096)}
	tc := tls.Server(rc, pe.tls.cfg)
	err := handshake(ctx, tc)
	secrets, haveSecrets := pe.tls.takeSecrets(rc)
	if err != nil {
		rc.drop()
		if ctx.Err() != nil {
			pe.srv.pickShard().refused[refusedTimeout].Add(1)
		}
		var re tls.RecordHeaderError
		var pan *codec.PanicError
		switch {
		case errors.As(err, &pan):
			logRecovered(&pe.srv.opts, nil, pan, "connection from "+nc.RemoteAddr().String()+" dropped")
		case errors.As(err, &re) && re.Conn != nil && recordLooksLikeHTTP(re.RecordHeader):
			// As net/http answers a client that speaks plain HTTP here.
			io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			err = errors.New("client sent an HTTP request to an HTTPS server")
			fallthrough
		default:
			pe.srv.opts.logger().Debug("wskit: TLS handshake failed", "remote", nc.RemoteAddr(), "err", err)
		}
		tc.Close()
		return
	}
	state := tc.ConnectionState()
	if state.NegotiatedProtocol == "h2" {
		rc.handOver()
		pe.handTLS(tc, nil, &state) // net/http's HTTP/2 must see the *tls.Conn itself
		return
	}
	// The first head is read here whatever the version, so that
	// HandshakeTimeout bounds it from the connection's start: handed over
	// unread or cut, it would get net/http's ReadHeaderTimeout afresh.
	handshakeRecords := rc.records
	nc.SetReadDeadline(deadline)
	hb, head, rest, drained, err := readTLSHead(tc, pe.srv.opts.MaxHandshakeSize+4096)
	defer bufpool.Put(hb) // head and rest are copied where they are kept
	nc.SetReadDeadline(time.Time{})
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			pe.srv.pickShard().refused[refusedTimeout].Add(1)
		}
		if len(head) == 0 || errors.Is(err, os.ErrDeadlineExceeded) {
			rc.drop()
			tc.Close() // nothing came, or not in time: as net/http, close without an answer
			return
		}
		rc.handOver()
		pe.handTLS(tc, bytes.Clone(head), &state) // net/http answers what it can
		return
	}
	if state.Version != tls.VersionTLS13 || !haveSecrets || !drained {
		rc.handOver()
		pe.handTLS(tc, slices.Concat(head, rest), &state)
		return
	}
	rt, op, ok := pe.loopUpgrade(head, rest, nc.RemoteAddr(), &state)
	if !ok {
		rc.handOver()
		pe.handTLS(tc, slices.Concat(head, rest), &state)
		return
	}
	tl := &tlsLayer{state: keepTLSState(&state, &pe.tls.serverName)}
	err = tl.rec.Init(tlsrec.Config{
		Suite: state.CipherSuite, Role: tlsrec.Server, Secrets: secrets,
		ReadSeq: uint64(rc.records - handshakeRecords),
	})
	if err == nil {
		// The session tickets crypto/tls sent are under our secret.
		err = tl.rec.SkipSealed(*rc.written)
	}
	// Records read ahead of crypto/tls (the client's first frames, sent
	// without waiting for the 101) go to the loop's record layer.
	ahead, aheadFrom := rc.takeAhead()
	rc.drop()
	if err != nil {
		bufpool.Put(ahead)
		codec.ReleaseExtensions(op.exts)
		pe.srv.opts.logger().Debug("wskit: TLS: cannot continue the record layer", "remote", nc.RemoteAddr(), "err", err)
		tc.Close()
		return
	}
	tl.checkAt = time.Now().Add(tlsShedAfter).UnixNano()
	op.tls = tl
	op.rest = bytes.Clone(rest)
	pe.srv.pickShard().accepted.Add(1)
	ok = poller.Attach(nc, func(c *poller.Conn) {
		c.SetSealer(tl)
		newLoopConn(pe, c, rt, op)
		if ahead != nil {
			if lc, ok := c.Context.(*loopConn); ok {
				lc.onRecords((*ahead)[aheadFrom:])
			}
			bufpool.Put(ahead)
		}
	}, func() {
		codec.ReleaseExtensions(op.exts)
		tl.rec.Release()
		bufpool.Put(ahead)
	})
	if !ok {
		codec.ReleaseExtensions(op.exts)
		tl.rec.Release()
		bufpool.Put(ahead)
		tc.Close()
	}
}

// handshake runs tc's handshake. A panic in the application's callbacks
// that crypto/tls calls (GetCertificate, GetConfigForClient,
// VerifyConnection…) comes back as a *codec.PanicError: it drops this
// connection only, as under net/http, which serves each connection under
// a recover.
func handshake(ctx context.Context, tc *tls.Conn) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = codec.Recovered(v, "TLS handshake")
		}
	}()
	return tc.HandshakeContext(ctx)
}

// recordLooksLikeHTTP reports whether the header of a client's first
// record is the start of an HTTP request, as net/http guesses it.
func recordLooksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// takeSecrets takes the traffic secrets of rc's handshake out of the key
// log, whether or not the handshake went through, so that none stays.
func (te *tlsEngine) takeSecrets(rc *recordConn) (tlsrec.Secrets, bool) {
	random, ok := tlsrec.ClientRandom(rc.first[:rc.firstN])
	if !ok {
		return tlsrec.Secrets{}, false
	}
	return te.keys.Take(random)
}

// handTLS hands a TLS connection to net/http, which reads prefix (the
// plaintext already read from it) first.
func (pe *pollEngine) handTLS(tc *tls.Conn, prefix []byte, state *tls.ConnectionState) {
	var c net.Conn = tc
	if state.NegotiatedProtocol != "h2" {
		c = &prefixConn{Conn: tc, prefix: prefix, pe: pe, tls: state}
	}
	if !pe.handoff.push(c) {
		tc.Close()
	}
}

// readTLSHead reads a request head from tc into b, a pooled buffer for
// the caller to give back: it returns the head (through the empty line)
// and what followed it, or the bytes read and an error when the head is
// longer than limit or does not come. drained is false when crypto/tls
// may hold more of the last record read, which a read that fills the
// buffer cannot tell: then net/http must read on from tc.
func readTLSHead(tc *tls.Conn, limit int) (b *[]byte, head, rest []byte, drained bool, err error) {
	b = bufpool.Get(2048)
	for {
		if cap(*b)-len(*b) < 512 {
			b = bufpool.Grow(b, cap(*b))
		}
		buf := *b
		n, err := tc.Read(buf[len(buf):cap(buf)])
		filled := n == cap(buf)-len(buf)
		buf = buf[:len(buf)+n]
		*b = buf
		if end := headLen(buf, 0); end >= 0 {
			return b, buf[:end], buf[end:], !filled, nil
		}
		if err != nil {
			return b, buf, nil, false, err
		}
		if len(buf) > limit {
			return b, buf, nil, false, errors.New("wskit: request head too large")
		}
	}
}

// loopUpgrade decides whether a request head read over TLS is an upgrade
// the loop serves itself: to a bare Events route, with no hook, that
// passes the handshake's checks. It returns what the session opens with.
func (pe *pollEngine) loopUpgrade(head, rest []byte, remote net.Addr, state *tls.ConnectionState) (*route, loopOpen, bool) {
	if len(head) > pe.srv.opts.MaxHandshakeSize {
		return nil, loopOpen{}, false
	}
	r, err := parseHead(head, remote)
	if err != nil || (r.ProtoAtLeast(1, 1) && (!headHasHost(head) || !validHost(r.Host))) {
		return nil, loopOpen{}, false
	}
	r.TLS = state // as net/http's request has it
	rt := pe.route(r)
	if rt == nil || rt.kind != routeEvents || rt.hooked() || !headerHasToken(r.Header, "Upgrade", "websocket") {
		return nil, loopOpen{}, false
	}
	if pe.workers != nil {
		return nil, loopOpen{}, false // the workers' pause would hold back plaintext: net/http serves it
	}
	key, protocol, herr := pe.srv.checkUpgrade(r, rt.cfg.protocols)
	var exts []codec.Negotiated
	if herr == nil {
		exts, herr = pe.srv.opts.negotiate(r, rt.kind)
	}
	if herr != nil {
		return nil, loopOpen{}, false // net/http sends the same refusal
	}
	return rt, loopOpen{head: compactHead(head), key: key, protocol: protocol, exts: exts, rest: rest, paths: packPaths(r)}, true
}

// recordConn is the transport under crypto/tls during a handshake on the
// poll engine. It reads ahead of crypto/tls into a pooled buffer (a
// flight of the client's records in one read, not two reads a record) but
// hands it at most one record per Read, so that crypto/tls never takes
// bytes past the last record it needs: the loop takes over from there,
// with the records read ahead. It keeps what the loop's record layer
// must know: the start of the ClientHello (its random names the
// connection in the key log), the records read, and what the handshake
// wrote (the session tickets sent with the server's Finished are under
// the application secret: RecordLayer.SkipSealed counts them).
type recordConn struct {
	net.Conn
	ahead   *[]byte // read ahead of crypto/tls: (*ahead)[off:] is unread
	off     int
	left    int                                               // bytes of the current record yet to hand over, header included
	direct  bool                                              // net/http serves the connection: no record bounds
	pending []byte                                            // read ahead, for net/http
	first   [tlsrec.HeaderLen + 4 + 2 + tlsrec.RandomLen]byte // the start of the ClientHello
	firstN  int
	records int     // records read
	written *[]byte // what was written, until the record layer takes over
}

// tlsReadAhead is the size of a recordConn's read-ahead buffer, room for
// a ClientHello with a post-quantum key share.
const tlsReadAhead = 4096

func (c *recordConn) Read(p []byte) (int, error) {
	if c.direct {
		if len(c.pending) == 0 {
			return c.Conn.Read(p)
		}
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if c.ahead == nil {
		c.ahead = bufpool.Get(tlsReadAhead)
	}
	if c.left == 0 { // a record starts: its header tells its length
		for len(*c.ahead)-c.off < tlsrec.HeaderLen {
			if err := c.fill(); err != nil {
				return 0, err
			}
		}
		h := (*c.ahead)[c.off:]
		c.left = tlsrec.HeaderLen + int(binary.BigEndian.Uint16(h[3:tlsrec.HeaderLen]))
		c.records++
	}
	if c.off == len(*c.ahead) {
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	b := (*c.ahead)[c.off:]
	n := copy(p, b[:min(len(b), c.left)])
	c.keepFirst(b[:n])
	c.off += n
	c.left -= n
	return n, nil
}

// fill reads what the connection has into the read-ahead buffer, after
// the unread bytes, which it moves to the start.
func (c *recordConn) fill() error {
	b := *c.ahead
	if c.off > 0 {
		b = b[:copy(b, b[c.off:])]
		c.off = 0
	}
	n, err := c.Conn.Read(b[len(b):cap(b)])
	*c.ahead = b[:len(b)+n]
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

func (c *recordConn) keepFirst(b []byte) {
	if c.records == 1 && c.firstN < len(c.first) {
		c.firstN += copy(c.first[c.firstN:], b)
	}
}

func (c *recordConn) Write(p []byte) (int, error) {
	if c.written != nil && len(*c.written)+len(p) <= 64<<10 {
		*c.written = append(*c.written, p...)
	}
	return c.Conn.Write(p)
}

// handOver readies c to carry the *tls.Conn that net/http serves: it
// keeps no more of what is written, and reads go straight to the
// connection once what was read ahead is taken.
func (c *recordConn) handOver() {
	if c.ahead != nil && c.off < len(*c.ahead) {
		c.pending = bytes.Clone((*c.ahead)[c.off:]) // rare: a client that did not wait
	}
	c.drop()
	c.direct = true
}

// takeAhead hands over the buffer of what was read ahead and not taken,
// which starts at from, or nil when nothing was.
func (c *recordConn) takeAhead() (b *[]byte, from int) {
	b, from = c.ahead, c.off
	c.ahead = nil
	if b != nil && from == len(*b) {
		bufpool.Put(b)
		return nil, 0
	}
	return b, from
}

// drop gives c's buffers back: the connection ends, or the loop takes it.
func (c *recordConn) drop() {
	bufpool.Put(c.written)
	bufpool.Put(c.ahead)
	c.written, c.ahead = nil, nil
	c.off = 0
}

// tlsLayer is the record layer of a TLS connection on the loop: the
// poller's Sealer for its output, and the loopConn's decryption of its
// input.
type tlsLayer struct {
	rec tlsrec.RecordLayer
	lc  *loopConn

	state tlsState // the handshake's, for Session.Request

	// Under the connection's lock: an idle connection sheds its ciphers.
	active, seen uint32 // activity counted, and as the last check saw it
	checkAt      int64  // when the next check is due, Unix ns; tlsShed once shed
}

// tlsShedAfter is how long a connection is idle before it sheds its
// ciphers (about 1.5 KiB with AES-GCM), which its next record makes again.
const tlsShedAfter = time.Second

// tlsShed is tlsLayer.checkAt once the ciphers are shed: no check is due.
const tlsShed = math.MaxInt64

// shed reports whether the ciphers are shed. The connection is locked.
func (t *tlsLayer) shed() bool { return t.checkAt == tlsShed }

// activity notes that records go in or out. The connection is locked.
func (t *tlsLayer) activity() {
	t.active++
	if t.checkAt == tlsShed {
		t.checkAt = time.Now().Add(tlsShedAfter).UnixNano()
		if t.lc != nil {
			t.lc.updateTimerLocked()
		}
	}
}

// tick sheds the ciphers of a connection that was idle since the last
// check. The connection is locked.
func (t *tlsLayer) tick(now int64) {
	if now < t.checkAt {
		return
	}
	if t.active == t.seen {
		t.rec.Shed()
		t.checkAt = tlsShed
		return
	}
	t.seen = t.active
	t.checkAt = now + int64(tlsShedAfter)
}

// tlsState is a connection's tls.ConnectionState as the loop keeps it for
// Session.Request: what a TLS 1.3 server's state holds, in 56 bytes
// rather than 192, made whole again on demand. The keying material
// exporter is carried over too (crypto/tls does not export the field that
// holds it, hence reflect and unsafe), so that ExportKeyingMaterial works
// on the state made again; a state with what the compact form leaves out
// (client certificates, and the fields a server's state has empty), or a
// Go whose ConnectionState has no such field, is kept whole.
type tlsState struct {
	version, suite uint16
	curve          tls.CurveID
	flags          uint8
	serverName     string
	protocol       string
	ekm            ekmFunc
	whole          *tls.ConnectionState
}

// Flags of a tlsState.
const (
	tlsHandshakeComplete = 1 << iota
	tlsDidResume
	tlsProtocolIsMutual
	tlsECHAccepted
	tlsHelloRetryRequest
)

// ekmFunc is the type of tls.ConnectionState's exporter.
type ekmFunc = func(label string, context []byte, length int) ([]byte, error)

// ekmOffset is the offset of tls.ConnectionState's exporter, found by
// name and type; ekmKnown is false when this Go's has none.
var ekmOffset, ekmKnown = func() (uintptr, bool) {
	f, ok := reflect.TypeFor[tls.ConnectionState]().FieldByName("ekm")
	if !ok || f.Type != reflect.TypeFor[ekmFunc]() {
		return 0, false
	}
	return f.Offset, true
}()

// ekmField returns s's exporter field. ekmKnown must be true.
func ekmField(s *tls.ConnectionState) *ekmFunc {
	return (*ekmFunc)(unsafe.Add(unsafe.Pointer(s), ekmOffset))
}

// keepTLSState returns s as a tlsState. Its server name is last's when
// they are the same, else becomes last: connections that name the same
// server share one string rather than each keeping the copy crypto/tls
// made.
func keepTLSState(s *tls.ConnectionState, last *atomic.Pointer[string]) tlsState {
	if !ekmKnown || s.PeerCertificates != nil || s.VerifiedChains != nil || s.SignedCertificateTimestamps != nil ||
		s.OCSPResponse != nil || s.TLSUnique != nil {
		whole := *s
		return tlsState{whole: &whole}
	}
	k := tlsState{
		version: s.Version, suite: s.CipherSuite, curve: s.CurveID,
		serverName: s.ServerName, protocol: s.NegotiatedProtocol, ekm: *ekmField(s),
	}
	if name := s.ServerName; name != "" {
		if p := last.Load(); p != nil && *p == name {
			k.serverName = *p
		} else {
			last.Store(&name)
		}
	}
	for _, f := range [...]struct {
		set  bool
		flag uint8
	}{
		{s.HandshakeComplete, tlsHandshakeComplete}, {s.DidResume, tlsDidResume},
		{s.NegotiatedProtocolIsMutual, tlsProtocolIsMutual}, {s.ECHAccepted, tlsECHAccepted},
		{s.HelloRetryRequest, tlsHelloRetryRequest},
	} {
		if f.set {
			k.flags |= f.flag
		}
	}
	return k
}

// connectionState makes the tls.ConnectionState that k keeps, a new one
// for the caller to change.
func (k *tlsState) connectionState() *tls.ConnectionState {
	if k.whole != nil {
		s := *k.whole
		return &s
	}
	s := &tls.ConnectionState{
		Version: k.version, CipherSuite: k.suite, CurveID: k.curve,
		ServerName: k.serverName, NegotiatedProtocol: k.protocol,
		HandshakeComplete:          k.flags&tlsHandshakeComplete != 0,
		DidResume:                  k.flags&tlsDidResume != 0,
		NegotiatedProtocolIsMutual: k.flags&tlsProtocolIsMutual != 0,
		ECHAccepted:                k.flags&tlsECHAccepted != 0,
		HelloRetryRequest:          k.flags&tlsHelloRetryRequest != 0,
	}
	*ekmField(s) = k.ekm
	return s
}

// Seal implements poller.Sealer. The connection is locked.
func (t *tlsLayer) Seal(dst, plain []byte) []byte {
	t.activity()
	dst = t.rec.AppendReplies(dst)
	if len(plain) == 0 {
		return dst
	}
	out, err := t.rec.AppendRecords(dst, plain)
	if err != nil {
		return dst // after a close_notify or a fatal alert nothing more goes out
	}
	return out
}

// SealedSize implements poller.Sealer.
func (t *tlsLayer) SealedSize(n int) int { return t.rec.SealedSize(n) + t.rec.Replies() }

// Owed implements poller.Sealer.
func (t *tlsLayer) Owed() bool { return t.rec.Replies() > 0 }

// Close implements poller.Sealer: a close_notify.
func (t *tlsLayer) Close(dst []byte) []byte {
	out, err := t.rec.AppendAlert(dst, tlsrec.AlertCloseNotify)
	if err != nil {
		return dst
	}
	return out
}
