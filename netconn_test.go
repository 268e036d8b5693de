package wskit_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wskit/wskit"
)

// HTTP/1.1 runs through NetConn: an http.Server on the server's end of a
// session, on both engines, and an http.Client dialing through the
// client's end; three requests share the tunnel.
func TestNetConnHTTP(t *testing.T) {
	checkGoroutines(t)
	routes := func(srv *wskit.Server) http.Handler {
		return srv.WebSocket(func(s *wskit.Session) {
			nc := wskit.NetConn(s.Context(), s, wskit.Binary)
			hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, body)
			})}
			hs.Serve(&oneConnListener{c: nc, done: make(chan struct{})})
		})
	}
	for _, tg := range eachEngine(t, testOptions(), routes) {
		t.Run(tg.name, func(t *testing.T) {
			s := dial(t, tg.url, nil)
			nc := wskit.NetConn(context.Background(), s, wskit.Binary)
			dialed := 0
			tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				dialed++
				if dialed > 1 {
					return nil, errors.New("the tunnel was not reused")
				}
				return nc, nil
			}}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: wait}
			for i, body := range []string{"", "hello", strings.Repeat("x", 100<<10)} {
				resp, err := client.Post(fmt.Sprintf("http://tunnel/r%d", i), "text/plain", strings.NewReader(body))
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := fmt.Sprintf("POST /r%d %s", i, body); err != nil || string(got) != want {
					t.Fatalf("request %d: %d bytes, %v; want %d bytes", i, len(got), err, len(want))
				}
			}
		})
	}
}

// A line protocol through NetConn, with the read deadline of net.Conn:
// a Read past it times out and leaves the stream as it was, a deadline
// set while a Read waits applies to it, and a peer's close 1000 reads as
// io.EOF. On the server's sessions of both engines and on a client.
func TestNetConnDeadlines(t *testing.T) {
	checkGoroutines(t)
	ends := make(chan error, 1)
	routes := func(srv *wskit.Server) http.Handler {
		return srv.WebSocket(func(s *wskit.Session) {
			nc := wskit.NetConn(context.Background(), s, wskit.Text)
			ends <- lineServer(nc)
		})
	}
	for _, tg := range eachEngine(t, testOptions(), routes) {
		t.Run(tg.name, func(t *testing.T) {
			s := dial(t, tg.url, nil)
			nc := wskit.NetConn(context.Background(), s, wskit.Text)
			br := bufio.NewReader(nc)

			nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := br.ReadString('\n'); !isTimeout(err) {
				t.Fatalf("Read past its deadline = %v, want a timeout", err)
			}
			nc.SetReadDeadline(time.Time{})
			fmt.Fprintf(nc, "upper hello\n")
			if line, err := br.ReadString('\n'); err != nil || line != "HELLO\n" {
				t.Fatalf("after a timeout, read %q, %v; want HELLO", line, err)
			}

			// A deadline set while a Read waits ends that Read.
			errs := make(chan error, 1)
			go func() {
				_, err := br.ReadString('\n')
				errs <- err
			}()
			time.Sleep(20 * time.Millisecond)
			nc.SetReadDeadline(time.Now())
			if err := await(t, errs, "the waiting Read to end"); !isTimeout(err) {
				t.Fatalf("a waiting Read after SetReadDeadline(now) = %v, want a timeout", err)
			}
			if _, err := nc.Write([]byte("upper x\n")); err != nil {
				t.Fatalf("Write with only a read deadline past: %v", err)
			}
			nc.SetReadDeadline(time.Time{})
			if line, err := br.ReadString('\n'); err != nil || line != "X\n" {
				t.Fatalf("read %q, %v; want X", line, err)
			}

			fmt.Fprintf(nc, "quit\n")
			if _, err := br.ReadString('\n'); err != io.EOF {
				t.Fatalf("after the server's close, Read = %v, want io.EOF", err)
			}
			if err := await(t, ends, "the server to finish"); err != nil {
				t.Fatalf("server: %v", err)
			}
			if err := nc.Close(); err != nil {
				t.Errorf("Close after the end: %v", err)
			}
		})
	}
	// The client's end serves, the server's end asks.
	t.Run("client", func(t *testing.T) {
		srv := newServer(t, testOptions())
		asked := make(chan error, 1)
		url := serve(t, srv.WebSocket(func(s *wskit.Session) {
			nc := wskit.NetConn(context.Background(), s, wskit.Text)
			br := bufio.NewReader(nc)
			fmt.Fprintf(nc, "upper from the server\n")
			line, err := br.ReadString('\n')
			if err == nil && line != "FROM THE SERVER\n" {
				err = fmt.Errorf("read %q", line)
			}
			fmt.Fprintf(nc, "quit\n")
			asked <- err
			io.Copy(io.Discard, nc)
		}))
		s := dial(t, url, nil)
		nc := wskit.NetConn(context.Background(), s, wskit.Text)
		if err := lineServer(nc); err != nil {
			t.Fatalf("client: %v", err)
		}
		if err := await(t, asked, "the server's answer"); err != nil {
			t.Fatalf("server: %v", err)
		}
	})
}

