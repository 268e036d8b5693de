//go:build linux

package wskit

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/race"
)

// statsStart serves routes(srv) with a new Server on a loopback port, over
// TLS when opts.TLSConfig is set, and returns the server and its
// address. Cleanup shuts it down.
func statsStart(t *testing.T, opts Options, routes func(*Server) http.Handler) (*Server, string) {
	t.Helper()
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln := ptListen(t, 0, 0)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, routes(srv)) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ptWait)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := ptAwait(t, served, "Serve to return"); !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return srv, ln.Addr().String()
}

// waitStats waits until cond holds of srv's Stats and returns them.
func waitStats(t *testing.T, srv *Server, what string, cond func(Stats) bool) Stats {
	t.Helper()
	for deadline := time.Now().Add(ptWait); ; time.Sleep(2 * time.Millisecond) {
		st := srv.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; stats %s", what, statsJSON(st))
		}
	}
}

func statsJSON(st Stats) string {
	b, _ := json.Marshal(st)
	return string(b)
}

// kinds returns the session counts of an engine.
func (st *Stats) kinds(e Engine) SessionKinds {
	if e == EnginePoll {
		return st.Sessions.Poll
	}
	return st.Sessions.Std
}

// count returns the count of a route's kind of session.
func (k SessionKinds) count(path string) SessionCount {
	switch path {
	case "/events":
		return k.Events
	case "/raw":
		return k.Raw
	}
	return k.Default
}

// loopTotals sums the loops' counters.
func (st *Stats) loopTotals() (sum LoopStats) {
	for _, l := range st.Loops {
		sum.Conns += l.Conns
		sum.Iterations += l.Iterations
		sum.Reads += l.Reads
		sum.ReadBytes += l.ReadBytes
		sum.ReadEAGAIN += l.ReadEAGAIN
		sum.Writes += l.Writes
		sum.WriteBytes += l.WriteBytes
		sum.WriteEAGAIN += l.WriteEAGAIN
	}
	return sum
}

// dialStats opens a client session on url; cleanup closes it.
func dialStats(t *testing.T, url string, opts *DialOptions) *Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ptWait)
	defer cancel()
	s, err := Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("Dial %s: %v", url, err)
	}
	t.Cleanup(func() { s.Close(CloseNormal, "") })
	return s
}

func receiveText(t *testing.T, s *Session, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ptWait)
	defer cancel()
	m, err := s.Receive(ctx)
	if err != nil || string(m.Payload) != want {
		t.Fatalf("Receive: %q, %v; want %q", m.Payload, err, want)
	}
}

// TestStatsTraffic drives one session of each kind on each engine, over
// TCP and TLS, through every kind of frame, and checks what the server
// counted of it: the session, its handshake, frames, messages and bytes by
// type, control frames, close codes and, on the poll engine, its loops.
func TestStatsTraffic(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		for _, secure := range []bool{false, true} {
			for _, path := range []string{"/events", "/echo", "/raw"} {
				name := fmt.Sprintf("%v/tls=%v%s", engine, secure, path)
				t.Run(name, func(t *testing.T) { testStatsTraffic(t, engine, secure, path) })
			}
		}
	}
}

