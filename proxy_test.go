package wskit_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wskit/wskit"
)

// testProxy is a proxy run by a test. It counts the connections it carried
// and records where they went.
type testProxy struct {
	url *url.URL

	carried atomic.Int32
	mu      sync.Mutex
	targets []string
	conns   []net.Conn
	wg      sync.WaitGroup
}

// startProxy accepts connections on a loopback listener (TLS with cfg) and
// serves each with serve, which returns the upstream connection it opened
// for the client, with the reader holding the client's bytes, or nil after
// a refusal. It then carries bytes both ways until either side ends.
func startProxy(t *testing.T, scheme string, user *url.Userinfo, cfg *tls.Config, serve func(p *testProxy, c net.Conn) (io.Reader, net.Conn)) *testProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &testProxy{url: &url.URL{Scheme: scheme, Host: ln.Addr().String(), User: user}}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.track(c)
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(wait))
				from, up := serve(p, c)
				if up == nil {
					return
				}
				defer up.Close()
				c.SetDeadline(time.Time{})
				p.track(up)
				p.carried.Add(1)
				carry(c, from, up)
			}()
		}
	}()
	return p
}

func (p *testProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *testProxy) record(target string) {
	p.mu.Lock()
	p.targets = append(p.targets, target)
	p.mu.Unlock()
}

func (p *testProxy) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.targets)
}

// carry copies bytes from the client (read from r) to up and from up to
// the client c, half-closing each direction as it ends.
func carry(c net.Conn, r io.Reader, up net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(up, r)
		closeWrite(up)
	}()
	io.Copy(c, up)
	closeWrite(c)
	<-done
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		c.Close()
	}
}

// connectProxy starts an HTTP proxy that opens tunnels with CONNECT,
// asking for user's credentials when user is set, over TLS with cfg.
func connectProxy(t *testing.T, user *url.Userinfo, cfg *tls.Config) *testProxy {
	scheme := "http"
	if cfg != nil {
		scheme = "https"
	}
	var want string
	if user != nil {
		pass, _ := user.Password()
		want = "Basic " + base64.StdEncoding.EncodeToString([]byte(user.Username()+":"+pass))
	}
	return startProxy(t, scheme, user, cfg, func(p *testProxy, c net.Conn) (io.Reader, net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return nil, nil
		}
		if req.Method != http.MethodConnect {
			io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
			return nil, nil
		}
		if want != "" && req.Header.Get("Proxy-Authorization") != want {
			io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
			return nil, nil
		}
		p.record(req.Host)
		up, err := net.DialTimeout("tcp", req.Host, wait)
		if err != nil {
			io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
			return nil, nil
		}
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		return br, up
	})
}

// proxyTo is a DialOptions.Proxy that always answers p, and records the
// URLs it was shown.
type proxyTo struct {
	p    *url.URL
	mu   sync.Mutex
	asks []string
}

func (pt *proxyTo) choose(r *http.Request) (*url.URL, error) {
	pt.mu.Lock()
	pt.asks = append(pt.asks, r.URL.String())
	pt.mu.Unlock()
	return pt.p, nil
}

// proxyCase is a way through a proxy, and what it must carry.
type proxyCase struct {
	name  string
	proxy *testProxy
	url   *url.URL // given to Dial: the proxy's, or with other credentials
}

