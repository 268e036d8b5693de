package wskit

import "syscall"

// writeNow writes b to the non-blocking descriptor fd as far as it goes at
// once, and returns how much it wrote.
func writeNow(fd int, b []byte) int {
	n := 0
	for n < len(b) {
		k, err := syscall.Write(fd, b[n:])
		if err == syscall.EINTR {
			continue
		}
		if k <= 0 {
			break
		}
		n += k
	}
	return n
}
