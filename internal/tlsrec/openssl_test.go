package tlsrec

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The OpenSSL command-line tools are a peer of another implementation,
// and one that can pick any TLS 1.3 suite (-ciphersuites) and start a
// KeyUpdate that requests ours (the "K" command of s_client and
// s_server). The tests skip without them, unless CI=true.

func opensslTool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl not found")
		}
		t.Skip("openssl not found")
	}
	return path
}

// opensslFiles writes the test certificate and key as PEM files.
func opensslFiles(t *testing.T) (cert, key string) {
	c, _ := testCert()
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// opensslPeer is a running s_client or s_server: what goes to its stdin
// it sends, what it receives it prints.
type opensslPeer struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	cond  *sync.Cond
	out   bytes.Buffer // stdout and stderr
	done  bool
}

func startOpenSSL(t *testing.T, args ...string) *opensslPeer {
	t.Helper()
	p := &opensslPeer{t: t, cmd: exec.Command(opensslTool(t), args...)}
	p.cond = sync.NewCond(&p.mu)
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	r, w := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			if err != nil {
				p.done = true
			}
			p.cond.Broadcast()
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		p.cmd.Wait()
		w.Close()
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		p.cmd.Process.Kill()
	})
	return p
}

// waitFor waits until the peer's output holds what, and returns it.
func (p *opensslPeer) waitFor(what string) string {
	p.t.Helper()
	return p.waitForMatch(func(out string) string {
		if strings.Contains(out, what) {
			return what
		}
		return ""
	})
}

// waitForMatch waits until match finds something in the peer's output.
func (p *opensslPeer) waitForMatch(match func(out string) string) string {
	p.t.Helper()
	timer := time.AfterFunc(30*time.Second, func() {
		p.mu.Lock()
		p.done = true
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer timer.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if m := match(p.out.String()); m != "" {
			return m
		}
		if p.done {
			out := p.out.String()
			p.t.Fatalf("openssl never printed what was awaited; it printed, last:\n%s", out[max(0, len(out)-1500):])
		}
		p.cond.Wait()
	}
}

func (p *opensslPeer) input(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line); err != nil {
		p.t.Fatal(err)
	}
}

var opensslSuites = []struct {
	name  string
	suite uint16
}{
	{"TLS_AES_128_GCM_SHA256", tls.TLS_AES_128_GCM_SHA256},
	{"TLS_AES_256_GCM_SHA384", tls.TLS_AES_256_GCM_SHA384},
	{"TLS_CHACHA20_POLY1305_SHA256", tls.TLS_CHACHA20_POLY1305_SHA256},
}

// exchange runs the conversation both OpenSSL tests share, our end e
// against peer p: data both ways, a KeyUpdate from OpenSSL that requests
// ours, one from us that requests OpenSSL's, and our close_notify.
// s_client sends its KeyUpdate with the next data, and says so on stderr;
// s_server sends it at once, and says so on stdout, which it buffers.
func exchange(t *testing.T, e *end, p *opensslPeer, kind string) {
	t.Helper()
	e.reads = []int{1, 5, 7, 100, 4096}
	line := func(s string) { // OpenSSL sends s, we read it
		t.Helper()
		p.input(s)
		if b, closed, err := e.recv(len(s)); string(b) != s || closed || err != nil {
			t.Fatalf("we read %q, closed %v, %v, for %q", b, closed, err, s)
		}
	}
	send := func(s string) { // we send s, OpenSSL prints it
		t.Helper()
		e.send([]byte(s))
		p.waitFor(s)
	}

	send("from wskit, first\n")
	line("from openssl, first\n")
	if kind == "s_server" && e.l.r.seq < 3 {
		// OpenSSL sends two session tickets before its first data.
		t.Fatalf("the first data was record %d from s_server", e.l.r.seq)
	}
	send(strings.Repeat("large ", 3000) + "end\n")

	// OpenSSL updates its key and requests ours.
	rsecret, wsecret := e.l.r.secret, e.l.w.secret
	p.input("K\n")
	if kind == "s_client" {
		p.waitFor("KEYUPDATE")
	} else {
		e.await(func() bool { return e.l.r.secret != rsecret })
	}
	line("from openssl, after its update\n")
	if e.l.r.secret == rsecret || e.l.w.secret == wsecret {
		t.Fatalf("after OpenSSL's KeyUpdate: read key updated %v, write key %v", e.l.r.secret != rsecret, e.l.w.secret != wsecret)
	}
	send("from wskit, after our answer\n")

	// We update ours and request OpenSSL's.
	rsecret = e.l.r.secret
	e.l.UpdateKeys(true)
	send("from wskit, after our update\n")
	line("from openssl, after answering\n")
	if e.l.r.secret == rsecret {
		t.Fatal("OpenSSL did not answer our KeyUpdate")
	}

	e.alert(AlertCloseNotify)
	if b, closed, err := e.recv(1); len(b) != 0 || !closed || err != nil {
		t.Fatalf("after our close_notify: %q closed %v, %v", b, closed, err)
	}
}

