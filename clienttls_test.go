package wskit_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/wskit/wskit"
)

// tlsRoutes serves /echo, and /tls, which sends what the server saw of
// the client's TLS: the protocol ALPN chose and the server name (SNI).
func tlsRoutes(srv *wskit.Server) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/echo", srv.WebSocket(echoHandler(nil)))
	mux.Handle("/tls", srv.WebSocket(func(s *wskit.Session) {
		cs := s.Request().TLS
		if cs == nil {
			s.SendText("no TLS")
			return
		}
		s.SendText("alpn=" + cs.NegotiatedProtocol + " sni=" + cs.ServerName)
		for range s.Messages() { // until the client closes
		}
	}))
	return mux
}

func TestDialTLS(t *testing.T) {
	checkGoroutines(t)
	cert, pool := testCert(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	for _, tg := range targets(t, testOptions(), tlsRoutes, serverTLS) {
		t.Run(tg.name, func(t *testing.T) {
			port := tg.url[strings.LastIndexByte(tg.url, ':'):]
			byIP := tg.url
			byName := "wss://localhost" + port
			for _, tc := range []struct {
				name string
				url  string
				cfg  *tls.Config
				want string // what /tls reports
			}{
				{"a pool, by IP: no SNI", byIP, &tls.Config{RootCAs: pool}, "alpn=http/1.1 sni="},
				{"a pool, by name: ServerName from the URL", byName, &tls.Config{RootCAs: pool}, "alpn=http/1.1 sni=localhost"},
				{"ServerName given", byIP, &tls.Config{RootCAs: pool, ServerName: "localhost"}, "alpn=http/1.1 sni=localhost"},
				{"h2 asked for: http/1.1 all the same", byName, &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}}, "alpn=http/1.1 sni=localhost"},
				{"InsecureSkipVerify", byName, &tls.Config{InsecureSkipVerify: true}, "alpn=http/1.1 sni=localhost"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					before := tc.cfg.Clone()
					s := dial(t, tc.url+"/tls", &wskit.DialOptions{TLSConfig: tc.cfg})
					if cs := s.Response().TLS; cs == nil || !cs.HandshakeComplete || cs.NegotiatedProtocol != "http/1.1" {
						t.Errorf("Response().TLS = %+v, want the connection's state", cs)
					}
					if m := receive(t, s); m.Text() != tc.want {
						t.Errorf("the server saw %q, want %q", m.Text(), tc.want)
					}
					if tc.cfg.ServerName != before.ServerName || !slices.Equal(tc.cfg.NextProtos, before.NextProtos) {
						t.Errorf("Dial changed the caller's tls.Config: ServerName %q, NextProtos %q", tc.cfg.ServerName, tc.cfg.NextProtos)
					}
					s.Close(wskit.CloseNormal, "")
					checkEcho(t, dial(t, tc.url+"/echo", &wskit.DialOptions{TLSConfig: tc.cfg}))
				})
			}
			t.Run("no trust", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				s, err := wskit.Dial(ctx, byName+"/echo", nil)
				var unknown x509.UnknownAuthorityError
				if !errors.As(err, &unknown) {
					if s != nil {
						s.Close(wskit.CloseNormal, "")
					}
					t.Fatalf("Dial without the pool = %v, want x509.UnknownAuthorityError", err)
				}
			})
			t.Run("a name the certificate lacks", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				_, err := wskit.Dial(ctx, byIP+"/echo", &wskit.DialOptions{TLSConfig: &tls.Config{RootCAs: pool, ServerName: "example.com"}})
				var host x509.HostnameError
				if !errors.As(err, &host) {
					t.Fatalf("Dial = %v, want x509.HostnameError", err)
				}
			})
		})
	}
}
