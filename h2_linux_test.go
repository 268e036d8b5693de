//go:build linux

package wskit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/wsraw"
	_ "github.com/wskit/wskit/xconnect"
	"golang.org/x/net/http2"
)

// h2TestTransport returns a client transport that speaks HTTP/2 only: by
// ALPN over TLS, or with prior knowledge (h2c) in the clear.
func h2TestTransport(overTLS bool) *http2.Transport {
	if overTLS {
		return &http2.Transport{TLSClientConfig: tlsCert.ClientConfig()}
	}
	return &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// h2Seen records what the handlers saw of their requests.
type h2Seen struct {
	mu      sync.Mutex
	protos  map[string]int // path → ProtoMajor of its first session
	remotes map[string]bool
}

func (h *h2Seen) add(r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.protos[r.URL.Path]; !ok {
		h.protos[r.URL.Path] = r.ProtoMajor // the first, over HTTP/2
	}
	h.remotes[r.RemoteAddr] = true
}

// h2Routes serves each kind of session over both protocols.
func h2Routes(seen *h2Seen) func(*Server) http.Handler {
	return func(srv *Server) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/echo", srv.WebSocket(func(s *Session) { seen.add(s.Request()); ptEchoSession(s) }))
		mux.Handle("/events", srv.WebSocketEvents(Events{OnOpen: func(s *Session) { seen.add(s.Request()) }, OnMessage: ptEcho}))
		mux.Handle("/raw", srv.WebSocketRaw(func(s *wsraw.Session) { seen.add(s.Request()); ptEchoRaw(s) }))
		mux.Handle("/proto", srv.WebSocket(ptEchoSession, Protocols("mqtt")))
		mux.HandleFunc("/upgrade", func(w http.ResponseWriter, r *http.Request) {
			s, err := srv.Upgrade(w, r)
			if err != nil {
				return
			}
			defer s.Close(CloseNormal, "")
			seen.add(s.Request())
			ptEchoSession(s)
		})
		mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })
		return mux
	}
}

// TestHTTP2 opens every kind of session as RFC 8441 streams, over TLS and
// over h2c, on both engines: several at once on one HTTP/2 connection,
// beside HTTP/1.1 upgrades and plain requests to the same server.
func TestHTTP2(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		for _, overTLS := range []bool{true, false} {
			name := engine.String() + "/h2c"
			if overTLS {
				name = engine.String() + "/tls"
			}
			t.Run(name, func(t *testing.T) {
				ptLeakCheck(t)
				opts := ptOptions()
				opts.Engine = engine
				opts.HTTP2 = true
				scheme, web := "ws", "http"
				if overTLS {
					opts.TLSConfig = tlsCert.ServerConfig()
					scheme, web = "wss", "https"
				}
				seen := &h2Seen{protos: map[string]int{}, remotes: map[string]bool{}}
				addr := tlsStart(t, opts, h2Routes(seen))
				base := scheme + "://localhost:" + portOf(mustAddr(t, addr))
				tr := h2TestTransport(overTLS)
				defer tr.CloseIdleConnections()
				ctx, cancel := context.WithTimeout(context.Background(), 2*ptWait)
				defer cancel()

				paths := []string{"/echo", "/events", "/raw", "/upgrade", "/echo", "/events"}
				sessions := make([]*Session, len(paths))
				for i, path := range paths {
					s, err := Dial(ctx, base+path, &DialOptions{HTTP2: true, HTTP2Transport: tr})
					if err != nil {
						t.Fatalf("Dial %s over HTTP/2: %v", path, err)
					}
					if s.Response().ProtoMajor != 2 || s.Response().StatusCode != 200 {
						t.Fatalf("%s: answered %s %d, want HTTP/2 200", path, s.Response().Proto, s.Response().StatusCode)
					}
					sessions[i] = s
				}
				// All at once, interleaved on the one connection.
				var wg sync.WaitGroup
				errs := make(chan error, len(sessions))
				for i, s := range sessions {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for _, n := range []int{1, 1000, 70000, 0, 200000} {
							p := ptPattern(i+n, n)
							if err := s.SendBinary(p); err != nil {
								errs <- fmt.Errorf("%s: send %d: %w", paths[i], n, err)
								return
							}
							m, err := s.Receive(ctx)
							if err != nil || string(m.Payload) != string(p) {
								errs <- fmt.Errorf("%s: echo of %d bytes: %v", paths[i], n, err)
								return
							}
						}
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Error(err)
				}

				// HTTP/1.1 beside it, on the same server.
				h1, err := Dial(ctx, base+"/echo", &DialOptions{TLSConfig: tlsCert.ClientConfig()})
				if err != nil {
					t.Fatalf("Dial over HTTP/1.1 beside HTTP/2: %v", err)
				}
				if err := h1.SendText("one"); err != nil {
					t.Fatal(err)
				}
				if m, err := h1.Receive(ctx); err != nil || string(m.Payload) != "one" {
					t.Fatalf("HTTP/1.1 echo: %q %v", m.Payload, err)
				}
				h1.Close(CloseNormal, "")
				resp, err := (&http.Client{Transport: tr}).Get(web + "://localhost:" + portOf(mustAddr(t, addr)) + "/page")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(body) != "HTTP/2.0" {
					t.Errorf("a plain request over the HTTP/2 transport was served as %q", body)
				}

				for i, s := range sessions {
					if err := s.Close(CloseNormal, "bye"); err != nil {
						t.Errorf("%s: Close: %v", paths[i], err)
					}
				}
				seen.mu.Lock()
				defer seen.mu.Unlock()
				for _, path := range []string{"/echo", "/events", "/raw", "/upgrade"} {
					if seen.protos[path] != 2 {
						t.Errorf("%s: Request().ProtoMajor = %d, want 2", path, seen.protos[path])
					}
				}
				// The HTTP/2 sessions shared one connection: one remote
				// address, and the HTTP/1.1 one was last to write /echo.
				if len(seen.remotes) != 2 {
					t.Errorf("the sessions came from %d connections, want one for HTTP/2 and one for HTTP/1.1: %v", len(seen.remotes), seen.remotes)
				}
			})
		}
	}
}

