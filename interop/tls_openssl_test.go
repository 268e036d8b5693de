package interop

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/wskit/wskit"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/wstest"
)

// TestTLSOpenSSLClient runs Debian's `openssl s_client` (OpenSSL 3.0)
// against the TLS server under test, on each server variant, with the
// WebSocket side written here: the test writes the upgrade request and
// masked frames to s_client's stdin, which it sends, and reads the 101 and
// the server's frames from its stdout, which is what it received. s_client
// verifies testCert (-CAfile, -verify_hostname) and logs the TLS messages
// it sends and receives to a file (-msg, -msgfile).
//
// Over TLS 1.3 (-tls1_3) the session echoes texts, then s_client's "k"
// command sends a KeyUpdate that does not request the server's
// (update_not_requested), and "K" one that does (update_requested), in
// turns (keyUpdateCommands); texts must still echo after each. The log
// must then hold every KeyUpdate sent and one received per "K": the
// server's answers. On poll-events this is the loop's record layer
// updating its read key, and its write key on request. Over TLS 1.2 (-tls1_2) the session echoes texts. Either way
// it ends with the close handshake, the server's close_notify and the end
// of the connection.
func TestTLSOpenSSLClient(t *testing.T) {
	openssl := findOpenSSL(t)
	ca := testCertFile(t)
	forEachVariantWith(t, withTLS(nil), func(t *testing.T, srv *echoServer) {
		for _, v := range tlsVersions {
			t.Run(v.name, func(t *testing.T) { sClientSession(t, openssl, ca, srv, v) })
		}
	})
}

// sClientSession runs the session of TestTLSOpenSSLClient with s_client
// started with extra arguments, and returns s_client's -msg log.
func sClientSession(t *testing.T, openssl, ca string, srv *echoServer, v tlsVersion, extra ...string) string {
	t.Helper()
	before := len(srv.sessionInfos())
	c := startSClient(t, openssl, srv.Addr, ca, v, extra...)
	c.upgrade("/echo")
	// A default session is recorded by its handler, which may
	// run after the 101 went out.
	waitUntil(func() bool { return len(srv.sessionInfos()) > before })
	sessions := srv.sessionInfos()
	if len(sessions) != before+1 {
		t.Fatalf("%d sessions opened on the server, want 1", len(sessions)-before)
	}
	version, suite := c.summary()
	checkServedAt(t, srv, sessions[before], version, suite, v)
	for i, n := range []int{1, 125, 126, 1000, 4000} {
		c.echo(fmt.Sprintf("before any key update %d ", i), n)
	}
	requested := 0
	if v.id == tls.VersionTLS13 {
		for _, cmd := range keyUpdateCommands {
			c.keyUpdate(cmd)
			what := "after an update not requested "
			if cmd == "K" {
				what = "after an update requested "
				requested++
			}
			c.echo(what, 300)
			c.echo("and another ", 3000)
		}
	}
	c.close()
	log := c.messages()
	sent := len(sentKeyUpdate.FindAllString(log, -1))
	received := len(receivedKeyUpdate.FindAllString(log, -1))
	if v.id == tls.VersionTLS13 && (sent != len(keyUpdateCommands) || received != requested) {
		t.Errorf("s_client sent %d KeyUpdates and received %d, want %d and %d (the server's answers to K)",
			sent, received, len(keyUpdateCommands), requested)
	}
	if !receivedCloseNotify.MatchString(log) {
		t.Errorf("s_client received no close_notify from the server")
	}
	t.Logf("s_client sent %d KeyUpdates, received %d, and the server's close_notify", sent, received)
	return log
}

// keyUpdateCommands are the s_client commands TestTLSOpenSSLClient types
// over TLS 1.3, each followed by echoes: "k" updates s_client's key only,
// "K" asks the server to update its own too.
var keyUpdateCommands = []string{"k", "K", "K", "k", "k", "K"}