// Our layer in the server role against s_client, for each suite.
func TestOpenSSLClient(t *testing.T) {
	opensslTool(t)
	cert, _ := opensslFiles(t)
	for _, s := range opensslSuites {
		t.Run(s.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			p := startOpenSSL(t, "s_client", "-connect", ln.Addr().String(), "-tls1_3", "-ciphersuites", s.name,
				"-servername", "wskit.test", "-CAfile", cert, "-verify_return_error", "-brief")
			raw, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			raw.SetDeadline(time.Now().Add(time.Minute))
			kl := new(KeyLog)
			cfg := serverConfig()
			cfg.KeyLogWriter = kl
			rc := &recordConn{Conn: raw}
			conn := tls.Server(rc, cfg)
			if err := conn.Handshake(); err != nil {
				t.Fatal(err)
			}
			h := takeOver(t, conn, rc, kl, Server)
			if h.cfg.Suite != s.suite || h.cfg.WriteSeq != 1 {
				t.Fatalf("suite %s, write sequence %d", tls.CipherSuiteName(h.cfg.Suite), h.cfg.WriteSeq)
			}
			p.waitFor("CONNECTION ESTABLISHED")
			exchange(t, newEnd(t, h.cfg, raw), p, "s_client")
		})
	}
}

// Our layer in the client role against s_server, for each suite: OpenSSL
// sends two session tickets after the handshake, which we skip.
func TestOpenSSLServer(t *testing.T) {
	opensslTool(t)
	cert, key := opensslFiles(t)
	for _, s := range opensslSuites {
		t.Run(s.name, func(t *testing.T) {
			p := startOpenSSL(t, "s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-cert", cert, "-key", key,
				"-tls1_3", "-ciphersuites", s.name)
			accept := regexp.MustCompile(`ACCEPT (\S+)`)
			addr := p.waitForMatch(func(out string) string {
				if m := accept.FindStringSubmatch(out); m != nil {
					return m[1]
				}
				return ""
			})
			raw, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			raw.SetDeadline(time.Now().Add(time.Minute))
			kl := new(KeyLog)
			cfg := clientConfig()
			cfg.KeyLogWriter = kl
			rc := &recordConn{Conn: raw}
			conn := tls.Client(rc, cfg)
			if err := conn.Handshake(); err != nil {
				t.Fatal(err)
			}
			h := takeOver(t, conn, rc, kl, Client)
			if h.cfg.Suite != s.suite || h.cfg.WriteSeq != 0 {
				t.Fatalf("suite %s, write sequence %d", tls.CipherSuiteName(h.cfg.Suite), h.cfg.WriteSeq)
			}
			exchange(t, newEnd(t, h.cfg, raw), p, "s_server")
		})
	}
}
