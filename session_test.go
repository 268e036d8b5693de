package wskit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/wsraw"
)

func TestEcho(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	url := serve(t, srv.WebSocket(echoHandler(nil)))

	fragmented := testOptions()
	fragmented.FragmentSize = 1000
	clients := map[string]*wskit.DialOptions{
		"whole frames": nil,
		"fragmented":   {Options: fragmented},
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	for cname, dopts := range clients {
		t.Run(cname, func(t *testing.T) {
			c := dial(t, url, dopts)
			for _, tc := range []struct {
				name    string
				typ     wskit.MessageType
				payload []byte
			}{
				{"text", wskit.Text, []byte("hello")},
				{"empty text", wskit.Text, nil},
				{"utf-8 text", wskit.Text, []byte("héllo wörld ✓ 🎉")},
				{"binary", wskit.Binary, []byte{0, 1, 2, 0xff, 0xfe}},
				{"empty binary", wskit.Binary, []byte{}},
				{"125 bytes", wskit.Binary, bytes.Repeat([]byte{7}, 125)},
				{"126 bytes", wskit.Binary, bytes.Repeat([]byte{7}, 126)},
				{"65536 bytes", wskit.Text, bytes.Repeat([]byte("x"), 65536)},
				{"1 MiB", wskit.Binary, big},
			} {
				var err error
				switch tc.typ {
				case wskit.Text:
					err = c.SendText(string(tc.payload))
				default:
					err = c.SendBinary(tc.payload)
				}
				if err != nil {
					t.Fatalf("%s: send: %v", tc.name, err)
				}
				m := receive(t, c)
				if m.Type != tc.typ || !bytes.Equal(m.Payload, tc.payload) {
					t.Fatalf("%s: got %v of %d bytes, want %v of %d bytes", tc.name, m.Type, len(m.Payload), tc.typ, len(tc.payload))
				}
			}
			// Send with an explicit type, and a type Send refuses.
			if err := c.Send(wskit.Binary, []byte("via Send")); err != nil {
				t.Fatal(err)
			}
			if m := receive(t, c); m.Type != wskit.Binary || m.Text() != "via Send" {
				t.Fatalf("got %v %q", m.Type, m.Payload)
			}
			if err := c.Send(frame.OpPing, nil); err == nil {
				t.Error("Send(OpPing) succeeded, want an error: Send takes Text or Binary")
			}
			if err := c.Send(frame.OpContinuation, nil); err == nil {
				t.Error("Send(OpContinuation) succeeded, want an error")
			}
		})
	}
}

func TestSendFrameFragmentsAndPing(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	url := serve(t, srv.WebSocket(echoHandler(nil)))
	c := dial(t, url, nil)

	if err := c.SendFrame(frame.Header{Fin: true, Op: frame.OpPing}, []byte("are you there")); err != nil {
		t.Fatalf("SendFrame(ping): %v", err)
	}
	parts := []struct {
		h frame.Header
		p string
	}{
		{frame.Header{Op: frame.OpText}, "frag"},
		{frame.Header{Fin: true, Op: frame.OpPing}, "mid-message ping"},
		{frame.Header{Op: frame.OpContinuation}, "men"},
		{frame.Header{Fin: true, Op: frame.OpContinuation}, "ted"},
	}
	for _, f := range parts {
		if err := c.SendFrame(f.h, []byte(f.p)); err != nil {
			t.Fatalf("SendFrame(%v): %v", f.h.Op, err)
		}
	}
	if m := receive(t, c); m.Type != wskit.Text || m.Text() != "fragmented" {
		t.Fatalf("got %v %q, want text \"fragmented\"", m.Type, m.Payload)
	}
	if err := c.SendFrame(frame.Header{Fin: true, Op: frame.OpClose}, nil); err == nil {
		t.Error("SendFrame(close) succeeded, want an error pointing at Close")
	}
	if err := c.SendFrame(frame.Header{Fin: true, Op: 0x3}, nil); err == nil {
		t.Error("SendFrame(reserved opcode) succeeded")
	}
	if err := c.SendFrame(frame.Header{Fin: true, Op: frame.OpPing}, make([]byte, 126)); err == nil {
		t.Error("SendFrame(ping of 126 bytes) succeeded")
	}
	// The session is still fine.
	c.SendText("still open")
	if m := receive(t, c); m.Text() != "still open" {
		t.Fatalf("got %q", m.Payload)
	}
}

func TestReceiveCancelledContext(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	url := serve(t, srv.WebSocket(echoHandler(nil)))
	c := dial(t, url, nil)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Receive(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Receive(cancelled ctx) = %v, want context.Canceled", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Receive(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive(expiring ctx) = %v, want context.DeadlineExceeded", err)
	}
	if _, ok := c.CloseReason(); ok {
		t.Fatal("the session ended after a cancelled Receive")
	}
	for i := range 3 {
		msg := fmt.Sprint("after cancel ", i)
		if err := c.SendText(msg); err != nil {
			t.Fatalf("SendText: %v", err)
		}
		if m := receive(t, c); m.Text() != msg {
			t.Fatalf("got %q, want %q", m.Payload, msg)
		}
	}
}

