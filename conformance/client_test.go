package conformance

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	byteorder "encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/wstest"
)

// replyWait bounds every wait for the server: a reply, a close frame, the
// end of the TCP connection. It is longer than the server's Timeout, so a
// server that waits out its own timer still answers in time.
const replyWait = 4 * time.Second

// client is a hand-written WebSocket client: it sends whatever bytes a test
// gives it and reads the server's frames one by one.
type client struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

// newKey returns a fresh Sec-WebSocket-Key.
func newKey() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// acceptFor computes Sec-WebSocket-Accept for key (RFC 6455 §4.2.2 step 5.4).
func acceptFor(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// upgradeHeader returns the header of a valid opening handshake.
func upgradeHeader() http.Header {
	h := http.Header{}
	h.Set("Upgrade", "websocket")
	h.Set("Connection", "Upgrade")
	h.Set("Sec-WebSocket-Key", newKey())
	h.Set("Sec-WebSocket-Version", "13")
	return h
}

// handshake sends an HTTP request written by hand (request line, Host
// unless h has the key, h, then extra bytes such as pipelined frames) and
// reads the response. The returned client owns the connection, which is
// closed when the test ends.
func handshake(t testing.TB, addr, method, target, proto string, h http.Header, extra []byte) (*http.Response, *client) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, replyWait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s %s\r\n", method, target, proto)
	if _, ok := h["Host"]; !ok {
		fmt.Fprintf(&req, "Host: %s\r\n", addr)
	}
	h.Write(&req) // keys as they are in the map, so a test can send any case
	req.WriteString("\r\n")
	req.Write(extra)
	conn.SetDeadline(time.Now().Add(replyWait))
	if _, err := conn.Write(req.Bytes()); err != nil {
		t.Fatalf("write handshake: %v", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read handshake response: %v", err)
	}
	conn.SetDeadline(time.Time{})
	return resp, &client{t: t, conn: conn, br: br}
}

// dial opens a WebSocket connection to target (a path with an optional
// query) and checks the 101 response.
func (e *env) dial(t testing.TB, target string) *client {
	t.Helper()
	h := upgradeHeader()
	resp, c := handshake(t, e.addr, http.MethodGet, target, "HTTP/1.1", h, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: status %s, want 101", resp.Status)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), acceptFor(h.Get("Sec-WebSocket-Key")); got != want {
		t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, want)
	}
	return c
}

// chop says how a client writes its bytes.
type chop int

const (
	whole    chop = iota // one write
	bytewise             // one byte per write
	jagged               // pseudo-random pieces (1–7 bytes, or up to 4 KiB for long inputs)
)

func (h chop) String() string {
	return [...]string{"whole", "bytewise", "jagged"}[h]
}

// chopsFor returns the ways to write an input of n bytes: byte by byte only
// while that stays cheap.
func chopsFor(n int) []chop {
	if n <= 2048 {
		return []chop{whole, bytewise, jagged}
	}
	return []chop{whole, jagged}
}

