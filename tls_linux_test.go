//go:build linux

package wskit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/bufpool"
	"github.com/wskit/wskit/internal/race"
	"github.com/wskit/wskit/internal/selfsign"
	"github.com/wskit/wskit/internal/wstest"
	"github.com/wskit/wskit/poller"
)

// tlsCert is one self-signed certificate for every TLS test.
var tlsCert = func() *selfsign.Cert {
	c, err := selfsign.New()
	if err != nil {
		panic(err)
	}
	return c
}()

// TestTLS serves wss:// on each engine, through Options.TLSConfig and
// through ServeTLS with PEM files: each session kind echoes over TLS,
// reports its engine, and a plain request over the same TLS sees r.TLS.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	keyDER, err := x509.MarshalPKCS8PrivateKey(tlsCert.TLS.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsCert.Leaf.Raw}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		for _, how := range []string{"TLSConfig", "ServeTLS"} {
			t.Run(engine.String()+"/"+how, func(t *testing.T) {
				ptLeakCheck(t)
				opts := ptOptions()
				opts.Engine = engine
				if how == "TLSConfig" {
					opts.TLSConfig = tlsCert.ServerConfig()
				}
				srv, err := NewServer(opts)
				if err != nil {
					t.Fatal(err)
				}
				engines := make(chan Engine, 4)
				mux := http.NewServeMux()
				onLoop := make(chan bool, 4)
				mux.Handle("/events", srv.WebSocketEvents(Events{OnOpen: func(s *Session) {
					ptPut(engines, s.Engine())
					ptPut(onLoop, s.lc != nil && s.lc.tls() != nil)
				}, OnMessage: ptEcho}))
				mux.Handle("/echo", srv.WebSocket(func(s *Session) { ptPut(engines, s.Engine()); ptEchoSession(s) }))
				mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
					if r.TLS == nil {
						http.Error(w, "no TLS state", 500)
						return
					}
					io.WriteString(w, tls.VersionName(r.TLS.Version))
				})
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				served := make(chan error, 1)
				go func() {
					if how == "TLSConfig" {
						served <- srv.Serve(ln, mux)
					} else {
						served <- srv.ServeTLS(ln, mux, certFile, keyFile)
					}
				}()
				t.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), ptWait)
					defer cancel()
					srv.Shutdown(ctx)
					<-served
				})
				base := "wss://localhost:" + portOf(ln.Addr())
				ctx, cancel := context.WithTimeout(context.Background(), ptWait)
				defer cancel()
				for _, path := range []string{"/events", "/echo"} {
					s, err := Dial(ctx, base+path, &DialOptions{TLSConfig: tlsCert.ClientConfig()})
					if err != nil {
						t.Fatalf("Dial %s: %v", path, err)
					}
					if e := ptAwait(t, engines, "the session"); e != engine {
						t.Errorf("%s: engine %v, want %v", path, e, engine)
					}
					if path == "/events" && engine == EnginePoll && !ptAwait(t, onLoop, "OnOpen") {
						t.Errorf("the Events session over TLS is not on the loop")
					} else if path == "/events" && engine == EngineStd {
						<-onLoop
					}
					for _, n := range []int{1, 1000, 70000} {
						p := ptPattern(n, n)
						if err := s.SendBinary(p); err != nil {
							t.Fatal(err)
						}
						m, err := s.Receive(ctx)
						if err != nil || string(m.Payload) != string(p) {
							t.Fatalf("%s: echo of %d bytes: %v", path, n, err)
						}
					}
					if err := s.Close(CloseNormal, ""); err != nil {
						t.Fatal(err)
					}
				}
				hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCert.ClientConfig()}}
				resp, err := hc.Get("https://localhost:" + portOf(ln.Addr()) + "/page")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				hc.CloseIdleConnections()
				if resp.StatusCode != 200 || string(body) != "TLS 1.3" {
					t.Fatalf("plain request over TLS: %d %q", resp.StatusCode, body)
				}
			})
		}
	}
}