// A message that arrives while a Receive is being cancelled is not lost.
func TestReceiveCancelledDoesNotLoseMessages(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	const n = 200
	url := serve(t, srv.WebSocket(func(s *wskit.Session) {
		for i := range n {
			if err := s.SendText(fmt.Sprint(i)); err != nil {
				return
			}
		}
		for range s.Messages() {
		}
	}))
	c := dial(t, url, nil)
	for i := 0; i < n; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%3)*time.Microsecond)
		m, err := c.Receive(ctx)
		cancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Receive: %v", err)
			}
			continue
		}
		if got, want := m.Text(), fmt.Sprint(i); got != want {
			t.Fatalf("got message %q, want %q", got, want)
		}
		i++
	}
}

func TestMessagesEndsWhenPeerCloses(t *testing.T) {
	checkGoroutines(t)
	t.Run("server side", func(t *testing.T) {
		srv := newServer(t, testOptions())
		got := make(chan []string, 1)
		url := serve(t, srv.WebSocket(func(s *wskit.Session) {
			var msgs []string
			for m := range s.Messages() {
				msgs = append(msgs, m.Text())
			}
			got <- msgs
		}))
		c := dial(t, url, nil)
		c.SendText("a")
		c.SendText("b")
		if err := c.Close(wskit.CloseNormal, "done"); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if msgs := await(t, got, "Messages to end"); strings.Join(msgs, ",") != "a,b" {
			t.Fatalf("server got %q, want [a b]", msgs)
		}
	})
	t.Run("client side", func(t *testing.T) {
		srv := newServer(t, testOptions())
		url := serve(t, srv.WebSocket(func(s *wskit.Session) {
			s.SendText("one")
			s.SendText("two")
		}))
		c := dial(t, url, nil)
		var msgs []string
		done := make(chan struct{})
		go func() {
			defer close(done)
			for m := range c.Messages() {
				msgs = append(msgs, m.Text())
			}
		}()
		await(t, done, "Messages to end after the handler returned")
		if strings.Join(msgs, ",") != "one,two" {
			t.Fatalf("client got %q, want [one two]", msgs)
		}
		if r, ok := c.CloseReason(); !ok || r.Code != wskit.CloseNormal {
			t.Fatalf("CloseReason = %v, %v; want 1000", r, ok)
		}
	})
	t.Run("break out of Messages and go on", func(t *testing.T) {
		srv := newServer(t, testOptions())
		url := serve(t, srv.WebSocket(echoHandler(nil)))
		c := dial(t, url, nil)
		for _, s := range []string{"1", "2", "3"} {
			c.SendText(s)
		}
		for m := range c.Messages() {
			if m.Text() != "1" {
				t.Fatalf("got %q, want 1", m.Payload)
			}
			break
		}
		if m := receive(t, c); m.Text() != "2" {
			t.Fatalf("got %q, want 2", m.Payload)
		}
		for m := range c.Messages() {
			if m.Text() != "3" {
				t.Fatalf("got %q, want 3", m.Payload)
			}
			break
		}
	})
}

