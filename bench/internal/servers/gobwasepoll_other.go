//go:build !linux

package servers

import (
	"errors"
	"net"
)

// startGobwasEpoll needs epoll.
func (s *Server) startGobwasEpoll(ln net.Listener, batch bool) error {
	return errors.New("servers: gobwas-epoll runs on Linux only")
}