// TestTLSListenerOnPoll: a tls.NewListener given to the poll engine is
// refused at once with an error that says what to do, instead of a hang.
func TestTLSListenerOnPoll(t *testing.T) {
	opts := ptOptions()
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(tls.NewListener(ln, tlsCert.ServerConfig()), http.NewServeMux()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "TLSConfig") {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(ptWait):
		t.Fatal("Serve hung")
	}
}

func portOf(a net.Addr) string { return strconv.Itoa(a.(*net.TCPAddr).Port) }

// TestTLSShedsWhenIdle: an Events session over TLS on the loop drops its
// ciphers after a second without records, and makes them again for the
// next one, both when the peer sends and when the server does.
func TestTLSShedsWhenIdle(t *testing.T) {
	ptLeakCheck(t)
	opts := ptOptions()
	opts.TLSConfig = tlsCert.ServerConfig()
	sessions := make(chan *Session, 1)
	addr := tlsStart(t, opts, func(srv *Server) http.Handler {
		return srv.WebSocketEvents(Events{OnOpen: func(s *Session) { ptPut(sessions, s) }, OnMessage: ptEcho})
	})
	ctx, cancel := context.WithTimeout(context.Background(), ptWait)
	defer cancel()
	c, err := Dial(ctx, "wss://localhost:"+strings.Split(addr, ":")[1]+"/", &DialOptions{TLSConfig: tlsCert.ClientConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(CloseNormal, "")
	s := ptAwait(t, sessions, "the session")
	shed := func() bool {
		s.lc.pe.Lock()
		defer s.lc.pe.Unlock()
		return s.lc.tls().shed()
	}
	for round := range 2 {
		deadline := time.Now().Add(3 * time.Second)
		for !shed() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if !shed() {
			t.Fatalf("round %d: the ciphers were not shed after a second idle", round)
		}
		if round == 0 {
			c.SendText("wake up")
			if m, err := c.Receive(ctx); err != nil || m.Text() != "wake up" {
				t.Fatalf("echo after shedding: %q %v", m.Payload, err)
			}
		} else {
			s.SendText("from the server") // sealing wakes the ciphers too
			if m, err := c.Receive(ctx); err != nil || m.Text() != "from the server" {
				t.Fatalf("a send after shedding: %q %v", m.Payload, err)
			}
		}
		if shed() {
			t.Fatalf("round %d: still shed after records", round)
		}
	}
}

// tlsStart serves routes(srv) with a new Server over TLS on a loopback
// port and returns its address; cleanup shuts it down.
func tlsStart(t *testing.T, opts Options, routes func(*Server) http.Handler) string {
	t.Helper()
	_, addr := tlsStartServer(t, opts, routes)
	return addr
}

// tlsStartServer is tlsStart that returns the server too.
func tlsStartServer(t *testing.T, opts Options, routes func(*Server) http.Handler) (*Server, string) {
	t.Helper()
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, routes(srv)) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ptWait)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	})
	return srv, ln.Addr().String()
}

