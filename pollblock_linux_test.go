//go:build linux

package wskit

import (
	"testing"

	"github.com/wskit/wskit/frame"
)

// With BlockingLoops the loops wait in epoll_wait: every kind of session
// and plain HTTP still work, and timers still fire.
func TestPollBlockingLoops(t *testing.T) {
	ptLeakCheck(t)
	opts := ptOptions()
	opts.BlockingLoops = true
	srv, addr := ptStart(t, opts, nil, ptRoutes(Events{}))
	for _, path := range []string{"/events", "/echo", "/raw"} {
		p := ptDial(t, addr, path)
		for _, n := range []int{1, 125, 70000} {
			p.mustEcho(frame.OpBinary, ptPattern(n, n))
		}
		if path != "/raw" {
			if err := p.closeHandshake(CloseNormal, ""); err != nil {
				t.Errorf("%s: %v", path, err)
			}
		}
		p.nc.Close()
	}
	waitIdle(t, srv)
}

func waitIdle(t *testing.T, srv *Server) {
	t.Helper()
	if _, ok := ptSettle(ptCount(), ptWait, func() bool { return srv.Sessions() == 0 }); !ok {
		t.Errorf("%d sessions still open", srv.Sessions())
	}
}
