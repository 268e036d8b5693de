package autobahn

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// 9 Limits/Performance, after case9_*.py. Unlike Autobahn ("FIXME : check
// actual content") the echoed payload is compared, not only its length.

func limitCases() []Case {
	var cs []Case
	type size struct {
		n    int
		name string
		wait time.Duration
	}
	sizes := []size{
		{64 << 10, "64 * 2**10 (64k)", 10 * sec},
		{256 << 10, "256 * 2**10 (256k)", 10 * sec},
		{1 << 20, "1 * 2**20 (1M)", 100 * sec},
		{4 << 20, "4 * 2**20 (4M)", 100 * sec},
		{8 << 20, "8 * 2**20 (8M)", 100 * sec},
		{16 << 20, "16 * 2**20 (16M)", 100 * sec},
	}
	const textPat, binPat = "BAsd7&jh23", "\x00\xfe\x23\xfa\xf0"
	kinds := []struct {
		name, pat string
		binary    bool
	}{{"text", textPat, false}, {"binary", binPat, true}}

	// 9.1, 9.2: one big message in one frame.
	for k, kind := range kinds {
		for i, sz := range sizes {
			cs = append(cs, bigEcho(fmt.Sprintf("9.%d.%d", k+1, i+1),
				fmt.Sprintf("Send %s message message with payload of length %s.", kind.name, sz.name),
				kind.name, kind.binary, sz.wait, func(s *session) []byte {
					p := repeat([]byte(kind.pat), sz.n)
					s.sendFrame(opOf(kind.binary), "", rawPayload(p))
					return p
				}))
		}
	}

	// 9.3, 9.4: 4M message in fragments of increasing size.
	frags := []struct {
		n    int
		name string
	}{{64, "64"}, {256, "256"}, {1 << 10, "1k"}, {4 << 10, "4k"}, {16 << 10, "16k"}, {64 << 10, "64k"}, {256 << 10, "256k"}, {1 << 20, "1M"}, {4 << 20, "4M"}}
	for k, kind := range kinds {
		fill := "*"
		if kind.binary {
			fill = "\xfe"
		}
		for i, fr := range frags {
			cs = append(cs, bigEcho(fmt.Sprintf("9.%d.%d", k+3, i+1),
				fmt.Sprintf("Send fragmented %s message message with message payload of length 4 * 2**20 (4M). Sent out in fragments of %s.", kind.name, fr.name),
				kind.name, kind.binary, 100*sec, func(s *session) []byte {
					p := strings.Repeat(fill, 4<<20)
					s.sendMessage(p, kind.binary, fr.n)
					return []byte(p)
				}))
		}
	}

	// 9.5, 9.6: 1M message written in chops of increasing size.
	for k, kind := range kinds {
		for i, ch := range []int{64, 128, 256, 512, 1024, 2048} {
			cs = append(cs, bigEcho(fmt.Sprintf("9.%d.%d", k+5, i+1),
				fmt.Sprintf("Send %s message message with payload of length 1 * 2**20 (1M). Sent out data in chops of %d octets.", kind.name, ch),
				kind.name, kind.binary, 1000*sec, func(s *session) []byte {
					p := repeat([]byte(kind.pat), 1<<20)
					s.sendFrame(opOf(kind.binary), "", rawPayload(p), chop(ch))
					return p
				}))
		}
	}

	// 9.7, 9.8: 1000 round trips of small messages.
	rtts := []struct {
		n    int
		wait time.Duration
	}{{0, 60 * sec}, {16, 60 * sec}, {64, 60 * sec}, {256, 120 * sec}, {1024, 240 * sec}, {4096, 480 * sec}}
	for k, kind := range kinds {
		fill := "*"
		if kind.binary {
			fill = "\xfe"
		}
		for i, rt := range rtts {
			c := newCase(fmt.Sprintf("9.%d.%d", k+7, i+1),
				fmt.Sprintf("Send 1000 %s messages of payload size %d to measure implementation/network RTT (round trip time) / latency.", kind.name, rt.n),
				fmt.Sprintf("Receive echo'ed %s messages (with payload as sent). Timeout case after %d secs.", kind.name, int(rt.wait/sec)),
				func(s *session) { roundTrips(s, kind.binary, fill, rt.n, 1000, rt.wait) })
			c.limit = min(rt.wait, maxLimit)
			cs = append(cs, c)
		}
	}
	return cs
}

func opOf(binary bool) byte {
	if binary {
		return 2
	}
	return 1
}

// bigEcho is the shape of 9.1 to 9.6: send one message, wait for its echo,
// close. The case fails unless the echo arrives (and matches) in time.
func bigEcho(id, desc, kind string, binary bool, wait time.Duration, send func(s *session) []byte) Case {
	c := newCase(id, desc, fmt.Sprintf("Receive echo'ed %s message (with payload as sent).", kind), func(s *session) {
		s.behavior = Failed
		s.expectNormalClose()
		s.result = fmt.Sprintf("Did not receive message within %d seconds.", int(wait/sec))
		want := send(s)
		s.closeAfter(wait)
		s.onMessage = func(got []byte, bin bool) {
			switch {
			case bin != binary:
				s.result = fmt.Sprintf("Expected %s message with payload, but got the other type.", kind)
			case len(got) != len(want):
				s.result = fmt.Sprintf("Expected %s message with payload of length %d, but got %d.", kind, len(want), len(got))
			case !bytes.Equal(got, want):
				s.result = fmt.Sprintf("Received %s message of length %d, but its payload differs from what was sent at offset %d.", kind, len(got), firstDiff(got, want))
			default:
				s.behavior = OK
				s.result = fmt.Sprintf("Received %s message of length %d.", kind, len(got))
			}
			s.sendClose(1000, "")
		}
	})
	c.limit = min(wait+5*sec, maxLimit)
	return c
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// roundTrips is 9.7.x/9.8.x: send a message, await its echo, count times.
func roundTrips(s *session, binary bool, fill string, n, count int, wait time.Duration) {
	s.behavior = Failed
	s.expectNormalClose()
	s.result = fmt.Sprintf("Case did not finish within %d seconds.", int(wait/sec))
	s.closeAfter(wait)
	want := []byte(strings.Repeat(fill, n))
	sent := 0
	sendOne := func() {
		s.sendFrame(opOf(binary), fill, repeatTo(n))
		sent++
	}
	s.onMessage = func(got []byte, bin bool) {
		switch {
		case bin != binary || len(got) != n:
			s.behavior = Failed
			s.result = fmt.Sprintf("Echo'ed message type or length differs from what I sent (got binary = %v, payload length = %d).", bin, len(got))
			s.sendClose(1000, "")
		case !bytes.Equal(got, want):
			s.behavior = Failed
			s.result = fmt.Sprintf("Echo'ed message %d differs from what I sent.", sent)
			s.sendClose(1000, "")
		case sent < count:
			sendOne()
		default:
			s.behavior = OK
			s.result = "Ok, received all echo'ed messages in time."
			s.sendClose(1000, "")
		}
	}
	sendOne()
}