// write sends b as h says and returns the first write error: a test that
// sends a violation ignores it, since the server may close before the end.
func (c *client) write(b []byte, h chop) error {
	c.conn.SetWriteDeadline(time.Now().Add(replyWait))
	defer c.conn.SetWriteDeadline(time.Time{})
	if h == whole {
		_, err := c.conn.Write(b)
		return err
	}
	rng := mrand.New(mrand.NewPCG(uint64(len(b)), 6455))
	for len(b) > 0 {
		n := 1
		if h == jagged {
			n = 1 + rng.IntN(7)
			if len(b) > 2048 {
				n = 1 + rng.IntN(4096)
			}
		}
		n = min(n, len(b))
		if _, err := c.conn.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// send writes b at once and fails the test on error.
func (c *client) send(b []byte) {
	c.t.Helper()
	if err := c.write(b, whole); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// maxServerFrame bounds the payload length that readFrame accepts, so that
// a broken length fails the test instead of allocating it.
const maxServerFrame = 1 << 24

// readFrame reads one server frame, unmasked if it is masked (the header
// keeps Masked and Mask), waiting at most wait.
func (c *client) readFrame(wait time.Duration) (frame.Frame, error) {
	c.conn.SetReadDeadline(time.Now().Add(wait))
	defer c.conn.SetReadDeadline(time.Time{})
	h, p, err := wstest.ReadFrameLimit(c.br, maxServerFrame)
	if err != nil {
		return frame.Frame{}, err
	}
	return frame.Frame{Header: h, Payload: p}, nil
}

// reply is a frame expected from the server.
type reply struct {
	op      frame.Opcode
	fin     bool
	payload []byte
}

func message(op frame.Opcode, p []byte) reply { return reply{op, true, p} }
func textReply(s string) reply                { return reply{frame.OpText, true, []byte(s)} }
func pongReply(s string) reply                { return reply{frame.OpPong, true, []byte(s)} }

// expect reads the next frame and checks it is r: same opcode, FIN and
// payload, no RSV bit, and not masked (§5.1: a server never masks).
func (c *client) expect(r reply) {
	c.t.Helper()
	f, err := c.readFrame(replyWait)
	if err != nil {
		c.t.Fatalf("waiting for %v frame: %v", r.op, err)
	}
	if f.Masked {
		c.t.Errorf("server frame is masked (§5.1 forbids it)")
	}
	if f.Rsv != 0 {
		c.t.Errorf("server frame has RSV bits %#x", f.Rsv)
	}
	if f.Op != r.op || f.Fin != r.fin || !bytes.Equal(f.Payload, r.payload) {
		c.t.Fatalf("got %v frame (fin %v) with %s, want %v (fin %v) with %s",
			f.Op, f.Fin, short(f.Payload), r.op, r.fin, short(r.payload))
	}
}

// expectClose reads the server's next frame, checks it is a close frame with
// code (frame.CloseNoStatus for an empty one), then checks that the server
// closes the TCP connection. It returns the reason.
func (c *client) expectClose(code frame.CloseCode) string {
	c.t.Helper()
	f, err := c.readFrame(replyWait)
	if err != nil {
		c.t.Fatalf("waiting for a close frame with %v: %v", code, err)
	}
	reason := c.checkClose(f, code)
	c.expectEOF(replyWait)
	return reason
}

func (c *client) checkClose(f frame.Frame, code frame.CloseCode) string {
	c.t.Helper()
	if f.Op != frame.OpClose {
		c.t.Fatalf("got %v frame with %s, want a close frame with %v", f.Op, short(f.Payload), code)
	}
	if f.Masked {
		c.t.Errorf("server close frame is masked")
	}
	got, reason, err := frame.ParseClose(f.Payload)
	if err != nil {
		c.t.Fatalf("server sent an invalid close payload % x: %v", f.Payload, err)
	}
	if got != code {
		c.t.Fatalf("close code %v (reason %q), want %v", got, reason, code)
	}
	return string(reason)
}

// expectEOF checks that the server closes the TCP connection (or its
// sending half) within wait and sends nothing more first, then closes the
// client's side, as §7.1.1 has a client do once the server has closed. A
// reset counts as closed: the server may close with our bytes unread.
func (c *client) expectEOF(wait time.Duration) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(wait))
	var buf [512]byte
	n, err := c.br.Read(buf[:])
	if n > 0 {
		c.t.Fatalf("server sent % x after its close frame, want the end of TCP", buf[:min(n, 32)])
	}
	if !tcpClosed(err) {
		c.t.Fatalf("server did not close TCP within %v: %v", wait, err)
	}
	c.conn.Close()
}

// closeCleanly starts the close handshake with 1000 and checks the server's
// echo and its closing of TCP (§7.1.1: the server closes TCP first).
func (c *client) closeCleanly() {
	c.t.Helper()
	c.send(closeFrame(frame.CloseNormal, ""))
	c.expectClose(frame.CloseNormal)
}

func tcpClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

func short(p []byte) string {
	if len(p) > 40 {
		return fmt.Sprintf("%d bytes %q…", len(p), p[:40])
	}
	return fmt.Sprintf("%q", p)
}

// Client frames, built with the library's frame package but by hand.

// wire returns a client frame, masked with a random key.
func wire(fin bool, rsv byte, op frame.Opcode, payload []byte) []byte {
	var key [4]byte
	byteorder.LittleEndian.PutUint32(key[:], mrand.Uint32())
	return wireKey(fin, rsv, op, payload, key)
}

// wireKey returns a client frame masked with key.
func wireKey(fin bool, rsv byte, op frame.Opcode, payload []byte, key [4]byte) []byte {
	b := frame.AppendHeader(nil, frame.Header{Fin: fin, Rsv: rsv, Op: op, Masked: true, Mask: key, Length: int64(len(payload))})
	n := len(b)
	b = append(b, payload...)
	frame.Mask(b[n:], key, 0)
	return b
}

// unmasked returns a frame without a mask, as no client may send.
func unmasked(fin bool, op frame.Opcode, payload []byte) []byte {
	b := frame.AppendHeader(nil, frame.Header{Fin: fin, Op: op, Length: int64(len(payload))})
	return append(b, payload...)
}

// header returns a masked frame header announcing length bytes, without
// the payload.
func header(fin bool, rsv byte, op frame.Opcode, length int64) []byte {
	return frame.AppendHeader(nil, frame.Header{Fin: fin, Rsv: rsv, Op: op, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: length})
}

// cut returns a masked frame whose header announces len(payload) bytes but
// which carries only the first keep of them.
func cut(fin bool, op frame.Opcode, payload []byte, keep int) []byte {
	b := wire(fin, 0, op, payload)
	return b[:len(b)-len(payload)+keep]
}

func text(s string) []byte   { return wire(true, 0, frame.OpText, []byte(s)) }
func binary(p []byte) []byte { return wire(true, 0, frame.OpBinary, p) }
func ping(s string) []byte   { return wire(true, 0, frame.OpPing, []byte(s)) }
func pong(s string) []byte   { return wire(true, 0, frame.OpPong, []byte(s)) }

// fragment returns one fragment: op for the first, OpContinuation after.
func fragment(op frame.Opcode, fin bool, s string) []byte {
	return wire(fin, 0, op, []byte(s))
}

// fragments returns a message split into the given parts.
func fragments(op frame.Opcode, parts ...string) []byte {
	var b []byte
	for i, p := range parts {
		o := op
		if i > 0 {
			o = frame.OpContinuation
		}
		b = append(b, fragment(o, i == len(parts)-1, p)...)
	}
	return b
}

// closeFrame returns a close frame with code and reason, unchecked, so that
// codes and reasons the RFC forbids can be sent.
func closeFrame(code frame.CloseCode, reason string) []byte {
	p := binary16(uint16(code))
	return wire(true, 0, frame.OpClose, append(p, reason...))
}

func closeWith(payload []byte) []byte { return wire(true, 0, frame.OpClose, payload) }

func binary16(v uint16) []byte { return byteorder.BigEndian.AppendUint16(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// filled returns n bytes of a repeating pattern.
func filled(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte('a' + i%26)
	}
	return p
}

// exchange is one table case: bytes a client sends, the frames the server
// must send back, and the close code it must then close with (0: it stays
// open, and the test closes it cleanly).
type exchange struct {
	name    string
	send    []byte
	replies []reply
	code    frame.CloseCode
}

// runExchanges runs each case on a fresh connection to target, once per way
// of chopping its input.
func runExchanges(t *testing.T, e *env, target string, cases []exchange) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, h := range chopsFor(len(tc.send)) {
				t.Run(h.String(), func(t *testing.T) {
					c := e.dial(t, target)
					err := c.write(tc.send, h)
					if err != nil && tc.code == 0 {
						t.Fatalf("write: %v", err)
					}
					for _, r := range tc.replies {
						c.expect(r)
					}
					if tc.code == 0 {
						c.closeCleanly()
					} else {
						c.expectClose(tc.code)
					}
				})
			}
		})
	}
}