// The lines of s_client's -msg log for the messages the tests look for:
// ">>>" for those it sent, "<<<" for those it received.
var (
	sentKeyUpdate       = regexp.MustCompile(`(?m)^>>> TLS 1\.3, Handshake \[length 0005\], KeyUpdate$`)
	receivedKeyUpdate   = regexp.MustCompile(`(?m)^<<< TLS 1\.3, Handshake \[length 0005\], KeyUpdate$`)
	receivedCloseNotify = regexp.MustCompile(`(?m)^<<< TLS [0-9.]+, Alert \[length 0002\], warning close_notify$`)
)

// findOpenSSL returns the path of the openssl command.
func findOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		missingPeer(t, "openssl is not installed (apt-get install openssl): %v", err)
	}
	return path
}

// sClient is a running `openssl s_client`: what goes to its stdin it
// sends over TLS, what it receives it writes to its stdout.
type sClient struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *pipeReader
	stderr wstest.SyncBuffer
	msgs   string // the -msgfile
	exited chan struct{}
	mask   byte // varies the masks of the frames sent
}

// startSClient starts s_client to addr, offering only TLS version v and
// trusting the certificate in the PEM file ca, with extra arguments. With -brief it prints
// nothing but what it receives on stdout, and a summary of the connection
// on stderr; its commands stay on (-quiet would turn them off): a chunk
// read from stdin that starts with Q, R, k or K is a command, not data.
func startSClient(t *testing.T, openssl, addr, ca string, v tlsVersion, extra ...string) *sClient {
	t.Helper()
	c := &sClient{t: t, msgs: filepath.Join(t.TempDir(), "s_client.msg"), exited: make(chan struct{})}
	version := map[uint16]string{tls.VersionTLS13: "-tls1_3", tls.VersionTLS12: "-tls1_2"}[v.id]
	args := []string{"s_client", "-connect", addr, "-servername", "localhost",
		"-CAfile", ca, "-verify_hostname", "localhost", "-verify_return_error", version,
		"-brief", "-msg", "-msgfile", c.msgs}
	c.cmd = exec.Command(openssl, append(args, extra...)...)
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stderr = &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", strings.Join(c.cmd.Args, " "), err)
	}
	c.out = newPipeReader(stdout)
	go func() {
		c.out.wait()
		c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.stdin.Close()
		select {
		case <-c.exited:
		case <-time.After(stepTimeout):
			c.cmd.Process.Kill()
			<-c.exited
		}
		if t.Failed() {
			t.Logf("s_client's stderr:\n%s\nits -msg log, last lines:\n%s", c.stderr.String(), lastLines(c.messages(), 30))
		}
	})
	return c
}

// summary returns the TLS version and cipher suite s_client reports on
// stderr (-brief) once the handshake is done.
func (c *sClient) summary() (uint16, string) {
	c.t.Helper()
	var m []string
	if !waitUntil(func() bool { m = briefSummary.FindStringSubmatch(c.stderr.String()); return m != nil }) {
		c.t.Fatalf("s_client printed no summary of the connection within %v; its stderr:\n%s", stepTimeout, c.stderr.String())
	}
	versions := map[string]uint16{"TLSv1.3": tls.VersionTLS13, "TLSv1.2": tls.VersionTLS12}
	return versions[m[1]], m[2]
}

// briefSummary matches the version and suite in s_client's -brief summary.
var briefSummary = regexp.MustCompile(`(?m)^Protocol version: (\S+)\s*\nCiphersuite: (\S+)`)

// write sends b, in one write: a pipe hands a write of up to 4096 bytes to
// its reader whole, so that s_client reads it as one chunk.
func (c *sClient) write(b []byte) {
	c.t.Helper()
	if len(b) > 4096 {
		c.t.Fatalf("a write of %d bytes to s_client could be split", len(b))
	}
	if _, err := c.stdin.Write(b); err != nil {
		c.t.Fatalf("write to s_client: %v\nits stderr:\n%s", err, c.stderr.String())
	}
}