func mustAddr(t *testing.T, addr string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestHTTP2Handshake: the subprotocol and deflate are negotiated on a
// stream as on an upgrade, and an extended CONNECT the server cannot take
// is answered with the status RFC 8441 and RFC 6455 give it.
func TestHTTP2Handshake(t *testing.T) {
	ptLeakCheck(t)
	opts := ptOptions()
	opts.HTTP2 = true
	opts.TLSConfig = tlsCert.ServerConfig()
	opts.Extensions = []codec.Extension{&codec.PerMessageDeflate{}}
	addr := tlsStart(t, opts, h2Routes(&h2Seen{protos: map[string]int{}, remotes: map[string]bool{}}))
	base := "localhost:" + portOf(mustAddr(t, addr))
	tr := h2TestTransport(true)
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), ptWait)
	defer cancel()

	dopts := DefaultOptions()
	dopts.Extensions = []codec.Extension{&codec.PerMessageDeflate{}}
	dopts.Subprotocols = []string{"chat", "mqtt"}
	s, err := Dial(ctx, "wss://"+base+"/proto", &DialOptions{HTTP2: true, HTTP2Transport: tr, Options: dopts})
	if err != nil {
		t.Fatal(err)
	}
	if s.Subprotocol() != "mqtt" {
		t.Errorf("subprotocol %q, want mqtt", s.Subprotocol())
	}
	if ext := s.Response().Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
		t.Errorf("extensions answered %q, want permessage-deflate", ext)
	}
	big := strings.Repeat("compressible ", 10000)
	if err := s.SendText(big); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Receive(ctx); err != nil || string(m.Payload) != big {
		t.Fatalf("deflated echo over HTTP/2: %v", err)
	}
	s.Close(CloseNormal, "")

	_, err = Dial(ctx, "wss://"+base+"/proto", &DialOptions{HTTP2: true, HTTP2Transport: tr, Options: Options{Subprotocols: []string{"chat"}}})
	var herr *HandshakeError
	if !errors.As(err, &herr) || herr.StatusCode != http.StatusBadRequest {
		t.Errorf("no common subprotocol: %v, want a 400", err)
	}

	for _, c := range []struct {
		name     string
		protocol string
		header   http.Header
		status   int
	}{
		{"another protocol", "webtransport", http.Header{"Sec-Websocket-Version": {"13"}}, http.StatusNotImplemented},
		{"no version", "websocket", http.Header{}, http.StatusUpgradeRequired},
		{"version 8", "websocket", http.Header{"Sec-Websocket-Version": {"8"}}, http.StatusUpgradeRequired},
	} {
		h := c.header.Clone()
		h.Set(":protocol", c.protocol)
		pr, pw := io.Pipe()
		req := (&http.Request{Method: http.MethodConnect, URL: &url.URL{Scheme: "https", Host: base, Path: "/echo"},
			Host: base, Header: h, Body: pr, ContentLength: -1}).WithContext(ctx)
		resp, err := tr.RoundTrip(req)
		pw.Close()
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d", c.name, resp.StatusCode, c.status)
		}
	}
}