// TestTLSIdleMemory opens many Events sessions over TLS 1.3 on the loop and
// lets them go idle long enough to shed their ciphers; the live heap they
// add per connection (the clients' TCP connections included: each client
// keeps its socket and drops its crypto/tls state) must stay within a
// bound. The figure is logged.
func TestTLSIdleMemory(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector's shadow memory blurs the heap")
	}
	const limit = 2304 // measured with Go 1.26 on amd64: about 1950
	n := 1000
	if testing.Short() {
		n = 200
	}
	opts := ptOptions()
	opts.TLSConfig = tlsCert.ServerConfig()
	srv, addr := tlsStartServer(t, opts, func(srv *Server) http.Handler { return srv.WebSocketEvents(Events{}) })
	heap := func() uint64 {
		var ms runtime.MemStats
		for range 3 { // and the pools' victim caches
			runtime.GC()
		}
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	cfg := tlsCert.ClientConfig()
	cfg.ServerName = "localhost"
	head := []byte(ptHead(addr, "/"))
	upgrade := func() net.Conn {
		raw, err := net.DialTimeout("tcp", addr, ptWait)
		if err != nil {
			t.Fatal(err)
		}
		raw.SetDeadline(time.Now().Add(ptWait))
		tc := tls.Client(raw, cfg)
		if _, err := tc.Write(head); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v, %v", resp, err)
		}
		raw.SetDeadline(time.Time{})
		return raw
	}
	conns := make([]net.Conn, n+1)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	conns[n] = upgrade() // what the server starts once is running
	before := heap()
	for i := range n {
		conns[i] = upgrade()
	}
	for deadline := time.Now().Add(ptWait); srv.Sessions() < n+1 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if got, loop := srv.Sessions(), tlsLoopSessions(srv); got != n+1 || loop != got {
		t.Fatalf("%d sessions, %d of them on the loop, want %d on the loop", got, loop, n+1)
	}
	time.Sleep(2*tlsShedAfter + 100*time.Millisecond) // idle: the ciphers are shed
	per := float64(int64(heap())-int64(before)) / float64(n)
	runtime.KeepAlive(conns)
	t.Logf("%.0f bytes per idle Events session over TLS 1.3", per)
	if per > limit {
		t.Errorf("%.0f bytes per idle Events session over TLS, more than %d", per, limit)
	}
}

// tlsLoopSessions returns the number of Events sessions on srv's loops.
func tlsLoopSessions(srv *Server) int {
	srv.mu.Lock()
	polls := srv.polls
	srv.mu.Unlock()
	var n atomic.Int64 // the loops count at once
	for _, pe := range polls {
		pe.eng.Each(func(c *poller.Conn) {
			if lc := loopConnOf(c); lc != nil && lc.tls() != nil {
				n.Add(1)
			}
		})
	}
	return int(n.Load())
}

// TestTLSSessionRequest: over TLS 1.3, Session.Request carries the
// connection's TLS state as net/http's request does, on both engines and
// for both session kinds (an Events session on the poll engine is on the
// loop): the version, the server name, ALPN's protocol, and keying
// material the client can export too. On the loop, where each call makes
// a new request, a caller changing one changes no later one.
func TestTLSSessionRequest(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		for _, path := range []string{"/events", "/echo"} {
			t.Run(engine.String()+path, func(t *testing.T) {
				opts := ptOptions()
				opts.Engine = engine
				opts.TLSConfig = tlsCert.ServerConfig()
				type seen struct {
					r, again *http.Request
					loop     bool
				}
				seens := make(chan seen, 1)
				look := func(s *Session) {
					r, loop := s.Request(), s.lc != nil && s.lc.tls() != nil
					if r.TLS != nil && loop {
						r.TLS.ServerName = "changed" // elsewhere, each call returns the same request
					}
					ptPut(seens, seen{r, s.Request(), loop})
				}
				addr := tlsStart(t, opts, func(srv *Server) http.Handler {
					mux := http.NewServeMux()
					mux.Handle("/events", srv.WebSocketEvents(Events{OnOpen: look}))
					mux.Handle("/echo", srv.WebSocket(func(s *Session) { look(s); s.Receive(context.Background()) }))
					return mux
				})
				p := tlsDial(t, addr, path, nil)
				got := ptAwait(t, seens, "the session")
				if want := engine == EnginePoll && path == "/events"; got.loop != want {
					t.Errorf("on the loop: %v, want %v", got.loop, want)
				}
				if got.r.TLS == nil {
					t.Fatal("Request().TLS is nil")
				}
				st := got.again.TLS
				client := p.tc.ConnectionState()
				if st.Version != tls.VersionTLS13 || !st.HandshakeComplete || st.ServerName != "localhost" ||
					st.NegotiatedProtocol != "http/1.1" || st.CipherSuite != client.CipherSuite {
					t.Errorf("Request().TLS: version %x, complete %v, server name %q, ALPN %q, suite %x; the client's suite %x",
						st.Version, st.HandshakeComplete, st.ServerName, st.NegotiatedProtocol, st.CipherSuite, client.CipherSuite)
				}
				ours, err := st.ExportKeyingMaterial("EXPERIMENTAL wskit", []byte("test"), 32)
				theirs, _ := client.ExportKeyingMaterial("EXPERIMENTAL wskit", []byte("test"), 32)
				if err != nil || !bytes.Equal(ours, theirs) {
					t.Errorf("exported keying material %x, %v; the client's %x", ours, err, theirs)
				}
			})
		}
	}
}

