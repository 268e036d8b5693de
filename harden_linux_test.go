//go:build linux

package wskit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/race"
	"github.com/wskit/wskit/internal/wstest"
)

// ptVariants are the ways an Events route runs: std, poll on the loop,
// poll with workers.
var ptVariants = []struct {
	name    string
	engine  Engine
	workers int
}{{"std", EngineStd, 0}, {"poll", EnginePoll, 0}, {"poll-workers", EnginePoll, 2}}

// ptEachVariant runs f with options for each variant.
func ptEachVariant(t *testing.T, f func(t *testing.T, opts Options)) {
	for _, v := range ptVariants {
		t.Run(v.name, func(t *testing.T) {
			opts := ptOptions()
			opts.Engine, opts.Workers = v.engine, v.workers
			f(t, opts)
		})
	}
}

// TestCloseWhileSendingChaos closes Events sessions from one goroutine
// while eight others send on them: the loop's end of the session must not
// race with the closing goroutine (run it under -race).
func TestCloseWhileSendingChaos(t *testing.T) {
	ptEachVariant(t, func(t *testing.T, opts Options) {
		ptLeakCheck(t)
		var wg sync.WaitGroup
		var start atomic.Pointer[chan struct{}]
		opened := make(chan struct{}, 1)
		ev := Events{OnOpen: func(s *Session) {
			start := *start.Load()
			wg.Add(9) // before the test's Wait, which waits for opened
			opened <- struct{}{}
			for range 8 {
				go func() {
					defer wg.Done()
					for s.SendText("chaos") == nil {
					}
				}()
			}
			go func() {
				defer wg.Done()
				<-start
				s.Close(4000, "chaos")
			}()
		}}
		_, addr := ptStart(t, opts, nil, func(srv *Server) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("/chaos", srv.WebSocketEvents(ev))
			return mux
		})
		for i := range 60 {
			ch := make(chan struct{})
			start.Store(&ch)
			p := ptDial(t, addr, "/chaos")
			ptAwait(t, opened, "OnOpen")
			if i%2 == 0 {
				// The peer vanishes while the session is being closed.
				close(ch)
				p.reset()
				continue
			}
			close(ch)
			code, _, err := p.readClose()
			if err != nil {
				t.Fatal(err)
			}
			if code != 4000 {
				t.Fatalf("close code %d, want 4000", code)
			}
			p.write(ptCloseFrame(4000, ""))
			p.waitEOF(ptWait)
			p.nc.Close()
		}
		wg.Wait()
	})
}

// panicExt is an extension that panics in the method named by where.
type panicExt struct{ where string }

func (e *panicExt) boom(method string) {
	if e.where == method {
		panic("boom in " + method)
	}
}

func (e *panicExt) Name() string { return "x-panic" }
func (e *panicExt) Rsv() byte    { return frame.RSV2 }
func (e *panicExt) Offer() []codec.ExtensionOffer {
	e.boom("Offer")
	return []codec.ExtensionOffer{{Name: e.Name()}}
}
func (e *panicExt) Accept(offers []codec.ExtensionOffer) (codec.ExtensionOffer, codec.Transform, bool) {
	e.boom("Accept")
	return codec.ExtensionOffer{Name: e.Name()}, &panicTransform{e}, true
}
func (e *panicExt) Confirm(codec.ExtensionOffer) (codec.Transform, error) {
	e.boom("Confirm")
	return &panicTransform{e}, nil
}

type panicTransform struct{ e *panicExt }

func (t *panicTransform) Encode(buf *[]byte, op frame.Opcode, p []byte) ([]byte, byte, error) {
	t.e.boom("Encode")
	return p, frame.RSV2, nil // marked, so that the peer's Decode runs
}

func (t *panicTransform) Decode(buf *[]byte, op frame.Opcode, rsv byte, p []byte, limit int64) ([]byte, error) {
	t.e.boom("Decode")
	return p, nil
}

func (t *panicTransform) Release() { t.e.boom("Release") }

// panicConverter panics in Marshal.
type panicConverter struct{ JSON }