func TestCloseReason(t *testing.T) {
	checkGoroutines(t)
	t.Run("peer closes with 4001 bye", func(t *testing.T) {
		srv := newServer(t, testOptions())
		res := make(chan ended, 1)
		url := serve(t, srv.WebSocket(echoHandler(res)))
		c := dial(t, url, nil)
		if err := c.Close(4001, "bye"); err != nil {
			t.Fatalf("Close: %v", err)
		}
		e := await(t, res, "the server session to end")
		if !e.ok || e.reason != (wskit.CloseReason{Code: 4001, Reason: "bye"}) || e.err != nil {
			t.Errorf("server: CloseReason %v (ok %v), Err %v; want 4001 bye, nil", e.reason, e.ok, e.err)
		}
		if r, ok := c.CloseReason(); !ok || r != (wskit.CloseReason{Code: 4001, Reason: "bye"}) || c.Err() != nil {
			t.Errorf("client: CloseReason %v (ok %v), Err %v; want its own 4001 bye echoed, nil", r, ok, c.Err())
		}
	})
	t.Run("we close with 1001 x", func(t *testing.T) {
		srv := newServer(t, testOptions())
		res := make(chan ended, 1)
		closeErr := make(chan error, 1)
		url := serve(t, srv.WebSocket(func(s *wskit.Session) {
			closeErr <- s.Close(wskit.CloseGoingAway, "x")
			res <- endOf(s)
		}))
		c := dial(t, url, nil)
		ce := receiveClose(t, c)
		if ce.CloseReason != (wskit.CloseReason{Code: 1001, Reason: "x"}) || ce.Err != nil {
			t.Errorf("client: %v (Err %v), want 1001 x", ce.CloseReason, ce.Err)
		}
		if err := await(t, closeErr, "Close to return"); err != nil {
			t.Errorf("server Close = %v, want nil", err)
		}
		e := await(t, res, "the server session to end")
		if !e.ok || e.reason != (wskit.CloseReason{Code: 1001, Reason: "x"}) || e.err != nil {
			t.Errorf("server: CloseReason %v (ok %v), Err %v; want 1001 x, nil", e.reason, e.ok, e.err)
		}
	})
	t.Run("peer sends an empty close: 1005", func(t *testing.T) {
		srv := newServer(t, testOptions())
		res := make(chan ended, 1)
		url := serve(t, srv.WebSocket(echoHandler(res)))
		rc := dialRaw(t, url, 0)
		rc.write(frame.Header{Fin: true, Op: frame.OpClose, Masked: true}, nil)
		h, p, err := rc.read()
		if err != nil || h.Op != frame.OpClose || len(p) != 0 {
			t.Fatalf("reply: %v %x %v; want an empty close frame", h.Op, p, err)
		}
		e := await(t, res, "the server session to end")
		if !e.ok || e.reason.Code != wskit.CloseNoStatus || e.err != nil {
			t.Errorf("server: CloseReason %v (ok %v), Err %v; want 1005, nil", e.reason, e.ok, e.err)
		}
		rc.readEOF()
	})
	t.Run("connection cut: 1006", func(t *testing.T) {
		srv := newServer(t, testOptions())
		res := make(chan ended, 1)
		url := serve(t, srv.WebSocket(echoHandler(res)))
		rc := dialRaw(t, url, 0)
		rc.write(frame.Header{Fin: true, Op: frame.OpText, Masked: true}, []byte("hi"))
		if h, p, err := rc.read(); err != nil || string(p) != "hi" {
			t.Fatalf("echo: %v %q %v", h.Op, p, err)
		}
		rc.nc.Close()
		e := await(t, res, "the server session to end")
		if !e.ok || e.reason.Code != wskit.CloseAbnormal {
			t.Errorf("server: CloseReason %v (ok %v), want 1006", e.reason, e.ok)
		}
		if e.err == nil {
			t.Error("server: Err is nil after the connection was cut, want the transport's error")
		}
	})
	t.Run("client sees 1006 when the server cuts", func(t *testing.T) {
		srv := newServer(t, testOptions())
		url := serve(t, srv.WebSocketRaw(func(s *wsraw.Session) {}))
		c := dial(t, url, nil)
		ce := receiveClose(t, c)
		if ce.Code != wskit.CloseAbnormal || ce.Err == nil {
			t.Errorf("client: %v (Err %v), want 1006 with the transport's error", ce.CloseReason, ce.Err)
		}
	})
	t.Run("unmasked frame: 1002", func(t *testing.T) {
		srv := newServer(t, testOptions())
		res := make(chan ended, 1)
		url := serve(t, srv.WebSocket(echoHandler(res)))
		rc := dialRaw(t, url, 0)
		rc.write(frame.Header{Fin: true, Op: frame.OpText}, []byte("not masked"))
		code, _ := rc.readClose()
		if code != wskit.CloseProtocolError {
			t.Errorf("close frame code %v, want 1002", code)
		}
		rc.finish()
		e := await(t, res, "the server session to end")
		if !e.ok || e.reason.Code != wskit.CloseProtocolError {
			t.Errorf("server: CloseReason %v (ok %v), want 1002", e.reason, e.ok)
		}
		var pe *frame.ProtocolError
		if !errors.As(e.err, &pe) || pe.Code != wskit.CloseProtocolError {
			t.Errorf("server: Err = %v (%T), want a *frame.ProtocolError with 1002", e.err, e.err)
		}
	})
	t.Run("violations map to their codes", func(t *testing.T) {
		opts := testOptions()
		opts.MaxFrameSize = 1000
		opts.MaxMessageSize = 1500
		srv := newServer(t, opts)
		res := make(chan ended, 1)
		url := serve(t, srv.WebSocket(echoHandler(res)))
		for _, tc := range []struct {
			name   string
			frames []frame.Header
			data   [][]byte
			code   wskit.CloseCode
		}{
			{"invalid UTF-8 text", []frame.Header{{Fin: true, Op: frame.OpText}}, [][]byte{{0xff, 0xfe}}, wskit.CloseInvalidPayload},
			{"frame over MaxFrameSize", []frame.Header{{Fin: true, Op: frame.OpBinary}}, [][]byte{make([]byte, 1001)}, wskit.CloseMessageTooBig},
			{"message over MaxMessageSize", []frame.Header{{Op: frame.OpBinary}, {Fin: true, Op: frame.OpContinuation}}, [][]byte{make([]byte, 1000), make([]byte, 1000)}, wskit.CloseMessageTooBig},
			{"reserved opcode", []frame.Header{{Fin: true, Op: 0x3}}, [][]byte{nil}, wskit.CloseProtocolError},
			{"RSV1 without extension", []frame.Header{{Fin: true, Rsv: frame.RSV1, Op: frame.OpText}}, [][]byte{[]byte("x")}, wskit.CloseProtocolError},
			{"continuation without start", []frame.Header{{Fin: true, Op: frame.OpContinuation}}, [][]byte{[]byte("x")}, wskit.CloseProtocolError},
			{"close code 1005 on the wire", []frame.Header{{Fin: true, Op: frame.OpClose}}, [][]byte{{0x03, 0xed}}, wskit.CloseProtocolError},
		} {
			t.Run(tc.name, func(t *testing.T) {
				rc := dialRaw(t, url, 0)
				for i, h := range tc.frames {
					h.Masked = true
					rc.write(h, tc.data[i])
				}
				if code, _ := rc.readClose(); code != tc.code {
					t.Errorf("close frame code %v, want %v", code, tc.code)
				}
				rc.finish()
				e := await(t, res, "the server session to end")
				if e.reason.Code != tc.code {
					t.Errorf("server CloseReason %v, want %v", e.reason, tc.code)
				}
				var pe *frame.ProtocolError
				if !errors.As(e.err, &pe) || pe.Code != tc.code {
					t.Errorf("server Err = %v, want a *frame.ProtocolError with %v", e.err, tc.code)
				}
			})
		}
	})
	t.Run("a dialed client sees the server's violation code", func(t *testing.T) {
		srv := newServer(t, testOptions())
		res := make(chan ended, 2)
		url := serve(t, srv.WebSocket(echoHandler(res)))
		for _, tc := range []struct {
			name string
			send func(*wskit.Session) error
			code wskit.CloseCode
		}{
			{"invalid UTF-8", func(c *wskit.Session) error { return c.SendText("\xff\xfe") }, wskit.CloseInvalidPayload},
			{"continuation without start", func(c *wskit.Session) error {
				return c.SendFrame(frame.Header{Fin: true, Op: frame.OpContinuation}, []byte("x"))
			}, wskit.CloseProtocolError},
		} {
			c := dial(t, url, nil)
			if err := tc.send(c); err != nil {
				t.Fatalf("%s: send: %v", tc.name, err)
			}
			if ce := receiveClose(t, c); ce.Code != tc.code {
				t.Errorf("%s: client saw %v (Err %v), want %v", tc.name, ce.CloseReason, ce.Err, tc.code)
			}
			if e := await(t, res, "the server session to end"); e.reason.Code != tc.code {
				t.Errorf("%s: server CloseReason %v, want %v", tc.name, e.reason, tc.code)
			}
		}
	})
	t.Run("handler returns: 1000", func(t *testing.T) {
		srv := newServer(t, testOptions())
		url := serve(t, srv.WebSocket(func(s *wskit.Session) {}))
		c := dial(t, url, nil)
		ce := receiveClose(t, c)
		if ce.Code != wskit.CloseNormal || ce.Err != nil {
			t.Errorf("client: %v (Err %v), want 1000", ce.CloseReason, ce.Err)
		}
	})
}

