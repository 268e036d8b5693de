package autobahn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"
)

// appendHeader appends a masked frame header with the given key.
func appendHeader(b []byte, fin bool, rsv, op byte, n int, key [4]byte) []byte {
	b0 := op&0x0f | (rsv&7)<<4
	if fin {
		b0 |= 0x80
	}
	switch {
	case n <= 125:
		b = append(b, b0, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, b0, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, b0, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, key[:]...)
}

// appendFrame appends a masked frame.
func appendFrame(b []byte, fin bool, rsv, op byte, p []byte) []byte {
	key := maskKey()
	b = appendHeader(b, fin, rsv, op, len(p), key)
	start := len(b)
	b = append(b, p...)
	maskBytes(b[start:], key, 0)
	return b
}

func maskKey() [4]byte {
	var k [4]byte
	binary.LittleEndian.PutUint32(k[:], mrand.Uint32())
	return k
}

// maskBytes XORs b with key, b starting at payload offset pos, and returns
// the offset after b.
func maskBytes(b []byte, key [4]byte, pos int) int {
	i := 0
	if len(b) >= 16 {
		var k8 [8]byte
		for j := range k8 {
			k8[j] = key[(pos+j)&3]
		}
		kw := binary.LittleEndian.Uint64(k8[:])
		for ; i+8 <= len(b); i += 8 {
			binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^kw)
		}
	}
	for ; i < len(b); i++ {
		b[i] ^= key[(pos+i)&3]
	}
	return pos + len(b)
}

// dial opens a TCP connection to a ws:// URL, with TLS over it for wss://
// (see tlsdial.go), and performs the opening handshake, offering
// permessage-deflate when offers is not empty. It returns
// the connection, any bytes read past the response and the permessage-deflate
// parameters the server accepted (nil when none).
func dial(ctx context.Context, rawURL string, offers []deflateOffer) (net.Conn, []byte, *deflateParams, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, nil, err
	}
	port := map[string]string{"ws": "80", "wss": "443"}[u.Scheme]
	if port == "" {
		return nil, nil, nil, fmt.Errorf("unsupported URL scheme %q (ws:// or wss://)", u.Scheme)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), port)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, nil, nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	if u.Scheme == "wss" {
		var tc net.Conn
		if tc, err = dialTLS(ctx, conn, u); err == nil {
			conn = tc
		}
	}
	var rest []byte
	var pmd *deflateParams
	if err == nil {
		rest, pmd, err = handshake(conn, u, offers)
	}
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	conn.SetDeadline(time.Time{})
	return conn, rest, pmd, nil
}

func handshake(conn net.Conn, u *url.URL, offers []deflateOffer) ([]byte, *deflateParams, error) {
	var nonce [16]byte
	rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	target := u.RequestURI()
	req := "GET " + target + " HTTP/1.1\r\n" +
		"Host: " + u.Host + "\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Pragma: no-cache\r\n" +
		"Cache-Control: no-cache\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\n" +
		"Sec-WebSocket-Version: 13\r\n"
	if len(offers) > 0 {
		req += "Sec-WebSocket-Extensions: " + offerHeader(offers) + "\r\n"
	}
	req += "User-Agent: wskit-autobahn\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		return nil, nil, err
	}
	var buf []byte
	tmp := make([]byte, 4096)
	for {
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			pmd, err := checkResponse(buf[:i], key, offers)
			if err != nil {
				return nil, nil, err
			}
			return buf[i+4:], pmd, nil
		}
		if len(buf) > 64<<10 {
			return nil, nil, errors.New("handshake response header too large")
		}
		n, err := conn.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil && n == 0 {
			return nil, nil, fmt.Errorf("reading handshake response: %w", err)
		}
	}
}

// checkResponse validates the server's handshake response (RFC 6455 §4.2.2)
// and its answer to our permessage-deflate offers (see negotiate).
func checkResponse(head []byte, key string, offers []deflateOffer) (*deflateParams, error) {
	r := bufio.NewReader(bytes.NewReader(head))
	status, _ := r.ReadString('\n')
	status = strings.TrimRight(status, "\r\n")
	f := strings.Fields(status)
	if len(f) < 2 || f[0] != "HTTP/1.1" || f[1] != "101" {
		return nil, &statusError{line: status}
	}
	h := map[string][]string{}
	for {
		line, err := r.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if k, v, ok := strings.Cut(line, ":"); ok {
			k = strings.ToLower(strings.TrimSpace(k))
			h[k] = append(h[k], strings.TrimSpace(v))
		}
		if err != nil {
			break
		}
	}
	if !hasToken(h["upgrade"], "websocket") {
		return nil, fmt.Errorf("response Upgrade header is %q", h["upgrade"])
	}
	if !hasToken(h["connection"], "upgrade") {
		return nil, fmt.Errorf("response Connection header is %q", h["connection"])
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	want := base64.StdEncoding.EncodeToString(sum[:])
	if got := h["sec-websocket-accept"]; len(got) != 1 || got[0] != want {
		return nil, fmt.Errorf("Sec-WebSocket-Accept is %q, want %q", got, want)
	}
	var pmd *deflateParams
	if v := h["sec-websocket-extensions"]; len(v) > 0 {
		if len(offers) == 0 {
			return nil, fmt.Errorf("server accepted extensions %q that were not offered", v)
		}
		var err error
		if pmd, err = negotiate(offers, v); err != nil {
			return nil, err
		}
	}
	if v := h["sec-websocket-protocol"]; len(v) > 0 {
		return nil, fmt.Errorf("server chose subprotocol %q that was not offered", v)
	}
	return pmd, nil
}

// statusError is a handshake response other than 101.
type statusError struct{ line string }

func (e *statusError) Error() string { return fmt.Sprintf("unexpected status line %q", e.line) }

func hasToken(vals []string, tok string) bool {
	for _, v := range vals {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), tok) {
				return true
			}
		}
	}
	return false
}

func sortedKeys(m map[string]int) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