func testStatsTraffic(t *testing.T, engine Engine, secure bool, path string) {
	opts := ptOptions()
	opts.Engine = engine
	var dialOpts DialOptions
	scheme := "ws://"
	if secure {
		opts.TLSConfig = tlsCert.ServerConfig()
		dialOpts.TLSConfig = tlsCert.ClientConfig()
		scheme = "wss://"
	}
	srv, addr := statsStart(t, opts, ptRoutes(Events{}))
	url := scheme + "localhost:" + addr[strings.LastIndexByte(addr, ':')+1:] + path
	c := dialStats(t, url, &dialOpts)
	c.SendText("hello")
	receiveText(t, c, "hello")
	c.SendBinary([]byte{1, 2, 3})
	receiveText(t, c, "\x01\x02\x03")
	c.SendFrame(frame.Header{Op: frame.OpText}, []byte("he"))
	c.SendFrame(frame.Header{Fin: true, Op: frame.OpContinuation}, []byte("llo"))
	receiveText(t, c, "hello")
	c.SendFrame(frame.Header{Fin: true, Op: frame.OpPing}, []byte("p"))
	if err := c.Close(4001, "bye"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	st := waitStats(t, srv, "the session's end", func(st Stats) bool {
		n := st.kinds(engine).count(path)
		return n.Total == 1 && n.Open == 0
	})

	if st.Handshakes.Accepted != 1 || st.Handshakes.Refused != (Refusals{}) {
		t.Errorf("handshakes %+v, want one accepted", st.Handshakes)
	}
	var allKinds SessionStats
	switch engine {
	case EngineStd:
		allKinds.Std = st.Sessions.Std
	default:
		allKinds.Poll = st.Sessions.Poll
	}
	if allKinds != st.Sessions {
		t.Errorf("sessions %+v on the other engine", st.Sessions)
	}
	want := TrafficStats{
		Frames: 6, Text: MessageStats{2, 10}, Binary: MessageStats{1, 3}, Pings: 1,
	}
	want.Close.Other = 1
	if st.In != want {
		t.Errorf("in:  %+v\nwant %+v", st.In, want)
	}
	// The echo: a default or Events session sends the fragmented message
	// whole, answers the ping, and echoes the close; the raw echo sends
	// frames as they came and leaves the ping.
	want = TrafficStats{Frames: 5, Text: MessageStats{2, 10}, Binary: MessageStats{1, 3}, Pongs: 1}
	want.Close.Other = 1
	if path == "/raw" {
		want.Pongs = 0
	}
	if st.Out != want {
		t.Errorf("out: %+v\nwant %+v", st.Out, want)
	}
	if st.PongTimeouts != 0 || st.CloseTimeouts != 0 || st.Queues != (QueueStats{}) || st.Hubs != (HubCounts{}) {
		t.Errorf("stats %s: timeouts, queue or hub events where none happened", statsJSON(st))
	}
	if engine == EngineStd {
		if len(st.Loops) != 0 {
			t.Errorf("%d loops on the std engine", len(st.Loops))
		}
		return
	}
	if len(st.Loops) != opts.Loops {
		t.Fatalf("%d loops, want %d", len(st.Loops), opts.Loops)
	}
	lt := st.loopTotals()
	if lt.Iterations == 0 {
		t.Errorf("loops %+v: no iteration", lt)
	}
	// Over TLS, crypto/tls reads the head on a goroutine; an Events session
	// then comes back to the loop.
	if (!secure || path == "/events") && (lt.Reads == 0 || lt.ReadBytes == 0) {
		t.Errorf("loops %+v: the loop read the session", lt)
	}
	if path == "/events" && (lt.Writes == 0 || lt.WriteBytes < 5+10+3) {
		t.Errorf("loops %+v: the loop wrote the Events session's echoes", lt)
	}
	waitStats(t, srv, "the loops to drop the connection", func(st Stats) bool { return st.loopTotals().Conns == 0 })
}

// Compressed messages count their bytes on the wire and as the application
// has them, each way.
func TestStatsDeflate(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		for _, path := range []string{"/events", "/echo"} {
			t.Run(engine.String()+path, func(t *testing.T) {
				opts := ptOptions()
				opts.Engine = engine
				opts.Extensions = []codec.Extension{&codec.PerMessageDeflate{}}
				srv, addr := statsStart(t, opts, ptRoutes(Events{}))
				copts := ptOptions()
				copts.Extensions = opts.Extensions
				c := dialStats(t, "ws://"+addr+path, &DialOptions{Options: copts})
				if c.Extensions() == "" {
					t.Fatal("permessage-deflate was not negotiated")
				}
				msg := strings.Repeat("compress me ", 100)
				c.SendText(msg)
				receiveText(t, c, msg)
				c.Close(CloseNormal, "")
				st := waitStats(t, srv, "the session's end", func(st Stats) bool {
					n := st.kinds(engine).count(path)
					return n.Total == 1 && n.Open == 0
				})
				for _, d := range []struct {
					name string
					t    TrafficStats
				}{{"in", st.In}, {"out", st.Out}} {
					if d.t.Deflate.Plain != uint64(len(msg)) || d.t.Deflate.Wire == 0 || d.t.Deflate.Wire >= d.t.Deflate.Plain {
						t.Errorf("%s: deflate %+v for one message of %d bytes", d.name, d.t.Deflate, len(msg))
					}
					if d.t.Text != (MessageStats{1, uint64(len(msg))}) || d.t.Close.Code(CloseNormal) != 1 {
						t.Errorf("%s: %+v", d.name, d.t)
					}
				}
			})
		}
	}
}

