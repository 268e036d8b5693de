// Package frame is the RFC 6455 wire format on byte slices: opcodes, frame
// headers, masking, close codes and close payloads, and UTF-8 validation.
//
// Nothing here performs I/O, starts goroutines or allocates on the hot path:
// parsers read from the start of a []byte and say how much they took,
// appenders extend a caller's []byte. Violations are reported as
// *ProtocolError values that carry the close code RFC 6455 asks for.
package frame
