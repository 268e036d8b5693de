package wskit_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/race"
	"github.com/wskit/wskit/internal/wstest"
)

// rawServer serves each connection on a loopback listener with serve,
// after reading the request head, which it passes along with the reader
// that read it. It returns the
// ws:// URL of the listener. Listener and connections are closed at the
// end of the test.
func rawServer(t *testing.T, serve func(nc net.Conn, br *bufio.Reader, req *http.Request)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				br := bufio.NewReader(nc)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				serve(nc, br, req)
			}()
		}
	}()
	return "ws://" + ln.Addr().String() + "/"
}

// heapPeak samples the heap in use until stop is called, which returns
// the largest growth seen over the heap in use at the start (after a GC).
func heapPeak() (stop func() (growth uint64)) {
	runtime.GC()
	var start runtime.MemStats
	runtime.ReadMemStats(&start)
	var peak atomic.Uint64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-sampled
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		p := max(peak.Load(), m.HeapInuse)
		if p < start.HeapInuse {
			return 0
		}
		return p - start.HeapInuse
	}
}

// A server that streams an endless header line meets MaxHandshakeSize:
// the client's heap stays flat, and the error names the bound. (Before the
// bound, 512 MiB streamed this way grew the heap in use by 1.3 GiB.)
func TestDialBoundsResponseHead(t *testing.T) {
	checkGoroutines(t)
	const stream = 512 << 20 // what the server sends at most
	var sent atomic.Int64
	url := rawServer(t, func(nc net.Conn, _ *bufio.Reader, _ *http.Request) {
		nc.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nX-Endless: "))
		chunk := []byte(strings.Repeat("a", 64<<10))
		for sent.Load() < stream {
			n, err := nc.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	for _, limit := range []int{wskit.DefaultOptions().MaxHandshakeSize, 1 << 10} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			o := testOptions()
			o.MaxHandshakeSize = limit
			o.HandshakeTimeout = wait
			stop := heapPeak()
			s, err := wskit.Dial(context.Background(), url, &wskit.DialOptions{Options: o})
			growth := stop()
			if err == nil {
				s.Close(wskit.CloseNormal, "")
				t.Fatal("Dial succeeded against an endless header line")
			}
			t.Logf("error: %v; heap growth %d KiB; %d KiB streamed so far", err, growth>>10, sent.Load()>>10)
			if !errors.Is(err, wskit.ErrBadHandshake) || !strings.Contains(err.Error(), fmt.Sprintf("exceeded %d bytes (Options.MaxHandshakeSize)", limit)) {
				t.Errorf("Dial = %v, want ErrBadHandshake naming the bound %d and MaxHandshakeSize", err, limit)
			}
			if growth > 4<<20 {
				t.Errorf("heap in use grew by %d KiB while refusing the response, want under 4 MiB", growth>>10)
			}
		})
	}
}

// The bound is exact: a head of MaxHandshakeSize bytes passes, one more
// byte fails.
func TestDialResponseHeadAtTheBound(t *testing.T) {
	checkGoroutines(t)
	const limit = 1 << 10
	for _, size := range []int{limit, limit + 1} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			url := rawServer(t, func(nc net.Conn, br *bufio.Reader, req *http.Request) {
				head := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
					"Sec-WebSocket-Accept: " + acceptFor(req.Header.Get("Sec-WebSocket-Key")) + "\r\nX-Pad: "
				pad := size - len(head) - len("\r\n\r\n")
				nc.Write([]byte(head + strings.Repeat("p", pad) + "\r\n\r\n"))
				answerClose(nc, br)
			})
			o := testOptions()
			o.MaxHandshakeSize = limit
			s, err := wskit.Dial(context.Background(), url, &wskit.DialOptions{Options: o})
			if size <= limit {
				if err != nil {
					t.Fatalf("Dial with a head of exactly MaxHandshakeSize bytes: %v", err)
				}
				s.Close(wskit.CloseNormal, "")
				return
			}
			if !errors.Is(err, wskit.ErrBadHandshake) || !strings.Contains(err.Error(), "exceeded 1024 bytes") {
				t.Errorf("Dial with a head one byte over = %v, want the bound's error", err)
			}
		})
	}
}

