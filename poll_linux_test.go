//go:build linux

package wskit

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
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
	"github.com/wskit/wskit/internal/wstest"
	"github.com/wskit/wskit/wsraw"
)

// The request head may arrive in any pieces, and a first frame may come in
// the same write as the head: the loop must put them together.
func TestPollHandshakeSplit(t *testing.T) {
	ptLeakCheck(t)
	_, addr := ptStart(t, ptOptions(), nil, ptRoutes(Events{}))
	msg := []byte("split hello")
	for _, path := range []string{"/events", "/echo"} {
		all := append([]byte(ptHead(addr, path)), ptFrame(true, frame.OpText, msg)...)
		t.Run(strings.TrimPrefix(path, "/")+"/at every byte", func(t *testing.T) {
			for k := 1; k < len(all); k++ {
				p := ptConnect(t, addr)
				p.mustWrite(all[:k])
				time.Sleep(2 * time.Millisecond)
				p.mustWrite(all[k:])
				if err := p.expectUpgrade(); err != nil {
					t.Fatalf("split at %d of %d: %v", k, len(all), err)
				}
				if err := p.expect(frame.OpText, msg); err != nil {
					t.Fatalf("split at %d of %d: first message: %v", k, len(all), err)
				}
				p.mustEcho(frame.OpBinary, []byte{1, 2, 3})
				if err := p.closeHandshake(CloseNormal, ""); err != nil {
					t.Fatalf("split at %d: %v", k, err)
				}
				p.nc.Close()
			}
		})
		t.Run(strings.TrimPrefix(path, "/")+"/byte by byte", func(t *testing.T) {
			p := ptConnect(t, addr)
			for i := range all {
				p.mustWrite(all[i : i+1])
				time.Sleep(500 * time.Microsecond)
			}
			if err := p.expectUpgrade(); err != nil {
				t.Fatal(err)
			}
			if err := p.expect(frame.OpText, msg); err != nil {
				t.Fatalf("first message: %v", err)
			}
			if err := p.closeHandshake(CloseNormal, ""); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// ptExchange sends req on a new connection to addr and returns the
// response: the status line, the headers but Date, and the body.
// With split > 0, the first split bytes go in a write of their own.
func ptExchange(t *testing.T, addr string, req []byte, split int) (string, http.Header, string) {
	t.Helper()
	p := ptConnect(t, addr)
	defer p.nc.Close()
	if split > 0 {
		p.mustWrite(req[:split])
		time.Sleep(20 * time.Millisecond)
		req = req[split:]
	}
	// A refused head may be cut short by the server: write on the side.
	go p.write(req)
	resp, body, err := p.readResponse()
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	resp.Header.Del("Date")
	return resp.Proto + " " + resp.Status, resp.Header, string(body)
}

// Refused upgrades and other requests are answered by net/http on both
// engines: the poll engine must give the same responses as the std one.
func TestPollRefusalsMatchStd(t *testing.T) {
	ptLeakCheck(t)
	opts := ptOptions()
	opts.MaxHandshakeSize = 2048
	opts.Engine = EngineStd
	_, stdAddr := ptStart(t, opts, nil, ptRoutes(Events{}))
	opts.Engine = EnginePoll
	_, pollAddr := ptStart(t, opts, nil, ptRoutes(Events{}))

	const host = "example.com"
	head := func(method, path string, edit map[string]string, extra ...string) string {
		h := ptHead(host, path, extra...)
		h = method + strings.TrimPrefix(h, "GET")
		for name, v := range edit {
			lines := strings.Split(h, "\r\n")
			for i, l := range lines {
				if strings.HasPrefix(l, name+":") {
					lines[i] = name + ": " + v
					if v == "" {
						lines = slices.Delete(lines, i, i+1)
					}
					break
				}
			}
			h = strings.Join(lines, "\r\n")
		}
		return h
	}
	pad := func(n int) string { return "X-Pad: " + strings.Repeat("p", n) }
	for _, tc := range []struct {
		name   string
		req    string
		status int
		split  int
	}{
		{"POST", head("POST", "/echo", nil), 405, 0},
		{"POST on events", head("POST", "/events", nil), 405, 0},
		{"no key", head("GET", "/echo", map[string]string{"Sec-WebSocket-Key": ""}), 400, 0},
		{"bad key", head("GET", "/events", map[string]string{"Sec-WebSocket-Key": "c2hvcnQ="}), 400, 0},
		{"version 8", head("GET", "/echo", map[string]string{"Sec-WebSocket-Version": "8"}), 426, 0},
		{"no version", head("GET", "/events", map[string]string{"Sec-WebSocket-Version": ""}), 426, 0},
		{"cross-origin", head("GET", "/echo", nil, "Origin: http://evil.example"), 403, 0},
		{"cross-origin on events", head("GET", "/events", nil, "Origin: https://evil.example"), 403, 0},
		{"no Upgrade header", "GET /echo HTTP/1.1\r\nHost: " + host + "\r\n\r\n", 426, 0},
		{"no Upgrade header on events", head("GET", "/events", map[string]string{"Upgrade": "", "Connection": ""}), 426, 0},
		{"Upgrade to another protocol", head("GET", "/events", map[string]string{"Upgrade": "h2c"}), 426, 0},
		{"no Connection header", head("GET", "/events", map[string]string{"Connection": ""}), 400, 0},
		{"missing subprotocol", head("GET", "/proto", nil), 400, 0},
		{"unknown path", head("GET", "/nope", nil), 404, 0},
		{"plain request", "GET /hello?name=x HTTP/1.1\r\nHost: " + host + "\r\n\r\n", 200, 0},
		{"Host missing", strings.Replace(head("GET", "/echo", nil), "Host: "+host+"\r\n", "", 1), 400, 0},
		{"two Host headers", head("GET", "/events", nil, "Host: other.example"), 400, 0},
		{"bad Host", head("GET", "/events", map[string]string{"Host": "a b"}), 400, 0},
		{"HTTP/1.0", strings.Replace(head("GET", "/events", nil), "HTTP/1.1", "HTTP/1.0", 1), 400, 0},
		{"malformed request line", "GET\r\nHost: " + host + "\r\n\r\n", 400, 0},
		{"head within the slack", head("GET", "/events", nil, pad(2048+2000)), 101, 0},
		// Complete heads, in one read or two, are measured too, not only
		// unfinished ones.
		{"oversize head", head("GET", "/events", nil, pad(2048+8192)), 431, 0},
		{"oversize head in two writes", head("GET", "/echo", nil, pad(2048+8192)), 431, 100},
		{"oversize head on echo", head("GET", "/echo", nil, pad(64<<10)), 431, 0},
		{"oversize unfinished head", strings.TrimSuffix(head("GET", "/events", nil, pad(2048+8192)), "\r\n"), 431, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdLine, stdHeader, stdBody := ptExchange(t, stdAddr, []byte(tc.req), tc.split)
			pollLine, pollHeader, pollBody := ptExchange(t, pollAddr, []byte(tc.req), tc.split)
			if !strings.Contains(stdLine, " "+strconv.Itoa(tc.status)+" ") {
				t.Errorf("std engine answered %q, want %d", stdLine, tc.status)
			}
			if pollLine != stdLine {
				t.Errorf("status line: poll %q, std %q", pollLine, stdLine)
			}
			if !maps.EqualFunc(pollHeader, stdHeader, slices.Equal) {
				t.Errorf("headers:\npoll %v\n std %v", pollHeader, stdHeader)
			}
			if pollBody != stdBody {
				t.Errorf("body: poll %q, std %q", pollBody, stdBody)
			}
		})
	}
}

// After a plain request, the same connection is net/http's on the poll
// engine too: a later upgrade on it still opens a working session.
func TestPollUpgradeAfterPlainRequest(t *testing.T) {
	ptLeakCheck(t)
	_, addr := ptStart(t, ptOptions(), nil, ptRoutes(Events{}))
	for _, path := range []string{"/events", "/echo", "/raw"} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			p := ptConnect(t, addr)
			p.mustWrite([]byte("GET /hello?name=a HTTP/1.1\r\nHost: x\r\n\r\n"))
			resp, body, err := p.readResponse()
			if err != nil || resp.StatusCode != 200 || string(body) != "hello a" {
				t.Fatalf("plain request: %v %v %q", resp, err, body)
			}
			if err := p.upgrade(addr, path); err != nil {
				t.Fatal(err)
			}
			p.mustEcho(frame.OpText, []byte("after a plain request"))
			if err := p.closeHandshake(CloseNormal, ""); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A client that does not finish its head within HandshakeTimeout is cut,
// without a response, as net/http's ReadHeaderTimeout does; one that
// finished it is not.
func TestPollHandshakeTimeout(t *testing.T) {
	ptLeakCheck(t)
	const timeout = 200 * time.Millisecond
	opts := ptOptions()
	opts.HandshakeTimeout = timeout
	_, addr := ptStart(t, opts, nil, ptRoutes(Events{}))
	partial := func(s string) func(*ptPeer) {
		return func(p *ptPeer) { p.mustWrite([]byte(s)) }
	}
	for _, tc := range []struct {
		name  string
		start func(*ptPeer)
	}{
		{"silent", func(*ptPeer) {}},
		{"partial upgrade", partial("GET /events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")},
		{"partial request line", partial("GET /ech")},
		{"partial plain request", partial("GET /hello HTTP/1.1\r\n")},
		{"trickle", func(p *ptPeer) {
			// A byte every 40 ms: the bound is on the whole head.
			go func() {
				head := ptHead("x", "/events")
				for i := 0; i < len(head)-1; i++ {
					if p.write([]byte{head[i]}) != nil {
						return
					}
					time.Sleep(40 * time.Millisecond)
				}
			}()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			p := ptConnect(t, addr)
			tc.start(p)
			p.nc.SetReadDeadline(time.Now().Add(ptWait))
			got, err := io.ReadAll(p.br)
			elapsed := time.Since(start)
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("the connection was not closed: %v after %v", err, elapsed)
			}
			if len(got) != 0 {
				t.Errorf("the server sent %q", got)
			}
			if elapsed < timeout-5*time.Millisecond || elapsed > timeout+time.Second {
				t.Errorf("closed after %v, want about %v", elapsed, timeout)
			}
		})
	}
	for _, path := range []string{"/events", "/echo", "/raw"} {
		t.Run("finished on "+path, func(t *testing.T) {
			p := ptDial(t, addr, path)
			time.Sleep(2 * timeout)
			p.mustEcho(frame.OpText, []byte("still here"))
			if err := p.closeHandshake(CloseNormal, ""); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A server pushing to a client that does not read: the output waits in the
// queue for the socket (EAGAIN, then EPOLLOUT), and arrives whole and in
// order once the client reads.
func TestPollSlowReaderServerPush(t *testing.T) {
	ptLeakCheck(t)
	const count, size = 64, 64 << 10
	opts := ptOptions()
	opts.MaxQueue = 2 * count * size
	queued := make(chan int, 1)
	sent := make(chan error, 1)
	ev := Events{
		OnOpen: func(s *Session) {
			go func() {
				for i := range count {
					if err := s.SendBinary(ptPattern(i, size)); err != nil {
						sent <- fmt.Errorf("send %d: %w", i, err)
						return
					}
				}
				queued <- ptQueued(s)
				sent <- nil
			}()
		},
		OnMessage: ptEcho,
	}
	_, addr := ptStart(t, opts, ptListen(t, 0, 32<<10), ptRoutes(ev))
	p := ptConnect(t, addr)
	p.nc.SetReadBuffer(16 << 10)
	if err := p.upgrade(addr, "/events"); err != nil {
		t.Fatal(err)
	}
	if err := ptAwait(t, sent, "the sends"); err != nil {
		t.Fatal(err)
	}
	if q := ptAwait(t, queued, "the queue size"); q < count*size/2 {
		t.Errorf("%d bytes queued after the sends, want most of %d: the output did not back up", q, count*size)
	}
	for i := range count {
		if err := p.expect(frame.OpBinary, ptPattern(i, size)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	p.mustEcho(frame.OpText, []byte("after"))
	if err := p.closeHandshake(CloseNormal, ""); err != nil {
		t.Fatal(err)
	}
}

// A client pipelining echo requests faster than it reads the replies: the
// replies back up on the loop (EAGAIN, then EPOLLOUT), the loop stops
// reading the client while more than a bounded amount waits, and every
// reply arrives, in order.
func TestPollSlowReaderPipelinedEchoes(t *testing.T) {
	ptLeakCheck(t)
	const count, size = 2000, 4 << 10
	opts := ptOptions()
	opts.MaxQueue = 4 * count * size
	var maxQueued atomic.Int64
	ev := Events{OnMessage: func(s *Session, m Message) {
		if err := s.Send(m.Type, m.Payload); err != nil {
			panic(err) // the client sees 1011
		}
		if q := int64(ptQueued(s)); q > maxQueued.Load() {
			maxQueued.Store(q)
		}
	}}
	_, addr := ptStart(t, opts, ptListen(t, 0, 32<<10), ptRoutes(ev))
	p := ptConnect(t, addr)
	p.nc.SetReadBuffer(16 << 10)
	if err := p.upgrade(addr, "/events"); err != nil {
		t.Fatal(err)
	}
	var out []byte
	for i := range count {
		out = append(out, ptFrame(true, frame.OpBinary, ptPattern(i, size))...)
	}
	written := make(chan error, 1)
	go func() {
		_, err := p.nc.Write(out)
		written <- err
	}()
	time.Sleep(200 * time.Millisecond) // the replies back up meanwhile
	for i := range count {
		if err := p.expect(frame.OpBinary, ptPattern(i, size)); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
	}
	if err := ptAwait(t, written, "the requests' write"); err != nil {
		t.Fatal(err)
	}
	// The loop's read pause (256 KiB), plus what one read's messages add.
	q := maxQueued.Load()
	if q < 64<<10 {
		t.Errorf("at most %d bytes queued: the output did not back up", q)
	}
	if q > 256<<10+64<<10+count {
		t.Errorf("%d bytes queued: reading did not pause while the output waited", q)
	}
	if err := p.closeHandshake(CloseNormal, ""); err != nil {
		t.Fatal(err)
	}
}

// Echoes of every size, whole and cut by the reads, some fragmented, on
// two connections of one loop whose peers read slowly: the large ones go
// out from the loop's read buffer, and what a write does not take is
// copied before the loop reads the other connection into that buffer.
func TestPollEventsLentEchoes(t *testing.T) {
	ptLeakCheck(t)
	const count = 600
	opts := ptOptions()
	opts.Loops = 1
	opts.MaxQueue = 64 << 20
	ev := Events{OnMessage: func(s *Session, m Message) {
		if err := s.Send(m.Type, m.Payload); err != nil {
			panic(err) // the client sees 1011
		}
	}}
	_, addr := ptStart(t, opts, ptListen(t, 0, 32<<10), ptRoutes(ev))
	sizes := []int{16 << 10, 64, 2047, 2048, 5000, 16<<10 + 3, 40 << 10, 70 << 10, 1}
	var wg sync.WaitGroup
	for k := range 2 {
		p := ptConnect(t, addr)
		p.nc.SetReadBuffer(16 << 10)
		if err := p.upgrade(addr, "/events"); err != nil {
			t.Fatal(err)
		}
		var out []byte
		for i := range count {
			msg := ptPattern(k*count+i, sizes[i%len(sizes)])
			if i%7 == 3 && len(msg) > 1 {
				half := len(msg) / 2
				out = append(out, ptFrame(false, frame.OpBinary, msg[:half])...)
				out = append(out, ptFrame(true, frame.OpContinuation, msg[half:])...)
				continue
			}
			out = append(out, ptFrame(true, frame.OpBinary, msg)...)
		}
		written := make(chan error, 1)
		go func() {
			_, err := p.nc.Write(out)
			written <- err
		}()
		wg.Go(func() {
			time.Sleep(100 * time.Millisecond) // the replies back up meanwhile
			for i := range count {
				if err := p.expect(frame.OpBinary, ptPattern(k*count+i, sizes[i%len(sizes)])); err != nil {
					t.Errorf("connection %d, reply %d: %v", k, i, err)
					return
				}
			}
			if err := ptAwait(t, written, "the requests' write"); err != nil {
				t.Error(err)
				return
			}
			if err := p.closeHandshake(CloseNormal, ""); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// The queue bound on an Events session: the closing policies close the
// session with their code when the peer does not read; QueueBlock, which
// cannot wait on the loop, refuses the send with ErrQueueFull and keeps the
// session.
func TestPollQueuePolicies(t *testing.T) {
	const size = 64 << 10
	for _, tc := range []struct {
		policy QueuePolicy
		code   CloseCode // 0: the session stays open
	}{
		{QueueCloseTryAgain, CloseTryAgainLater},
		{QueueClosePolicy, ClosePolicyViolation},
		{QueueBlock, 0},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			ptLeakCheck(t)
			opts := ptOptions()
			opts.MaxQueue = size
			opts.QueuePolicy = tc.policy
			opts.Timeout = 500 * time.Millisecond
			type result struct {
				sent int
				err  error
				took time.Duration
				open bool
			}
			results := make(chan result, 1)
			ends := make(chan ptEnd, 16)
			ev := Events{
				OnOpen: func(s *Session) {
					go func() {
						for i := 0; ; i++ {
							start := time.Now()
							if err := s.SendBinary(ptPattern(i, size)); err != nil {
								_, ended := s.CloseReason()
								results <- result{i, err, time.Since(start), !ended}
								return
							}
						}
					}()
				},
				OnMessage: ptEcho,
				OnClose:   func(s *Session, r CloseReason) { ptPut(ends, ptEnd{r, true, s.Err()}) },
			}
			_, addr := ptStart(t, opts, ptListen(t, 0, 16<<10), ptRoutes(ev))
			p := ptConnect(t, addr)
			p.nc.SetReadBuffer(8 << 10)
			if err := p.upgrade(addr, "/events"); err != nil {
				t.Fatal(err)
			}
			r := ptAwait(t, results, "a refused send")
			if !errors.Is(r.err, ErrQueueFull) {
				t.Fatalf("send %d failed with %v, want ErrQueueFull", r.sent, r.err)
			}
			if r.took > 100*time.Millisecond {
				t.Errorf("the refused send took %v: it waited", r.took)
			}
			if tc.code != 0 {
				// The peer never reads: the session must still end, with
				// the policy's code, once the close times out.
				select {
				case e := <-ends:
					if e.reason.Code != tc.code {
						t.Errorf("OnClose got %v, want %d", e.reason, tc.code)
					}
				case <-time.After(opts.Timeout + 2*time.Second):
					// The close queued by the policy must arm the close
					// timer, and its timeout must not wait for the output.
					t.Fatalf("the session did not end %v after the queue filled (Timeout %v)", opts.Timeout+2*time.Second, opts.Timeout)
				}
				return
			}
			if !r.open {
				t.Fatalf("the session ended on a refused send with QueueBlock")
			}
			for i := range r.sent {
				if err := p.expect(frame.OpBinary, ptPattern(i, size)); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			p.mustEcho(frame.OpText, []byte("still open"))
			if err := p.closeHandshake(CloseNormal, ""); err != nil {
				t.Fatal(err)
			}
			if e := ptAwait(t, ends, "OnClose"); e.reason.Code != CloseNormal || e.err != nil {
				t.Errorf("OnClose got %v, %v; want 1000 and no error", e.reason, e.err)
			}
		})
	}
}

// Timeout bounds the wait for the peer's close frame, also when output
// is stuck behind a peer that stopped reading.
func TestPollCloseWithBackedUpOutput(t *testing.T) {
	ptLeakCheck(t)
	const count, size = 32, 64 << 10
	opts := ptOptions()
	opts.Timeout = 300 * time.Millisecond
	ends := make(chan ptEnd, 16)
	ready := make(chan *Session, 1)
	ev := Events{
		OnOpen: func(s *Session) {
			go func() {
				for i := range count {
					if err := s.SendBinary(ptPattern(i, size)); err != nil {
						t.Errorf("send %d: %v", i, err)
					}
				}
				ready <- s
			}()
		},
		OnClose: func(s *Session, r CloseReason) { ptPut(ends, ptEnd{r, true, s.Err()}) },
	}
	_, addr := ptStart(t, opts, ptListen(t, 0, 16<<10), ptRoutes(ev))
	p := ptConnect(t, addr)
	p.nc.SetReadBuffer(8 << 10)
	if err := p.upgrade(addr, "/events"); err != nil {
		t.Fatal(err)
	}
	s := ptAwait(t, ready, "the sends")
	if q := ptQueued(s); q < size {
		t.Fatalf("only %d bytes queued: the output did not back up", q)
	}
	start := time.Now()
	if err := s.Close(4000, "bye"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case e := <-ends:
		// The close or the write times out, whichever first.
		if e.reason.Code != 4000 || !errors.Is(e.err, ErrCloseTimeout) && !errors.Is(e.err, ErrWriteTimeout) {
			t.Errorf("OnClose got %v, %v; want 4000 and ErrCloseTimeout or ErrWriteTimeout", e.reason, e.err)
		}
		if d := time.Since(start); d > opts.Timeout+time.Second {
			t.Errorf("the session ended %v after Close, want about %v", d, opts.Timeout)
		}
	case <-time.After(opts.Timeout + 2*time.Second):
		// A close that times out must not wait for the queued output to
		// be written: the peer does not read.
		t.Errorf("the session did not end %v after Close with %d bytes queued (Timeout %v)", time.Since(start), ptQueued(s), opts.Timeout)
	}
}

// A peer that resets the connection in the middle of a frame ends the
// session with 1006 and the transport's error, leaving nothing behind.
func TestPollPeerResetMidFrame(t *testing.T) {
	ptLeakCheck(t)
	ends := make(chan ptEnd, 16)
	errs := make(chan error, 16)
	routes := func(srv *Server) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/events", srv.WebSocketEvents(Events{
			OnMessage: ptEcho,
			OnError:   func(s *Session, err error) { ptPut(errs, err) },
			OnClose:   func(s *Session, r CloseReason) { ptPut(ends, ptEnd{r, true, s.Err()}) },
		}))
		mux.Handle("/echo", srv.WebSocket(func(s *Session) {
			ptEchoSession(s)
			<-s.Done()
			ptPut(ends, ptEndOf(s))
		}))
		mux.Handle("/raw", srv.WebSocketRaw(func(s *wsraw.Session) {
			for f := range s.Frames() {
				if f.Op.IsData() {
					s.SendFrame(frame.Header{Fin: f.Fin, Op: f.Op}, f.Payload)
				}
			}
			reason, ok := s.CloseReason()
			ptPut(ends, ptEnd{reason, ok, s.Err()})
		}))
		return mux
	}
	srv, addr := ptStart(t, ptOptions(), nil, routes)
	half := ptFrame(true, frame.OpBinary, ptPattern(1, 1000))[:500]
	for _, path := range []string{"/events", "/echo", "/raw"} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			base := ptCount()
			p := ptDial(t, addr, path)
			p.mustEcho(frame.OpBinary, ptPattern(0, 3000))
			p.mustWrite(half)
			time.Sleep(50 * time.Millisecond) // the server reads the half frame
			p.reset()
			e := ptAwait(t, ends, "the session's end")
			switch {
			case e.err == nil || errors.Is(e.err, ErrClosed):
				t.Errorf("Err() = %v, want the transport's error", e.err)
			case path == "/raw":
				if e.ok {
					t.Errorf("CloseReason = %v, true; want no close frame seen", e.reason)
				}
			case !e.ok || e.reason.Code != CloseAbnormal:
				t.Errorf("CloseReason = %v, %v; want 1006", e.reason, e.ok)
			}
			if path == "/events" {
				if err := ptAwait(t, errs, "OnError"); err == nil {
					t.Errorf("OnError got a nil error")
				}
			}
			ptExpectIdle(t, srv, base)
		})
	}
}

// A flood of connections that end in every way: afterwards no session,
// descriptor, goroutine or pooled buffer is left.
func TestPollConnectionFlood(t *testing.T) {
	ptLeakCheck(t)
	srv, addr := ptStart(t, ptOptions(), nil, ptRoutes(Events{}))
	total := 3000
	if race.Enabled {
		total = 600
	}
	ptChurn(t, srv, addr, total, nil)
}

// ptChurn runs total connections through srv, 48 at a time, each of one
// kind in turn: full sessions on every route, peers that vanish mid-head,
// mid-frame or after a frame (with a FIN or a RST), plain requests and
// refused upgrades. Afterwards nothing may be left: no session, descriptor,
// goroutine or pooled buffer beyond what was there after one of each.
// settled, when set, is called then.
func ptChurn(t *testing.T, srv *Server, addr string, total int, settled func()) {
	head := func(path string) []byte { return []byte(ptHead(addr, path)) }
	msg := ptPattern(7, 300)
	frameThenGo := func(path string) func(*ptPeer) error {
		return func(p *ptPeer) error {
			if err := p.upgrade(addr, path); err != nil {
				return err
			}
			return p.send(frame.OpBinary, msg)
		}
	}
	kinds := []struct {
		name  string
		run   func(*ptPeer) error
		reset bool // end with a RST rather than a FIN
	}{
		{"echo and close on events", func(p *ptPeer) error {
			if err := p.upgrade(addr, "/events"); err != nil {
				return err
			}
			if err := p.echo(frame.OpBinary, msg); err != nil {
				return err
			}
			return p.closeHandshake(CloseNormal, "")
		}, false},
		{"echo on echo, then reset", func(p *ptPeer) error {
			if err := p.upgrade(addr, "/echo"); err != nil {
				return err
			}
			return p.echo(frame.OpBinary, msg)
		}, true},
		{"half a head", func(p *ptPeer) error { return p.write(head("/events")[:40]) }, false},
		{"half a head, reset", func(p *ptPeer) error { return p.write(head("/echo")[:70]) }, true},
		{"frame and vanish on events", frameThenGo("/events"), false},
		{"frame and vanish on echo", frameThenGo("/echo"), false},
		{"frame and vanish on raw", frameThenGo("/raw"), true},
		{"half a frame on events", func(p *ptPeer) error {
			if err := p.upgrade(addr, "/events"); err != nil {
				return err
			}
			return p.write(ptFrame(true, frame.OpBinary, msg)[:100])
		}, false},
		{"plain request", func(p *ptPeer) error {
			if err := p.write([]byte("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
				return err
			}
			_, _, err := p.readResponse()
			return err
		}, false},
		{"refused upgrade", func(p *ptPeer) error {
			if err := p.write([]byte(ptHead(addr, "/echo", "Origin: http://evil.example"))); err != nil {
				return err
			}
			_, _, err := p.readResponse()
			return err
		}, false},
		{"connect only", func(*ptPeer) error { return nil }, false},
	}
	run := func(i int) error {
		k := kinds[i%len(kinds)]
		p, err := ptConnectErr(addr)
		if err != nil {
			return err
		}
		err = k.run(p)
		if k.reset {
			p.reset()
		} else {
			p.nc.Close()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k.name, err)
		}
		return nil
	}
	// One of each first, so that what the server keeps for good (net/http's
	// goroutine, the pools) is there before counting.
	for i := range kinds {
		if err := run(i); err != nil {
			t.Fatal(err)
		}
	}
	ptExpectIdle(t, srv, ptCounts{fds: 1 << 30, goroutines: 1 << 30, lent: 1 << 62})
	if settled != nil {
		settled()
	}
	base := ptCount()

	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 48 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				if err := run(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ptExpectIdle(t, srv, base)
}

// A peer that sends its last bytes and closes at once: the loop may see the
// data and the end of the stream in one readiness event, and must still see
// the end. The loop is held busy by another connection's callback meanwhile,
// so that both have arrived when it reads.
func TestPollPeerClosesAfterData(t *testing.T) {
	ptLeakCheck(t)
	ends := make(chan ptEnd, 16)
	opts := ptOptions()
	opts.Loops = 1
	opts.HandshakeTimeout = 3 * time.Second
	routes := func(srv *Server) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/busy", srv.WebSocketEvents(Events{OnMessage: func(s *Session, m Message) {
			time.Sleep(200 * time.Millisecond) // holds the loop, on purpose
			s.Send(m.Type, m.Payload)
		}}))
		mux.Handle("/quiet", srv.WebSocketEvents(Events{
			OnClose: func(s *Session, r CloseReason) { ptPut(ends, ptEnd{r, true, s.Err()}) },
		}))
		return mux
	}
	srv, addr := ptStart(t, opts, nil, routes)
	msg := ptFrame(true, frame.OpBinary, ptPattern(3, 300))
	for _, tc := range []struct {
		name    string
		session bool   // upgrade first
		last    []byte // the bytes sent before the close
	}{
		{"whole frame", true, msg},
		{"half a frame", true, msg[:100]},
		{"half a head", false, []byte(ptHead(addr, "/quiet"))[:50]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			busy := ptDial(t, addr, "/busy")
			conns := ptConns(srv)
			p := ptConnect(t, addr)
			if tc.session {
				if err := p.upgrade(addr, "/quiet"); err != nil {
					t.Fatal(err)
				}
			}
			busy.mustWrite(ptFrame(true, frame.OpText, []byte("hold")))
			time.Sleep(20 * time.Millisecond) // the loop is in the callback
			p.mustWrite(tc.last)
			p.nc.Close()
			if err := busy.expect(frame.OpText, []byte("hold")); err != nil {
				t.Fatal(err)
			}
			if tc.session {
				select {
				case e := <-ends:
					if e.reason.Code != CloseAbnormal {
						t.Errorf("OnClose got %v, want 1006", e.reason)
					}
				case <-time.After(time.Second):
					// A loop that stops after a short read on an
					// edge-triggered descriptor never reads the EOF
					// behind the data: no new edge comes.
					t.Fatalf("the session did not end 1 s after the peer closed")
				}
			} else {
				deadline := time.Now().Add(time.Second)
				for ptConns(srv) > conns && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				if n := ptConns(srv); n > conns {
					t.Fatalf("%d connections open 1 s after the peer closed, want %d (the EOF was not read; HandshakeTimeout ends it later)", n, conns)
				}
			}
			busy.nc.Close()
		})
	}
}

