//go:build !linux

package fanout

import (
	"fmt"
	"os"
)

// ClientMain needs epoll: elsewhere it fails.
func ClientMain(args []string) int {
	fmt.Fprintln(os.Stderr, "fanout client: needs Linux")
	os.Stdout.WriteString("error needs Linux\n")
	return 1
}