// HandshakeTimeout and ctx bound the dial against a server that is slow or
// silent, at every step.
func TestDialTimeouts(t *testing.T) {
	checkGoroutines(t)
	trickle := rawServer(t, func(nc net.Conn, _ *bufio.Reader, _ *http.Request) {
		nc.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nX-Slow: "))
		for {
			time.Sleep(20 * time.Millisecond)
			if _, err := nc.Write([]byte("a")); err != nil {
				return
			}
		}
	})
	silentLn, err := net.Listen("tcp", "127.0.0.1:0") // accepts (backlog), never answers
	if err != nil {
		t.Fatal(err)
	}
	defer silentLn.Close()
	silent := silentLn.Addr().String()

	for _, tc := range []struct {
		name   string
		url    string
		cancel bool // cancel ctx instead of waiting for HandshakeTimeout
	}{
		{"a head a byte at a time", trickle, false},
		{"a head a byte at a time, cancelled", trickle, true},
		{"no answer to the request", "ws://" + silent + "/", false},
		{"no answer to TLS", "wss://" + silent + "/", false},
		{"no answer to TLS, cancelled", "wss://" + silent + "/", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions()
			o.HandshakeTimeout = 300 * time.Millisecond
			ctx := context.Background()
			if tc.cancel {
				o.HandshakeTimeout = wait
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				time.AfterFunc(200*time.Millisecond, cancel)
			}
			start := time.Now()
			s, err := wskit.Dial(ctx, tc.url, &wskit.DialOptions{Options: o})
			took := time.Since(start)
			if err == nil {
				s.Close(wskit.CloseNormal, "")
				t.Fatal("Dial succeeded")
			}
			if took > 2*time.Second {
				t.Errorf("Dial returned after %v", took)
			}
			if tc.cancel {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Dial = %v, want context.Canceled", err)
				}
				return
			}
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "Options.HandshakeTimeout (300ms)") {
				t.Errorf("Dial = %v, want context.DeadlineExceeded naming HandshakeTimeout", err)
			}
		})
	}
}

