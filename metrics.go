package wskit

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"expvar"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync/atomic"

	"golang.org/x/sys/cpu"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/internal/wsconn"
	"github.com/wskit/wskit/poller"
)

// The server counts what it does in shards: the poll engine keeps one per
// event loop, which its sessions and handshakes add to, and sessions on
// goroutines share a few, each picking one when it opens. Counting is an
// atomic add on a cache line that other CPUs seldom touch, with no
// allocation, so it stays on; Stats sums the shards when asked.

// shard is one set of a server's counters. Every field is added to
// atomically.
type shard struct {
	proto    codec.Counters // frames, messages, control frames, timeouts, deflate
	queue    wsconn.Meter   // sends that found the outgoing queue full
	sessions [2][3]struct { // [engine][kind]: std, poll; default, raw, events
		opened, closed atomic.Uint64
	}
	accepted     atomic.Uint64
	refused      [numRefusals]atomic.Uint64
	incomingFull atomic.Uint64
	hub          [numHubEvents]atomic.Uint64
	_            cpu.CacheLinePad
	// tally is the loop's, on the poll engine: see loopConn.onData.
	tally codec.Tally
	_     cpu.CacheLinePad // the next shard's counters are another CPU's
}

// refusal is why an opening handshake was refused, for Stats.
type refusal uint8

const (
	refusedOther refusal = iota
	refusedMethod
	refusedUpgrade
	refusedVersion
	refusedKey
	refusedOrigin
	refusedSubprotocol
	refusedExtension
	refusedHook
	refusedLimit
	refusedTimeout
	numRefusals
)

// hubEvent is what a hub did to one of the server's sessions.
type hubEvent uint8

const (
	hubDelivered hubEvent = iota
	hubDroppedOldest
	hubDroppedLatest
	hubClosedTryAgain
	hubClosedPolicy
	numHubEvents
)

// newShards returns the shards for sessions on goroutines: about one per
// CPU, so that sessions running at once seldom share one.
func newShards() []shard { return make([]shard, max(runtime.GOMAXPROCS(0), 1)) }

// pickShard returns a shard for a session or handshake on a goroutine.
func (srv *Server) pickShard() *shard {
	return &srv.shards[int(srv.nextShard.Add(1)%uint32(len(srv.shards)))]
}

// engineIndex is the index of the shards' session counters for a session
// on the poll engine or not.
func engineIndex(onPoll bool) int {
	if onPoll {
		return 1
	}
	return 0
}

// opened counts a session opening; closed, its end.
func (sh *shard) opened(onPoll bool, kind routeKind) {
	sh.sessions[engineIndex(onPoll)][kind].opened.Add(1)
}

func (sh *shard) closed(onPoll bool, kind routeKind) {
	sh.sessions[engineIndex(onPoll)][kind].closed.Add(1)
}

// shard returns the counters of a server's session: its loop's, or those
// it picked; nil on a client.
func (s *Session) shard() *shard {
	if s.lc != nil {
		return s.lc.engine().shard(s.lc.pe)
	}
	return s.meter
}

// countHub counts a hub's event on the session's shard; a client's
// session has none.
func (s *Session) countHub(ev hubEvent) {
	if sh := s.shard(); sh != nil {
		sh.hub[ev].Add(1)
	}
}

// Stats is a snapshot of a Server's counters (see Server.Stats). Counters
// start at NewServer and only grow; the fields named Open and Conns are
// gauges, what is there now. It encodes to JSON as expvar shows it.
type Stats struct {
	// Sessions counts sessions by engine and kind.
	Sessions SessionStats
	// Handshakes counts opening handshakes, accepted or refused.
	Handshakes HandshakeStats
	// In counts what peers sent to the server's sessions, Out what the
	// sessions sent them.
	In, Out TrafficStats
	// PongTimeouts counts sessions failed (1011) because a keepalive ping
	// went unanswered for Options.Timeout; CloseTimeouts, sessions whose
	// peer did not answer our close frame within Options.Timeout.
	PongTimeouts, CloseTimeouts uint64
	// Queues counts sessions' queues running full.
	Queues QueueStats
	// Hubs counts what hubs did to the server's sessions (see HubCounts).
	Hubs HubCounts
	// Loops holds the counters of each event loop of the poll engine, in
	// the order Serve started them; empty on the std engine.
	Loops []LoopStats
}

// LoopStats are the counters of one event loop of the poll engine.
type LoopStats = poller.LoopStats

