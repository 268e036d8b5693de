package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/wsraw"
)

// An echo server under test, started once per benchmark and shared by its
// sizes.
type impl struct {
	name    string
	handler func(testing.TB) http.Handler
}

// impls are listed gorilla first so that benchstat -col /impl takes it as
// the base and reads every other column as "vs gorilla". gorilla is its
// fast path (gorillaEcho); gorillareadmessage and gorillacopy are the two
// echo loops its docs show, for reference. wskitraw is a diagnostic beside
// wskit: the same connection and codec without the default session's
// hand-off of each message from its read goroutine to the handler's.
var impls = []impl{
	{"gorilla", gorillaEcho},
	{"gorillareadmessage", gorillaReadMessageEcho},
	{"gorillacopy", gorillaCopyEcho},
	{"wskit", wskitEcho},
	{"wskitraw", wskitRawEcho},
}

// echoImpls returns the servers named in $BENCH_ECHO_IMPLS (separated by
// commas), in that order, or impls.
func echoImpls(tb testing.TB) []impl {
	s := os.Getenv("BENCH_ECHO_IMPLS")
	if s == "" {
		return impls
	}
	var out []impl
	for _, name := range strings.Split(s, ",") {
		i := slices.IndexFunc(impls, func(im impl) bool { return im.name == name })
		if i < 0 {
			tb.Fatalf("BENCH_ECHO_IMPLS: no server %q", name)
		}
		out = append(out, impls[i])
	}
	return out
}

type echoSize struct {
	name string
	n    int
}

var echoSizes = []echoSize{{"64B", 64}, {"1KiB", 1 << 10}, {"64KiB", 64 << 10}}

// newWskitServer returns a server with DefaultOptions that is shut down
// when the test or benchmark ends.
func newWskitServer(tb testing.TB) *wskit.Server {
	srv, err := wskit.NewServer(wskit.DefaultOptions())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Errorf("wskit Shutdown: %v", err)
		}
	})
	return srv
}

// wskitEcho is the echo server as a wskit user writes it: a default session
// with DefaultOptions, ranging over Messages and sending each one back.
func wskitEcho(tb testing.TB) http.Handler {
	return newWskitServer(tb).WebSocket(func(s *wskit.Session) {
		for m := range s.Messages() {
			if s.Send(m.Type, m.Payload) != nil {
				return
			}
		}
	})
}

// wskitRawEcho echoes on a raw session (wsraw): the handler reads frames on
// its own goroutine, with no read goroutine and no hand-off, and writes
// each data frame back as it came (the client sends whole messages as
// single frames).
func wskitRawEcho(tb testing.TB) http.Handler {
	return newWskitServer(tb).WebSocketRaw(func(s *wsraw.Session) {
		for f := range s.Frames() {
			if f.Op.IsControl() {
				return
			}
			if s.SendFrame(frame.Header{Fin: f.Fin, Op: f.Op}, f.Payload) != nil {
				return
			}
		}
	})
}

// gorillaServer upgrades each request with upgrader (default 4096-byte
// read and write buffers unless it sets others) and calls echo1 on the
// connection until it fails, then closes the connection.
func gorillaServer(upgrader *websocket.Upgrader, echo1 func(*websocket.Conn) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for echo1(c) == nil {
		}
	})
}

// gorillaReadBufs lends gorillaEcho the buffer each message is read into.
var gorillaReadBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// gorillaEcho is gorilla/websocket on its fast path, as the zoo's gorilla
// (internal/servers) runs it: NextReader read into a pooled buffer, then
// WriteMessage, whose server fast path writes one frame from the caller's
// slice without copying or allocating, and the Upgrader's WriteBufferPool
// (a connection holds a write buffer only while writing). No allocation
// per message once the pools hold buffers of the message's size.
func gorillaEcho(testing.TB) http.Handler {
	upgrader := &websocket.Upgrader{WriteBufferPool: &sync.Pool{}}
	return gorillaServer(upgrader, func(c *websocket.Conn) error {
		mt, r, err := c.NextReader()
		if err != nil {
			return err
		}
		buf := gorillaReadBufs.Get().(*bytes.Buffer)
		defer gorillaReadBufs.Put(buf)
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return err
		}
		return c.WriteMessage(mt, buf.Bytes())
	})
}

