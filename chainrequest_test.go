package wskit

import (
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// chainHeadsTaken are heads of the common form chainRequest parses itself.
var chainHeadsTaken = []string{
	"GET /echo HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
	"GET /echo?token=bench HTTP/1.1\r\nHost: 127.0.0.1:80\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-key: k\r\n\r\n",
	"GET /e? HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\nX-A: 1\r\nx-a: 2\r\nX-a:  3 \t\r\n\r\n",
	"GET /e?a?b? HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\nCache-Control: max-age=0\r\nConnection: Upgrade, CLOSE\r\n\r\n",
	"GET /rooms/a!b(c)*'[x]{y}$&+,;=@:~ HTTP/1.1\r\nHost: a\r\nConnection: keep-alive ,close \r\nX-Empty:\r\n\r\n",
	"GET /e HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-Many: v\r\nX-Other-Field: w\r\nAccept-Language: en\r\n", 6) + "\r\n",
	"GET /e HTTP/1.1\r\nHost: a\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) \xc3\xa9\r\nConnection: cloſe\r\n\r\n",
}

// chainHeadsRefused are heads chainRequest leaves to http.ReadRequest.
var chainHeadsRefused = []string{
	"GET /e HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET /e HTTP/1.1\r\n\r\n",
	"GET /e HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
	"GET /e HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
	"GET /e HTTP/1.1\r\nHost: a\r\nX: 1\r\n  folded\r\n\r\n",
	"GET /e HTTP/1.1\r\nHost: a\r\nX : 1\r\n\r\n",
	"GET //e HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /e#f HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /e f HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /e HTTP/1.0\r\nHost: a\r\n\r\n",
	"POST /e HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://a/e HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /e HTTP/1.1\r\nHost: a b\r\n\r\n",
	"GET /e HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n",
}

// chainRequestMatches reports whether chainRequest took head, and checks
// that what it made is the request http.ReadRequest parses from it.
func chainRequestMatches(t *testing.T, head string) bool {
	t.Helper()
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}
	ctx := context.Background()
	got := chainRequest(ctx, []byte(head), remote.String())
	if got == nil {
		return false
	}
	want, err := parseHead([]byte(head), remote)
	if err != nil {
		t.Errorf("%q: ReadRequest: %v, chainRequest took it", head, err)
		return true
	}
	want = want.WithContext(ctx)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%q:\ngot  %#v\nwant %#v", head, got, want)
	}
	return true
}

// FuzzChainRequest feeds arbitrary heads to the parser of the handler
// chain's requests: it must not fail, and what it takes must be what
// http.ReadRequest makes of the same bytes.
func FuzzChainRequest(f *testing.F) {
	for _, head := range append(slices.Clone(chainHeadsTaken), chainHeadsRefused...) {
		f.Add(head)
	}
	f.Fuzz(func(t *testing.T, head string) { chainRequestMatches(t, head) })
}

// TestChainRequestIsReadRequests checks that chainRequest makes the
// request http.ReadRequest parses, for heads it takes, and that it takes
// the common ones.
func TestChainRequestIsReadRequests(t *testing.T) {
	check := func(head string) bool {
		t.Helper()
		return chainRequestMatches(t, head)
	}
	common := chainHeadsTaken
	for _, head := range common {
		if !check(head) {
			t.Errorf("%q: not taken", head)
		}
	}
	refused := chainHeadsRefused
	for _, head := range refused {
		if check(head) {
			t.Errorf("%q: taken", head)
		}
	}
	// Random heads built from pieces: whatever chainRequest takes must be
	// ReadRequest's request.
	targets := []string{"/", "/e", "/e?", "/e?a=1&b", "/a/../b", "/%41", "/a;b", "/é", "/a?b#c", "/a b", "//x", "/a?x y"}
	names := []string{"Host", "host", "HOST", "X-A", "x-a", "Sec-WebSocket-Key", "sec-websocket-key", "Connection", "Pragma", "Cache-Control", "Content-Length", "X_B", "X A", "", "Host "}
	values := []string{"", "v", " v ", "\tv\t", "close", "no-cache", "keep-alive, close", "a\x7fb", "é", "a,b"}
	rng := rand.New(rand.NewPCG(1, 2))
	taken := 0
	for range 20000 {
		var b strings.Builder
		b.WriteString("GET " + targets[rng.IntN(len(targets))] + " HTTP/1.1\r\n")
		if rng.IntN(4) > 0 {
			b.WriteString("Host: example.com\r\n")
		}
		for range rng.IntN(12) {
			b.WriteString(names[rng.IntN(len(names))] + ":" + values[rng.IntN(len(values))] + "\r\n")
		}
		b.WriteString("\r\n")
		if check(b.String()) {
			taken++
		}
	}
	if taken < 1000 {
		t.Errorf("chainRequest took %d random heads", taken)
	}
}

// TestPackPaths checks that path values come back from their packed form
// as ServeMux gave them: empty, long, and with any bytes.
func TestPackPaths(t *testing.T) {
	mux := http.NewServeMux()
	var got []string
	mux.HandleFunc("GET /a/{x}/{y}/{rest...}", func(w http.ResponseWriter, r *http.Request) {
		got = nil
		for name, value := range unpackPaths(packPaths(r)) {
			got = append(got, name, value)
		}
	})
	long := strings.Repeat("é", 200)
	for _, path := range []string{"/a/1/2/3", "/a/%00/" + long + "/", "/a/x%2Fy/%20/b/c"} {
		r, err := http.NewRequest(http.MethodGet, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		mux.ServeHTTP(nil, r)
		want := []string{"x", r.PathValue("x"), "y", r.PathValue("y"), "rest", r.PathValue("rest")}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %q, want %q", path, got, want)
		}
	}
	if p := packPaths(httptest.NewRequest(http.MethodGet, "/", nil)); p != "" {
		t.Errorf("no pattern: packed %q", p)
	}
}