func TestHandlerPanic(t *testing.T) {
	checkGoroutines(t)
	var log syncBuffer
	opts := testOptions()
	opts.Logger = slog.New(slog.NewTextHandler(&log, nil))
	srv := newServer(t, opts)
	mux := http.NewServeMux()
	mux.Handle("/panic", srv.WebSocket(receiveOrPanic))
	mux.Handle("/echo", srv.WebSocket(echoHandler(nil)))
	url := serve(t, mux)

	other := dial(t, url+"/echo", nil)
	c := dial(t, url+"/panic", nil)
	c.SendText("boom")
	ce := receiveClose(t, c)
	if ce.Code != wskit.CloseInternalError {
		t.Errorf("client: %v, want 1011", ce.CloseReason)
	}
	if !strings.Contains(log.String(), "panicked") || !strings.Contains(log.String(), "boom from the handler") {
		t.Errorf("log does not report the panic:\n%s", log.String())
	}
	if !strings.Contains(log.String(), "/panic") {
		t.Errorf("log does not name the path:\n%s", log.String())
	}
	// The server keeps serving: an open session and a new one.
	for _, s := range []*wskit.Session{other, dial(t, url+"/echo", nil)} {
		s.SendText("still here")
		if m := receive(t, s); m.Text() != "still here" {
			t.Fatalf("got %q", m.Payload)
		}
	}
}

