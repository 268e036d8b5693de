package conformance

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/autobahn"
	"github.com/wskit/wskit/wsraw"
)

// TestAutobahn runs the Autobahn-style cases 1–10 against a default session
// echoing every message and a raw session echoing every frame, with limits
// large enough for section 9 (16 MiB messages). No case may fail.
func TestAutobahn(t *testing.T) {
	o := wskit.DefaultOptions()
	o.MaxFrameSize = 64 << 20
	o.MaxMessageSize = 64 << 20
	o.Logger = slog.New(slog.DiscardHandler)
	o.Engine = current.engine
	srv, err := wskit.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/echo", echoRoute(srv))
	mux.Handle("/raw", srv.WebSocketRaw(rawEcho))
	base := "ws://" + serve(t, srv, mux)
	defer srv.Shutdown(context.Background())
	for _, path := range []string{"/echo", "/raw"} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			rs := autobahn.Check(t, base+path, nil)
			if len(rs) != len(autobahn.Cases()) {
				t.Fatalf("ran %d cases of %d", len(rs), len(autobahn.Cases()))
			}
		})
	}
}

// rawEcho echoes data frames as they come, answers pings, and echoes the
// close frame: what the raw route of wskit serve does.
func rawEcho(s *wsraw.Session) {
	for f := range s.Frames() {
		h := frame.Header{Fin: f.Fin, Rsv: f.Rsv, Op: f.Op}
		switch f.Op {
		case frame.OpPing:
			h.Op = frame.OpPong
		case frame.OpPong:
			continue
		}
		if s.WriteFrame(h, f.Payload) != nil || f.Op == frame.OpClose {
			return
		}
	}
}
