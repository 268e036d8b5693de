package wskit

import "strings"

// A session on the poll engine keeps its request head for Session.Request,
// compacted: the phrases most upgrade requests share are stored as one
// control byte each (a head has none of its own but tab, CR and LF), so that
// an idle connection keeps little more than what is particular to it:
// its path, host, key and the fields browsers vary. A head that holds
// such a byte is kept as it came, after a NUL.

// headPhrases are the phrases compactHead replaces, tried in order at each
// byte; the control byte of headPhrases[i] is headTokens[i].
var headPhrases = [...]string{
	"GET /",
	" HTTP/1.1\r\nHost: ",
	"\r\nUpgrade: websocket",
	"\r\nConnection: Upgrade",
	"\r\nConnection: keep-alive, Upgrade",
	"\r\nSec-WebSocket-Key: ",
	"\r\nSec-WebSocket-Version: 13",
	"\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
	"\r\nSec-WebSocket-Protocol: ",
	"\r\nOrigin: http",
	"\r\nUser-Agent: Mozilla/5.0 (",
	"\r\nAccept-Encoding: gzip, deflate",
	"\r\nAccept-Language: ",
	"\r\nCache-Control: no-cache",
	"\r\nPragma: no-cache",
	"\r\nAccept: */*",
	"\r\nCookie: ",
	"\r\n\r\n",
}

const headTokens = "\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15"

// headToken reports whether c is one of compactHead's control bytes, or
// NUL.
func headToken(c byte) bool { return c < ' ' && c != '\t' && c != '\r' && c != '\n' }

// compactHead returns the form of head a session keeps.
func compactHead(head []byte) string {
	var scratch [512]byte
	b := scratch[:0]
	for i := 0; i < len(head); {
		c := head[i]
		if headToken(c) {
			return "\x00" + string(head)
		}
		k := -1
		if c == 'G' || c == ' ' || c == '\r' {
			for j, p := range headPhrases {
				if p[0] == c && len(head)-i >= len(p) && string(head[i:i+len(p)]) == p {
					k = j
					break
				}
			}
		}
		if k < 0 {
			b = append(b, c)
			i++
			continue
		}
		b = append(b, headTokens[k])
		i += len(headPhrases[k])
	}
	return string(b)
}

// expandHead appends the head that kept, a compactHead result, stands for
// to dst.
func expandHead(dst []byte, kept string) []byte {
	if strings.HasPrefix(kept, "\x00") {
		return append(dst, kept[1:]...)
	}
	for i := 0; i < len(kept); i++ {
		c := kept[i]
		if !headToken(c) {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, headPhrases[strings.IndexByte(headTokens, c)]...)
	}
	return dst
}