// acceptFor computes Sec-WebSocket-Accept for key (RFC 6455 §4.2.2).
func acceptFor(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// answerClose reads the client's frames until its close frame, and echoes
// that, as a server's side of the close handshake.
func answerClose(nc net.Conn, br *bufio.Reader) {
	nc.SetReadDeadline(time.Now().Add(wait))
	for {
		h, p, err := wstest.ReadFrame(br)
		if err != nil {
			return
		}
		if h.Op == frame.OpClose {
			nc.Write(frame.AppendHeader(nil, frame.Header{Fin: true, Op: frame.OpClose, Length: int64(len(p))}))
			nc.Write(p)
			return
		}
	}
}

// TestDialChecksResponse answers the handshake with literal bytes from a
// raw TCP server ({accept} stands for the right Sec-WebSocket-Accept) and
// checks what Dial accepts, and why it refuses the rest.
func TestDialChecksResponse(t *testing.T) {
	checkGoroutines(t)
	const ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
	for _, tc := range []struct {
		name      string
		response  string // the head, without the final CRLF
		protocols []string
		deflate   bool   // offer permessage-deflate
		refusal   string // a part of the error; "" when Dial must succeed
		protocol  string // the selected subprotocol when it succeeds
	}{
		{name: "minimal", response: ok},
		{name: "Upgrade in another case", response: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"},
		{name: "Connection as a list", response: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"},
		{name: "Connection over two fields", response: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"},
		{name: "a subprotocol offered", response: ok + "Sec-WebSocket-Protocol: chat.v1\r\n", protocols: []string{"chat.v2", "chat.v1"}, protocol: "chat.v1"},
		{name: "an extension offered", response: ok + "Sec-WebSocket-Extensions: permessage-deflate\r\n", deflate: true},

		{name: "two Sec-WebSocket-Protocol", response: ok + "Sec-WebSocket-Protocol: chat.v1\r\nSec-WebSocket-Protocol: chat.v2\r\n",
			protocols: []string{"chat.v2", "chat.v1"}, refusal: `2 Sec-WebSocket-Protocol fields ["chat.v1" "chat.v2"]`},
		{name: "the same Sec-WebSocket-Protocol twice", response: ok + "Sec-WebSocket-Protocol: chat.v1\r\nSec-WebSocket-Protocol: chat.v1\r\n",
			protocols: []string{"chat.v1"}, refusal: "2 Sec-WebSocket-Protocol fields"},
		{name: "a subprotocol not offered", response: ok + "Sec-WebSocket-Protocol: chat.v3\r\n",
			protocols: []string{"chat.v2", "chat.v1"}, refusal: `subprotocol "chat.v3", which was not offered`},
		{name: "a subprotocol when none was offered", response: ok + "Sec-WebSocket-Protocol: chat.v1\r\n",
			refusal: `subprotocol "chat.v1", but none was offered`},
		{name: "two subprotocols in one field", response: ok + "Sec-WebSocket-Protocol: chat.v1, chat.v2\r\n",
			protocols: []string{"chat.v2", "chat.v1"}, refusal: `subprotocol "chat.v1, chat.v2"`},
		{name: "a subprotocol in another case", response: ok + "Sec-WebSocket-Protocol: CHAT.V1\r\n",
			protocols: []string{"chat.v1"}, refusal: `subprotocol "CHAT.V1"`},
		{name: "an empty subprotocol", response: ok + "Sec-WebSocket-Protocol: \r\n",
			protocols: []string{"chat.v1"}, refusal: `subprotocol ""`},
		{name: "two Sec-WebSocket-Accept", response: ok + "Sec-WebSocket-Accept: {accept}\r\n", refusal: "2 Sec-WebSocket-Accept fields"},
		{name: "a wrong Sec-WebSocket-Accept", response: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
			refusal: `Sec-WebSocket-Accept is "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="`},
		{name: "no Sec-WebSocket-Accept", response: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", refusal: "no Sec-WebSocket-Accept field"},
		{name: "an extension twice in one field", response: ok + "Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate\r\n",
			deflate: true, refusal: `extension "permessage-deflate" twice`},
		{name: "an extension twice over two fields", response: ok + "Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
			deflate: true, refusal: `extension "permessage-deflate" twice`},
		{name: "an extension not offered", response: ok + "Sec-WebSocket-Extensions: x-custom\r\n",
			deflate: true, refusal: `extension "x-custom", which was not offered`},
		{name: "an extension when none was offered", response: ok + "Sec-WebSocket-Extensions: permessage-deflate\r\n",
			refusal: `extension "permessage-deflate", which was not offered`},
		{name: "a malformed extension list", response: ok + "Sec-WebSocket-Extensions: permessage-deflate;;\r\n",
			deflate: true, refusal: "Sec-WebSocket-Extensions"},
		{name: "extension parameters not offered", response: ok + "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n",
			deflate: true, refusal: "server_max_window_bits=10 was not offered"},
		{name: "no Upgrade", response: "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n", refusal: "no Upgrade field"},
		{name: "another Upgrade", response: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n", refusal: `Upgrade is "h2c"`},
		{name: "Upgrade as a list", response: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket, h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n", refusal: `Upgrade is "websocket, h2c"`},
		{name: "two Upgrade", response: ok + "Upgrade: websocket\r\n", refusal: "2 Upgrade fields"},
		{name: "no Connection", response: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {accept}\r\n", refusal: "no Connection field"},
		{name: "Connection without upgrade", response: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Accept: {accept}\r\n", refusal: `Connection is ["keep-alive"]`},
		{name: "HTTP/1.0", response: "HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n", refusal: "over HTTP/1.0"},
		{name: "not HTTP", response: "SSH-2.0-OpenSSH_9.6\r\n", refusal: "malformed HTTP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := rawServer(t, func(nc net.Conn, br *bufio.Reader, req *http.Request) {
				head := strings.ReplaceAll(tc.response, "{accept}", acceptFor(req.Header.Get("Sec-WebSocket-Key")))
				nc.Write([]byte(head + "\r\n"))
				answerClose(nc, br)
			})
			o := testOptions()
			if tc.deflate {
				o.Extensions = []codec.Extension{&codec.PerMessageDeflate{}}
			}
			o.Subprotocols = tc.protocols
			s, err := wskit.Dial(context.Background(), url, &wskit.DialOptions{Options: o})
			if tc.refusal == "" {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				if p := s.Subprotocol(); p != tc.protocol {
					t.Errorf("Subprotocol %q, want %q", p, tc.protocol)
				}
				if err := s.Close(wskit.CloseNormal, ""); err != nil {
					t.Errorf("Close: %v", err)
				}
				return
			}
			if err == nil {
				s.Close(wskit.CloseNormal, "")
				t.Fatalf("Dial accepted\n%s", tc.response)
			}
			if !errors.Is(err, wskit.ErrBadHandshake) || !strings.Contains(err.Error(), tc.refusal) {
				t.Errorf("Dial = %v\nwant ErrBadHandshake with %q", err, tc.refusal)
			}
		})
	}
}

// target is a real server running wskit routes.
type target struct {
	name string
	url  string // ws:// or wss://, without a path
}

// targets serves the routes made by routes on each kind of real server
// and returns their URLs: "httptest" is net/http's test server, "serve" is
// wskit's own Server.Serve on its default engine, or on EngineStd under
// TLS, which the poll engine does not serve. With cfg both serve TLS, and
// the URLs are wss://. Everything is shut down at the end of the test.
func targets(t *testing.T, opts wskit.Options, routes func(*wskit.Server) http.Handler, cfg *tls.Config) []target {
	t.Helper()
	hs := httptest.NewUnstartedServer(routes(newServer(t, opts)))
	hs.Config.ErrorLog = log.New(io.Discard, "", 0) // TLS refusals are expected
	scheme := "ws"
	if cfg != nil {
		hs.TLS = cfg.Clone()
		hs.StartTLS()
		scheme = "wss"
	} else {
		hs.Start()
	}
	t.Cleanup(hs.Close)

	if cfg != nil {
		opts.Engine = wskit.EngineStd
	}
	srv := newServer(t, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, routes(srv)) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := await(t, served, "Serve to return"); !errors.Is(err, wskit.ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	return []target{
		{"httptest", scheme + "://" + hs.Listener.Addr().String()},
		{"serve", scheme + "://" + addr},
	}
}

// echoRoutes serves /echo, a route that echoes messages.
func echoRoutes(srv *wskit.Server) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/echo", srv.WebSocket(echoHandler(nil)))
	return mux
}

// checkEcho sends a message on s and checks it comes back, then closes s.
func checkEcho(t *testing.T, s *wskit.Session) {
	t.Helper()
	if err := s.SendText("ping over " + s.Request().URL.Scheme); err != nil {
		t.Fatalf("SendText: %v", err)
	}
	if m := receive(t, s); m.Text() != "ping over "+s.Request().URL.Scheme {
		t.Errorf("echo %q", m.Text())
	}
	if err := s.Close(wskit.CloseNormal, ""); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// testCert returns a self-signed certificate for localhost, 127.0.0.1 and
// ::1, and a pool that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "wskit test"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// netDialer is a DialOptions.NetDialContext that connects to one address
// whatever it is asked, and records what it was asked.
type netDialer struct {
	to    string
	mu    sync.Mutex
	asked []string
}

func (d *netDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.asked = append(d.asked, network+" "+addr)
	d.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("no deadline from HandshakeTimeout")
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, d.to)
}

func (d *netDialer) calls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.asked)
}

func TestDialNetDialContext(t *testing.T) {
	checkGoroutines(t)
	cert, pool := testCert(t)
	for _, secure := range []bool{false, true} {
		var cfg *tls.Config
		url, want := "ws://echo.test/echo", "tcp echo.test:80"
		if secure {
			cfg = &tls.Config{Certificates: []tls.Certificate{cert}}
			url, want = "wss://localhost/echo", "tcp localhost:443"
		}
		for _, tg := range targets(t, testOptions(), echoRoutes, cfg) {
			t.Run(tg.name+"/"+url, func(t *testing.T) {
				d := &netDialer{to: tg.url[strings.Index(tg.url, "//")+2:]}
				checkEcho(t, dial(t, url, &wskit.DialOptions{NetDialContext: d.dial, TLSConfig: &tls.Config{RootCAs: pool}}))
				if got := d.calls(); !slices.Equal(got, []string{want}) {
					t.Errorf("NetDialContext called with %q, want %q", got, want)
				}
			})
		}
	}

	refused := errors.New("refused by the test's dialer")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err := wskit.Dial(ctx, "ws://echo.test/", &wskit.DialOptions{NetDialContext: func(context.Context, string, string) (net.Conn, error) {
		return nil, refused
	}})
	if !errors.Is(err, refused) {
		t.Errorf("Dial = %v, want the dialer's error", err)
	}
}

// http:// and https:// URLs are dialled as ws:// and wss://.
func TestDialHTTPURLs(t *testing.T) {
	checkGoroutines(t)
	cert, pool := testCert(t)
	for _, secure := range []bool{false, true} {
		var cfg *tls.Config
		from, to := "http", "ws"
		if secure {
			cfg = &tls.Config{Certificates: []tls.Certificate{cert}}
			from, to = "HTTPS", "wss"
		}
		for _, tg := range targets(t, testOptions(), echoRoutes, cfg) {
			hostPort := tg.url[strings.Index(tg.url, "//")+2:]
			url := from + "://" + hostPort + "/echo"
			t.Run(tg.name+"/"+url, func(t *testing.T) {
				s := dial(t, url, &wskit.DialOptions{TLSConfig: &tls.Config{RootCAs: pool}})
				if got, want := s.Request().URL.String(), to+"://"+hostPort+"/echo"; got != want {
					t.Errorf("Request().URL = %s, want %s", got, want)
				}
				checkEcho(t, s)
			})
		}
	}
	for _, url := range []string{"ftp://127.0.0.1:1/", "localhost:1", "ws:///path"} {
		s, err := wskit.Dial(context.Background(), url, nil)
		if err == nil {
			s.Close(wskit.CloseNormal, "")
			t.Errorf("Dial %s succeeded", url)
		} else if !strings.Contains(err.Error(), "scheme must be ws or wss") && !strings.Contains(err.Error(), "has no host") {
			t.Errorf("Dial %s = %v, want an error about the URL", url, err)
		}
	}
}

// responseRoutes serves /echo, a wskit route requiring subprotocol chat,
// whose handler first sends whether its own session has a Response;
// /cookie, an upgrade written by hand on net/http that sets a cookie on its
// 101; and /refuse, which answers 401 with a challenge, a cookie and a
// body of 2000 bytes.
func responseRoutes(srv *wskit.Server) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/echo", srv.WebSocket(func(s *wskit.Session) {
		s.SendText(fmt.Sprint("server Response: ", s.Response()))
		echoHandler(nil)(s)
	}, wskit.Protocols("chat")))
	mux.HandleFunc("/cookie", func(w http.ResponseWriter, r *http.Request) {
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer nc.Close()
		fmt.Fprintf(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nSet-Cookie: session=abc; Path=/\r\n\r\n",
			acceptFor(r.Header.Get("Sec-WebSocket-Key")))
		answerClose(nc, brw.Reader)
	})
	mux.HandleFunc("/refuse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		http.SetCookie(w, &http.Cookie{Name: "tried", Value: "1"})
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(strings.Repeat("x", 2000)))
	})
	return mux
}

