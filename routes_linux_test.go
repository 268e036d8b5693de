//go:build linux

package wskit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/race"
	"github.com/wskit/wskit/wsraw"
)

// seen is what a route's session saw of itself.
type seen struct {
	engine  Engine
	onLoop  bool // an Events session answered on the poll engine's loop
	path    string
	values  string // path values, name=value
	ctxUser any
	user    string // the per-session value set by an accept hook
}

type ctxKey string

// userKey is the per-session value the tests' accept hooks set.
var userKey = NewKey[string]("user")

func seenBy(s *Session, names ...string) seen {
	r := s.Request()
	var vals []string
	for _, n := range names {
		vals = append(vals, n+"="+r.PathValue(n))
	}
	u, _ := userKey.Get(s)
	return seen{
		engine: s.Engine(), onLoop: s.lc != nil, path: r.URL.Path, values: strings.Join(vals, ","),
		ctxUser: s.Context().Value(ctxKey("user")), user: u,
	}
}

// routeKinds opens each kind of session on a route that reports what it
// saw on got and echoes.
func routeKinds(srv *Server, got chan<- seen, names []string, opts ...RouteOption) map[string]http.Handler {
	return map[string]http.Handler{
		"events": srv.WebSocketEvents(Events{
			OnOpen:    func(s *Session) { ptPut(got, seenBy(s, names...)) },
			OnMessage: ptEcho,
		}, opts...),
		"default": srv.WebSocket(func(s *Session) {
			ptPut(got, seenBy(s, names...))
			ptEchoSession(s)
		}, opts...),
		"raw": srv.WebSocketRaw(func(s *wsraw.Session) {
			r := s.Request()
			var vals []string
			for _, n := range names {
				vals = append(vals, n+"="+r.PathValue(n))
			}
			ptPut(got, seen{engine: 255, path: r.URL.Path, values: strings.Join(vals, ","), ctxUser: r.Context().Value(ctxKey("user"))})
			ptEchoRaw(s)
		}, opts...),
	}
}