// A write deadline ends a Write that a stuck peer holds, and the session
// with it; NetConn's context cuts the session when it ends.
func TestNetConnWriteDeadline(t *testing.T) {
	checkGoroutines(t)
	type result struct {
		err  error
		code wskit.CloseCode
	}
	results := make(chan result, 1)
	routes := func(srv *wskit.Server) http.Handler {
		return srv.WebSocket(func(s *wskit.Session) {
			nc := wskit.NetConn(context.Background(), s, wskit.Binary)
			nc.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
			p := make([]byte, 256<<10)
			var err error
			for i := 0; err == nil && i < 4096; i++ {
				_, err = nc.Write(p)
			}
			<-s.Done()
			r, _ := s.CloseReason()
			results <- result{err, r.Code}
		})
	}
	o := testOptions()
	o.Timeout = time.Minute
	for _, tg := range eachEngine(t, o, routes) {
		t.Run(tg.name, func(t *testing.T) {
			dialRaw(t, tg.url, 4096)
			r := await(t, results, "the Write to time out")
			if !isTimeout(r.err) || r.code != wskit.CloseAbnormal {
				t.Errorf("Write to a stuck peer = %v, session ended with %d; want a timeout and 1006", r.err, r.code)
			}
		})
	}
	t.Run("context", func(t *testing.T) {
		srv := newServer(t, testOptions())
		s := dial(t, serve(t, echoRoutes(srv))+"/echo", nil)
		ctx, cancel := context.WithCancel(context.Background())
		nc := wskit.NetConn(ctx, s, wskit.Binary)
		cancel()
		<-s.Done()
		if _, err := nc.Read(make([]byte, 1)); !errors.Is(err, wskit.ErrClosed) || wskit.CloseStatus(err) != wskit.CloseAbnormal {
			t.Errorf("Read after NetConn's context ended = %v, want the session's end with 1006", err)
		}
	})
}

// lineServer answers "upper TEXT" lines with TEXT in upper case until
// "quit", then closes nc.
func lineServer(nc net.Conn) error {
	defer nc.Close()
	br := bufio.NewReader(nc)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		cmd, arg, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		switch cmd {
		case "quit":
			return nil
		case "upper":
			if _, err := fmt.Fprintf(nc, "%s\n", strings.ToUpper(arg)); err != nil {
				return err
			}
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && errors.Is(err, os.ErrDeadlineExceeded)
}

// oneConnListener hands out one connection, then waits until closed.
type oneConnListener struct {
	mu   sync.Mutex
	c    net.Conn
	done chan struct{}
	once sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.c
	l.c = nil
	l.mu.Unlock()
	if c != nil {
		return &closeNotifier{Conn: c, l: l}, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return &net.TCPAddr{} }

// closeNotifier closes its listener when the connection closes, so that
// http.Server.Serve returns.
type closeNotifier struct {
	net.Conn
	l *oneConnListener
}

func (c *closeNotifier) Close() error {
	c.l.Close()
	return c.Conn.Close()
}