func TestDialResponse(t *testing.T) {
	checkGoroutines(t)
	for _, tg := range targets(t, testOptions(), responseRoutes, nil) {
		t.Run(tg.name, func(t *testing.T) {
			s := dial(t, tg.url+"/cookie", nil)
			resp := s.Response()
			if resp == nil || resp.StatusCode != http.StatusSwitchingProtocols || resp.Proto != "HTTP/1.1" {
				t.Fatalf("Response() = %+v, want the 101", resp)
			}
			if c := resp.Cookies(); len(c) != 1 || c[0].Name != "session" || c[0].Value != "abc" {
				t.Errorf("Response().Cookies() = %v, want session=abc", c)
			}
			if resp.Request != s.Request() {
				t.Errorf("Response().Request is not Request()")
			}
			if n, err := resp.Body.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Errorf("Response().Body.Read = %d, %v; want 0, EOF", n, err)
			}
			if resp.TLS != nil {
				t.Errorf("Response().TLS is set on a ws:// session")
			}
			s.Close(wskit.CloseNormal, "")

			s = dial(t, tg.url+"/echo", &wskit.DialOptions{Options: wskit.Options{Subprotocols: []string{"chat"}}})
			resp = s.Response()
			if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != "chat" {
				t.Errorf("Response().Header has Sec-WebSocket-Protocol %q, want chat", p)
			}
			if m := receive(t, s); m.Text() != "server Response: <nil>" {
				t.Errorf("the server's session reports %q", m.Text())
			}
			checkEcho(t, s)

			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_, err := wskit.Dial(ctx, tg.url+"/refuse", nil)
			var he *wskit.HandshakeError
			if !errors.As(err, &he) {
				t.Fatalf("Dial /refuse = %v, want a *HandshakeError", err)
			}
			if he.StatusCode != http.StatusUnauthorized || he.Reason != "Unauthorized" {
				t.Errorf("HandshakeError status %d %q, want 401 Unauthorized", he.StatusCode, he.Reason)
			}
			if got := he.Header.Get("WWW-Authenticate"); got != `Basic realm="test"` {
				t.Errorf("HandshakeError.Header WWW-Authenticate %q", got)
			}
			if c := (&http.Response{Header: he.Header}).Cookies(); len(c) != 1 || c[0].Name != "tried" {
				t.Errorf("cookies of the refusal: %v", c)
			}
			if he.Body != strings.Repeat("x", 512) {
				t.Errorf("HandshakeError.Body has %d bytes, want the first 512", len(he.Body))
			}
		})
	}
}

