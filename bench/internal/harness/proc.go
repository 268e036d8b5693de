package harness

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/wskit/wskit/internal/load"
)

// CPUTime returns the user plus system CPU time of process pid, all its
// threads, from /proc/PID/stat (in clock ticks of 10 ms).
func CPUTime(pid int) (time.Duration, error) { return load.ProcessCPU(pid) }

// SelfCPU returns this process's user plus system CPU time.
func SelfCPU() time.Duration { return load.SelfCPU() }

// RSS returns the resident set size of process pid (VmRSS) in bytes.
func RSS(pid int) (int64, error) { return load.ProcessRSS(pid) }

// Sockets returns the number of sockets process pid holds open.
func Sockets(pid int) (int, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n, nil
}
