package wskit

import (
	"context"
	"fmt"
	"net/http"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/internal/wsconn"
	"github.com/wskit/wskit/wsraw"
)

// Upgrade takes a request over from inside any handler and returns a
// default session on it, as gorilla's Upgrader does: the checks, hooks and
// negotiation of a route configured by opts (Protocols, OnAccept) apply,
// and the 101 carries the fields set on w.Header(). When the upgrade is
// refused, the response has been written and the error is a
// *HandshakeError with its status.
//
// The session outlives the handler if need be: its context keeps the
// request's values but not its cancellation. Run it on any goroutine and
// Close it when done, which returns its buffers. Shutdown closes it with
// 1001 like the sessions of routes.
//
// Over HTTP/2 (RFC 8441, see Options.HTTP2) the session is a stream of the
// request, and net/http ends the stream when the handler returns: the
// handler must run the session to its end before it returns. A session
// whose handler returned fails at its next write with net.ErrClosed.
func (srv *Server) Upgrade(w http.ResponseWriter, r *http.Request, opts ...RouteOption) (*Session, error) {
	u, err := srv.upgradeNow(w, r, routeSession, opts)
	if err != nil {
		return nil, err
	}
	if u.h2 {
		return srv.ownedSession(u, r)
	}
	if err := writeAccept(u.nc, u.key, u.protocol, u.exts, u.header, srv.opts.HandshakeTimeout); err != nil {
		codec.ReleaseExtensions(u.exts)
		u.nc.Close()
		return nil, fmt.Errorf("wskit: writing the 101: %w", err)
	}
	return srv.ownedSession(u, r)
}

// ownedSession makes the default session of Upgrade.
func (srv *Server) ownedSession(u *upgraded, r *http.Request) (*Session, error) {
	u.r = r.WithContext(context.WithoutCancel(r.Context()))
	sh := srv.pickShard()
	s := srv.newServerSession(u, sh)
	s.owned = true
	if !srv.track(s) {
		s.Close(CloseGoingAway, "server shutting down")
		return nil, ErrServerClosed
	}
	sh.opened(u.onPoll, routeSession)
	s.onEnd = func() {
		srv.untrack(s)
		sh.closed(u.onPoll, routeSession)
	}
	return s, nil
}

// UpgradeRaw is Upgrade for a raw session (see wsraw). CloseNow it when
// done, which returns its buffers: until then it counts in Sessions and
// Stats, and Shutdown sends it 1001 and waits for it as for a route's. Over HTTP/2, as with Upgrade, the handler
// must not return before the session ends.
func (srv *Server) UpgradeRaw(w http.ResponseWriter, r *http.Request, opts ...RouteOption) (*wsraw.Session, error) {
	u, err := srv.upgradeNow(w, r, routeRaw, opts)
	if err != nil {
		return nil, err
	}
	if !u.h2 {
		if err := writeAccept(u.nc, u.key, u.protocol, nil, u.header, srv.opts.HandshakeTimeout); err != nil {
			u.nc.Close()
			return nil, fmt.Errorf("wskit: writing the 101: %w", err)
		}
	}
	sh := srv.pickShard()
	c := wsconn.New(u.nc, u.buffered, srv.connConfig(codec.Server, true, sh))
	// Shutdown sends it 1001 and Stats count it, as a route's raw session;
	// it leaves both at its CloseNow.
	var tracked *rawSession
	s := newRawSession(c, r.WithContext(context.WithoutCancel(r.Context())), u.protocol, true, func() {
		if tracked != nil {
			srv.untrack(tracked)
			sh.closed(u.onPoll, routeRaw)
		}
	})
	rs := &rawSession{Session: s, c: c}
	if !srv.track(rs) {
		rs.goingAway()
		s.CloseNow()
		return nil, ErrServerClosed
	}
	tracked = rs
	sh.opened(u.onPoll, routeRaw)
	return s, nil
}

// UpgradeEvents takes a request over from inside any handler and runs the
// callbacks of ev on the session, as a route of Server.WebSocketEvents would: on the
// poll engine's event loop, with no goroutine, or on a goroutine of its own
// on the std engine. It returns once the session is open; the handler may
// return then. When the upgrade is refused, the response has been written
// and the error is a *HandshakeError. Over HTTP/2 it returns when the
// session ends, since the stream ends with the handler.
func (srv *Server) UpgradeEvents(w http.ResponseWriter, r *http.Request, ev Events, opts ...RouteOption) error {
	rt := srv.newRoute(routeEvents, opts)
	rt.events = ev
	u, err := srv.upgradeNow(w, r, routeEvents, opts)
	if err != nil {
		return err
	}
	if u.poll != nil {
		u.poll.attach(u, rt)
		return nil
	}
	if u.h2 {
		rt.serveConn(u) // an HTTP/2 stream ends with the handler
		u.nc.Close()
		return nil
	}
	if err := writeAccept(u.nc, u.key, u.protocol, u.exts, u.header, srv.opts.HandshakeTimeout); err != nil {
		codec.ReleaseExtensions(u.exts)
		u.nc.Close()
		return fmt.Errorf("wskit: writing the 101: %w", err)
	}
	u.r = r.WithContext(context.WithoutCancel(r.Context()))
	go rt.serveConn(u)
	return nil
}

// upgradeNow runs the accepting part of an upgrade for the Upgrade methods.
func (srv *Server) upgradeNow(w http.ResponseWriter, r *http.Request, kind routeKind, opts []RouteOption) (*upgraded, error) {
	var cfg routeConfig
	for _, o := range opts {
		o(&cfg)
	}
	u, herr := srv.accept(w, r, kind, &cfg)
	if herr != nil {
		return nil, &HandshakeError{StatusCode: herr.status, Reason: http.StatusText(herr.status), Body: herr.msg}
	}
	return u, nil
}