// redirectRoutes serves /echo, and redirects from /moved (301), /found
// (302), /temporary (307) and /permanent (308) to it; /nowhere answers 302
// with no Location.
func redirectRoutes(srv *wskit.Server) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/echo", srv.WebSocket(echoHandler(nil)))
	for path, status := range map[string]int{"/moved": 301, "/found": 302, "/temporary": 307, "/permanent": 308} {
		mux.Handle(path, http.RedirectHandler("/echo", status))
	}
	mux.HandleFunc("/nowhere", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusFound) })
	return mux
}

// Dial follows no redirect, and says where it was sent.
func TestDialRedirect(t *testing.T) {
	checkGoroutines(t)
	for _, tg := range targets(t, testOptions(), redirectRoutes, nil) {
		for _, tc := range []struct {
			path   string
			status int
			want   string
		}{
			{"/moved", 301, `expected status 101 but was 301 Moved Permanently: a redirect to "/echo", which Dial does not follow`},
			{"/found", 302, `expected status 101 but was 302 Found: a redirect to "/echo", which Dial does not follow`},
			{"/temporary", 307, `307 Temporary Redirect: a redirect to "/echo", which Dial does not follow`},
			{"/permanent", 308, `308 Permanent Redirect: a redirect to "/echo", which Dial does not follow`},
			{"/nowhere", 302, "302 Found: a redirect without a Location"},
		} {
			t.Run(tg.name+tc.path, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				s, err := wskit.Dial(ctx, tg.url+tc.path, nil)
				var he *wskit.HandshakeError
				if !errors.As(err, &he) {
					if s != nil {
						s.Close(wskit.CloseNormal, "")
					}
					t.Fatalf("Dial = %v, want a *HandshakeError", err)
				}
				if he.StatusCode != tc.status || !strings.HasSuffix(err.Error(), tc.want) {
					t.Errorf("Dial = %v (status %d)\nwant status %d and an error ending %q", err, he.StatusCode, tc.status, tc.want)
				}
			})
		}
	}
}

