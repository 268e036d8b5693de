//go:build !linux

package wsconn

// rawReader is Linux only: elsewhere the read buffer is kept.
type rawReader struct{}

func newRawReader(c *Conn) *rawReader { return nil }

func (r *rawReader) read() (int, error) { panic("unreachable") }