// ptRequestInfo describes what a callback sees of its session's request.
func ptRequestInfo(s *Session) string {
	r := s.Request()
	if r == nil {
		return "no request"
	}
	_, hostHeader := r.Header["Host"]
	return fmt.Sprintf("%s %s room=%s x-test=%s host=%s host-header=%v remote=%s session-remote=%s",
		r.Method, r.URL.Path, r.URL.Query().Get("room"), r.Header.Get("X-Test"), r.Host, hostHeader,
		r.RemoteAddr, s.RemoteAddr())
}

// The callbacks run in order and see the request, on both engines alike;
// Done and Context end with the session, whenever they were first asked
// for.
func TestPollEventsLifecycle(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		for _, lazy := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/lazy=%v", engine, lazy), func(t *testing.T) {
				ptLeakCheck(t)
				log := newPtLog()
				infos := make(chan string, 8)
				var (
					done <-chan struct{}
					ctx  context.Context
				)
				ev := log.events(func(s *Session, m Message) {
					infos <- "message: " + ptRequestInfo(s)
					s.Send(m.Type, m.Payload)
				})
				open, closed := ev.OnOpen, ev.OnClose
				ev.OnOpen = func(s *Session) {
					open(s)
					infos <- "open: " + ptRequestInfo(s)
					if s.Engine() != engine || ptOnLoop() != (engine == EnginePoll) {
						t.Errorf("session on engine %v, on a loop %v; want %v", s.Engine(), ptOnLoop(), engine)
					}
					if lazy {
						return
					}
					done, ctx = s.Done(), s.Context()
					select {
					case <-done:
						t.Errorf("Done is closed in OnOpen")
					default:
					}
					if ctx.Err() != nil {
						t.Errorf("Context is over in OnOpen: %v", ctx.Err())
					}
					if r, ok := s.CloseReason(); ok {
						t.Errorf("CloseReason in OnOpen: %v", r)
					}
				}
				ev.OnClose = func(s *Session, r CloseReason) {
					infos <- "close: " + ptRequestInfo(s)
					if lazy {
						done, ctx = s.Done(), s.Context()
					}
					if s.Err() != nil {
						t.Errorf("Err() = %v in OnClose after a clean close", s.Err())
					}
					if got, ok := s.CloseReason(); !ok || got != r {
						t.Errorf("CloseReason() = %v, %v in OnClose, want %v", got, ok, r)
					}
					closed(s, r)
				}
				opts := ptOptions()
				opts.Engine = engine
				_, addr := ptStart(t, opts, nil, ptRoutes(ev))
				p := ptDial(t, addr, "/events?room=42", "X-Test: yes")
				for _, m := range []string{"a", "b"} {
					p.mustEcho(frame.OpText, []byte(m))
				}
				if err := p.closeHandshake(4000, "bye"); err != nil {
					t.Fatal(err)
				}
				if err := p.waitEOF(ptWait); err != nil {
					t.Errorf("the server did not close the connection: %v", err)
				}
				got, errs := log.wait(t)
				if want := "open | message a | message b | close 4000 bye"; got != want {
					t.Errorf("callbacks:\n got %s\nwant %s", got, want)
				}
				if len(errs) != 0 {
					t.Errorf("OnError after a clean close: %v", errs)
				}
				want := fmt.Sprintf("GET /events room=42 x-test=yes host=%s host-header=false remote=%s session-remote=%[2]s", addr, p.nc.LocalAddr())
				for _, where := range []string{"open", "message", "message", "close"} {
					if got := <-infos; got != where+": "+want {
						t.Errorf("request:\n got %s\nwant %s: %s", got, where, want)
					}
				}
				select {
				case <-done:
				case <-time.After(ptWait):
					t.Fatal("Done is not closed after OnClose")
				}
				if !errors.Is(ctx.Err(), context.Canceled) {
					t.Errorf("Context().Err() = %v after the end, want context.Canceled", ctx.Err())
				}
			})
		}
	}
}

