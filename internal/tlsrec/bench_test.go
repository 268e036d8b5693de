package tlsrec

import (
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"testing"
)

var benchSizes = []int{64, 1024, MaxPlaintext}

func benchName(id uint16, size int) string {
	return map[uint16]string{
		tls.TLS_AES_128_GCM_SHA256:       "AES128",
		tls.TLS_AES_256_GCM_SHA384:       "AES256",
		tls.TLS_CHACHA20_POLY1305_SHA256: "ChaCha20",
	}[id] + "/" + strconv.Itoa(size)
}

// BenchmarkSeal seals one record into a reused buffer: AppendRecords
// copies the data in, SealInPlace finds it there.
func BenchmarkSeal(b *testing.B) {
	for _, id := range suites {
		for _, size := range benchSizes {
			data := pattern(size)
			b.Run(benchName(id, size)+"/append", func(b *testing.B) {
				w, _ := pair(b, id)
				dst := make([]byte, 0, w.SealedSize(size))
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					dst, _ = w.AppendRecords(dst[:0], data)
				}
			})
			b.Run(benchName(id, size)+"/inplace", func(b *testing.B) {
				w, _ := pair(b, id)
				buf := make([]byte, HeaderLen+size, HeaderLen+size+Overhead)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					buf, _ = w.SealInPlace(buf[:HeaderLen+size], 0)
				}
			})
		}
	}
}

// BenchmarkOpen opens whole records in place, as they arrive in a read.
// Records are sealed ahead in batches, outside the timer.
func BenchmarkOpen(b *testing.B) {
	const batch = 512
	for _, id := range suites {
		for _, size := range benchSizes {
			b.Run(benchName(id, size), func(b *testing.B) {
				w, r := pair(b, id)
				data := pattern(size)
				stream := make([]byte, 0, batch*(size+Overhead))
				seal := func() {
					stream = stream[:0]
					for range batch {
						stream, _ = w.AppendRecords(stream, data)
					}
				}
				seal()
				in := stream
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if len(in) == 0 {
						b.StopTimer()
						seal()
						in = stream
						b.StartTimer()
					}
					ev, n, ok, err := r.Receive(in)
					if !ok || err != nil || len(ev.Data) != size {
						b.Fatal(ok, err)
					}
					in = in[n:]
				}
			})
		}
	}
}

// BenchmarkRoundTrip seals a message and opens it at the other end, in
// one goroutine through memory; beside it, crypto/tls doing the same:
// a Write on one tls.Conn and a Read of the message on the other, after
// a handshake, over a connection whose reads and writes go to a buffer,
// so that neither pays for a socket or a goroutine switch. crypto/tls
// copies the message out of the record, where the record layer hands it
// over in place; its records are full size here, its first 128 KiB past.
func BenchmarkRoundTrip(b *testing.B) {
	for _, s := range cryptoTLSSuites {
		for _, size := range benchSizes {
			data := pattern(size)
			b.Run(benchName(s.suite, size)+"/tlsrec", func(b *testing.B) {
				w, r := pair(b, s.suite)
				dst := make([]byte, 0, w.SealedSize(size))
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					dst, _ = w.AppendRecords(dst[:0], data)
					if ev, _, ok, err := r.Receive(dst); !ok || err != nil || len(ev.Data) != size {
						b.Fatal(ok, err)
					}
				}
			})
			b.Run(benchName(s.suite, size)+"/crypto-tls", func(b *testing.B) {
				cli, srv := memPair(b, s.client)
				buf := make([]byte, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := cli.Write(data); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(srv, buf); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(benchName(s.suite, size)+"/crypto-tls-pipe", func(b *testing.B) {
				cli, srv := pipePair(b, s.client)
				buf := make([]byte, size)
				done := make(chan struct{})
				go func() {
					defer close(done)
					for {
						if _, err := cli.Write(data); err != nil {
							return
						}
					}
				}()
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := io.ReadFull(srv, buf); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				srv.Close()
				cli.Close()
				<-done
			})
		}
	}
}

// memConn is one end of a net.Pipe for the handshake, then of a buffer
// in memory: what one end writes, the other reads.
type memConn struct {
	net.Conn
	in, out *memBuf
}

// memBuf holds the bytes written and not yet read.
type memBuf struct {
	b []byte
	r int
}

func (c *memConn) Read(p []byte) (int, error) {
	if c.in == nil {
		return c.Conn.Read(p)
	}
	n := copy(p, c.in.b[c.in.r:])
	c.in.r += n
	if c.in.r == len(c.in.b) {
		c.in.b, c.in.r = c.in.b[:0], 0
	}
	if n == 0 {
		return 0, io.ErrNoProgress
	}
	return n, nil
}

func (c *memConn) Write(p []byte) (int, error) {
	if c.out == nil {
		return c.Conn.Write(p)
	}
	c.out.b = append(c.out.b, p...)
	return len(p), nil
}

// pipePair returns a crypto/tls client and server after their handshake
// over net.Pipe.
func pipePair(b *testing.B, client func(*tls.Config) *tls.Config) (cli, srv *tls.Conn) {
	c, s := net.Pipe()
	return handshakePair(b, c, s, client)
}

func handshakePair(b *testing.B, c, s net.Conn, client func(*tls.Config) *tls.Config) (cli, srv *tls.Conn) {
	cli, srv = tls.Client(c, client(clientConfig())), tls.Server(s, serverConfig())
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		b.Fatal(err)
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return cli, srv
}

// memPair returns a crypto/tls client and server after their handshake,
// whose records then go through memory, past the first 128 KiB that
// crypto/tls sends in smaller records.
func memPair(b *testing.B, client func(*tls.Config) *tls.Config) (cli, srv *tls.Conn) {
	c, s := net.Pipe()
	mc, ms := &memConn{Conn: c}, &memConn{Conn: s}
	cli, srv = handshakePair(b, mc, ms, client)
	// The server's session ticket came with its flight: the client holds
	// it unread, and the pipe is empty.
	buf := &memBuf{}
	mc.out, ms.in = buf, buf
	back := &memBuf{}
	ms.out, mc.in = back, back
	warm := make([]byte, 256<<10)
	if _, err := cli.Write(warm); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(srv, warm); err != nil {
		b.Fatal(err)
	}
	return cli, srv
}
