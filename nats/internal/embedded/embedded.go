// Package embedded runs a nats-server inside the process, for wskit-nats
// serve -nats-embedded and for the tests: a server of clients on one
// address, optionally routes to others (a cluster), optionally JetStream.
package embedded

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config is what the embedded server is.
type Config struct {
	// Name names the server in its cluster; "" lets nats-server pick.
	Name string
	// Listen is the clients' host:port; port 0 picks a free one.
	Listen string
	// Cluster is the host:port other servers route to; "" forms no
	// cluster. Routes are the others' cluster addresses (host:port or
	// nats-route:// URLs); a server may list itself.
	Cluster string
	Routes  []string
	// ClusterName names the cluster; "" means "wskit".
	ClusterName string
	// JetStream enables JetStream, storing in StoreDir.
	JetStream bool
	StoreDir  string
	// Log makes the server log to stderr.
	Log bool
}

// ready bounds the wait for a server to take clients.
const ready = 10 * time.Second

// Start starts a server and waits until it takes clients.
func Start(c Config) (*server.Server, error) {
	host, port, err := hostPort(c.Listen)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: listen address: %w", err)
	}
	o := &server.Options{
		ServerName: c.Name,
		Host:       host, Port: port,
		NoLog: !c.Log, NoSigs: true,
		JetStream: c.JetStream, StoreDir: c.StoreDir,
		// Room for WebSocket messages of up to 8 MiB (NATS's default
		// is 1 MiB).
		MaxPayload: 8 << 20,
	}
	if c.Cluster != "" {
		chost, cport, err := hostPort(c.Cluster)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS: cluster address: %w", err)
		}
		o.Cluster = server.ClusterOpts{Name: c.ClusterName, Host: chost, Port: cport}
		if o.Cluster.Name == "" {
			o.Cluster.Name = "wskit"
		}
		for _, r := range c.Routes {
			u, err := routeURL(r)
			if err != nil {
				return nil, err
			}
			o.Routes = append(o.Routes, u)
		}
	} else if len(c.Routes) > 0 {
		return nil, errors.New("embedded NATS: routes need a cluster address")
	}
	ns, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	if c.Log {
		ns.ConfigureLogger()
	}
	go ns.Start()
	if !ns.ReadyForConnections(ready) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded NATS: not ready within %v (is %s free?)", ready, c.Listen)
	}
	return ns, nil
}

// hostPort splits addr, with port 0 as nats-server's "any" (-1).
func hostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	if port == 0 {
		port = -1
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

// routeURL returns the URL of a route given as host:port or as a URL.
func routeURL(r string) (*url.URL, error) {
	if !strings.Contains(r, "://") {
		r = "nats-route://" + r
	}
	u, err := url.Parse(r)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("embedded NATS: bad route %q", r)
	}
	return u, nil
}
