package autobahn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
)

// wss:// URLs: the cases run over a TLS connection that crypto/tls makes
// over the TCP one, exactly as over ws:// otherwise. Dropping the
// connection closes the TCP connection under TLS without a close_notify,
// as dropping a ws:// one closes TCP: the cases judge the WebSocket close,
// and a close_notify could wait on a server that does not read.

type tlsConfigKey struct{}

// WithTLSConfig returns a context under which Run and RunAll dial wss://
// URLs with cfg: RootCAs to trust a self-signed server, or
// InsecureSkipVerify. Without it the system's roots apply. ServerName
// defaults to the URL's host.
func WithTLSConfig(ctx context.Context, cfg *tls.Config) context.Context {
	return context.WithValue(ctx, tlsConfigKey{}, cfg)
}

// dialTLS runs the client side of a TLS handshake over conn for u, and
// returns the connection to speak WebSocket over.
func dialTLS(ctx context.Context, conn net.Conn, u *url.URL) (net.Conn, error) {
	cfg, _ := ctx.Value(tlsConfigKey{}).(*tls.Config)
	cfg = cfg.Clone()
	if cfg == nil {
		cfg = new(tls.Config)
	}
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	cfg.NextProtos = []string{"http/1.1"} // an HTTP/1.1 upgrade, never h2
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return &tlsConn{Conn: tc, tcp: conn}, nil
}

// tlsConn is a TLS connection whose Close drops the TCP connection.
type tlsConn struct {
	*tls.Conn
	tcp net.Conn
}

func (c *tlsConn) Close() error { return c.tcp.Close() }

// tlsFlags are the command line's -insecure and -ca.
type tlsFlags struct {
	insecure *bool
	ca       *string
}

func addTLSFlags(fs *flag.FlagSet) tlsFlags {
	return tlsFlags{
		insecure: fs.Bool("insecure", false, "wss://: accept any certificate, such as a self-signed one, without checking it"),
		ca:       fs.String("ca", "", "wss://: trust the certificates in this PEM `file` (such as the one wskit serve -tls-self-signed prints)"),
	}
}

// context returns ctx with the TLS configuration the flags ask for.
func (f tlsFlags) context(ctx context.Context) (context.Context, error) {
	if !*f.insecure && *f.ca == "" {
		return ctx, nil
	}
	cfg := &tls.Config{InsecureSkipVerify: *f.insecure}
	if *f.ca != "" {
		pem, err := os.ReadFile(*f.ca)
		if err != nil {
			return ctx, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return ctx, fmt.Errorf("-ca %s: no PEM certificate in it", *f.ca)
		}
	}
	return WithTLSConfig(ctx, cfg), nil
}
