package fuzz

import (
	"bytes"
	"testing"
	"unicode/utf8"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
)

// assemblerInput is a frame for the Assembler and whether it arrives cut,
// so that Check sees growing parts of it before Push sees it whole.
type assemblerInput struct {
	f   frame.Frame
	cut bool
}

// assemblerFrames reads frames from fuzzed bytes: a control byte (bits
// 0-2 pick the opcode, mostly data, sometimes a ping; bit 3 is FIN; bits 4-6
// the RSV bits; bit 7 makes the frame arrive cut), a length byte, and that
// many payload bytes (fewer at the end of data).
func assemblerFrames(data []byte) []assemblerInput {
	ops := [8]frame.Opcode{
		frame.OpContinuation, frame.OpText, frame.OpBinary, frame.OpContinuation,
		frame.OpText, frame.OpBinary, frame.OpContinuation, frame.OpPing,
	}
	var out []assemblerInput
	for len(data) >= 2 {
		c, n := data[0], min(int(data[1]), len(data)-2)
		payload := data[2 : 2+n]
		data = data[2+n:]
		out = append(out, assemblerInput{
			f: frame.Frame{
				Header:  frame.Header{Fin: c&0x08 != 0, Rsv: c & 0x70, Op: ops[c&7], Length: int64(n)},
				Payload: payload,
			},
			cut: c&0x80 != 0,
		})
	}
	return out
}

// assemblerLimit turns bits 1-7 of a fuzzed byte into MaxMessageSize:
// 0 (the default), -1 (none) or 3 to 378 bytes.
func assemblerLimit(opts byte) int64 {
	switch sel := int64(opts >> 1); sel {
	case 0:
		return 0
	case 127:
		return -1
	default:
		return 3 * sel
	}
}

type message struct {
	op      frame.Opcode
	fin     bool
	rsv     byte
	payload string
}

// assemblerModel is RFC 6455 §5.4 and the Assembler's documented checks,
// applied frame by frame.
type assemblerModel struct {
	raw    bool
	limit  int64 // < 0: none
	inMsg  bool
	op     frame.Opcode
	rsv    byte
	msg    []byte
	tooBig bool  // the failure is a size error (code 1009)
	err    error // or this one
}

func (m *assemblerModel) failed() bool { return m.err != nil || m.tooBig }

// push returns the message f completes (every frame in raw mode), if any.
func (m *assemblerModel) push(f frame.Frame) (message, bool) {
	switch {
	case !f.Op.IsData():
		m.err = codec.ErrNotData
	case f.Op == frame.OpContinuation && !m.inMsg:
		m.err = codec.ErrUnexpectedContinuation
	case f.Op != frame.OpContinuation && m.inMsg:
		m.err = codec.ErrExpectedContinuation
	}
	if m.err != nil {
		return message{}, false
	}
	if !m.inMsg {
		m.inMsg, m.op, m.rsv, m.msg = true, f.Op, f.Rsv, nil
	}
	if m.limit >= 0 && int64(len(m.msg)+len(f.Payload)) > m.limit {
		m.tooBig = true
		return message{}, false
	}
	m.msg = append(m.msg, f.Payload...)
	// Text whose first frame has RSV bits is an extension's to decode: the
	// Assembler leaves its check to the Protocol.
	if m.op == frame.OpText && m.rsv == 0 && (!completable(m.msg) || f.Fin && !utf8.Valid(m.msg)) {
		m.err = codec.ErrInvalidUTF8
		return message{}, false
	}
	out := message{op: m.op, fin: true, rsv: m.rsv, payload: string(m.msg)}
	if m.raw {
		out = message{op: f.Op, fin: f.Fin, rsv: f.Rsv, payload: string(f.Payload)}
	}
	if f.Fin {
		m.inMsg = false
		return out, true
	}
	return out, m.raw
}

func (m *assemblerModel) accepts(err error) bool {
	if m.err != nil {
		return err == m.err
	}
	code, ok := closeCode(err)
	return m.tooBig && ok && code == frame.CloseMessageTooBig
}

