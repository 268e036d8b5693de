package fanout

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/wskit/wskit"
)

// wskitHub is wskit's Hub with a buffer of 256 messages per subscriber, as
// many as gorillaHub's send queue, and OverflowSuspend, so that a slow
// subscriber makes Publish wait rather than lose messages.
type wskitHub struct {
	hub  *wskit.Hub
	srv  *wskit.Server
	done chan error
}

// startWskitHub serves wskit's DefaultOptions on ln with the poll engine,
// subscribing sessions on the event loop in Events.OnOpen, or with the std
// engine, subscribing them in a WebSocket handler that then ranges over
// their messages (a goroutine per session, as std requires).
func startWskitHub(ln net.Listener, poll bool) (*wskitHub, error) {
	hub, err := wskit.NewHub(wskit.HubOptions{Buffer: 256, Overflow: wskit.OverflowSuspend})
	if err != nil {
		return nil, err
	}
	opts := wskit.DefaultOptions()
	opts.Engine = wskit.EngineStd
	if poll {
		opts.Engine = wskit.EnginePoll
	}
	srv, err := wskit.NewServer(opts)
	if err != nil {
		hub.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	if poll {
		mux.Handle(Path, srv.WebSocketEvents(wskit.Events{OnOpen: func(s *wskit.Session) { hub.Subscribe(s) }}))
	} else {
		mux.Handle(Path, srv.WebSocket(func(s *wskit.Session) {
			if hub.Subscribe(s) != nil {
				return
			}
			for range s.Messages() {
			}
		}))
	}
	h := &wskitHub{hub: hub, srv: srv, done: make(chan error, 1)}
	go func() { h.done <- srv.Serve(ln, mux) }()
	return h, nil
}

func (h *wskitHub) Publish(ctx context.Context, p []byte) error {
	return h.hub.Publish(ctx, wskit.Binary, p)
}

func (h *wskitHub) Subscribers() int { return h.hub.Subscribers() }

func (h *wskitHub) Close() error {
	h.hub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := h.srv.Shutdown(ctx)
	select {
	case <-h.done:
	case <-ctx.Done():
	}
	return err
}