// TestRoutePathValues mounts each kind of route on a ServeMux pattern with
// wildcards: the session's request has the path values on both engines, as
// a net/http handler's would.
func TestRoutePathValues(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		t.Run(engine.String(), func(t *testing.T) {
			ptLeakCheck(t)
			opts := ptOptions()
			opts.Engine = engine
			got := make(chan seen, 4)
			_, addr := ptStart(t, opts, nil, func(srv *Server) http.Handler {
				mux := http.NewServeMux()
				for kind, h := range routeKinds(srv, got, []string{"name", "rest"}) {
					mux.Handle("GET /"+kind+"/room/{name}/{rest...}", h)
				}
				return mux
			})
			for _, kind := range []string{"events", "default", "raw"} {
				for _, quick := range []bool{true, false} {
					// An extra header sends the head down the full parser.
					var extra []string
					if !quick {
						extra = []string{"X-Long: " + strings.Repeat("x", 100), "X-Long: again"}
					}
					p := ptDial(t, addr, "/"+kind+"/room/kotlin/a/b%20c", extra...)
					s := ptAwait(t, got, "the session")
					if want := "name=kotlin,rest=a/b c"; s.values != want {
						t.Errorf("%s: path values %q, want %q", kind, s.values, want)
					}
					if kind != "raw" && s.engine != engine {
						t.Errorf("%s: engine %v, want %v", kind, s.engine, engine)
					}
					if kind == "events" && engine == EnginePoll && !s.onLoop {
						t.Errorf("events: not on the loop")
					}
					p.mustEcho(frame.OpText, []byte(kind))
					if err := p.closeHandshake(CloseNormal, ""); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}

// middleware is the chain of TestRouteMiddleware: a logger, an auth check
// that refuses with 401 and WWW-Authenticate or puts the user in the
// context, and a session-cookie middleware that sets Set-Cookie.
func middleware(log *routeLog, next http.Handler) http.Handler {
	logger := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			log.add("request " + r.URL.Path)
			next.ServeHTTP(w, r)
		})
	}
	auth := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="wskit"`)
				http.Error(w, "who are you?", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey("user"), user)))
		})
	}
	cookie := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.SetCookie(w, &http.Cookie{Name: "session", Value: "s-" + r.Context().Value(ctxKey("user")).(string), Path: "/"})
			next.ServeHTTP(w, r)
		})
	}
	return logger(auth(cookie(next)))
}

type routeLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *routeLog) add(s string) {
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
}

// TestRouteMiddleware serves each kind of route behind three middlewares:
// a refused upgrade gets the auth middleware's 401 (kept alive, so that the
// same connection can upgrade next), an accepted one a 101 carrying the
// cookie middleware's Set-Cookie, and the session sees the user the auth
// middleware put in the context and the path values; on the poll engine an
// Events session ends up on the loop.
func TestRouteMiddleware(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		t.Run(engine.String(), func(t *testing.T) {
			ptLeakCheck(t)
			opts := ptOptions()
			opts.Engine = engine
			got := make(chan seen, 4)
			log := &routeLog{}
			_, addr := ptStart(t, opts, nil, func(srv *Server) http.Handler {
				mux := http.NewServeMux()
				for kind, h := range routeKinds(srv, got, []string{"room"}) {
					mux.Handle("GET /"+kind+"/{room}", middleware(log, h))
				}
				return mux
			})
			for _, kind := range []string{"events", "default", "raw"} {
				p := ptConnect(t, addr)
				p.mustWrite([]byte(ptHead(addr, "/"+kind+"/lobby")))
				resp, body, err := p.readResponse()
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Bearer realm="wskit"` || string(body) != "who are you?\n" || resp.Close {
					t.Fatalf("%s without a token: %d %q %q close=%v", kind, resp.StatusCode, resp.Header, body, resp.Close)
				}
				// The same connection, now with a token.
				p.mustWrite([]byte(ptHead(addr, "/"+kind+"/lobby", "Authorization: Bearer ada")))
				resp, _, err = p.readResponse()
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != http.StatusSwitchingProtocols {
					t.Fatalf("%s: status %d, want 101", kind, resp.StatusCode)
				}
				if c := resp.Header.Get("Set-Cookie"); c != "session=s-ada; Path=/" {
					t.Errorf("%s: Set-Cookie %q in the 101, want the middleware's", kind, c)
				}
				if a := resp.Header.Get("WWW-Authenticate"); a != "" {
					t.Errorf("%s: the 101 has the refusal's WWW-Authenticate %q (header maps are reused)", kind, a)
				}
				if resp.Header.Get("Sec-WebSocket-Accept") != rfcAccept {
					t.Errorf("%s: bad accept %q", kind, resp.Header.Get("Sec-WebSocket-Accept"))
				}
				s := ptAwait(t, got, "the session")
				if s.ctxUser != "ada" || s.values != "room=lobby" {
					t.Errorf("%s: context user %v, path values %q", kind, s.ctxUser, s.values)
				}
				if kind != "raw" && s.engine != engine {
					t.Errorf("%s: engine %v, want %v", kind, s.engine, engine)
				}
				if kind == "events" && engine == EnginePoll && !s.onLoop {
					t.Errorf("events: not back on the loop")
				}
				p.mustEcho(frame.OpBinary, []byte("through the chain"))
				if err := p.closeHandshake(CloseNormal, ""); err != nil {
					t.Fatal(err)
				}
			}
			log.mu.Lock()
			defer log.mu.Unlock()
			if len(log.lines) != 6 {
				t.Errorf("the logger saw %q", log.lines)
			}
		})
	}
}

