package wskit

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	kflate "github.com/klauspost/compress/flate"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/bufpool"
	"github.com/wskit/wskit/internal/race"
	"github.com/wskit/wskit/internal/wstest"
)

// TestDeflateRoundTrip runs our client against our server with
// permessage-deflate on each engine and session kind, for each combination
// of context takeover and window bits both sides may ask for.
func TestDeflateRoundTrip(t *testing.T) {
	configs := []struct {
		name           string
		server, client codec.PerMessageDeflate
		want           string
	}{
		{"takeover", codec.PerMessageDeflate{}, codec.PerMessageDeflate{},
			"permessage-deflate; client_max_window_bits=13"},
		{"full client window", codec.PerMessageDeflate{ClientMaxWindowBits: 15}, codec.PerMessageDeflate{},
			"permessage-deflate"},
		{"kept compressors", codec.PerMessageDeflate{KeepCompressor: true, ClientMaxWindowBits: 15}, codec.PerMessageDeflate{KeepCompressor: true},
			"permessage-deflate"},
		{"server no takeover", codec.PerMessageDeflate{ServerNoContextTakeover: true}, codec.PerMessageDeflate{},
			"permessage-deflate; server_no_context_takeover; client_max_window_bits=13"},
		{"client asks no takeover", codec.PerMessageDeflate{}, codec.PerMessageDeflate{ServerNoContextTakeover: true, ClientNoContextTakeover: true},
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{"server bounds client window", codec.PerMessageDeflate{ClientMaxWindowBits: 10}, codec.PerMessageDeflate{},
			"permessage-deflate; client_max_window_bits=10"},
		{"client bounds server window", codec.PerMessageDeflate{}, codec.PerMessageDeflate{ServerMaxWindowBits: 9},
			"permessage-deflate; server_max_window_bits=9; client_max_window_bits=13"},
		{"level 9 and threshold", codec.PerMessageDeflate{Level: 9, Threshold: 100}, codec.PerMessageDeflate{Level: 9},
			"permessage-deflate; client_max_window_bits=13"},
	}
	var msgs [][]byte
	for _, n := range []int{0, 1, 50, 200, 1 << 10, 40 << 10, 300 << 10} {
		var b bytes.Buffer
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, `{"id":%d,"name":"user-%d","active":%v},`, i, i%37, i%3 == 0)
		}
		msgs = append(msgs, b.Bytes()[:n])
	}
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		for _, cfg := range configs {
			opts := ptOptions()
			opts.Engine = engine
			server := cfg.server
			opts.Extensions = []codec.Extension{&server}
			_, addr := ptStart(t, opts, nil, ptRoutes(Events{}))
			for _, path := range []string{"/echo", "/events"} {
				t.Run(fmt.Sprintf("%v/%s%s", engine, cfg.name, path), func(t *testing.T) {
					co := ptOptions()
					client := cfg.client
					co.Extensions = []codec.Extension{&client}
					ctx, cancel := context.WithTimeout(context.Background(), ptWait)
					defer cancel()
					s, err := Dial(ctx, "ws://"+addr+path, &DialOptions{Options: co})
					if err != nil {
						t.Fatal(err)
					}
					defer s.Close(CloseNormal, "")
					if got := s.Extensions(); got != cfg.want {
						t.Fatalf("negotiated %q, want %q", got, cfg.want)
					}
					for round := 0; round < 3; round++ {
						// Level 9 under the race detector takes seconds a round.
						ctx, cancel := context.WithTimeout(context.Background(), ptWait)
						defer cancel()
						for i, m := range msgs {
							typ := Binary
							if i%2 == 0 {
								typ = Text
							}
							if err := s.Send(typ, m); err != nil {
								t.Fatal(err)
							}
							got, err := s.Receive(ctx)
							if err != nil {
								t.Fatalf("round %d message %d: %v", round, i, err)
							}
							if got.Type != typ || !bytes.Equal(got.Payload, m) {
								t.Fatalf("round %d message %d: got %v %d bytes %q…, want %d bytes", round, i, got.Type, len(got.Payload), got.Payload[:min(len(got.Payload), 20)], len(m))
							}
						}
					}
				})
			}
		}
	}
}

// deflateMessage compresses p as a permessage-deflate sender does, with the
// standard library: a sync flush, its 00 00 ff ff tail removed.
func deflateMessage(t testing.TB, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// inflateMessage undoes deflateMessage.
func inflateMessage(t testing.TB, p []byte) []byte {
	t.Helper()
	r := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("inflating the server's message: %v", err)
	}
	return out
}