func (panicConverter) Marshal(any) (MessageType, []byte, error) { panic("boom in Marshal") }

// TestHookPanics makes each hook of the application panic in turn: the
// upgrade is refused with 500, or the session closes with 1011; the panic
// is logged, and a session beside it goes on as if nothing happened.
func TestHookPanics(t *testing.T) {
	type outcome int
	const (
		refused outcome = iota // 500
		closed                 // 1011
		clean                  // the session goes on
	)
	hooks := []struct {
		where string
		want  outcome
	}{
		{"CheckOrigin", refused}, {"Accept", refused}, {"Decode", closed},
		{"Encode", closed}, {"Release", clean}, {"Marshal", clean},
	}
	ptEachVariant(t, func(t *testing.T, opts Options) {
		for _, hook := range hooks {
			for _, path := range []string{"/events", "/echo"} {
				t.Run(hook.where+path, func(t *testing.T) {
					ptLeakCheck(t)
					logs := &wstest.SyncBuffer{}
					o := opts
					o.Logger = slog.New(slog.NewTextHandler(logs, nil))
					ext := &panicExt{where: hook.where}
					o.Extensions = []codec.Extension{ext}
					if hook.where == "CheckOrigin" {
						o.CheckOrigin = func(r *http.Request) bool {
							if r.URL.Query().Has("boom") {
								panic("boom in CheckOrigin")
							}
							return true
						}
					}
					if hook.where == "Marshal" {
						o.Converter = panicConverter{}
					}
					answer := func(s *Session, m Message) {
						if string(m.Payload) == "value" {
							err := SendValue(s, 1)
							var pan *codec.PanicError
							s.SendText(fmt.Sprintf("value: %v", errors.As(err, &pan)))
							return
						}
						s.Send(m.Type, m.Payload)
					}
					_, addr := ptStart(t, o, nil, func(srv *Server) http.Handler {
						mux := http.NewServeMux()
						mux.Handle("/events", srv.WebSocketEvents(Events{OnMessage: answer}))
						mux.Handle("/echo", srv.WebSocket(func(s *Session) {
							for m := range s.Messages() {
								answer(s, m)
							}
						}))
						return mux
					})
					// A bystander without the extension, on the same server.
					other := ptDial(t, addr, path)
					other.mustEcho(frame.OpText, []byte("before"))

					p := ptConnect(t, addr)
					p.mustWrite([]byte(ptHead(addr, path+"?boom", "Sec-WebSocket-Extensions: x-panic")))
					switch hook.want {
					case refused:
						resp, _, err := p.readResponse()
						if err != nil {
							t.Fatal(err)
						}
						if resp.StatusCode != http.StatusInternalServerError {
							t.Fatalf("status %d, want 500", resp.StatusCode)
						}
					case closed:
						if err := p.expectUpgrade(); err != nil {
							t.Fatal(err)
						}
						if hook.where == "Decode" {
							p.mustWrite(ptFrameHeader(frame.Header{Fin: true, Rsv: frame.RSV2, Op: frame.OpText, Masked: true, Mask: ptMask, Length: 2}, []byte("hi")))
						} else {
							p.mustWrite(ptFrame(true, frame.OpText, []byte("hi")))
						}
						if code, _ := p.mustReadClose(); code != CloseInternalError {
							t.Fatalf("close code %d, want 1011", code)
						}
						p.write(ptCloseFrame(CloseInternalError, ""))
						p.waitEOF(ptWait)
					case clean:
						if err := p.expectUpgrade(); err != nil {
							t.Fatal(err)
						}
						if hook.where == "Marshal" {
							p.mustWrite(ptFrame(true, frame.OpText, []byte("value")))
							if err := p.expect(frame.OpText, []byte("value: true")); err != nil {
								t.Fatal(err)
							}
						} else {
							p.mustEcho(frame.OpText, []byte("hi"))
						}
						if err := p.closeHandshake(CloseNormal, ""); err != nil {
							t.Fatal(err)
						}
						p.waitEOF(ptWait)
					}
					other.mustEcho(frame.OpText, []byte("after"))
					if err := other.closeHandshake(CloseNormal, ""); err != nil {
						t.Fatal(err)
					}
					other.waitEOF(ptWait)
					if hook.where != "Marshal" {
						deadline := time.Now().Add(ptWait)
						for !strings.Contains(logs.String(), "boom in "+hook.where) && time.Now().Before(deadline) {
							time.Sleep(5 * time.Millisecond)
						}
						if !strings.Contains(logs.String(), "boom in "+hook.where) {
							t.Errorf("the panic was not logged; log:\n%s", logs)
						}
					}
				})
			}
		}
	})
}