// SessionStats counts sessions by engine: on the std engine (net/http, and
// routes mounted on an http.Server of your own), and on the poll engine
// (Events sessions on its loops, default and raw ones on goroutines over
// its connections).
type SessionStats struct {
	Std, Poll SessionKinds // by the engine they run on
}

// SessionKinds counts sessions by kind: default sessions (Server.WebSocket,
// Server.Upgrade), raw ones (Server.WebSocketRaw) and Events sessions
// (Server.WebSocketEvents, Server.UpgradeEvents). Raw sessions of UpgradeRaw, which
// the server does not track, are not counted.
type SessionKinds struct {
	Default, Raw, Events SessionCount // by kind
}

// SessionCount counts sessions of one kind.
type SessionCount struct {
	Open  int64  // open now
	Total uint64 // opened since the start
}

// HandshakeStats counts opening handshakes.
type HandshakeStats struct {
	// Accepted counts upgrades answered with 101, on any route or through
	// Upgrade, UpgradeRaw and UpgradeEvents.
	Accepted uint64
	// Refused counts upgrades refused, by reason.
	Refused Refusals
}

// Refusals counts refused opening handshakes by reason, with the status
// they were answered with. Limit and Timeout count what the server reads
// under Serve (a handler mounted on an http.Server of your own leaves those
// to it): at that point the server cannot tell an upgrade from another
// request, so they count every request head refused for its size and every
// connection whose head did not come in time.
type Refusals struct {
	// Method counts requests that were not a GET (405).
	Method uint64
	// Upgrade counts requests that were not upgrades: no Upgrade:
	// websocket (426), no Connection: upgrade, or HTTP/1.0 (400).
	Upgrade uint64
	// Version counts a Sec-WebSocket-Version other than 13 (426).
	Version uint64
	// Key counts a missing or malformed Sec-WebSocket-Key (400).
	Key uint64
	// Origin counts refusals by the Origin policy or CheckOrigin (403, or
	// 400 for two Origin headers, 500 when CheckOrigin panicked).
	Origin uint64
	// Subprotocol counts requests to a route requiring subprotocols
	// (Protocols) that offered none of them (400).
	Subprotocol uint64
	// Extension counts extensions that panicked negotiating (500).
	Extension uint64
	// Hook counts refusals by an accept hook (Options.Accept, OnAccept):
	// the status of its Refusal, 403, or 500 when it panicked.
	Hook uint64
	// Limit counts request heads over MaxHandshakeSize, answered 431 by
	// net/http. Over TLS on the std engine net/http answers them without
	// the server seeing it, and they are not counted.
	Limit uint64
	// Timeout counts connections whose first request head (or TLS
	// handshake) did not arrive within HandshakeTimeout; an idle
	// keep-alive connection closed after a request was served is not
	// counted.
	Timeout uint64
	// Other counts upgrades that failed otherwise: a connection that could
	// not be taken over (500).
	Other uint64
}

// TrafficStats counts what went one way.
type TrafficStats struct {
	// Frames counts frames of every kind, fragments and control frames
	// included.
	Frames uint64
	// Text and Binary count data messages and their payload bytes, as the
	// application has them (before compressing, after inflating). A raw
	// session's message counts at its final frame.
	Text, Binary MessageStats
	// Pings and Pongs count control frames: keepalive pings and the pongs
	// answering them among them.
	Pings, Pongs uint64
	// Close counts close frames by code.
	Close CloseCodes
	// Deflate counts the payload bytes of data messages on sessions that
	// negotiated permessage-deflate: on the wire and as the application
	// has them (compressed or not), so Plain-Wire is what compression
	// saved.
	Deflate DeflateStats
}

// MessageStats counts data messages of one type.
type MessageStats struct {
	Messages uint64 // whole messages
	Bytes    uint64 // payload bytes
}

// CloseCodes counts close frames by code. Codes[i] counts code 1000+i:
// 1005 stands for a close frame with no code (1006 and 1015 never appear
// on the wire). Other counts every other code (application codes such as
// 4000 among them).
type CloseCodes struct {
	Codes [16]uint64 // codes 1000 to 1015
	Other uint64     // any other code
}

// Code returns the count of code (Other's for codes outside 1000-1015).
func (c CloseCodes) Code(code CloseCode) uint64 {
	if i := codec.CloseIndex(code); i < len(c.Codes) {
		return c.Codes[i]
	}
	return c.Other
}

// DeflateStats counts the payload bytes of messages on sessions that
// negotiated permessage-deflate.
type DeflateStats struct {
	Wire  uint64 // as sent or received
	Plain uint64 // as the application sent or received them
}

