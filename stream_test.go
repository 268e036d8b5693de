package wskit_test

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/internal/race"
)

// streamEcho reads each message with Reader and sends it back with
// Writer, as it comes, until the session ends.
func streamEcho(s *wskit.Session) {
	ctx := context.Background()
	for {
		typ, r, err := s.Reader(ctx)
		if err != nil {
			return
		}
		w, err := s.Writer(ctx, typ)
		if err != nil {
			return
		}
		_, err = io.Copy(w, r)
		if cerr := w.Close(); err != nil || cerr != nil {
			return
		}
	}
}

// Messages streamed with Writer come back through Reader intact, whatever
// their size, with Sends and pings between them: on the server's sessions
// of both engines and on a client.
func TestStreamEcho(t *testing.T) {
	checkGoroutines(t)
	routes := func(srv *wskit.Server) http.Handler { return srv.WebSocket(streamEcho) }
	sizes := []int{0, 5, 32 << 10, 32<<10 + 1, 1 << 20}
	for _, tg := range eachEngine(t, testOptions(), routes) {
		t.Run(tg.name, func(t *testing.T) {
			s := dial(t, tg.url, nil)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			for i, n := range sizes {
				typ := wskit.Binary
				if i%2 == 1 {
					typ = wskit.Text
				}
				want := []byte(strings.Repeat("é0123456789", n/12+1))[:n]
				if typ == wskit.Text {
					want = []byte(strings.ToValidUTF8(string(want), ""))
				}
				w, err := s.Writer(ctx, typ)
				if err != nil {
					t.Fatal(err)
				}
				// Written in odd pieces, with a ping on the way.
				for off := 0; off < len(want); {
					k := min(len(want)-off, 7000+off%5)
					if _, err := w.Write(want[off : off+k]); err != nil {
						t.Fatal(err)
					}
					off += k
				}
				if _, err := s.Ping(ctx); err != nil {
					t.Fatalf("Ping while a Writer is open: %v", err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				gotType, r, err := s.Reader(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				if err != nil || gotType != typ || !bytes.Equal(got, want) {
					t.Fatalf("message %d (%d bytes, %v) came back as %d bytes, %v, %v", i, n, typ, len(got), gotType, err)
				}
			}
			// A Receive after a Reader left unread drops the rest.
			w, _ := s.Writer(ctx, wskit.Binary)
			w.Write(make([]byte, 100<<10))
			w.Close()
			s.SendText("after")
			if _, _, err := s.Reader(ctx); err != nil {
				t.Fatal(err)
			}
			if m := receive(t, s); m.Text() != "after" {
				t.Fatalf("after a message left unread, Receive = %q, want after", m.Payload)
			}
		})
	}
}

// Sends from other goroutines and a Hub's messages wait for an open
// Writer's message to end, and do not cut into it.
func TestStreamWriterHoldsSends(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	s := dial(t, serve(t, echoRoutes(srv))+"/echo", nil)
	ctx := context.Background()
	w, err := s.Writer(ctx, wskit.Binary)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := wskit.NewHub(wskit.HubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.Subscribe(s); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("first "))
	if err := hub.PublishText(ctx, "from the hub"); err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() { sent <- s.SendText("second") }()
	select {
	case err := <-sent:
		t.Fatalf("SendText returned (%v) while a Writer was open", err)
	case <-time.After(50 * time.Millisecond):
	}
	w.Write([]byte("part"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := await(t, sent, "SendText to go after Close"); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, s); m.Text() != "first part" {
		t.Errorf("first message %q, want %q", m.Payload, "first part")
	}
	// The hub's message and the send went after it, in either order.
	got := map[string]bool{receive(t, s).Text(): true, receive(t, s).Text(): true}
	if !got["second"] || !got["from the hub"] {
		t.Errorf("then %v, want second and from the hub", got)
	}
}

// Reader enforces MaxMessageSize as the message streams in: the Read that
// crosses it fails and the session ends with 1009.
func TestStreamReaderLimit(t *testing.T) {
	checkGoroutines(t)
	type result struct {
		n   int64
		err error
		end ended
	}
	results := make(chan result, 1)
	routes := func(srv *wskit.Server) http.Handler {
		return srv.WebSocket(func(s *wskit.Session) {
			_, r, err := s.Reader(context.Background())
			var n int64
			if err == nil {
				n, err = io.Copy(io.Discard, r)
			}
			<-s.Done()
			results <- result{n, err, endOf(s)}
		})
	}
	o := testOptions()
	o.MaxMessageSize = 100 << 10
	for _, tg := range eachEngine(t, o, routes) {
		t.Run(tg.name, func(t *testing.T) {
			s := dial(t, tg.url, nil)
			w, err := s.Writer(context.Background(), wskit.Binary)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(make([]byte, 200<<10))
			w.Close()
			r := await(t, results, "the server's Read to fail")
			if r.err == nil || r.n > 100<<10 || r.end.reason.Code != wskit.CloseMessageTooBig {
				t.Errorf("read %d bytes, %v; session ended with %v; want an error by 100 KiB and 1009", r.n, r.err, r.end.reason)
			}
		})
	}
}

// A 1 GiB message with MaxMessageSize 2 GiB streams through Writer and
// Reader in little memory: the heap, sampled while it runs, stays under
// 64 MiB, on both engines and in both directions.
func TestStreamLargeMessageFlatMemory(t *testing.T) {
	if testing.Short() || race.Enabled {
		t.Skip("moves 1 GiB per engine")
	}
	checkGoroutines(t)
	const size = 1 << 30
	type result struct {
		n   int64
		sum uint32
		err error
	}
	results := make(chan result, 1)
	routes := func(srv *wskit.Server) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/read", srv.WebSocket(func(s *wskit.Session) {
			_, r, err := s.Reader(context.Background())
			if err != nil {
				results <- result{err: err}
				return
			}
			h := crc32.NewIEEE()
			n, err := io.Copy(h, r)
			results <- result{n, h.Sum32(), err}
		}))
		mux.Handle("/write", srv.WebSocket(func(s *wskit.Session) {
			w, err := s.Writer(context.Background(), wskit.Binary)
			if err == nil {
				_, err = io.Copy(w, io.LimitReader(&pattern{}, size))
				if cerr := w.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				results <- result{err: err}
			}
			s.Receive(context.Background()) // until the client closes
		}))
		return mux
	}
	o := testOptions()
	o.MaxMessageSize = 2 << 30
	want := crc32.ChecksumIEEE(nil)
	{
		h := crc32.NewIEEE()
		io.Copy(h, io.LimitReader(&pattern{}, size))
		want = h.Sum32()
	}
	for _, tg := range eachEngine(t, o, routes) {
		t.Run(tg.name+"/client writes", func(t *testing.T) {
			s := dial(t, tg.url+"/read", &wskit.DialOptions{Options: o})
			peak := sampleHeap(t)
			w, err := s.Writer(context.Background(), wskit.Binary)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(w, io.LimitReader(&pattern{}, size)); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			r := wstestAwait(t, results, "the server to read 1 GiB")
			checkLarge(t, r.n, r.sum, r.err, want, peak())
		})
		t.Run(tg.name+"/client reads", func(t *testing.T) {
			s := dial(t, tg.url+"/write", &wskit.DialOptions{Options: o})
			peak := sampleHeap(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, r, err := s.Reader(ctx)
			if err != nil {
				t.Fatal(err)
			}
			h := crc32.NewIEEE()
			n, err := io.Copy(h, r)
			checkLarge(t, n, h.Sum32(), err, want, peak())
			select {
			case r := <-results:
				t.Fatalf("the server's Writer: %v", r.err)
			default:
			}
		})
	}
}

func checkLarge(t *testing.T, n int64, sum uint32, err error, want uint32, peak uint64) {
	t.Helper()
	if err != nil || n != 1<<30 || sum != want {
		t.Fatalf("read %d bytes (crc %08x), %v; want 1 GiB (crc %08x)", n, sum, err, want)
	}
	t.Logf("peak heap in use above the start: %d MiB", peak>>20)
	if peak > 64<<20 {
		t.Errorf("the heap grew by %d MiB while 1 GiB streamed, want under 64 MiB", peak>>20)
	}
}

// wstestAwait is await with a bound long enough to move 1 GiB.
func wstestAwait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(time.Minute):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// sampleHeap samples HeapInuse every 5 ms until the returned function is
// called, which returns the highest sample above the first.
func sampleHeap(t *testing.T) func() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > base && ms.HeapInuse-base > peak.Load() {
				peak.Store(ms.HeapInuse - base)
			}
		}
	}()
	var once sync.Once
	done := func() uint64 {
		once.Do(func() { close(stop); wg.Wait() })
		return peak.Load()
	}
	t.Cleanup(func() { done() })
	return done
}