// Each reason an opening handshake is refused for is counted once, on
// each engine, with the upgrade that was accepted beside them.
func TestStatsRefusals(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		t.Run(engine.String(), func(t *testing.T) {
			opts := ptOptions()
			opts.Engine = engine
			opts.MaxHandshakeSize = 1024
			opts.HandshakeTimeout = 300 * time.Millisecond
			opts.Extensions = []codec.Extension{&panicExt{where: "Accept"}}
			srv, addr := ptStart(t, opts, nil, func(srv *Server) http.Handler {
				mux := ptRoutes(Events{})(srv).(*http.ServeMux)
				mux.Handle("/hook", srv.WebSocket(ptEchoSession, OnAccept(func(*Handshake) error {
					return Refuse(http.StatusUnauthorized, "who are you")
				})))
				return mux
			})
			head := func(method, path string, lines ...string) string {
				return method + " " + path + " HTTP/1.1\r\nHost: " + addr + "\r\n" + strings.Join(lines, "\r\n") + "\r\n\r\n"
			}
			const up, conn, key, version = "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " + rfcKey, "Sec-WebSocket-Version: 13"
			cases := []struct {
				name   string
				head   string
				status int
			}{
				{"method", head("POST", "/echo", up, conn, key, version, "Content-Length: 0"), http.StatusMethodNotAllowed},
				{"upgrade", head("GET", "/echo"), http.StatusUpgradeRequired},
				{"version", head("GET", "/echo", up, conn, key, "Sec-WebSocket-Version: 8"), http.StatusUpgradeRequired},
				{"key", head("GET", "/echo", up, conn, "Sec-WebSocket-Key: short", version), http.StatusBadRequest},
				{"origin", head("GET", "/echo", up, conn, key, version, "Origin: http://elsewhere.example"), http.StatusForbidden},
				{"subprotocol", head("GET", "/proto", up, conn, key, version), http.StatusBadRequest},
				{"extension", head("GET", "/echo", up, conn, key, version, "Sec-WebSocket-Extensions: x-panic"), http.StatusInternalServerError},
				{"hook", head("GET", "/hook", up, conn, key, version), http.StatusUnauthorized},
				{"limit", head("GET", "/echo", up, conn, key, version, "X-Big: "+strings.Repeat("b", 8<<10)), http.StatusRequestHeaderFieldsTooLarge},
			}
			for _, tc := range cases {
				p := ptConnect(t, addr)
				p.mustWrite([]byte(tc.head))
				resp, body, err := p.readResponse()
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if resp.StatusCode != tc.status {
					t.Fatalf("%s: status %d (%q), want %d", tc.name, resp.StatusCode, body, tc.status)
				}
				p.nc.Close()
			}
			// Timeouts: a connection that sends nothing, one that sends
			// part of a head. A plain request served, then left idle, is
			// not a handshake's timeout.
			silent := ptConnect(t, addr)
			partial := ptConnect(t, addr)
			partial.mustWrite([]byte("GET /echo HTTP/1.1\r\nHost: x\r\n"))
			served := ptConnect(t, addr)
			served.mustWrite([]byte(head("GET", "/hello")))
			if resp, _, err := served.readResponse(); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("plain request: %v", err)
			}
			for _, p := range []*ptPeer{silent, partial, served} {
				if err := p.waitEOF(ptWait); err != nil {
					t.Fatalf("waiting for the server to drop the connection: %v", err)
				}
			}
			ok := ptDial(t, addr, "/echo")
			if err := ok.closeHandshake(CloseNormal, ""); err != nil {
				t.Fatal(err)
			}
			want := HandshakeStats{Accepted: 1, Refused: Refusals{
				Method: 1, Upgrade: 1, Version: 1, Key: 1, Origin: 1, Subprotocol: 1,
				Extension: 1, Hook: 1, Limit: 1, Timeout: 2,
			}}
			st := waitStats(t, srv, "the refusals", func(st Stats) bool { return st.Handshakes == want })
			if st.kinds(engine).Default.Total != 1 {
				t.Errorf("sessions %+v, want the one accepted", st.Sessions)
			}
		})
	}
}

