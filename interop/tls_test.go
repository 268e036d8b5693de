package interop

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/internal/selfsign"
	"github.com/wskit/wskit/internal/tlsrec"
)

// wss:// against peers nobody here wrote. The TLS servers under test are
// those of forEachVariant with Options.TLSConfig set (withTLS): each
// variant keeps its routes and its contract, and TLS decides where a
// session is served:
//
//	std          net/http over crypto/tls, a goroutine per connection.
//	poll         crypto/tls shakes hands on a goroutine of its own, then
//	             net/http serves the default session over the *tls.Conn.
//	poll-events  over TLS 1.3 the event loop runs the record layer itself
//	             (internal/tlsrec), with no goroutine per connection: "the
//	             loop path". Over TLS 1.2, net/http over the *tls.Conn.
//
// This module cannot see wskit's internals, so the loop path is known by
// construction: the poll engine hands the loop exactly the upgrades to a
// bare Events route (no accept hook, no middleware) over TLS 1.3
// (tlsserve.go, loopUpgrade), when the engine learns the handshake's
// secrets, as it does with its own configuration and with those that
// GetConfigForClient returns (see TestTLSLoopPath). A session that the server
// reports on EnginePoll and on an Events route (sessionInfo), over TLS 1.3
// as its client negotiated it, is therefore on the loop. TestTLSLoopPath
// shows the same from outside: idle sessions on the loop path hold no
// goroutine, on every other path one or more each.

// testCert is the certificate of every TLS server under test, made once:
// self-signed, for localhost, 127.0.0.1 and ::1. The peers trust it.
var testCert = sync.OnceValue(func() *selfsign.Cert {
	c, err := selfsign.New()
	if err != nil {
		panic(err)
	}
	return c
})

// testCertFile writes testCert in PEM, for the peers that read the
// certificates they trust from a file, and returns its path.
func testCertFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wskit-test-ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: testCert().Leaf.Raw})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// withTLS returns a configure func for newEchoServer that applies
// configure (when not nil), then serves TLS with testCert.
func withTLS(configure func(*wskit.Options)) func(*wskit.Options) {
	return func(o *wskit.Options) {
		if configure != nil {
			configure(o)
		}
		o.TLSConfig = testCert().ServerConfig()
	}
}

// tlsVersion is the highest TLS version a client offers.
type tlsVersion struct {
	name string
	id   uint16
}

var (
	tls13 = tlsVersion{"tls1.3", tls.VersionTLS13}
	tls12 = tlsVersion{"tls1.2", tls.VersionTLS12}
	// tlsVersions are the versions every Go client runs with: TLS 1.3,
	// and TLS 1.2 forced with MaxVersion, which the poll engine serves
	// through net/http even on an Events route.
	tlsVersions = []tlsVersion{tls13, tls12}
)

// forEachTLSVariant runs test on each server variant serving TLS (with
// configure applied first, see withTLS), once per TLS version of the
// client, in subtests variant/version against one server per variant.
func forEachTLSVariant(t *testing.T, configure func(*wskit.Options), test func(t *testing.T, srv *echoServer, v tlsVersion)) {
	t.Helper()
	forEachVariantWith(t, withTLS(configure), func(t *testing.T, srv *echoServer) {
		for _, v := range tlsVersions {
			t.Run(v.name, func(t *testing.T) { test(t, srv, v) })
		}
	})
}

// wssURL returns the wss:// address of path on the server at addr
// (127.0.0.1:PORT: testCert holds the address).
func wssURL(addr, path string) string { return "wss://" + addr + path }

// onLoop reports whether a session of variant sv over TLS version is
// served on the event loop's own record layer (see the top of this file).
func onLoop(sv serverVariant, version uint16) bool {
	return sv.engine == wskit.EnginePoll && sv.events && version == tls.VersionTLS13
}

// tlsPath names where the server serves a session of variant sv over TLS
// version.
func tlsPath(sv serverVariant, version uint16) string {
	switch {
	case onLoop(sv, version):
		return "the event loop's record layer (the loop path)"
	case sv.engine == wskit.EnginePoll:
		return "net/http over the *tls.Conn the poll engine handed it"
	}
	return "net/http over crypto/tls (std)"
}

// checkTLSSession checks a session that a client opened over TLS from
// local: it negotiated want, and the server saw it on its variant's engine
// and route kind, with TLS state in its request. It logs where the session
// is served.
func checkTLSSession(t *testing.T, srv *echoServer, local net.Addr, state tls.ConnectionState, want tlsVersion) {
	t.Helper()
	info, ok := srv.sessionFrom(local.String())
	if !ok {
		t.Fatalf("no session from %s opened on the server within %v", local, stepTimeout)
	}
	checkServed(t, srv, info, state, want)
}

// checkServed is checkTLSSession with what the server saw of the session.
func checkServed(t *testing.T, srv *echoServer, info sessionInfo, state tls.ConnectionState, want tlsVersion) {
	t.Helper()
	checkServedAt(t, srv, info, state.Version, tls.CipherSuiteName(state.CipherSuite), want)
}