// TestTLSHeadTimeout: a client that shakes hands and sends part of a
// request head is cut at HandshakeTimeout from the connection's start,
// not later, on both engines and over TLS 1.3 and 1.2.
func TestTLSHeadTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
			t.Run(engine.String()+"/"+tls.VersionName(version), func(t *testing.T) {
				ptLeakCheck(t)
				opts := ptOptions()
				opts.Engine = engine
				opts.HandshakeTimeout = timeout
				opts.TLSConfig = tlsCert.ServerConfig()
				addr := tlsStart(t, opts, func(srv *Server) http.Handler { return srv.WebSocketEvents(Events{}) })
				start := time.Now()
				nc, err := net.DialTimeout("tcp", addr, ptWait)
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				cfg := tlsCert.ClientConfig()
				cfg.ServerName = "localhost"
				cfg.MinVersion, cfg.MaxVersion = version, version
				tc := tls.Client(nc, cfg)
				tc.SetDeadline(time.Now().Add(ptWait))
				if _, err := tc.Write([]byte("GET / HTTP/1.1\r\nHost: local")); err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(tc)
				took := time.Since(start)
				t.Logf("cut after %v: %v, %q", took.Round(time.Millisecond), err, got)
				if err != nil && !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("the end: %v", err)
				}
				if took < timeout-50*time.Millisecond || took > timeout+300*time.Millisecond {
					t.Errorf("cut after %v, want at HandshakeTimeout (%v)", took, timeout)
				}
			})
		}
	}
}

// tlsKeyLog is a KeyLogWriter that keeps what it is given.
type tlsKeyLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *tlsKeyLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *tlsKeyLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestTLSConfigForClient: with a configuration per client from
// GetConfigForClient, Events sessions over TLS 1.3 stay on the loop;
// that configuration's KeyLogWriter gets the keys, as crypto/tls gives
// them, and a later connection resumes the first one's TLS session.
func TestTLSConfigForClient(t *testing.T) {
	ptLeakCheck(t)
	opts := ptOptions()
	base, per := new(tlsKeyLog), new(tlsKeyLog)
	perClient := tlsCert.ServerConfig()
	perClient.KeyLogWriter = per
	opts.TLSConfig = &tls.Config{
		KeyLogWriter: base,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return perClient, nil
		},
	}
	onLoop := make(chan bool, 1)
	addr := tlsStart(t, opts, func(srv *Server) http.Handler {
		return srv.WebSocketEvents(Events{OnOpen: func(s *Session) { ptPut(onLoop, s.lc != nil && s.lc.tls() != nil) }, OnMessage: ptEcho})
	})
	cache := tls.NewLRUClientSessionCache(1)
	for i := range 2 {
		p := tlsDial(t, addr, "/", func(cfg *tls.Config) { cfg.ClientSessionCache = cache })
		if !ptAwait(t, onLoop, "OnOpen") {
			t.Fatalf("connection %d: the session is not on the loop", i)
		}
		p.mustEcho([]byte("hello"))
		if resumed := p.tc.ConnectionState().DidResume; resumed != (i == 1) {
			t.Errorf("connection %d: resumed %v", i, resumed)
		}
		p.tc.Close()
	}
	if n := strings.Count(per.String(), "CLIENT_TRAFFIC_SECRET_0 "); n != 2 {
		t.Errorf("the configuration for the client logged %d traffic secrets, want 2:\n%s", n, per)
	}
	if s := base.String(); s != "" {
		t.Errorf("the server's configuration logged keys for another's handshakes:\n%s", s)
	}
}