// Over TLS, a client that never shakes hands times out on both engines;
// on the poll engine, which hands net/http the plaintext, a head over the
// limit is counted too.
func TestStatsRefusalsTLS(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		t.Run(engine.String(), func(t *testing.T) {
			opts := ptOptions()
			opts.Engine = engine
			opts.MaxHandshakeSize = 1024
			opts.HandshakeTimeout = 300 * time.Millisecond
			opts.TLSConfig = tlsCert.ServerConfig()
			srv, addr := statsStart(t, opts, ptRoutes(Events{}))
			silent := ptConnect(t, addr)
			if err := silent.waitEOF(ptWait); err != nil {
				t.Fatal(err)
			}
			want := Refusals{Timeout: 1}
			if engine == EnginePoll {
				cfg := tlsCert.ClientConfig()
				cfg.ServerName = "localhost"
				tc := tls.Client(ptConnect(t, addr).nc, cfg)
				tc.SetDeadline(time.Now().Add(ptWait))
				fmt.Fprintf(tc, "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("b", 8<<10))
				resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
				if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
					t.Fatalf("a head over the limit: %v, %v", resp, err)
				}
				want.Limit = 1
			}
			waitStats(t, srv, "the refusals", func(st Stats) bool { return st.Handshakes.Refused == want })
		})
	}
}

// A session whose peer stops answering keepalive pings, and one whose peer
// never answers our close, count their timeouts, the pings and the close
// frames.
func TestStatsTimeouts(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		for _, path := range []string{"/events", "/echo"} {
			t.Run(engine.String()+path, func(t *testing.T) {
				opts := ptOptions()
				opts.Engine = engine
				opts.PingPeriod = 20 * time.Millisecond
				opts.Timeout = 200 * time.Millisecond
				srv, addr := ptStart(t, opts, nil, func(srv *Server) http.Handler {
					mux := http.NewServeMux()
					mux.Handle("/events", srv.WebSocketEvents(Events{OnMessage: func(s *Session, m Message) { s.Close(4000, "") }}))
					mux.Handle("/echo", srv.WebSocket(func(s *Session) {
						for range s.Messages() {
							s.Close(4000, "")
						}
					}))
					return mux
				})
				mute := ptDial(t, addr, path) // reads nothing, answers nothing
				st := waitStats(t, srv, "the pong timeout", func(st Stats) bool { return st.PongTimeouts == 1 })
				if st.Out.Pings == 0 || st.In.Pongs != 0 {
					t.Errorf("pings %d out, pongs %d in", st.Out.Pings, st.In.Pongs)
				}
				waitStats(t, srv, "the 1011", func(st Stats) bool { return st.Out.Close.Code(CloseInternalError) == 1 })
				mute.nc.Close()

				// The peer asks for a close, then ignores it.
				p := ptDial(t, addr, path)
				p.mustWrite(ptFrame(true, frame.OpText, []byte("close me")))
				go func() { // answer pings, never the close
					for {
						h, b, err := p.readFrameWithin(ptWait)
						if err != nil {
							return
						}
						if h.Op == frame.OpPing {
							p.write(ptFrame(true, frame.OpPong, b))
						}
					}
				}()
				st = waitStats(t, srv, "the close timeout", func(st Stats) bool { return st.CloseTimeouts == 1 })
				if st.Out.Close.Other != 1 || st.PongTimeouts != 1 {
					t.Errorf("close %+v, pong timeouts %d", st.Out.Close, st.PongTimeouts)
				}
			})
		}
	}
}

