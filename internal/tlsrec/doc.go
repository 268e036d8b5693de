// Package tlsrec is a sans-I/O TLS 1.3 record layer (RFC 8446 §5): bytes
// in, plaintext out, records out, for the poll engine to serve wss://
// without a goroutine per connection. It never touches a socket, starts a
// goroutine or reads a clock.
//
// The handshake belongs to crypto/tls. The engine runs it on a short-lived
// goroutine over a transport that hands crypto/tls one whole record per
// Read, so that crypto/tls reads nothing past the peer's Finished, and
// with a KeyLog as tls.Config.KeyLogWriter. When the handshake is done:
//
//   - ClientRandom, on the first bytes the client sent, names the
//     connection in the KeyLog, and KeyLog.Take gives its application
//     traffic secrets;
//   - CountSealed, on the bytes crypto/tls wrote, says how many records it
//     sealed under our application secret already (a server's session
//     tickets), which is our first write sequence number;
//   - New builds the RecordLayer from them and the suite
//     tls.ConnectionState reports, and the connection goes on without
//     crypto/tls.
//
// A client does the same from the other end (the load tool does, for its
// wss:// connections): ClientRandom on the first bytes it wrote, CountSealed
// on what it wrote and read (nothing under the application secrets, when
// its reader stops at the server's Finished), and a RecordLayer in the
// Client role, which skips the session tickets that arrive afterwards.
//
// A RecordLayer decrypts records in place in the caller's input and
// buffers only a record cut by the end of the input, in a pooled buffer
// given back once the record is delivered; it seals records into the
// caller's buffers. It handles what TLS 1.3 carries after the handshake:
// KeyUpdates both ways, session tickets (ignored, in the client role),
// close_notify, alerts, padding, and reports every fault of the input with
// the alert it owes the peer.
//
// Borrowed bytes: data returned by Receive is valid only until the next
// call on the same RecordLayer.
package tlsrec
