package wskit

import (
	"bytes"
	"crypto/tls"
	"net"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

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

// TestTLSLayerSize keeps the record layer of a loop session in the 320
// byte size class.
func TestTLSLayerSize(t *testing.T) {
	if n := unsafe.Sizeof(tlsLayer{}); n > 320 {
		t.Errorf("tlsLayer is %d bytes, more than 320", n)
	}
}
