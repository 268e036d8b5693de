package wskit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/wskit/wskit/poller"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = http.ErrServerClosed

// Serve accepts connections on ln and serves h on them until Shutdown, on
// the transport Options.Engine picks. h is the application's handler,
// usually an http.ServeMux holding the server's routes beside plain HTTP
// ones; the same h serves on either engine.
//
// On the std engine Serve runs an http.Server with limits for clients that
// cannot be trusted: MaxHandshakeSize bounds a request head, which must
// arrive within HandshakeTimeout of the connection's start or of the
// previous response (ReadHeaderTimeout and IdleTimeout), and a plain
// response must be written within Timeout of its request (WriteTimeout;
// upgraded connections drop that deadline). Options.ConfigureHTTP may
// change them. On the poll engine the loops
// read each request head themselves: an upgrade to one of this server's
// routes, found in h directly or through an *http.ServeMux, is answered
// and served on the loop; any other request, a refused upgrade and a route
// wrapped in middleware go to that same http.Server, so their responses are
// net/http's. ln must then be a TCP or Unix listener: for TLS, set
// Options.TLSConfig or call ServeTLS rather than wrap ln in tls.NewListener.
//
// With Options.TLSConfig, Serve speaks TLS on every connection (wss://).
func (srv *Server) Serve(ln net.Listener, h http.Handler) error {
	return srv.serve(ln, h, srv.opts.TLSConfig)
}

