package cli

import "os"

// isTerminal reports whether f, a reader or a writer, is a terminal: an
// *os.File on a terminal device. Another character device, such as
// /dev/null, is not one.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok || file == nil {
		return false
	}
	return fileIsTerminal(file)
}