// Session.Close from OnMessage sends the close frame and returns at once:
// the loop cannot wait for the peer's answer.
func TestPollEventsCloseFromOnMessage(t *testing.T) {
	ptLeakCheck(t)
	log := newPtLog()
	type closing struct {
		took                 time.Duration
		err, badErr, sendErr error
	}
	results := make(chan closing, 1)
	ev := log.events(func(s *Session, m Message) {
		switch m.Text() {
		case "bad close":
			ptPut(results, closing{badErr: s.Close(CloseAbnormal, "")})
		case "close":
			start := time.Now()
			err := s.Close(4001, "requested")
			ptPut(results, closing{took: time.Since(start), err: err, sendErr: s.SendText("late")})
		default:
			s.Send(m.Type, m.Payload)
		}
	})
	_, addr := ptStart(t, ptOptions(), nil, ptRoutes(ev))
	p := ptDial(t, addr, "/events")
	p.mustWrite(ptFrame(true, frame.OpText, []byte("bad close")))
	if r := ptAwait(t, results, "the refused Close"); r.badErr == nil {
		t.Errorf("Close(1006) returned nil, want an error")
	}
	p.mustEcho(frame.OpText, []byte("still open"))
	p.mustWrite(ptFrame(true, frame.OpText, []byte("close")))
	r := ptAwait(t, results, "Close")
	if r.err != nil || r.took > 50*time.Millisecond {
		t.Errorf("Close returned %v after %v, want nil at once", r.err, r.took)
	}
	if !errors.Is(r.sendErr, ErrClosed) {
		t.Errorf("a send after Close returned %v, want ErrClosed", r.sendErr)
	}
	code, reason := p.mustReadClose()
	if code != 4001 || reason != "requested" {
		t.Errorf("client saw close %d %q, want 4001 requested", code, reason)
	}
	p.mustWrite(ptCloseFrame(code, reason))
	if err := p.waitEOF(ptWait); err != nil {
		t.Errorf("the server did not close the connection: %v", err)
	}
	got, errs := log.wait(t)
	if want := "open | message bad close | message still open | message close | close 4001 requested"; got != want {
		t.Errorf("callbacks:\n got %s\nwant %s", got, want)
	}
	if len(errs) != 0 {
		t.Errorf("OnError after a clean close: %v", errs)
	}
}

