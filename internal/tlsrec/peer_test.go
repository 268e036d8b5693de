package tlsrec

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// What the tests against real peers share: a certificate for wskit.test,
// and the handshake run the way the poll engine runs it.

var testCert = sync.OnceValues(func() (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "wskit.test"},
		DNSNames:     []string{"wskit.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
})

func serverConfig() *tls.Config {
	cert, pool := testCert()
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, MinVersion: tls.VersionTLS13}
}

// clientConfig has a session cache, as browsers do: without one a
// crypto/tls client offers no psk_key_exchange_modes, and a crypto/tls
// server sends it no session ticket.
func clientConfig() *tls.Config {
	cert, pool := testCert()
	return &tls.Config{
		Certificates:       []tls.Certificate{cert},
		RootCAs:            pool,
		ServerName:         "wskit.test",
		MinVersion:         tls.VersionTLS13,
		ClientSessionCache: tls.NewLRUClientSessionCache(4),
	}
}

// withChaCha makes a crypto/tls client lead its ClientHello's suites with
// a ChaCha20-Poly1305 one. TLS 1.3 suites cannot be configured, but a
// crypto/tls server prefers AES-GCM only when the first suite the client
// offers is AES-GCM (isAESGCMPreferred), and Config.CipherSuites still
// sets the TLS 1.2 suites that come first: offering TLS 1.2 with only its
// ChaCha20 suite makes the server pick TLS_CHACHA20_POLY1305_SHA256.
func withChaCha(c *tls.Config) *tls.Config {
	c.MinVersion = tls.VersionTLS12
	c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}
	return c
}

// recordConn is the transport the handshake runs over, as the poll
// engine feeds crypto/tls: one whole record per Read, never a byte of the
// next from the connection. It keeps what passed both ways.
type recordConn struct {
	net.Conn
	pending []byte // rest of the record being handed over
	read    bytes.Buffer
	written bytes.Buffer
	records int
	// before, when set, runs before the record numbered records is read.
	before func(records int)
}

func (c *recordConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		if c.before != nil {
			c.before(c.records)
		}
		c.records++
		var hdr [HeaderLen]byte
		if _, err := io.ReadFull(c.Conn, hdr[:]); err != nil {
			return 0, err
		}
		rec := make([]byte, HeaderLen+(int(hdr[3])<<8|int(hdr[4])))
		copy(rec, hdr[:])
		if _, err := io.ReadFull(c.Conn, rec[HeaderLen:]); err != nil {
			return 0, err
		}
		c.read.Write(rec)
		c.pending = rec
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.written.Write(p)
	return c.Conn.Write(p)
}

