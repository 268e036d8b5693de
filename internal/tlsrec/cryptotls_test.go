package tlsrec

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

// The suites crypto/tls negotiates with itself: AES-128-GCM on hardware
// with AES instructions, ChaCha20-Poly1305 when the client leads with it.
// AES-256-GCM it never picks against its own client, which always offers
// AES-128-GCM first; the OpenSSL tests cover it.
var cryptoTLSSuites = []struct {
	name   string
	suite  uint16
	client func(*tls.Config) *tls.Config
}{
	{"AES128", tls.TLS_AES_128_GCM_SHA256, func(c *tls.Config) *tls.Config { return c }},
	{"ChaCha20", tls.TLS_CHACHA20_POLY1305_SHA256, withChaCha},
}

// connectCryptoTLS runs the handshake between a crypto/tls peer and our
// end in role, with the given suite.
func connectCryptoTLS(t *testing.T, role Role, client func(*tls.Config) *tls.Config, suite uint16, before func(*tls.Conn)) (*tls.Conn, *end, handoff) {
	t.Helper()
	ourCfg, peerCfg := serverConfig(), client(clientConfig())
	if role == Client {
		ourCfg, peerCfg = client(clientConfig()), serverConfig()
	}
	peer, e, h := connect(t, role, ourCfg, peerCfg, before)
	if h.cfg.Suite != suite {
		t.Fatalf("crypto/tls chose %s", tls.CipherSuiteName(h.cfg.Suite))
	}
	return peer, e, h
}

// Our record layer and crypto/tls exchange data of many sizes both ways,
// read in pieces of many sizes, then key updates, then close.
func TestCryptoTLSPeer(t *testing.T) {
	sizes := []int{1, 2, 5, 100, 1000, 4096, MaxPlaintext - 1, MaxPlaintext, MaxPlaintext + 1, 65536, 100003, 1 << 20}
	for _, s := range cryptoTLSSuites {
		for _, role := range []Role{Server, Client} {
			t.Run(s.name+"/"+role.String(), func(t *testing.T) {
				peer, e, h := connectCryptoTLS(t, role, s.client, s.suite, nil)
				// A crypto/tls server seals its one session ticket before
				// the handover; a client nothing. The handshake read
				// nothing under the peer's application secret.
				if want := map[Role]uint64{Server: 1, Client: 0}[role]; h.cfg.WriteSeq != want || h.sealedIn != 0 {
					t.Fatalf("write sequence %d, %d records read under the peer's secret", h.cfg.WriteSeq, h.sealedIn)
				}
				e.reads = []int{7, 1500, MaxCiphertext + HeaderLen + 3, 65536, 1, 2, 3, 4, 5, 6, 16384}
				for _, n := range sizes {
					data := pattern(n)
					got := readAsync(peer, n)
					e.send(data)
					if b := <-got; !bytes.Equal(b, data) {
						t.Fatalf("crypto/tls read %d of %d bytes", len(b), n)
					}
					werr := writeAsync(peer, data)
					b, closed, err := e.recv(n)
					if err != nil || closed || !bytes.Equal(b, data) {
						t.Fatalf("we read %d of %d bytes, closed %v, %v", len(b), n, closed, err)
					}
					if err := <-werr; err != nil {
						t.Fatal(err)
					}
					if e.l.Buffered() != 0 {
						t.Fatal("bytes held between messages")
					}
				}
				// crypto/tls cannot start a KeyUpdate, but answers ours.
				for i := range 10 {
					requested := i%2 == 0
					rsecret, wsecret := e.l.r.secret, e.l.w.secret
					e.l.UpdateKeys(requested)
					msg := []byte("after update " + strconv.Itoa(i))
					got := readAsync(peer, len(msg))
					e.send(msg)
					if b := <-got; !bytes.Equal(b, msg) {
						t.Fatalf("crypto/tls read %q", b)
					}
					if e.l.w.secret == wsecret {
						t.Fatal("write key not updated")
					}
					werr := writeAsync(peer, msg)
					if b, _, err := e.recv(len(msg)); err != nil || !bytes.Equal(b, msg) {
						t.Fatalf("we read %q, %v", b, err)
					}
					<-werr
					if (e.l.r.secret != rsecret) != requested {
						t.Fatalf("update %d, requested %v: read key updated %v", i, requested, e.l.r.secret != rsecret)
					}
				}

				// close_notify from crypto/tls; we still send, then close.
				if err := peer.CloseWrite(); err != nil {
					t.Fatal(err)
				}
				if b, closed, err := e.recv(1); len(b) != 0 || !closed || err != nil {
					t.Fatalf("after CloseWrite: %q %v %v", b, closed, err)
				}
				got := readAsync(peer, 5)
				e.send([]byte("still"))
				if b := <-got; string(b) != "still" {
					t.Fatalf("half-closed: crypto/tls read %q", b)
				}
				e.alert(AlertCloseNotify)
				if n, err := peer.Read(make([]byte, 1)); n != 0 || err != io.EOF {
					t.Fatalf("after our close_notify, crypto/tls reads %d, %v", n, err)
				}
			})
		}
	}
}

