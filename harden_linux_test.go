//go:build linux

package wskit

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/wstest"
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

// panicExt is an extension that panics in the method named by where.
type panicExt struct{ where string }

func (e *panicExt) boom(method string) {
	if e.where == method {
		panic("boom in " + method)
	}
}

func (e *panicExt) Name() string                  { return "x-panic" }
func (e *panicExt) Rsv() byte                     { return frame.RSV2 }
func (e *panicExt) Offer() []codec.ExtensionOffer { e.boom("Offer"); return nil }
func (e *panicExt) Accept(offers []codec.ExtensionOffer) (codec.ExtensionOffer, codec.Transform, bool) {
	e.boom("Accept")
	return codec.ExtensionOffer{Name: e.Name()}, &panicTransform{e}, true
}
func (e *panicExt) Confirm(codec.ExtensionOffer) (codec.Transform, error) {
	e.boom("Confirm")
	return &panicTransform{e}, nil
}

type panicTransform struct{ e *panicExt }

func (t *panicTransform) Encode(buf *[]byte, op frame.Opcode, p []byte) ([]byte, byte, error) {
	t.e.boom("Encode")
	return p, 0, nil
}

func (t *panicTransform) Decode(buf *[]byte, op frame.Opcode, rsv byte, p []byte, limit int64) ([]byte, error) {
	t.e.boom("Decode")
	return p, nil
}

func (t *panicTransform) Release() { t.e.boom("Release") }

// panicConverter panics in Marshal.
type panicConverter struct{ JSON }

func (panicConverter) Marshal(any) (MessageType, []byte, error) { panic("boom in Marshal") }

// TestHookPanics makes each hook of the application panic in turn: the
// upgrade is refused with 500, or the session closes with 1011; the panic
// is logged, and a session beside it goes on as if nothing happened.
func TestHookPanics(t *testing.T) {
	type outcome int
	const (
		refused outcome = iota // 500
		closed                 // 1011
		clean                  // the session goes on
	)
	hooks := []struct {
		where string
		want  outcome
	}{
		{"CheckOrigin", refused}, {"Accept", refused}, {"Decode", closed},
		{"Encode", closed}, {"Release", clean}, {"Marshal", clean},
	}
	ptEachVariant(t, func(t *testing.T, opts Options) {
		for _, hook := range hooks {
			for _, path := range []string{"/events", "/echo"} {
				t.Run(hook.where+path, func(t *testing.T) {
					ptLeakCheck(t)
					logs := &wstest.SyncBuffer{}
					o := opts
					o.Logger = slog.New(slog.NewTextHandler(logs, nil))
					ext := &panicExt{where: hook.where}
					o.Extensions = []codec.Extension{ext}
					if hook.where == "CheckOrigin" {
						o.CheckOrigin = func(r *http.Request) bool {
							if r.URL.Query().Has("boom") {
								panic("boom in CheckOrigin")
							}
							return true
						}
					}
					if hook.where == "Marshal" {
						o.Converter = panicConverter{}
					}
					answer := func(s *Session, m Message) {
						if string(m.Payload) == "value" {
							err := SendValue(s, 1)
							var pan *codec.PanicError
							s.SendText(fmt.Sprintf("value: %v", errors.As(err, &pan)))
							return
						}
						s.Send(m.Type, m.Payload)
					}
					_, addr := ptStart(t, o, nil, func(srv *Server) http.Handler {
						mux := http.NewServeMux()
						mux.Handle("/events", srv.Handle(Events{OnMessage: answer}))
						mux.Handle("/echo", srv.WebSocket(func(s *Session) {
							for m := range s.Messages() {
								answer(s, m)
							}
						}))
						return mux
					})
					// A bystander without the extension, on the same server.
					other := ptDial(t, addr, path)
					other.mustEcho(frame.OpText, []byte("before"))

					p := ptConnect(t, addr)
					p.mustWrite([]byte(ptHead(addr, path+"?boom", "Sec-WebSocket-Extensions: x-panic")))
					switch hook.want {
					case refused:
						resp, _, err := p.readResponse()
						if err != nil {
							t.Fatal(err)
						}
						if resp.StatusCode != http.StatusInternalServerError {
							t.Fatalf("status %d, want 500", resp.StatusCode)
						}
					case closed:
						if err := p.expectUpgrade(); err != nil {
							t.Fatal(err)
						}
						if hook.where == "Decode" {
							p.mustWrite(ptFrameHeader(frame.Header{Fin: true, Rsv: frame.RSV2, Op: frame.OpText, Masked: true, Mask: ptMask, Length: 2}, []byte("hi")))
						} else {
							p.mustWrite(ptFrame(true, frame.OpText, []byte("hi")))
						}
						if code, _ := p.mustReadClose(); code != CloseInternalError {
							t.Fatalf("close code %d, want 1011", code)
						}
						p.write(ptCloseFrame(CloseInternalError, ""))
						p.waitEOF(ptWait)
					case clean:
						if err := p.expectUpgrade(); err != nil {
							t.Fatal(err)
						}
						if hook.where == "Marshal" {
							p.mustWrite(ptFrame(true, frame.OpText, []byte("value")))
							if err := p.expect(frame.OpText, []byte("value: true")); err != nil {
								t.Fatal(err)
							}
						} else {
							p.mustEcho(frame.OpText, []byte("hi"))
						}
						if err := p.closeHandshake(CloseNormal, ""); err != nil {
							t.Fatal(err)
						}
						p.waitEOF(ptWait)
					}
					other.mustEcho(frame.OpText, []byte("after"))
					if err := other.closeHandshake(CloseNormal, ""); err != nil {
						t.Fatal(err)
					}
					other.waitEOF(ptWait)
					if hook.where != "Marshal" {
						deadline := time.Now().Add(ptWait)
						for !strings.Contains(logs.String(), "boom in "+hook.where) && time.Now().Before(deadline) {
							time.Sleep(5 * time.Millisecond)
						}
						if !strings.Contains(logs.String(), "boom in "+hook.where) {
							t.Errorf("the panic was not logged; log:\n%s", logs)
						}
					}
				})
			}
		}
	})
}
