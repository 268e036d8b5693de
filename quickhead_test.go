package wskit

import (
	"net/http"
	"testing"
)

// A pooled quick request forgets the pattern and path values a ServeMux
// gave it: the next head, for a route without wildcards, would otherwise
// read another connection's path values, pointing into a buffer that is
// no longer its own.
func TestReleaseQuickForgetsPathValues(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /room/{name}", func(http.ResponseWriter, *http.Request) {})
	q := parseQuick([]byte("GET /room/kotlin HTTP/1.1\r\nHost: a\r\n\r\n"))
	if q == nil {
		t.Fatal("the head was not taken")
	}
	mux.ServeHTTP(&routeProbe{}, &q.r)
	if got := q.r.PathValue("name"); got != "kotlin" || q.r.Pattern == "" {
		t.Fatalf("through the mux: name %q, pattern %q", got, q.r.Pattern)
	}
	releaseQuick(q)
	if q.r.Pattern != "" || q.r.PathValue("name") != "" {
		t.Errorf("released: pattern %q, name %q", q.r.Pattern, q.r.PathValue("name"))
	}
	if q.r.Header == nil || q.r.URL != &q.u {
		t.Error("released: the request lost its header or URL")
	}
}
