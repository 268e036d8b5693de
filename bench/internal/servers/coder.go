package servers

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// coderBufs lends the buffer a message is read into, so that an idle
// connection holds none.
var coderBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// startCoder is coder/websocket as its README's server example and its echo
// example (internal/examples/echo, and the EchoLoop of its own tests) use it:
// websocket.Accept in an http.Handler with default AcceptOptions
// (compression off, 32 KiB read limit), then a loop that takes each
// message's Reader and copies it. The copy goes into a pooled buffer and
// back with Conn.Write, one frame, rather than io.Copy into Conn.Writer as
// the example streams: that Writer sends the data as one frame and ends
// the message with an empty final one (the exact one-frame reply the bench
// client checks at dial fails), and Conn.Read would allocate every message.
// The context has no deadline, so that no read or write arms a timer
// (Accept's doc warns against r.Context() after the hijack); Close ends the
// connections with CloseNow instead.
func (s *Server) startCoder(ln net.Listener) {
	var held connSet[*websocket.Conn]
	mux := http.NewServeMux()
	mux.HandleFunc(Path, func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		if !held.add(c) {
			c.CloseNow()
			return
		}
		defer held.done(c)
		defer c.CloseNow()
		ctx := context.Background()
		for {
			typ, rd, err := c.Reader(ctx)
			if err != nil {
				return
			}
			buf := coderBufs.Get().(*bytes.Buffer)
			buf.Reset()
			_, err = buf.ReadFrom(rd)
			if err == nil {
				err = c.Write(ctx, typ, buf.Bytes())
			}
			coderBufs.Put(buf)
			if err != nil {
				return
			}
		}
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { s.done <- hs.Serve(ln) }()
	s.stop = func() error {
		err := hs.Close()
		held.closeAll(func(c *websocket.Conn) { c.CloseNow() })
		return err
	}
}