// A violation by the client: the close frame with its code goes out, the
// connection ends, and OnError then OnClose report it.
func TestPollEventsViolations(t *testing.T) {
	ptLeakCheck(t)
	opts := ptOptions()
	opts.MaxFrameSize = 1024
	var current atomic.Pointer[ptLog] // the subtest's
	ev := Events{
		OnOpen:    func(s *Session) { current.Load().events(nil).OnOpen(s) },
		OnMessage: func(s *Session, m Message) { current.Load().events(ptEcho).OnMessage(s, m) },
		OnError:   func(s *Session, err error) { current.Load().events(nil).OnError(s, err) },
		OnClose:   func(s *Session, r CloseReason) { current.Load().events(nil).OnClose(s, r) },
	}
	_, addr := ptStart(t, opts, nil, ptRoutes(ev))
	masked := func(h frame.Header, p []byte) []byte {
		h.Masked, h.Mask, h.Length = true, ptMask, int64(len(p))
		return ptFrameHeader(h, p)
	}
	for _, tc := range []struct {
		name string
		bad  []byte
		code CloseCode
	}{
		{"unmasked frame", ptFrameHeader(frame.Header{Fin: true, Op: frame.OpText, Length: 2}, []byte("no")), CloseProtocolError},
		{"bad UTF-8", ptFrame(true, frame.OpText, []byte{'a', 0xff, 0xfe}), CloseInvalidPayload},
		{"bad UTF-8 across fragments", append(ptFrame(false, frame.OpText, []byte{0xe2, 0x82}), ptFrame(true, frame.OpContinuation, []byte{'x'})...), CloseInvalidPayload},
		{"reserved opcode", masked(frame.Header{Fin: true, Op: 0x3}, nil), CloseProtocolError},
		{"RSV1 without extension", masked(frame.Header{Fin: true, Rsv: frame.RSV1, Op: frame.OpBinary}, []byte("x")), CloseProtocolError},
		{"fragmented ping", ptFrame(false, frame.OpPing, nil), CloseProtocolError},
		{"continuation first", ptFrame(true, frame.OpContinuation, []byte("x")), CloseProtocolError},
		{"frame over MaxFrameSize", ptFrame(true, frame.OpBinary, make([]byte, 2000)), CloseMessageTooBig},
		{"close code 1005", ptFrame(true, frame.OpClose, []byte{0x03, 0xed}), CloseProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := newPtLog()
			current.Store(log)
			p := ptDial(t, addr, "/events")
			p.mustEcho(frame.OpText, []byte("ok"))
			p.mustWrite(tc.bad)
			if code, _ := p.mustReadClose(); code != tc.code {
				t.Errorf("client saw close %d, want %d", code, tc.code)
			}
			if err := p.waitEOF(ptWait); err != nil {
				t.Errorf("the server did not end the connection: %v", err)
			}
			p.nc.Close() // the server lingers until then
			got, errs := log.wait(t)
			if want := fmt.Sprintf("open | message ok | error | close %d ", tc.code); !strings.HasPrefix(got, want) {
				t.Errorf("callbacks:\n got %s\nwant %s…", got, want)
			}
			var pe *frame.ProtocolError
			if len(errs) != 1 || !errors.As(errs[0], &pe) || pe.Code != tc.code {
				t.Errorf("OnError got %v, want a *frame.ProtocolError with %d", errs, tc.code)
			}
		})
	}
}

