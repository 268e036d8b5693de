package autobahn

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// 12 WebSocket Compression (different payloads) and 13 WebSocket
// Compression (different parameters), after case12_x_x.py.
//
// Every case offers permessage-deflate, then sends count messages one after
// another, each cut from a payload corpus where the previous one ended
// (wrapping around its end), compressed and auto-fragmented, and waits for
// the echo of each before sending the next. The echo must have the type,
// length and bytes sent; the server may compress it or not. A server that
// accepts none of the offers makes the case UNIMPLEMENTED (we close with
// 1000); one whose response is not a valid acceptance fails it (see
// negotiate).

// deflateSetting is one row of Autobahn's MSG_SIZES: the payload size, the
// number of messages, Autobahn's time limit and the auto-fragment size
// (applied to the compressed payload; 0: one frame per message).
type deflateSetting struct {
	size, count int
	wait        time.Duration
	frag        int
}

// deflateSettings are cases x.y.1 to x.y.18 of every group.
var deflateSettings = []deflateSetting{
	{16, 1000, 60 * sec, 0},
	{64, 1000, 60 * sec, 0},
	{256, 1000, 120 * sec, 0},
	{1024, 1000, 240 * sec, 0},
	{4096, 1000, 480 * sec, 0},
	{8192, 1000, 480 * sec, 0},
	{16384, 1000, 480 * sec, 0},
	{32768, 1000, 480 * sec, 0},
	{65536, 1000, 480 * sec, 0},
	{131072, 1000, 480 * sec, 0},
	{8192, 1000, 480 * sec, 256},
	{16384, 1000, 480 * sec, 256},
	{32768, 1000, 480 * sec, 256},
	{65536, 1000, 480 * sec, 256},
	{131072, 1000, 480 * sec, 256},
	{131072, 1000, 480 * sec, 1024},
	{131072, 1000, 480 * sec, 4096},
	{131072, 1000, 480 * sec, 32768},
}

// deflateGroups13 are the offers of 13.1 to 13.7 as (requestNoContextTakeover,
// requestMaxWindowBits) pairs, in order of preference.
var deflateGroups13 = [][]deflateOffer{
	{autobahnOffer(false, 0)},
	{autobahnOffer(true, 0)},
	{autobahnOffer(false, 8)},
	{autobahnOffer(false, 15)},
	{autobahnOffer(true, 8)},
	{autobahnOffer(true, 15)},
	{autobahnOffer(true, 8), autobahnOffer(true, 0), autobahnOffer(false, 0)},
}

// Time limits. A case has Autobahn's time (60 to 480 s) to finish, but it
// also fails, at once, when the echo of a message has not come deflateStall
// after we sent it: a server that stopped answering costs seconds, not
// minutes, while a slow one that keeps answering gets all of Autobahn's time.
const (
	deflateStall      = 10 * sec
	deflateCloseSlack = 5 * sec // for the closing handshake after the wait
)

func compressionCases() []Case {
	var cs []Case
	for g, c := range corpora12 {
		for i, set := range deflateSettings {
			desc := fmt.Sprintf("Send %d compressed messages each of payload size %d, auto-fragment to %d octets. Use default permessage-deflate offer.", set.count, set.size, set.frag)
			cs = append(cs, deflateCase(fmt.Sprintf("12.%d.%d", g+1, i+1), desc, c, []deflateOffer{autobahnOffer(false, 0)}, set))
		}
	}
	for g, offers := range deflateGroups13 {
		for i, set := range deflateSettings {
			desc := fmt.Sprintf("Send %d compressed messages each of payload size %d, auto-fragment to %d octets. Use permessage-deflate client offers (requestNoContextTakeover, requestMaxWindowBits): %s", set.count, set.size, set.frag, offerPairs(offers))
			cs = append(cs, deflateCase(fmt.Sprintf("13.%d.%d", g+1, i+1), desc, corpusJSON, offers, set))
		}
	}
	return cs
}

// offerPairs renders offers as Autobahn's case descriptions do.
func offerPairs(offers []deflateOffer) string {
	parts := make([]string, len(offers))
	for i, o := range offers {
		b := "False"
		if o.serverNoContextTakeover {
			b = "True"
		}
		parts[i] = fmt.Sprintf("(%s, %d)", b, o.serverMaxWindowBits)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func deflateCase(id, desc string, c *corpus, offers []deflateOffer, set deflateSetting) Case {
	if !strings.HasSuffix(desc, ".") {
		desc += "."
	}
	cs := newCase(id, desc+" Payload: "+c.title()+".",
		fmt.Sprintf("Receive echo'ed messages (with payload as sent). Timeout case after %d secs.", int(set.wait/sec)),
		func(s *session) { deflateEcho(s, c, set, deflateStall) })
	cs.offers = offers
	cs.limit = set.wait + deflateCloseSlack
	return cs
}

// deflateEcho runs one case of 12.x.x or 13.x.x on an open session. It
// gives up when an echo is stall late.
func deflateEcho(s *session, c *corpus, set deflateSetting, stall time.Duration) {
	s.expectNormalClose()
	if s.pmd == nil {
		s.behavior = Unimplemented
		s.result = "The server accepted none of the permessage-deflate offers."
		s.sendClose(1000, "")
		return
	}
	s.behavior = Failed
	s.result = fmt.Sprintf("Case did not finish within %d seconds.", int(set.wait/sec))
	s.closeAfter(set.wait)
	data := c.bytes()
	pos, sent, wireTx := 0, 0, 0
	var want []byte
	watchdog := s.after(stall, func() {
		if s.state != stateOpen {
			return
		}
		s.result = fmt.Sprintf("No echo of message %d of %d within %v.", sent, set.count, stall)
		s.sendClose(1000, "")
	})
	sendOne := func() {
		want = cyclicSlice(data, pos, set.size)
		pos = (pos + set.size) % len(data)
		sent++
		wireTx += s.sendDeflated(want, c.binary, set.frag)
		watchdog.at = time.Now().Add(stall)
	}
	s.onMessage = func(got []byte, bin bool) {
		switch {
		case bin != c.binary:
			s.behavior = Failed
			s.result = fmt.Sprintf("Echo'ed message type differs from what I sent (got binary %v, expected binary %v).", bin, c.binary)
			s.sendClose(1000, "")
		case len(got) != len(want):
			s.behavior = Failed
			s.result = fmt.Sprintf("Echo'ed message length differs from what I sent (got length %d, expected length %d).", len(got), len(want))
			s.sendClose(1000, "")
		case !bytes.Equal(got, want):
			s.behavior = Failed
			s.result = fmt.Sprintf("Echo'ed message %d contents differs from what I sent (first difference at offset %d).", sent, firstDiff(got, want))
			s.sendClose(1000, "")
		case sent < set.count:
			sendOne()
		default:
			s.behavior = OK
			s.result = "Ok, received all echo'ed messages in time."
			s.sendClose(1000, "")
		}
		watchdog.dead = s.state != stateOpen
	}
	s.onLost = func() {
		s.info = fmt.Sprintf("permessage-deflate (offer %d of %d): %v; sent %d messages (%d bytes compressed to %d), %d of the echoes came compressed",
			s.pmd.offer+1, len(s.offers), s.pmd, sent, sent*set.size, wireTx, s.deflatedRx)
	}
	sendOne()
}

// cyclicSlice returns n bytes of data from pos on, wrapping around its end.
func cyclicSlice(data []byte, pos, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		k := min(n-len(out), len(data)-pos)
		out = append(out, data[pos:pos+k]...)
		pos = (pos + k) % len(data)
	}
	return out
}