// Frames the server sends right behind its 101, in the same write, reach
// the session, whatever part of them was read with the response head.
func TestDialKeepsFramesAfterTheResponse(t *testing.T) {
	checkGoroutines(t)
	for _, size := range []int{5, 3000, 64 << 10} {
		for _, limit := range []int{1 << 10, 16 << 10} {
			t.Run(fmt.Sprint(size, "/", limit), func(t *testing.T) {
				payload := strings.Repeat("m", size)
				url := rawServer(t, func(nc net.Conn, br *bufio.Reader, req *http.Request) {
					b := []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
						acceptFor(req.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n")
					b = frame.AppendHeader(b, frame.Header{Fin: true, Op: frame.OpText, Length: int64(size)})
					nc.Write(append(b, payload...))
					answerClose(nc, br)
				})
				o := testOptions()
				o.MaxHandshakeSize = limit
				s := dial(t, url, &wskit.DialOptions{Options: o})
				if m := receive(t, s); m.Text() != payload {
					t.Errorf("received %d bytes, want the %d sent behind the 101", len(m.Payload), size)
				}
			})
		}
	}
}

// After the handshake a dialled session sends and receives without
// allocating, against either server, whose Events echo allocates nothing
// either. (Over TLS, crypto/tls allocates once per record it reads.)
func TestDialedSessionDoesNotAllocate(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector allocates, and sync.Pool drops items under it")
	}
	routes := func(srv *wskit.Server) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/echo", srv.WebSocketEvents(wskit.Events{OnMessage: func(s *wskit.Session, m wskit.Message) { s.Send(m.Type, m.Payload) }}))
		return mux
	}
	for _, tg := range targets(t, testOptions(), routes, nil) {
		for _, size := range []int{64, 16 << 10} {
			t.Run(fmt.Sprint(tg.name, "/", size), func(t *testing.T) {
				s := dial(t, tg.url+"/echo", nil)
				msg := []byte(strings.Repeat("z", size))
				var err error
				step := func() {
					if e := s.Send(wskit.Binary, msg); e != nil && err == nil {
						err = e
					}
					m, e := s.Receive(context.Background())
					if e == nil && len(m.Payload) != size {
						e = fmt.Errorf("echo of %d bytes, want %d", len(m.Payload), size)
					}
					if e != nil && err == nil {
						err = e
					}
				}
				for range 200 {
					step()
				}
				allocs := testing.AllocsPerRun(1000, step)
				if err != nil {
					t.Fatal(err)
				}
				if allocs != 0 {
					t.Errorf("%.2f allocations per echo of %d bytes, want 0", allocs, size)
				}
			})
		}
	}
}

