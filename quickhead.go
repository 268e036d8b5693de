package wskit

import (
	"bytes"
	"net/http"
	"net/url"
	"sync"
	"unsafe"
)

// quickRequest is a request head parsed for the poll engine's upgrade path
// without allocating: its strings point into the head, and its header
// holds only the handshake's own fields. It lives for one handshake.
type quickRequest struct {
	r    http.Request
	u    url.URL
	h    http.Header
	vals [len(quickHeaders)][1]string
}

// quickHeaders are the fields an upgrade looks at, in canonical form.
var quickHeaders = [...]string{
	"Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version",
	"Sec-Websocket-Protocol", "Sec-Websocket-Extensions", "Origin",
}

var quickPool = sync.Pool{New: func() any {
	q := &quickRequest{h: make(http.Header, len(quickHeaders))}
	q.blank()
	return q
}}

// blank makes q's request a new one over q's own header and URL.
func (q *quickRequest) blank() { q.r = http.Request{Header: q.h, URL: &q.u} }

// parseQuick parses a head of the common form: GET, HTTP/1.1, an
// origin-form target needing no cleaning or unescaping, one Host field and
// at most one of each handshake field. Anything else returns nil, and the
// head takes the full path (http.ReadRequest, or net/http itself), so
// unusual requests get exactly net/http's treatment. Put the result back
// with releaseQuick.
func parseQuick(head []byte) *quickRequest {
	line, rest, ok := bytes.Cut(head, crlf)
	if !ok || !bytes.HasPrefix(line, []byte("GET /")) || !bytes.HasSuffix(line, []byte(" HTTP/1.1")) {
		return nil
	}
	target := line[4 : len(line)-len(" HTTP/1.1")]
	path, query, _ := bytes.Cut(target, []byte("?"))
	for _, c := range target {
		if c <= ' ' || c >= 0x7f || c == '%' || c == '#' {
			return nil
		}
	}
	if bytes.Contains(path, []byte("//")) || bytes.Contains(path, []byte("/.")) {
		return nil // ServeMux would redirect to the cleaned path
	}
	q := quickPool.Get().(*quickRequest)
	clear(q.h)
	var host []byte
	hosts := 0
	for {
		line, rest, ok = bytes.Cut(rest, crlf)
		if !ok {
			releaseQuick(q)
			return nil
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !isToken(unsafeString(name)) || !validFieldValue(value) {
			releaseQuick(q)
			return nil
		}
		value = bytes.Trim(value, " \t")
		if len(name) == 4 && bytes.EqualFold(name, []byte("host")) {
			host, hosts = value, hosts+1
			continue
		}
		for i, k := range quickHeaders {
			if len(name) != len(k) || !bytes.EqualFold(name, []byte(k)) {
				continue
			}
			if q.h[k] != nil {
				releaseQuick(q) // repeated: let the full parser join them
				return nil
			}
			q.vals[i][0] = unsafeString(value)
			q.h[k] = q.vals[i][:]
			break
		}
	}
	if hosts != 1 || !validHost(unsafeString(host)) {
		releaseQuick(q)
		return nil
	}
	q.u = url.URL{Path: unsafeString(path), RawQuery: unsafeString(query)}
	q.r.Method, q.r.Proto, q.r.ProtoMajor, q.r.ProtoMinor = http.MethodGet, "HTTP/1.1", 1, 1
	q.r.Host = unsafeString(host)
	q.r.RequestURI = unsafeString(target)
	return q
}

func releaseQuick(q *quickRequest) {
	clear(q.h)
	q.vals = [len(quickHeaders)][1]string{}
	q.u = url.URL{}
	// All of the request: a ServeMux gave it a pattern and path values
	// that point into this head, which the next head's route, without
	// wildcards, would not replace.
	q.blank()
	quickPool.Put(q)
}

var crlf = []byte("\r\n")

// validFieldValue reports whether v may be a header field value: no
// control bytes but tab.
func validFieldValue(v []byte) bool {
	for _, c := range v {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