// TestTLSBadHandshake: a client that fails its TLS handshake is logged at
// DEBUG on both engines, not above (any client can fail one), and one
// that sends a plain HTTP request gets net/http's 400 on both.
func TestTLSBadHandshake(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		t.Run(engine.String(), func(t *testing.T) {
			ptLeakCheck(t)
			opts := ptOptions()
			opts.Engine = engine
			opts.TLSConfig = tlsCert.ServerConfig()
			logs := &wstest.SyncBuffer{}
			opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			addr := tlsStart(t, opts, func(srv *Server) http.Handler { return srv.WebSocketEvents(Events{}) })
			for _, input := range []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\xde\xad\xbe\xef\xde\xad\xbe\xef"} {
				nc, err := net.DialTimeout("tcp", addr, ptWait)
				if err != nil {
					t.Fatal(err)
				}
				nc.SetDeadline(time.Now().Add(ptWait))
				nc.Write([]byte(input))
				got, err := io.ReadAll(nc)
				nc.Close()
				if err != nil {
					t.Fatalf("reading the answer to %q: %v", input, err)
				}
				if strings.HasPrefix(input, "GET") {
					if want := "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"; string(got) != want {
						t.Errorf("the answer to a plain request is %q, want %q", got, want)
					}
				}
			}
			deadline := time.Now().Add(ptWait)
			for strings.Count(logs.String(), "\n") < 2 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			log := logs.String()
			lines := strings.Split(strings.TrimSuffix(log, "\n"), "\n")
			for _, line := range lines {
				if !strings.Contains(line, "level=DEBUG") || !strings.Contains(line, "TLS handshake") {
					t.Errorf("want failed handshakes at DEBUG only, got %s", line)
				}
			}
			if len(lines) != 2 || !strings.Contains(log, "client sent an HTTP request to an HTTPS server") {
				t.Errorf("want the two failed handshakes, the plain request named:\n%s", log)
			}
		})
	}
}

// TestTLSCallbackPanics: a panic in the application's TLS callbacks
// (here GetCertificate) drops the connection it served and is logged; the
// server goes on, on both engines, as net/http does.
func TestTLSCallbackPanics(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		t.Run(engine.String(), func(t *testing.T) {
			ptLeakCheck(t)
			opts := ptOptions()
			opts.Engine = engine
			logs := &wstest.SyncBuffer{}
			opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
			cert := tlsCert.TLS
			opts.TLSConfig = &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
				if hello.ServerName == "boom.localhost" {
					panic("boom in GetCertificate")
				}
				return &cert, nil
			}}
			addr := tlsStart(t, opts, func(srv *Server) http.Handler { return srv.WebSocketEvents(Events{OnMessage: ptEcho}) })
			nc, err := net.DialTimeout("tcp", addr, ptWait)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			tc := tls.Client(nc, &tls.Config{ServerName: "boom.localhost", InsecureSkipVerify: true})
			tc.SetDeadline(time.Now().Add(ptWait))
			if err := tc.Handshake(); err == nil {
				t.Fatal("the handshake went through")
			}
			p := tlsDial(t, addr, "/", nil)
			p.mustEcho([]byte("still serving"))
			p.tc.Close()
			deadline := time.Now().Add(ptWait)
			for !strings.Contains(logs.String(), "boom in GetCertificate") && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if !strings.Contains(logs.String(), "boom in GetCertificate") {
				t.Errorf("the panic is not logged:\n%s", logs)
			}
		})
	}
}

