//go:build linux

package wskit

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/bufpool"
	"github.com/wskit/wskit/internal/race"
	"github.com/wskit/wskit/wsraw"
)

// deflateContext bounds what the default permessage-deflate keeps for a
// connection with context takeover both ways: 12 KiB of our history and
// index and the peer's 13-bit window (20 KiB), with room for the pooled
// buffers of the message in hand.
const deflateContext = 64 << 10

// memKind is a session kind as the memory bound tells them apart.
type memKind struct {
	name    string
	engine  Engine
	path    string
	workers int
}

// The kinds, each with an echo (whose output a peer that never reads fills)
// and, where the handler can block, a stalled handler (which leaves the
// messages to the queue that waits for it) and a handler that pushes
// without reading (whose write is stuck while the peer's pings come).
var memKinds = []memKind{
	{"events/poll", EnginePoll, "/events", 0},
	{"events-workers/poll", EnginePoll, "/events", 2},
	{"events-workers-stalled/poll", EnginePoll, "/stalled-events", 2},
	{"events/std", EngineStd, "/events", 0},
	{"events-stalled/std", EngineStd, "/stalled-events", 0},
	{"default/poll", EnginePoll, "/echo", 0},
	{"default-stalled/poll", EnginePoll, "/stalled", 0},
	{"default/std", EngineStd, "/echo", 0},
	{"default-stalled/std", EngineStd, "/stalled", 0},
	{"default-pushing/poll", EnginePoll, "/push", 0},
	{"default-pushing/std", EngineStd, "/push", 0},
	{"raw/poll", EnginePoll, "/raw", 0},
	{"raw/std", EngineStd, "/raw", 0},
}

// memAttack is what a hostile peer sends on one connection that never reads.
type memAttack struct {
	name  string
	bytes func(m int) [][]byte // the writes, in order, for MaxMessageSize m
}

func memAttacks(t testing.TB) []memAttack {
	noise := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	repeat := func(f []byte, total int) []byte {
		b := make([]byte, 0, total+len(f))
		for len(b) < total {
			b = append(b, f...)
		}
		return b
	}
	return []memAttack{
		{"empty messages", func(m int) [][]byte {
			return [][]byte{repeat(ptFrame(true, frame.OpBinary, nil), 8<<20)}
		}},
		{"pings", func(m int) [][]byte {
			return [][]byte{repeat(ptFrame(true, frame.OpPing, []byte("p")), 8<<20)}
		}},
		{"large echoes, then an unfinished message", func(m int) [][]byte {
			out := [][]byte{}
			for range 8 {
				out = append(out, ptFrame(true, frame.OpBinary, noise(m/2)))
			}
			// A fragmented message one byte short of the limit, unfinished.
			out = append(out, ptFrame(false, frame.OpBinary, noise(m/2)), ptFrame(false, frame.OpContinuation, noise(m/2-1)))
			return out
		}},
		{"compressed bombs", func(m int) [][]byte {
			bomb := deflateMessage(t, make([]byte, m-1))
			h := frame.Header{Fin: true, Rsv: frame.RSV1, Op: frame.OpBinary, Masked: true, Mask: ptMask, Length: int64(len(bomb))}
			f := ptFrameHeader(h, bomb)
			return [][]byte{repeat(f, 64*len(f))}
		}},
	}
}

// memRoutes echo on every kind: what a peer sends comes back, and a peer
// that does not read fills the output.
func memRoutes(srv *Server) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/events", srv.WebSocketEvents(Events{OnMessage: ptEcho, OnClose: memEnded}))
	mux.Handle("/stalled-events", srv.WebSocketEvents(Events{OnMessage: func(s *Session, m Message) { <-s.Done() }, OnClose: memEnded}))
	mux.Handle("/push", srv.WebSocket(func(s *Session) {
		p := make([]byte, 64<<10)
		for s.SendBinary(p) == nil {
		}
	}))
	mux.Handle("/stalled", srv.WebSocket(func(s *Session) {
		s.Receive(context.Background())
		<-s.Done()
	}))
	mux.Handle("/echo", srv.WebSocket(ptEchoSession))
	mux.Handle("/raw", srv.WebSocketRaw(func(s *wsraw.Session) {
		for f := range s.Frames() {
			if f.Op.IsData() && s.SendFrame(frame.Header{Fin: f.Fin, Op: f.Op}, f.Payload) != nil {
				return
			}
		}
	}))
	return mux
}

func TestMemoryBound(t *testing.T) {
	if race.Enabled || testing.Short() {
		t.Skip("measures the heap")
	}
	const conns = 4
	for _, k := range memKinds {
		for _, a := range memAttacks(t) {
			t.Run(k.name+"/"+a.name, func(t *testing.T) {
				opts := ptOptions()
				opts.Engine, opts.Workers = k.engine, k.workers
				opts.Timeout = -1 // the server never gives up on the peer
				opts.MaxFrameSize, opts.MaxMessageSize = 1<<20, 1<<20
				opts.IncomingQueue, opts.MaxQueue = 1<<20, 1<<20
				opts.Extensions = []codec.Extension{&codec.PerMessageDeflate{}}
				m := int(opts.MaxMessageSize)
				ln := ptListen(t, 0, 4096)
				srv, addr := ptStart(t, opts, ln, memRoutes)
				writes := a.bytes(m)
				memEnds.Lock()
				memEnds.reasons = nil
				memEnds.Unlock()
				base := heapInUse()
				var wg sync.WaitGroup
				var peers []*ptPeer
				for range conns {
					p := ptConnect(t, addr)
					peers = append(peers, p)
					p.nc.SetReadBuffer(4096)
					p.nc.SetWriteBuffer(4096)
					if err := p.upgrade(addr, k.path, offerDeflate); err != nil {
						t.Fatal(err)
					}
					wg.Go(func() {
						for _, w := range writes {
							p.nc.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
							if _, err := p.nc.Write(w); err != nil {
								return // pushed back
							}
						}
					})
				}
				wg.Wait()
				held := heapInUse() - base
				live := srv.Sessions()
				runtime.KeepAlive(writes)
				for _, p := range peers {
					p.reset()
				}
				bound := memBound(k, opts, deflateContext)
				t.Logf("%s: %.0f KiB per connection; bound %.0f KiB", a.name, float64(held)/conns/1024, float64(bound)/1024)
				if live != conns {
					memEnds.Lock()
					t.Errorf("%d sessions live when measured, want %d: the attack must not end them; Events sessions that ended: %q", live, conns, memEnds.reasons)
					memEnds.Unlock()
				}
				if held > conns*bound {
					t.Errorf("%s held %d bytes per connection, more than the bound of %d", k.name, held/conns, bound)
				}
			})
		}
	}
}

