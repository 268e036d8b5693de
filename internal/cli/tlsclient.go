package cli

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// clientTLS returns the client TLS configuration of -insecure and -ca,
// which wskit dial and wskit bench share, or nil when neither is given
// (the system's roots then apply).
func clientTLS(insecure bool, caFile string) (*tls.Config, error) {
	if !insecure && caFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{InsecureSkipVerify: insecure}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-ca %s: no PEM certificate in it", caFile)
		}
	}
	return cfg, nil
}