// TestRouteRefusalsAreNetHTTPs compares, byte for byte but the Date, what
// the middleware chain answers on the poll engine and on the std engine.
func TestRouteRefusalsAreNetHTTPs(t *testing.T) {
	answers := map[Engine][]string{}
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		opts := ptOptions()
		opts.Engine = engine
		_, addr := ptStart(t, opts, nil, func(srv *Server) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("GET /ws/{room}", middleware(&routeLog{}, srv.WebSocketEvents(Events{})))
			mux.Handle("GET /plain", http.RedirectHandler("/elsewhere", http.StatusFound))
			return mux
		})
		for _, req := range []string{
			ptHead(addr, "/ws/lobby"),
			ptHead(addr, "/ws/lobby", "Authorization: Bearer ada", "Sec-WebSocket-Version: 8"),
			"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n",
			"HEAD /ws/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ada\r\n\r\n",
		} {
			p := ptConnect(t, addr)
			p.mustWrite([]byte(strings.ReplaceAll(req, addr, "host")))
			p.nc.CloseWrite()
			p.nc.SetReadDeadline(time.Now().Add(ptWait))
			var b strings.Builder
			buf := make([]byte, 4096)
			for {
				n, err := p.br.Read(buf)
				b.Write(buf[:n])
				if err != nil {
					break
				}
			}
			var lines []string
			for _, l := range strings.Split(b.String(), "\r\n") {
				if !strings.HasPrefix(l, "Date: ") {
					lines = append(lines, l)
				}
			}
			answers[engine] = append(answers[engine], strings.Join(lines, "\r\n"))
		}
	}
	for i := range answers[EngineStd] {
		if answers[EngineStd][i] != answers[EnginePoll][i] {
			t.Errorf("answer %d differs:\nstd:\n%s\npoll:\n%s", i, answers[EngineStd][i], answers[EnginePoll][i])
		}
	}
}

// TestAcceptHooks runs the server's and the route's accept hooks on each
// kind of route and engine: a refusal is sent with its status, fields and
// body; an accepted upgrade carries the hooks' fields in its 101, and the
// value a hook attached is the session's in every callback and after its
// end; a hook that blocks does so off the loop; a panic refuses with 500.
func TestAcceptHooks(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		t.Run(engine.String(), func(t *testing.T) {
			ptLeakCheck(t)
			opts := ptOptions()
			opts.Engine = engine
			opts.Accept = func(h *Handshake) error {
				switch h.Request.URL.Query().Get("who") {
				case "":
					return &Refusal{Status: http.StatusUnauthorized, Header: http.Header{"Www-Authenticate": {"Basic"}}, Body: "log in first"}
				case "mallory":
					return ErrRefused
				case "boom":
					panic("boom in Accept")
				case "slow":
					time.Sleep(50 * time.Millisecond) // a database, say
				}
				h.Header.Set("X-Server-Hook", "1")
				userKey.Set(h, h.Request.URL.Query().Get("who"))
				return nil
			}
			route := OnAccept(func(h *Handshake) error {
				if u, _ := userKey.Get(h); u != "ada" && u != "slow" {
					return Refuse(http.StatusForbidden, "not you, "+u)
				}
				h.Header.Set("X-Route-Hook", "1")
				return nil
			})
			got := make(chan seen, 4)
			ended := make(chan string, 4)
			_, addr := ptStart(t, opts, nil, func(srv *Server) http.Handler {
				mux := http.NewServeMux()
				for kind, h := range routeKinds(srv, got, nil, route) {
					mux.Handle("/"+kind, h)
				}
				mux.Handle("/events-end", srv.WebSocketEvents(Events{OnClose: func(s *Session, _ CloseReason) {
					u, _ := userKey.Get(s)
					ptPut(ended, u)
				}}, route))
				return mux
			})
			refusals := []struct {
				who, body, field string
				status           int
			}{
				{"", "log in first\n", "Basic", 401},
				{"mallory", "wskit: upgrade refused\n", "", 403},
				{"bob", "not you, bob\n", "", 403},
				{"boom", "wskit: internal error\n", "", 500},
			}
			for _, kind := range []string{"events", "default", "raw"} {
				for _, ref := range refusals {
					p := ptConnect(t, addr)
					p.mustWrite([]byte(ptHead(addr, "/"+kind+"?who="+ref.who)))
					resp, body, err := p.readResponse()
					if err != nil {
						t.Fatal(err)
					}
					if resp.StatusCode != ref.status || string(body) != ref.body || resp.Header.Get("Www-Authenticate") != ref.field {
						t.Errorf("%s, who=%q: %d %q %q", kind, ref.who, resp.StatusCode, body, resp.Header)
					}
				}
				for _, who := range []string{"ada", "slow"} {
					p := ptConnect(t, addr)
					p.mustWrite([]byte(ptHead(addr, "/"+kind+"?who="+who)))
					resp, _, err := p.readResponse()
					if err != nil || resp.StatusCode != 101 {
						t.Fatalf("%s as %s: %v %v", kind, who, resp, err)
					}
					if resp.Header.Get("X-Server-Hook") != "1" || resp.Header.Get("X-Route-Hook") != "1" {
						t.Errorf("%s: the hooks' fields are not in the 101: %q", kind, resp.Header)
					}
					s := ptAwait(t, got, "the session")
					if kind != "raw" && s.user != who {
						t.Errorf("%s: the session's user is %q, want %q", kind, s.user, who)
					}
					if kind == "events" && engine == EnginePoll && !s.onLoop {
						t.Errorf("events: not back on the loop")
					}
					p.mustEcho(frame.OpText, []byte(who))
					if err := p.closeHandshake(CloseNormal, ""); err != nil {
						t.Fatal(err)
					}
				}
			}
			p := ptDial(t, addr, "/events-end?who=ada")
			if err := p.closeHandshake(CloseNormal, ""); err != nil {
				t.Fatal(err)
			}
			if u := ptAwait(t, ended, "OnClose"); u != "ada" {
				t.Errorf("OnClose saw user %q", u)
			}
		})
	}
}