// memEnds records why Events sessions ended, for a failure to show.
var memEnds struct {
	sync.Mutex
	reasons []string
}

func memEnded(s *Session, r CloseReason) {
	memEnds.Lock()
	memEnds.reasons = append(memEnds.reasons, fmt.Sprintf("%v (%v)", r, s.Err()))
	memEnds.Unlock()
}

// memBound is the most one connection of kind k can make a server with
// opts hold, as docs/limits.md's table gives it (without goroutine
// stacks): d is what the negotiated compression keeps.
func memBound(k memKind, opts Options, d int64) int64 {
	c := func(n int64) int64 { return int64(bufpool.Cap(int(n))) }
	m := c(opts.MaxMessageSize)
	q, o, r := int64(opts.IncomingQueue), int64(opts.MaxQueue), int64(opts.ReadBufferSize)
	const state = 4 << 10 // the session, its protocol and connection
	switch {
	case k.path == "/raw":
		return state + r + m + 2*(o+m)
	case k.engine == EnginePoll && strings.HasSuffix(k.path, "events"):
		// One message read (compressed, then inflated); output up to
		// MaxQueue and one message, replies until reading pauses, one read.
		b := state + 2*m + o + m + 256<<10 + 64<<10 + d
		if k.workers > 0 {
			b += q + m + 64<<10 // the workers' queue, one past it, a read held back
		}
		return b
	default:
		// The read buffer; the message the handler holds, one queued past
		// IncomingQueue, one being read (compressed and inflated); output
		// being written and queued behind it.
		return state + r + 4*m + q + 2*(o+m) + d
	}
}

// TestClientMemoryBound is TestMemoryBound for a client session whose
// application does not receive, against a hostile server.
func TestClientMemoryBound(t *testing.T) {
	if race.Enabled || testing.Short() {
		t.Skip("measures the heap")
	}
	const conns = 4
	opts := ptOptions()
	opts.Timeout = -1
	opts.MaxFrameSize, opts.MaxMessageSize = 1<<20, 1<<20
	opts.IncomingQueue, opts.MaxQueue = 1<<20, 1<<20
	opts.Extensions = []codec.Extension{&codec.PerMessageDeflate{}}
	m := int(opts.MaxMessageSize)
	server := func(f []byte) []byte { // the unmasked form of a client frame
		h, n, err := frame.ParseHeader(f)
		if err != nil || n == 0 {
			t.Fatalf("test frame: %v", err)
		}
		p := append([]byte(nil), f[n:]...)
		frame.Mask(p, h.Mask, 0)
		h.Masked = false
		return ptFrameHeader(h, p)
	}
	for _, a := range memAttacks(t) {
		t.Run(a.name, func(t *testing.T) {
			var writes [][]byte
			for _, w := range a.bytes(m) {
				var out []byte
				for len(w) > 0 { // the writes are runs of whole frames
					h, n, _ := frame.ParseHeader(w)
					size := n + int(h.Length)
					out = append(out, server(w[:size])...)
					w = w[size:]
				}
				writes = append(writes, out)
			}
			ln := ptListen(t, 4096, 4096)
			defer ln.Close()
			go func() {
				for {
					nc, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						defer nc.Close()
						req, err := http.ReadRequest(bufio.NewReader(nc))
						if err != nil {
							return
						}
						accept := string(acceptKey(nil, req.Header.Get("Sec-WebSocket-Key")))
						fmt.Fprintf(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n", accept)
						for _, w := range writes {
							nc.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
							if _, err := nc.Write(w); err != nil {
								break
							}
						}
						io.Copy(io.Discard, nc) // until the client goes
					}()
				}
			}()
			base := heapInUse()
			var sessions []*Session
			for range conns {
				ctx, cancel := context.WithTimeout(context.Background(), ptWait)
				s, err := Dial(ctx, "ws://"+ln.Addr().String()+"/", &DialOptions{Options: opts})
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				sessions = append(sessions, s)
			}
			time.Sleep(500 * time.Millisecond) // the server's writes stop
			held := heapInUse() - base
			runtime.KeepAlive(writes)
			bound := memBound(memKind{path: "/stalled"}, opts, deflateContext)
			t.Logf("%s: %.0f KiB per connection; bound %.0f KiB", a.name, float64(held)/conns/1024, float64(bound)/1024)
			for _, s := range sessions {
				if _, ok := s.CloseReason(); ok {
					t.Errorf("the attack ended a session: %v", s.Err())
				}
				s.out().Abort()
				s.Close(CloseNormal, "")
			}
			if held > conns*bound {
				t.Errorf("a client held %d bytes per connection, more than the bound of %d", held/conns, bound)
			}
		})
	}
}