// upgrade sends the opening handshake for path and reads the 101.
func (c *sClient) upgrade(path string) {
	c.t.Helper()
	const key, accept = "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" // RFC 6455 §1.3
	c.write([]byte("GET " + path + " HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"))
	head, err := c.out.readHead()
	if err != nil {
		c.t.Fatalf("read the answer to the upgrade: %v (got %q)\ns_client's stderr:\n%s", err, head, c.stderr.String())
	}
	if !strings.HasPrefix(head, "HTTP/1.1 101 ") || !strings.Contains(head, "\r\nSec-WebSocket-Accept: "+accept+"\r\n") {
		c.t.Fatalf("the answer to the upgrade is %q, want a 101 with Sec-WebSocket-Accept %s", head, accept)
	}
}

// echo sends a text of n bytes that starts with prefix as a masked frame,
// and reads its echo.
func (c *sClient) echo(prefix string, n int) {
	c.t.Helper()
	text := []byte(prefix)
	for i := 0; len(text) < n; i++ {
		text = append(text, "abcdefghij0123456789 "[i%21])
	}
	text = text[:n]
	c.send(frame.OpText, text)
	h, p, err := c.readFrame()
	if err != nil {
		c.t.Fatalf("read the echo of %s: %v", describe(text), err)
	}
	if h.Op != frame.OpText || !h.Fin || h.Masked || !bytes.Equal(p, text) {
		c.t.Fatalf("the echo of %s is %+v %s", describe(text), h, describe(p))
	}
}

// send writes a masked frame. The mask's bytes have their top bit set, so
// that no payload byte can be taken for a command letter.
func (c *sClient) send(op frame.Opcode, p []byte) {
	c.t.Helper()
	c.mask++
	key := [4]byte{0x80 | c.mask, 0x91, 0xa2 ^ c.mask, 0xb3}
	b := frame.AppendHeader(nil, frame.Header{Fin: true, Op: op, Masked: true, Mask: key, Length: int64(len(p))})
	start := len(b)
	b = append(b, p...)
	frame.Mask(b[start:], key, 0)
	c.write(b)
}

// readFrame reads a frame of the server's from s_client's stdout.
func (c *sClient) readFrame() (frame.Header, []byte, error) {
	return wstest.ReadFrameLimit(c.out, 1<<20)
}

// keyUpdate types s_client's command cmd ("k" or "K") and waits until it
// says it took it; the KeyUpdate goes out with the next data.
func (c *sClient) keyUpdate(cmd string) {
	c.t.Helper()
	before := strings.Count(c.stderr.String(), "KEYUPDATE")
	c.write([]byte(cmd + "\n"))
	if !waitUntil(func() bool { return strings.Count(c.stderr.String(), "KEYUPDATE") > before }) {
		c.t.Fatalf("s_client did not take the %q command within %v; its stderr:\n%s", cmd, stepTimeout, c.stderr.String())
	}
}

// close sends a close frame with 1000, reads the server's, ends s_client's
// input and waits for it to exit; it must have read the end of the
// connection by then.
func (c *sClient) close() {
	c.t.Helper()
	c.send(frame.OpClose, []byte{0x03, 0xe8, 'b', 'y', 'e'})
	h, p, err := c.readFrame()
	if err != nil || h.Op != frame.OpClose || len(p) < 2 || int(p[0])<<8|int(p[1]) != int(frame.CloseNormal) {
		c.t.Fatalf("the answer to the close is %+v % x, %v; want a close frame with 1000", h, p, err)
	}
	// The server closes the connection after the close handshake; s_client
	// then reaches the end of its output.
	if rest, err := c.out.readAll(); err != nil || len(rest) != 0 {
		c.t.Errorf("after the close handshake s_client printed %s more, %v; want the end of the connection", describe(rest), err)
	}
	c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(stepTimeout):
		c.t.Fatalf("s_client did not exit within %v of its input's end", stepTimeout)
	}
}

// messages returns s_client's -msg log.
func (c *sClient) messages() string {
	b, _ := os.ReadFile(c.msgs)
	return string(b)
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "")
}

// pipeReader reads a child's output on a goroutine of its own, so that
// the test reads it with a bound on each wait (stepTimeout).
type pipeReader struct {
	mu   sync.Mutex
	cond *sync.Cond
	buf  []byte
	err  error // once the pipe ended
	done chan struct{}
}