// A send that finds the outgoing queue full is counted under each policy,
// on a goroutine and on the loop, and so is a send that waited in vain; a
// handler that falls behind fills its incoming queue.
func TestStatsQueues(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		for _, policy := range []QueuePolicy{QueueBlock, QueueCloseTryAgain} {
			for _, path := range []string{"/events", "/echo"} {
				t.Run(fmt.Sprintf("%v/%v%s", engine, policy, path), func(t *testing.T) {
					opts := ptOptions()
					opts.Engine = engine
					opts.QueuePolicy = policy
					opts.MaxQueue = 64 << 10
					opts.Timeout = 300 * time.Millisecond
					flood := func(s *Session) {
						msg := make([]byte, 256<<10)
						for s.SendBinary(msg) == nil {
						}
					}
					srv, addr := ptStart(t, opts, ptListen(t, 0, 8192), func(srv *Server) http.Handler {
						mux := http.NewServeMux()
						mux.Handle("/events", srv.WebSocketEvents(Events{OnOpen: func(s *Session) {
							for range 4 {
								go flood(s)
							}
						}}))
						mux.Handle("/echo", srv.WebSocket(func(s *Session) {
							for range 4 {
								go flood(s)
							}
							<-s.Done()
						}))
						return mux
					})
					mutePeer(t, addr, path)
					// Under QueueBlock the writer's own deadline usually
					// passes before a waiting sender's: the internal/wsconn
					// tests count a send that waited in vain.
					waitStats(t, srv, "a full queue", func(st Stats) bool { return st.Queues.Full > 0 })
					if policy == QueueCloseTryAgain {
						waitStats(t, srv, "the 1013", func(st Stats) bool { return st.Out.Close.Code(CloseTryAgainLater) == 1 })
					}
				})
			}
		}
	}
	for _, v := range []struct {
		name    string
		engine  Engine
		workers int
		path    string
	}{{"std/echo", EngineStd, 0, "/echo"}, {"poll/echo", EnginePoll, 0, "/echo"}, {"poll-workers/events", EnginePoll, 1, "/events"}} {
		t.Run("incoming/"+v.name, func(t *testing.T) {
			opts := ptOptions()
			opts.Engine, opts.Workers = v.engine, v.workers
			opts.IncomingQueue = 16 << 10
			release := make(chan struct{})
			var blocked atomic.Bool
			hold := func() {
				if !blocked.Swap(true) {
					<-release
				}
			}
			srv, addr := ptStart(t, opts, nil, func(srv *Server) http.Handler {
				mux := http.NewServeMux()
				mux.Handle("/events", srv.WebSocketEvents(Events{OnMessage: func(*Session, Message) { hold() }}))
				mux.Handle("/echo", srv.WebSocket(func(s *Session) {
					for range s.Messages() {
						hold()
					}
				}))
				return mux
			})
			p := ptDial(t, addr, v.path)
			msg := ptFrame(true, frame.OpBinary, make([]byte, 4<<10))
			go func() {
				for range 64 {
					if p.write(msg) != nil {
						return
					}
				}
			}()
			waitStats(t, srv, "the incoming queue to fill", func(st Stats) bool { return st.Queues.IncomingFull > 0 })
			close(release)
		})
	}
}

