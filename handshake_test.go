package wskit

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// rfcKey and rfcAccept are the sample of RFC 6455 §1.3.
const (
	rfcKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	rfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// upgradeRequest returns a valid opening handshake for target, with headers
// changed by edit (a value of "" deletes the header).
func upgradeRequest(method, target string, edit map[string]string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", rfcKey)
	for k, v := range edit {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	return r
}

func TestAcceptKeyRFCSample(t *testing.T) {
	if got := string(acceptKey(nil, rfcKey)); got != rfcAccept {
		t.Fatalf("acceptKey(%q) = %q, want %q", rfcKey, got, rfcAccept)
	}
	if got := string(acceptKey([]byte("x: "), rfcKey)); got != "x: "+rfcAccept {
		t.Fatalf("acceptKey appends: got %q", got)
	}
}

func TestCheckRequest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		proto  [2]int // HTTP major, minor; zero means 1.1
		edit   map[string]string
		add    [][2]string // extra header lines, added after edit
		status int         // 0: accepted
		header [2]string   // extra response header expected on refusal
	}{
		{name: "valid", method: "GET"},
		{name: "Connection with several tokens", method: "GET", edit: map[string]string{"Connection": "keep-alive, Upgrade"}},
		{name: "Connection tokens without spaces", method: "GET", edit: map[string]string{"Connection": "keep-alive,upgrade"}},
		{name: "Connection in upper case", method: "GET", edit: map[string]string{"Connection": "UPGRADE"}},
		{name: "Connection on two lines", method: "GET", edit: map[string]string{"Connection": "keep-alive"}, add: [][2]string{{"Connection", "Upgrade"}}},
		{name: "Upgrade in mixed case", method: "GET", edit: map[string]string{"Upgrade": "WebSocket"}},
		{name: "Upgrade among other protocols", method: "GET", edit: map[string]string{"Upgrade": "h2c, websocket"}},

		{name: "POST", method: "POST", status: 405, header: [2]string{"Allow", "GET"}},
		{name: "HEAD", method: "HEAD", status: 405, header: [2]string{"Allow", "GET"}},
		{name: "HTTP/1.0", method: "GET", proto: [2]int{1, 0}, status: 400},
		{name: "no Upgrade", method: "GET", edit: map[string]string{"Upgrade": ""}, status: 426, header: [2]string{"Upgrade", "websocket"}},
		{name: "Upgrade is another protocol", method: "GET", edit: map[string]string{"Upgrade": "h2c"}, status: 426, header: [2]string{"Upgrade", "websocket"}},
		{name: "Upgrade token is only a prefix", method: "GET", edit: map[string]string{"Upgrade": "websocketx"}, status: 426, header: [2]string{"Upgrade", "websocket"}},
		{name: "no Connection", method: "GET", edit: map[string]string{"Connection": ""}, status: 400},
		{name: "Connection keep-alive only", method: "GET", edit: map[string]string{"Connection": "keep-alive"}, status: 400},
		{name: "Connection token is only a prefix", method: "GET", edit: map[string]string{"Connection": "upgraded"}, status: 400},
		{name: "no version", method: "GET", edit: map[string]string{"Sec-WebSocket-Version": ""}, status: 426, header: [2]string{"Sec-WebSocket-Version", "13"}},
		{name: "version 8", method: "GET", edit: map[string]string{"Sec-WebSocket-Version": "8"}, status: 426, header: [2]string{"Sec-WebSocket-Version", "13"}},
		{name: "two versions", method: "GET", add: [][2]string{{"Sec-WebSocket-Version", "8"}}, status: 426, header: [2]string{"Sec-WebSocket-Version", "13"}},
		{name: "no key", method: "GET", edit: map[string]string{"Sec-WebSocket-Key": ""}, status: 400},
		{name: "key of 15 bytes", method: "GET", edit: map[string]string{"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAA"}, status: 400},
		{name: "key not base64", method: "GET", edit: map[string]string{"Sec-WebSocket-Key": "!!!!!!!!!!!!!!!!!!!!!!=="}, status: 400},
		{name: "key with non-zero padding bits", method: "GET", edit: map[string]string{"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZR=="}, status: 400},
		{name: "two keys", method: "GET", add: [][2]string{{"Sec-WebSocket-Key", rfcKey}}, status: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := upgradeRequest(tc.method, "/ws", tc.edit)
			for _, h := range tc.add {
				r.Header.Add(h[0], h[1])
			}
			if tc.proto != [2]int{} {
				r.ProtoMajor, r.ProtoMinor = tc.proto[0], tc.proto[1]
			}
			key, herr := checkRequest(r)
			if tc.status == 0 {
				if herr != nil {
					t.Fatalf("checkRequest refused with %d %q, want accepted", herr.status, herr.msg)
				}
				if key != rfcKey {
					t.Fatalf("key = %q, want %q", key, rfcKey)
				}
				return
			}
			if herr == nil {
				t.Fatalf("checkRequest accepted, want %d", tc.status)
			}
			if herr.status != tc.status {
				t.Errorf("status = %d (%s), want %d", herr.status, herr.msg, tc.status)
			}
			if herr.header != tc.header {
				t.Errorf("extra header = %q, want %q", herr.header, tc.header)
			}
			if !strings.HasPrefix(herr.Error(), "wskit: ") {
				t.Errorf("message %q lacks the wskit: prefix", herr.Error())
			}
		})
	}
}

