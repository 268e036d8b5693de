package autobahn

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wskit/wskit/internal/selfsign"
)

// startEchoTLS serves the strict echo server over TLS with a self-signed
// certificate, and returns its wss:// URL and the certificate.
func startEchoTLS(t *testing.T, f fault) (string, *selfsign.Cert) {
	t.Helper()
	cert, err := selfsign.New()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cert.ServerConfig()
	url := serveLoopback(t, func(c net.Conn) { serveEcho(tls.Server(c, cfg), f) })
	return "wss://localhost:" + url[strings.LastIndex(url, ":")+1:], cert
}

// The cases judge a wss:// server as they judge a ws:// one: the same
// verdicts, the faults found.
func TestTLSCases(t *testing.T) {
	plain := startEcho(t, noFault)
	secure, cert := startEchoTLS(t, noFault)
	ctx := WithTLSConfig(context.Background(), &tls.Config{RootCAs: cert.Pool})
	filter := Filter([]string{"1.1.*", "2.*", "5.1*", "6.2.*", "7.1.*", "7.5.1", "9.1.1"}, nil)
	want, got := RunAll(context.Background(), plain, filter), RunAll(ctx, secure, filter)
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("%d cases over ws://, %d over wss://", len(want), len(got))
	}
	for i := range want {
		if got[i].Behavior != want[i].Behavior || got[i].Close != want[i].Close {
			t.Errorf("%s: %s/%s over wss://, %s/%s over ws://: %s", got[i].ID, got[i].Behavior, got[i].Close, want[i].Behavior, want[i].Close, got[i].Detail)
		}
	}
	corrupt, _ := startEchoTLS(t, corruptEcho)
	insecure := WithTLSConfig(context.Background(), &tls.Config{InsecureSkipVerify: true})
	if r := Run(insecure, corrupt+"/", caseByID(t, "1.1.6"), 0); r.Behavior != Failed {
		t.Errorf("a corrupt echo over wss:// is %s", r.Behavior)
	}
}

func caseByID(t *testing.T, id string) Case {
	for _, c := range Cases() {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no case %s", id)
	return Case{}
}

// -ca trusts a PEM file, -insecure any certificate; with neither the
// handshake fails and the case says why.
func TestMainTLS(t *testing.T) {
	url, cert := startEchoTLS(t, noFault)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Leaf.Raw}), 0o600)
	for _, trust := range [][]string{{"-ca", caFile}, {"-insecure"}} {
		var out, errb bytes.Buffer
		args := append([]string{"-url", url + "/", "-cases", "1.1.1,2.5", "-expect", "OK=2"}, trust...)
		if code := runMain(context.Background(), args, &out, &errb); code != 0 {
			t.Errorf("%v: exit %d\n%s%s", trust, code, out.String(), errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := runMain(context.Background(), []string{"-url", url + "/", "-cases", "1.1.1"}, &out, &errb); code != 1 ||
		!strings.Contains(out.String(), "TLS handshake: tls: failed to verify certificate") {
		t.Errorf("untrusted: exit %d\n%s", code, out.String())
	}
	if code := runMain(context.Background(), []string{"-ca", filepath.Join(t.TempDir(), "none.pem")}, &out, &errb); code != 2 {
		t.Errorf("missing -ca file: exit %d, want 2", code)
	}
}