// Every frame a dialled session sends is masked (RFC 6455 §5.1), each
// with a key of its own.
func TestDialMasksEveryFrame(t *testing.T) {
	checkGoroutines(t)
	type seen struct {
		op     frame.Opcode
		masked bool
		key    [4]byte
	}
	frames := make(chan []seen, 1)
	url := rawServer(t, func(nc net.Conn, br *bufio.Reader, req *http.Request) {
		nc.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			acceptFor(req.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n"))
		nc.SetReadDeadline(time.Now().Add(wait))
		var got []seen
		defer func() { frames <- got }()
		for {
			h, p, err := wstest.ReadFrame(br)
			if err != nil {
				return
			}
			got = append(got, seen{h.Op, h.Masked, h.Mask})
			if h.Op == frame.OpClose {
				nc.Write(frame.AppendHeader(nil, frame.Header{Fin: true, Op: frame.OpClose, Length: int64(len(p))}))
				nc.Write(p)
				return
			}
		}
	})
	o := testOptions()
	o.FragmentSize = 4
	s := dial(t, url, &wskit.DialOptions{Options: o})
	s.SendText("fragmented text")
	s.SendBinary([]byte{1, 2, 3})
	s.SendFrame(frame.Header{Fin: true, Op: frame.OpPing}, []byte("are you there"))
	if err := s.Close(wskit.CloseNormal, "bye"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := await(t, frames, "the client's frames")
	if len(got) < 7 || got[len(got)-1].op != frame.OpClose {
		t.Fatalf("the server read %d frames, ending with %v; want fragments, a ping and a close", len(got), got)
	}
	keys := map[[4]byte]bool{}
	for _, f := range got {
		if !f.masked {
			t.Errorf("a %v frame is not masked", f.op)
		}
		keys[f.key] = true
	}
	if len(keys) < len(got)-1 { // two equal random keys are possible, rarely
		t.Errorf("%d frames shared %d mask keys", len(got), len(keys))
	}
}
