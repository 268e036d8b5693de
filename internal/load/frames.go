package load

import (
	"bytes"
	"crypto/rand"

	"github.com/wskit/wskit/frame"
)

// Every connection sends RFC 6455's sample key, whose accept value is
// known (§1.3), so a handshake costs the client no hashing and the request
// is built once for all connections.
const (
	handshakeKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	handshakeAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// maxResponseHead bounds the server's upgrade response head.
const maxResponseHead = 8 << 10

// upgradeRequest returns the opening handshake for host and the request
// URI. It offers no extension, so replies come uncompressed.
func upgradeRequest(host, uri string) []byte {
	return []byte("GET " + uri + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + handshakeKey +
		"\r\nSec-WebSocket-Version: 13\r\nUser-Agent: wskit-bench\r\n\r\n")
}

// checkUpgrade reports whether head, a response head up to its blank line,
// accepts the upgrade.
func checkUpgrade(head []byte) bool {
	return bytes.HasPrefix(head, []byte("HTTP/1.1 101 ")) && bytes.Contains(head, []byte(handshakeAccept))
}

// newMaskKey returns the mask key of a run. Every frame of the run uses it,
// on every connection, so that frames are masked once, before the run.
// RFC 6455 §5.3 asks clients for a fresh unpredictable key per frame so that
// a page's script cannot choose the bytes an intermediary sees; a load
// generator sends only its own fixed payloads to a server its operator
// picked, and gains a copy-free send path from a fixed key.
func newMaskKey() [4]byte {
	var k [4]byte
	rand.Read(k[:])
	return k
}

// appendMasked appends one masked client frame carrying payload.
func appendMasked(dst []byte, op frame.Opcode, payload []byte, key [4]byte) []byte {
	h := frame.Header{Fin: true, Op: op, Masked: true, Mask: key, Length: int64(len(payload))}
	dst = frame.AppendHeader(dst, h)
	n := len(dst)
	dst = append(dst, payload...)
	frame.Mask(dst[n:], key, 0)
	return dst
}

// echoPayload returns the payload of the messages echo, pipeline, idle and
// churn send.
func echoPayload(size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(i*7 + 1)
	}
	return p
}

// maxPrepared bounds the bytes of prepared frames: up to that many copies of
// a frame are written with one system call.
const maxPrepared = 1 << 20

// prepareFrames returns back-to-back copies of a masked binary frame
// carrying payload: as many as a connection has messages in flight, unless
// that exceeds maxPrepared.
func prepareFrames(payload []byte, key [4]byte, inFlight int) (out []byte, frameLen int) {
	one := appendMasked(nil, frame.OpBinary, payload, key)
	copies := min(inFlight, max(1, maxPrepared/len(one)))
	return bytes.Repeat(one, copies), len(one)
}

// prepareRaw is prepareFrames for a raw TCP echo: the payloads alone.
func prepareRaw(payload []byte, inFlight int) (out []byte, msgLen int) {
	copies := min(inFlight, max(1, maxPrepared/len(payload)))
	return bytes.Repeat(payload, copies), len(payload)
}

// A stamp opens every broadcast message: '@' and the send time as 16 hex
// digits of nanoseconds since the run began. Text, so that servers relaying
// only text (such as wskit serve's /chat) relay it.
const stampLen = 17

// stampPayload returns a broadcast message's payload with a zero stamp.
func stampPayload(size int) []byte {
	p := bytes.Repeat([]byte{'x'}, size)
	p[0] = '@'
	for i := 1; i < stampLen; i++ {
		p[i] = '0'
	}
	return p
}

const hexDigits = "0123456789abcdef"

// putStamp writes the stamp of time t into the masked payload p of a frame
// built by appendMasked with key.
func putStamp(p []byte, t int64, key [4]byte) {
	for i := stampLen - 1; i >= 1; i-- {
		p[i] = hexDigits[t&15] ^ key[i&3]
		t >>= 4
	}
}

// maxSeqPrefix is the longest sequence a server may put before a stamp:
// 20 digits and a space.
const maxSeqPrefix = 21

// parseStamp returns the time in the stamp opening p, if p opens with one,
// and how many bytes came before it: a server may put a message's
// sequence, digits and a space, before what was published (wskit-nats
// serve's chat does, on JetStream).
func parseStamp(p []byte) (t int64, skip int, ok bool) {
	for skip < len(p) && skip < maxSeqPrefix-1 && p[skip] >= '0' && p[skip] <= '9' {
		skip++
	}
	if skip > 0 && skip < len(p) && p[skip] == ' ' {
		p = p[skip+1:]
		skip++
	} else {
		skip = 0
	}
	if len(p) < stampLen || p[0] != '@' {
		return 0, 0, false
	}
	for _, c := range p[1:stampLen] {
		switch {
		case c >= '0' && c <= '9':
			t = t<<4 | int64(c-'0')
		case c >= 'a' && c <= 'f':
			t = t<<4 | int64(c-'a'+10)
		default:
			return 0, 0, false
		}
	}
	return t, skip, true
}
