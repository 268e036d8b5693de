package fuzz

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
)

// protocolConfig turns a fuzzed byte into a server's configuration: bit 0
// is Raw, bits 1-3 the allowed RSV bits, bits 4-7 pick a small message
// size limit (all ones: no limit).
func protocolConfig(opts byte) codec.Config {
	cfg := codec.Config{
		Role:       codec.Server,
		Raw:        opts&1 != 0,
		AllowedRsv: (opts >> 1 & 7) << 4,
	}
	if sel := int64(opts >> 4); sel == 15 {
		cfg.MaxMessageSize = -1
	} else {
		cfg.MaxMessageSize = 1 + 8*sel*sel // 1 to 1569 bytes
	}
	return cfg
}

type protoEvent struct {
	kind    codec.EventKind
	op      frame.Opcode
	fin     bool
	rsv     byte
	payload string
	code    frame.CloseCode
	reason  string
}

type protoRun struct {
	events      []protoEvent
	err         error
	replies     []byte
	state       codec.State
	closeCode   frame.CloseCode
	closeReason string
	closeOK     bool
}

// receive runs a fresh Protocol over pieces, draining its replies after
// every call.
func receive(t *testing.T, what string, cfg codec.Config, pieces [][]byte) protoRun {
	t.Helper()
	p := codec.NewProtocol(cfg)
	defer p.Release()
	var run protoRun
feed:
	for _, piece := range pieces {
		in := piece
		for first := true; first || len(in) > 0; first = false {
			ev, n, ok, err := p.Receive(in)
			if n < 0 || n > len(in) {
				t.Fatalf("%s: Receive consumed %d of %d bytes", what, n, len(in))
			}
			in = in[n:]
			run.replies = p.AppendReplies(run.replies)
			if err != nil {
				if ok {
					t.Fatalf("%s: Receive returned an event and error %v", what, err)
				}
				_, n2, ok2, err2 := p.Receive(in)
				if err2 != err || n2 != 0 || ok2 {
					t.Fatalf("%s: after error %v, Receive returned n = %d, ok = %v, error %v", what, err, n2, ok2, err2)
				}
				run.err = err
				break feed
			}
			if !ok {
				if len(in) != 0 {
					t.Fatalf("%s: Receive wants more bytes but left %d unconsumed", what, len(in))
				}
				continue
			}
			if n == 0 {
				t.Fatalf("%s: Receive returned an event without consuming input", what)
			}
			run.events = append(run.events, protoEvent{
				kind:    ev.Kind,
				op:      ev.Op,
				fin:     ev.Fin,
				rsv:     ev.Rsv,
				payload: string(ev.Payload),
				code:    ev.Code,
				reason:  string(ev.Reason),
			})
		}
	}
	if !sameError(p.Err(), run.err) {
		t.Fatalf("%s: Err() = %v, Receive returned %v", what, p.Err(), run.err)
	}
	run.replies = p.AppendReplies(run.replies)
	run.state = p.State()
	run.closeCode, run.closeReason, run.closeOK = p.CloseReason()
	return run
}

