package selfsign

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net"
	"strings"
	"testing"
)

// A client that trusts the certificate completes a handshake with a server
// that serves it, for each name; the fingerprint is the certificate's.
func TestNew(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(c.Leaf.Raw)
	if want := strings.ToUpper(hex.EncodeToString(sum[:])); strings.ReplaceAll(c.Fingerprint, ":", "") != want || len(c.Fingerprint) != 95 {
		t.Fatalf("fingerprint %s, want %s with colons", c.Fingerprint, want)
	}
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		a, b := net.Pipe()
		srv := tls.Server(a, c.ServerConfig())
		go srv.Handshake()
		cfg := c.ClientConfig()
		cfg.ServerName = name
		cl := tls.Client(b, cfg)
		if err := cl.Handshake(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		a.Close()
		b.Close()
	}
}
