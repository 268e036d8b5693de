package harness

import (
	"bytes"
	"errors"
	"fmt"
	"net"
)

// The sample key of RFC 6455 §1.3 and its accept value.
const (
	handshakeKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	handshakeAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// Upgrade performs a client's opening handshake on nc for path at host and
// checks the 101 response. The server must send nothing after it
// unprompted: bytes past the response are an error.
func Upgrade(nc net.Conn, host, path string) error {
	_, err := upgrade(nc, host, path, "")
	return err
}

// upgrade sends the handshake with the header lines extra (each ending in
// CRLF) and returns the response head.
func upgrade(nc net.Conn, host, path, extra string) ([]byte, error) {
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + handshakeKey +
		"\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		return nil, err
	}
	var buf [1024]byte
	n := 0
	for {
		m, err := nc.Read(buf[n:])
		n += m
		if end := bytes.Index(buf[:n], []byte("\r\n\r\n")); end >= 0 {
			resp := buf[:end+4]
			if !bytes.HasPrefix(resp, []byte("HTTP/1.1 101 ")) || !bytes.Contains(resp, []byte(handshakeAccept)) {
				return nil, fmt.Errorf("upgrade refused: %q", resp)
			}
			if end+4 != n {
				return nil, errors.New("unexpected bytes after the upgrade response")
			}
			return bytes.Clone(resp), nil
		}
		if err != nil {
			return nil, err
		}
		if n == len(buf) {
			return nil, errors.New("upgrade response too long")
		}
	}
}