// checkServedAt is checkServed for a client that negotiated version with
// the named cipher suite.
func checkServedAt(t *testing.T, srv *echoServer, info sessionInfo, version uint16, suite string, want tlsVersion) {
	t.Helper()
	if version != want.id {
		t.Errorf("the client negotiated %s, want %s", tls.VersionName(version), tls.VersionName(want.id))
	}
	sv := srv.Variant
	if info.Engine != sv.engine || info.Events != sv.events {
		t.Errorf("the server saw the session on %v (Events route: %v), want %v (%v)", info.Engine, info.Events, sv.engine, sv.events)
	}
	t.Logf("%s, %s: the session to %s is served by %s", tls.VersionName(version), suite, info.Path, tlsPath(sv, version))
}

// wireTap is a client's TCP connection, under crypto/tls, that keeps every
// byte it carried each way, so that a test can open the records the server
// sent with the client's key log (tappedTLS.wantCloseNotify).
type wireTap struct {
	net.Conn
	mu      sync.Mutex
	in, out []byte
}

func (c *wireTap) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.in = append(c.in, p[:n]...)
	c.mu.Unlock()
	return n, err
}

func (c *wireTap) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.out = append(c.out, p...)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// streams returns copies of what the client received and sent so far.
func (c *wireTap) streams() (in, out []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.in...), append([]byte(nil), c.out...)
}

// tappedTLS is one TLS client connection of a test: its configuration,
// which trusts testCert, offers at most a version and logs the traffic
// secrets, and the TCP connection under it, tapped.
type tappedTLS struct {
	cfg  *tls.Config
	keys *tlsrec.KeyLog

	mu   sync.Mutex
	conn *wireTap
}

func newTappedTLS(v tlsVersion) *tappedTLS {
	tt := &tappedTLS{cfg: testCert().ClientConfig(), keys: new(tlsrec.KeyLog)}
	tt.cfg.MaxVersion = v.id
	tt.cfg.KeyLogWriter = tt.keys
	return tt
}

// dial connects to addr and taps the connection: a DialContext for the
// peers' clients, which then run crypto/tls over it with tt.cfg.
func (tt *tappedTLS) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	w := &wireTap{Conn: c}
	tt.mu.Lock()
	tt.conn = w
	tt.mu.Unlock()
	return w, nil
}

func (tt *tappedTLS) tap() *wireTap {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.conn
}

// wantCloseNotify checks, once the client has read the end of the
// connection, that the server ended its TLS stream with a close_notify
// after the close handshake: it opens the records the server sealed under
// its application secret with a client-side record layer and the secrets
// the client logged. Only TLS 1.3 records are opened this way; over
// TLS 1.2 it checks nothing.
func (tt *tappedTLS) wantCloseNotify(t *testing.T, state tls.ConnectionState) {
	t.Helper()
	if state.Version != tls.VersionTLS13 {
		return
	}
	in, out := tt.tap().streams()
	random, ok := tlsrec.ClientRandom(out)
	if !ok {
		t.Fatal("the client's stream does not start with a ClientHello")
	}
	secrets, ok := tt.keys.Take(random)
	if !ok {
		t.Fatal("the client logged no application traffic secrets")
	}
	records, rest := tlsrec.CountRecords(in)
	if rest != 0 {
		t.Fatalf("the server's stream ends inside a record (%d bytes left)", rest)
	}
	sealed, err := tlsrec.CountSealed(state.CipherSuite, secrets.Server, in)
	if err != nil {
		t.Fatalf("find the server's application records: %v", err)
	}
	off := 0
	for range records - sealed {
		off += tlsrec.HeaderLen + (int(in[off+3])<<8 | int(in[off+4]))
	}
	var rl tlsrec.RecordLayer
	if err := rl.Init(tlsrec.Config{Suite: state.CipherSuite, Role: tlsrec.Client, Secrets: secrets}); err != nil {
		t.Fatal(err)
	}
	defer rl.Release()
	var data int
	var closed bool
	for stream := in[off:]; len(stream) > 0; {
		ev, n, ok, err := rl.Receive(stream)
		if err != nil {
			t.Fatalf("open the server's records: %v", err)
		}
		stream = stream[n:]
		switch {
		case !ok:
		case closed:
			t.Errorf("the server sent %d bytes after its close_notify", len(ev.Data))
		case ev.Kind == tlsrec.EventClose:
			closed = true
		default:
			data += len(ev.Data)
		}
	}
	if !closed {
		t.Errorf("the server's %d application records (%d bytes of data) end without a close_notify", sealed, data)
	}
}

// settledGoroutines waits until the number of goroutines has stayed the
// same for 100 ms (goroutines of connections that ended may still be on
// their way out), for at most stepTimeout, and returns it.
func settledGoroutines() int {
	n, since := runtime.NumGoroutine(), time.Now()
	for deadline := time.Now().Add(stepTimeout); time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		if m := runtime.NumGoroutine(); m != n {
			n, since = m, time.Now()
		} else if time.Since(since) >= 100*time.Millisecond {
			break
		}
	}
	return n
}

// waitGoroutines waits until at most n goroutines run, for at most
// stepTimeout, and returns how many run then.
func waitGoroutines(n int) int {
	waitUntil(func() bool { return runtime.NumGoroutine() <= n })
	return runtime.NumGoroutine()
}
