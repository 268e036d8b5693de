package fanout

import (
	"context"
	"fmt"
	"net"
)

// Path is the route on which every server subscribes its connections.
const Path = "/feed"

// Names lists the servers BenchmarkFanout compares, the baseline first.
//
//	gorilla-hub  gorilla/websocket and the chat example's hub (gorillaHub), each message framed once as a PreparedMessage
//	wskit-std    wskit.Hub, EngineStd, sessions subscribed by a WebSocket handler that then ranges over Messages
//	wskit-poll   wskit.Hub, EnginePoll, sessions subscribed by Events.OnOpen on the event loop
var Names = []string{"gorilla-hub", "wskit-std", "wskit-poll"}

// Server is a broadcast server: every connection upgraded on Path
// subscribes, and Publish sends a binary message to all of them.
type Server interface {
	// Publish sends p, which the server copies, to every subscriber.
	Publish(ctx context.Context, p []byte) error
	// Subscribers returns how many connections are subscribed.
	Subscribers() int
	// Close stops the server and closes its connections.
	Close() error
}

// Start serves impl on ln, a TCP listener it owns from then on.
func Start(impl string, ln net.Listener) (Server, error) {
	switch impl {
	case "gorilla-hub":
		return startGorillaHub(ln), nil
	case "wskit-std", "wskit-poll":
		s, err := startWskitHub(ln, impl == "wskit-poll")
		if err != nil {
			ln.Close()
			return nil, err
		}
		return s, nil
	}
	ln.Close()
	return nil, fmt.Errorf("fanout: unknown server %q", impl)
}