// loopback returns the two ends of a TCP connection over loopback.
func loopback(t testing.TB) (a, b net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	b = r.c
	deadline := time.Now().Add(time.Minute)
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// handoff is what the engine learns from a finished handshake.
type handoff struct {
	cfg      Config
	hs       *recordConn
	sealedIn int // records the handshake read under the peer's secret
}

// takeOver builds the record layer for our end of a connection whose
// handshake crypto/tls ran over rc with kl as its key log.
func takeOver(t testing.TB, conn *tls.Conn, rc *recordConn, kl *KeyLog, role Role) handoff {
	t.Helper()
	cs := conn.ConnectionState()
	if cs.Version != tls.VersionTLS13 {
		t.Fatalf("version %x", cs.Version)
	}
	if len(rc.pending) != 0 {
		t.Fatal("crypto/tls left part of a record unread")
	}
	hello := rc.read.Bytes()
	if role == Client {
		hello = rc.written.Bytes()
	}
	random, ok := ClientRandom(hello)
	if !ok {
		t.Fatal("no ClientHello")
	}
	secrets, ok := kl.Take(random)
	if !ok || kl.Len() != 0 {
		t.Fatalf("key log: secrets %v, %d entries left", ok, kl.Len())
	}
	ours, theirs := secrets.Server, secrets.Client
	if role == Client {
		ours, theirs = theirs, ours
	}
	wseq, err := CountSealed(cs.CipherSuite, ours, rc.written.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	rseq, err := CountSealed(cs.CipherSuite, theirs, rc.read.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return handoff{
		cfg:      Config{Suite: cs.CipherSuite, Role: role, Secrets: secrets, ReadSeq: uint64(rseq), WriteSeq: uint64(wseq)},
		hs:       rc,
		sealedIn: rseq,
	}
}

// connect runs a handshake between a crypto/tls peer and our end, whose
// crypto/tls hands over to a RecordLayer once done. before, when set,
// runs on our tls.Conn before the handover (to write through it).
func connect(t testing.TB, role Role, ourCfg, peerCfg *tls.Config, before func(*tls.Conn)) (*tls.Conn, *end, handoff) {
	t.Helper()
	rawOurs, rawPeer := loopback(t)
	kl := new(KeyLog)
	ourCfg.KeyLogWriter = kl
	rc := &recordConn{Conn: rawOurs}
	var ours, peer *tls.Conn
	if role == Server {
		ours, peer = tls.Server(rc, ourCfg), tls.Client(rawPeer, peerCfg)
	} else {
		ours, peer = tls.Client(rc, ourCfg), tls.Server(rawPeer, peerCfg)
	}
	errc := make(chan error, 1)
	go func() { errc <- peer.Handshake() }()
	if err := ours.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(ours)
	}
	h := takeOver(t, ours, rc, kl, role)
	return peer, newEnd(t, h.cfg, rawOurs), h
}

// end is our end of a connection after the handover: a RecordLayer on the
// raw connection, read in pieces of varying size.
type end struct {
	t      testing.TB
	l      *RecordLayer
	c      net.Conn
	buf    []byte
	unread []byte
	reads  []int // sizes of successive reads, cycled
	i      int
}

func newEnd(t testing.TB, cfg Config, c net.Conn) *end {
	return &end{t: t, l: newLayer(t, cfg), c: c, buf: make([]byte, 1<<17), reads: []int{1 << 17}}
}

// send seals data and writes it.
func (e *end) send(data []byte) {
	e.t.Helper()
	out, err := e.l.AppendRecords(nil, data)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.c.Write(out); err != nil {
		e.t.Fatal(err)
	}
}

// alert sends an alert.
func (e *end) alert(a Alert) {
	e.t.Helper()
	out, err := e.l.AppendAlert(nil, a)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.c.Write(out); err != nil {
		e.t.Fatal(err)
	}
}

// recv reads until want bytes of data have come, the peer's close_notify
// came, or an error, writing what the layer owes the peer as it goes.
func (e *end) recv(want int) (data []byte, closed bool, err error) {
	for len(data) < want && !closed {
		if len(e.unread) == 0 {
			size := e.reads[e.i%len(e.reads)]
			e.i++
			n, err := e.c.Read(e.buf[:size])
			if n == 0 {
				return data, closed, err
			}
			e.unread = e.buf[:n]
		}
		ev, n, ok, err := e.l.Receive(e.unread)
		e.unread = e.unread[n:]
		if e.l.Replies() > 0 {
			if _, werr := e.c.Write(e.l.AppendReplies(nil)); werr != nil {
				return data, closed, werr
			}
		}
		if err != nil {
			return data, closed, err
		}
		if ok {
			switch ev.Kind {
			case EventData:
				data = append(data, ev.Data...)
			case EventClose:
				closed = true
			}
		}
	}
	e.l.ReturnLent()
	return data, closed, nil
}

// await reads records that carry no data until cond holds, writing what
// the layer owes the peer as it goes.
func (e *end) await(cond func() bool) {
	e.t.Helper()
	for !cond() {
		if len(e.unread) == 0 {
			n, err := e.c.Read(e.buf)
			if n == 0 {
				e.t.Fatal(err)
			}
			e.unread = e.buf[:n]
		}
		ev, n, ok, err := e.l.Receive(e.unread)
		e.unread = e.unread[n:]
		if e.l.Replies() > 0 {
			if _, err := e.c.Write(e.l.AppendReplies(nil)); err != nil {
				e.t.Fatal(err)
			}
		}
		if err != nil || ok {
			e.t.Fatalf("waiting, got %v %q, %v", ev.Kind, ev.Data, err)
		}
	}
}

// readAsync reads n bytes from a peer on a goroutine of its own.
func readAsync(r io.Reader, n int) <-chan []byte {
	ch := make(chan []byte, 1)
	go func() {
		b := make([]byte, n)
		k, _ := io.ReadFull(r, b)
		ch <- b[:k]
	}()
	return ch
}

// writeAsync writes data to a peer on a goroutine of its own.
func writeAsync(w io.Writer, data []byte) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := w.Write(data)
		ch <- err
	}()
	return ch
}
