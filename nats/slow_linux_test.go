package nats_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wskit/wskit"
	wsnats "github.com/wskit/wskit/nats"
)

// stuckPeer opens a WebSocket session to n's /hub with a small receive
// buffer, and never reads: the node's hub soon has no room for it.
func stuckPeer(t *testing.T, n *node) net.Conn {
	t.Helper()
	d := net.Dialer{Control: smallRcvBuf}
	c, err := d.Dial("tcp", n.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /hub HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", n.ln.Addr())
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v, %v", resp, err)
	}
	return c
}

// A node whose hub waits for a subscriber that does not read
// (OverflowSuspend) slows nobody else: the members of the other nodes get
// every message on time, on both modes, while that node holds its own
// delivery back.
func TestClusterSlowNode(t *testing.T) {
	const messages, size = 200, 32 << 10
	for _, mode := range []wsnats.Mode{wsnats.Core, wsnats.JetStream} {
		t.Run(mode.String(), func(t *testing.T) {
			ns := startJetStream(t)
			var nodes []*node
			for i := range 3 {
				// The others hold back whatever their members have not
				// read yet, so that none of them drops a message.
				cfg := nodeConfig{mode: mode, engine: wskit.EnginePoll,
					hub: wskit.HubOptions{Buffer: 4 * messages, SubscriberBytes: -1, HubBytes: -1}}
				if i == 2 {
					cfg.hub = wskit.HubOptions{Overflow: wskit.OverflowSuspend, Buffer: 4, Timeout: time.Minute}
					cfg.suspend = true
				}
				nodes = append(nodes, startNode(t, fmt.Sprint("n", i), ns.ClientURL(), cfg))
			}
			var fast []*member
			for i := range 20 {
				fast = append(fast, join(t, nodes[i%2], ""))
			}
			stuckPeer(t, nodes[2])
			awaitSubscribers(t, nodes, "lobby", 21)
			pad := strings.Repeat("x", size)
			start := time.Now()
			for i := range messages {
				if err := publish(t, nodes[0], "lobby", fmt.Sprint("m", i, pad)); err != nil {
					t.Fatal(err)
				}
			}
			awaitCount(t, fast, messages)
			took := time.Since(start)
			st := nodes[2].topics.Hub("lobby").Stats()
			t.Logf("%d messages of %d KiB to the others in %v; the slow node fanned out %d", messages, size>>10, took, st.Published)
			if st.Published >= messages {
				t.Fatalf("the slow node fanned out all %d messages: its subscriber was not slow", st.Published)
			}
			if took > 10*time.Second {
				t.Fatalf("the other nodes took %v", took)
			}
		})
	}
}