// pattern reads as an endless run of bytes that depend on their offset,
// with a period far above a fragment's, so that a fragment dropped or
// repeated shows in the checksum.
type pattern struct{ off int64 }

func (r *pattern) Read(p []byte) (int, error) {
	for i := range p {
		x := r.off + int64(i)
		p[i] = byte(x ^ x>>15 ^ x>>23)
	}
	r.off += int64(len(p))
	return len(p), nil
}

// A Reader called while the session's own goroutine reads (the handler has
// not received for longer than the grace period) takes the read side over
// and still streams: the message is not joined whole.
func TestStreamReaderTakesOver(t *testing.T) {
	checkGoroutines(t)
	size := int64(256 << 20)
	if race.Enabled {
		size = 1 << 20
	}
	routes := func(srv *wskit.Server) http.Handler {
		return srv.WebSocket(func(s *wskit.Session) {
			if m, err := s.Receive(context.Background()); err != nil || m.Text() != "go" {
				return
			}
			w, err := s.Writer(context.Background(), wskit.Binary)
			if err != nil {
				return
			}
			io.Copy(w, io.LimitReader(&pattern{}, size))
			w.Close()
			s.Receive(context.Background())
		})
	}
	h := crc32.NewIEEE()
	io.Copy(h, io.LimitReader(&pattern{}, size))
	want := h.Sum32()
	o := testOptions()
	o.MaxMessageSize = 1 << 30
	for _, tg := range eachEngine(t, o, routes) {
		t.Run(tg.name, func(t *testing.T) {
			s := dial(t, tg.url, &wskit.DialOptions{Options: o})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := s.Ping(ctx); err != nil { // the session's goroutine reads the pong
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // past the grace period
			peak := sampleHeap(t)
			go func() {
				// Once Reader waits: a message that began to arrive
				// before would come whole.
				time.Sleep(50 * time.Millisecond)
				s.SendText("go")
			}()
			_, r, err := s.Reader(ctx)
			if err != nil {
				t.Fatal(err)
			}
			h := crc32.NewIEEE()
			n, err := io.Copy(h, r)
			if err != nil || n != size || h.Sum32() != want {
				t.Fatalf("read %d bytes (crc %08x), %v; want %d (crc %08x)", n, h.Sum32(), err, size, want)
			}
			if p := peak(); !race.Enabled && p > 64<<20 {
				t.Errorf("the heap grew by %d MiB while %d MiB streamed, want under 64 MiB", p>>20, size>>20)
			}
		})
	}
}

// An Events session on the poll engine's loop neither streams out nor
// receives: Writer and Reader say so instead of blocking the loop.
func TestStreamOnLoopRefused(t *testing.T) {
	checkGoroutines(t)
	type result struct{ werr, rerr error }
	results := make(chan result, 2)
	routes := func(srv *wskit.Server) http.Handler {
		return srv.WebSocketEvents(wskit.Events{OnOpen: func(s *wskit.Session) {
			if s.Engine() != wskit.EnginePoll {
				results <- result{}
				return
			}
			_, werr := s.Writer(context.Background(), wskit.Binary)
			_, _, rerr := s.Reader(context.Background())
			results <- result{werr, rerr}
		}})
	}
	for _, tg := range eachEngine(t, testOptions(), routes) {
		t.Run(tg.name, func(t *testing.T) {
			dial(t, tg.url, nil)
			r := await(t, results, "OnOpen")
			if tg.name == "poll" && (r.werr == nil || !errors.Is(r.rerr, wskit.ErrNotReceiving)) {
				t.Errorf("on the loop, Writer = %v and Reader = %v; want an error and ErrNotReceiving", r.werr, r.rerr)
			}
		})
	}
}

// Close while a streamed message is half read: the session's goroutine
// reads on past it to the peer's answer, and the reader says the rest was
// dropped. On a client, against a server on each engine.
func TestStreamCloseWhileReading(t *testing.T) {
	checkGoroutines(t)
	routes := func(srv *wskit.Server) http.Handler {
		return srv.WebSocket(func(s *wskit.Session) {
			w, err := s.Writer(context.Background(), wskit.Binary)
			if err != nil {
				return
			}
			p := make([]byte, 1000)
			for w.Write(p); ; w.Write(p) { // until the client's close ends the session
				select {
				case <-s.Done():
					w.Close()
					return
				case <-time.After(time.Millisecond):
				}
			}
		})
	}
	for _, tg := range eachEngine(t, testOptions(), routes) {
		t.Run(tg.name, func(t *testing.T) {
			s := dial(t, tg.url, nil)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_, r, err := s.Reader(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(r, make([]byte, 100<<10)); err != nil {
				t.Fatal(err)
			}
			closed := make(chan error, 1)
			go func() { closed <- s.Close(4000, "enough") }()
			if err := await(t, closed, "Close while a message is half read"); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if e := endOf(s); e.reason.Code != 4000 {
				t.Errorf("the session ended with %v, want 4000", e.reason)
			}
			if _, err := io.Copy(io.Discard, r); !errors.Is(err, wskit.ErrMessageDropped) {
				t.Errorf("reading on after Close = %v, want ErrMessageDropped", err)
			}
		})
	}
}

// An Events callback that calls Receive, Reader or Messages is told the
// messages are its own, on both engines: on the std engine the call used
// to wait for itself, the callback's goroutine being the one that reads.
func TestEventsReceiveRefused(t *testing.T) {
	checkGoroutines(t)
	type result struct {
		rerr, serr error
		yielded    bool
	}
	results := make(chan result, 2)
	routes := func(srv *wskit.Server) http.Handler {
		return srv.WebSocketEvents(wskit.Events{OnMessage: func(s *wskit.Session, m wskit.Message) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			var r result
			_, r.rerr = s.Receive(ctx)
			_, _, r.serr = s.Reader(ctx)
			for range s.Messages() {
				r.yielded = true
			}
			results <- r
			s.Send(m.Type, m.Payload)
		}})
	}
	for _, tg := range eachEngine(t, testOptions(), routes) {
		t.Run(tg.name, func(t *testing.T) {
			c := dial(t, tg.url, nil)
			if err := c.SendText("hi"); err != nil {
				t.Fatal(err)
			}
			r := await(t, results, "OnMessage")
			if !errors.Is(r.rerr, wskit.ErrNotReceiving) || !errors.Is(r.serr, wskit.ErrNotReceiving) || r.yielded {
				t.Errorf("in OnMessage: Receive %v, Reader %v, Messages yielded %v; want ErrNotReceiving twice and nothing", r.rerr, r.serr, r.yielded)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if m, err := c.Receive(ctx); err != nil || m.Text() != "hi" {
				t.Errorf("echo: %q, %v", m.Text(), err)
			}
		})
	}
}