const offerDeflate = "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover"

// Bad compressed input ends the session with the right close code on every
// engine and session kind, and the limit on the inflated size holds.
func TestDeflateBadInput(t *testing.T) {
	bomb := deflateMessage(t, make([]byte, 8<<20))
	half := deflateMessage(t, []byte("hello, "))
	cases := []struct {
		name   string
		offer  bool
		frames [][]byte
		want   CloseCode
	}{
		{"RSV1 without the extension", false, [][]byte{
			ptFrameHeader(frame.Header{Fin: true, Rsv: frame.RSV1, Op: frame.OpText, Masked: true, Mask: ptMask, Length: int64(len(half))}, half)}, CloseProtocolError},
		{"corrupt data", true, [][]byte{
			ptFrameHeader(frame.Header{Fin: true, Rsv: frame.RSV1, Op: frame.OpBinary, Masked: true, Mask: ptMask, Length: 3}, []byte{0xff, 0xff, 0xff})}, CloseProtocolError},
		{"invalid UTF-8 once inflated", true, [][]byte{
			ptFrameHeader(frame.Header{Fin: true, Rsv: frame.RSV1, Op: frame.OpText, Masked: true, Mask: ptMask, Length: int64(len(deflateMessage(t, []byte{'a', 0xff, 0xfe})))}, deflateMessage(t, []byte{'a', 0xff, 0xfe}))}, CloseInvalidPayload},
		{"bomb", true, [][]byte{
			ptFrameHeader(frame.Header{Fin: true, Rsv: frame.RSV1, Op: frame.OpBinary, Masked: true, Mask: ptMask, Length: int64(len(bomb))}, bomb)}, CloseMessageTooBig},
		{"RSV1 on a continuation", true, [][]byte{
			ptFrameHeader(frame.Header{Rsv: frame.RSV1, Op: frame.OpText, Masked: true, Mask: ptMask, Length: int64(len(half))}, half),
			ptFrameHeader(frame.Header{Fin: true, Rsv: frame.RSV1, Op: frame.OpContinuation, Masked: true, Mask: ptMask, Length: 1}, []byte{0})}, CloseProtocolError},
		{"RSV1 on a ping", true, [][]byte{
			ptFrameHeader(frame.Header{Fin: true, Rsv: frame.RSV1, Op: frame.OpPing, Masked: true, Mask: ptMask, Length: 1}, []byte{0})}, CloseProtocolError},
		{"RSV2", true, [][]byte{
			ptFrameHeader(frame.Header{Fin: true, Rsv: frame.RSV2, Op: frame.OpBinary, Masked: true, Mask: ptMask, Length: 1}, []byte{0})}, CloseProtocolError},
	}
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		opts := ptOptions()
		opts.Engine = engine
		opts.Extensions = []codec.Extension{&codec.PerMessageDeflate{MaxInflatedSize: 1 << 20}}
		_, addr := ptStart(t, opts, nil, ptRoutes(Events{}))
		for _, path := range []string{"/echo", "/events"} {
			for _, c := range cases {
				t.Run(fmt.Sprintf("%v%s/%s", engine, path, c.name), func(t *testing.T) {
					var extra []string
					if c.offer {
						extra = append(extra, offerDeflate)
					}
					p := ptDial(t, addr, path, extra...)
					if c.offer {
						// A good message first: it is inflated, and the echo comes back compressed.
						msg := bytes.Repeat([]byte("all good; "), 100)
						z := deflateMessage(t, msg)
						p.mustWrite(ptFrameHeader(frame.Header{Fin: true, Rsv: frame.RSV1, Op: frame.OpText, Masked: true, Mask: ptMask, Length: int64(len(z))}, z))
						h, got, err := p.readFrame()
						if err != nil {
							t.Fatal(err)
						}
						if h.Rsv != frame.RSV1 || !bytes.Equal(inflateMessage(t, got), msg) {
							t.Fatalf("echo: RSV %#x, %d bytes", h.Rsv, len(got))
						}
					}
					for _, f := range c.frames {
						p.write(f) // the server may close before the last
					}
					if code, reason := p.mustReadClose(); code != c.want {
						t.Fatalf("closed with %d %q, want %d", code, reason, c.want)
					}
				})
			}
		}
		t.Run(fmt.Sprintf("%v/raw routes negotiate nothing", engine), func(t *testing.T) {
			p := ptConnect(t, addr)
			p.mustWrite([]byte(ptHead(addr, "/raw", offerDeflate)))
			resp, _, err := p.readResponse()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Extensions") != "" {
				t.Fatalf("status %d, extensions %q", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Extensions"))
			}
		})
	}
}

