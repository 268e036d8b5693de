//go:build linux

package wskit

import (
	"bytes"
	"io"
	"strconv"
	"testing"

	"github.com/wskit/wskit/frame"
)

// BenchmarkCountedEcho echoes 64-byte messages over one loopback
// connection, on each engine and session kind: the path every counter is
// on. With burst=1 the client waits for each echo; with burst=64 it sends
// 64 messages in one write and reads their echoes, so that system calls
// weigh less per message and counting more. Compare it with the same
// benchmark at a commit before the counters (see docs/operating.md).
func BenchmarkCountedEcho(b *testing.B) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		for _, path := range []string{"/events", "/echo"} {
			for _, burst := range []int{1, 64} {
				name := "engine=" + engine.String() + "/route=" + path[1:] + "/burst=" + strconv.Itoa(burst)
				b.Run(name, func(b *testing.B) { benchCountedEcho(b, engine, path, burst) })
			}
		}
	}
}

func benchCountedEcho(b *testing.B, engine Engine, path string, burst int) {
	opts := ptOptions()
	opts.Engine, opts.Loops = engine, 1
	_, addr := ptStart(b, opts, nil, ptRoutes(Events{}))
	p := ptDial(b, addr, path)
	payload := ptPattern(1, 64)
	out := bytes.Repeat(ptFrame(true, frame.OpBinary, payload), burst)
	want := append(frame.AppendHeader(nil, frame.Header{Fin: true, Op: frame.OpBinary, Length: 64}), payload...)
	want = bytes.Repeat(want, burst)
	buf := make([]byte, len(want))
	b.SetBytes(int64(64 * burst))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.nc.Write(out); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(p.br, buf); err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(buf, want) {
			b.Fatal("the echo differs")
		}
	}
	b.ReportMetric(float64(b.N*burst)/b.Elapsed().Seconds(), "msgs/s")
}