// serve is Serve with TLS when cfg is set.
func (srv *Server) serve(ln net.Listener, h http.Handler, cfg *tls.Config) error {
	if srv.opts.HTTP2 && !xconnectEnabled() {
		ln.Close()
		return errNoXConnect
	}
	if cfg != nil {
		cfg = serverTLSConfig(cfg, srv.opts.HTTP2)
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: srv.opts.HandshakeTimeout,
		IdleTimeout:       srv.opts.HandshakeTimeout,
		WriteTimeout:      srv.opts.Timeout,
		MaxHeaderBytes:    srv.opts.MaxHandshakeSize,
		ErrorLog:          log.New(httpErrorLog{srv.opts.logger()}, "", 0),
	}
	if srv.opts.HTTP2 && cfg == nil {
		hs.Protocols = new(http.Protocols)
		hs.Protocols.SetHTTP1(true)
		hs.Protocols.SetUnencryptedHTTP2(true)
	}
	if srv.opts.ConfigureHTTP != nil {
		srv.opts.ConfigureHTTP(hs)
		hs.Handler = h
	}
	srv.mu.Lock()
	if srv.closing {
		srv.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	srv.https = append(srv.https, hs)
	srv.mu.Unlock()
	if srv.opts.Engine.resolve() == EngineStd {
		if tl, ok := ln.(*net.TCPListener); ok {
			ln = &keepAliveListener{tl, srv.opts.keepAliveConfig()}
		}
		// Handshakes refused for their head's size or time (see Stats).
		ln = &meteredListener{Listener: ln, srv: srv}
		hs.Handler = markServed{hs.Handler}
		hs.ConnContext = meteredContext(hs.ConnContext)
		if cfg != nil {
			hs.TLSConfig = cfg
			ln = tls.NewListener(ln, cfg)
		}
		return hs.Serve(ln)
	}
	if !poller.CanServe(ln) {
		ln.Close()
		return fmt.Errorf("wskit: the poll engine serves TCP and Unix listeners only, not a %T: for TLS, set Options.TLSConfig or call ServeTLS with the plain listener", ln)
	}
	pe, err := newPollEngine(srv, h, hs, ln.Addr())
	if err != nil {
		ln.Close()
		return err
	}
	srv.mu.Lock()
	if srv.closing {
		srv.mu.Unlock()
		pe.eng.Close()
		ln.Close()
		return ErrServerClosed
	}
	srv.polls = append(srv.polls, pe)
	srv.mu.Unlock()
	if cfg != nil {
		pe.tls = newTLSEngine(cfg)
	}
	hs.Handler = markContext{hs.Handler}
	hs.ConnContext = replayContext(hs.ConnContext)
	go hs.Serve(pe.handoff)
	if err := pe.eng.Serve(ln); err != nil && !errors.Is(err, poller.ErrClosed) {
		srv.mu.Lock()
		srv.polls = slices.DeleteFunc(srv.polls, func(p *pollEngine) bool { return p == pe })
		srv.mu.Unlock()
		pe.close()
		return err
	}
	<-pe.stopped
	return ErrServerClosed
}

// httpErrorLog is the ErrorLog of Serve's http.Server: net/http's lines go
// to the Logger at WARN, but for its failed TLS handshakes, which any
// client can cause (a scanner, a plain HTTP request, a browser that does
// not trust the certificate): those go at DEBUG, as the poll engine,
// which shakes hands itself, logs them. net/http reports them by this
// line only, so it is told by its words.
type httpErrorLog struct{ l *slog.Logger }

const tlsHandshakeErrorLine = "http: TLS handshake error from "

func (w httpErrorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	level := slog.LevelWarn
	if strings.HasPrefix(msg, tlsHandshakeErrorLine) {
		level = slog.LevelDebug
	}
	w.l.Log(context.Background(), level, msg)
	return len(p), nil
}

// ServeTLS is Serve with TLS: certFile and keyFile hold the server's
// certificate chain and key in PEM, added to a copy of Options.TLSConfig
// (or a new one), as net/http's ServeTLS does. Leave them empty when
// Options.TLSConfig has its certificates.
func (srv *Server) ServeTLS(ln net.Listener, h http.Handler, certFile, keyFile string) error {
	var cfg *tls.Config
	if srv.opts.TLSConfig != nil {
		cfg = srv.opts.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("wskit: loading the certificate: %w", err)
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	return srv.serve(ln, h, cfg)
}

// ListenAndServe listens on the TCP address addr and calls Serve.
func (srv *Server) ListenAndServe(addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return srv.Serve(ln, h)
}

// ListenAndServeTLS listens on the TCP address addr and calls ServeTLS.
func (srv *Server) ListenAndServeTLS(addr string, h http.Handler, certFile, keyFile string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return srv.ServeTLS(ln, h, certFile, keyFile)
}

// serverTLSConfig returns a copy of cfg for serving: ALPN offers
// HTTP/1.1, after HTTP/2 when h2 is set, unless cfg offers protocols of
// its own.
func serverTLSConfig(cfg *tls.Config, h2 bool) *tls.Config {
	cfg = cfg.Clone()
	if len(cfg.NextProtos) == 0 {
		cfg.NextProtos = []string{"http/1.1"}
		if h2 {
			cfg.NextProtos = []string{"h2", "http/1.1"}
		}
	}
	return cfg
}

// keepAliveListener sets TCP keep-alive on the connections it accepts.
type keepAliveListener struct {
	*net.TCPListener
	cfg net.KeepAliveConfig
}

func (l *keepAliveListener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	c.SetKeepAliveConfig(l.cfg)
	return c, nil
}

// keepAliveConfig returns TCPKeepAlive as net sees it.
func (o *Options) keepAliveConfig() net.KeepAliveConfig {
	switch d := o.TCPKeepAlive; {
	case d < 0:
		return net.KeepAliveConfig{Enable: false}
	case d == 0:
		return net.KeepAliveConfig{Enable: true} // net's defaults
	default:
		return net.KeepAliveConfig{Enable: true, Idle: d, Interval: d}
	}
}

// resolve returns the engine that runs on this platform.
func (e Engine) resolve() Engine {
	if e == EngineAuto {
		if poller.Supported {
			return EnginePoll
		}
		return EngineStd
	}
	return e
}

// ResolvedEngine returns the engine Serve runs: Options.Engine, with
// EngineAuto resolved for this platform.
func (srv *Server) ResolvedEngine() Engine { return srv.opts.Engine.resolve() }

// httpGrace bounds the wait for plain HTTP requests at Shutdown.
const httpGrace = time.Second

// stopServing stops accepting and shuts down the plain HTTP side of Serve:
// requests in progress get httpGrace; then connections that never sent a
// request (browsers keep a spare one open) are cut.
func (srv *Server) stopServing(ctx context.Context) error {
	srv.mu.Lock()
	https, polls := srv.https, srv.polls
	srv.mu.Unlock()
	for _, pe := range polls {
		pe.eng.StopAccepting()
	}
	var first error
	for _, hs := range https {
		hctx, cancel := context.WithTimeout(ctx, httpGrace)
		err := hs.Shutdown(hctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			err = hs.Close()
		}
		if first == nil && err != nil {
			first = err
		}
	}
	return first
}

// stopEngines closes the poll engines' loops, cutting what is left.
func (srv *Server) stopEngines() {
	srv.mu.Lock()
	polls := srv.polls
	srv.mu.Unlock()
	for _, pe := range polls {
		pe.close()
	}
}
