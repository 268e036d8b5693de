package wskit_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wskit/wskit"
)

// A peer that stops reading makes SendContext return its context's error:
// cut while writing, the session then ends with 1006 and that error; while
// waiting for room in the queue, the session goes on. On the server's
// default sessions of both engines and on a client.
func TestSendContext(t *testing.T) {
	checkGoroutines(t)
	type result struct {
		err  error
		took time.Duration
		end  ended
	}
	results := make(chan result, 1)
	// fill sends until a send does not return within its context's
	// deadline, which a stuck peer makes happen once the socket buffers
	// are full.
	fill := func(s *wskit.Session) result {
		p := make([]byte, 256<<10)
		for i := 0; i < 4096; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			start := time.Now()
			err := s.SendContext(ctx, wskit.Binary, p)
			cancel()
			if err != nil {
				<-s.Done()
				return result{err, time.Since(start), endOf(s)}
			}
		}
		return result{err: errors.New("1 GiB went to a peer that does not read")}
	}
	check := func(t *testing.T, r result) {
		t.Helper()
		if !errors.Is(r.err, context.DeadlineExceeded) {
			t.Fatalf("SendContext to a stuck peer = %v, want context.DeadlineExceeded", r.err)
		}
		if r.took > 2*time.Second {
			t.Errorf("SendContext returned after %v, past its 200ms deadline", r.took)
		}
		if r.end.reason.Code != wskit.CloseAbnormal || !errors.Is(r.end.err, context.DeadlineExceeded) {
			t.Errorf("the session ended with %v, %v; want 1006 and context.DeadlineExceeded", r.end.reason, r.end.err)
		}
	}
	routes := func(srv *wskit.Server) http.Handler {
		return srv.WebSocket(func(s *wskit.Session) { results <- fill(s) })
	}
	opts := testOptions()
	opts.Timeout = time.Minute // the context, not Timeout, must end the send
	for _, tg := range eachEngine(t, opts, routes) {
		t.Run(tg.name+"/server", func(t *testing.T) {
			dialRaw(t, tg.url, 4096) // never reads
			check(t, await(t, results, "the server's sends to give up"))
		})
	}
	t.Run("client", func(t *testing.T) {
		url := stuckServer(t)
		o := testOptions()
		o.Timeout = time.Minute
		s := dial(t, url, &wskit.DialOptions{Options: o})
		done := make(chan result, 1)
		go func() { done <- fill(s) }()
		check(t, await(t, done, "the client's sends to give up"))
	})
}

// A send that waits for room in the queue behind a stuck write gives up
// when its context ends, sending nothing, and the session goes on.
func TestSendContextQueueWait(t *testing.T) {
	checkGoroutines(t)
	type result struct {
		err  error
		open bool
	}
	results := make(chan result, 1)
	routes := func(srv *wskit.Server) http.Handler {
		return srv.WebSocket(func(s *wskit.Session) {
			p := make([]byte, 1<<20)
			var sent atomic.Int64
			go func() { // stuck writing, until the session ends
				for s.SendBinary(p) == nil {
					sent.Add(1)
				}
			}()
			// Once the sends stop returning, the writer is stuck, and a
			// send finds the queue behind it.
			for last := int64(-1); sent.Load() != last; time.Sleep(200 * time.Millisecond) {
				last = sent.Load()
			}
			var err error
			for err == nil { // until a send has to wait for room
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				err = s.SendContext(ctx, wskit.Binary, p[:1000])
				cancel()
			}
			_, ended := s.CloseReason()
			results <- result{err, !ended}
			s.CloseNow()
		})
	}
	opts := testOptions()
	opts.Timeout = time.Minute
	opts.MaxQueue = 64 << 10
	for _, tg := range eachEngine(t, opts, routes) {
		t.Run(tg.name, func(t *testing.T) {
			dialRaw(t, tg.url, 4096)
			r := await(t, results, "a send to wait in vain")
			if !errors.Is(r.err, context.DeadlineExceeded) || !r.open {
				t.Errorf("SendContext waiting for room = %v, session open %v; want context.DeadlineExceeded and open", r.err, r.open)
			}
		})
	}
}

// stuckServer accepts one WebSocket connection and never reads from it. It
// returns its ws:// URL.
func stuckServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { nc.Close() })
		nc.(*net.TCPConn).SetReadBuffer(4096)
		req, err := http.ReadRequest(bufio.NewReader(nc))
		if err != nil {
			return
		}
		fmt.Fprintf(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acceptFor(req.Header.Get("Sec-WebSocket-Key")))
	}()
	return "ws://" + ln.Addr().String()
}
