package wskit

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestCompactHead(t *testing.T) {
	browser := "GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, Upgrade\r\n" +
		"Pragma: no-cache\r\nCache-Control: no-cache\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n" +
		"Upgrade: websocket\r\nOrigin: https://example.com\r\nSec-WebSocket-Version: 13\r\n" +
		"Accept-Encoding: gzip, deflate, br, zstd\r\nAccept-Language: en-GB,en;q=0.9\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
	for _, tc := range []struct {
		name, head string
		most       int // bytes kept, at most
	}{
		{"tool", ptHead("127.0.0.1:40000", "/echo?token=bench"), 62},
		{"browser", browser, 190},
		{"bare LF", "GET / HTTP/1.1\nHost: x\n\n", 23},
		{"a control byte", "GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", 36}, // as it came, after a NUL
		{"NUL", "\x00GET / HTTP/1.1\r\n\r\n", 21},
		{"empty", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kept := compactHead([]byte(tc.head))
			if got := string(expandHead(nil, kept)); got != tc.head {
				t.Fatalf("expanded to %q, want %q", got, tc.head)
			}
			t.Logf("%d bytes kept of %d", len(kept), len(tc.head))
			if len(kept) > tc.most {
				t.Errorf("%d bytes kept of %d, want at most %d", len(kept), len(tc.head), tc.most)
			}
		})
	}
}

// TestCompactHeadRandom round-trips heads made of the phrases, their
// pieces and random bytes.
func TestCompactHeadRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b strings.Builder
		for range r.IntN(12) {
			switch p := headPhrases[r.IntN(len(headPhrases))]; r.IntN(4) {
			case 0:
				b.WriteString(p)
			case 1:
				b.WriteString(p[:r.IntN(len(p))])
			case 2:
				b.WriteByte(byte(r.IntN(256)))
			default:
				b.WriteString(p[r.IntN(len(p)):])
			}
		}
		head := b.String()
		if got := string(expandHead(nil, compactHead([]byte(head)))); got != head {
			t.Fatalf("%q expanded to %q", head, got)
		}
	}
}
