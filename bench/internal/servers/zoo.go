// Package servers starts the echo servers that the end-to-end benchmarks
// and the idle-memory tool compare, each by name, on a given listener. Every
// WebSocket server echoes each message back on the path /echo; tcp and its
// variants echo raw bytes on any connection.
package servers

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/internal/cli"
	"github.com/wskit/wskit/internal/selfsign"
	"github.com/wskit/wskit/poller"
)

// Path is the route every WebSocket server echoes on.
const Path = "/echo"

// URI is what clients ask for: Path, with the token that the auth
// middleware of wskit-poll-events-chain checks (the others ignore it).
const URI = Path + "?token=bench"

// Names lists the main implementations, gorilla first so that benchstat
// -col /impl reads the others against it.
var Names = []string{
	"gorilla",
	"coder",
	"gobwas",
	"gobwas-epoll",
	"gws",
	"nbio",
	"nbio-sync",
	"wskit-std",
	"wskit-poll-session",
	"wskit-poll-events",
	"tcp",
}

// Variants are further implementations, started by name but left out of
// the default runs.
var Variants = []string{
	"gobwas-batch",
	"gobwas-epoll-batch",
	"gws-serial",
	"gorilla-readmessage",
	"tcp-block",
	"tcp-lt",
	"wskit-poll-session-block",
	"wskit-poll-events-block",
	"gorilla-deflate",
	"wskit-std-deflate",
	"wskit-std-deflate-nocontext",
	"wskit-poll-events-deflate",
	"wskit-poll-events-deflate-nocontext",
	"wskit-poll-events-chain",
	"wskit-std-chain",
	"wskit-std-http2",
	"wskit-poll-events-http2",
	"wskit-serve-poll",
	"wskit-serve-std",
	"wskit-serve-poll-deflate",
}

// TLSVariants serve wss://, each the server of its name without -tls set
// up for TLS as its library documents (see the package doc of bench), with
// a self-signed ECDSA P-256 certificate made when it starts:
//
//	gorilla-tls             net/http's Server.ServeTLS: crypto/tls, a goroutine per connection
//	gws-tls                 tls.NewListener, as gws's Server.RunTLS does, under net/http
//	nbio-tls, nbio-sync-tls nbhttp's AddrsTLS and TLSConfig: nbio's fork of crypto/tls on its loops
//	wskit-std-tls           Options.TLSConfig: crypto/tls, a goroutine per connection
//	wskit-poll-events-tls   Options.TLSConfig: handshake off the loop, TLS 1.3 records on the loop
//	wskit-poll-session-tls  Options.TLSConfig: a default session, served through net/http over crypto/tls
var TLSVariants = []string{
	"gorilla-tls",
	"gws-tls",
	"nbio-tls",
	"nbio-sync-tls",
	"wskit-std-tls",
	"wskit-poll-events-tls",
	"wskit-poll-session-tls",
}

// IsTLS reports whether impl serves wss://.
func IsTLS(impl string) bool { return strings.HasSuffix(impl, "-tls") }

// Scheme is the URL scheme a client of impl dials: tcp, ws or wss.
func Scheme(impl string) string {
	switch {
	case IsRaw(impl):
		return "tcp"
	case IsTLS(impl):
		return "wss"
	}
	return "ws"
}

// Deflate reports whether impl accepts permessage-deflate (RFC 7692) when
// a client offers it: the -deflate variants, whose names say how. They
// compress what they echo to a client that negotiated it.
//
//	gorilla-deflate                      gorilla's Upgrader.EnableCompression (no context takeover either way, gorilla's only mode)
//	wskit-std-deflate                    wskit-std with codec.PerMessageDeflate{}: context takeover both ways
//	wskit-std-deflate-nocontext          wskit-std with ServerNoContextTakeover and ClientNoContextTakeover
//	wskit-poll-events-deflate            wskit-poll-events with codec.PerMessageDeflate{}
//	wskit-poll-events-deflate-nocontext  wskit-poll-events with both NoContextTakeover options
func Deflate(impl string) bool {
	return strings.HasSuffix(impl, "-deflate") || strings.HasSuffix(impl, "-deflate-nocontext")
}

// IsRaw reports whether impl echoes raw TCP bytes rather than WebSocket
// messages.
func IsRaw(impl string) bool {
	switch impl {
	case "tcp", "tcp-block", "tcp-lt":
		return true
	}
	return false
}

// Known reports whether impl names a server.
func Known(impl string) bool {
	for _, n := range Names {
		if n == impl {
			return true
		}
	}
	for _, n := range Variants {
		if n == impl {
			return true
		}
	}
	return slices.Contains(TLSVariants, impl)
}

// Server is a running echo server.
type Server struct {
	Impl string
	// ClientTLS, for a TLS variant, is a client configuration that trusts
	// the server's certificate; nil otherwise.
	ClientTLS *tls.Config
	tls       *tls.Config // the server's, nil for plain TCP
	cert      *selfsign.Cert
	stop      func() error
	done      chan error
}

