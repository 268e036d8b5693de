package wskit

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/wskit/wskit/codec"
)

// TestDeflateRoundTrip runs our client against our server with
// permessage-deflate on each engine and session kind, for each combination
// of context takeover and window bits both sides may ask for.
func TestDeflateRoundTrip(t *testing.T) {
	configs := []struct {
		name           string
		server, client codec.PerMessageDeflate
		want           string
	}{
		{"takeover", codec.PerMessageDeflate{}, codec.PerMessageDeflate{},
			"permessage-deflate"},
		{"server no takeover", codec.PerMessageDeflate{ServerNoContextTakeover: true}, codec.PerMessageDeflate{},
			"permessage-deflate; server_no_context_takeover"},
		{"client asks no takeover", codec.PerMessageDeflate{}, codec.PerMessageDeflate{ServerNoContextTakeover: true, ClientNoContextTakeover: true},
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{"server bounds client window", codec.PerMessageDeflate{ClientMaxWindowBits: 10}, codec.PerMessageDeflate{},
			"permessage-deflate; client_max_window_bits=10"},
		{"client bounds server window", codec.PerMessageDeflate{}, codec.PerMessageDeflate{ServerMaxWindowBits: 9},
			"permessage-deflate; server_max_window_bits=9"},
		{"level 9 and threshold", codec.PerMessageDeflate{Level: 9, Threshold: 100}, codec.PerMessageDeflate{Level: 9},
			"permessage-deflate"},
	}
	var msgs [][]byte
	for _, n := range []int{0, 1, 50, 200, 1 << 10, 40 << 10, 300 << 10} {
		var b bytes.Buffer
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, `{"id":%d,"name":"user-%d","active":%v},`, i, i%37, i%3 == 0)
		}
		msgs = append(msgs, b.Bytes()[:n])
	}
	for _, engine := range []Engine{EngineStd, EnginePoll} {
		for _, cfg := range configs {
			opts := ptOptions()
			opts.Engine = engine
			server := cfg.server
			opts.Extensions = []codec.Extension{&server}
			_, addr := ptStart(t, opts, nil, ptRoutes(Events{}))
			for _, path := range []string{"/echo", "/events"} {
				t.Run(fmt.Sprintf("%v/%s%s", engine, cfg.name, path), func(t *testing.T) {
					co := ptOptions()
					client := cfg.client
					co.Extensions = []codec.Extension{&client}
					ctx, cancel := context.WithTimeout(context.Background(), ptWait)
					defer cancel()
					s, err := Dial(ctx, "ws://"+addr+path, &DialOptions{Options: &co})
					if err != nil {
						t.Fatal(err)
					}
					defer s.Close(CloseNormal, "")
					if got := s.Extensions(); got != cfg.want {
						t.Fatalf("negotiated %q, want %q", got, cfg.want)
					}
					for round := 0; round < 3; round++ {
						for i, m := range msgs {
							typ := Binary
							if i%2 == 0 {
								typ = Text
							}
							if err := s.Send(typ, m); err != nil {
								t.Fatal(err)
							}
							got, err := s.Receive(ctx)
							if err != nil {
								t.Fatalf("round %d message %d: %v", round, i, err)
							}
							if got.Type != typ || !bytes.Equal(got.Payload, m) {
								t.Fatalf("round %d message %d: got %v %d bytes %q…, want %d bytes", round, i, got.Type, len(got.Payload), got.Payload[:min(len(got.Payload), 20)], len(m))
							}
						}
					}
				})
			}
		}
	}
	_ = strings.ToLower
}
