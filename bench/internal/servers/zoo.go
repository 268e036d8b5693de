// Package servers starts the echo servers that the end-to-end benchmarks
// and the idle-memory tool compare, each by name, on a given listener. Every
// WebSocket server echoes each message back on the path /echo; tcp and its
// variants echo raw bytes on any connection.
package servers

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/internal/cli"
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
	"wskit-serve-poll",
	"wskit-serve-std",
	"wskit-serve-poll-deflate",
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
	return false
}

// Server is a running echo server.
type Server struct {
	Impl string
	stop func() error
	done chan error
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
	if deflate != nil {
		opts.Extensions = []codec.Extension{deflate}
	}
	srv, err := wskit.NewServer(opts)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	if events {
		mux.Handle(Path, srv.Handle(wskit.Events{OnMessage: func(ss *wskit.Session, m wskit.Message) {
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
	mux.Handle(Path, logger(auth(cookie(srv.Handle(wskit.Events{OnMessage: func(ss *wskit.Session, m wskit.Message) {
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
