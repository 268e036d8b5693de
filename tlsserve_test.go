package wskit

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/wskit/wskit/internal/bufpool"
	"github.com/wskit/wskit/internal/selfsign"
)

// TestTLSStateKept checks that the state a loop session keeps of its
// handshake makes a tls.ConnectionState equal to crypto/tls's, exporter
// included, compact or, with a client certificate, whole.
func TestTLSStateKept(t *testing.T) {
	cert, err := selfsign.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, clientCert := range []bool{false, true} {
		scfg := cert.ServerConfig()
		scfg.NextProtos = []string{"http/1.1"}
		ccfg := cert.ClientConfig()
		ccfg.ServerName = "localhost"
		ccfg.NextProtos = []string{"http/1.1"}
		if clientCert {
			scfg.ClientAuth = tls.RequireAnyClientCert
			ccfg.Certificates = []tls.Certificate{cert.TLS}
		}
		a, b := net.Pipe()
		srv, cli := tls.Server(a, scfg), tls.Client(b, ccfg)
		done := make(chan error, 1)
		go func() { done <- cli.Handshake() }()
		if err := srv.Handshake(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		want := srv.ConnectionState()
		a.Close()
		b.Close()

		var last atomic.Pointer[string]
		k := keepTLSState(&want, &last)
		// A second connection naming the same server shares the name.
		again := want
		again.ServerName = strings.Clone(want.ServerName)
		if k2 := keepTLSState(&again, &last); unsafe.StringData(k2.serverName) != unsafe.StringData(k.serverName) && k2.whole == nil {
			t.Errorf("client certificate %v: the server name is not shared", clientCert)
		}
		if compact := k.whole == nil; compact == clientCert {
			t.Errorf("client certificate %v: kept compact %v", clientCert, compact)
		}
		got := k.connectionState()
		gv, wv := reflect.ValueOf(got).Elem(), reflect.ValueOf(&want).Elem()
		for i := range wv.NumField() {
			if f := wv.Type().Field(i); f.IsExported() && !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
				t.Errorf("client certificate %v: %s is %v, want %v", clientCert, f.Name, gv.Field(i), wv.Field(i))
			}
		}
		ekm, err := got.ExportKeyingMaterial("EXPERIMENTAL wskit", []byte("ctx"), 32)
		wantEKM, _ := want.ExportKeyingMaterial("EXPERIMENTAL wskit", []byte("ctx"), 32)
		if err != nil || !bytes.Equal(ekm, wantEKM) {
			t.Errorf("client certificate %v: ExportKeyingMaterial gives %x, %v; want %x", clientCert, ekm, err, wantEKM)
		}
		if got.ServerName != "localhost" || got.NegotiatedProtocol != "http/1.1" || !got.HandshakeComplete {
			t.Errorf("client certificate %v: state %+v lacks what the handshake set", clientCert, got)
		}
	}
	if !ekmKnown {
		t.Error("tls.ConnectionState's exporter field is not found: states are kept whole")
	}
}

// TestTLSLayerSize keeps the record layer of a loop session in the 288
// byte size class.
func TestTLSLayerSize(t *testing.T) {
	if n := unsafe.Sizeof(tlsLayer{}); n > 288 {
		t.Errorf("tlsLayer is %d bytes, more than 288", n)
	}
}

// chunkConn is a net.Conn whose reads return the chunks given, in turn,
// then io.EOF.
type chunkConn struct {
	net.Conn
	chunks [][]byte
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	if c.chunks[0] = c.chunks[0][n:]; len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

// TestRecordConn reads records that arrive together, and one cut across
// reads, through the handshake's transport: each Read gives at most the
// rest of one record, the records are counted, and what was read ahead
// is taken by the loop or, handed over to net/http, read first.
func TestRecordConn(t *testing.T) {
	rec := func(typ byte, body string) []byte {
		return append([]byte{typ, 3, 3, byte(len(body) >> 8), byte(len(body))}, body...)
	}
	r1, r2, r3 := rec(22, "hello"), rec(23, "finished"), rec(23, "request")
	stream := slices.Concat(r1, r2, r3)
	// r1 and the start of r2 come first, then the rest of r2 with r3.
	cut := len(r1) + 7
	newConn := func() *recordConn {
		return &recordConn{Conn: &chunkConn{chunks: [][]byte{bytes.Clone(stream[:cut]), bytes.Clone(stream[cut:])}}}
	}
	c := newConn()
	p := make([]byte, 64)
	var got [][]byte
	for range 2 { // r1, then r2 in two parts
		n, err := c.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, bytes.Clone(p[:n]))
	}
	n, err := c.Read(p)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, bytes.Clone(p[:n]))
	if want := [][]byte{r1, r2[:7], r2[7:]}; !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("reads %q, want %q", got, want)
	}
	if c.records != 2 || c.firstN != len(r1) || !bytes.Equal(c.first[:c.firstN], r1) {
		t.Fatalf("%d records, first %q", c.records, c.first[:c.firstN])
	}
	ahead, from := c.takeAhead()
	if ahead == nil || !bytes.Equal((*ahead)[from:], r3) {
		t.Fatal("r3, read ahead, is not what the loop takes")
	}
	bufpool.Put(ahead)
	c.drop()

	// Handed over after r1: net/http reads the rest, then the socket.
	c = newConn()
	if n, err := c.Read(p); err != nil || !bytes.Equal(p[:n], r1) {
		t.Fatalf("read %q, %v", p[:n], err)
	}
	c.handOver()
	var rest []byte
	for {
		n, err := c.Read(p)
		rest = append(rest, p[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(rest, stream[len(r1):]) {
		t.Fatalf("net/http read %q, want %q", rest, stream[len(r1):])
	}
}
