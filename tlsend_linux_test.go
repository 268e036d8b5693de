//go:build linux

package wskit

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wskit/wskit/frame"
)

// tlsEndCase is a way for a client to end its session over TLS 1.3.
type tlsEndCase struct {
	name string
	// act does it, once the session is open and has echoed a message.
	act func(t *testing.T, p *tlsPeer)
	// alert is the error crypto/tls's client reads after act: the alert
	// the server answers with, or io.EOF after its close_notify.
	alert string
	// code is the session's close code on the server; its error is nil
	// after 1000, else one that matches err (errors.Is), when set.
	code CloseCode
	err  error
	// loopReason is in the close reason on the loop, which knows more
	// than crypto/tls tells.
	loopReason string
}

var tlsEndCases = []tlsEndCase{
	{name: "corrupt-tag", alert: "remote error: tls: bad record MAC", code: CloseAbnormal, act: func(t *testing.T, p *tlsPeer) {
		p.raw.flip.Store(true)
		p.send(frame.OpText, []byte("this record's tag will not match"))
	}},
	{name: "oversize-record", alert: "remote error: tls: record overflow", code: CloseAbnormal, act: func(t *testing.T, p *tlsPeer) {
		p.writeRaw([]byte{0x17, 0x03, 0x03, 0x41, 0x01, 0, 0, 0, 0})
	}},
	{name: "record-in-the-clear", alert: "remote error: tls: ", code: CloseAbnormal, act: func(t *testing.T, p *tlsPeer) {
		p.writeRaw([]byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x50})
	}},
	// The end of the client's stream before its close frame: the
	// session ends as at a TCP EOF, and the server sends its own
	// close_notify.
	{name: "close-notify", alert: "EOF", code: CloseAbnormal, err: io.EOF, loopReason: "close_notify", act: func(t *testing.T, p *tlsPeer) {
		if err := p.tc.CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}},
	// After its close frame, the end of the stream is the usual end.
	{name: "close-frame-then-close-notify", alert: "EOF", code: CloseNormal, act: func(t *testing.T, p *tlsPeer) {
		p.tc.Write(ptCloseFrame(CloseNormal, ""))
		if err := p.tc.CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}},
}

// TestTLSEnd ends sessions over TLS 1.3 from the client's side in each
// of the ways of tlsEndCases, on both engines (on the poll engine, the
// session is on the loop): the client must read what crypto/tls sends in
// the same case (an alert, or a close_notify), then the end of the TCP
// stream (not a reset), and the session must end with the close code and
// error expected.
func TestTLSEnd(t *testing.T) {
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		for _, tc := range tlsEndCases {
			t.Run(engine.String()+"/"+tc.name, func(t *testing.T) {
				ptLeakCheck(t)
				opts := ptOptions()
				opts.Engine = engine
				opts.TLSConfig = tlsCert.ServerConfig()
				onLoop := make(chan bool, 1)
				ended := make(chan CloseReason, 1)
				errs := make(chan error, 1)
				addr := tlsStart(t, opts, func(srv *Server) http.Handler {
					return srv.WebSocketEvents(Events{
						OnOpen:    func(s *Session) { ptPut(onLoop, s.lc != nil && s.lc.tls() != nil) },
						OnMessage: ptEcho,
						OnClose: func(s *Session, r CloseReason) {
							ptPut(errs, s.Err())
							ptPut(ended, r)
						},
					})
				})
				p := tlsDial(t, addr, "/", nil)
				if loop := ptAwait(t, onLoop, "OnOpen"); loop != (engine == EnginePoll) {
					t.Fatalf("session on the loop: %v", loop)
				}
				p.mustEcho([]byte("before"))
				tc.act(t, p)
				start := time.Now()
				if err := p.readErr(); err == nil || !strings.HasPrefix(err.Error(), tc.alert) {
					t.Errorf("the client read %v, want %q", err, tc.alert)
				}
				if err := p.waitEnd(); err != nil {
					t.Errorf("the end of the stream: %v", err)
				}
				if took := time.Since(start); took > time.Second {
					t.Errorf("the server ended the connection after %v", took)
				}
				p.raw.Close() // as a client does once it has read the end
				r := ptAwait(t, ended, "OnClose")
				err := <-errs
				t.Logf("closed %d %q, %v", r.Code, r.Reason, err)
				if r.Code != tc.code {
					t.Errorf("close code %d, want %d", r.Code, tc.code)
				}
				switch {
				case engine == EnginePoll && !strings.Contains(r.Reason, tc.loopReason):
					t.Errorf("the close reason %q does not say %q", r.Reason, tc.loopReason)
				case (err == nil) != (tc.code == CloseNormal):
					t.Errorf("the session's error is %v after %d", err, r.Code)
				case tc.err != nil && !errors.Is(err, tc.err):
					t.Errorf("the session's error is %v, want %v", err, tc.err)
				}
			})
		}
	}
}

