package wskit_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wskit/wskit"
)

func TestDefaultOptionsValidate(t *testing.T) {
	o := wskit.DefaultOptions()
	if err := o.Validate(); err != nil {
		t.Fatalf("DefaultOptions().Validate() = %v, want nil", err)
	}
	if o.Converter == nil {
		t.Error("DefaultOptions has no Converter")
	}
	if o.PingPeriod != 0 {
		t.Errorf("PingPeriod = %v, want 0 (off, as in Ktor)", o.PingPeriod)
	}
	if o.Timeout != 15*time.Second {
		t.Errorf("Timeout = %v, want 15s (Ktor's default)", o.Timeout)
	}
	if o.QueuePolicy != wskit.QueueBlock {
		t.Errorf("QueuePolicy = %v, want block", o.QueuePolicy)
	}
}

// invalidOptions lists one broken field per case and the words that the
// error must contain to name it.
var invalidOptions = []struct {
	name  string
	edit  func(*wskit.Options)
	names string
}{
	{"negative MaxFrameSize", func(o *wskit.Options) { o.MaxFrameSize = -1 }, "MaxFrameSize"},
	{"negative MaxMessageSize", func(o *wskit.Options) { o.MaxMessageSize = -5 }, "MaxMessageSize"},
	{"negative MaxQueue", func(o *wskit.Options) { o.MaxQueue = -1 }, "MaxQueue"},
	{"negative IncomingQueue", func(o *wskit.Options) { o.IncomingQueue = -1 }, "IncomingQueue"},
	{"negative ReadBufferSize", func(o *wskit.Options) { o.ReadBufferSize = -4096 }, "ReadBufferSize"},
	{"negative MaxHandshakeSize", func(o *wskit.Options) { o.MaxHandshakeSize = -1 }, "MaxHandshakeSize"},
	{"negative FragmentSize", func(o *wskit.Options) { o.FragmentSize = -1 }, "FragmentSize"},
	{"subprotocol with a space", func(o *wskit.Options) { o.Subprotocols = []string{"chat", "bad proto"} }, "subprotocol"},
	{"empty subprotocol", func(o *wskit.Options) { o.Subprotocols = []string{""} }, "subprotocol"},
	{"subprotocol with a separator", func(o *wskit.Options) { o.Subprotocols = []string{"a,b"} }, "subprotocol"},
	{"malformed origin pattern", func(o *wskit.Options) { o.OriginPatterns = []string{"[example.com"} }, "origin pattern"},
	{"unknown QueuePolicy", func(o *wskit.Options) { o.QueuePolicy = wskit.QueueClosePolicy + 1 }, "QueuePolicy"},
}

// The zero Options are DefaultOptions, as net/http's zero Server is
// ready: NewServer fills in each zero field, and a session dialled with
// zero DialOptions echoes through it.
func TestZeroOptionsMeanDefaults(t *testing.T) {
	srv, err := wskit.NewServer(wskit.Options{})
	if err != nil {
		t.Fatalf("NewServer(Options{}) = %v", err)
	}
	got, want := srv.Options(), wskit.DefaultOptions()
	if got.Converter == nil {
		t.Fatal("Server.Options().Converter is nil")
	}
	got.Converter, want.Converter = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Server.Options() = %+v\nwant DefaultOptions() = %+v", got, want)
	}
	// A negative duration means no bound, and stays so.
	srv, err = wskit.NewServer(wskit.Options{Timeout: -1})
	if err != nil || srv.Options().Timeout != -1 {
		t.Errorf("NewServer(Timeout: -1) = %v with Timeout %v, want no error and -1", err, srv.Options().Timeout)
	}
	url := serve(t, echoRoutes(newServer(t, wskit.Options{})))
	s := dial(t, url+"/echo", &wskit.DialOptions{})
	if err := s.SendText("zero"); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, s); m.Text() != "zero" {
		t.Errorf("echo %q", m.Text())
	}
}