// We close first: crypto/tls reads the end, still sends, and closes.
func TestCryptoTLSPeerAfterOurClose(t *testing.T) {
	for _, s := range cryptoTLSSuites {
		for _, role := range []Role{Server, Client} {
			peer, e, _ := connectCryptoTLS(t, role, s.client, s.suite, nil)
			e.alert(AlertCloseNotify)
			if _, err := e.l.AppendRecords(nil, []byte("x")); err != ErrWriteClosed {
				t.Fatal(err)
			}
			if n, err := peer.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("crypto/tls reads %d, %v", n, err)
			}
			if _, err := peer.Write([]byte("late")); err != nil {
				t.Fatal(err)
			}
			peer.Close()
			b, closed, err := e.recv(1 << 10)
			if string(b) != "late" || !closed || err != nil {
				t.Fatalf("%s %s: %q closed %v, %v", s.name, role, b, closed, err)
			}
		}
	}
}

// The records crypto/tls sends, cut in two at every byte and fed a byte
// at a time, read as whole: data, and in the client role the server's
// session ticket and its close_notify.
func TestCryptoTLSSplitAtEveryByte(t *testing.T) {
	for _, s := range cryptoTLSSuites {
		for _, role := range []Role{Server, Client} {
			t.Run(s.name+"/"+role.String(), func(t *testing.T) {
				peer, e, h := connectCryptoTLS(t, role, s.client, s.suite, nil)
				for _, m := range []string{"a", "hello, ", "", "world"} {
					if _, err := peer.Write([]byte(m)); err != nil {
						t.Fatal(err)
					}
				}
				if err := peer.Close(); err != nil { // close_notify, then FIN
					t.Fatal(err)
				}
				stream, err := io.ReadAll(e.c)
				if err != nil {
					t.Fatal(err)
				}
				records, rest := CountRecords(stream)
				if want := map[Role]int{Server: 4, Client: 5}[role]; records != want || rest != 0 {
					t.Fatalf("%d records and %d bytes from crypto/tls", records, rest)
				}
				check := func(what string, got result) {
					t.Helper()
					if got.err != nil || string(got.data) != "ahello, world" || !got.closed {
						t.Fatalf("%s: %q closed %v, %v", what, got.data, got.closed, got.err)
					}
				}
				whole := newLayer(t, h.cfg)
				check("whole", readAll(whole, stream))
				if err := whole.End(); err != nil {
					t.Fatalf("the stream ended by crypto/tls's Close: %v", err)
				}
				cut := newLayer(t, h.cfg)
				readAll(cut, stream[:len(stream)-1])
				if err := cut.End(); err != ErrTruncated {
					t.Fatalf("the stream without its last byte: %v", err)
				}
				check("bytewise", readAll(newLayer(t, h.cfg), stream, 1))
				for i := 1; i < len(stream); i++ {
					check("cut at "+strconv.Itoa(i), readAll(newLayer(t, h.cfg), stream, i, len(stream)))
				}
			})
		}
	}
}