// checkProxied dials each target through each case, checks the session
// works and that the proxy carried exactly it, to the target's address.
func checkProxied(t *testing.T, cases []proxyCase, tgs []target, tlsConfig *tls.Config) {
	t.Helper()
	for _, pc := range cases {
		for _, tg := range tgs {
			t.Run(pc.name+"/"+tg.name, func(t *testing.T) {
				before := pc.proxy.carried.Load()
				pt := &proxyTo{p: pc.url}
				s := dial(t, tg.url+"/echo", &wskit.DialOptions{Proxy: pt.choose, TLSConfig: tlsConfig})
				checkEcho(t, s)
				if n := pc.proxy.carried.Load() - before; n != 1 {
					t.Errorf("the proxy carried %d connections, want 1", n)
				}
				hostPort := tg.url[strings.Index(tg.url, "//")+2:]
				if seen := pc.proxy.seen(); len(seen) == 0 || seen[len(seen)-1] != hostPort {
					t.Errorf("the proxy was asked for %q, want %s last", seen, hostPort)
				}
				scheme := "http"
				if strings.HasPrefix(tg.url, "wss:") {
					scheme = "https"
				}
				if want := scheme + "://" + hostPort + "/echo"; len(pt.asks) != 1 || pt.asks[0] != want {
					t.Errorf("Proxy was shown %q, want [%s]", pt.asks, want)
				}
			})
		}
	}
}

func TestDialConnectProxy(t *testing.T) {
	checkGoroutines(t)
	cert, pool := testCert(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}}
	plain := connectProxy(t, nil, nil)
	authed := connectProxy(t, url.UserPassword("alice", "s3cret:x"), nil)
	overTLS := connectProxy(t, url.UserPassword("bob", "pw"), serverTLS)
	cases := []proxyCase{
		{"http", plain, plain.url},
		{"http with credentials", authed, authed.url},
		{"https with credentials", overTLS, overTLS.url},
	}
	for _, secure := range []bool{false, true} {
		var cfg *tls.Config
		if secure {
			cfg = serverTLS
		}
		t.Run(fmt.Sprint("TLS=", secure), func(t *testing.T) {
			checkProxied(t, cases, targets(t, testOptions(), echoRoutes, cfg), &tls.Config{RootCAs: pool})
		})
	}

	tg := targets(t, testOptions(), echoRoutes, nil)[0]
	wrong := *authed.url
	wrong.User = url.UserPassword("alice", "guess")
	refusing := rawServer(t, func(nc net.Conn, _ *bufio.Reader, _ *http.Request) {
		io.WriteString(nc, "HTTP/1.1 200 Connection established\r\n\r\nearly bytes")
	})
	endless := rawServer(t, func(nc net.Conn, _ *bufio.Reader, _ *http.Request) {
		io.WriteString(nc, "HTTP/1.1 200 Connection established\r\nX-Endless: ")
		chunk := []byte(strings.Repeat("a", 64<<10))
		for range 1024 {
			if _, err := nc.Write(chunk); err != nil {
				return
			}
		}
	})
	proxyURL := func(s string) *url.URL {
		u, _ := url.Parse(strings.Replace(s, "ws://", "http://", 1))
		return u
	}
	for _, tc := range []struct {
		name  string
		proxy *url.URL
		want  string
	}{
		{"wrong password", &wrong, "CONNECT " + tg.url[len("ws://"):] + ": the proxy answered 407 Proxy Authentication Required"},
		{"no credentials", &url.URL{Scheme: "http", Host: authed.url.Host}, "407 Proxy Authentication Required"},
		{"bytes before the client speaks", proxyURL(refusing), "the proxy sent 11 bytes after its answer"},
		{"an endless answer", proxyURL(endless), "bad answer to CONNECT: the response head exceeded 16384 bytes (Options.MaxHandshakeSize)"},
		{"an unknown scheme", &url.URL{Scheme: "ftp", Host: "127.0.0.1:1"}, "unsupported scheme"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			s, err := wskit.Dial(ctx, tg.url+"/echo", &wskit.DialOptions{Proxy: (&proxyTo{p: tc.proxy}).choose})
			if err == nil {
				s.Close(wskit.CloseNormal, "")
				t.Fatal("Dial succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Dial = %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "guess") {
				t.Errorf("the error shows the proxy's password: %v", err)
			}
		})
	}
}