func TestOptionsValidateRejects(t *testing.T) {
	for _, tc := range invalidOptions {
		t.Run(tc.name, func(t *testing.T) {
			o := wskit.DefaultOptions()
			tc.edit(&o)
			err := o.Validate()
			if !errors.Is(err, wskit.ErrInvalidOptions) {
				t.Fatalf("Validate() = %v, want an error matching ErrInvalidOptions", err)
			}
			if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.names)) {
				t.Errorf("Validate() = %q, want it to name %s", err, tc.names)
			}
		})
	}
}

func TestOptionsValidateAccepts(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*wskit.Options)
	}{
		{"zero durations", func(o *wskit.Options) { o.Timeout, o.HandshakeTimeout, o.PingPeriod = 0, 0, 0 }},
		{"negative durations", func(o *wskit.Options) { o.Timeout, o.HandshakeTimeout, o.PingPeriod = -1, -time.Second, -1 }},
		{"zero sizes", func(o *wskit.Options) {
			o.MaxFrameSize, o.MaxMessageSize, o.MaxQueue, o.IncomingQueue, o.ReadBufferSize, o.MaxHandshakeSize = 0, 0, 0, 0, 0, 0
		}},
		{"zero FragmentSize", func(o *wskit.Options) { o.FragmentSize = 0 }},
		{"nil Converter", func(o *wskit.Options) { o.Converter = nil }},
		{"subprotocol tokens", func(o *wskit.Options) { o.Subprotocols = []string{"chat", "v2.json", "x-y_z!#$%&'*+^`|~"} }},
		{"origin patterns", func(o *wskit.Options) { o.OriginPatterns = []string{"example.com", "*.example.com", "localhost:*"} }},
		{"every policy", func(o *wskit.Options) { o.QueuePolicy = wskit.QueueClosePolicy }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := wskit.DefaultOptions()
			tc.edit(&o)
			if err := o.Validate(); err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
		})
	}
}

func TestNewServerAndDialRejectInvalidOptions(t *testing.T) {
	for _, tc := range invalidOptions {
		t.Run(tc.name, func(t *testing.T) {
			o := wskit.DefaultOptions()
			tc.edit(&o)
			srv, err := wskit.NewServer(o)
			if !errors.Is(err, wskit.ErrInvalidOptions) || srv != nil {
				t.Errorf("NewServer = %v, %v; want nil and an error matching ErrInvalidOptions", srv, err)
			}
			// Dial checks its options before connecting: the address is never used.
			s, err := wskit.Dial(context.Background(), "ws://127.0.0.1:1/", &wskit.DialOptions{Options: o})
			if !errors.Is(err, wskit.ErrInvalidOptions) || s != nil {
				t.Errorf("Dial = %v, %v; want nil and an error matching ErrInvalidOptions", s, err)
			}
		})
	}
}

func TestDialRejectsBadSubprotocol(t *testing.T) {
	s, err := wskit.Dial(context.Background(), "ws://127.0.0.1:1/", &wskit.DialOptions{Options: wskit.Options{Subprotocols: []string{"no spaces"}}})
	if err == nil || s != nil {
		t.Fatalf("Dial = %v, %v; want an error for an offered subprotocol that is not a token", s, err)
	}
	if !strings.Contains(err.Error(), "no spaces") {
		t.Errorf("error %q does not name the subprotocol", err)
	}
}

func TestQueuePolicyString(t *testing.T) {
	for p, want := range map[wskit.QueuePolicy]string{
		wskit.QueueBlock:         "block",
		wskit.QueueCloseTryAgain: "close 1013",
		wskit.QueueClosePolicy:   "close 1008",
		7:                        "QueuePolicy(7)",
	} {
		if got := p.String(); got != want {
			t.Errorf("QueuePolicy(%d).String() = %q, want %q", uint8(p), got, want)
		}
	}
}