// A panic in OnOpen or OnMessage closes the session with 1011 and is
// logged; OnError and OnClose still run. On the loop and on workers.
func TestPollEventsPanic(t *testing.T) {
	for _, workers := range []int{0, 2} {
		for _, where := range []string{"OnOpen", "OnMessage"} {
			t.Run(fmt.Sprintf("%s/workers=%d", where, workers), func(t *testing.T) {
				ptLeakCheck(t)
				var logged wstest.SyncBuffer
				opts := ptOptions()
				opts.Workers = workers
				opts.Logger = slog.New(slog.NewTextHandler(&logged, nil))
				log := newPtLog()
				ev := log.events(func(*Session, Message) { panic("boom in OnMessage") })
				if where == "OnOpen" {
					open := ev.OnOpen
					ev.OnOpen = func(s *Session) {
						open(s)
						time.Sleep(50 * time.Millisecond) // the message comes meanwhile
						panic("boom in OnOpen")
					}
				}
				_, addr := ptStart(t, opts, nil, ptRoutes(ev))
				p := ptDial(t, addr, "/events")
				p.mustWrite(ptFrame(true, frame.OpText, []byte("x")))
				code, reason := p.mustReadClose()
				if code != CloseInternalError {
					t.Errorf("client saw close %d %q, want 1011", code, reason)
				}
				p.mustWrite(ptCloseFrame(code, reason))
				got, errs := log.wait(t)
				want := "open | message x | error | close 1011 internal error"
				if where == "OnOpen" {
					want = "open | error | close 1011 internal error"
				}
				if got != want {
					// A message queued for the worker while OnOpen ran
					// is dropped after the panic, as on the loop and on
					// the std engine.
					t.Errorf("callbacks:\n got %s\nwant %s", got, want)
				}
				if len(errs) != 1 || !errors.Is(errs[0], ErrHandlerPanic) {
					t.Errorf("OnError got %v, want ErrHandlerPanic", errs)
				}
				if !strings.Contains(logged.String(), "boom in "+where) {
					t.Errorf("the panic was not logged:\n%s", logged.String())
				}
			})
		}
	}
}

