//go:build !linux

package wskit

// writeNow writes nothing where the poll engine does not run.
func writeNow(fd int, b []byte) int { return 0 }