// checkProtocolRun checks one run on its own: events within the limits and
// rules, the replies a server owes for them, and the close state.
func checkProtocolRun(t *testing.T, cfg codec.Config, run protoRun) {
	t.Helper()
	var want []frame.Frame // replies owed, payloads as sent
	var lastClose *protoEvent
	for i, ev := range run.events {
		switch ev.kind {
		case codec.EventMessage:
			if cfg.MaxMessageSize > 0 && int64(len(ev.payload)) > cfg.MaxMessageSize {
				t.Fatalf("event %d: message of %d bytes over the limit of %d", i, len(ev.payload), cfg.MaxMessageSize)
			}
			switch {
			case cfg.Raw && ev.op != frame.OpText && ev.op != frame.OpBinary && ev.op != frame.OpContinuation:
				t.Fatalf("event %d: raw fragment with opcode %v", i, ev.op)
			case !cfg.Raw && ev.op != frame.OpText && ev.op != frame.OpBinary:
				t.Fatalf("event %d: message with opcode %v", i, ev.op)
			case !cfg.Raw && !ev.fin:
				t.Fatalf("event %d: unfinished message outside raw mode", i)
			// With RSV bits allowed beyond the extensions, the payload is
			// the caller's to decode and check.
			case !cfg.Raw && ev.op == frame.OpText && ev.rsv == 0 && !utf8.ValidString(ev.payload):
				t.Fatalf("event %d: text message %q is not UTF-8", i, ev.payload)
			}
			if ev.rsv&^cfg.AllowedRsv != 0 {
				t.Fatalf("event %d: RSV %#x, allowed %#x", i, ev.rsv, cfg.AllowedRsv)
			}
		case codec.EventPing:
			if len(ev.payload) > frame.MaxControlPayload {
				t.Fatalf("event %d: ping of %d bytes", i, len(ev.payload))
			}
			if !cfg.Raw {
				want = append(want, reply(frame.OpPong, ev.payload))
			}
		case codec.EventPong:
			if len(ev.payload) > frame.MaxControlPayload {
				t.Fatalf("event %d: pong of %d bytes", i, len(ev.payload))
			}
		case codec.EventClose:
			if ev.payload == "" {
				if ev.code != frame.CloseNoStatus || ev.reason != "" {
					t.Fatalf("event %d: empty close reported as %v %q", i, ev.code, ev.reason)
				}
			} else if !ev.code.ValidOnWire() || !utf8.ValidString(ev.reason) || ev.payload[2:] != ev.reason {
				t.Fatalf("event %d: close %v %q from payload %q", i, ev.code, ev.reason, ev.payload)
			}
			if !cfg.Raw {
				if lastClose != nil {
					t.Fatalf("event %d: a second close after the handshake ended", i)
				}
				want = append(want, reply(frame.OpClose, ev.payload))
			}
			lastClose = &run.events[i]
		default:
			t.Fatalf("event %d: unknown kind %d", i, ev.kind)
		}
	}

	var failure *frame.ProtocolError
	failureReply := -1 // index of the close frame that reports the violation
	if run.err != nil {
		if !errors.As(run.err, &failure) {
			t.Fatalf("Receive failed with %v, not a *frame.ProtocolError", run.err)
		}
		if cfg.Raw || lastClose == nil {
			// The violation is reported in a close frame of its own; its
			// payload is checked below.
			failureReply = len(want)
			want = append(want, reply(frame.OpClose, ""))
		}
	}

	// The replies are what a server sends: unmasked frames, readable by a client.
	got := readReplies(t, run.replies)
	if len(got) != len(want) {
		t.Fatalf("%d replies %v, want %d %v (events %+v, error %v)", len(got), got, len(want), want, run.events, run.err)
	}
	for i := range got {
		g, w := got[i], want[i]
		if i == failureReply {
			w.Length = g.Length
		}
		if g.Header != w.Header {
			t.Fatalf("reply %d: header %+v, want %+v", i, g.Header, w.Header)
		}
		if i == failureReply {
			// The reason may be cut to fit, but not so as to split a rune:
			// ParseClose checks that it is UTF-8.
			code, reason, err := frame.ParseClose(g.Payload)
			if err != nil || code != failure.Code || !strings.HasPrefix(failure.Reason, string(reason)) {
				t.Fatalf("reply %d: close %v %q (%v) for error %v", i, code, reason, err, run.err)
			}
			continue
		}
		if !bytes.Equal(g.Payload, w.Payload) {
			t.Fatalf("reply %d (%v): payload %q, want %q", i, g.Op, g.Payload, w.Payload)
		}
	}

	// The close state.
	switch {
	case failure != nil:
		if run.state != codec.StateClosed || !run.closeOK || run.closeCode != failure.Code || run.closeReason != failure.Reason {
			t.Fatalf("after error %v: state %v, CloseReason() = %v %q %v", run.err, run.state, run.closeCode, run.closeReason, run.closeOK)
		}
	case lastClose != nil:
		wantState := codec.StateClosed
		if cfg.Raw {
			wantState = codec.StateCloseReceived
		}
		if run.state != wantState || !run.closeOK || run.closeCode != lastClose.code || run.closeReason != lastClose.reason {
			t.Fatalf("after close %v %q: state %v, CloseReason() = %v %q %v",
				lastClose.code, lastClose.reason, run.state, run.closeCode, run.closeReason, run.closeOK)
		}
	default:
		if run.state != codec.StateOpen || run.closeOK {
			t.Fatalf("no close and no error, but state %v, CloseReason() ok = %v", run.state, run.closeOK)
		}
	}
}

// reply is a frame a server sends, with its payload.
func reply(op frame.Opcode, payload string) frame.Frame {
	return frame.Frame{
		Header:  frame.Header{Fin: true, Op: op, Length: int64(len(payload))},
		Payload: []byte(payload),
	}
}

// readReplies decodes what a server wrote, as its client would.
func readReplies(t *testing.T, b []byte) []frame.Frame {
	t.Helper()
	d := &codec.Decoder{Role: codec.Client, MaxFrameSize: -1}
	defer d.Release()
	var out []frame.Frame
	for len(b) > 0 {
		f, n, ok, err := d.Next(b)
		if err != nil {
			t.Fatalf("the replies % x do not decode: %v", b, err)
		}
		if !ok {
			t.Fatalf("the replies end inside a frame: % x", b)
		}
		b = b[n:]
		f.Payload = bytes.Clone(f.Payload)
		out = append(out, f)
	}
	return out
}

