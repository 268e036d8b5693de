// Package codec is the sans-I/O core of the WebSocket protocol: bytes in,
// frames, messages and protocol events out, encoded bytes appended to the
// caller's buffers. It never touches a socket, starts a goroutine or reads a
// clock: time comes in as an argument, so every behaviour can be tested byte
// by byte.
//
// Three pieces compose:
//
//   - Decoder turns a byte stream, fed in pieces of any size, into frames
//     whose payloads point into the given bytes, unmasked in place. Only an
//     unfinished frame is copied, into a pooled buffer.
//   - Assembler joins data frames into messages, enforcing continuation rules,
//     the message size limit and UTF-8 validity of text as it arrives.
//   - Protocol holds one connection's state: it answers pings, runs the close
//     handshake, sends keepalive pings and times them out, and maps every
//     violation to its close code. Encoder frames outgoing data.
//   - Extensions (Extension, Transform; PerMessageDeflate for RFC 7692)
//     negotiate from Sec-WebSocket-Extensions and transform whole messages
//     inside Protocol: outgoing in install order, incoming in reverse.
//
// Borrowed bytes: payloads returned by Decoder, Assembler and Protocol are
// valid only until the next call on the same value. Copy what must be kept.
package codec
