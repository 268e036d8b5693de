package fanout

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The timing of the classic hub, as in gorilla's chat example.
const (
	gorillaWriteWait  = 10 * time.Second // longest write of one message
	gorillaPongWait   = 60 * time.Second // longest silence from the peer
	gorillaPingPeriod = gorillaPongWait * 9 / 10
	gorillaReadLimit  = 512 // largest message read from a peer
	gorillaSendQueue  = 256 // messages a client may lag behind
)

// gorillaHub is the broadcast hub of gorilla/websocket's chat example: one
// goroutine owns the set of clients and takes registrations,
// unregistrations and broadcasts from channels; each client has a send
// queue (a channel of gorillaSendQueue messages) drained by its writePump
// goroutine, and a readPump goroutine that reads control frames and notices
// the connection's end. A client whose queue is full when a message comes is
// dropped. Two differences. Each message is framed once, as a
// PreparedMessage, and written with WritePreparedMessage, after gorilla's
// doc of that type: "Use PreparedMessage to efficiently send a message
// payload to multiple connections". And writePump writes every message as
// a WebSocket message of its own, where the chat example joins the
// messages waiting in its queue with newlines into one, which would deliver
// something else. Subscribers send nothing, so readPump broadcasts nothing.
type gorillaHub struct {
	clients    map[*gorillaClient]struct{} // owned by run
	register   chan *gorillaClient
	unregister chan *gorillaClient
	broadcast  chan *websocket.PreparedMessage
	quit       chan struct{} // closed by Close
	stopped    chan struct{} // closed when run returns
	count      atomic.Int64  // len(clients), for Subscribers
	pumps      sync.WaitGroup
	hs         *http.Server
	upgrader   websocket.Upgrader
}

type gorillaClient struct {
	hub  *gorillaHub
	conn *websocket.Conn
	send chan *websocket.PreparedMessage
}

// startGorillaHub serves the hub on ln, upgrading on Path with the chat
// example's buffer sizes.
func startGorillaHub(ln net.Listener) *gorillaHub {
	h := &gorillaHub{
		clients:    make(map[*gorillaClient]struct{}),
		register:   make(chan *gorillaClient),
		unregister: make(chan *gorillaClient),
		broadcast:  make(chan *websocket.PreparedMessage),
		quit:       make(chan struct{}),
		stopped:    make(chan struct{}),
		upgrader:   websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024},
	}
	mux := http.NewServeMux()
	mux.HandleFunc(Path, h.serveWS)
	h.hs = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go h.run()
	go h.hs.Serve(ln)
	return h
}

func (h *gorillaHub) run() {
	defer close(h.stopped)
	drop := func(c *gorillaClient) {
		delete(h.clients, c)
		close(c.send)
		h.count.Add(-1)
	}
	for {
		select {
		case c := <-h.register:
			h.clients[c] = struct{}{}
			h.count.Add(1)
		case c := <-h.unregister:
			if _, ok := h.clients[c]; ok {
				drop(c)
			}
		case m := <-h.broadcast:
			for c := range h.clients {
				select {
				case c.send <- m:
				default:
					drop(c)
				}
			}
		case <-h.quit:
			for c := range h.clients {
				drop(c)
			}
			return
		}
	}
}

func (h *gorillaHub) serveWS(w http.ResponseWriter, r *http.Request) {
	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &gorillaClient{hub: h, conn: conn, send: make(chan *websocket.PreparedMessage, gorillaSendQueue)}
	h.pumps.Add(2) // before registering, so that Close waits for them
	select {
	case h.register <- c:
	case <-h.stopped:
		h.pumps.Add(-2)
		conn.Close()
		return
	}
	go c.writePump()
	go c.readPump()
}

// readPump reads until the connection fails, answering pings and taking
// pongs, which extend the read deadline, then unregisters the client.
func (c *gorillaClient) readPump() {
	defer func() {
		select {
		case c.hub.unregister <- c:
		case <-c.hub.stopped:
		}
		c.conn.Close()
		c.hub.pumps.Done()
	}()
	c.conn.SetReadLimit(gorillaReadLimit)
	c.conn.SetReadDeadline(time.Now().Add(gorillaPongWait))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(gorillaPongWait))
	})
	for {
		if _, _, err := c.conn.ReadMessage(); err != nil {
			return
		}
	}
}

// writePump writes the client's queue, each message on its own (the frame
// its PreparedMessage holds), and a ping every gorillaPingPeriod; when the
// hub closes the queue it sends a close frame and closes the connection.
func (c *gorillaClient) writePump() {
	ping := time.NewTicker(gorillaPingPeriod)
	defer func() {
		ping.Stop()
		c.conn.Close()
		c.hub.pumps.Done()
	}()
	for {
		select {
		case m, ok := <-c.send:
			c.conn.SetWriteDeadline(time.Now().Add(gorillaWriteWait))
			if !ok {
				c.conn.WriteMessage(websocket.CloseMessage, []byte{})
				return
			}
			if err := c.conn.WritePreparedMessage(m); err != nil {
				return
			}
		case <-ping.C:
			c.conn.SetWriteDeadline(time.Now().Add(gorillaWriteWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

// Publish frames a copy of p once, as a PreparedMessage, and hands it to the
// hub goroutine, as the chat example's readPump hands over each message it
// reads.
func (h *gorillaHub) Publish(ctx context.Context, p []byte) error {
	pm, err := websocket.NewPreparedMessage(websocket.BinaryMessage, bytes.Clone(p))
	if err != nil {
		return err
	}
	select {
	case h.broadcast <- pm:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-h.stopped:
		return net.ErrClosed
	}
}

func (h *gorillaHub) Subscribers() int { return int(h.count.Load()) }

// Close stops the hub, which closes every client's queue (and so its
// connection), and the listener.
func (h *gorillaHub) Close() error {
	close(h.quit)
	err := h.hs.Close()
	done := make(chan struct{})
	go func() {
		h.pumps.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("fanout: gorilla-hub: clients still running 10s after Close")
	}
	return err
}