// keepAliveOf reads the TCP keep-alive settings of s's socket: enabled, idle
// seconds, interval seconds, probe count.
func keepAliveOf(s *Session) (on bool, idle, intvl, cnt int, err error) {
	get := func(fd int) {
		var v int
		if v, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE); err != nil {
			return
		}
		on = v != 0
		idle, _ = unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
		intvl, _ = unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL)
		cnt, _ = unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT)
	}
	if s.lc != nil {
		get(s.lc.pe.Fd())
		return
	}
	tc, ok := s.receiver.c.NetConn().(*net.TCPConn)
	if !ok {
		return false, 0, 0, 0, fmt.Errorf("a %T has no socket to read", s.receiver.c.NetConn())
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	if cerr := raw.Control(func(fd uintptr) { get(int(fd)) }); cerr != nil {
		err = cerr
	}
	return
}

// TestTCPKeepAlive checks the keep-alive settings of accepted sockets: Go's
// defaults, a chosen period, or none.
func TestTCPKeepAlive(t *testing.T) {
	tests := []struct {
		name        string
		opt         time.Duration
		on          bool
		idle, intvl int
	}{
		{"default", 0, true, 15, 15},
		{"7s", 7 * time.Second, true, 7, 7},
		{"off", -1, false, 0, 0},
	}
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		for _, tt := range tests {
			t.Run(engine.String()+"/"+tt.name, func(t *testing.T) {
				opts := ptOptions()
				opts.Engine, opts.TCPKeepAlive = engine, tt.opt
				got := make(chan string, 1)
				_, addr := ptStart(t, opts, nil, func(srv *Server) http.Handler {
					return srv.WebSocketEvents(Events{OnOpen: func(s *Session) {
						on, idle, intvl, cnt, err := keepAliveOf(s)
						switch {
						case err != nil:
							ptPut(got, err.Error())
						case !on:
							ptPut(got, "off")
						default:
							ptPut(got, fmt.Sprintf("%d/%d/%d", idle, intvl, cnt))
						}
					}})
				})
				ptDial(t, addr, "/")
				want := "off"
				if tt.on {
					want = fmt.Sprintf("%d/%d/9", tt.idle, tt.intvl)
				}
				if g := ptAwait(t, got, "OnOpen"); g != want {
					t.Fatalf("keep-alive %s, want %s", g, want)
				}
			})
		}
	}
}