func receiveOrPanic(s *wskit.Session) {
	m, err := s.Receive(context.Background())
	if err != nil {
		return
	}
	panic(m.Text() + " from the handler")
}

// After a panic the server session reports 1011 and ErrHandlerPanic.
func TestHandlerPanicCloseReason(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	sess := make(chan *wskit.Session, 1)
	url := serve(t, srv.WebSocket(func(s *wskit.Session) {
		sess <- s
		panic("boom")
	}))
	c := dial(t, url, nil)
	s := await(t, sess, "the handler")
	if ce := receiveClose(t, c); ce.Code != wskit.CloseInternalError {
		t.Errorf("client: %v, want 1011", ce.CloseReason)
	}
	await(t, s.Done(), "the server session to end")
	if r, _ := s.CloseReason(); r.Code != wskit.CloseInternalError {
		t.Errorf("server CloseReason %v, want 1011", r)
	}
	if !errors.Is(s.Err(), wskit.ErrHandlerPanic) {
		t.Errorf("server Err = %v, want ErrHandlerPanic", s.Err())
	}
}

func TestSessionContext(t *testing.T) {
	checkGoroutines(t)
	type ctxKey struct{}
	srv := newServer(t, testOptions())
	ctxs := make(chan context.Context, 1)
	route := srv.WebSocket(func(s *wskit.Session) {
		if s.Context().Err() != nil {
			panic("context cancelled while the session is open")
		}
		ctxs <- s.Context()
		for range s.Messages() {
		}
	})
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, "value")))
	}))
	c := dial(t, url, nil)
	sctx := await(t, ctxs, "the handler")
	if sctx.Value(ctxKey{}) != "value" {
		t.Error("the server session's context does not carry the request's values")
	}
	if c.Context().Err() != nil {
		t.Fatal("client context cancelled while open")
	}
	c.Close(wskit.CloseNormal, "")
	await(t, sctx.Done(), "the server session's context to be cancelled")
	await(t, c.Context().Done(), "the client session's context to be cancelled")
}

// A handler that does not read still learns that the peer closed: Done and
// Context end although a message was never received.
func TestPeerCloseSeenWithoutReceive(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	res := make(chan ended, 1)
	url := serve(t, srv.WebSocket(func(s *wskit.Session) {
		select {
		case <-s.Context().Done():
		case <-time.After(wait):
		}
		res <- endOf(s)
	}))
	c := dial(t, url, nil)
	c.SendText("never received")
	if err := c.Close(4003, "leaving"); err != nil {
		t.Errorf("client Close = %v, want the server's echo in time", err)
	}
	e := await(t, res, "the handler")
	if !e.ok || e.reason.Code != 4003 {
		t.Errorf("server: CloseReason %v (ok %v), want 4003 while the handler never called Receive", e.reason, e.ok)
	}
}

func TestRequest(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	type seen struct {
		remote, local, header, query, path, method string
	}
	res := make(chan seen, 1)
	url := serve(t, srv.WebSocket(func(s *wskit.Session) {
		r := s.Request()
		res <- seen{
			remote: r.RemoteAddr, local: s.RemoteAddr().String(), header: r.Header.Get("X-Token"),
			query: r.URL.Query().Get("room"), path: r.URL.Path, method: r.Method,
		}
	}))
	c := dial(t, url+"/chat?room=blue", &wskit.DialOptions{Header: http.Header{"X-Token": {"secret"}}})
	got := await(t, res, "the handler")
	if got.remote != c.LocalAddr().String() || got.local != got.remote {
		t.Errorf("server RemoteAddr %q (Session.RemoteAddr %q), want the client's %q", got.remote, got.local, c.LocalAddr())
	}
	if got.header != "secret" || got.query != "blue" || got.path != "/chat" || got.method != "GET" {
		t.Errorf("server saw %+v", got)
	}
	r := c.Request()
	if r.URL.Query().Get("room") != "blue" || r.Header.Get("X-Token") != "secret" || r.RemoteAddr != c.RemoteAddr().String() {
		t.Errorf("client Request: URL %v, header %v, remote %q", r.URL, r.Header, r.RemoteAddr)
	}
}

