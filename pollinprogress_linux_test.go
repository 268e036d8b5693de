package wskit

import (
	"bytes"
	"testing"
	"time"

	"github.com/wskit/wskit/frame"
)

// An Events session holds the state of a frame or message in progress
// only while input stops inside one: it goes back once the message is
// delivered, and when the connection ends with one unfinished, by the
// peer's going away or by a violation.
func TestPollInProgressStateGoesBack(t *testing.T) {
	text := bytes.Repeat([]byte("wskit "), 100)
	whole := ptFrame(true, frame.OpText, text)
	first := ptFrame(false, frame.OpText, text[:200])
	rest := ptFrame(true, frame.OpContinuation, text[200:])
	for _, tc := range []struct {
		name string
		in   [][]byte // written in turn, a pause between
		end  func(p *ptPeer) error
	}{
		{"cut frame, then cut", [][]byte{whole[:100]}, nil},
		{"fragment, then cut", [][]byte{first}, nil},
		{"cut fragment, then cut", [][]byte{first, rest[:50]}, nil},
		{"fragment, then a violation", [][]byte{first, ptFrame(true, frame.OpBinary, []byte("b"))}, func(p *ptPeer) error {
			code, _, err := p.readClose()
			if err == nil && code != CloseProtocolError {
				t.Errorf("closed with %d, want %d", code, CloseProtocolError)
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ptLeakCheck(t)
			srv, addr := ptStart(t, ptOptions(), nil, ptRoutes(Events{OnMessage: ptEcho}))
			p := ptDial(t, addr, "/events")
			base := ptCount()

			// A message in pieces, delivered: nothing is left held.
			for _, b := range [][]byte{whole[:100], whole[100:]} {
				p.mustWrite(b)
				time.Sleep(10 * time.Millisecond)
			}
			if err := p.expect(frame.OpText, text); err != nil {
				t.Fatal(err)
			}
			if got, ok := ptSettle(base, 3*time.Second, nil); !ok {
				t.Fatalf("after a message in pieces: %v, before %v", got, base)
			}

			for _, b := range tc.in {
				p.mustWrite(b)
				time.Sleep(10 * time.Millisecond)
			}
			if tc.end != nil {
				if err := tc.end(p); err != nil {
					t.Fatal(err)
				}
			}
			p.nc.Close()
			ptExpectIdle(t, srv, base)
		})
	}
}
