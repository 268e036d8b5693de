package wskit_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/wsraw"
)

// A raw session's ReceiveFrame gives up when its context ends, and the
// session goes on: the frame that comes later is received whole, on both
// engines. CloseReason reports the close frames as wskit.Session does.
func TestRawReceiveFrameContext(t *testing.T) {
	checkGoroutines(t)
	type result struct {
		payload string
		reason  wskit.CloseReason
		ok      bool
	}
	timedOut := make(chan error, 1)
	results := make(chan result, 1)
	routes := func(srv *wskit.Server) http.Handler {
		return srv.WebSocketRaw(func(s *wsraw.Session) {
			var r result
			// The client sends nothing until it hears of this timeout.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			_, err := s.ReceiveFrame(ctx)
			cancel()
			timedOut <- err
			f, err := s.ReceiveFrame(context.Background())
			if err == nil {
				r.payload = string(f.Payload)
			}
			for f := range s.Frames() {
				if f.Op == frame.OpClose {
					s.SendFrame(frame.Header{Fin: true, Op: frame.OpClose}, f.Payload)
					break
				}
			}
			r.reason, r.ok = s.CloseReason()
			results <- r
		})
	}
	for _, tg := range eachEngine(t, testOptions(), routes) {
		t.Run(tg.name, func(t *testing.T) {
			c := dial(t, tg.url, nil)
			if err := await(t, timedOut, "the first ReceiveFrame"); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("first ReceiveFrame: %v, want context.DeadlineExceeded", err)
			}
			if err := c.SendText("after the timeout"); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(4002, "raw bye"); err != nil {
				t.Fatalf("Close: %v", err)
			}
			r := await(t, results, "the raw handler")
			if r.payload != "after the timeout" {
				t.Errorf("ReceiveFrame after the timeout = %q, want the message", r.payload)
			}
			if !r.ok || r.reason != (wskit.CloseReason{Code: 4002, Reason: "raw bye"}) {
				t.Errorf("CloseReason = %v, %v; want 4002 raw bye", r.reason, r.ok)
			}
		})
	}
}