// The write sequence number our layer starts from is the count of records
// crypto/tls sealed under our secret before the handover, found by
// CountSealed in what it wrote: with tickets, without, after a client
// certificate, and after application data written through crypto/tls.
// Were it wrong, crypto/tls could not open our first record.
func TestCryptoTLSWriteSequence(t *testing.T) {
	write := func(msgs ...string) func(*tls.Conn) {
		return func(c *tls.Conn) {
			for _, m := range msgs {
				if _, err := c.Write([]byte(m)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	cases := []struct {
		name   string
		role   Role
		mod    func(ours, peer *tls.Config)
		before []string
		want   uint64
	}{
		{"server", Server, nil, nil, 1},
		{"server without tickets", Server, func(o, p *tls.Config) { o.SessionTicketsDisabled = true }, nil, 0},
		{"server, client without tickets", Server, func(o, p *tls.Config) { p.SessionTicketsDisabled = true }, nil, 0},
		{"server asking for a certificate", Server, func(o, p *tls.Config) { o.ClientAuth = tls.RequireAndVerifyClientCert }, nil, 1},
		{"server after writes", Server, nil, []string{"one", "two"}, 3},
		{"client", Client, nil, nil, 0},
		{"client with a certificate", Client, func(o, p *tls.Config) { p.ClientAuth = tls.RequireAndVerifyClientCert }, nil, 0},
		{"client after a write", Client, nil, []string{"one"}, 1},
	}
	for _, s := range cryptoTLSSuites {
		for _, c := range cases {
			t.Run(s.name+"/"+c.name, func(t *testing.T) {
				ours, peer := serverConfig(), s.client(clientConfig())
				if c.role == Client {
					ours, peer = s.client(clientConfig()), serverConfig()
				}
				if c.mod != nil {
					c.mod(ours, peer)
				}
				before := strings.Join(c.before, "")
				p, e, h := connect(t, c.role, ours, peer, write(c.before...))
				if h.cfg.WriteSeq != c.want {
					t.Fatalf("write sequence %d, want %d", h.cfg.WriteSeq, c.want)
				}
				// SkipSealed finds the same with the layer's own cipher.
				cfg := h.cfg
				cfg.WriteSeq = 0
				l, err := New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				if err := l.SkipSealed(bytes.Clone(h.hs.written.Bytes())); err != nil || l.w.seq != c.want {
					t.Fatalf("SkipSealed: write sequence %d, %v; want %d", l.w.seq, err, c.want)
				}
				r := readAsync(p, len(before)+len("ours"))
				e.send([]byte("ours"))
				if b := <-r; string(b) != before+"ours" {
					t.Fatalf("crypto/tls read %q", b)
				}
			})
		}
	}
}

// The alerts our layer owes reach crypto/tls, which reports them.
func TestCryptoTLSReadsOurAlerts(t *testing.T) {
	cases := []struct {
		name string
		bad  func(rec []byte) []byte // what we feed our layer instead of crypto/tls's record
		want string                  // in crypto/tls's error
	}{
		{"corrupt tag", func(rec []byte) []byte { rec[len(rec)-1] ^= 0x80; return rec }, "bad record MAC"},
		{"oversize", func(rec []byte) []byte { return []byte{23, 3, 3, 0x41, 0x01} }, "record overflow"},
		{"garbage", func(rec []byte) []byte { return []byte("GET / HTTP/1.1\r\n") }, "unexpected message"},
		{"change_cipher_spec", func(rec []byte) []byte { return []byte{20, 3, 3, 0, 1, 1} }, "unexpected message"},
	}
	for _, s := range cryptoTLSSuites {
		for _, role := range []Role{Server, Client} {
			for _, c := range cases {
				peer, e, _ := connectCryptoTLS(t, role, s.client, s.suite, nil)
				if role == Client {
					// Take the server's ticket first.
					werr := writeAsync(peer, []byte("x"))
					if _, _, err := e.recv(1); err != nil {
						t.Fatal(err)
					}
					<-werr
				}
				if _, err := peer.Write([]byte("hello")); err != nil {
					t.Fatal(err)
				}
				rec := make([]byte, Overhead+5)
				if _, err := io.ReadFull(e.c, rec); err != nil {
					t.Fatal(err)
				}
				_, _, _, err := e.l.Receive(c.bad(rec))
				if err == nil {
					t.Fatalf("%s: no error", c.name)
				}
				if _, err := e.c.Write(e.l.AppendReplies(nil)); err != nil {
					t.Fatal(err)
				}
				_, perr := peer.Read(make([]byte, 10))
				if perr == nil || !strings.Contains(perr.Error(), "remote error: tls: "+c.want) {
					t.Fatalf("%s %s %s: crypto/tls reads %v after our %v", s.name, role, c.name, perr, err)
				}
			}
		}
	}
	// A fatal alert of our own choosing.
	peer, e, _ := connectCryptoTLS(t, Server, cryptoTLSSuites[0].client, cryptoTLSSuites[0].suite, nil)
	e.alert(AlertInternalError)
	if _, err := peer.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "remote error: tls: internal error") {
		t.Fatal(err)
	}
}

// With its limits lowered to 8 records per key, our layer updates its
// write key on its own and asks crypto/tls to update its key, which it
// does, over many records both ways.
func TestCryptoTLSKeyLimits(t *testing.T) {
	for _, s := range cryptoTLSSuites {
		for _, role := range []Role{Server, Client} {
			peer, e, _ := connectCryptoTLS(t, role, s.client, s.suite, nil)
			e.l.limitLog = 3
			reads, writes := 0, 0
			for i := range 60 {
				rsecret, wsecret := e.l.r.secret, e.l.w.secret
				msg := []byte(strconv.Itoa(i))
				got := readAsync(peer, len(msg))
				e.send(msg)
				if b := <-got; !bytes.Equal(b, msg) {
					t.Fatalf("crypto/tls read %q", b)
				}
				werr := writeAsync(peer, msg)
				if b, _, err := e.recv(len(msg)); err != nil || !bytes.Equal(b, msg) {
					t.Fatalf("%d: we read %q, %v", i, b, err)
				}
				if err := <-werr; err != nil {
					t.Fatal(err)
				}
				if e.l.r.secret != rsecret {
					reads++
				}
				if e.l.w.secret != wsecret {
					writes++
				}
			}
			// Each read key lasts about 8 records of crypto/tls's and the
			// KeyUpdate it answers with; each write key 8 of ours or less.
			if reads < 5 || writes < 7 {
				t.Fatalf("%s %s: %d read keys, %d write keys over 60 records", s.name, role, reads, writes)
			}
			if errors.Is(e.l.Err(), io.EOF) {
				t.Fatal(e.l.Err())
			}
		}
	}
}

// Fed one whole record per Read, a crypto/tls server reads nothing past
// the client's Finished, even with the client's first data already
// waiting behind it: the data reaches the record layer.
func TestCryptoTLSStopsAtFinished(t *testing.T) {
	for _, s := range cryptoTLSSuites {
		rawOurs, rawPeer := loopback(t)
		kl := new(KeyLog)
		cfg := serverConfig()
		cfg.KeyLogWriter = kl
		sent := make(chan error, 1)
		go func() {
			peer := tls.Client(rawPeer, s.client(clientConfig()))
			if err := peer.Handshake(); err != nil {
				sent <- err
				return
			}
			_, err := peer.Write([]byte("right behind the Finished"))
			sent <- err
		}()
		rc := &recordConn{Conn: rawOurs}
		rc.before = func(records int) {
			// After the ClientHello, read nothing until the client is
			// done: its change_cipher_spec, Finished and data are all in.
			if records == 1 {
				if err := <-sent; err != nil {
					t.Error(err)
				}
			}
		}
		conn := tls.Server(rc, cfg)
		if err := conn.Handshake(); err != nil {
			t.Fatal(err)
		}
		h := takeOver(t, conn, rc, kl, Server)
		e := newEnd(t, h.cfg, rawOurs)
		if b, _, err := e.recv(25); string(b) != "right behind the Finished" || err != nil {
			t.Fatalf("%s: %q, %v", s.name, b, err)
		}
		if h.sealedIn != 0 || rc.records != 3 {
			t.Fatalf("%s: crypto/tls read %d records, %d under the client's secret", s.name, rc.records, h.sealedIn)
		}
	}
}
