package wskit

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wskit/wskit/codec"
)

func TestClientRequestBytes(t *testing.T) {
	u, _ := url.Parse("ws://example.com:8080/chat?room=blue#top")
	h := http.Header{"Origin": {"http://example.com"}, "x-token": {"a", "b"}, "Authorization": {"Bearer t"}}
	offers := []codec.ExtensionOffer{{Name: "permessage-deflate", Params: []codec.Param{{Name: "client_max_window_bits"}}}}
	req, err := clientRequest(u, h, "dGhlIHNhbXBsZSBub25jZQ==", []string{"chat.v2", "chat.v1"}, offers)
	if err != nil {
		t.Fatal(err)
	}
	want := "GET /chat?room=blue HTTP/1.1\r\n" +
		"Host: example.com:8080\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: chat.v2, chat.v1\r\n" +
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" +
		"Authorization: Bearer t\r\n" +
		"Origin: http://example.com\r\n" +
		"X-Token: a\r\n" +
		"X-Token: b\r\n" +
		"\r\n"
	if got := string(appendUpgradeRequest(nil, req)); got != want {
		t.Errorf("request:\n%s\nwant:\n%s", got, want)
	}
	if h.Get("Upgrade") != "" || len(h) != 3 {
		t.Errorf("the caller's header was changed: %v", h)
	}

	// The Host field may be given; an empty path is "/".
	u, _ = url.Parse("ws://10.0.0.1")
	req, err = clientRequest(u, http.Header{"Host": {"example.com"}}, "dGhlIHNhbXBsZSBub25jZQ==", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(appendUpgradeRequest(nil, req)); !strings.HasPrefix(got, "GET / HTTP/1.1\r\nHost: example.com\r\n") || strings.Contains(got, "Sec-WebSocket-Protocol") {
		t.Errorf("request:\n%s", got)
	}
}

func TestClientRequestRefusesHeaders(t *testing.T) {
	u, _ := url.Parse("ws://example.com/")
	for _, tc := range []struct {
		name   string
		header http.Header
		want   string
	}{
		{"Upgrade", http.Header{"Upgrade": {"h2c"}}, "Upgrade is set by Dial"},
		{"a key in another case", http.Header{"sec-websocket-key": {"x"}}, "Sec-WebSocket-Key is set by Dial"},
		{"subprotocols", http.Header{"Sec-WebSocket-Protocol": {"chat"}}, "Options.Subprotocols"},
		{"extensions", http.Header{"Sec-Websocket-Extensions": {"x"}}, "Options.Extensions"},
		{"a line break in a value", http.Header{"X-A": {"1\r\nX-B: 2"}}, "control characters"},
		{"a name with a space", http.Header{"X A": {"1"}}, "not an HTTP token"},
		{"two hosts", http.Header{"Host": {"a", "b"}}, "Host must have one value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := clientRequest(u, tc.header, "dGhlIHNhbXBsZSBub25jZQ==", nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("clientRequest = %v, want an error with %q", err, tc.want)
			}
		})
	}
}