func newPipeReader(r io.Reader) *pipeReader {
	p := &pipeReader{done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go func() {
		defer close(p.done)
		b := make([]byte, 32<<10)
		for {
			n, err := r.Read(b)
			p.mu.Lock()
			p.buf = append(p.buf, b[:n]...)
			if err != nil {
				p.err = err
			}
			p.cond.Broadcast()
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return p
}

// wait waits until the pipe has ended.
func (p *pipeReader) wait() { <-p.done }

var errStepTimeout = errors.New("nothing more within the step's time")

// await waits, with p.mu held, until ready holds or the pipe has ended,
// for at most stepTimeout.
func (p *pipeReader) await(ready func() bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	for !ready() && p.err == nil {
		if ctx.Err() != nil {
			return errStepTimeout
		}
		p.cond.Wait()
	}
	return nil
}

// Read implements io.Reader with the bound of await.
func (p *pipeReader) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.await(func() bool { return len(p.buf) > 0 }); err != nil {
		return 0, err
	}
	if len(p.buf) == 0 {
		return 0, p.err
	}
	n := copy(b, p.buf)
	p.buf = p.buf[n:]
	return n, nil
}

// readHead reads through the first empty line.
func (p *pipeReader) readHead() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	end := func() int {
		if i := bytes.Index(p.buf, []byte("\r\n\r\n")); i >= 0 {
			return i + 4
		}
		return -1
	}
	if err := p.await(func() bool { return end() >= 0 }); err != nil {
		return string(p.buf), err
	}
	n := end()
	if n < 0 {
		return string(p.buf), fmt.Errorf("the output ended (%v) before an empty line", p.err)
	}
	head := string(p.buf[:n])
	p.buf = p.buf[n:]
	return head, nil
}

// readAll reads until the pipe ends, and returns what came: an error if
// it did not end within stepTimeout.
func (p *pipeReader) readAll() ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.await(func() bool { return false })
	rest := p.buf
	p.buf = nil
	return rest, err
}

// TestTLSHelloRetry makes each TLS 1.3 client's first key share useless
// to the server under test, which takes P-384 only, on each server
// variant: the server answers with a HelloRetryRequest and the client
// sends a second ClientHello, so that the handshake has more records
// before the loop takes over from crypto/tls. gorilla's client (its
// first share X25519) echoes, closes and gets the close_notify; s_client
// (-groups X25519:P-384, one share for X25519) runs the session of
// TestTLSOpenSSLClient, KeyUpdates included, and its -msg log must show two
// ClientHellos sent.
func TestTLSHelloRetry(t *testing.T) {
	configure := func(o *wskit.Options) {
		withTLS(nil)(o)
		o.TLSConfig.CurvePreferences = []tls.CurveID{tls.CurveP384}
	}
	forEachVariantWith(t, configure, func(t *testing.T, srv *echoServer) {
		t.Run("gorilla", func(t *testing.T) {
			c, state, tt := gorillaDialTLSWith(t, srv, "/echo", tls13, func(cfg *tls.Config) {
				cfg.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP384}
			})
			if !state.HelloRetryRequest || state.CurveID != tls.CurveP384 {
				t.Errorf("HelloRetryRequest %v, key exchange %v; want a retry, then P-384", state.HelloRetryRequest, state.CurveID)
			}
			gorillaEcho1(t, c, websocket.BinaryMessage, pattern(70000), "binary")
			gorillaClose(t, c, frame.CloseNormal, "")
			tt.wantCloseNotify(t, state)
		})
		t.Run("openssl", func(t *testing.T) {
			log := sClientSession(t, findOpenSSL(t), testCertFile(t), srv, tls13, "-groups", "X25519:P-384")
			if n := len(sentClientHello.FindAllString(log, -1)); n != 2 {
				t.Errorf("s_client sent %d ClientHellos, want 2 (a HelloRetryRequest between)", n)
			}
		})
	})
}

// sentClientHello matches a ClientHello in s_client's -msg log.
var sentClientHello = regexp.MustCompile(`(?m)^>>> [^,]+, Handshake \[length [0-9a-f]+\], ClientHello$`)
