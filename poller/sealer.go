package poller

// Sealer turns a connection's output into what goes on the wire, such as
// TLS records (see SetSealer). Its methods run with the connection locked.
type Sealer interface {
	// Seal appends to dst the wire form of plain; with plain empty, only
	// what the sealer owes the peer of its own (see Owed).
	Seal(dst, plain []byte) []byte
	// SealedSize bounds the length Seal appends for n bytes of plain.
	SealedSize(n int) int
	// Owed reports whether the sealer has output of its own to send, such
	// as a TLS key update.
	Owed() bool
	// Close appends the wire form of the end of the stream, such as a TLS
	// close_notify, or nothing.
	Close(dst []byte) []byte
}
