// Package conformance checks wskit's server against RFC 6455 over real
// loopback connections, organised by section of the RFC.
//
// The tests start the server on an httptest.Server with a default echo
// session (/echo), a raw echo session (/raw) and a few routes for the
// handshake, the close handshake and back-pressure, then talk to it with a
// hand-written client that can send anything: malformed frames, unmasked
// frames, reserved bits and opcodes, bad UTF-8, oversize lengths, all of it
// in one write, byte by byte or in random pieces. For every violation the
// tests read the server's close frame, check its code, and check that the
// server then closes the TCP connection. After every test no goroutine may
// be left behind.
//
// Covered: the opening handshake (§4.2), masking (§5.1), base framing,
// reserved bits and opcodes (§5.2), fragmentation (§5.4), control frames
// (§5.5), the close handshake and close codes (§7.1, §7.4), UTF-8 (§8.1),
// the size limits of wskit.Options, raw sessions (package wsraw), and a peer
// that stops reading (Options.Timeout).
//
// RFC 6455 §7.1.7 only says a failing endpoint SHOULD send a close frame
// (and §5.1 that it MAY, for an unmasked frame) before dropping TCP. wskit
// promises the close frame with its code for every violation, so the suite
// requires it; only where no close frame can be expected (the peer that stops
// reading, the peer that never answers the server's close) does it accept a
// bare end of TCP.
//
// The package holds tests only; run it with go test -race ./conformance/.
package conformance
