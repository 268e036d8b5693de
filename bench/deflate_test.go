package bench

import (
	"net"
	"testing"
	"time"

	"github.com/wskit/wskit/bench/internal/harness"
	"github.com/wskit/wskit/bench/internal/servers"
)

// TestZooDeflate checks what cmd/idle relies on: each -deflate server of
// the zoo accepts the browser's permessage-deflate offer with the
// parameters its name promises and echoes a compressed message of 1 KiB or
// 64 KiB (which gorilla fragments) compressed; a server without it
// declines, and the client says so.
func TestZooDeflate(t *testing.T) {
	const both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	// The zero value bounds the client's window at 13 bits.
	const bounded = "permessage-deflate; client_max_window_bits=13"
	want := map[string]string{
		"gorilla-deflate":                     both,
		"wskit-std-deflate":                   bounded,
		"wskit-std-deflate-nocontext":         both,
		"wskit-poll-events-deflate":           bounded,
		"wskit-poll-events-deflate-nocontext": both,
		"wskit-poll-events":                   "",
	}
	for impl, ext := range want {
		t.Run(impl, func(t *testing.T) {
			if servers.Deflate(impl) != (ext != "") {
				t.Fatalf("servers.Deflate(%q) = %v", impl, servers.Deflate(impl))
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv, err := servers.Start(impl, ln)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			addr := ln.Addr().String()
			for _, size := range []int{1 << 10, 64 << 10} {
				nc, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(10 * time.Second))
				got, err := harness.UpgradeDeflate(nc, addr, servers.URI)
				if ext == "" {
					if err == nil {
						t.Fatalf("a server without permessage-deflate accepted it: %q", got)
					}
					return
				}
				if err != nil || got != ext {
					t.Fatalf("negotiated %q, %v; want %q", got, err, ext)
				}
				compressed, err := harness.Echo(nc, harness.JSONText(size, 1), true)
				if err != nil || !compressed {
					t.Fatalf("%d bytes: echo compressed %v, %v", size, compressed, err)
				}
			}
		})
	}
}
