package servers

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"

	ltls "github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
	nbws "github.com/lesismal/nbio/nbhttp/websocket"
)

// startNbio serves with nbio's own epoll engine (nbhttp, IOModNonBlocking)
// as nbio's go-websocket-benchmark configures it
// (frameworks/nbio_nonblocking/server.go): payloads released after
// OnMessage (ReleaseWebsocketPayload), the read deadline cleared after the
// upgrade, OnMessage writing the message back. One difference: NPoller is
// one poller goroutine per CPU (GOMAXPROCS), as wskit runs one event loop
// per CPU, where nbhttp.Config's default, runtime.NumCPU()/4 and at least
// 1, gives a 2-CPU machine a single poller. Handlers and OnMessage run on
// nbio's goroutine pool by default (nbhttp.Config.ServerExecutor unset);
// with sync (nbio-sync) ServerExecutor runs them on the poller goroutine
// that read the data, like wskit's Events.
func (s *Server) startNbio(ln net.Listener, sync bool) error {
	logging.Output = os.Stderr
	logging.SetLevel(logging.LevelError)
	upgrader := nbws.NewUpgrader()
	upgrader.OnMessage(func(c *nbws.Conn, mt nbws.MessageType, p []byte) {
		c.WriteMessage(mt, p)
	})
	mux := http.NewServeMux()
	mux.HandleFunc(Path, func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c.SetReadDeadline(time.Time{})
	})
	conf := nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{ln.Addr().String()},
		Handler:                 mux,
		IOMod:                   nbhttp.IOModNonBlocking,
		NPoller:                 runtime.GOMAXPROCS(0),
		ReleaseWebsocketPayload: true,
		// nbhttp listens itself; hand it ours.
		Listen: func(network, addr string) (net.Listener, error) {
			if ln == nil {
				return nil, errors.New("servers: nbio asked for a second listener")
			}
			l := ln
			ln = nil
			return l, nil
		},
	}
	if sync {
		conf.ServerExecutor = func(f func()) { f() }
	}
	if s.tls != nil {
		// nbio's own TLS (its fork of crypto/tls, lesismal/llib), on its
		// loops: AddrsTLS and TLSConfig, as nbio's examples and autobahn
		// server set them.
		cert, err := nbioCert(s)
		if err != nil {
			return err
		}
		conf.AddrsTLS, conf.Addrs = conf.Addrs, nil
		conf.TLSConfig = &ltls.Config{Certificates: []ltls.Certificate{cert}}
	}
	eng := nbhttp.NewEngine(conf)
	if err := eng.Start(); err != nil {
		return err
	}
	s.stop = func() error {
		eng.Stop()
		s.done <- nil
		return nil
	}
	return nil
}

// nbioCert is s's certificate for nbio's TLS, through PEM as nbio's
// examples load theirs.
func nbioCert(s *Server) (ltls.Certificate, error) {
	key, err := x509.MarshalPKCS8PrivateKey(s.cert.TLS.PrivateKey)
	if err != nil {
		return ltls.Certificate{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.cert.TLS.Certificate[0]})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})
	return ltls.X509KeyPair(certPEM, keyPEM)
}
