package conformance

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/frame"
)

// TestSection4_2_Handshake checks the server's side of the opening
// handshake (RFC 6455 §4.2.1, §4.2.2) and the Origin and subprotocol
// policies of wskit.Options.
func TestSection4_2_Handshake(t *testing.T) {
	e := newEnv(t)
	const sampleKey, sampleAccept = "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
	set := func(kv ...string) func(http.Header) {
		return func(h http.Header) {
			for i := 0; i < len(kv); i += 2 {
				if kv[i+1] == "" {
					h.Del(kv[i])
				} else {
					h.Set(kv[i], kv[i+1])
				}
			}
		}
	}
	add := func(name string, values ...string) func(http.Header) {
		return func(h http.Header) {
			for _, v := range values {
				h.Add(name, v)
			}
		}
	}
	cases := []struct {
		name   string
		method string // default GET
		target string // default /echo
		proto  string // default HTTP/1.1
		edit   func(http.Header)
		status int
		// want lists response headers and their exact values; "" means
		// the header must be absent.
		want map[string]string
	}{
		{name: "valid", status: 101},
		{name: "RFC sample key", edit: set("Sec-WebSocket-Key", sampleKey), status: 101,
			want: map[string]string{"Sec-WebSocket-Accept": sampleAccept}},

		// §4.2.1 item 1: an HTTP/1.1 or higher GET request.
		{name: "POST", method: "POST", status: 405, want: map[string]string{"Allow": "GET"}},
		{name: "PUT", method: "PUT", status: 405, want: map[string]string{"Allow": "GET"}},
		{name: "HTTP/1.0", proto: "HTTP/1.0", status: 400},
		// Item 2: a Host header (net/http refuses HTTP/1.1 without one).
		{name: "Host missing", edit: func(h http.Header) { h["Host"] = nil }, status: 400},
		// Header names are case-insensitive (RFC 7230 §3.2).
		{name: "header names in lower case", edit: func(h http.Header) {
			for k, v := range h {
				delete(h, k)
				h[strings.ToLower(k)] = v
			}
		}, status: 101},

		// Item 3: Upgrade contains "websocket", case-insensitively. RFC 7231
		// §6.5.15: a 426 names the protocol to switch to in Upgrade.
		{name: "Upgrade missing", edit: set("Upgrade", ""), status: 426, want: map[string]string{"Upgrade": "websocket"}},
		{name: "Upgrade h2c", edit: set("Upgrade", "h2c"), status: 426, want: map[string]string{"Upgrade": "websocket"}},
		{name: "Upgrade mixed case", edit: set("Upgrade", "WebSocket"), status: 101},
		{name: "Upgrade in a list", edit: set("Upgrade", "foo/2, websocket"), status: 101},

		// Item 4: Connection includes the "Upgrade" token.
		{name: "Connection missing", edit: set("Connection", ""), status: 400},
		{name: "Connection keep-alive", edit: set("Connection", "keep-alive"), status: 400},
		{name: "Connection list with upgrade", edit: set("Connection", "keep-alive, upgrade"), status: 101},

		// Item 6 and §4.4: a version the server does not speak gets 426 and
		// the versions it does speak.
		{name: "Version missing", edit: set("Sec-WebSocket-Version", ""), status: 426,
			want: map[string]string{"Sec-WebSocket-Version": "13"}},
		{name: "Version 8", edit: set("Sec-WebSocket-Version", "8"), status: 426,
			want: map[string]string{"Sec-WebSocket-Version": "13"}},
		{name: "Version 14", edit: set("Sec-WebSocket-Version", "14"), status: 426,
			want: map[string]string{"Sec-WebSocket-Version": "13"}},

		// Item 5: the key is base64 of 16 bytes.
		{name: "Key missing", edit: set("Sec-WebSocket-Key", ""), status: 400},
		{name: "Key not base64", edit: set("Sec-WebSocket-Key", "not base64 at all!!!!!!!"), status: 400},
		{name: "Key of 15 bytes", edit: set("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAA"), status: 400},
		{name: "Key of 17 bytes", edit: set("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAAA="), status: 400},
		{name: "Key of 20 bytes", edit: set("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="), status: 400},
		{name: "Key twice", edit: add("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), status: 400},

		// §10.2 and Options.OriginPatterns: browsers' pages from other
		// origins are refused with 403; non-browser clients send no Origin.
		{name: "Origin same", edit: set("Origin", "http://"+e.addr), status: 101},
		{name: "Origin cross", edit: set("Origin", "https://evil.example"), status: 403},
		{name: "Origin same host other port", edit: set("Origin", "http://127.0.0.1:1"), status: 403},
		{name: "Origin null", edit: set("Origin", "null"), status: 403},
		{name: "Origin allowed by pattern", edit: set("Origin", "https://app.allowed.example"), status: 101},
		{name: "Origin pattern does not match apex", edit: set("Origin", "https://allowed.example"), status: 403},

		// §4.2.2 /subprotocol/: the server picks one of the client's values
		// or none (then it sends no Sec-WebSocket-Protocol). Options.
		// Subprotocols is optional and ordered by the server's preference.
		{name: "Subprotocol none offered", status: 101, want: map[string]string{"Sec-WebSocket-Protocol": ""}},
		{name: "Subprotocol server preference", edit: set("Sec-WebSocket-Protocol", "chat.v1, chat.v2"), status: 101,
			want: map[string]string{"Sec-WebSocket-Protocol": "chat.v2"}},
		{name: "Subprotocol one known", edit: set("Sec-WebSocket-Protocol", "other, chat.v1"), status: 101,
			want: map[string]string{"Sec-WebSocket-Protocol": "chat.v1"}},
		{name: "Subprotocol over two header lines", edit: add("Sec-WebSocket-Protocol", "other", "chat.v1"), status: 101,
			want: map[string]string{"Sec-WebSocket-Protocol": "chat.v1"}},
		{name: "Subprotocol unknown", edit: set("Sec-WebSocket-Protocol", "other"), status: 101,
			want: map[string]string{"Sec-WebSocket-Protocol": ""}},
		// The selected value must be one the client sent: a client that
		// offers "CHAT.V1" must not get "chat.v1" back (§4.1 makes it fail
		// the connection). Subprotocol names are compared as sent.
		{name: "Subprotocol differing in case", edit: set("Sec-WebSocket-Protocol", "CHAT.V1"), status: 101},
		// No extension is supported: an offer is declined by leaving
		// Sec-WebSocket-Extensions out (§9.1), which checkAccept checks.
		{name: "extension offered", edit: set("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"), status: 101},
		// Server.WebSocket(h, "mqtt") requires the protocol.
		{name: "Route protocol not offered", target: "/mqtt", status: 400},
		{name: "Route protocol other offered", target: "/mqtt", edit: set("Sec-WebSocket-Protocol", "chat.v1"), status: 400},
		{name: "Route protocol offered", target: "/mqtt", edit: set("Sec-WebSocket-Protocol", "chat.v1, mqtt"), status: 101,
			want: map[string]string{"Sec-WebSocket-Protocol": "mqtt"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method, target, proto := cmp.Or(tc.method, "GET"), cmp.Or(tc.target, "/echo"), cmp.Or(tc.proto, "HTTP/1.1")
			h := upgradeHeader()
			if tc.edit != nil {
				tc.edit(h)
			}
			resp, c := handshake(t, e.addr, method, target, proto, h, nil)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %s, want %d", resp.Status, tc.status)
			}
			for name, v := range tc.want {
				if got := strings.Join(resp.Header.Values(name), ", "); got != v {
					t.Errorf("%s: %q, want %q", name, got, v)
				}
			}
			if tc.status != http.StatusSwitchingProtocols {
				if v := resp.Header.Get("Sec-WebSocket-Accept"); v != "" {
					t.Errorf("refusal carries Sec-WebSocket-Accept %q", v)
				}
				return
			}
			checkAccept(t, resp, h)
			// The connection speaks WebSocket now.
			c.send(text("after the handshake"))
			c.expect(textReply("after the handshake"))
			c.closeCleanly()
		})
	}

	// The client may send its first frames right behind its request: they
	// must not be lost in the HTTP server's buffer.
	t.Run("frames pipelined with the request", func(t *testing.T) {
		h := upgradeHeader()
		resp, c := handshake(t, e.addr, "GET", "/echo", "HTTP/1.1", h, cat(text("one"), ping("two"), binary([]byte("three"))))
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status %s, want 101", resp.Status)
		}
		checkAccept(t, resp, h)
		c.expect(textReply("one"))
		c.expect(pongReply("two"))
		c.expect(message(frame.OpBinary, []byte("three")))
		c.closeCleanly()
	})

	// The same case through wskit's own client, which (like browsers)
	// fails a handshake whose subprotocol it did not offer byte for byte.
	t.Run("Dial offering a subprotocol in another case", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), replyWait)
		defer cancel()
		s, err := wskit.Dial(ctx, "ws://"+e.addr+"/echo", &wskit.DialOptions{Options: wskit.Options{Subprotocols: []string{"CHAT.V1"}}})
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer s.Close(wskit.CloseNormal, "")
		if p := s.Subprotocol(); p != "" && p != "CHAT.V1" {
			t.Errorf("Subprotocol %q, want \"\" or the offered \"CHAT.V1\"", p)
		}
	})
}

