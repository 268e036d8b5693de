package bench

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/wskit/wskit/frame"
)

// echoAllocs returns the allocations per echo made by the whole process
// (client and server) over runs echoes, after a warm-up echo.
func echoAllocs(t *testing.T, c *rawClient, runs int) float64 {
	t.Helper()
	var err error
	allocs := testing.AllocsPerRun(runs, func() {
		if e := c.echo(true); e != nil && err == nil {
			err = e
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return allocs
}

// trivialServer accepts one connection on a loopback port, answers the
// upgrade with a fixed response and then, for every frameLen bytes it reads (one
// client frame), writes reply. It allocates nothing per echo, so whatever
// AllocsPerRun counts against it is the client's.
func trivialServer(t *testing.T, frameLen int, reply []byte) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		buf := make([]byte, max(frameLen, 4096))
		n := 0
		for !bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
			m, err := nc.Read(buf[n:])
			if err != nil {
				return
			}
			n += m
		}
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + handshakeAccept + "\r\n\r\n"
		if _, err := nc.Write([]byte(resp)); err != nil {
			return
		}
		for {
			if _, err := io.ReadFull(nc, buf[:frameLen]); err != nil {
				return
			}
			if _, err := nc.Write(reply); err != nil {
				return
			}
		}
	}()
	return ln.Addr().String()
}

// serverReply frames p as a server does: unmasked, in fragments of at most
// fragment bytes.
func serverReply(p []byte, fragment int) []byte {
	var out []byte
	op := frame.OpBinary
	for len(p) > 0 {
		n := min(len(p), fragment)
		out = frame.AppendHeader(out, frame.Header{Fin: n == len(p), Op: op, Length: int64(n)})
		out = append(out, p[:n]...)
		p = p[n:]
		op = frame.OpContinuation
	}
	return out
}

// TestRawClientZeroAllocs shows that the benchmarks' client allocates
// nothing per echo, single-frame replies and fragmented ones alike, so the
// allocs/op of BenchmarkEcho are the server's.
func TestRawClientZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not exact under -race")
	}
	for _, size := range echoSizes {
		for _, fragment := range []int{size.n, 4096} {
			if fragment > size.n {
				continue
			}
			t.Run(size.name+"/fragment="+strconv.Itoa(fragment), func(t *testing.T) {
				p := payload(size.n)
				h := frame.Header{Fin: true, Op: frame.OpBinary, Masked: true, Length: int64(size.n)}
				addr := trivialServer(t, h.Size()+size.n, serverReply(p, fragment))
				c, err := dialRaw(addr, "/echo", p)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if a := echoAllocs(t, c, 200); a != 0 {
					t.Errorf("client and trivial server: %v allocs per echo, want 0", a)
				}
			})
		}
	}
}

// TestWskitEchoServerZeroAllocs echoes through the wskit server of
// BenchmarkEcho (a default session ranging over Messages) and requires
// zero allocations per message in steady state, the property DESIGN.md
// asks for, measured end to end.
func TestWskitEchoServerZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not exact under -race")
	}
	addr := startServer(t, wskitEcho(t))
	for _, size := range echoSizes {
		t.Run(size.name, func(t *testing.T) {
			c := dial(t, addr, size.n)
			if a := echoAllocs(t, c, 200); a != 0 {
				t.Errorf("wskit echo server: %v allocs per echo, want 0", a)
			}
		})
	}
}