func TestSubprotocol(t *testing.T) {
	checkGoroutines(t)
	opts := testOptions()
	opts.Subprotocols = []string{"v2", "v1"}
	srv := newServer(t, opts)
	got := make(chan string, 1)
	handler := func(s *wskit.Session) { got <- s.Subprotocol() }
	mux := http.NewServeMux()
	mux.Handle("/any", srv.WebSocket(handler))
	mux.Handle("/chat", srv.WebSocket(handler, wskit.Protocols("chat.v2", "chat.v1")))
	url := serve(t, mux)
	for _, tc := range []struct {
		name    string
		path    string
		offered []string
		want    string
		status  int
	}{
		{"options: server's preference", "/any", []string{"v1", "v2"}, "v2", 0},
		{"options: only one offered", "/any", []string{"x", "v1"}, "v1", 0},
		{"options: none matches", "/any", []string{"x"}, "", 0},
		{"options: none offered", "/any", nil, "", 0},
		{"route: its preference", "/chat", []string{"chat.v1", "chat.v2"}, "chat.v2", 0},
		{"route: one of them", "/chat", []string{"chat.v1"}, "chat.v1", 0},
		{"route: Options.Subprotocols do not apply", "/chat", []string{"v2"}, "", 400},
		{"route: none offered", "/chat", nil, "", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			c, err := wskit.Dial(ctx, url+tc.path, &wskit.DialOptions{Options: wskit.Options{Subprotocols: tc.offered}})
			if tc.status != 0 {
				var he *wskit.HandshakeError
				if !errors.As(err, &he) || he.StatusCode != tc.status {
					t.Fatalf("Dial = %v, want a *HandshakeError with status %d", err, tc.status)
				}
				if !strings.Contains(he.Error(), "chat.v2") {
					t.Errorf("handshake error %q does not carry the server's explanation", he)
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close(wskit.CloseNormal, "")
			if c.Subprotocol() != tc.want {
				t.Errorf("client Subprotocol %q, want %q", c.Subprotocol(), tc.want)
			}
			if s := await(t, got, "the handler"); s != tc.want {
				t.Errorf("server Subprotocol %q, want %q", s, tc.want)
			}
		})
	}
}

func TestDialHandshakeErrors(t *testing.T) {
	checkGoroutines(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nothing to see", http.StatusNotFound)
	})
	url := serve(t, mux)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err := wskit.Dial(ctx, url+"/plain", nil)
	var he *wskit.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != 404 {
		t.Fatalf("Dial = %v, want a *HandshakeError with status 404", err)
	}
	if !strings.Contains(err.Error(), "expected status 101 but was 404") {
		t.Errorf("error %q lacks Ktor's wording", err)
	}
	// The Origin policy through a real server: another site is refused.
	srv := newServer(t, testOptions())
	wsURL := serve(t, srv.WebSocket(echoHandler(nil)))
	_, err = wskit.Dial(ctx, wsURL, &wskit.DialOptions{Header: http.Header{"Origin": {"https://evil.example"}}})
	if !errors.As(err, &he) || he.StatusCode != http.StatusForbidden {
		t.Errorf("Dial with a foreign Origin = %v, want a *HandshakeError with 403", err)
	}
	own := "http" + strings.TrimPrefix(wsURL, "ws")
	c, err := wskit.Dial(ctx, wsURL, &wskit.DialOptions{Header: http.Header{"Origin": {own}}})
	if err != nil {
		t.Errorf("Dial with the server's own Origin = %v", err)
	} else {
		c.Close(wskit.CloseNormal, "")
	}
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if _, err := wskit.Dial(cctx, wsURL, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Dial with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := wskit.Dial(ctx, "http://[::1", nil); err == nil {
		t.Error("Dial of a bad URL succeeded")
	}
}

// TestConcurrentSends sends from 8 goroutines at once in each direction;
// every message must arrive whole, and each goroutine's in order.
func TestConcurrentSends(t *testing.T) {
	checkGoroutines(t)
	const senders, perSender = 8, 150
	// message builds a self-checking message: its header names the sender
	// and sequence, its body repeats a byte derived from them.
	message := func(g, i int) string {
		size := 1 + (g*7919+i*104729)%(40<<10)
		if i%50 == 0 {
			size = 300 << 10 // a few large ones, written in several syscalls
		}
		head := fmt.Sprintf("%d:%d:%d:", g, i, size)
		return head + strings.Repeat(string(rune('a'+(g+i)%26)), size)
	}
	sendAll := func(s *wskit.Session) error {
		var wg sync.WaitGroup
		errs := make(chan error, senders)
		for g := range senders {
			wg.Go(func() {
				for i := range perSender {
					var err error
					if i%2 == 0 {
						err = s.SendText(message(g, i))
					} else {
						err = s.SendBinary([]byte(message(g, i)))
					}
					if err != nil {
						errs <- fmt.Errorf("sender %d message %d: %w", g, i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	// check verifies one received message and the per-sender order.
	check := func(next []int, m wskit.Message) error {
		var g, i, size int
		if _, err := fmt.Sscanf(string(m.Payload), "%d:%d:%d:", &g, &i, &size); err != nil || g < 0 || g >= senders {
			return fmt.Errorf("garbled message header %.40q", m.Payload)
		}
		if want := message(g, i); string(m.Payload) != want {
			return fmt.Errorf("message %d:%d corrupted: %d bytes, want %d", g, i, len(m.Payload), len(want))
		}
		if wantType := map[bool]wskit.MessageType{true: wskit.Text, false: wskit.Binary}[i%2 == 0]; m.Type != wantType {
			return fmt.Errorf("message %d:%d has type %v, want %v", g, i, m.Type, wantType)
		}
		if i != next[g] {
			return fmt.Errorf("sender %d: got message %d, want %d", g, i, next[g])
		}
		next[g]++
		return nil
	}
	receiveAll := func(s *wskit.Session) error {
		next := make([]int, senders)
		for n := 0; n < senders*perSender; n++ {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			m, err := s.Receive(ctx)
			cancel()
			if err != nil {
				return fmt.Errorf("after %d messages: %w", n, err)
			}
			if err := check(next, m); err != nil {
				return err
			}
		}
		return nil
	}

	t.Run("server to client", func(t *testing.T) {
		srv := newServer(t, testOptions())
		sendErr := make(chan error, 1)
		url := serve(t, srv.WebSocket(func(s *wskit.Session) {
			sendErr <- sendAll(s)
			for range s.Messages() {
			}
		}))
		c := dial(t, url, nil)
		if err := receiveAll(c); err != nil {
			t.Fatal(err)
		}
		if err := await(t, sendErr, "the senders"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("client to server", func(t *testing.T) {
		srv := newServer(t, testOptions())
		recvErr := make(chan error, 1)
		url := serve(t, srv.WebSocket(func(s *wskit.Session) {
			recvErr <- receiveAll(s)
		}))
		c := dial(t, url, nil)
		if err := sendAll(c); err != nil {
			t.Fatal(err)
		}
		if err := await(t, recvErr, "the server to receive everything"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSendAfterClose(t *testing.T) {
	checkGoroutines(t)
	sendAll := func(s *wskit.Session) []error {
		return []error{
			s.SendText("late"),
			s.SendBinary([]byte("late")),
			s.Send(wskit.Text, []byte("late")),
			wskit.SendValue(s, 42),
			s.SendFrame(frame.Header{Fin: true, Op: frame.OpText}, []byte("late")),
		}
	}
	expectClosed := func(t *testing.T, who string, errs []error) {
		t.Helper()
		for i, err := range errs {
			if !errors.Is(err, wskit.ErrClosed) {
				t.Errorf("%s: send #%d after the end = %v, want ErrClosed", who, i, err)
			}
		}
	}
	t.Run("client after its Close", func(t *testing.T) {
		srv := newServer(t, testOptions())
		url := serve(t, srv.WebSocket(echoHandler(nil)))
		c := dial(t, url, nil)
		c.Close(wskit.CloseNormal, "")
		expectClosed(t, "client", sendAll(c))
	})
	t.Run("client after the server closed", func(t *testing.T) {
		srv := newServer(t, testOptions())
		url := serve(t, srv.WebSocket(func(*wskit.Session) {}))
		c := dial(t, url, nil)
		receiveClose(t, c)
		expectClosed(t, "client", sendAll(c))
	})
	t.Run("server after its Close", func(t *testing.T) {
		srv := newServer(t, testOptions())
		errs := make(chan []error, 1)
		url := serve(t, srv.WebSocket(func(s *wskit.Session) {
			s.Close(wskit.CloseNormal, "")
			errs <- sendAll(s)
		}))
		c := dial(t, url, nil)
		receiveClose(t, c)
		expectClosed(t, "server", await(t, errs, "the handler"))
	})
	t.Run("server after the peer closed", func(t *testing.T) {
		srv := newServer(t, testOptions())
		errs := make(chan []error, 1)
		url := serve(t, srv.WebSocket(func(s *wskit.Session) {
			<-s.Done()
			errs <- sendAll(s)
		}))
		c := dial(t, url, nil)
		c.Close(4000, "")
		expectClosed(t, "server", await(t, errs, "the handler"))
	})
	t.Run("server after the connection was cut", func(t *testing.T) {
		srv := newServer(t, testOptions())
		errs := make(chan []error, 1)
		url := serve(t, srv.WebSocket(func(s *wskit.Session) {
			<-s.Done()
			errs <- sendAll(s)
		}))
		rc := dialRaw(t, url, 0)
		rc.nc.Close()
		expectClosed(t, "server", await(t, errs, "the handler"))
	})
}

func TestCloseEndedSession(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	res := make(chan error, 2)
	url := serve(t, srv.WebSocket(func(s *wskit.Session) {
		<-s.Done()
		start := time.Now()
		res <- s.Close(wskit.CloseNormal, "again")
		if d := time.Since(start); d > 100*time.Millisecond {
			res <- fmt.Errorf("Close of an ended session took %v", d)
		}
	}))
	c := dial(t, url, nil)
	if err := c.Close(wskit.CloseNormal, ""); err != nil {
		t.Fatalf("Close: %v", err)
	}
	start := time.Now()
	for range 3 {
		if err := c.Close(wskit.CloseGoingAway, "twice"); err != nil {
			t.Errorf("client Close of an ended session = %v, want nil", err)
		}
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Close of an ended session took %v", d)
	}
	if r, _ := c.CloseReason(); r.Code != wskit.CloseNormal {
		t.Errorf("a later Close changed CloseReason to %v", r)
	}
	if err := await(t, res, "the server's Close"); err != nil {
		t.Errorf("server Close of an ended session = %v, want nil", err)
	}
}

// Close from several goroutines while others send and one receives: every
// call returns, the peer sees a single close, nothing panics.
func TestConcurrentCloseSendReceive(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	type report struct {
		closeErrs []error
		recvErr   error
	}
	res := make(chan report, 1)
	url := serve(t, srv.WebSocket(func(s *wskit.Session) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var r report
		recvDone := make(chan error, 1)
		go func() {
			for {
				if _, err := s.Receive(context.Background()); err != nil {
					recvDone <- err
					return
				}
			}
		}()
		for g := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					if s.SendText(fmt.Sprint(g, ":", i)) != nil {
						return
					}
				}
			})
		}
		time.Sleep(10 * time.Millisecond)
		for range 3 {
			wg.Go(func() {
				err := s.Close(wskit.CloseGoingAway, "enough")
				mu.Lock()
				r.closeErrs = append(r.closeErrs, err)
				mu.Unlock()
			})
		}
		wg.Wait()
		r.recvErr = <-recvDone
		res <- r
	}))
	c := dial(t, url, nil)
	ce := receiveClose(t, c)
	if ce.Code != wskit.CloseGoingAway {
		t.Errorf("client saw %v, want 1001", ce.CloseReason)
	}
	r := await(t, res, "the handler")
	for _, err := range r.closeErrs {
		if err != nil {
			t.Errorf("concurrent Close = %v, want nil", err)
		}
	}
	if !errors.As(r.recvErr, new(*wskit.CloseError)) {
		t.Errorf("Receive ended with %v, want a *CloseError", r.recvErr)
	}
}

// The server closes while the client is busy sending: the client's echo of
// the close frame must not be lost behind its own pending writes, so the
// server sees a completed close handshake (Err nil), not EOF.
func TestCloseWhilePeerSending(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	res := make(chan ended, 1)
	url := serve(t, srv.WebSocket(func(s *wskit.Session) {
		if _, err := s.Receive(context.Background()); err != nil {
			res <- endOf(s)
			return
		}
		s.Close(4000, "stop")
		res <- endOf(s)
	}))
	for round := range 10 {
		c := dial(t, url, nil)
		sendDone := make(chan struct{})
		go func() {
			defer close(sendDone)
			msg := make([]byte, 256<<10)
			for c.SendBinary(msg) == nil {
			}
		}()
		e := await(t, res, "the server session to end")
		<-sendDone
		<-c.Done() // sends fail once the close is echoed, a moment before the end
		if e.reason.Code != 4000 || e.err != nil {
			t.Fatalf("round %d: server ended with %v, Err %v; want 4000 and a completed handshake (Err nil)", round, e.reason, e.err)
		}
		if r, _ := c.CloseReason(); r.Code != 4000 {
			t.Fatalf("round %d: client ended with %v (Err %v), want 4000", round, r, c.Err())
		}
	}
}

func TestCloseRejectsBadArguments(t *testing.T) {
	checkGoroutines(t)
	srv := newServer(t, testOptions())
	url := serve(t, srv.WebSocket(echoHandler(nil)))
	c := dial(t, url, nil)
	for _, tc := range []struct {
		name   string
		code   wskit.CloseCode
		reason string
	}{
		{"reason of 124 bytes", wskit.CloseNormal, strings.Repeat("r", 124)},
		{"1005 with a reason", wskit.CloseNoStatus, "x"},
		{"1006", wskit.CloseAbnormal, ""},
		{"1006 with a reason", wskit.CloseAbnormal, "cut"},
		{"1015", 1015, ""},
		{"999", 999, ""},
		{"5000", 5000, ""},
		{"reason not UTF-8", wskit.CloseNormal, "\xff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.Close(tc.code, tc.reason); err == nil {
				t.Fatalf("Close(%d, %d bytes) = nil, want an error", tc.code, len(tc.reason))
			}
			if _, ended := c.CloseReason(); ended {
				t.Fatal("the session ended after a refused Close")
			}
			c.SendText(tc.name)
			if m := receive(t, c); m.Text() != tc.name {
				t.Fatalf("after a refused Close: got %q", m.Payload)
			}
		})
	}
	// The longest reason that fits is fine.
	long := strings.Repeat("r", 123)
	if err := c.Close(4000, long); err != nil {
		t.Fatalf("Close with a 123-byte reason = %v", err)
	}
	if r, _ := c.CloseReason(); r.Code != 4000 || r.Reason != long {
		t.Errorf("CloseReason %v", r)
	}
}