// Sends and closes on an Events session that has ended fail with
// ErrClosed and keep no pooled buffer.
func TestPollSendAfterEndReturnsBuffers(t *testing.T) {
	ptLeakCheck(t)
	log := newPtLog()
	sessions := make(chan *Session, 1)
	ev := log.events(ptEcho)
	ev.OnOpen = func(s *Session) { sessions <- s }
	_, addr := ptStart(t, ptOptions(), nil, ptRoutes(ev))
	p := ptDial(t, addr, "/events")
	s := ptAwait(t, sessions, "OnOpen")
	p.mustEcho(frame.OpText, []byte("x"))
	if err := p.closeHandshake(CloseNormal, ""); err != nil {
		t.Fatal(err)
	}
	log.wait(t)
	base := bufpool.Lent()
	for i := range 10 {
		if err := s.SendText("late"); !errors.Is(err, ErrClosed) {
			t.Errorf("send %d after the end: %v, want ErrClosed", i, err)
		}
		s.SendBinary(make([]byte, 8192))
		s.SendFrame(frame.Header{Fin: true, Op: frame.OpPing}, nil)
		s.Close(CloseNormal, "")
	}
	if n := bufpool.Lent(); n != base {
		// A write takes room in the output (a pooled chunk) before the
		// protocol or Commit refuses it: the room must go back.
		t.Errorf("%d pooled buffers lent after 40 refused writes, %d before", n, base)
	}
}

// Keepalive on an Events session: pings come every PingPeriod while the
// client answers them; when it stops, the session closes with 1011 after
// Timeout.
func TestPollEventsKeepalive(t *testing.T) {
	ptLeakCheck(t)
	const period, timeout = 100 * time.Millisecond, 400 * time.Millisecond
	opts := ptOptions()
	opts.PingPeriod = period
	opts.Timeout = timeout
	log := newPtLog()
	_, addr := ptStart(t, opts, nil, ptRoutes(log.events(ptEcho)))
	p := ptDial(t, addr, "/events")
	pings := 0
	for end := time.Now().Add(8 * period); time.Now().Before(end); {
		h, payload, err := p.readFrameWithin(4 * period)
		if err != nil {
			t.Fatalf("waiting for a ping: %v (after %d pings)", err, pings)
		}
		if h.Op != frame.OpPing {
			t.Fatalf("got a %v frame, want pings", h.Op)
		}
		pings++
		p.mustWrite(ptFrame(true, frame.OpPong, payload))
	}
	if pings < 4 {
		t.Errorf("%d pings in %v with PingPeriod %v", pings, 8*period, period)
	}
	p.mustEcho(frame.OpText, []byte("alive"))
	// Stop answering.
	start := time.Now()
	code, _ := p.mustReadClose()
	elapsed := time.Since(start)
	if code != CloseInternalError {
		t.Errorf("client saw close %d, want 1011", code)
	}
	if elapsed < timeout-period || elapsed > timeout+2*period+200*time.Millisecond {
		t.Errorf("closed %v after the last pong, want about %v to %v", elapsed, timeout, timeout+period)
	}
	if err := p.waitEOF(ptWait); err != nil {
		t.Errorf("the server did not end the connection: %v", err)
	}
	p.nc.Close()
	got, errs := log.wait(t)
	if want := "open | message alive | error | close 1011 "; !strings.HasPrefix(got, want) {
		t.Errorf("callbacks:\n got %s\nwant %s…", got, want)
	}
	if len(errs) != 1 || !errors.Is(errs[0], ErrPongTimeout) {
		t.Errorf("OnError got %v, want ErrPongTimeout", errs)
	}
}