// A compressed echo over an Events session on the poll engine allocates
// nothing in steady state, with and without context takeover.
func TestDeflateEventsZeroAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector allocates, and sync.Pool drops items under it")
	}
	var msg bytes.Buffer
	for i := 0; msg.Len() < 1024; i++ {
		fmt.Fprintf(&msg, `{"id":%d,"name":"user-%d","active":%v},`, i, i*7919%1000, i%3 == 0)
	}
	z := deflateMessage(t, msg.Bytes())
	out := ptFrameHeader(frame.Header{Fin: true, Rsv: frame.RSV1, Op: frame.OpText, Masked: true, Mask: ptMask, Length: int64(len(z))}, z)
	for _, mode := range []struct {
		name string
		pmd  codec.PerMessageDeflate
	}{{"takeover", codec.PerMessageDeflate{}}, {"no takeover", codec.PerMessageDeflate{ServerNoContextTakeover: true}}} {
		t.Run(mode.name, func(t *testing.T) {
			opts := ptOptions()
			opts.Loops = 1
			opts.Extensions = []codec.Extension{&mode.pmd}
			_, addr := ptStart(t, opts, nil, ptRoutes(Events{}))
			p := ptDial(t, addr, "/events", offerDeflate)
			buf := make([]byte, 4096)
			ptZeroAllocs(t, "compressed echo", func() error {
				if _, err := p.nc.Write(out); err != nil {
					return err
				}
				// One unmasked server frame, length under 64 KiB.
				if _, err := io.ReadFull(p.br, buf[:2]); err != nil {
					return err
				}
				n := int(buf[1] & 0x7f)
				if n == 126 {
					if _, err := io.ReadFull(p.br, buf[:2]); err != nil {
						return err
					}
					n = int(buf[0])<<8 | int(buf[1])
				}
				_, err := io.ReadFull(p.br, buf[:n])
				return err
			})
		})
	}
}

// An Events session that has gone idle after large messages, plain and
// compressed, holds no pooled buffer.
func TestDeflateEventsIdleHoldsNoBuffer(t *testing.T) {
	opts := ptOptions()
	opts.Extensions = []codec.Extension{&codec.PerMessageDeflate{ServerNoContextTakeover: true}}
	_, addr := ptStart(t, opts, nil, ptRoutes(Events{}))
	p := ptDial(t, addr, "/events", offerDeflate)
	p.mustEcho(frame.OpText, []byte("warm up"))
	base := bufpool.Lent()
	big := bytes.Repeat([]byte("0123456789abcdef"), 4<<10)
	random := make([]byte, 64<<10) // incompressible: the echo goes uncompressed
	rand.NewChaCha8([32]byte{1}).Read(random)
	p.mustEcho(frame.OpBinary, random)
	z := deflateMessage(t, big)
	p.mustWrite(ptFrameHeader(frame.Header{Fin: true, Rsv: frame.RSV1, Op: frame.OpBinary, Masked: true, Mask: ptMask, Length: int64(len(z))}, z))
	h, got, err := p.readFrame()
	if err != nil {
		t.Fatal(err)
	}
	if h.Rsv != frame.RSV1 || !bytes.Equal(inflateMessage(t, got), big) {
		t.Fatalf("echo: RSV %#x, %d bytes", h.Rsv, len(got))
	}
	deadline := time.Now().Add(ptWait)
	for bufpool.Lent() > base && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := bufpool.Lent(); n > base {
		t.Fatalf("%d pooled buffers held by an idle session, %d before", n, base)
	}
}