// TestHTTP2Shutdown: Shutdown closes the sessions on HTTP/2 streams with
// 1001 like the others, and returns.
func TestHTTP2Shutdown(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		t.Run(engine.String(), func(t *testing.T) {
			ptLeakCheck(t)
			opts := ptOptions()
			opts.Engine = engine
			opts.HTTP2 = true
			opts.TLSConfig = tlsCert.ServerConfig()
			srv, err := NewServer(opts)
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() {
				served <- srv.Serve(ln, h2Routes(&h2Seen{protos: map[string]int{}, remotes: map[string]bool{}})(srv))
			}()
			tr := h2TestTransport(true)
			defer tr.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), ptWait)
			defer cancel()
			var sessions []*Session
			for _, path := range []string{"/echo", "/events", "/upgrade"} {
				s, err := Dial(ctx, "wss://localhost:"+portOf(ln.Addr())+path, &DialOptions{HTTP2: os.Getenv("H1") == "", HTTP2Transport: tr, TLSConfig: tlsCert.ClientConfig()})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close(CloseNormal, "")
				sessions = append(sessions, s)
			}
			for srv.Sessions() < len(sessions) {
				time.Sleep(5 * time.Millisecond)
			}
			if err := srv.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if err := <-served; !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve: %v", err)
			}
			for _, s := range sessions {
				_, err := s.Receive(ctx)
				var ce *CloseError
				if !errors.As(err, &ce) || ce.Code != CloseGoingAway {
					t.Errorf("after Shutdown: %v, want a close with 1001", err)
				}
			}
		})
	}
}

// TestHTTP2Off: without Options.HTTP2 the server offers no HTTP/2, so a
// dial over HTTP/2 fails and HTTP/1.1 goes on; with it but without
// extended CONNECT in net/http, Serve says what is missing.
func TestHTTP2Off(t *testing.T) {
	for _, overTLS := range []bool{true, false} {
		opts := ptOptions()
		scheme := "ws"
		if overTLS {
			opts.TLSConfig = tlsCert.ServerConfig()
			scheme = "wss"
		}
		addr := tlsStart(t, opts, ptRoutes(Events{}))
		u := scheme + "://localhost:" + portOf(mustAddr(t, addr)) + "/echo"
		ctx, cancel := context.WithTimeout(context.Background(), ptWait)
		tr := h2TestTransport(overTLS)
		if s, err := Dial(ctx, u, &DialOptions{HTTP2: true, HTTP2Transport: tr}); err == nil {
			s.Close(CloseNormal, "")
			t.Errorf("%s: a dial over HTTP/2 succeeded without Options.HTTP2", scheme)
		}
		tr.CloseIdleConnections()
		s, err := Dial(ctx, u, &DialOptions{TLSConfig: tlsCert.ClientConfig()})
		if err != nil {
			t.Fatalf("%s over HTTP/1.1: %v", scheme, err)
		}
		s.Close(CloseNormal, "")
		cancel()
	}

	t.Setenv("GODEBUG", "")
	opts := ptOptions()
	opts.HTTP2 = true
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(ln, http.NotFoundHandler()); !errors.Is(err, errNoXConnect) {
		t.Errorf("Serve with HTTP2 and no extended CONNECT: %v", err)
	}
}

// TestHTTP2DialOwnTransport: a dial over HTTP/2 without a transport of the
// caller's opens a connection for its session, and closes it with it.
func TestHTTP2DialOwnTransport(t *testing.T) {
	ptLeakCheck(t)
	opts := ptOptions()
	opts.HTTP2 = true
	opts.TLSConfig = tlsCert.ServerConfig()
	addr := tlsStart(t, opts, h2Routes(&h2Seen{protos: map[string]int{}, remotes: map[string]bool{}}))
	ctx, cancel := context.WithTimeout(context.Background(), ptWait)
	defer cancel()
	for range 3 {
		s, err := Dial(ctx, "wss://localhost:"+portOf(mustAddr(t, addr))+"/echo",
			&DialOptions{HTTP2: true, TLSConfig: &tls.Config{RootCAs: tlsCert.ClientConfig().RootCAs}})
		if err != nil {
			t.Fatal(err)
		}
		if s.Response().TLS == nil || s.Response().TLS.NegotiatedProtocol != "h2" {
			t.Errorf("ALPN: %+v", s.Response().TLS)
		}
		if err := s.SendText("x"); err != nil {
			t.Fatal(err)
		}
		if m, err := s.Receive(ctx); err != nil || string(m.Payload) != "x" {
			t.Fatalf("echo: %v", err)
		}
		if err := s.Close(CloseNormal, ""); err != nil {
			t.Fatal(err)
		}
	}
	// ptLeakCheck finds the transports' goroutines if their connections
	// were left open.
}