// Shutdown sends 1001 to the sessions of every kind on the poll engine,
// waits for them and stops Serve; then nothing is accepted.
func TestPollShutdown(t *testing.T) {
	ptLeakCheck(t)
	log := newPtLog()
	ends := make(chan ptEnd, 16)
	routes := func(srv *Server) http.Handler {
		mux := ptRoutes(log.events(ptEcho))(srv).(*http.ServeMux)
		mux.Handle("/echo-end", srv.WebSocket(func(s *Session) {
			ptEchoSession(s)
			ptPut(ends, ptEndOf(s))
		}))
		return mux
	}
	opts := ptOptions()
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln := ptListen(t, 0, 0)
	addr := ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, routes(srv)) }()
	var peers []*ptPeer
	for _, path := range []string{"/events", "/echo-end", "/raw", "/events", "/echo"} {
		p := ptDial(t, addr, path)
		p.mustEcho(frame.OpText, []byte("before"))
		peers = append(peers, p)
	}
	if n := srv.Sessions(); n != len(peers) {
		t.Fatalf("Sessions() = %d, want %d", n, len(peers))
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), ptWait)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	for i, p := range peers {
		code, reason := p.mustReadClose()
		if code != CloseGoingAway {
			t.Errorf("peer %d saw close %d %q, want 1001", i, code, reason)
		}
		p.mustWrite(ptCloseFrame(code, reason))
	}
	if err := ptAwait(t, shut, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := ptAwait(t, served, "Serve to return"); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
	if n := srv.Sessions(); n != 0 {
		t.Errorf("Sessions() = %d after Shutdown", n)
	}
	if e := ptAwait(t, ends, "the default session's end"); e.reason.Code != CloseGoingAway || e.err != nil {
		t.Errorf("default session ended with %v, %v; want 1001 and no error", e.reason, e.err)
	}
	for range 2 {
		if r := ptAwait(t, log.closed, "OnClose"); r.Code != CloseGoingAway {
			t.Errorf("OnClose got %v, want 1001", r)
		}
	}
	log.mu.Lock()
	if len(log.errs) != 0 {
		t.Errorf("OnError on a clean shutdown: %v", log.errs)
	}
	log.mu.Unlock()
	if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		nc.Close()
		t.Errorf("a connection was accepted after Shutdown")
	}
}

// An upgrade to an Events route that completes while Shutdown waits for
// other sessions must be refused or closed with 1001, without upsetting
// Shutdown's count. The scenario runs in a child process: the failure it
// looks for crashes the process.
func TestPollUpgradeDuringShutdown(t *testing.T) {
	if os.Getenv("WSKIT_POLL_CHILD") == t.Name() {
		ptUpgradeDuringShutdown(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "WSKIT_POLL_CHILD="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		// A refused session must not be uncounted when it ends: that takes
		// another session's count, Shutdown returns early, and the last
		// untrack panics with "sync: negative WaitGroup counter".
		t.Errorf("the scenario failed: %v\n%s", err, out)
	}
}

func ptUpgradeDuringShutdown(t *testing.T) {
	opts := ptOptions()
	opts.Timeout = time.Second
	log := newPtLog()
	ends := make(chan ptEnd, 1)
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln := ptListen(t, 0, 0)
	addr := ln.Addr().String()
	mux := ptRoutes(log.events(ptEcho))(srv).(*http.ServeMux)
	mux.Handle("/echo-end", srv.WebSocket(func(s *Session) {
		ptEchoSession(s)
		ptPut(ends, ptEndOf(s))
	}))
	go srv.Serve(ln, mux)
	// a's client will not answer the server's close: Shutdown waits for
	// its close timeout.
	a := ptDial(t, addr, "/echo-end")
	a.mustEcho(frame.OpText, []byte("x"))
	c := ptConnect(t, addr)
	time.Sleep(50 * time.Millisecond) // c is accepted
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	if code, _ := a.mustReadClose(); code != CloseGoingAway {
		t.Errorf("a saw close %d, want 1001", code)
	}
	// Shutdown has begun: c upgrades now.
	c.mustWrite([]byte(ptHead(addr, "/events")))
	resp, _, err := c.readResponse()
	if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
		code, reason := c.mustReadClose()
		if code != CloseGoingAway {
			t.Errorf("c saw close %d, want 1001", code)
		}
		c.mustWrite(ptCloseFrame(code, reason))
	}
	err = ptAwait(t, shut, "Shutdown")
	select {
	case <-ends:
	default:
		t.Errorf("Shutdown returned (%v) before the session it waited for ended", err)
	}
	if err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := srv.Sessions(); n != 0 {
		t.Errorf("Sessions() = %d after Shutdown", n)
	}
}

// With Workers, callbacks run off the loop, one at a time per connection
// and in order; without, on the loop.
func TestPollWorkersOrder(t *testing.T) {
	const count = 1000
	for _, workers := range []int{0, 4} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			ptLeakCheck(t)
			var (
				mu      sync.Mutex
				got     []int
				onLoop  []bool
				running atomic.Int32
				overlap atomic.Bool
			)
			enter := func() {
				if running.Add(1) > 1 {
					overlap.Store(true)
				}
				mu.Lock()
				onLoop = append(onLoop, ptOnLoop())
				mu.Unlock()
			}
			leave := func() { running.Add(-1) }
			closed := make(chan CloseReason, 1)
			ev := Events{
				OnOpen: func(s *Session) { enter(); leave() },
				OnMessage: func(s *Session, m Message) {
					enter()
					defer leave()
					n, err := strconv.Atoi(m.Text())
					if err != nil {
						t.Errorf("message %q", m.Payload)
					}
					mu.Lock()
					got = append(got, n)
					mu.Unlock()
					s.Send(m.Type, m.Payload)
				},
				OnClose: func(s *Session, r CloseReason) { enter(); leave(); ptPut(closed, r) },
			}
			opts := ptOptions()
			opts.Workers = workers
			_, addr := ptStart(t, opts, nil, ptRoutes(ev))
			p := ptDial(t, addr, "/events")
			var out []byte
			for i := range count {
				out = append(out, ptFrame(true, frame.OpText, []byte(strconv.Itoa(i)))...)
			}
			p.mustWrite(out)
			for i := range count {
				if err := p.expect(frame.OpText, []byte(strconv.Itoa(i))); err != nil {
					t.Fatalf("echo %d: %v", i, err)
				}
			}
			if err := p.closeHandshake(CloseNormal, ""); err != nil {
				t.Fatal(err)
			}
			ptAwait(t, closed, "OnClose")
			mu.Lock()
			defer mu.Unlock()
			for i, n := range got {
				if n != i {
					t.Fatalf("OnMessage %d got message %d", i, n)
				}
			}
			if len(got) != count {
				t.Errorf("OnMessage ran %d times, want %d", len(got), count)
			}
			if overlap.Load() {
				t.Errorf("callbacks of one connection overlapped")
			}
			for i, loop := range onLoop {
				if loop != (workers == 0) {
					t.Fatalf("callback %d on the loop: %v, want %v", i, loop, workers == 0)
				}
			}
		})
	}
}

// With Workers, a callback that blocks holds up its own connection only.
func TestPollWorkersBlockingCallback(t *testing.T) {
	ptLeakCheck(t)
	const nap = time.Second
	opts := ptOptions()
	opts.Loops = 1
	opts.Workers = 2
	ev := Events{OnMessage: func(s *Session, m Message) {
		if m.Text() == "sleep" {
			time.Sleep(nap)
		}
		s.Send(m.Type, m.Payload)
	}}
	_, addr := ptStart(t, opts, nil, ptRoutes(ev))
	a := ptDial(t, addr, "/events")
	b := ptDial(t, addr, "/events")
	start := time.Now()
	a.mustWrite(append(ptFrame(true, frame.OpText, []byte("sleep")), ptFrame(true, frame.OpText, []byte("after"))...))
	time.Sleep(20 * time.Millisecond)
	for i := range 20 {
		b.mustEcho(frame.OpText, []byte("b"+strconv.Itoa(i)))
	}
	if d := time.Since(start); d > nap/2 {
		t.Errorf("another connection's echoes took %v while a callback slept %v", d, nap)
	}
	for _, m := range []string{"sleep", "after"} {
		if err := a.expect(frame.OpText, []byte(m)); err != nil {
			t.Fatalf("a: %v", err)
		}
	}
	if d := time.Since(start); d < nap {
		t.Errorf("the sleeping callback answered after %v, want %v at least", d, nap)
	}
	for _, p := range []*ptPeer{a, b} {
		if err := p.closeHandshake(CloseNormal, ""); err != nil {
			t.Fatal(err)
		}
	}
}