// What hubs do to a server's sessions adds up to what each hub counts:
// drops and disconnections under each policy, and messages delivered;
// a publish that timed out is the hub's own.
func TestStatsHubs(t *testing.T) {
	const size, flood = 16 << 10, 60
	for _, c := range hubCases {
		for _, policy := range []Overflow{OverflowDropOldest, OverflowDropLatest, OverflowCloseTryAgain, OverflowClosePolicy, OverflowSuspend} {
			t.Run(fmt.Sprintf("%v/%v", c, policy), func(t *testing.T) {
				hub := newTestHub(t, HubOptions{Buffer: 4, Overflow: policy, Timeout: 200 * time.Millisecond})
				opts := ptOptions()
				opts.Engine = c.engine
				opts.MaxQueue = 64 << 10
				srv, addr := ptStart(t, opts, ptListen(t, 0, 8192), hubRoutes(hub, nil))
				stuckPeer(t, addr, c.path)
				waitFor(t, "the slow subscriber", func() bool { return hub.Subscribers() == 1 })
				fast := joinHub(t, hub, addr, c.path, 1)[0]
				go io.Copy(io.Discard, fast.br)
				err := hubFlood(context.Background(), hub, 0, flood, size)
				if policy == OverflowSuspend {
					if !errors.Is(err, ErrPublishTimeout) {
						t.Fatalf("publish: %v, want ErrPublishTimeout", err)
					}
				} else if err != nil {
					t.Fatal(err)
				}
				// Publishing outran both subscribers: each message was
				// handed over, dropped, or is held back for one of them.
				hs, st := hub.Stats(), srv.Stats().Hubs
				if st.Delivered == 0 || st.Delivered+hs.Dropped > 2*flood {
					t.Errorf("server %+v, hub %+v: deliveries", st, hs)
				}
				switch policy {
				case OverflowDropOldest:
					if st.DroppedOldest == 0 || st.DroppedOldest != hs.Dropped || st.DroppedLatest != 0 {
						t.Errorf("server %+v, hub %+v", st, hs)
					}
				case OverflowDropLatest:
					if st.DroppedLatest == 0 || st.DroppedLatest != hs.Dropped || st.DroppedOldest != 0 {
						t.Errorf("server %+v, hub %+v", st, hs)
					}
				case OverflowCloseTryAgain, OverflowClosePolicy:
					got := st.ClosedTryAgain
					if policy == OverflowClosePolicy {
						got = st.ClosedPolicy
					}
					if got == 0 || hs.Disconnected != got || st.ClosedTryAgain+st.ClosedPolicy != got {
						t.Errorf("server %+v, hub %+v", st, hs)
					}
				case OverflowSuspend:
					if hs.PublishTimeouts != 1 || st.DroppedOldest+st.DroppedLatest+st.ClosedTryAgain+st.ClosedPolicy != 0 {
						t.Errorf("server %+v, hub %+v", st, hs)
					}
				}
				// The greetings and the deliveries.
				if all := srv.Stats(); all.Out.Text.Messages < all.Hubs.Delivered+2 {
					t.Errorf("%d text messages out, %d delivered by the hub", all.Out.Text.Messages, all.Hubs.Delivered)
				}
			})
		}
	}
}

// A hub's message shared among deflate sessions counts, on each, its bytes
// as compressed once for all.
func TestStatsHubDeflate(t *testing.T) {
	hub := newTestHub(t, HubOptions{})
	opts := ptOptions()
	opts.Extensions = []codec.Extension{&codec.PerMessageDeflate{}}
	srv, addr := ptStart(t, opts, nil, hubRoutes(hub, nil))
	const n = 3
	var peers []*ptPeer
	for range n {
		p := ptDial(t, addr, "/events", "Sec-WebSocket-Extensions: permessage-deflate")
		if _, _, err := p.readFrame(); err != nil {
			t.Fatal(err)
		}
		peers = append(peers, p)
	}
	waitFor(t, "subscribers", func() bool { return hub.Subscribers() == n })
	before := srv.Stats()
	msg := strings.Repeat("shared ", 200)
	if err := hub.PublishText(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		h, b, err := p.readFrame()
		if err != nil || h.Rsv&frame.RSV1 == 0 || string(inflateMessage(t, b)) != msg {
			t.Fatalf("the shared message: %v, rsv %x", err, h.Rsv)
		}
	}
	st := waitStats(t, srv, "the deliveries", func(st Stats) bool { return st.Hubs.Delivered == n })
	out := st.Out.Deflate
	out.Plain -= before.Out.Deflate.Plain
	out.Wire -= before.Out.Deflate.Wire
	if out.Plain != n*uint64(len(msg)) || out.Wire == 0 || out.Wire*5 > out.Plain || out.Wire%n != 0 {
		t.Errorf("deflate out %+v for %d deliveries of %d bytes", out, n, len(msg))
	}
	if got := st.Out.Text.Messages - before.Out.Text.Messages; got != n {
		t.Errorf("%d text messages out, want %d", got, n)
	}
}