// FuzzAssembler pushes frames built from fuzz input through codec.Assembler,
// raw and not, some of them announced first through Check as a cut frame
// would be: the messages and the first error must be those of the model,
// text must be UTF-8, and no message may exceed the size limit.
func FuzzAssembler(f *testing.F) {
	f.Add([]byte("\x09\x05hello"), byte(0))
	f.Add([]byte("\x01\x03abc\x00\x03def\x0f\x00\x08\x04ghij"), byte(0))
	f.Add([]byte("\x01\x03abc\x00\x03def\x0f\x00\x08\x04ghij"), byte(1))
	f.Add([]byte("\x41\x02h\xc3\x08\x01\xa9"), byte(0))                 // RSV1 text split inside a rune
	f.Add([]byte("\x81\x06ok\xe2\x82\xac!\x88\x02\xff\xfe"), byte(0))   // cut text, bad continuation bytes
	f.Add([]byte("\x89\x0cvalid\xed\xa0\x80after"), byte(1))            // a surrogate in a cut frame
	f.Add([]byte("\x02\x0a0123456789\x08\x0a0123456789"), byte(2*4))    // over a 12-byte limit
	f.Add([]byte("\x08\x00"), byte(0))                                  // continuation with no message
	f.Add([]byte("\x01\x00\x01\x00"), byte(0))                          // new message inside one
	f.Add([]byte("\x0f\x04ping"), byte(0))                              // a control frame
	f.Add([]byte("\x0c\x05\xe2\x82\xac\xe2\x82"), byte(0))              // text ending inside a rune
	f.Add([]byte("\x01\x0b0123456789a\x08\x0a0123456789"), byte(7*2))   // 21 bytes, at the limit
	f.Add([]byte("\x01\x0b0123456789a\x08\x0a0123456789"), byte(7*2+1)) // the same, raw
	f.Add([]byte("\x01\x0b0123456789a\x88\x0b0123456789b"), byte(7*2))  // 22 bytes, one over
	f.Add([]byte("\x02\x03bin\x08\x03ary\x01\x01a\x08\x00"), byte(0xFE))

	f.Fuzz(func(t *testing.T, data []byte, opts byte) {
		inputs := assemblerFrames(data)
		raw := opts&1 != 0
		limit := assemblerLimit(opts)
		model := assemblerModel{raw: raw, limit: limit}
		if limit == 0 {
			model.limit = codec.DefaultMaxMessageSize
		}
		a := &codec.Assembler{Raw: raw, MaxMessageSize: limit}
		defer a.Release()

		var got, want []message
		var dataIn, dataOut []byte // payloads of the frames that ended messages, and of the messages
		var pending []byte
		var err error
		for i, in := range inputs {
			m, ok := model.push(in.f)
			if ok {
				want = append(want, m)
			}
			if in.cut {
				for _, k := range growing(len(in.f.Payload)) {
					if err = a.Check(in.f.Header, in.f.Payload[:k]); err != nil {
						break
					}
				}
			}
			var msg codec.Message
			var done bool
			if err == nil {
				msg, done, err = a.Push(in.f)
			}
			if err != nil {
				if !model.accepts(err) {
					t.Fatalf("frame %d %+v %q: error %v; want %v (too big: %v)", i, in.f.Header, in.f.Payload, err, model.err, model.tooBig)
				}
				if _, _, again := a.Push(in.f); again != err {
					t.Fatalf("frame %d: after error %v, Push returned %v", i, err, again)
				}
				break
			}
			if model.failed() {
				t.Fatalf("frame %d %+v %q: accepted; want error %v (too big: %v)", i, in.f.Header, in.f.Payload, model.err, model.tooBig)
			}
			if done != ok {
				t.Fatalf("frame %d %+v: Push says done = %v, want %v", i, in.f.Header, done, ok)
			}
			if a.InMessage() != model.inMsg {
				t.Fatalf("frame %d %+v: InMessage() = %v, want %v", i, in.f.Header, a.InMessage(), model.inMsg)
			}
			if in.f.Op.IsData() {
				pending = append(pending, in.f.Payload...)
			}
			if !done {
				continue
			}
			got = append(got, message{op: msg.Op, fin: msg.Fin, rsv: msg.Rsv, payload: string(msg.Payload)})
			if int(limit) > 0 && len(msg.Payload) > int(limit) {
				t.Fatalf("frame %d: message of %d bytes over the limit of %d", i, len(msg.Payload), limit)
			}
			if !raw && msg.Op == frame.OpText && msg.Rsv == 0 && !utf8.Valid(msg.Payload) {
				t.Fatalf("frame %d: text message %q is not UTF-8", i, msg.Payload)
			}
			if !raw {
				dataIn = append(dataIn, pending...)
				dataOut = append(dataOut, msg.Payload...)
				pending = pending[:0]
			}
		}
		if err == nil && model.failed() {
			t.Fatalf("no error; want %v (too big: %v)", model.err, model.tooBig)
		}
		if len(got) != len(want) {
			t.Fatalf("%d messages %+v, want %d %+v", len(got), got, len(want), want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("message %d = %+v, want %+v", i, got[i], want[i])
			}
		}
		if !bytes.Equal(dataIn, dataOut) {
			t.Fatalf("messages hold %q, the frames that made them %q", dataOut, dataIn)
		}
	})
}

// growing returns the lengths of the parts of an n-byte frame that Check
// sees before the frame is whole: strictly growing, all shorter than n.
func growing(n int) []int {
	var ks []int
	for _, k := range []int{0, n / 3, n / 2, n - 1} {
		if k >= 0 && k < n && (len(ks) == 0 || k > ks[len(ks)-1]) {
			ks = append(ks, k)
		}
	}
	return ks
}