// TestHTTP2Idle: a session on a stream outlives its deadlines with nothing
// to do, which net/http's own stream deadlines would not let it (they
// reset the stream when they pass, even with no read or write under way).
func TestHTTP2Idle(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		t.Run(engine.String(), func(t *testing.T) {
			ptLeakCheck(t)
			opts := ptOptions()
			opts.Engine = engine
			opts.HTTP2 = true
			opts.Timeout = 200 * time.Millisecond // the write timeout
			opts.PingPeriod = 0                   // nothing written while idle
			opts.TLSConfig = tlsCert.ServerConfig()
			addr := tlsStart(t, opts, h2Routes(&h2Seen{protos: map[string]int{}, remotes: map[string]bool{}}))
			tr := h2TestTransport(true)
			defer tr.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), ptWait)
			defer cancel()
			dopts := opts
			dopts.TLSConfig = nil
			s, err := Dial(ctx, "wss://localhost:"+portOf(mustAddr(t, addr))+"/echo", &DialOptions{HTTP2: true, HTTP2Transport: tr, Options: dopts})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(CloseNormal, "")
			for i := range 3 {
				if err := s.SendText("ping"); err != nil {
					t.Fatal(err)
				}
				if m, err := s.Receive(ctx); err != nil || string(m.Payload) != "ping" {
					t.Fatalf("echo %d after %v idle: %q %v", i, time.Duration(i)*600*time.Millisecond, m.Payload, err)
				}
				time.Sleep(600 * time.Millisecond) // three Timeouts
			}
		})
	}
}

// TestHTTP2StuckReader: a peer that stops reading leaves the server's write
// blocked by HTTP/2's flow control; the write timeout ends it with
// ErrWriteTimeout and the stream is reset, on both engines.
func TestHTTP2StuckReader(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		t.Run(engine.String(), func(t *testing.T) {
			ptLeakCheck(t)
			opts := ptOptions()
			opts.Engine = engine
			opts.HTTP2 = true
			opts.Timeout = 300 * time.Millisecond
			opts.TLSConfig = tlsCert.ServerConfig()
			ended := make(chan error, 1)
			addr := tlsStart(t, opts, func(srv *Server) http.Handler {
				return srv.WebSocket(func(s *Session) {
					p := make([]byte, 64<<10)
					for {
						if err := s.SendBinary(p); err != nil {
							ptPut(ended, err)
							return
						}
					}
				})
			})
			tr := h2TestTransport(true)
			defer tr.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), ptWait)
			defer cancel()
			s, err := Dial(ctx, "wss://localhost:"+portOf(mustAddr(t, addr))+"/", &DialOptions{HTTP2: true, HTTP2Transport: tr})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(CloseNormal, "")
			if err := ptAwait(t, ended, "the blocked send"); !errors.Is(err, ErrWriteTimeout) {
				t.Errorf("the blocked send ended with %v, want ErrWriteTimeout", err)
			}
		})
	}
}

// TestHTTP2DialStuckWriter: a server that stops reading leaves a dialed
// session's write blocked by HTTP/2's flow control; the client's write
// timeout ends it with ErrWriteTimeout, as over HTTP/1.1.
func TestHTTP2DialStuckWriter(t *testing.T) {
	ptLeakCheck(t)
	opts := ptOptions()
	opts.HTTP2 = true
	opts.TLSConfig = tlsCert.ServerConfig()
	release := make(chan struct{})
	defer close(release)
	addr := tlsStart(t, opts, func(srv *Server) http.Handler {
		return srv.WebSocket(func(s *Session) { <-release }) // never reads
	})
	tr := h2TestTransport(true)
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), ptWait)
	defer cancel()
	dopts := DefaultOptions()
	dopts.Timeout = 300 * time.Millisecond
	s, err := Dial(ctx, "wss://localhost:"+portOf(mustAddr(t, addr))+"/", &DialOptions{HTTP2: true, HTTP2Transport: tr, Options: dopts})
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseNow()
	ended := make(chan error, 1)
	go func() {
		p := make([]byte, 64<<10)
		for {
			if err := s.SendBinary(p); err != nil {
				ended <- err
				return
			}
		}
	}()
	if err := ptAwait(t, ended, "the blocked send"); !errors.Is(err, ErrWriteTimeout) {
		t.Errorf("the blocked send ended with %v, want ErrWriteTimeout", err)
	}
}
