//go:build linux

package wskit

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// ptVariants are the ways an Events route runs: std, poll on the loop,
// poll with workers.
var ptVariants = []struct {
	name    string
	engine  Engine
	workers int
}{{"std", EngineStd, 0}, {"poll", EnginePoll, 0}, {"poll-workers", EnginePoll, 2}}

// ptEachVariant runs f with options for each variant.
func ptEachVariant(t *testing.T, f func(t *testing.T, opts Options)) {
	for _, v := range ptVariants {
		t.Run(v.name, func(t *testing.T) {
			opts := ptOptions()
			opts.Engine, opts.Workers = v.engine, v.workers
			f(t, opts)
		})
	}
}

// TestCloseWhileSendingChaos closes Events sessions from one goroutine
// while eight others send on them: the loop's end of the session must not
// race with the closing goroutine (run it under -race).
func TestCloseWhileSendingChaos(t *testing.T) {
	ptEachVariant(t, func(t *testing.T, opts Options) {
		ptLeakCheck(t)
		var wg sync.WaitGroup
		var start atomic.Pointer[chan struct{}]
		ev := Events{OnOpen: func(s *Session) {
			start := *start.Load()
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for s.SendText("chaos") == nil {
					}
				}()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				s.Close(4000, "chaos")
			}()
		}}
		_, addr := ptStart(t, opts, nil, func(srv *Server) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("/chaos", srv.Handle(ev))
			return mux
		})
		for i := range 60 {
			ch := make(chan struct{})
			start.Store(&ch)
			p := ptDial(t, addr, "/chaos")
			if i%2 == 0 {
				// The peer vanishes while the session is being closed.
				close(ch)
				p.reset()
				continue
			}
			close(ch)
			code, _, err := p.readClose()
			if err != nil {
				t.Fatal(err)
			}
			if code != 4000 {
				t.Fatalf("close code %d, want 4000", code)
			}
			p.write(ptCloseFrame(4000, ""))
			p.waitEOF(ptWait)
			p.nc.Close()
		}
		wg.Wait()
	})
}