// gorillaReadMessageEcho is the echo server gorilla/websocket's package doc
// and examples/echo/server.go show: an Upgrader with default options and a
// ReadMessage/WriteMessage loop. ReadMessage reads the message with
// io.ReadAll, so it allocates a slice and grows it for every message.
func gorillaReadMessageEcho(testing.TB) http.Handler {
	return gorillaServer(&websocket.Upgrader{}, func(c *websocket.Conn) error {
		mt, p, err := c.ReadMessage()
		if err != nil {
			return err
		}
		return c.WriteMessage(mt, p)
	})
}

// gorillaCopyEcho is gorilla's streaming path, as its Autobahn server
// (examples/autobahn/server.go, echoCopyFull) does it: NextReader, NextWriter
// and io.Copy, which reads the payload straight into the write buffer
// (messageWriter.ReadFrom) instead of into a fresh slice. NextReader and
// NextWriter allocate their reader and writer; a message larger than the
// 4096-byte write buffer leaves as several frames.
func gorillaCopyEcho(testing.TB) http.Handler {
	return gorillaServer(&websocket.Upgrader{}, func(c *websocket.Conn) error {
		mt, r, err := c.NextReader()
		if err != nil {
			return err
		}
		w, err := c.NextWriter(mt)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, r); err != nil {
			return err
		}
		return w.Close()
	})
}

// startServer serves h on a loopback port under httptest and returns its
// host:port.
func startServer(tb testing.TB, h http.Handler) string {
	mux := http.NewServeMux()
	mux.Handle("GET /echo", h)
	ts := httptest.NewServer(mux)
	tb.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}

func payload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	return p
}

// dial connects a raw client and checks one echo.
func dial(tb testing.TB, addr string, size int) *rawClient {
	c, err := dialRaw(addr, "/echo", payload(size))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	if err := c.echo(true); err != nil {
		tb.Fatal(err)
	}
	return c
}

func reportMsgs(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkEcho echoes one message at a time over one loopback TCP
// connection (a closed loop): the client writes a frame and reads the whole
// reply before the next. B/op, allocs/op are the whole process's, and the
// client allocates nothing per echo (TestRawClientZeroAllocs), so they are
// the server's. MB/s counts the payload one way.
func BenchmarkEcho(b *testing.B) {
	for _, im := range echoImpls(b) {
		b.Run("impl="+im.name, func(b *testing.B) {
			addr := startServer(b, im.handler(b))
			for _, size := range echoSizes {
				b.Run("size="+size.name, func(b *testing.B) {
					c := dial(b, addr, size.n)
					b.SetBytes(int64(size.n))
					b.ReportAllocs()
					for b.Loop() {
						if err := c.echo(false); err != nil {
							b.Fatal(err)
						}
					}
					reportMsgs(b)
				})
			}
		})
	}
}

// BenchmarkEchoParallel runs the closed loop on several connections at once,
// each with its own client goroutine; b.N counts echoes over all of them.
// On a 2-core machine this measures how the servers share the cores among
// many connections (their goroutines, wake-ups and system calls) more than
// any single connection's latency.
func BenchmarkEchoParallel(b *testing.B) {
	const conns = 16
	for _, im := range echoImpls(b) {
		b.Run("impl="+im.name, func(b *testing.B) {
			addr := startServer(b, im.handler(b))
			for _, size := range echoSizes {
				b.Run("size="+size.name, func(b *testing.B) {
					clients := make([]*rawClient, conns)
					for i := range clients {
						clients[i] = dial(b, addr, size.n)
					}
					b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
						b.SetBytes(int64(size.n))
						b.ReportAllocs()
						var (
							next atomic.Int64
							wg   sync.WaitGroup
						)
						b.ResetTimer()
						for _, c := range clients {
							wg.Go(func() {
								for next.Add(1) <= int64(b.N) {
									if err := c.echo(false); err != nil {
										b.Error(err)
										return
									}
								}
							})
						}
						wg.Wait()
						b.StopTimer()
						reportMsgs(b)
					})
				})
			}
		})
	}
}
