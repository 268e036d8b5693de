package tlsrec

import (
	"bytes"
	"crypto/tls"
	"strings"
	"sync"
	"testing"
)

const (
	random1 = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
	random2 = "a102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
	secret  = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
)

func TestParseKeyLogLine(t *testing.T) {
	label, random, sec, err := ParseKeyLogLine([]byte("CLIENT_TRAFFIC_SECRET_0 " + random1 + " " + secret + "\n"))
	if err != nil || label != LabelClientTraffic || random[0] != 1 || random[31] != 0x20 || len(sec) != 32 || sec[1] != 0x11 {
		t.Fatal(label, random, sec, err)
	}
	if label, _, sec, err := ParseKeyLogLine([]byte("EXPORTER_SECRET " + random1 + " " + secret + secret[:32] + "\r\n")); err != nil || label != "EXPORTER_SECRET" || len(sec) != 48 {
		t.Fatal(label, sec, err)
	}
	for _, bad := range []string{
		"",
		"CLIENT_TRAFFIC_SECRET_0",
		"CLIENT_TRAFFIC_SECRET_0 " + random1,
		"CLIENT_TRAFFIC_SECRET_0 " + random1[:62] + " " + secret,
		"CLIENT_TRAFFIC_SECRET_0 " + random1 + " " + secret[:63],
		"CLIENT_TRAFFIC_SECRET_0 " + random1 + " " + secret + secret,
		"CLIENT_TRAFFIC_SECRET_0 " + random1 + " zz" + secret[2:],
		"CLIENT_TRAFFIC_SECRET_0 xx" + random1[2:] + " " + secret,
		"CLIENT_TRAFFIC_SECRET_0 " + random1 + " " + secret + " extra",
		" " + random1 + " " + secret,
	} {
		if _, _, _, err := ParseKeyLogLine([]byte(bad)); err != ErrKeyLogLine {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestKeyLog(t *testing.T) {
	var kl KeyLog
	lines := []string{
		"CLIENT_HANDSHAKE_TRAFFIC_SECRET " + random1 + " " + secret,
		"# a comment",
		"SERVER_TRAFFIC_SECRET_0 " + random1 + " " + strings.Repeat("ab", 32),
		"CLIENT_TRAFFIC_SECRET_0 " + random2 + " " + secret,
		"CLIENT_TRAFFIC_SECRET_0 " + random1 + " " + secret,
		"EXPORTER_SECRET " + random1 + " " + secret,
	}
	if n, err := kl.Write([]byte(lines[0] + "\n" + lines[1] + "\n")); err != nil || n != len(lines[0])+len(lines[1])+2 {
		t.Fatal(n, err)
	}
	for _, l := range lines[2:] {
		if _, err := kl.Write([]byte(l + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	if kl.Len() != 2 {
		t.Fatalf("%d entries", kl.Len())
	}
	var r1, r2 [RandomLen]byte
	r1[0], r2[0] = 1, 0xa1
	for i := 1; i < RandomLen; i++ {
		r1[i], r2[i] = byte(i+1), byte(i+1)
	}
	s, ok := kl.Take(r1)
	if !ok || s.Client[0] != 0 || s.Client[1] != 0x11 || s.Server[0] != 0xab {
		t.Fatal(s, ok)
	}
	if _, ok := kl.Take(r2); ok || kl.Len() != 0 {
		t.Fatal("half the secrets taken, or an entry left")
	}
	if _, err := kl.Write([]byte("CLIENT_TRAFFIC_SECRET_0 " + random1 + " x\n")); err == nil {
		t.Fatal("malformed line accepted")
	}
	// Other labels are not even parsed.
	if _, err := kl.Write([]byte("CLIENT_HANDSHAKE_TRAFFIC_SECRET x\n")); err != nil || kl.Len() != 0 {
		t.Fatal("a handshake secret's line was parsed:", err)
	}

	// Concurrent handshakes log into one KeyLog.
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			r := bytes.Repeat([]byte{byte(i)}, RandomLen)
			kl.Write([]byte("CLIENT_TRAFFIC_SECRET_0 " + hexOf(r) + " " + secret + "\n"))
			kl.Write([]byte("SERVER_TRAFFIC_SECRET_0 " + hexOf(r) + " " + secret + "\n"))
		})
	}
	wg.Wait()
	for i := range 50 {
		if _, ok := kl.Take([RandomLen]byte(bytes.Repeat([]byte{byte(i)}, RandomLen))); !ok {
			t.Fatal(i)
		}
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(digits[c>>4])
		s.WriteByte(digits[c&15])
	}
	return s.String()
}

// ClientRandom finds in a crypto/tls ClientHello the random its key log
// names the connection by.
func TestClientRandom(t *testing.T) {
	a, b := loopback(t)
	kl := new(KeyLog)
	cfg := clientConfig()
	cfg.KeyLogWriter = kl
	rc := &recordConn{Conn: a}
	go tls.Server(b, serverConfig()).Handshake()
	if err := tls.Client(rc, cfg).Handshake(); err != nil {
		t.Fatal(err)
	}
	r, ok := ClientRandom(rc.written.Bytes())
	if !ok {
		t.Fatal("no random")
	}
	if _, ok := kl.Take(r); !ok {
		t.Fatal("the random names no connection in the key log")
	}
	hello := rc.written.Bytes()
	for _, bad := range [][]byte{hello[:42], append([]byte{23}, hello[1:]...), append(append([]byte(nil), hello[:5]...), 2)} {
		if _, ok := ClientRandom(bad); ok {
			t.Errorf("random found in %x", bad)
		}
	}
}

func TestCountRecords(t *testing.T) {
	w, _ := pair(t, tls.TLS_AES_128_GCM_SHA256)
	s := records(t, w, make([]byte, 2*MaxPlaintext+1))
	for cut, want := range map[int][2]int{0: {0, 0}, 4: {0, 4}, len(s) - 1: {2, Overhead}, len(s): {3, 0}} {
		if n, rest := CountRecords(s[:cut]); n != want[0] || rest != want[1] {
			t.Errorf("cut at %d: %d records, %d bytes left", cut, n, rest)
		}
	}
	if _, err := CountSealed(tls.TLS_AES_128_GCM_SHA256, testSecrets(tls.TLS_AES_128_GCM_SHA256).Server, s[:len(s)-1]); err == nil {
		t.Error("CountSealed on a cut stream")
	}
	if n, err := CountSealed(tls.TLS_AES_128_GCM_SHA256, testSecrets(tls.TLS_AES_128_GCM_SHA256).Server, s); n != 3 || err != nil {
		t.Error(n, err)
	}
	if n, err := CountSealed(tls.TLS_AES_128_GCM_SHA256, testSecrets(tls.TLS_AES_128_GCM_SHA256).Client, s); n != 0 || err != nil {
		t.Error(n, err)
	}
	l, err := New(Config{Suite: tls.TLS_AES_128_GCM_SHA256, Secrets: testSecrets(tls.TLS_AES_128_GCM_SHA256)})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SkipSealed(s[:len(s)-1]); err == nil {
		t.Error("SkipSealed on a cut stream")
	}
	if err := l.SkipSealed(bytes.Clone(s)); err != nil || l.w.seq != 3 {
		t.Error(l.w.seq, err)
	}
	if err := l.SkipSealed(bytes.Clone(s)); err == nil {
		t.Error("SkipSealed twice")
	}
	// Records under another secret after ours: not a stream crypto/tls writes.
	_, r := pair(t, tls.TLS_AES_128_GCM_SHA256)
	if _, err := CountSealed(tls.TLS_AES_128_GCM_SHA256, testSecrets(tls.TLS_AES_128_GCM_SHA256).Server, append(s, records(t, r, []byte("x"))...)); err == nil {
		t.Error("foreign record after ours")
	}
}