// TestPlainConnectionsTimeOut keeps plain HTTP connections open without a
// further request, or with half a head: Serve closes each within
// HandshakeTimeout (plus the timer's slack), so refused upgrades cannot pile
// up connections and goroutines. ConfigureHTTP can change the bound.
func TestPlainConnectionsTimeOut(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		for _, configured := range []bool{false, true} {
			name := engine.String()
			if configured {
				name += "/ConfigureHTTP"
			}
			t.Run(name, func(t *testing.T) {
				ptLeakCheck(t)
				opts := ptOptions()
				opts.Engine = engine
				opts.HandshakeTimeout = 300 * time.Millisecond
				bound := opts.HandshakeTimeout
				if configured {
					opts.HandshakeTimeout = time.Minute
					opts.ConfigureHTTP = func(hs *http.Server) {
						hs.IdleTimeout, hs.ReadHeaderTimeout = bound, bound
						hs.Handler = nil // Serve's handler stays
					}
				}
				srv, addr := ptStart(t, opts, nil, ptRoutes(Events{}))
				base := ptCount()
				const n = 50
				peers := make([]*ptPeer, 0, 2*n)
				for i := range n {
					// A refused upgrade (no key), answered and kept alive.
					p := ptConnect(t, addr)
					p.mustWrite([]byte("GET /events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"))
					resp, _, err := p.readResponse()
					if err != nil {
						t.Fatal(err)
					}
					if resp.StatusCode < 400 || resp.Close {
						t.Fatalf("refusal %d (close %v), want a refusal kept alive", resp.StatusCode, resp.Close)
					}
					peers = append(peers, p)
					if configured {
						continue // a head the poll engine reads is the loop's: HandshakeTimeout
					}
					// Half a head, then nothing.
					q := ptConnect(t, addr)
					q.mustWrite([]byte(fmt.Sprintf("GET /hello?n=%d HTTP/1.1\r\nHost: x\r\n", i)))
					peers = append(peers, q)
				}
				start := time.Now()
				for _, p := range peers {
					if err := p.waitEOF(bound + 2*time.Second); err != nil {
						t.Fatalf("the server kept an idle connection open: %v", err)
					}
				}
				if took := time.Since(start); took > bound+2*time.Second {
					t.Fatalf("idle connections closed after %v, want about %v", took, bound)
				}
				for _, p := range peers {
					p.nc.Close()
				}
				ptExpectIdle(t, srv, base)
			})
		}
	}
}

// TestBareLFHeads sends heads whose lines end in LF alone, or mixed, as
// net/http accepts them: the upgrade goes through and a plain request is
// answered, on both engines, at once rather than after HandshakeTimeout.
func TestBareLFHeads(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		t.Run(engine.String(), func(t *testing.T) {
			ptLeakCheck(t)
			opts := ptOptions()
			opts.Engine = engine
			opts.HandshakeTimeout = time.Minute // a missed head would stall, not time out
			_, addr := ptStart(t, opts, nil, ptRoutes(Events{}))
			lf := func(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }
			mixed := func(s string) string { return strings.Replace(s, "\r\n", "\n", 2) }
			for _, form := range []struct {
				name string
				f    func(string) string
			}{{"LF", lf}, {"mixed", mixed}} {
				for _, path := range []string{"/events", "/echo", "/raw"} {
					p := ptConnect(t, addr)
					p.mustWrite([]byte(form.f(ptHead(addr, path))))
					if err := p.expectUpgrade(); err != nil {
						t.Fatalf("%s head on %s: %v", form.name, path, err)
					}
					p.mustEcho(frame.OpText, []byte(form.name+path))
					if err := p.closeHandshake(CloseNormal, ""); err != nil {
						t.Fatal(err)
					}
				}
				p := ptConnect(t, addr)
				p.mustWrite([]byte(form.f("GET /hello?name=lf HTTP/1.1\r\nHost: x\r\n\r\n")))
				resp, body, err := p.readResponse()
				if err != nil {
					t.Fatalf("%s plain request: %v", form.name, err)
				}
				if resp.StatusCode != 200 || string(body) != "hello lf" {
					t.Fatalf("%s plain request: %d %q", form.name, resp.StatusCode, body)
				}
			}
		})
	}
}

// TestPingFloodWhileWriteStuck floods pings at a session whose handler is
// stuck writing to the same peer, which never reads: the session holds one
// pong, not one per ping, and stops reading.
func TestPingFloodWhileWriteStuck(t *testing.T) {
	if race.Enabled || testing.Short() {
		t.Skip("measures the heap")
	}
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		t.Run(engine.String(), func(t *testing.T) {
			opts := ptOptions()
			opts.Engine = engine
			opts.Timeout = -1 // the stuck write never times out
			opts.MaxQueue = 64 << 10
			ln := ptListen(t, 0, 4096)
			_, addr := ptStart(t, opts, ln, func(srv *Server) http.Handler {
				return srv.WebSocket(func(s *Session) {
					p := make([]byte, 16<<10)
					for s.SendBinary(p) == nil {
					}
				})
			})
			p := ptConnect(t, addr)
			p.nc.SetReadBuffer(4096)
			if err := p.upgrade(addr, "/"); err != nil {
				t.Fatal(err)
			}
			pings := bytes.Repeat(ptFrame(true, frame.OpPing, []byte("ping")), 64<<10/10)
			base := heapInUse()
			sent := 0
			for start := time.Now(); time.Since(start) < time.Second; {
				p.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				n, err := p.nc.Write(pings)
				sent += n
				if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatal(err)
				}
			}
			held := heapInUse() - base
			t.Logf("%d KiB of pings sent; %d KiB held", sent>>10, held>>10)
			if held > 1<<20 {
				t.Fatalf("the session held %d KiB after %d KiB of pings", held>>10, sent>>10)
			}
			p.reset()
		})
	}
}

