package servers

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/lxzan/gws"
)

// gwsEcho is the event handler of gws's echo example: OnMessage writes the
// message back and releases it (message.Close returns its buffer to gws's
// pool), OnPing answers with the ping's payload. OnOpen and OnClose keep
// the set Close ends.
type gwsEcho struct {
	held *connSet[*gws.Conn]
}

func (h gwsEcho) OnOpen(c *gws.Conn) {
	if !h.held.add(c) {
		c.NetConn().Close()
	}
}

func (h gwsEcho) OnClose(c *gws.Conn, err error) {
	h.held.done(c)
}

func (h gwsEcho) OnPing(c *gws.Conn, payload []byte) { c.WritePong(payload) }
func (h gwsEcho) OnPong(c *gws.Conn, payload []byte) {}

func (h gwsEcho) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	c.WriteMessage(m.Opcode, m.Bytes())
}

// startGws is lxzan/gws as its README's "Best Practice" serves: a
// gws.Upgrader with ParallelEnabled (OnMessage runs on up to
// ParallelGolimit, 8, goroutines per connection) and Recovery, its
// Upgrade in a net/http handler and the connection's ReadLoop on a
// goroutine of its own (so the request's context can be collected).
// Compression stays off and, like the other servers, no read deadline is
// set (the README's OnOpen sets one for its ping interval). gws.Server's
// own Run/RunListener is not used: it accepts in a loop that never returns
// once the listener is closed.
// Parallel OnMessage calls answer a connection's messages in any order;
// without (gws-serial) they run one at a time on ReadLoop's
// goroutine, in order.
func (s *Server) startGws(ln net.Listener, parallel bool) {
	held := &connSet[*gws.Conn]{}
	upgrader := gws.NewUpgrader(gwsEcho{held}, &gws.ServerOption{
		ParallelEnabled: parallel,
		Recovery:        gws.Recovery,
	})
	mux := http.NewServeMux()
	mux.HandleFunc(Path, func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r)
		if err != nil {
			return
		}
		go c.ReadLoop()
	})
	if s.tls != nil {
		// The listener gws's Server.RunTLS makes: tls.NewListener with
		// ALPN http/1.1.
		cfg := s.tls.Clone()
		cfg.NextProtos = []string{"http/1.1"}
		ln = tls.NewListener(ln, cfg)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { s.done <- hs.Serve(ln) }()
	s.stop = func() error {
		err := hs.Close()
		held.closeAll(func(c *gws.Conn) { c.NetConn().Close() })
		return err
	}
}