// QueueStats counts sessions' queues running full.
type QueueStats struct {
	// Full counts sends that found Options.MaxQueue bytes of output
	// waiting: under QueueBlock a send on a goroutine waits (and one on an
	// event loop is refused with ErrQueueFull); the closing policies
	// close the session (1013, 1008).
	Full uint64
	// Timeouts counts sends under QueueBlock that waited Options.Timeout
	// for room in vain (ErrQueueTimeout).
	Timeouts uint64
	// IncomingFull counts the times a session's messages not yet taken
	// filled Options.IncomingQueue, so that reading paused: a default
	// session's handler, or Events callbacks on Options.Workers, falling
	// behind.
	IncomingFull uint64
}

// HubCounts counts what hubs did to a server's sessions, whatever hub it
// was (Topics' included): counted on the session's side, they add up over
// hubs without the server knowing them, and a hub's own Stats tells its
// share. Messages delivered are counted in Stats.Out too.
type HubCounts struct {
	// Delivered counts messages hubs handed to the sessions' connections.
	Delivered uint64
	// DroppedOldest and DroppedLatest count messages dropped for a
	// subscriber under OverflowDropOldest and OverflowDropLatest; their
	// sum over a server's sessions is the sum of HubStats.Dropped over
	// the hubs they subscribe to.
	DroppedOldest, DroppedLatest uint64
	// ClosedTryAgain and ClosedPolicy count subscribers closed under
	// OverflowCloseTryAgain (1013) and OverflowClosePolicy (1008), which
	// HubStats.Disconnected counts per hub. A publish that timed out under
	// OverflowSuspend drops the message for everyone: see
	// HubStats.PublishTimeouts.
	ClosedTryAgain, ClosedPolicy uint64
}

// Stats returns a snapshot of the server's counters, summed over its
// shards; it takes no lock that sessions take, so it may be called as
// often as needed.
func (srv *Server) Stats() Stats {
	var st Stats
	for i := range srv.shards {
		st.add(&srv.shards[i])
	}
	srv.mu.Lock()
	polls := srv.polls
	srv.mu.Unlock()
	for _, pe := range polls {
		for i := range pe.shards {
			st.add(&pe.shards[i])
		}
		st.Loops = append(st.Loops, pe.eng.LoopStats()...)
	}
	return st
}

// add adds sh's counters to st.
func (st *Stats) add(sh *shard) {
	for e, kinds := range [2]*SessionKinds{&st.Sessions.Std, &st.Sessions.Poll} {
		for k, c := range [3]*SessionCount{&kinds.Default, &kinds.Raw, &kinds.Events} {
			n := &sh.sessions[e][k]
			closed := n.closed.Load() // first: no session closes before it opens
			opened := n.opened.Load()
			c.Total += opened
			c.Open += int64(opened - closed)
		}
	}
	st.Handshakes.Accepted += sh.accepted.Load()
	r := &st.Handshakes.Refused
	for i, p := range [numRefusals]*uint64{
		refusedOther: &r.Other, refusedMethod: &r.Method, refusedUpgrade: &r.Upgrade,
		refusedVersion: &r.Version, refusedKey: &r.Key, refusedOrigin: &r.Origin,
		refusedSubprotocol: &r.Subprotocol, refusedExtension: &r.Extension, refusedHook: &r.Hook,
		refusedLimit: &r.Limit, refusedTimeout: &r.Timeout,
	} {
		*p += sh.refused[i].Load()
	}
	st.In.add(&sh.proto.In)
	st.Out.add(&sh.proto.Out)
	st.PongTimeouts += sh.proto.PongTimeouts.Load()
	st.CloseTimeouts += sh.proto.CloseTimeouts.Load()
	st.Queues.Full += sh.queue.QueueFull.Load()
	st.Queues.Timeouts += sh.queue.QueueTimeouts.Load()
	st.Queues.IncomingFull += sh.incomingFull.Load()
	h := &st.Hubs
	for i, p := range [numHubEvents]*uint64{
		hubDelivered: &h.Delivered, hubDroppedOldest: &h.DroppedOldest, hubDroppedLatest: &h.DroppedLatest,
		hubClosedTryAgain: &h.ClosedTryAgain, hubClosedPolicy: &h.ClosedPolicy,
	} {
		*p += sh.hub[i].Load()
	}
}