// Counting costs no allocation: an echo allocates nothing on any engine
// and session kind, and every echo is counted.
func TestStatsEchoZeroAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector allocates, and sync.Pool drops items under it")
	}
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		for _, path := range []string{"/events", "/echo", "/raw"} {
			t.Run(engine.String()+path, func(t *testing.T) {
				opts := ptOptions()
				opts.Engine, opts.Loops = engine, 1
				srv, addr := ptStart(t, opts, nil, ptRoutes(Events{}))
				p := ptDial(t, addr, path)
				payload := ptPattern(1, 64)
				out := ptFrame(true, frame.OpBinary, payload)
				want := append(frame.AppendHeader(nil, frame.Header{Fin: true, Op: frame.OpBinary, Length: 64}), payload...)
				buf := make([]byte, len(want))
				echo := func() error {
					if _, err := p.nc.Write(out); err != nil {
						return err
					}
					if _, err := io.ReadFull(p.br, buf); err != nil {
						return err
					}
					if string(buf) != string(want) {
						return errors.New("the echo differs")
					}
					return nil
				}
				ptZeroAllocs(t, "echo", echo)
				// ptZeroAllocs echoes 200 times, AllocsPerRun once more
				// and then 1000 times.
				const n = 1201
				st := srv.Stats()
				if st.In.Binary.Messages != n || st.Out.Binary != (MessageStats{n, n * 64}) {
					t.Errorf("in %+v, out %+v: want %d echoes of 64 bytes", st.In.Binary, st.Out.Binary, n)
				}
			})
		}
	}
}

var expvarSeq atomic.Int64

// PublishExpvar shows the server's Stats in expvar, as JSON that decodes
// back into them.
func TestStatsExpvar(t *testing.T) {
	srv, addr := ptStart(t, ptOptions(), nil, ptRoutes(Events{}))
	name := fmt.Sprintf("wskit-test-%d", expvarSeq.Add(1)) // expvar's names are for good
	srv.PublishExpvar(name)
	p := ptDial(t, addr, "/events")
	p.mustEcho(frame.OpText, []byte("hi"))
	v := expvar.Get(name)
	if v == nil {
		t.Fatal("not published")
	}
	var st Stats
	if err := json.Unmarshal([]byte(v.String()), &st); err != nil {
		t.Fatalf("%v in %s", err, v.String())
	}
	if st.In.Text.Messages != 1 || st.Sessions.Poll.Events.Open != 1 || len(st.Loops) != 2 {
		t.Errorf("expvar shows %s", v.String())
	}
	defer func() {
		if recover() == nil {
			t.Error("publishing a name twice did not panic, as expvar.Publish does")
		}
	}()
	srv.PublishExpvar(name)
}

// CloseCodes.Code finds each code's count.
func TestStatsCloseCode(t *testing.T) {
	var c CloseCodes
	for i := range c.Codes {
		c.Codes[i] = uint64(i + 1)
	}
	c.Other = 99
	for code, want := range map[CloseCode]uint64{1000: 1, 1005: 6, 1015: 16, 999: 99, 1016: 99, 4000: 99} {
		if got := c.Code(code); got != want {
			t.Errorf("Code(%d) = %d, want %d", code, got, want)
		}
	}
}

// mutePeer upgrades on path with a small receive buffer and reads nothing
// more; cleanup closes it.
func mutePeer(t *testing.T, addr, path string) *ptPeer {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return serr
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	p := &ptPeer{t: t, nc: nc.(*net.TCPConn), br: bufio.NewReaderSize(nc, 4096)}
	if err := p.upgrade(addr, path); err != nil {
		t.Fatal(err)
	}
	return p
}