// tlsHoldConn holds what is written while hold is set, and writes it in
// one go on flush: records that arrive together.
type tlsHoldConn struct {
	net.Conn
	hold bool
	held []byte
}

func (c *tlsHoldConn) Write(p []byte) (int, error) {
	if c.hold {
		c.held = append(c.held, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *tlsHoldConn) flush() error {
	c.hold = false
	_, err := c.Conn.Write(c.held)
	return err
}

// TestTLSFramesWithTheHead sends, in one TCP segment right after the
// handshake, the upgrade request with a frame in its record and two more
// frames in records of their own, without waiting for the 101: on the
// poll engine the records the handshake's reader took ahead of crypto/tls
// go to the loop's record layer, and every frame is echoed in order. A
// head that, with the frame after it, fills the buffer it is read into
// may leave bytes of its record in crypto/tls: net/http serves that
// session, and its frames are echoed too.
func TestTLSFramesWithTheHead(t *testing.T) {
	b := bufpool.Get(2048)
	fill := cap(*b) // what the head is read into first
	bufpool.Put(b)
	for _, tc := range []struct {
		name  string
		head  string
		first string
	}{
		{"short", ptHead("localhost", "/"), "in the head's record"},
		{"filling", ptHead("localhost", "/", "X-Pad: "+strings.Repeat("p", fill-100-len(ptHead("localhost", "/")))),
			strings.Repeat("in the head's record, past the buffer ", 8)},
	} {
		for _, engine := range []Engine{EngineStd, EnginePoll} {
			t.Run(tc.name+"/"+engine.String(), func(t *testing.T) {
				testTLSFramesWithTheHead(t, engine, tc.head, tc.first, engine == EnginePoll && tc.name == "short")
			})
		}
	}
}

func testTLSFramesWithTheHead(t *testing.T, engine Engine, head, first string, wantLoop bool) {
	ptLeakCheck(t)
	opts := ptOptions()
	opts.Engine = engine
	opts.TLSConfig = tlsCert.ServerConfig()
	onLoop := make(chan bool, 1)
	addr := tlsStart(t, opts, func(srv *Server) http.Handler {
		return srv.WebSocketEvents(Events{
			OnOpen:    func(s *Session) { ptPut(onLoop, s.lc != nil && s.lc.tls() != nil) },
			OnMessage: ptEcho,
		})
	})
	nc, err := net.DialTimeout("tcp", addr, ptWait)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	hc := &tlsHoldConn{Conn: nc}
	cfg := tlsCert.ClientConfig()
	cfg.ServerName = "localhost"
	cfg.MinVersion = tls.VersionTLS13
	tc := tls.Client(hc, cfg)
	tc.SetDeadline(time.Now().Add(ptWait))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	hc.hold = true
	msgs := []string{first, "in a record of its own", "and one more"}
	tc.Write(append([]byte(head), ptFrame(true, frame.OpText, []byte(msgs[0]))...))
	tc.Write(ptFrame(true, frame.OpText, []byte(msgs[1])))
	tc.Write(ptFrame(true, frame.OpText, []byte(msgs[2])))
	if err := hc.flush(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(tc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v, %v", resp, err)
	}
	if loop := ptAwait(t, onLoop, "OnOpen"); loop != wantLoop {
		t.Fatalf("session on the loop: %v", loop)
	}
	for _, want := range msgs {
		var hdr [4]byte
		if _, err := io.ReadFull(br, hdr[:2]); err != nil {
			t.Fatalf("reading the echo of %q: %v", want, err)
		}
		size := int(hdr[1])
		if size == 126 {
			io.ReadFull(br, hdr[2:])
			size = int(hdr[2])<<8 | int(hdr[3])
		}
		got := make([]byte, size)
		if _, err := io.ReadFull(br, got); err != nil || hdr[0] != 0x81 || string(got) != want {
			t.Fatalf("echo % x %q, %v; want %q", hdr, got, err, want)
		}
	}
}