// Close stops the server and the connections it holds.
func (s *Server) Close() error {
	err := s.stop()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		if err == nil {
			err = fmt.Errorf("servers: %s did not stop within 5s", s.Impl)
		}
	}
	return err
}

// Start serves impl on ln until Close. ln must be a TCP listener; Start
// owns it from then on.
func Start(impl string, ln net.Listener) (*Server, error) {
	s := &Server{Impl: impl, done: make(chan error, 1)}
	var err error
	if IsTLS(impl) {
		if !slices.Contains(TLSVariants, impl) {
			ln.Close()
			return nil, fmt.Errorf("servers: unknown implementation %q", impl)
		}
		if s.cert, err = selfsign.New(); err != nil {
			ln.Close()
			return nil, err
		}
		s.tls = s.cert.ServerConfig()
		s.ClientTLS = s.cert.ClientConfig()
		impl = strings.TrimSuffix(impl, "-tls")
	}
	var deflate *codec.PerMessageDeflate
	switch {
	case strings.HasSuffix(impl, "-deflate"):
		deflate = &codec.PerMessageDeflate{}
	case strings.HasSuffix(impl, "-deflate-nocontext"):
		deflate = &codec.PerMessageDeflate{ServerNoContextTakeover: true, ClientNoContextTakeover: true}
	}
	switch impl {
	case "wskit-poll-events", "wskit-poll-events-block":
		err = s.startWskit(ln, wskit.EnginePoll, true, impl != "wskit-poll-events", nil)
	case "wskit-poll-events-chain":
		err = s.startWskitChain(ln, wskit.EnginePoll)
	case "wskit-std-chain":
		err = s.startWskitChain(ln, wskit.EngineStd)
	case "wskit-poll-session", "wskit-poll-session-block":
		err = s.startWskit(ln, wskit.EnginePoll, false, impl != "wskit-poll-session", nil)
	case "wskit-std":
		err = s.startWskit(ln, wskit.EngineStd, false, false, nil)
	case "wskit-poll-events-deflate", "wskit-poll-events-deflate-nocontext":
		err = s.startWskit(ln, wskit.EnginePoll, true, false, deflate)
	case "wskit-std-deflate", "wskit-std-deflate-nocontext":
		err = s.startWskit(ln, wskit.EngineStd, false, false, deflate)
	case "wskit-std-http2":
		err = s.startWskitHTTP2(ln, wskit.EngineStd, false)
	case "wskit-poll-events-http2":
		err = s.startWskitHTTP2(ln, wskit.EnginePoll, true)
	case "wskit-serve-poll", "wskit-serve-std", "wskit-serve-poll-deflate":
		err = s.startServe(ln, strings.TrimSuffix(strings.TrimPrefix(impl, "wskit-serve-"), "-deflate"))
	case "gorilla":
		s.startGorilla(ln, gorillaPooled, false)
	case "gorilla-readmessage":
		s.startGorilla(ln, gorillaReadMessage, false)
	case "gorilla-deflate":
		s.startGorilla(ln, gorillaPooled, true)
	case "coder":
		s.startCoder(ln)
	case "gobwas", "gobwas-batch":
		s.startGobwas(ln, impl == "gobwas-batch")
	case "gobwas-epoll", "gobwas-epoll-batch":
		err = s.startGobwasEpoll(ln, impl == "gobwas-epoll-batch")
	case "gws":
		s.startGws(ln, true)
	case "gws-serial":
		s.startGws(ln, false)
	case "nbio":
		err = s.startNbio(ln, false)
	case "nbio-sync":
		err = s.startNbio(ln, true)
	case "tcp":
		err = s.startTCP(ln, poller.Config{})
	case "tcp-block":
		err = s.startTCP(ln, poller.Config{Wait: poller.WaitBlock})
	case "tcp-lt":
		err = s.startTCP(ln, poller.Config{LevelTriggered: true})
	default:
		err = fmt.Errorf("servers: unknown implementation %q", impl)
	}
	if err != nil {
		ln.Close()
		return nil, err
	}
	return s, nil
}

// startWskit serves the echo route with DefaultOptions on engine: as Events
// (run on the poll engine's loops) or as a default session ranging over
// Messages (a goroutine per session); block sets Options.BlockingLoops, and
// deflate, when not nil, is installed as the one extension.
func (s *Server) startWskit(ln net.Listener, engine wskit.Engine, events, block bool, deflate *codec.PerMessageDeflate) error {
	opts := wskit.DefaultOptions()
	opts.Engine = engine
	opts.BlockingLoops = block
	opts.TLSConfig = s.tls
	if deflate != nil {
		opts.Extensions = []codec.Extension{deflate}
	}
	return s.serveWskit(ln, opts, events)
}

// MaxStreams is the number of concurrent streams the -http2 variants allow
// on one HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS), each stream
// a session: net/http's default is 250.
const MaxStreams = 1000