// FuzzProtocolChunking feeds a client's byte stream to a server's
// codec.Protocol whole, in the pieces that cuts describes, and byte by byte:
// every way must give the same events, the same error and close reason, and
// the same reply bytes (pongs, the close echo, the close that reports a
// violation). A text frame cut by the end of a piece may fail earlier, at its
// first invalid byte, but with the same error after the same events.
func FuzzProtocolChunking(f *testing.F) {
	key := &[4]byte{0xA5, 0x01, 0x5A, 0xFF}
	long := []byte(strings.Repeat("abcdefghij", 15))

	var chat []byte
	chat = appendFrame(chat, true, 0, frame.OpText, key, []byte("Hello, wörld"))
	chat = appendFrame(chat, true, 0, frame.OpPing, key, []byte("are you there"))
	chat = appendFrame(chat, false, 0, frame.OpText, key, []byte("frag"))
	chat = appendFrame(chat, true, 0, frame.OpPong, key, nil)
	chat = appendFrame(chat, false, 0, frame.OpContinuation, key, []byte("men"))
	chat = appendFrame(chat, true, 0, frame.OpContinuation, key, []byte("ted ✓"))
	chat = appendFrame(chat, true, 0, frame.OpBinary, key, long)
	chat = appendFrame(chat, true, 0, frame.OpClose, key, []byte{0x03, 0xE8, 'b', 'y', 'e'})
	chat = appendFrame(chat, true, 0, frame.OpText, key, []byte("after close"))

	badText := appendFrame(nil, true, 0, frame.OpText, key, []byte("good start \xe2\x82 then bad"))
	splitRune := appendFrame(nil, false, 0, frame.OpText, key, []byte("euro \xe2"))
	splitRune = appendFrame(splitRune, true, 0, frame.OpContinuation, key, []byte("\x82\xac!"))
	badClose := appendFrame(nil, true, 0, frame.OpClose, key, []byte{0x03, 0xED})
	emptyClose := appendFrame(appendFrame(nil, true, 0, frame.OpPing, key, nil), true, 0, frame.OpClose, key, nil)
	unmasked := appendFrame(nil, true, 0, frame.OpText, nil, []byte("hi"))
	orphan := appendFrame(nil, true, 0, frame.OpContinuation, key, []byte("x"))
	rsv := appendFrame(nil, true, frame.RSV1, frame.OpBinary, key, []byte("compressed?"))
	atLimit := appendFrame(nil, false, 0, frame.OpText, key, []byte("1234"))
	atLimit = appendFrame(atLimit, true, 0, frame.OpContinuation, key, []byte("56789"))
	overLimit := appendFrame(nil, false, 0, frame.OpBinary, key, []byte("12345"))
	overLimit = appendFrame(overLimit, true, 0, frame.OpContinuation, key, []byte("67890"))

	for _, s := range []struct {
		stream []byte
		cuts   []byte
		opts   byte
	}{
		{chat, []byte{1, 2, 3, 5, 8, 13, 21, 34, 55}, 0xF0},
		{chat, []byte{7, 0, 7, 0, 7}, 0xF1},
		{chat, []byte{20}, 0x30}, // a limit of 73 bytes
		{badText, []byte{9, 4, 4, 4}, 0xF0},
		{badText, []byte{9, 4, 4, 4}, 0xF1},
		{splitRune, []byte{12, 1, 1}, 0xF0},
		{badClose, []byte{3}, 0xF0},
		{emptyClose, []byte{1, 6}, 0xF0},
		{emptyClose, []byte{1, 6}, 0xF1},
		{unmasked, []byte{1}, 0xF0},
		{orphan, []byte{2}, 0xF1},
		{rsv, []byte{4}, 0xF2},
		{rsv, []byte{4}, 0xF0},
		{atLimit, []byte{3, 3}, 0x10},   // 9 bytes: at the limit of 9
		{overLimit, []byte{3, 3}, 0x10}, // 10 bytes: one over
		{overLimit, []byte{3, 3}, 0x11},
	} {
		f.Add(s.stream, s.cuts, s.opts)
	}

	f.Fuzz(func(t *testing.T, stream, cuts []byte, opts byte) {
		cfg := protocolConfig(opts)
		whole := receive(t, "whole", cfg, [][]byte{bytes.Clone(stream)})
		checkProtocolRun(t, cfg, whole)
		cut := receive(t, "cut", cfg, split(bytes.Clone(stream), cuts))
		compareProtocolRuns(t, "cut", cut, whole)
		if len(stream) <= 1024 {
			one := receive(t, "byte by byte", cfg, bytewise(bytes.Clone(stream)))
			compareProtocolRuns(t, "byte by byte", one, whole)
		}
	})
}

func compareProtocolRuns(t *testing.T, what string, got, want protoRun) {
	t.Helper()
	if len(got.events) != len(want.events) {
		t.Fatalf("%s: %d events %+v, but %d %+v when fed whole", what, len(got.events), got.events, len(want.events), want.events)
	}
	for i := range got.events {
		if got.events[i] != want.events[i] {
			t.Fatalf("%s: event %d = %+v, but %+v when fed whole", what, i, got.events[i], want.events[i])
		}
	}
	checkSameError(t, what, got.err, want.err)
	if !bytes.Equal(got.replies, want.replies) {
		t.Fatalf("%s: replies % x, but % x when fed whole", what, got.replies, want.replies)
	}
	if got.state != want.state {
		t.Fatalf("%s: state %v, but %v when fed whole", what, got.state, want.state)
	}
	if got.closeCode != want.closeCode || got.closeReason != want.closeReason || got.closeOK != want.closeOK {
		t.Fatalf("%s: CloseReason() = %v %q %v, but %v %q %v when fed whole",
			what, got.closeCode, got.closeReason, got.closeOK, want.closeCode, want.closeReason, want.closeOK)
	}
}
