package fanout

import (
	"bytes"
	"errors"
	"os"
	"strconv"
)

// WriteCalls returns how many write system calls (write, writev and the
// like) this process has made: syscw in /proc/self/io. It tells how many
// messages a server hands to the kernel at a time.
func WriteCalls() (uint64, error) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, err
	}
	_, rest, ok := bytes.Cut(b, []byte("syscw:"))
	if !ok {
		return 0, errors.New("fanout: no syscw in /proc/self/io")
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	return strconv.ParseUint(string(bytes.TrimSpace(line)), 10, 64)
}