// checkAccept checks a 101 response (§4.2.2 step 5 and §4.1's client checks).
func checkAccept(t *testing.T, resp *http.Response, req http.Header) {
	t.Helper()
	if !hasToken(resp.Header, "Upgrade", "websocket") {
		t.Errorf("Upgrade: %q, want websocket", resp.Header.Values("Upgrade"))
	}
	if !hasToken(resp.Header, "Connection", "upgrade") {
		t.Errorf("Connection: %q, want Upgrade", resp.Header.Values("Connection"))
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), acceptFor(strings.Join(values(req, "Sec-WebSocket-Key"), "")); got != want {
		t.Errorf("Sec-WebSocket-Accept: %q, want %q", got, want)
	}
	if v := resp.Header.Values("Sec-WebSocket-Protocol"); len(v) > 0 {
		var offered []string
		for _, line := range values(req, "Sec-WebSocket-Protocol") {
			for p := range strings.SplitSeq(line, ",") {
				offered = append(offered, strings.TrimSpace(p))
			}
		}
		if len(v) != 1 || !slices.Contains(offered, v[0]) {
			t.Errorf("Sec-WebSocket-Protocol: %q is not one of the offered %q (§4.2.2 /subprotocol/)", v, offered)
		}
	}
	if v := resp.Header.Get("Sec-WebSocket-Extensions"); v != "" {
		t.Errorf("Sec-WebSocket-Extensions: %q, but no extension was offered", v)
	}
}

func hasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for item := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(item), token) {
				return true
			}
		}
	}
	return false
}

// values returns the values of header name in h, whatever the case of the
// map's keys.
func values(h http.Header, name string) []string {
	var v []string
	for k, vs := range h {
		if strings.EqualFold(k, name) {
			v = append(v, vs...)
		}
	}
	return v
}
