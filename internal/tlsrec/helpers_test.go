package tlsrec

import (
	"bytes"
	"crypto/tls"
	"errors"
	"testing"
)

var suites = []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_CHACHA20_POLY1305_SHA256}

func suiteName(id uint16) string { return tls.CipherSuiteName(id) }

// testSecrets returns fixed secrets of the length the suite's hash needs.
func testSecrets(id uint16) Secrets {
	s, err := suiteByID(id)
	if err != nil {
		panic(err)
	}
	c, v := make([]byte, s.hashLen), make([]byte, s.hashLen)
	for i := range c {
		c[i], v[i] = byte(i), byte(0xa0+i)
	}
	return Secrets{Client: c, Server: v}
}

func testConfig(id uint16, role Role) Config {
	return Config{Suite: id, Role: role, Secrets: testSecrets(id)}
}

func newLayer(t testing.TB, cfg Config) *RecordLayer {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// pair returns the two ends of one connection: a server and a client.
func pair(t testing.TB, id uint16) (srv, cli *RecordLayer) {
	return newLayer(t, testConfig(id, Server)), newLayer(t, testConfig(id, Client))
}

// appendInner seals an arbitrary inner plaintext (content, type, padding
// as given) as the next record of l, as a faulty or unusual peer would.
func appendInner(l *RecordLayer, dst, inner []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderLen)...)
	dst = append(dst, inner...)
	dst = append(dst, make([]byte, tagLen)...)
	l.w.seal(l.suite, dst[start:])
	return dst
}

// inner builds a TLSInnerPlaintext: content, type, then pad zeros.
func inner(typ byte, content []byte, pad int) []byte {
	p := append(bytes.Clone(content), typ)
	return append(p, make([]byte, pad)...)
}

func records(t testing.TB, l *RecordLayer, data []byte) []byte {
	t.Helper()
	out, err := l.AppendRecords(nil, data)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// result is what a reader made of a stream.
type result struct {
	data    []byte
	closed  bool
	err     error
	replies []byte // what the reader owed the writer, drained after each call
	events  int
}

// readAll feeds a copy of stream to l in pieces of the given sizes (cycled;
// none means all at once), collecting data until the stream ends or fails.
func readAll(l *RecordLayer, stream []byte, sizes ...int) result {
	var r result
	stream = bytes.Clone(stream)
	for i := 0; len(stream) > 0; i++ {
		k := len(stream)
		if len(sizes) > 0 && sizes[i%len(sizes)] > 0 {
			k = min(k, sizes[i%len(sizes)])
		}
		piece := stream[:k]
		stream = stream[k:]
		for len(piece) > 0 {
			ev, n, ok, err := l.Receive(piece)
			piece = piece[n:]
			r.replies = l.AppendReplies(r.replies)
			if err != nil {
				r.err = err
				return r
			}
			if !ok {
				break
			}
			r.events++
			switch ev.Kind {
			case EventData:
				if len(ev.Data) == 0 {
					r.err = errors.New("empty data event")
					return r
				}
				r.data = append(r.data, ev.Data...)
			case EventClose:
				r.closed = true
			}
		}
	}
	return r
}

// alertOf returns the alert of an *AlertError, or fails.
func alertOf(t testing.TB, err error) *AlertError {
	t.Helper()
	var ae *AlertError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *AlertError", err, err)
	}
	return ae
}

// pattern returns n bytes that differ from one position to the next.
func pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	return p
}