// rss returns the process's resident set after returning freed memory to
// the system.
func rss(t *testing.T) int64 {
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	var size, resident int64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		t.Fatal(err)
	}
	return resident * int64(os.Getpagesize())
}

// TestSoak runs connect–upgrade–echo–close cycles mixed with abrupt
// disconnects of every kind through a server on each engine: afterwards no
// goroutine, descriptor or pooled buffer is left, and the resident set is
// back within 10 % of what it was after a first round. WSKIT_SOAK sets
// the cycles per engine (10 000 by default; docs/testing.md's long soak runs 100 000).
func TestSoak(t *testing.T) {
	total := 10000
	if v := os.Getenv("WSKIT_SOAK"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("WSKIT_SOAK=%q: want a positive count", v)
		}
		total = n
	} else if race.Enabled || testing.Short() {
		t.Skip("TestPollConnectionFlood covers this under the race detector")
	}
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		t.Run(engine.String(), func(t *testing.T) {
			ptLeakCheck(t)
			opts := ptOptions()
			opts.Engine = engine
			srv, addr := ptStart(t, opts, nil, ptRoutes(Events{}))
			// A first round brings the pools and the runtime's caches to what
			// 48 connections at a time need; the resident set is measured
			// from there.
			ptChurn(t, srv, addr, min(total/10, 2000), nil)
			var start int64
			began := time.Now()
			ptChurn(t, srv, addr, total, func() { start = rss(t) })
			end := rss(t)
			t.Logf("%d cycles in %v; RSS %d KiB after the first, %d KiB at the end", total, time.Since(began).Round(time.Millisecond), start>>10, end>>10)
			if end > start+start/10 {
				t.Errorf("RSS grew from %d KiB to %d KiB over %d cycles", start>>10, end>>10, total)
			}
		})
	}
}

// TestClientHookPanics makes an extension of a client panic: in Offer or
// Confirm the dial fails with the panic as its error; in Decode or Encode
// the client session closes with 1011 and reports the panic; nothing else
// is touched.
func TestClientHookPanics(t *testing.T) {
	opts := ptOptions()
	opts.Extensions = []codec.Extension{&panicExt{}}
	_, addr := ptStart(t, opts, nil, ptRoutes(Events{}))
	for _, where := range []string{"Offer", "Confirm", "Decode", "Encode"} {
		t.Run(where, func(t *testing.T) {
			co := ptOptions()
			co.Extensions = []codec.Extension{&panicExt{where: where}}
			ctx, cancel := context.WithTimeout(context.Background(), ptWait)
			defer cancel()
			s, err := Dial(ctx, "ws://"+addr+"/events", &DialOptions{Options: co})
			var pan *codec.PanicError
			if where == "Offer" || where == "Confirm" {
				if !errors.As(err, &pan) {
					t.Fatalf("Dial: %v, want a *codec.PanicError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(CloseNormal, "")
			// The server's echo carries RSV2: the client decodes it.
			if err := s.SendText("x"); where == "Encode" && !errors.As(err, &pan) {
				t.Fatalf("SendText: %v, want the panic", err)
			}
			<-s.Done()
			if r, _ := s.CloseReason(); r.Code != CloseInternalError || !errors.As(s.Err(), &pan) {
				t.Fatalf("ended with %v, %v; want 1011 and the panic", r, s.Err())
			}
		})
	}
}
