package conformance

import (
	byteorder "encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/wskit/wskit"
	"github.com/wskit/wskit/frame"
)

// TestLimits checks the size limits of wskit.Options (MaxFrameSize and
// MaxMessageSize, 64 KiB here): 1009 Message Too Big (§7.4.1), for a frame as
// soon as its header arrives, for a fragmented message as soon as the
// fragment that crosses the limit is announced; and §5.2's rule that a 64-bit
// length has its most significant bit clear (1002).
func TestLimits(t *testing.T) {
	e := newEnv(t)
	quarter := string(filled(maxMessage / 4))
	kib := string(filled(1024))
	var overByKiB []string
	for range maxMessage/1024 + 1 {
		overByKiB = append(overByKiB, kib)
	}
	cases := []exchange{
		{name: "frame of exactly MaxFrameSize", send: binary(filled(maxFrame)), replies: []reply{message(frame.OpBinary, filled(maxFrame))}},
		// Only the header is sent: the server must not wait for the payload.
		{name: "frame header over MaxFrameSize", send: header(true, 0, frame.OpBinary, maxFrame+1), code: frame.CloseMessageTooBig},
		{name: "text frame header over MaxFrameSize", send: header(true, 0, frame.OpText, maxFrame+1), code: frame.CloseMessageTooBig},
		{name: "first fragment header over MaxFrameSize", send: header(false, 0, frame.OpBinary, maxFrame+1), code: frame.CloseMessageTooBig},
		{name: "frame header of 2^62 bytes", send: header(true, 0, frame.OpBinary, 1<<62), code: frame.CloseMessageTooBig},
		{name: "frame header of 2^63-1 bytes", send: header(true, 0, frame.OpBinary, 1<<63-1), code: frame.CloseMessageTooBig},
		{name: "frame over MaxFrameSize with its payload", send: binary(filled(maxFrame + 1)), code: frame.CloseMessageTooBig},

		{name: "message of exactly MaxMessageSize in four fragments", send: fragments(frame.OpBinary, quarter, quarter, quarter, quarter),
			replies: []reply{message(frame.OpBinary, []byte(quarter+quarter+quarter+quarter))}},
		{name: "message over MaxMessageSize in five fragments", send: fragments(frame.OpBinary, quarter, quarter, quarter, quarter, "x"),
			code: frame.CloseMessageTooBig},
		{name: "message over MaxMessageSize in 1 KiB fragments", send: fragments(frame.OpText, overByKiB...), code: frame.CloseMessageTooBig},
		// The second fragment's header is enough to cross the limit.
		{name: "fragment header crossing MaxMessageSize",
			send: cat(fragment(frame.OpBinary, false, string(filled(40<<10))), header(true, 0, frame.OpContinuation, 40<<10)),
			code: frame.CloseMessageTooBig},
		{name: "fragment header crossing MaxMessageSize, not final",
			send: cat(fragment(frame.OpText, false, string(filled(40<<10))), header(false, 0, frame.OpContinuation, 40<<10)),
			code: frame.CloseMessageTooBig},

		// §5.2: "the most significant bit MUST be 0". The first byte of the
		// 64-bit length proves it.
		{name: "64-bit length with the top bit set", send: length64(frame.OpBinary, 1<<63), code: frame.CloseProtocolError},
		{name: "64-bit length all ones", send: length64(frame.OpBinary, 1<<64-1), code: frame.CloseProtocolError},
		{name: "64-bit length top bit, first length byte only", send: []byte{0x82, 0xff, 0x80}, code: frame.CloseProtocolError},
	}
	runExchanges(t, e, "/echo", cases)
}

// length64 returns a masked header that encodes l in the 64-bit form as is.
func length64(op frame.Opcode, l uint64) []byte {
	b := byteorder.BigEndian.AppendUint64([]byte{0x80 | byte(op), 0x80 | 127}, l)
	return append(b, 1, 2, 3, 4)
}

// TestClientStopsReading checks that a server whose peer never reads does
// not hang: with the TCP buffers full, a send fails (Options.Timeout bounds a
// stuck write and a send waiting for queue room), the handler returns, and
// the connection is dropped; no goroutine is left. The RFC has nothing to
// say here: it is wskit's promise.
func TestClientStopsReading(t *testing.T) {
	for _, senders := range []string{"1", "3"} {
		t.Run("senders="+senders, func(t *testing.T) {
			e := newEnv(t)
			c := e.dial(t, "/flood?senders="+senders)
			var results []floodResult
			select {
			case results = <-e.floods:
			case <-time.After(15 * time.Second):
				t.Fatal("the handler is still sending 15 s after the client stopped reading")
			}
			for i, r := range results {
				if r.err == nil {
					t.Errorf("sender %d: no send failed in 20 s", i)
				} else if !errors.Is(r.err, wskit.ErrWriteTimeout) && !errors.Is(r.err, wskit.ErrQueueTimeout) {
					t.Errorf("sender %d: send failed with %v, want ErrWriteTimeout or ErrQueueTimeout", i, r.err)
				}
				if r.blocked > timeout+time.Second {
					t.Errorf("sender %d: the failing send blocked %v, want at most Timeout (%v)", i, r.blocked, timeout)
				}
				t.Logf("sender %d: %d KiB accepted, then %v after %v", i, r.sent>>10, r.err, r.blocked.Round(time.Millisecond))
			}
			// The server has given up on the connection: reading now drains
			// what it sent and ends with the end of TCP (no close frame could
			// get through a full buffer, so none is required).
			c.conn.SetReadDeadline(time.Now().Add(replyWait))
			buf := make([]byte, 256<<10)
			for {
				_, err := c.br.Read(buf)
				if tcpClosed(err) {
					break
				}
				if err != nil {
					t.Fatalf("reading after the server gave up: %v", err)
				}
			}
		})
	}
}