// TestDeflateMemoryPerConnection opens many sessions with the zero value of
// PerMessageDeflate, wskit serve's configuration, offered as browsers offer
// it ("permessage-deflate; client_max_window_bits"). Each client sends a
// dozen compressed messages, 300 bytes to 4 KiB and 41 KiB in all, so that
// every window involved is full, taking over its context within the window
// the server allows, and reads the compressed echoes; then the sessions go
// idle. What the process keeps per connection (live heap after GC, the
// bare TCP clients included) must stay within 64 KiB, on both engines.
func TestDeflateMemoryPerConnection(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector's shadow memory blurs the heap")
	}
	const limit = 64 << 10
	n := 400
	if testing.Short() {
		n = 100
	}
	var msgs [][]byte
	for i, size := range []int{300, 1 << 10, 2 << 10, 4 << 10, 4 << 10, 4 << 10, 4 << 10, 4 << 10, 4 << 10, 4 << 10, 4 << 10, 4 << 10} {
		var b bytes.Buffer
		for j := 0; b.Len() < size; j++ {
			fmt.Fprintf(&b, `{"seq":%d,"user":"user-%d","room":"r%d","text":"message %d of %d","ok":%v},`, j, (i*7+j)%97, j%5, j, i, j%3 == 0)
		}
		msgs = append(msgs, b.Bytes()[:size])
	}
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		for _, path := range []string{"/echo", "/events"} {
			t.Run(fmt.Sprintf("%v%s", engine, path), func(t *testing.T) {
				opts := ptOptions()
				opts.Engine = engine
				opts.Extensions = []codec.Extension{&codec.PerMessageDeflate{}}
				srv, addr := ptStart(t, opts, nil, ptRoutes(Events{}))
				perConn := deflateMemoryRun(t, srv, addr, path, n, msgs)
				t.Logf("%.1f KiB per connection", perConn/1024)
				if perConn > limit {
					t.Errorf("%.0f bytes per connection after compressed traffic, more than %d", perConn, limit)
				}
			})
		}
	}
}

// deflateMemoryRun connects n clients to path, has each exchange msgs with
// the server compressed, and returns the growth of the live heap per
// connection once they are idle. A client is a bare TCP connection; what it
// needs only while it talks is dropped before the heap is measured.
func deflateMemoryRun(t *testing.T, srv *Server, addr, path string, n int, msgs [][]byte) float64 {
	t.Helper()
	heap := func() uint64 {
		var ms runtime.MemStats
		for range 3 { // and the pools' victim caches
			runtime.GC()
		}
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	conns := make([]net.Conn, n)
	br := bufio.NewReaderSize(nil, 64<<10)
	head := []byte(ptHead(addr, path, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"))
	tail := []byte{0, 0, 0xff, 0xff}
	var z bytes.Buffer
	for i := range conns {
		nc, err := net.DialTimeout("tcp", addr, ptWait)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		conns[i] = nc
		nc.SetDeadline(time.Now().Add(ptWait))
		br.Reset(nc)
		if _, err := nc.Write(head); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v, %v", resp, err)
		}
		// Context takeover both ways; the server may bound our window.
		bits := 15
		switch ext := resp.Header.Get("Sec-WebSocket-Extensions"); {
		case ext == "permessage-deflate":
		case strings.HasPrefix(ext, "permessage-deflate; client_max_window_bits="):
			bits, _ = strconv.Atoi(strings.TrimPrefix(ext, "permessage-deflate; client_max_window_bits="))
		default:
			t.Fatalf("negotiated %q", ext)
		}
		w, _ := kflate.NewWriterWindow(&z, 1<<bits)
		var window []byte
		for _, m := range msgs {
			z.Reset()
			w.Write(m)
			w.Flush()
			payload := bytes.TrimSuffix(z.Bytes(), tail)
			if _, err := nc.Write(ptFrameHeader(frame.Header{Fin: true, Rsv: frame.RSV1, Op: frame.OpText, Masked: true, Mask: ptMask, Length: int64(len(payload))}, payload)); err != nil {
				t.Fatal(err)
			}
			h, got, err := wstest.ReadFrameLimit(br, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if h.Rsv != frame.RSV1 {
				t.Fatalf("client %d: the echo of %d bytes came uncompressed", i, len(m))
			}
			r := flate.NewReaderDict(io.MultiReader(bytes.NewReader(got), bytes.NewReader(tail)), window)
			plain, err := io.ReadAll(r)
			if !bytes.Equal(plain, m) || err != io.ErrUnexpectedEOF {
				t.Fatalf("client %d: the echo of %d bytes inflated to %d, %v", i, len(m), len(plain), err)
			}
			window = append(window, plain...)
			window = window[max(0, len(window)-32<<10):]
		}
		nc.SetDeadline(time.Time{})
	}
	br.Reset(nil)
	for deadline := time.Now().Add(ptWait); srv.Sessions() < n && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if got := srv.Sessions(); got != n {
		t.Fatalf("%d sessions, want %d", got, n)
	}
	after := heap()
	runtime.KeepAlive(conns)
	return float64(int64(after)-int64(before)) / float64(n)
}