// Proxy chooses per dial; an error from it fails the dial, nil goes
// direct, and NetDialContext reaches the proxy.
func TestDialProxyChoice(t *testing.T) {
	checkGoroutines(t)
	p := connectProxy(t, nil, nil)
	tg := targets(t, testOptions(), echoRoutes, nil)[1]
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	failed := errors.New("no proxy today")
	_, err := wskit.Dial(ctx, tg.url+"/echo", &wskit.DialOptions{Proxy: func(*http.Request) (*url.URL, error) { return nil, failed }})
	if !errors.Is(err, failed) {
		t.Errorf("Dial with a failing Proxy = %v, want its error", err)
	}

	checkEcho(t, dial(t, tg.url+"/echo", &wskit.DialOptions{Proxy: func(*http.Request) (*url.URL, error) { return nil, nil }}))
	if n := p.carried.Load(); n != 0 {
		t.Errorf("the proxy carried %d connections of a direct dial", n)
	}

	d := &netDialer{to: p.url.Host}
	checkEcho(t, dial(t, tg.url+"/echo", &wskit.DialOptions{Proxy: (&proxyTo{p: p.url}).choose, NetDialContext: d.dial}))
	if got := d.calls(); !slices.Equal(got, []string{"tcp " + p.url.Host}) {
		t.Errorf("NetDialContext was asked for %q, want the proxy", got)
	}
	if n := p.carried.Load(); n != 1 {
		t.Errorf("the proxy carried %d connections, want 1", n)
	}
}

// socksProxy starts a SOCKS5 proxy (RFC 1928) that asks for user's name
// and password (RFC 1929) when user is set. Its replies give the bound
// address as IPv4, a domain name and IPv6 in turn, so that the client
// meets each form.
func socksProxy(t *testing.T, scheme string, user *url.Userinfo) *testProxy {
	var replies atomic.Int32
	return startProxy(t, scheme, user, nil, func(p *testProxy, c net.Conn) (io.Reader, net.Conn) {
		br := bufio.NewReader(c)
		var h [4]byte
		if _, err := io.ReadFull(br, h[:2]); err != nil || h[0] != 5 {
			return nil, nil
		}
		methods := make([]byte, h[1])
		if _, err := io.ReadFull(br, methods); err != nil {
			return nil, nil
		}
		method := byte(0)
		if user != nil {
			method = 2
		}
		if !slices.Contains(methods, method) {
			c.Write([]byte{5, 0xff})
			return nil, nil
		}
		c.Write([]byte{5, method})
		if user != nil {
			readField := func() string {
				n, _ := br.ReadByte()
				b := make([]byte, n)
				io.ReadFull(br, b)
				return string(b)
			}
			ver, _ := br.ReadByte()
			name, pass := readField(), readField()
			want, _ := user.Password()
			if ver != 1 || name != user.Username() || pass != want {
				c.Write([]byte{1, 1})
				return nil, nil
			}
			c.Write([]byte{1, 0})
		}
		if _, err := io.ReadFull(br, h[:4]); err != nil || h[0] != 5 || h[2] != 0 {
			return nil, nil
		}
		if h[1] != 1 {
			c.Write([]byte{5, 7, 0, 1, 0, 0, 0, 0, 0, 0}) // command not supported
			return nil, nil
		}
		var host string
		switch h[3] {
		case 1, 4:
			a := make([]byte, 4*int(h[3]))
			io.ReadFull(br, a)
			ip, _ := netip.AddrFromSlice(a)
			host = ip.String()
		case 3:
			n, _ := br.ReadByte()
			name := make([]byte, n)
			io.ReadFull(br, name)
			host = string(name)
		default:
			c.Write([]byte{5, 8, 0, 1, 0, 0, 0, 0, 0, 0}) // address type not supported
			return nil, nil
		}
		var port [2]byte
		if _, err := io.ReadFull(br, port[:]); err != nil {
			return nil, nil
		}
		target := net.JoinHostPort(host, fmt.Sprint(int(port[0])<<8|int(port[1])))
		p.record(target)
		up, err := net.DialTimeout("tcp", target, wait)
		if err != nil {
			c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0}) // connection refused
			return nil, nil
		}
		bound := up.LocalAddr().(*net.TCPAddr)
		reply := []byte{5, 0, 0}
		switch replies.Add(1) % 3 {
		case 1:
			reply = append(append(reply, 1), bound.IP.To4()...)
		case 2:
			reply = append(append(reply, 3, byte(len("bound.test"))), "bound.test"...)
		case 0:
			reply = append(append(reply, 4), net.IPv6loopback...)
		}
		c.Write(append(reply, byte(bound.Port>>8), byte(bound.Port)))
		return br, up
	})
}

