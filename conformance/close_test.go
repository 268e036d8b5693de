package conformance

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wskit/wskit/frame"
)

// TestSection7_1_CloseHandshake checks the closing handshake from both ends:
// the server echoes a client's close and then closes TCP first (§7.1.1,
// §5.5.1), ignores what follows a close, and after its own close still
// answers pings, waits for the client's close and drops the connection at
// Options.Timeout when none comes.
func TestSection7_1_CloseHandshake(t *testing.T) {
	e := newEnv(t)
	cases := []exchange{
		{name: "close 1000", send: closeFrame(1000, ""), code: 1000},
		{name: "close with reason", send: closeFrame(1001, "going"), code: 1001},
		{name: "empty close", send: closeWith(nil), code: frame.CloseNoStatus},
		{name: "messages first", send: cat(text("a"), binary([]byte("b")), closeFrame(1000, "")),
			replies: []reply{textReply("a"), message(frame.OpBinary, []byte("b"))}, code: 1000},
		// §1.4, §5.5.1: nothing the client sends after its close is answered.
		{name: "text after close", send: cat(closeFrame(1000, ""), text("late")), code: 1000},
		{name: "ping after close", send: cat(closeFrame(1000, ""), ping("late")), code: 1000},
		{name: "garbage after close", send: cat(closeFrame(1000, ""), []byte{0xff, 0xff, 0xff}), code: 1000},
		{name: "second close", send: cat(closeFrame(1000, ""), closeFrame(1001, "")), code: 1000},
		{name: "close inside a fragmented message", send: cat(fragment(frame.OpText, false, "unfinished"), closeFrame(1000, "")), code: 1000},
	}
	runExchanges(t, e, "/echo", cases)

	// §7.1.7: after failing the connection the server must close it, even
	// while the client keeps sending.
	t.Run("failed connection closed although the client keeps sending", func(t *testing.T) {
		c := e.dial(t, "/echo")
		c.send(wire(true, 0, 0x3, nil))
		f, err := c.readFrame(replyWait)
		if err != nil {
			t.Fatal(err)
		}
		c.checkClose(f, frame.CloseProtocolError)
		start := time.Now()
		junk := filled(1024)
		for time.Since(start) < timeout+2*time.Second {
			if err := c.write(junk, whole); err != nil {
				t.Logf("server closed the connection %v after failing it", time.Since(start).Round(time.Millisecond))
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("client still sending %v after the server failed the connection", time.Since(start))
	})

	t.Run("echoed reason", func(t *testing.T) {
		c := e.dial(t, "/echo")
		c.send(closeFrame(3000, "see you"))
		// §5.5.1 asks only for the code; wskit echoes the reason too.
		if reason := c.expectClose(3000); reason != "see you" {
			t.Errorf("reason %q, want the client's %q", reason, "see you")
		}
	})

	// /close starts the handshake itself with 4000 "bye".
	t.Run("server closes, client answers", func(t *testing.T) {
		c := e.dial(t, "/close")
		f, err := c.readFrame(replyWait)
		if err != nil {
			t.Fatal(err)
		}
		if reason := c.checkClose(f, 4000); reason != "bye" {
			t.Errorf("reason %q, want bye", reason)
		}
		start := time.Now()
		c.send(closeFrame(4000, ""))
		c.expectEOF(replyWait)
		if d := time.Since(start); d > timeout/2 {
			t.Errorf("server closed TCP %v after the client's close, want at once", d)
		}
	})
	t.Run("server closes, client pings then answers", func(t *testing.T) {
		c := e.dial(t, "/close")
		f, err := c.readFrame(replyWait)
		if err != nil {
			t.Fatal(err)
		}
		c.checkClose(f, 4000)
		// §5.5.2: a ping is answered unless a close was received; the
		// server has sent its close but not received one.
		c.send(ping("still there?"))
		c.expect(pongReply("still there?"))
		// Data the client sends before it has seen the close is dropped:
		// the server may send no data after its close (§5.5.1).
		c.send(text("late"))
		c.send(closeFrame(1000, ""))
		c.expectEOF(replyWait)
	})
	t.Run("server closes, client never answers", func(t *testing.T) {
		c := e.dial(t, "/close")
		f, err := c.readFrame(replyWait)
		if err != nil {
			t.Fatal(err)
		}
		c.checkClose(f, 4000)
		start := time.Now()
		c.expectEOF(timeout + 2*time.Second)
		t.Logf("server dropped TCP %v after its close", time.Since(start).Round(time.Millisecond))
	})
}

// TestSection7_4_CloseCodes checks which codes a close frame may carry
// (§7.4.1, §7.4.2 and the IANA registry): valid ones are echoed, the others
// fail the connection with 1002, and so do a 1-byte payload and one over
// 125 bytes. A close payload of exactly 125 bytes is fine.
func TestSection7_4_CloseCodes(t *testing.T) {
	e := newEnv(t)
	var cases []exchange
	valid := []frame.CloseCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999}
	for _, code := range valid {
		cases = append(cases, exchange{name: fmt.Sprint(uint16(code)), send: closeFrame(code, "reason"), code: code})
	}
	// Never on the wire: under 1000, 1004–1006 and 1015 (reserved for
	// reporting), 1016–2999 (unassigned) and 5000 and above.
	invalid := []uint16{0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}
	for _, code := range invalid {
		cases = append(cases, exchange{name: fmt.Sprint(code), send: closeFrame(frame.CloseCode(code), ""), code: frame.CloseProtocolError})
	}
	cases = append(cases,
		exchange{name: "payload of 1 byte", send: closeWith([]byte{0x03}), code: frame.CloseProtocolError},
		exchange{name: "payload of 125 bytes", send: closeFrame(1000, strings.Repeat("r", 123)), code: 1000},
		exchange{name: "payload of 126 bytes", send: closeFrame(1000, strings.Repeat("r", 124)), code: frame.CloseProtocolError},
	)
	runExchanges(t, e, "/echo", cases)
}
