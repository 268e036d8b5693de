package wskit_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/codec"
)

// wsURL returns the ws:// URL of an httptest server.
func wsURL(hs *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(hs.URL, "http") + path
}

// Serve runs routes on a listener with the server's engine (the poll
// engine on Linux); Shutdown closes the sessions with 1001 Going Away and
// makes Serve return ErrServerClosed.
func ExampleServer_Serve() {
	srv, err := wskit.NewServer(wskit.Options{}) // zero fields mean their defaults
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /echo", srv.WebSocket(func(s *wskit.Session) {
		for m := range s.Messages() {
			s.Send(m.Type, m.Payload)
		}
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, mux) }()

	ctx := context.Background()
	c, err := wskit.Dial(ctx, "ws://"+ln.Addr().String()+"/echo", nil)
	if err != nil {
		log.Fatal(err)
	}
	c.SendText("hello")
	m, _ := c.Receive(ctx)
	fmt.Println(m.Text())

	shutdown, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		log.Fatal(err)
	}
	_, err = c.Receive(ctx)
	fmt.Println(wskit.CloseStatus(err))
	fmt.Println(errors.Is(<-served, wskit.ErrServerClosed))
	c.Close(wskit.CloseNormal, "")
	// Output:
	// hello
	// 1001 going away
	// true
}