// TestUpgradeFromHandler upgrades from inside ordinary handlers, gorilla's
// way, to each kind of session: the 101 carries the fields the handler set,
// and the sessions run on both engines.
func TestUpgradeFromHandler(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		t.Run(engine.String(), func(t *testing.T) {
			ptLeakCheck(t)
			opts := ptOptions()
			opts.Engine = engine
			engines := make(chan Engine, 4)
			refused := make(chan error, 4)
			_, addr := ptStart(t, opts, nil, func(srv *Server) http.Handler {
				mux := http.NewServeMux()
				mux.HandleFunc("/default", func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("X-Trace", "t-1")
					s, err := srv.Upgrade(w, r, Protocols("chat"))
					if err != nil {
						ptPut(refused, err)
						return
					}
					go func() {
						defer s.Close(CloseNormal, "")
						ptPut(engines, s.Engine())
						ptEchoSession(s)
					}()
				})
				mux.HandleFunc("/raw", func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("X-Trace", "t-1")
					s, err := srv.UpgradeRaw(w, r)
					if err != nil {
						ptPut(refused, err)
						return
					}
					ptPut(engines, 255)
					ptEchoRaw(s)
					s.CloseNow()
				})
				mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("X-Trace", "t-1")
					err := srv.UpgradeEvents(w, r, Events{
						OnOpen:    func(s *Session) { ptPut(engines, s.Engine()) },
						OnMessage: ptEcho,
					})
					if err != nil {
						ptPut(refused, err)
					}
				})
				return mux
			})
			for _, kind := range []string{"default", "raw", "events"} {
				p := ptConnect(t, addr)
				p.mustWrite([]byte(ptHead(addr, "/"+kind, "Sec-WebSocket-Protocol: chat")))
				resp, _, err := p.readResponse()
				if err != nil || resp.StatusCode != 101 {
					t.Fatalf("%s: %v %v", kind, resp, err)
				}
				if resp.Header.Get("X-Trace") != "t-1" {
					t.Errorf("%s: the handler's field is not in the 101: %q", kind, resp.Header)
				}
				if e := ptAwait(t, engines, "the session"); kind != "raw" && e != engine {
					t.Errorf("%s: engine %v, want %v", kind, e, engine)
				}
				p.mustEcho(frame.OpText, []byte(kind))
				if err := p.closeHandshake(CloseNormal, ""); err != nil {
					t.Fatal(err)
				}
				p.waitEOF(ptWait)
			}
			// A refused upgrade is answered, and reported to the handler.
			p := ptConnect(t, addr)
			p.mustWrite([]byte(ptHead(addr, "/default")))
			if resp, _, err := p.readResponse(); err != nil || resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("without the required protocol: %v %v", resp, err)
			}
			var he *HandshakeError
			if err := ptAwait(t, refused, "the refusal"); !errors.As(err, &he) || he.StatusCode != http.StatusBadRequest {
				t.Errorf("Upgrade returned %v, want a *HandshakeError with 400", err)
			}
		})
	}
}

