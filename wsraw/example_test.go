package wsraw_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/wsraw"
)

// A raw route sees frames as they come: fragments stay fragments, and the
// handler answers the close itself.
func Example() {
	srv, _ := wskit.NewServer(wskit.DefaultOptions())
	seen := make(chan string, 8)
	ts := httptest.NewServer(srv.WebSocketRaw(func(s *wsraw.Session) {
		defer close(seen)
		for f := range s.Frames() {
			seen <- fmt.Sprintf("%v fin=%v %q", f.Op, f.Fin, f.Payload)
			if f.Op == frame.OpClose {
				s.SendFrame(frame.Header{Fin: true, Op: frame.OpClose}, f.Payload)
				return
			}
		}
	}))
	defer ts.Close()

	c, err := wskit.Dial(context.Background(), "ws"+strings.TrimPrefix(ts.URL, "http"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	c.SendFrame(frame.Header{Op: frame.OpText}, []byte("hel"))
	c.SendFrame(frame.Header{Fin: true, Op: frame.OpContinuation}, []byte("lo"))
	c.Close(wskit.CloseNormal, "done")
	for s := range seen {
		fmt.Println(s)
	}
	// Output:
	// text fin=false "hel"
	// continuation fin=true "lo"
	// close fin=true "\x03\xe8done"
}