// DialOptions set what the handshake sends (headers, subprotocols through
// Options) and how the connection is made; Response is the server's 101.
func ExampleDial() {
	srv, err := wskit.NewServer(wskit.Options{})
	if err != nil {
		log.Fatal(err)
	}
	route := srv.WebSocket(func(s *wskit.Session) {
		s.SendText("hello, " + s.Request().Header.Get("X-User"))
	}, wskit.Protocols("chat.v2"))
	hs := httptest.NewServer(route)
	defer hs.Close()

	ctx := context.Background()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	c, err := wskit.Dial(ctx, wsURL(hs, "/"), &wskit.DialOptions{
		Options:        wskit.Options{Subprotocols: []string{"chat.v2", "chat.v1"}},
		Header:         http.Header{"X-User": {"ada"}},
		NetDialContext: dialer.DialContext, // a dialer of your own
		Proxy:          nil,                // nil: HTTPS_PROXY and the like, as net/http does
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(wskit.CloseNormal, "")
	fmt.Println(c.Subprotocol(), c.Response().StatusCode)
	m, _ := c.Receive(ctx)
	fmt.Println(m.Text())
	// Output:
	// chat.v2 101
	// hello, ada
}

// SendValue and ReceiveValue carry typed values through the Options'
// Converter, JSON by default: Ktor's sendSerialized and
// receiveDeserialized.
func ExampleSendValue() {
	type Move struct {
		Piece string `json:"piece"`
		To    string `json:"to"`
	}
	srv, err := wskit.NewServer(wskit.Options{})
	if err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(srv.WebSocket(func(s *wskit.Session) {
		for {
			mv, err := wskit.ReceiveValue[Move](context.Background(), s)
			if err != nil {
				return
			}
			mv.To = strings.ToUpper(mv.To)
			wskit.SendValue(s, mv)
		}
	}))
	defer hs.Close()

	ctx := context.Background()
	c, err := wskit.Dial(ctx, wsURL(hs, "/"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(wskit.CloseNormal, "")
	wskit.SendValue(c, Move{Piece: "knight", To: "f3"})
	mv, err := wskit.ReceiveValue[Move](ctx, c)
	fmt.Printf("%+v %v\n", mv, err)
	// Output: {Piece:knight To:F3} <nil>
}

// Topics keeps one hub per name, such as a chat room per path value; a
// hub is made by its first subscriber.
func ExampleTopics() {
	srv, err := wskit.NewServer(wskit.Options{})
	if err != nil {
		log.Fatal(err)
	}
	rooms, err := wskit.NewTopics(wskit.HubOptions{Overflow: wskit.OverflowCloseTryAgain})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /rooms/{room}", srv.WebSocketEvents(wskit.Events{
		OnOpen: func(s *wskit.Session) {
			rooms.Subscribe(s.Request().PathValue("room"), s)
			s.SendText("joined")
		},
		OnMessage: func(s *wskit.Session, m wskit.Message) {
			rooms.Publish(context.Background(), s.Request().PathValue("room"), m.Type, m.Payload)
		},
	}))
	hs := httptest.NewServer(mux)
	defer hs.Close()

	ctx := context.Background()
	join := func(room string) *wskit.Session {
		c, err := wskit.Dial(ctx, wsURL(hs, "/rooms/"+room), nil)
		if err != nil {
			log.Fatal(err)
		}
		c.Receive(ctx) // "joined"
		return c
	}
	ada, bob, eve := join("go"), join("go"), join("rust")
	defer ada.Close(wskit.CloseNormal, "")
	defer bob.Close(wskit.CloseNormal, "")
	defer eve.Close(wskit.CloseNormal, "")
	ada.SendText("hi, gophers")
	m, _ := bob.Receive(ctx)
	fmt.Println("bob:", m.Text())
	eve.SendText("hi, rustaceans")
	m, _ = eve.Receive(ctx)
	fmt.Println("eve:", m.Text())
	fmt.Println(rooms.Len(), "rooms")
	// Output:
	// bob: hi, gophers
	// eve: hi, rustaceans
	// 2 rooms
}

// permessage-deflate is an extension installed on both sides; Threshold
// and CompressIf decide for every message, and Session.SetCompression
// turns it off for what the sender knows will not shrink.
func Example_perMessageDeflate() {
	opts := wskit.Options{Extensions: []codec.Extension{&codec.PerMessageDeflate{Threshold: 256}}}
	srv, err := wskit.NewServer(opts)
	if err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(srv.WebSocket(func(s *wskit.Session) {
		for m := range s.Messages() {
			s.Send(m.Type, m.Payload)
		}
	}))
	defer hs.Close()

	ctx := context.Background()
	c, err := wskit.Dial(ctx, wsURL(hs, "/"), &wskit.DialOptions{Options: opts})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(wskit.CloseNormal, "")
	fmt.Println(c.Extensions())
	c.SendText(strings.Repeat("compressed ", 100))
	c.SetCompression(false) // say, for a JPEG
	c.SendBinary([]byte("\xff\xd8\xff\xe0 already compressed"))
	for range 2 {
		m, _ := c.Receive(ctx)
		fmt.Println(m.Type, len(m.Payload))
	}
	// Output:
	// permessage-deflate; client_max_window_bits=13
	// text 1100
	// binary 23
}

// Writer streams a message as it is produced and Reader reads one as it
// arrives, neither holding it whole: here a file-sized upload is counted
// by the server.
func ExampleSession_Reader() {
	srv, err := wskit.NewServer(wskit.Options{MaxMessageSize: 1 << 30})
	if err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(srv.WebSocket(func(s *wskit.Session) {
		ctx := context.Background()
		_, r, err := s.Reader(ctx)
		if err != nil {
			return
		}
		n, err := io.Copy(io.Discard, r) // or to a file
		s.SendText(fmt.Sprintf("received %d bytes, %v", n, err))
		s.Receive(ctx)
	}))
	defer hs.Close()

	ctx := context.Background()
	c, err := wskit.Dial(ctx, wsURL(hs, "/"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(wskit.CloseNormal, "")
	w, err := c.Writer(ctx, wskit.Binary)
	if err != nil {
		log.Fatal(err)
	}
	io.Copy(w, io.LimitReader(zeros{}, 100<<20)) // 100 MiB, sent 32 KiB at a time
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	m, _ := c.Receive(ctx)
	fmt.Println(m.Text())
	// Output: received 104857600 bytes, <nil>
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// SendContext bounds one send: a peer that stops reading cannot hold the
// sender past its context.
func ExampleSession_SendContext() {
	srv, err := wskit.NewServer(wskit.Options{})
	if err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(srv.WebSocket(func(s *wskit.Session) {
		for m := range s.Messages() {
			s.Send(m.Type, m.Payload)
		}
	}))
	defer hs.Close()

	ctx := context.Background()
	c, err := wskit.Dial(ctx, wsURL(hs, "/"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(wskit.CloseNormal, "")
	sendCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := c.SendContext(sendCtx, wskit.Text, []byte("in time")); err != nil {
		log.Fatal(err) // on ctx's error the session has ended if the write was cut
	}
	m, _ := c.Receive(ctx)
	fmt.Println(m.Text())
	// Output: in time
}

// NetConn carries another protocol over a WebSocket: here a line protocol,
// read with bufio on one side and written with fmt on the other.
func ExampleNetConn() {
	srv, err := wskit.NewServer(wskit.Options{})
	if err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(srv.WebSocket(func(s *wskit.Session) {
		nc := wskit.NetConn(s.Context(), s, wskit.Binary)
		defer nc.Close()
		sc := bufio.NewScanner(nc)
		for sc.Scan() {
			fmt.Fprintf(nc, "%d\n", len(sc.Text()))
		}
	}))
	defer hs.Close()

	ctx := context.Background()
	c, err := wskit.Dial(ctx, wsURL(hs, "/"), nil)
	if err != nil {
		log.Fatal(err)
	}
	nc := wskit.NetConn(ctx, c, wskit.Binary)
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(nc)
	for _, line := range []string{"hello", "tunnelled world"} {
		fmt.Fprintln(nc, line)
		answer, _ := br.ReadString('\n')
		fmt.Print(line, ": ", answer)
	}
	// Output:
	// hello: 5
	// tunnelled world: 15
}
