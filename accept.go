package wskit

import (
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/wskit/wskit/codec"
)

// Handshake is an opening handshake that passed the protocol's checks, as
// the accept hooks see it (Options.Accept, then the route's OnAccept): they
// may refuse it, add headers to the 101 response, and attach values to the
// session it opens (see Key).
//
// The hooks run on the goroutine that serves the request: net/http's, on
// either engine. On the poll engine a route with a hook is never answered
// on the event loop, so a hook may block (a database lookup, say); the
// connection returns to the loop once the session is open.
type Handshake struct {
	// Request is the upgrade request as the handler chain passed it on.
	Request *http.Request
	// Header holds fields for the 101 response. It starts with those the
	// chain set on the ResponseWriter (a session cookie from a middleware,
	// say); the handshake's own (Upgrade, Connection, Sec-WebSocket-*) are
	// set by wskit and cannot be replaced.
	Header http.Header
	// Subprotocol is the subprotocol selected, or "".
	Subprotocol string

	vals *valueSet
}

// Refusal is an error an accept hook returns to refuse an upgrade with an
// HTTP response of its choosing, such as 401 with WWW-Authenticate.
type Refusal struct {
	Status int         // the response's status; 0 means 403 Forbidden
	Header http.Header // fields added to the response
	Body   string      // the response body, sent as text/plain
}

// Refuse returns a Refusal with status and body.
func Refuse(status int, body string) *Refusal { return &Refusal{Status: status, Body: body} }

// Error reports the status and body the refusal answers with.
func (r *Refusal) Error() string {
	return fmt.Sprintf("wskit: upgrade refused with %d: %s", r.status(), r.Body)
}

func (r *Refusal) status() int {
	if r.Status == 0 {
		return http.StatusForbidden
	}
	return r.Status
}

// ErrRefused is the error a hook may return to refuse an upgrade without
// saying more: 403 Forbidden. Any error that is not a *Refusal is answered
// so, and logged at debug level.
var ErrRefused = errors.New("wskit: upgrade refused")

// RouteOption configures one route: its subprotocols or its accept hook.
type RouteOption func(*routeConfig)

type routeConfig struct {
	protocols []string
	accept    func(*Handshake) error
}

// Protocols makes a route require one of the named subprotocols: a client
// that offers none of them is refused (400); the first listed that the
// client offered is selected. Without it, Options.Subprotocols applies and
// is optional. Names must be HTTP tokens.
func Protocols(names ...string) RouteOption {
	mustTokens(names)
	names = append([]string(nil), names...)
	return func(c *routeConfig) { c.protocols = names }
}

// OnAccept sets the route's accept hook, which runs after Options.Accept
// (see Handshake). A panic in it refuses the upgrade with 500 and is
// logged.
func OnAccept(hook func(*Handshake) error) RouteOption {
	return func(c *routeConfig) { c.accept = hook }
}

// runAccept runs the server's and the route's accept hooks, recovering a
// panic, and returns the refusal to send if they refuse.
func (srv *Server) runAccept(hs *Handshake, route func(*Handshake) error) *handshakeError {
	for _, hook := range [2]func(*Handshake) error{srv.opts.Accept, route} {
		if hook == nil {
			continue
		}
		err := callAccept(hook, hs)
		if err == nil {
			continue
		}
		var pan *codec.PanicError
		if errors.As(err, &pan) {
			return srv.opts.hookPanicked(hs.Request, err, refusedHook)
		}
		var ref *Refusal
		if errors.As(err, &ref) {
			return &handshakeError{status: ref.status(), msg: ref.Body, extra: ref.Header, why: refusedHook}
		}
		srv.opts.logger().Debug("wskit: upgrade refused by an accept hook", "err", err, "remote", hs.Request.RemoteAddr, "path", hs.Request.URL.Path)
		return refuse(refusedHook, http.StatusForbidden, "wskit: upgrade refused")
	}
	return nil
}

func callAccept(hook func(*Handshake) error, hs *Handshake) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = codec.Recovered(v, "accept hook")
		}
	}()
	return hook(hs)
}

// Key names a per-session value of type T: state an application attaches
// to a session (the user an accept hook authenticated, a room) and reads in
// every callback and after the end, without a map of its own. Values are
// safe to set and get from any goroutine. Values that middleware put in the
// request's context are read with Session.Context().Value, as usual.
type Key[T any] struct{ name string }

// NewKey returns a new key; name is for String only.
func NewKey[T any](name string) *Key[T] { return &Key[T]{name: name} }

// String returns the key's name, as given to NewKey.
func (k *Key[T]) String() string { return "wskit.Key(" + k.name + ")" }

// ValueHolder is what holds per-session values: a *Session, or the
// *Handshake that opens it (values set there pass to the session).
type ValueHolder interface{ values(create bool) *valueSet }

// Set attaches v to h under k, replacing what k held.
func (k *Key[T]) Set(h ValueHolder, v T) { h.values(true).set(k, v) }

// Get returns the value h holds under k, and whether it holds one.
func (k *Key[T]) Get(h ValueHolder) (v T, ok bool) {
	vs := h.values(false)
	if vs == nil {
		return v, false
	}
	x, ok := vs.get(k)
	if !ok {
		return v, false
	}
	return x.(T), true
}

// Delete removes the value h holds under k.
func (k *Key[T]) Delete(h ValueHolder) {
	if vs := h.values(false); vs != nil {
		vs.delete(k)
	}
}

// valueSet is a session's values: a few, so a list.
type valueSet struct {
	mu sync.Mutex
	kv []keyValue
}

type keyValue struct {
	k any // a *Key[T]
	v any
}

func (vs *valueSet) set(k, v any) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	for i := range vs.kv {
		if vs.kv[i].k == k {
			vs.kv[i].v = v
			return
		}
	}
	vs.kv = append(vs.kv, keyValue{k, v})
}

func (vs *valueSet) get(k any) (any, bool) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	for _, kv := range vs.kv {
		if kv.k == k {
			return kv.v, true
		}
	}
	return nil, false
}

func (vs *valueSet) delete(k any) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	for i, kv := range vs.kv {
		if kv.k == k {
			vs.kv = append(vs.kv[:i], vs.kv[i+1:]...)
			return
		}
	}
}

func (hs *Handshake) values(create bool) *valueSet {
	if hs.vals == nil && create {
		hs.vals = new(valueSet)
	}
	return hs.vals
}