// startWskitHTTP2 is startWskit with Options.HTTP2: WebSockets over
// cleartext HTTP/2 (h2c, RFC 8441) beside HTTP/1.1 upgrades, MaxStreams
// of them on a connection. The program must have enabled net/http's
// extended CONNECT (import github.com/wskit/wskit/xconnect in its main
// package, as cmd/h2mux and cmd/benchserver do).
func (s *Server) startWskitHTTP2(ln net.Listener, engine wskit.Engine, events bool) error {
	if !strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1") {
		ln.Close()
		return fmt.Errorf("servers: %s needs net/http's extended CONNECT: import github.com/wskit/wskit/xconnect in package main", s.Impl)
	}
	opts := wskit.DefaultOptions()
	opts.Engine = engine
	opts.HTTP2 = true
	opts.ConfigureHTTP = func(hs *http.Server) {
		hs.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: MaxStreams}
	}
	return s.serveWskit(ln, opts, events)
}

// serveWskit serves the echo route with opts: as Events or as a default
// session ranging over Messages.
func (s *Server) serveWskit(ln net.Listener, opts wskit.Options, events bool) error {
	srv, err := wskit.NewServer(opts)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	if events {
		mux.Handle(Path, srv.WebSocketEvents(wskit.Events{OnMessage: func(ss *wskit.Session, m wskit.Message) {
			ss.Send(m.Type, m.Payload)
		}}))
	} else {
		mux.Handle(Path, srv.WebSocket(func(ss *wskit.Session) {
			for m := range ss.Messages() {
				if ss.Send(m.Type, m.Payload) != nil {
					return
				}
			}
		}))
	}
	go func() { s.done <- srv.Serve(ln, mux) }()
	s.stop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return srv.Shutdown(ctx)
	}
	return nil
}

// startWskitChain serves the Events echo behind three middlewares, as an
// application would: a logger (counting requests and their time), an auth
// check (the query's token, or 401; the user goes in the context) and a
// session cookie (Set-Cookie, which goes out in the 101).
func (s *Server) startWskitChain(ln net.Listener, engine wskit.Engine) error {
	opts := wskit.DefaultOptions()
	opts.Engine = engine
	srv, err := wskit.NewServer(opts)
	if err != nil {
		return err
	}
	var requests, nanos atomic.Int64
	logger := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			next.ServeHTTP(w, r)
			requests.Add(1)
			nanos.Add(int64(time.Since(start)))
		})
	}
	type userKey struct{}
	auth := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("token") != "bench" {
				w.Header().Set("WWW-Authenticate", "Bearer")
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, "bench")))
		})
	}
	cookie := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.SetCookie(w, &http.Cookie{Name: "session", Value: "s1", Path: "/", HttpOnly: true})
			next.ServeHTTP(w, r)
		})
	}
	mux := http.NewServeMux()
	mux.Handle(Path, logger(auth(cookie(srv.WebSocketEvents(wskit.Events{OnMessage: func(ss *wskit.Session, m wskit.Message) {
		ss.Send(m.Type, m.Payload)
	}})))))
	go func() { s.done <- srv.Serve(ln, mux) }()
	s.stop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return srv.Shutdown(ctx)
	}
	return nil
}

// startServe runs wskit serve with its default flags but -engine, whose
// /echo is a default session behind its logging: what a user who tries
// the command gets. It serves on ln's address, which it closes first. It
// accepts permessage-deflate (-deflate is on by default); the -deflate
// variant's clients offer it, as browsers do.
func (s *Server) startServe(ln net.Listener, engine string) error {
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		args := []string{"serve", "-addr", addr, "-engine", engine, "-log-level", "warn"}
		if code := cli.Run(ctx, args, nil, io.Discard, os.Stderr, nil); code != 0 {
			s.done <- fmt.Errorf("servers: wskit serve exited with %d", code)
			return
		}
		s.done <- nil
	}()
	s.stop = func() error { cancel(); return nil }
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			cancel()
			return err
		}
	}
}

// tcpEcho writes back every byte it reads, on the poller's loop.
type tcpEcho struct{}

func (tcpEcho) OnOpen(c *poller.Conn) {}
func (tcpEcho) OnData(c *poller.Conn, in []byte) {
	c.Lock()
	c.Commit(append(c.Buffer(len(in)), in...))
	c.Unlock()
}
func (tcpEcho) OnTimer(c *poller.Conn)            {}
func (tcpEcho) OnClose(c *poller.Conn, err error) {}

// startTCP echoes raw TCP on wskit's poller with cfg: the ceiling a
// WebSocket server on the same loops can approach.
func (s *Server) startTCP(ln net.Listener, cfg poller.Config) error {
	eng, err := poller.New(cfg, tcpEcho{})
	if err != nil {
		return err
	}
	go func() { s.done <- eng.Serve(ln) }()
	s.stop = eng.Close
	return nil
}