// TestBlockingMiddlewareDoesNotStallTheLoop runs a middleware that sleeps
// 100 ms on each of 20 upgrades while 1000 Events sessions on the same, one
// loop echo: their round trips do not stall (p99 under 10 ms), since the
// chain runs on net/http's goroutines and only the session comes back.
func TestBlockingMiddlewareDoesNotStallTheLoop(t *testing.T) {
	if race.Enabled || testing.Short() {
		t.Skip("times round trips")
	}
	opts := ptOptions()
	opts.Loops = 1
	_, addr := ptStart(t, opts, nil, func(srv *Server) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/echo", srv.WebSocketEvents(Events{OnMessage: ptEcho}))
		mux.Handle("/slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(100 * time.Millisecond) // an auth lookup
			srv.WebSocketEvents(Events{OnMessage: ptEcho}).ServeHTTP(w, r)
		}))
		return mux
	})
	const n = 1000
	peers := make([]*ptPeer, n)
	for i := range peers {
		peers[i] = ptDial(t, addr, "/echo")
	}
	var slowDone sync.WaitGroup
	for range 20 {
		slowDone.Go(func() {
			p, err := ptConnectErr(addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer p.nc.Close()
			if err := p.upgrade(addr, "/slow"); err != nil {
				t.Error(err)
			}
		})
	}
	var rtts []time.Duration
	msg := []byte("tick")
	deadline := time.Now().Add(500 * time.Millisecond)
	for round := 0; time.Now().Before(deadline) || round < 2; round++ {
		for _, p := range peers {
			start := time.Now()
			p.mustEcho(frame.OpText, msg)
			rtts = append(rtts, time.Since(start))
		}
	}
	slowDone.Wait()
	slices.Sort(rtts)
	p99 := rtts[len(rtts)*99/100]
	t.Logf("%d round trips while the slow middleware ran: p50 %v, p99 %v, max %v", len(rtts), rtts[len(rtts)/2], p99, rtts[len(rtts)-1])
	if p99 > 10*time.Millisecond {
		t.Errorf("p99 round trip %v: the loop stalled", p99)
	}
}

var (
	_ = fmt.Sprint
	_ = sort.Ints
	_ atomic.Int64
)

// TestUpgradeRawTracked: a raw session of UpgradeRaw counts among the
// server's sessions and in Stats until its CloseNow, and Shutdown sends it
// 1001 as it does a route's, on both engines.
func TestUpgradeRawTracked(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		t.Run(engine.String(), func(t *testing.T) {
			opts := ptOptions()
			opts.Engine = engine
			srv, err := NewServer(opts)
			if err != nil {
				t.Fatal(err)
			}
			closed := make(chan struct{})
			mux := http.NewServeMux()
			mux.HandleFunc("/raw", func(w http.ResponseWriter, r *http.Request) {
				s, err := srv.UpgradeRaw(w, r)
				if err != nil {
					t.Errorf("UpgradeRaw: %v", err)
					return
				}
				go func() {
					ptEchoRaw(s)
					s.CloseNow()
					s.CloseNow() // a second call changes nothing
					close(closed)
				}()
			})
			ln := ptListen(t, 0, 0)
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln, mux) }()
			addr := ln.Addr().String()
			ptReady(t, addr)

			p := ptDial(t, addr, "/raw")
			p.mustEcho(frame.OpText, []byte("hi"))
			raw := func() SessionCount {
				st := srv.Stats().Sessions
				if engine == EnginePoll {
					return st.Poll.Raw
				}
				return st.Std.Raw
			}
			if n, c := srv.Sessions(), raw(); n != 1 || c.Open != 1 || c.Total != 1 {
				t.Errorf("open: Sessions() = %d, Stats raw = %+v; want 1 and {1 1}", n, c)
			}

			ctx, cancel := context.WithTimeout(context.Background(), ptWait)
			defer cancel()
			shut := make(chan error, 1)
			go func() { shut <- srv.Shutdown(ctx) }()
			if code, _ := p.mustReadClose(); code != CloseGoingAway {
				t.Errorf("Shutdown sent %v, want 1001", code)
			}
			p.mustWrite(ptCloseFrame(CloseGoingAway, ""))
			ptAwait(t, closed, "the handler's CloseNow")
			if err := <-shut; err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if err := <-served; !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve returned %v", err)
			}
			if n, c := srv.Sessions(), raw(); n != 0 || c.Open != 0 || c.Total != 1 {
				t.Errorf("closed: Sessions() = %d, Stats raw = %+v; want 0 and {0 1}", n, c)
			}
		})
	}
}