// byName adds to tgs their twins reached by the name localhost, so that a
// proxy is given a host name to resolve.
func byName(tgs []target) []target {
	for _, tg := range slices.Clone(tgs) {
		tgs = append(tgs, target{tg.name + " by name", strings.Replace(tg.url, "127.0.0.1", "localhost", 1)})
	}
	return tgs
}

func TestDialSOCKS5Proxy(t *testing.T) {
	checkGoroutines(t)
	cert, pool := testCert(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}}
	plain := socksProxy(t, "socks5", nil)
	remote := socksProxy(t, "socks5h", nil)
	authed := socksProxy(t, "socks5", url.UserPassword("alice", "s3cret"))
	nameOnly := socksProxy(t, "socks5", url.User("carol"))
	cases := []proxyCase{
		{"socks5", plain, plain.url},
		{"socks5h", remote, remote.url},
		{"socks5 with a user and password", authed, authed.url},
		{"socks5 with a user and no password", nameOnly, nameOnly.url},
	}
	for _, secure := range []bool{false, true} {
		var cfg *tls.Config
		if secure {
			cfg = serverTLS
		}
		t.Run(fmt.Sprint("TLS=", secure), func(t *testing.T) {
			checkProxied(t, cases, byName(targets(t, testOptions(), echoRoutes, cfg)), &tls.Config{RootCAs: pool})
		})
	}

	tg := targets(t, testOptions(), echoRoutes, nil)[0]
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts (backlog), never answers
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	notSOCKS := rawListener(t, func(c net.Conn) { io.WriteString(c, "HTTP/1.1 400 Bad Request\r\n\r\n") })
	wrong := *authed.url
	wrong.User = url.UserPassword("alice", "guess")
	for _, tc := range []struct {
		name   string
		proxy  *url.URL
		target string
		want   string
	}{
		{"wrong password", &wrong, tg.url, `SOCKS5: the proxy refused the user name and password of "alice"`},
		{"no credentials", &url.URL{Scheme: "socks5", Host: authed.url.Host}, tg.url, "the proxy accepts no connection without authentication"},
		{"a refused target", plain.url, "ws://" + closedAddr, "SOCKS5: the proxy could not connect to " + closedAddr + ": connection refused"},
		{"not a SOCKS proxy", &url.URL{Scheme: "socks5", Host: notSOCKS}, tg.url, "the proxy answered with version 72"},
		{"a silent proxy", &url.URL{Scheme: "socks5", Host: silent.Addr().String()}, tg.url, "longer than Options.HandshakeTimeout (300ms)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions()
			o.HandshakeTimeout = 300 * time.Millisecond
			s, err := wskit.Dial(context.Background(), tc.target+"/echo", &wskit.DialOptions{Options: o, Proxy: (&proxyTo{p: tc.proxy}).choose})
			if err == nil {
				s.Close(wskit.CloseNormal, "")
				t.Fatal("Dial succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Dial = %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "guess") {
				t.Errorf("the error shows the proxy's password: %v", err)
			}
		})
	}
}

// rawListener serves each connection on a loopback listener with serve,
// then closes it; it returns the listener's address.
func rawListener(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serve(c)
			c.Close()
		}
	}()
	return ln.Addr().String()
}