// add adds d's counters to t.
func (t *TrafficStats) add(d *codec.Direction) {
	t.Frames += d.Frames.Load()
	t.Text.Messages += d.Messages[0].Load()
	t.Text.Bytes += d.Bytes[0].Load()
	t.Binary.Messages += d.Messages[1].Load()
	t.Binary.Bytes += d.Bytes[1].Load()
	t.Pings += d.Pings.Load()
	t.Pongs += d.Pongs.Load()
	for i := range t.Close.Codes {
		t.Close.Codes[i] += d.Close[i].Load()
	}
	t.Close.Other += d.Close[len(t.Close.Codes)].Load()
	t.Deflate.Wire += d.DeflateWire.Load()
	t.Deflate.Plain += d.DeflatePlain.Load()
}

// PublishExpvar publishes the server's Stats as the expvar variable name,
// which /debug/vars then shows (expvar's handler, mounted by importing
// expvar on http.DefaultServeMux, or expvar.Handler on any mux). The
// snapshot is taken when the variable is read, never before. Like
// expvar.Publish, it panics if name is already taken.
func (srv *Server) PublishExpvar(name string) {
	expvar.Publish(name, expvar.Func(func() any { return srv.Stats() }))
}

// The std engine's http.Server answers a request head too large (431) and
// drops a connection whose head does not come in time without calling any
// handler: meteredListener wraps the connections it serves to see both.

// meteredListener wraps the connections the std engine accepts from
// package net's listeners.
type meteredListener struct {
	net.Listener
	srv *Server
}

func (l *meteredListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
		return &meteredConn{Conn: c, sh: l.srv.pickShard()}, nil
	}
	return c, nil // a listener's own kind of connection, such as TLS, stays as it is
}

// meteredConn is a connection of the std engine until it is upgraded,
// when the session takes the connection underneath.
type meteredConn struct {
	net.Conn
	sh    *shard
	state atomic.Uint32 // connServed, connWrote, connTimedOut
}

const (
	connServed   = 1 << iota // a request reached the handler
	connWrote                // the first write was looked at
	connTimedOut             // the timeout was counted
)

// Read counts a read deadline that passes before any request on the
// connection was served: the head (or the TLS handshake) did not come in
// time.
func (c *meteredConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && c.mark(connTimedOut, connServed) {
		c.sh.refused[refusedTimeout].Add(1)
	}
	return n, err
}

// Write counts the 431 net/http writes for a head over its limit.
func (c *meteredConn) Write(p []byte) (int, error) {
	if c.mark(connWrote, connServed) && bytes.HasPrefix(p, status431) {
		c.sh.refused[refusedLimit].Add(1)
	}
	return c.Conn.Write(p)
}

// status431 starts net/http's answer to a head over MaxHeaderBytes.
var status431 = []byte("HTTP/1.1 431 ")

// mark sets bit unless it or unless is set, and reports whether it did.
func (c *meteredConn) mark(bit, unless uint32) bool {
	for {
		s := c.state.Load()
		if s&(bit|unless) != 0 {
			return false
		}
		if c.state.CompareAndSwap(s, s|bit) {
			return true
		}
	}
}

// CloseWrite shuts down the writing side, as the connection wrapped does.
func (c *meteredConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// meteredKey holds the meteredConn of a request's connection in its
// context.
type meteredKey struct{}

// meteredContext is the std engine's http.Server ConnContext: it keeps
// the meteredConn for markServed, then calls next, if set.
func meteredContext(next func(context.Context, net.Conn) context.Context) func(context.Context, net.Conn) context.Context {
	return func(ctx context.Context, c net.Conn) context.Context {
		nc := c
		if tc, ok := c.(*tls.Conn); ok {
			nc = tc.NetConn()
		}
		if mc, ok := nc.(*meteredConn); ok {
			ctx = context.WithValue(ctx, meteredKey{}, mc)
		}
		if next != nil {
			ctx = next(ctx, c)
		}
		return ctx
	}
}

// markServed is the std engine's handler: it notes that a request reached
// the handler, after which a read deadline passing is not a handshake's
// timeout.
type markServed struct{ h http.Handler }

func (m markServed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if mc, ok := r.Context().Value(meteredKey{}).(*meteredConn); ok && mc.state.Load()&connServed == 0 {
		mc.state.Or(connServed)
	}
	m.h.ServeHTTP(w, r)
}

// unwrapMetered returns the connection a meteredConn wraps, for a session
// to run on directly.
func unwrapMetered(nc net.Conn) net.Conn {
	if mc, ok := nc.(*meteredConn); ok {
		mc.state.Or(connServed)
		return mc.Conn
	}
	return nc
}