// TestRouteChainChangesTheHead has middleware change the request's header,
// URL or host, or leave them: an Events session on the poll engine sees the
// request as the chain passed it on, and its context without the chain's
// cancellation.
func TestRouteChainChangesTheHead(t *testing.T) {
	type change struct {
		name   string
		shape  func(r *http.Request)
		header string // the X-Tag the session sees
		path   string
	}
	changes := []change{
		{"none", func(r *http.Request) {}, "a", "/events/lobby"},
		{"header set", func(r *http.Request) { r.Header.Set("X-Tag", "b") }, "b", "/events/lobby"},
		{"header value", func(r *http.Request) { r.Header["X-Tag"][0] = "c" }, "c", "/events/lobby"},
		{"header added", func(r *http.Request) { r.Header.Add("X-Other", "d") }, "a", "/events/lobby"},
		{"header deleted", func(r *http.Request) { r.Header.Del("X-Tag") }, "", "/events/lobby"},
		{"path", func(r *http.Request) { r.URL.Path = "/events/elsewhere" }, "a", "/events/elsewhere"},
		{"host", func(r *http.Request) { r.Host = "example.com" }, "a", "/events/lobby"},
	}
	type saw struct {
		tag, other, path, host, key, room string
		user                              any
		ctxErr                            error
	}
	got := make(chan saw, 1)
	var shape atomic.Pointer[change]
	opts := ptOptions()
	_, addr := ptStart(t, opts, nil, func(srv *Server) http.Handler {
		mux := http.NewServeMux()
		route := srv.WebSocketEvents(Events{
			OnOpen: func(s *Session) {
				r := s.Request()
				ptPut(got, saw{
					tag: r.Header.Get("X-Tag"), other: r.Header.Get("X-Other"), path: r.URL.Path, host: r.Host,
					key: r.Header.Get("Sec-WebSocket-Key"), room: r.PathValue("room"),
					user: r.Context().Value(ctxKey("user")), ctxErr: r.Context().Err(),
				})
			},
			OnMessage: ptEcho,
		})
		mux.Handle("GET /events/{room}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r = r.WithContext(context.WithValue(r.Context(), ctxKey("user"), "ada"))
			shape.Load().shape(r)
			route.ServeHTTP(w, r)
		}))
		return mux
	})
	for i := range changes {
		c := &changes[i]
		shape.Store(c)
		p := ptDial(t, addr, "/events/lobby", "X-Tag: a")
		s := ptAwait(t, got, "the session")
		wantHost := addr
		if c.name == "host" {
			wantHost = "example.com"
		}
		wantOther := ""
		if c.name == "header added" {
			wantOther = "d"
		}
		if s.tag != c.header || s.other != wantOther || s.path != c.path || s.host != wantHost ||
			s.key == "" || s.room != "lobby" || s.user != "ada" || s.ctxErr != nil {
			t.Errorf("%s: the session saw %+v", c.name, s)
		}
		p.mustEcho(frame.OpText, []byte(c.name))
		if err := p.closeHandshake(CloseNormal, ""); err != nil {
			t.Fatal(err)
		}
	}
}