func TestHeaderHasToken(t *testing.T) {
	for _, tc := range []struct {
		values []string
		token  string
		want   bool
	}{
		{[]string{"Upgrade"}, "upgrade", true},
		{[]string{"keep-alive, Upgrade"}, "upgrade", true},
		{[]string{"keep-alive,Upgrade"}, "upgrade", true},
		{[]string{"  upgrade  ,keep-alive"}, "upgrade", true},
		{[]string{"keep-alive", "UPGRADE"}, "upgrade", true},
		{[]string{"upgrade, "}, "upgrade", true},
		{[]string{",,upgrade"}, "upgrade", true},
		{[]string{"keep-alive"}, "upgrade", false},
		{[]string{"upgrades"}, "upgrade", false},
		{[]string{"up grade"}, "upgrade", false},
		{[]string{""}, "upgrade", false},
		{nil, "upgrade", false},
	} {
		h := http.Header{}
		for _, v := range tc.values {
			h.Add("Connection", v)
		}
		if got := headerHasToken(h, "Connection", tc.token); got != tc.want {
			t.Errorf("headerHasToken(%q, %q) = %v, want %v", tc.values, tc.token, got, tc.want)
		}
	}
}

func TestIsToken(t *testing.T) {
	for s, want := range map[string]bool{
		"chat":               true,
		"v10.stomp":          true,
		"graphql-transport":  true,
		"!#$%&'*+-.^_`|~az9": true,
		"":                   false,
		"a b":                false,
		"a\tb":               false,
		"a,b":                false,
		"a;b":                false,
		"a/b":                false,
		"(a)":                false,
		`"a"`:                false,
		"a=b":                false,
		"a{b}":               false,
		"é":                  false,
		"a\x7f":              false,
		"a\x00":              false,
	} {
		if got := isToken(s); got != want {
			t.Errorf("isToken(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestSelectProtocol(t *testing.T) {
	for _, tc := range []struct {
		name    string
		offered []string // header lines
		ours    []string
		want    string
	}{
		{"none offered", nil, []string{"chat"}, ""},
		{"none of ours", []string{"chat"}, nil, ""},
		{"single match", []string{"chat"}, []string{"chat"}, "chat"},
		{"our preference wins", []string{"v1, v2"}, []string{"v2", "v1"}, "v2"},
		{"our preference across lines", []string{"v1", "v2"}, []string{"v2", "v1"}, "v2"},
		{"only the offered one of ours", []string{"v1, x"}, []string{"v2", "v1"}, "v1"},
		{"no match", []string{"mqtt"}, []string{"v2", "v1"}, ""},
		{"names compare exactly", []string{"CHAT"}, []string{"chat"}, ""},
		{"the exact spelling among others", []string{"CHAT, chat"}, []string{"chat"}, "chat"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			for _, v := range tc.offered {
				r.Header.Add("Sec-WebSocket-Protocol", v)
			}
			if got := selectProtocol(r, tc.ours); got != tc.want {
				t.Errorf("selectProtocol(offered %q, ours %q) = %q, want %q", tc.offered, tc.ours, got, tc.want)
			}
		})
	}
}

func TestCheckOrigin(t *testing.T) {
	for _, tc := range []struct {
		name     string
		host     string
		origin   string
		patterns []string
		check    func(*http.Request) bool
		allowed  bool
	}{
		{name: "no Origin (not a browser)", host: "example.com", allowed: true},
		{name: "same host", host: "example.com", origin: "https://example.com", allowed: true},
		{name: "same host, other case", host: "Example.COM", origin: "https://example.com", allowed: true},
		{name: "same host and port", host: "localhost:8080", origin: "http://localhost:8080", allowed: true},
		{name: "same host, other port", host: "localhost:8080", origin: "http://localhost:9090"},
		{name: "other host", host: "example.com", origin: "https://evil.example"},
		{name: "null origin", host: "example.com", origin: "null"},
		{name: "unparsable origin", host: "example.com", origin: "http://[::1"},
		{name: "pattern", host: "example.com", origin: "https://app.example.org", patterns: []string{"*.example.org"}, allowed: true},
		{name: "pattern, other case", host: "example.com", origin: "https://APP.example.org", patterns: []string{"*.Example.org"}, allowed: true},
		{name: "pattern does not match the bare domain", host: "example.com", origin: "https://example.org", patterns: []string{"*.example.org"}},
		{name: "pattern with port", host: "example.com", origin: "http://localhost:3000", patterns: []string{"localhost:*"}, allowed: true},
		{name: "pattern without port", host: "example.com", origin: "http://localhost:3000", patterns: []string{"localhost"}},
		{name: "CheckOrigin allows", host: "example.com", origin: "https://evil.example", check: func(*http.Request) bool { return true }, allowed: true},
		{name: "CheckOrigin refuses same host", host: "example.com", origin: "https://example.com", check: func(*http.Request) bool { return false }},
		{name: "CheckOrigin replaces patterns", host: "example.com", origin: "https://a.example.org", patterns: []string{"*.example.org"}, check: func(*http.Request) bool { return false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Host = tc.host
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			o := DefaultOptions()
			o.OriginPatterns, o.CheckOrigin = tc.patterns, tc.check
			herr := o.checkOrigin(r)
			if tc.allowed {
				if herr != nil {
					t.Fatalf("refused with %d %q, want allowed", herr.status, herr.msg)
				}
				return
			}
			if herr == nil {
				t.Fatal("allowed, want 403")
			}
			if herr.status != http.StatusForbidden {
				t.Fatalf("status %d, want 403", herr.status)
			}
		})
	}
}

// TestHandlerRefusals drives a route's handler with a recorder: every
// refusal is answered before any hijacking, with its status and headers.
func TestHandlerRefusals(t *testing.T) {
	opts := DefaultOptions()
	opts.Logger = slog.New(slog.DiscardHandler)
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	called := false
	plain := srv.WebSocket(func(*Session) { called = true })
	chat := srv.WebSocket(func(*Session) { called = true }, Protocols("chat.v2", "chat.v1"))
	for _, tc := range []struct {
		name    string
		route   http.Handler
		method  string
		edit    map[string]string
		status  int
		headers map[string]string
		body    string
	}{
		{name: "POST", route: plain, method: "POST", status: 405,
			headers: map[string]string{"Allow": "GET"}, body: "GET"},
		{name: "plain HTTP GET", route: plain, method: "GET",
			edit:    map[string]string{"Upgrade": "", "Connection": "", "Sec-WebSocket-Key": "", "Sec-WebSocket-Version": ""},
			status:  426,
			headers: map[string]string{"Upgrade": "websocket", "Connection": "Upgrade"}, body: "Upgrade"},
		{name: "no Connection upgrade", route: plain, method: "GET", edit: map[string]string{"Connection": "keep-alive"}, status: 400, body: "Connection"},
		{name: "bad key", route: plain, method: "GET", edit: map[string]string{"Sec-WebSocket-Key": "short"}, status: 400, body: "Sec-WebSocket-Key"},
		{name: "version 12", route: plain, method: "GET", edit: map[string]string{"Sec-WebSocket-Version": "12"}, status: 426,
			headers: map[string]string{"Sec-WebSocket-Version": "13"}, body: "version 13"},
		{name: "cross origin", route: plain, method: "GET", edit: map[string]string{"Origin": "https://evil.example"}, status: 403, body: "evil.example"},
		{name: "required subprotocol not offered", route: chat, method: "GET", status: 400, body: "chat.v2"},
		{name: "required subprotocol, others offered", route: chat, method: "GET", edit: map[string]string{"Sec-WebSocket-Protocol": "chat.v3, mqtt"}, status: 400, body: "chat.v1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tc.route.ServeHTTP(rec, upgradeRequest(tc.method, "/ws", tc.edit))
			res := rec.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d (%s), want %d", res.StatusCode, body, tc.status)
			}
			for k, v := range tc.headers {
				if got := res.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if res.Header.Get("Sec-WebSocket-Accept") != "" {
				t.Error("a refusal carries Sec-WebSocket-Accept")
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type = %q, want text/plain", ct)
			}
			if !strings.Contains(string(body), tc.body) {
				t.Errorf("body %q does not mention %q", body, tc.body)
			}
			if called {
				t.Fatal("the session handler ran for a refused upgrade")
			}
		})
	}
}

func TestRouteRejectsBadSubprotocol(t *testing.T) {
	srv, err := NewServer(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, route := range []func(){
		func() { srv.WebSocket(func(*Session) {}, Protocols("ok", "not ok")) },
		func() { srv.WebSocketEvents(Events{}, Protocols("")) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("a route with a subprotocol that is not a token did not panic")
				}
			}()
			route()
		}()
	}
}