// With Workers, a connection whose callbacks fall behind by IncomingQueue
// stops being read: the client's writes stall, and nothing is lost.
func TestPollWorkersPauseReading(t *testing.T) {
	ptLeakCheck(t)
	const count, size, incoming = 1000, 4 << 10, 16 << 10
	opts := ptOptions()
	opts.Workers = 1
	opts.IncomingQueue = incoming
	gate := make(chan struct{})
	var (
		mu       sync.Mutex
		got      []int
		maxBytes int
	)
	ev := Events{OnMessage: func(s *Session, m Message) {
		<-gate
		q := s.lc.jobs()
		q.mu.Lock()
		queued := q.bytes
		q.mu.Unlock()
		mu.Lock()
		got = append(got, int(binary.BigEndian.Uint32(m.Payload)))
		maxBytes = max(maxBytes, queued)
		mu.Unlock()
		if !bytes.Equal(m.Payload, ptPattern(got[len(got)-1], size)) {
			t.Errorf("message %d corrupted", got[len(got)-1])
		}
	}}
	_, addr := ptStart(t, opts, ptListen(t, 8<<10, 0), ptRoutes(ev))
	p := ptConnect(t, addr)
	p.nc.SetWriteBuffer(8 << 10)
	if err := p.upgrade(addr, "/events"); err != nil {
		t.Fatal(err)
	}
	var written atomic.Int64
	wrote := make(chan error, 1)
	go func() {
		for i := range count {
			p.nc.SetWriteDeadline(time.Now().Add(3 * ptWait))
			if _, err := p.nc.Write(ptFrame(true, frame.OpBinary, ptPattern(i, size))); err != nil {
				wrote <- fmt.Errorf("write %d: %w", i, err)
				return
			}
			written.Add(1)
		}
		wrote <- nil
	}()
	// Wait for the writes to stall.
	last, stable := int64(-1), 0
	for deadline := time.Now().Add(ptWait); stable < 3 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if n := written.Load(); n == last {
			stable++
		} else {
			last, stable = n, 0
		}
	}
	if last == count || stable < 3 {
		t.Errorf("the writes did not stall: %d of %d messages written", written.Load(), count)
	} else if last*size > 1<<20 {
		t.Errorf("%d bytes written before the stall, want far less", last*size)
	}
	close(gate)
	if err := ptAwait(t, wrote, "the writes"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(ptWait)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == count || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	for i, n := range got {
		if n != i {
			t.Fatalf("OnMessage %d got message %d", i, n)
		}
	}
	if len(got) != count {
		t.Errorf("%d messages delivered, want %d", len(got), count)
	}
	// One read of the loop's buffer may come in after the pause.
	if limit := incoming + 64<<10 + size; maxBytes > limit {
		t.Errorf("%d bytes queued for the worker, want at most %d", maxBytes, limit)
	}
	mu.Unlock()
	if err := p.closeHandshake(CloseNormal, ""); err != nil {
		t.Fatal(err)
	}
}

// ptEchoClient is a client that allocates nothing per echo: a masked frame
// built once, and a reused read buffer.
type ptEchoClient struct {
	nc   net.Conn
	out  []byte // the frame sent on every echo
	want []byte // the reply expected: header and payload
	buf  []byte
}

func newPtEchoClient(t *testing.T, addr string, payload []byte) *ptEchoClient {
	t.Helper()
	p := ptDial(t, addr, "/events")
	if p.br.Buffered() != 0 {
		t.Fatalf("%d bytes after the 101", p.br.Buffered())
	}
	want := frame.AppendHeader(nil, frame.Header{Fin: true, Op: frame.OpBinary, Length: int64(len(payload))})
	want = append(want, payload...)
	return &ptEchoClient{
		nc:   p.nc,
		out:  ptFrame(true, frame.OpBinary, payload),
		want: want,
		buf:  make([]byte, len(want)),
	}
}

func (c *ptEchoClient) echo() error {
	if _, err := c.nc.Write(c.out); err != nil {
		return err
	}
	if _, err := io.ReadFull(c.nc, c.buf); err != nil {
		return err
	}
	if !bytes.Equal(c.buf, c.want) {
		return errors.New("the echo differs from the message")
	}
	return nil
}

// An echo over an Events session on the poll engine allocates nothing in
// steady state, client included.
func TestPollEventsEchoZeroAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector allocates, and sync.Pool drops items under it")
	}
	opts := ptOptions()
	opts.Loops = 1
	_, addr := ptStart(t, opts, nil, ptRoutes(Events{}))
	for _, size := range []int{64, 16 << 10} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			c := newPtEchoClient(t, addr, ptPattern(1, size))
			ptZeroAllocs(t, fmt.Sprintf("echo of %d bytes", size), c.echo)
		})
	}
}

// ptZeroAllocs fails the test unless run, once warmed up, allocates nothing
// (client and server alike) or returns an error.
func ptZeroAllocs(t *testing.T, what string, run func() error) {
	t.Helper()
	var err error
	step := func() {
		if e := run(); e != nil && err == nil {
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
		t.Errorf("%.2f allocations per %s, want 0", allocs, what)
	}
}

// Plain requests on keep-alive connections go to net/http, whose deadlines
// on the handed-off connections run on the loops' timers.
func TestPollPlainKeepAlive(t *testing.T) {
	ptLeakCheck(t)
	_, addr := ptStart(t, ptOptions(), nil, ptRoutes(Events{}))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for c := range 8 {
		wg.Go(func() {
			p, err := ptConnectErr(addr)
			if err != nil {
				errs <- err
				return
			}
			defer p.nc.Close()
			for i := range 50 {
				name := fmt.Sprintf("%d-%d", c, i)
				if err := p.write([]byte("GET /hello?name=" + name + " HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
					errs <- err
					return
				}
				resp, body, err := p.readResponse()
				if err != nil || resp.StatusCode != 200 || string(body) != "hello "+name {
					errs <- fmt.Errorf("request %s: %v %q", name, err, body)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Keepalive on a default session of the poll engine, whose goroutine sets
// deadlines on the detached connection while the loop's timers fire: under
// the race detector, this checks that both sides share the timer safely.
func TestPollDefaultSessionKeepalive(t *testing.T) {
	ptLeakCheck(t)
	const period = 10 * time.Millisecond
	opts := ptOptions()
	opts.PingPeriod = period
	opts.Timeout = 500 * time.Millisecond
	_, addr := ptStart(t, opts, nil, ptRoutes(Events{}))
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		p := ptDial(t, addr, "/echo")
		wg.Go(func() {
			pings, echoes := 0, 0
			for end := time.Now().Add(50 * period); time.Now().Before(end); {
				if err := p.send(frame.OpBinary, []byte("e")); err != nil {
					errs <- err
					return
				}
				for {
					h, payload, err := p.readFrame()
					if err != nil {
						errs <- err
						return
					}
					if h.Op == frame.OpPing {
						pings++
						if err := p.write(ptFrame(true, frame.OpPong, payload)); err != nil {
							errs <- err
							return
						}
						continue
					}
					if h.Op != frame.OpBinary || string(payload) != "e" {
						errs <- fmt.Errorf("got %v %q", h.Op, payload)
						return
					}
					echoes++
					break
				}
				time.Sleep(period / 3)
			}
			if pings < 10 {
				errs <- fmt.Errorf("%d pings in %v with PingPeriod %v", pings, 50*period, period)
				return
			}
			errs <- p.closeHandshake(CloseNormal, "")
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