// tlsPeer is a TLS 1.3 client of the tests, speaking WebSocket by hand
// through crypto/tls over a TCP connection it can tamper with.
type tlsPeer struct {
	t   testing.TB
	raw *tlsFlipConn
	tc  *tls.Conn
}

// tlsFlipConn is a client's TCP connection that flips the last byte of
// its next write when flip is set: the tag of the record crypto/tls
// writes then.
type tlsFlipConn struct {
	net.Conn
	flip atomic.Bool
}

func (c *tlsFlipConn) Write(p []byte) (int, error) {
	if c.flip.Swap(false) && len(p) > 0 {
		p = bytes.Clone(p)
		p[len(p)-1] ^= 0x40
	}
	return c.Conn.Write(p)
}

// tlsDial connects to addr over TLS 1.3 (configure, when set, changes the
// client's configuration) and upgrades on path, reading the 101 and
// nothing past it. Cleanup closes the connection.
func tlsDial(t testing.TB, addr, path string, configure func(*tls.Config)) *tlsPeer {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, ptWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	cfg := tlsCert.ClientConfig()
	cfg.ServerName = "localhost"
	cfg.MinVersion = tls.VersionTLS13
	cfg.NextProtos = []string{"http/1.1"}
	if configure != nil {
		configure(cfg)
	}
	p := &tlsPeer{t: t, raw: &tlsFlipConn{Conn: nc}}
	p.tc = tls.Client(p.raw, cfg)
	p.tc.SetDeadline(time.Now().Add(ptWait))
	defer p.tc.SetDeadline(time.Time{})
	if _, err := p.tc.Write([]byte(ptHead("localhost", path))); err != nil {
		t.Fatal(err)
	}
	var head []byte
	var b [1]byte // crypto/tls keeps the rest of the record
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if _, err := p.tc.Read(b[:]); err != nil {
			t.Fatalf("reading the 101: %v (got %q)", err, head)
		}
		head = append(head, b[0])
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 101 ")) {
		t.Fatalf("the answer to the upgrade is %q", head)
	}
	return p
}

// send sends a masked frame, in one record.
func (p *tlsPeer) send(op frame.Opcode, payload []byte) {
	p.t.Helper()
	if _, err := p.tc.Write(ptFrame(true, op, payload)); err != nil {
		p.t.Fatal(err)
	}
}

// mustEcho sends a text message and reads its echo.
func (p *tlsPeer) mustEcho(msg []byte) {
	p.t.Helper()
	p.send(frame.OpText, msg)
	p.tc.SetReadDeadline(time.Now().Add(ptWait))
	defer p.tc.SetReadDeadline(time.Time{})
	var hdr [2]byte
	if _, err := io.ReadFull(p.tc, hdr[:]); err != nil {
		p.t.Fatalf("reading the echo: %v", err)
	}
	got := make([]byte, hdr[1])
	if _, err := io.ReadFull(p.tc, got); err != nil || hdr[0] != 0x81 || !bytes.Equal(got, msg) {
		p.t.Fatalf("the echo: % x %q, %v", hdr, got, err)
	}
}

// writeRaw writes b on the TCP connection, under crypto/tls.
func (p *tlsPeer) writeRaw(b []byte) {
	p.t.Helper()
	if _, err := p.raw.Conn.Write(b); err != nil {
		p.t.Fatal(err)
	}
}

// readErr reads through crypto/tls until it fails, for at most ptWait,
// and returns the error.
func (p *tlsPeer) readErr() error {
	p.tc.SetReadDeadline(time.Now().Add(ptWait))
	_, err := io.Copy(io.Discard, p.tc)
	if err == nil {
		err = io.EOF
	}
	return err
}

// waitEnd reads the TCP connection until it ends, for at most ptWait: it
// returns nil at its end, an error for a reset or when it did not end.
func (p *tlsPeer) waitEnd() error {
	p.raw.SetReadDeadline(time.Now().Add(ptWait))
	_, err := io.Copy(io.Discard, p.raw.Conn)
	if errors.Is(err, syscall.ECONNRESET) {
		return errors.New("a reset, not the end of the stream")
	}
	return err
}
