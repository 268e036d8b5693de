package servers

import (
	"bytes"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// gorillaReadBufs lends the buffer a message is read into, so that an idle
// connection holds none and a message costs no allocation once the pool
// holds a buffer of its size.
var gorillaReadBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// gorillaWriteBufs is the Upgrader's WriteBufferPool. gorilla's docs:
// "Buffers are held for the lifetime of the connection by default. If the
// Dialer or Upgrader WriteBufferPool field is set, then a connection holds
// the write buffer only when writing a message" (package doc, Buffers), and
// "A pool is most useful when the application has a modest volume of
// writes across a large number of connections" (Upgrader.WriteBufferPool);
// *sync.Pool satisfies BufferPool (its doc says so). With the Upgrader's
// default sizes it saves nothing at idle here: without a pool gorilla
// writes into the 4 KiB buffer of net/http's hijacked bufio.Writer, which
// net/http's connection keeps while the handler runs anyway (cmd/idle -n
// 6000: 17.6 KB of RSS and 11.9 KB of heap per idle connection with the
// pool and without).
var gorillaWriteBufs = &sync.Pool{}

// gorillaMode is how a gorilla server reads its messages.
type gorillaMode uint8

const (
	// gorillaPooled reads each message from NextReader into a pooled
	// buffer and writes it back with WriteMessage, with a WriteBufferPool:
	// the fast path of gorilla's API, and the one nbio's
	// go-websocket-benchmark gives gorilla (NextReader into a buffer the
	// connection reuses).
	gorillaPooled gorillaMode = iota
	// gorillaReadMessage is the echo of gorilla's package doc and
	// examples/echo: ReadMessage and WriteMessage, default buffers, no pool.
	// ReadMessage reads each message with io.ReadAll into a new slice
	// grown as it fills.
	gorillaReadMessage
)

// startGorilla serves gorilla/websocket in a net/http handler, a goroutine
// per connection. compress sets EnableCompression, with which gorilla
// accepts permessage-deflate without context takeover and compresses
// every message it writes (EnableWriteCompression's default). Read and
// write buffers keep the Upgrader's defaults (the HTTP server's 4 KiB
// buffers, reused); WriteMessage's server fast path sends the header from
// the write buffer and the payload from the caller's slice in one writev,
// one frame, without copying it.
func (s *Server) startGorilla(ln net.Listener, mode gorillaMode, compress bool) {
	upgrader := websocket.Upgrader{EnableCompression: compress}
	if mode == gorillaPooled {
		upgrader.WriteBufferPool = gorillaWriteBufs
	}
	mux := http.NewServeMux()
	mux.HandleFunc(Path, func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		if mode == gorillaReadMessage {
			for {
				mt, p, err := c.ReadMessage()
				if err != nil {
					return
				}
				if c.WriteMessage(mt, p) != nil {
					return
				}
			}
		}
		for {
			mt, rd, err := c.NextReader()
			if err != nil {
				return
			}
			buf := gorillaReadBufs.Get().(*bytes.Buffer)
			buf.Reset()
			_, err = buf.ReadFrom(rd)
			if err == nil {
				err = c.WriteMessage(mt, buf.Bytes())
			}
			gorillaReadBufs.Put(buf)
			if err != nil {
				return
			}
		}
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if s.tls != nil {
		// ServeTLS, as net/http documents, with the certificate in
		// TLSConfig: crypto/tls on the connection's goroutine.
		hs.TLSConfig = s.tls
		go func() { s.done <- hs.ServeTLS(ln, "", "") }()
		s.stop = hs.Close
		return
	}
	go func() { s.done <- hs.Serve(ln) }()
	s.stop = hs.Close
}
