//go:build linux

package wskit

import (
	"errors"
	"io"
	"testing"

	"github.com/wskit/wskit/frame"
)

// BenchmarkCountedEcho echoes 64-byte messages one at a time over one
// loopback connection, on each engine and session kind: the path every
// counter is on. Compare it with the same benchmark at a commit before the
// counters (see README, Operating wskit).
func BenchmarkCountedEcho(b *testing.B) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		for _, path := range []string{"/events", "/echo"} {
			b.Run("engine="+engine.String()+"/route="+path[1:], func(b *testing.B) {
				opts := ptOptions()
				opts.Engine, opts.Loops = engine, 1
				_, addr := ptStart(b, opts, nil, ptRoutes(Events{}))
				p := ptDial(b, addr, path)
				payload := ptPattern(1, 64)
				out := ptFrame(true, frame.OpBinary, payload)
				want := append(frame.AppendHeader(nil, frame.Header{Fin: true, Op: frame.OpBinary, Length: 64}), payload...)
				buf := make([]byte, len(want))
				b.SetBytes(64)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := p.nc.Write(out); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(p.br, buf); err != nil {
						b.Fatal(err)
					}
					if string(buf) != string(want) {
						b.Fatal(errors.New("the echo differs"))
					}
				}
			})
		}
	}
}
