//go:build !unix

package cli

import "syscall"

// smallReceiveBuffer leaves the receive buffer as it is: the tests that use
// it only take longer.
func smallReceiveBuffer(n int) func(network, address string, c syscall.RawConn) error {
	return nil
}
