package codec

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/bufpool"
)

// Config sets up a Protocol.
type Config struct {
	Role           Role  // which end the Protocol speaks for
	MaxFrameSize   int64 // 0 means DefaultMaxFrameSize, < 0 no limit
	MaxMessageSize int64 // 0 means DefaultMaxMessageSize, < 0 no limit
	// AllowedRsv are RSV bits allowed beyond those of Extensions: a message
	// carrying them comes out as it arrived, text unchecked for UTF-8, for
	// the caller to decode and check.
	AllowedRsv byte
	// Extensions negotiated for the connection, in the order they process
	// outgoing messages. The Protocol releases their Transforms. They are
	// ignored in raw mode.
	Extensions   []Negotiated
	FragmentSize int // split outgoing messages into frames of this size; 0 never
	// Raw delivers every data frame as it arrives (fragments stay fragments)
	// and answers nothing: no pong, no close reply. Limits and protocol rules
	// still hold, and a violation still sends its close frame.
	Raw bool
	// PingPeriod, when positive, makes Tick send a ping that often.
	PingPeriod time.Duration
	// Timeout bounds the wait for a pong after a keepalive ping and for the
	// peer's close frame after ours; 0 waits forever.
	Timeout time.Duration
	// Counters, when set, count what the Protocol receives and sends.
	Counters *Counters
}

// State is the close-handshake state of a connection (RFC 6455 §7).
type State uint8

const (
	StateOpen          State = iota // data flows both ways
	StateCloseSent                  // our close is out, the peer's has not come
	StateCloseReceived              // the peer's close came and is not answered (raw mode only)
	StateClosed                     // handshake done or connection failed: close the TCP connection
)

// String returns the state's name, such as "close sent".
func (s State) String() string {
	switch s {
	case StateOpen:
		return "open"
	case StateCloseSent:
		return "close sent"
	case StateCloseReceived:
		return "close received"
	}
	return "closed"
}

// EventKind says what an Event reports.
type EventKind uint8

const (
	EventMessage EventKind = iota + 1 // a data message (or raw fragment)
	EventPing                         // a ping; the Protocol has queued its pong (not in raw mode)
	EventPong                         // a pong
	EventClose                        // the peer's close frame: Code and Reason
)

// Event is something the peer sent. Payload and Reason are borrowed: valid
// until the next call on the Protocol and as long as the input bytes given
// to Receive are not reused.
type Event struct {
	Kind    EventKind       // what the peer sent
	Op      frame.Opcode    // EventMessage: the message's opcode (the frame's in raw mode)
	Fin     bool            // EventMessage in raw or stream mode: the frame ends its message; else true
	Rsv     byte            // EventMessage: RSV bits of the first frame
	Payload []byte          // the message, fragment or control payload
	Code    frame.CloseCode // EventClose: the peer's code, CloseNoStatus when it sent none
	Reason  []byte          // EventClose: the peer's reason
}

// Errors of the Protocol that are not violations by the peer.
var (
	ErrCloseSent    = errors.New("wskit: close already sent; no more data frames may be sent")
	ErrCloseTimeout = errors.New("wskit: peer did not answer the close frame in time")
	ErrPongTimeout  = &frame.ProtocolError{Code: frame.CloseInternalError, Reason: "ping timeout: no pong received in time"}
)

// Protocol is the state of one WebSocket connection, without I/O: feed it
// received bytes with Receive, send through its Append methods, drain what it
// owes the peer (pongs, the close reply, the close that reports a violation)
// with AppendReplies, and call Tick at or after Deadline.
//
// A Protocol is not safe for concurrent use; the transport serialises calls.
type Protocol struct {
	cfg *Config
	// in is the state of a frame or message being received, taken from a
	// pool while one is and given back when it is done: a connection
	// between messages holds none.
	in          *inState
	out         *[]byte // replies owed to the peer
	ext         *pipeline
	err         error
	closeReason string // with closeCode: the peer's once its close came, else ours

	// mark is when the running timer started: the last keepalive ping (or
	// the first Tick) while open, the first Tick after our close while
	// closing. marked is false until a Tick has set it. A keepalive ping
	// carries its mark, which its pong must echo.
	mark  time.Duration // since epoch
	tally *Tally        // when set, where the commonest counts go first

	closeCode frame.CloseCode
	pongAt    uint16 // 1 + where the unsent pong starts in out; 0 when none
	state     State
	rsv       byte         // RSV bits allowed: the config's and the extensions'
	deflate   byte         // permessage-deflate's RSV bit, when negotiated and counted
	inOp      frame.Opcode // raw mode: the opcode of the message being received, for ctr
	outOp     frame.Opcode // the opcode of the message AppendFrame is sending, for ctr
	stream    bool         // SetStreaming
	gotClose  bool
	sentClose bool
	marked    bool
	awaiting  bool
	released  bool
}

// inState is what a Protocol holds of a frame or message in progress.
type inState struct {
	dec Decoder
	asm Assembler
}

var inStates bufpool.Pool[inState]

// busy reports whether s holds anything: a cut frame, an unfinished
// message, or the buffers of the last message delivered.
func (s *inState) busy() bool {
	return s.dec.inFrame || s.dec.hdrN != 0 || s.dec.lent != nil ||
		s.asm.op != 0 || s.asm.buf != nil || s.asm.lent != nil
}

// epoch is the origin of Protocol's clock: durations since it keep the
// monotonic reading of the times passed to Tick, in 8 bytes.
var epoch = time.Now()

// NewProtocol returns the state of a connection that has just opened.
func NewProtocol(cfg Config) *Protocol {
	p := new(Protocol)
	p.Init(cfg)
	return p
}

// Init sets p up as NewProtocol does, for a Protocol embedded in another
// value.
func (p *Protocol) Init(cfg Config) {
	c := cfg
	p.InitShared(&c, cfg.Extensions)
}

// InitShared is Init with a Config that p keeps rather than copies, so that
// the connections of a server can share one; it must not change while p is
// in use. exts are the connection's negotiated extensions, in place of
// cfg.Extensions.
func (p *Protocol) InitShared(cfg *Config, exts []Negotiated) {
	*p = Protocol{cfg: cfg, rsv: cfg.AllowedRsv}
	if len(exts) > 0 && !cfg.Raw {
		p.ext = &pipeline{ns: exts}
		p.rsv |= p.ext.rsvBits()
		if cfg.Counters != nil {
			p.deflate = deflateBit(exts)
		}
	}
}

// enc returns the encoder of p's frames.
func (p *Protocol) enc() Encoder {
	return Encoder{Role: p.cfg.Role, FragmentSize: p.cfg.FragmentSize}
}

// setUp readies st to receive with, as p's config says.
func (p *Protocol) setUp(st *inState) {
	c := p.cfg
	st.dec = Decoder{Role: c.Role, MaxFrameSize: c.MaxFrameSize, AllowedRsv: p.rsv}
	st.asm = Assembler{MaxMessageSize: c.MaxMessageSize, Raw: c.Raw, Stream: p.stream}
}

// keep gives p's state of a frame or message in progress back to the pool
// once it holds nothing, or once p has failed.
func (p *Protocol) keep() {
	st := p.in
	if st == nil || st.busy() && p.err == nil {
		return
	}
	st.release()
	p.in = nil
	inStates.Put(st)
}

// release gives back the buffers s holds.
func (s *inState) release() {
	s.dec.Release()
	s.asm.Release()
}

// Extensions returns the negotiated extensions (Config.Extensions unless in
// raw mode). It may be called concurrently with the other methods.
func (p *Protocol) Extensions() []Negotiated {
	if p.ext == nil {
		return nil
	}
	return p.ext.ns
}

// State returns the close-handshake state.
func (p *Protocol) State() State { return p.state }

// Err returns the error that failed the connection, if any.
func (p *Protocol) Err() error { return p.err }

// Receive consumes bytes from the start of in until it has an event to
// report, and says how many bytes it consumed. ok is false when all of in was
// consumed without completing an event: call again with more bytes. After the
// connection is closed, input is consumed and ignored.
//
// A violation returns a *frame.ProtocolError; the close frame carrying its
// code is queued for AppendReplies and the state becomes StateClosed.
func (p *Protocol) Receive(in []byte) (ev Event, n int, ok bool, err error) {
	if p.ext != nil {
		p.ext.returnIn()
	}
	if p.err != nil {
		return ev, 0, false, p.err
	}
	if p.state == StateClosed {
		return ev, len(in), false, nil
	}
	if p.released {
		return ev, 0, false, p.fail(ErrReleased)
	}
	if st := p.in; st != nil {
		ev, n, ok, err = p.receive(st, in)
		p.keep()
		return ev, n, ok, err
	}
	// Between messages, the state lives on the stack unless the input
	// leaves a frame or message unfinished.
	var local inState
	p.setUp(&local)
	ev, n, ok, err = p.receive(&local, in)
	switch {
	case !local.busy():
	case p.err != nil:
		local.release()
	default:
		p.in = inStates.Get()
		*p.in = local
	}
	return ev, n, ok, err
}

// receive is Receive with st holding the frame and message in progress.
func (p *Protocol) receive(st *inState, in []byte) (ev Event, n int, ok bool, err error) {
	for {
		if p.err != nil {
			return ev, n, false, p.err
		}
		if p.state == StateClosed {
			return ev, len(in), false, nil
		}
		f, k, complete, err := st.dec.Next(in[n:])
		n += k
		if err != nil {
			return ev, n, false, p.fail(err)
		}
		if complete && p.cfg.Counters != nil {
			p.inFrame()
		}
		if !complete {
			if h, part, cut := st.dec.Partial(); cut && h.Op.IsData() && p.acceptsData() {
				if err := st.asm.Check(h, part); err != nil {
					return ev, n, false, p.fail(err)
				}
			}
			return ev, n, false, nil
		}
		if f.Op.IsControl() {
			ev, err = p.control(f)
			if err != nil {
				return ev, n, false, p.fail(err)
			}
			return ev, n, true, nil
		}
		if !p.acceptsData() {
			continue // the peer's data after a close is dropped
		}
		m, done, err := st.asm.Push(f)
		if err != nil {
			return ev, n, false, p.fail(err)
		}
		if done {
			wire := len(m.Payload)
			if m.Rsv != 0 && p.ext != nil {
				if m.Payload, err = p.decode(m); err != nil {
					return ev, n, false, p.fail(err)
				}
			}
			if c := p.cfg.Counters; c != nil {
				p.countIn(c, m, wire)
			}
			return Event{Kind: EventMessage, Op: m.Op, Fin: m.Fin, Rsv: m.Rsv, Payload: m.Payload}, n, true, nil
		}
	}
}

func (p *Protocol) acceptsData() bool { return p.state == StateOpen }

// countIn counts a data message received (in raw mode, a data frame), whose
// payload had wire bytes before the extensions.
func (p *Protocol) countIn(c *Counters, m Message, wire int) {
	if p.cfg.Raw {
		op, fin := dataFrame(&p.inOp, frame.Header{Fin: m.Fin, Op: m.Op})
		p.inMessage(op, len(m.Payload), fin)
		return
	}
	p.inMessage(m.Op, len(m.Payload), m.Fin)
	if p.deflate != 0 {
		c.In.DeflateWire.Add(uint64(wire))
		c.In.DeflatePlain.Add(uint64(len(m.Payload)))
	}
}

// decode runs the extensions on a message whose first frame carried RSV
// bits, then checks text, which the Assembler could not.
func (p *Protocol) decode(m Message) ([]byte, error) {
	limit := p.cfg.MaxMessageSize
	if limit == 0 {
		limit = DefaultMaxMessageSize
	}
	out, err := p.ext.decode(m.Op, m.Rsv, m.Payload, limit)
	if err != nil {
		return nil, err
	}
	if m.Op == frame.OpText && !frame.ValidUTF8(out) {
		return nil, ErrInvalidUTF8
	}
	return out, nil
}

func (p *Protocol) control(f frame.Frame) (Event, error) {
	if c := p.cfg.Counters; c != nil && f.Op != frame.OpClose {
		c.In.control(f.Op, nil)
	}
	switch f.Op {
	case frame.OpPing:
		if !p.cfg.Raw && (p.state == StateOpen || p.state == StateCloseSent) {
			p.reply(frame.OpPong, f.Payload)
		}
		return Event{Kind: EventPing, Payload: f.Payload}, nil
	case frame.OpPong:
		if p.awaiting && len(f.Payload) == 8 && binary.BigEndian.Uint64(f.Payload) == uint64(p.mark) {
			p.awaiting = false
		}
		return Event{Kind: EventPong, Payload: f.Payload}, nil
	}
	code, reason, err := frame.ParseClose(f.Payload)
	if err != nil {
		return Event{}, err
	}
	if c := p.cfg.Counters; c != nil {
		c.In.Close[CloseIndex(code)].Add(1)
	}
	p.gotClose = true
	p.closeCode, p.closeReason = code, string(reason)
	switch {
	case p.state == StateCloseSent:
		p.state = StateClosed
	case p.cfg.Raw:
		p.state = StateCloseReceived
	default:
		// Echo the code (and reason) the peer sent; an empty close gets an empty one.
		p.reply(frame.OpClose, f.Payload)
		p.sentClose = true
		p.state = StateClosed
	}
	return Event{Kind: EventClose, Payload: f.Payload, Code: code, Reason: reason}, nil
}

// fail records err; for a violation it queues the close frame that reports
// it, unless a close was already sent.
func (p *Protocol) fail(err error) error {
	p.err = err
	if code, reason, ok := CloseFor(err); ok && !p.sentClose {
		var buf [frame.MaxControlPayload]byte
		short := reason
		if len(short) > frame.MaxCloseReason {
			short = frame.Errorf(code, "%s", short).Reason
		}
		payload, _ := frame.AppendClose(buf[:0], code, short)
		p.reply(frame.OpClose, payload)
		p.sentClose = true
		if !p.gotClose {
			p.closeCode, p.closeReason = code, reason
		}
	}
	p.state = StateClosed
	return err
}

// Replies returns the size of the frames AppendReplies would append.
func (p *Protocol) Replies() int {
	if p.out == nil {
		return 0
	}
	return len(*p.out)
}

// reply queues a control frame owed to the peer, in a pooled buffer held
// only until AppendReplies.
//
// A pong replaces the one still unsent, as RFC 6455 §5.5.3 allows (a pong
// may answer the most recent ping only), so that a peer flooding pings at
// a connection whose writes are stuck makes it hold one pong, not one per
// ping. A pong followed by another reply stays.
func (p *Protocol) reply(op frame.Opcode, payload []byte) {
	if p.out == nil {
		p.out = bufpool.Get(frame.MaxHeaderSize + len(payload))
	}
	replaced := false
	switch {
	case op != frame.OpPong:
		p.pongAt = 0
	case p.pongAt != 0:
		*p.out = (*p.out)[:p.pongAt-1]
		replaced = true // the pong it replaces is never sent
		fallthrough
	case len(*p.out) < 1<<16-1:
		p.pongAt = uint16(len(*p.out)) + 1
	}
	if c := p.cfg.Counters; c != nil && !replaced {
		p.outFrames(1)
		c.Out.control(op, payload)
	}
	*p.out = p.enc().AppendFrame(*p.out, frame.Header{Fin: true, Op: op}, payload)
}

// AppendReplies appends the frames the connection owes the peer to dst and
// forgets them. Call it after Receive and Tick, and write the result.
func (p *Protocol) AppendReplies(dst []byte) []byte {
	if p.out == nil {
		return dst
	}
	dst = append(dst, *p.out...)
	bufpool.Put(p.out) // an idle connection holds none
	p.out = nil
	p.pongAt = 0
	return dst
}

// AppendMessage appends a data message (OpText or OpBinary) with the given
// RSV bits on its first frame, fragmented when Config.FragmentSize asks.
// With rsv 0 the negotiated extensions transform the message first (and may
// set bits); a message they do not shrink goes as it is, so the result
// never exceeds MessageSize(len(payload)). Nonzero rsv sends the payload
// as given.
func (p *Protocol) AppendMessage(dst []byte, op frame.Opcode, rsv byte, payload []byte) ([]byte, error) {
	if p.sentClose {
		return dst, ErrCloseSent
	}
	if p.ext != nil && p.ext.sendErr != nil {
		return dst, p.ext.sendErr
	}
	if p.ext != nil && rsv == 0 {
		out, bits, err := p.ext.encode(op, payload)
		if err != nil {
			p.ext.doneEncoding()
			var pan *PanicError
			if errors.As(err, &pan) {
				return dst, p.failSend(err)
			}
			return dst, err
		}
		dst = p.enc().AppendMessage(dst, op, bits, out)
		p.ext.doneEncoding()
		if c := p.cfg.Counters; c != nil {
			p.countOut(c, op, len(payload), len(out))
		}
		return dst, nil
	}
	if c := p.cfg.Counters; c != nil {
		p.countOut(c, op, len(payload), len(payload))
	}
	return p.enc().AppendMessage(dst, op, rsv, payload), nil
}

// AppendMessageHead appends the header of a data message of n bytes whose
// payload the caller sends right after it, unchanged, and counts the
// message as sent: AppendMessage without the copy of the payload. It
// reports false and appends nothing when AppendMessage would change or
// split the payload (an extension encodes it, the encoder masks or
// fragments it) or would fail: call AppendMessage then.
func (p *Protocol) AppendMessageHead(dst []byte, op frame.Opcode, rsv byte, n int) ([]byte, bool) {
	enc := p.enc()
	if p.sentClose || (p.ext != nil && (rsv == 0 || p.ext.sendErr != nil)) || enc.Role == Client ||
		(enc.FragmentSize > 0 && n > enc.FragmentSize) {
		return dst, false
	}
	if c := p.cfg.Counters; c != nil {
		p.countOut(c, op, n, n)
	}
	return frame.AppendHeader(dst, frame.Header{Fin: true, Rsv: rsv, Op: op, Length: int64(n)}), true
}

// countOut counts a data message sent whose payload of n bytes went out as
// wire bytes.
func (p *Protocol) countOut(c *Counters, op frame.Opcode, n, wire int) {
	p.outFrames(p.enc().fragments(wire))
	p.outMessage(op, n, true)
	if p.deflate != 0 {
		c.Out.DeflatePlain.Add(uint64(n))
		c.Out.DeflateWire.Add(uint64(wire))
	}
}

// SetStreaming sets whether the messages that start from now on are
// returned frame by frame (see Assembler.Stream): each EventMessage then
// holds one fragment, in order, the last with Fin set. The limits and the
// UTF-8 check apply as to whole messages. A message whose first frame has
// RSV bits (one an extension compressed) still comes whole.
func (p *Protocol) SetStreaming(on bool) {
	p.stream = on
	if p.in != nil {
		p.in.asm.Stream = on
	}
}

// SetCompression turns permessage-deflate on or off for the messages
// AppendMessage encodes from now on, as gorilla's EnableWriteCompression
// does; on, a message is compressed when the extension's Threshold and
// CompressIf approve it. Other extensions still encode every message. It
// does nothing when permessage-deflate was not negotiated. Compression is
// on at first.
func (p *Protocol) SetCompression(on bool) {
	if p.ext == nil {
		return
	}
	p.ext.skip = 0
	if !on {
		p.ext.skip = deflateBit(p.ext.ns)
	}
}

// ReadRoom is Decoder.Room for the frame being received: free space to read
// the rest of a large cut frame into and hand to Receive without a copy;
// nil when there is no such frame or the connection is closed.
func (p *Protocol) ReadRoom(least int) []byte {
	if p.err != nil || p.state == StateClosed || p.in == nil {
		return nil
	}
	return p.in.dec.Room(least)
}

// MessageSize returns the number of bytes AppendMessage appends for a
// payload of n bytes, so that a caller can reserve room in one step.
func (p *Protocol) MessageSize(n int) int { return p.enc().MessageSize(n) }

// AppendFrame appends one frame exactly as given, unchecked (raw sessions
// write this way); only masking follows the role. A close frame changes the
// state as AppendClose does.
func (p *Protocol) AppendFrame(dst []byte, h frame.Header, payload []byte) ([]byte, error) {
	if p.sentClose && (h.Op.IsData() || h.Op == frame.OpClose) {
		return dst, ErrCloseSent
	}
	if h.Op == frame.OpClose {
		code, reason, err := frame.ParseClose(payload)
		if err != nil {
			code, reason = frame.CloseNoStatus, nil
		}
		p.closeSent(code, string(reason))
	}
	if c := p.cfg.Counters; c != nil {
		p.outFrames(1)
		if h.Op.IsControl() {
			c.Out.control(h.Op, payload)
		} else {
			op, fin := dataFrame(&p.outOp, h)
			p.outMessage(op, len(payload), fin)
		}
	}
	return p.enc().AppendFrame(dst, h, payload), nil
}

// AppendPing appends a ping with the given payload (at most 125 bytes).
func (p *Protocol) AppendPing(dst []byte, payload []byte) ([]byte, error) {
	if len(payload) > frame.MaxControlPayload {
		return dst, frame.ErrControlTooLong
	}
	if c := p.cfg.Counters; c != nil {
		p.outFrames(1)
		c.Out.Pings.Add(1)
	}
	return p.enc().AppendFrame(dst, frame.Header{Fin: true, Op: frame.OpPing}, payload), nil
}

// AppendClose appends a close frame with code and reason and moves the
// close handshake on. Use frame.CloseNoStatus with no reason for an empty
// close frame.
func (p *Protocol) AppendClose(dst []byte, code frame.CloseCode, reason string) ([]byte, error) {
	if p.sentClose {
		return dst, ErrCloseSent
	}
	var buf [frame.MaxControlPayload]byte
	payload, err := frame.AppendClose(buf[:0], code, reason)
	if err != nil {
		return dst, err
	}
	p.closeSent(code, reason)
	if c := p.cfg.Counters; c != nil {
		p.outFrames(1)
		c.Out.Close[CloseIndex(code)].Add(1)
	}
	return p.enc().AppendFrame(dst, frame.Header{Fin: true, Op: frame.OpClose}, payload), nil
}

func (p *Protocol) closeSent(code frame.CloseCode, reason string) {
	p.sentClose = true
	if !p.gotClose {
		p.closeCode, p.closeReason = code, reason
	}
	if p.state == StateCloseReceived {
		p.state = StateClosed
	} else if p.state == StateOpen {
		p.state = StateCloseSent
		p.marked = false // the close timer starts at the next Tick
	}
}

// CloseReason reports why the connection closed, once known: the code of
// the violation that failed it, else the peer's close code, else ours. ok is
// false while no close frame has been sent or received. A transport whose
// connection ended with ok == false reports frame.CloseAbnormal (1006).
func (p *Protocol) CloseReason() (code frame.CloseCode, reason string, ok bool) {
	if code, reason, ok := CloseFor(p.err); ok {
		return code, reason, true
	}
	switch {
	case p.gotClose:
		return p.closeCode, p.closeReason, true
	case p.sentClose:
		return p.closeCode, p.closeReason, true
	}
	return 0, "", false
}

// Tick runs the timers at time now: it appends a keepalive ping to dst when
// one is due, and fails the connection when a pong or the peer's close frame
// is overdue. ErrCloseTimeout leaves the state StateClosed; ErrPongTimeout
// also queues a close frame (1011) for AppendReplies.
func (p *Protocol) Tick(now time.Time, dst []byte) ([]byte, error) {
	if p.err != nil {
		return dst, p.err
	}
	if !p.marked {
		p.marked = true
		p.mark = now.Sub(epoch)
	}
	switch p.state {
	case StateCloseSent:
		if t := p.cfg.Timeout; t > 0 && now.Sub(epoch) >= p.mark+t {
			p.state = StateClosed
			p.err = ErrCloseTimeout
			if c := p.cfg.Counters; c != nil {
				c.CloseTimeouts.Add(1)
			}
			return dst, p.err
		}
	case StateOpen:
		if p.cfg.PingPeriod <= 0 {
			break
		}
		if p.awaiting {
			if t := p.cfg.Timeout; t > 0 && now.Sub(epoch) >= p.mark+t {
				if c := p.cfg.Counters; c != nil {
					c.PongTimeouts.Add(1)
				}
				return dst, p.fail(ErrPongTimeout)
			}
			break
		}
		if now.Sub(epoch) >= p.mark+p.cfg.PingPeriod {
			p.mark = now.Sub(epoch)
			var payload [8]byte
			binary.BigEndian.PutUint64(payload[:], uint64(p.mark))
			dst = p.enc().AppendFrame(dst, frame.Header{Fin: true, Op: frame.OpPing}, payload[:])
			if c := p.cfg.Counters; c != nil {
				p.outFrames(1)
				c.Out.Pings.Add(1)
			}
			p.awaiting = true
		}
	}
	return dst, nil
}

// Deadline returns when Tick must next run. ok is false when no timer is
// armed; a zero time with ok true means at once (a timer needs its start).
func (p *Protocol) Deadline() (t time.Time, ok bool) {
	if p.err != nil {
		return t, false
	}
	var wait time.Duration
	switch {
	case p.state == StateCloseSent:
		wait = p.cfg.Timeout
	case p.state == StateOpen && p.cfg.PingPeriod > 0:
		wait = p.cfg.PingPeriod
		if p.awaiting {
			wait = p.cfg.Timeout
		}
	}
	if wait <= 0 {
		return t, false
	}
	if !p.marked {
		return t, true
	}
	return epoch.Add(p.mark + wait), true
}

// DetachMessage hands over the pooled buffers that may hold the payload of
// the last EventMessage, so that it stays valid while Receive goes on (the
// payload may also point into the input given to Receive, which the caller
// owns). Give each non-nil buffer back with ReturnBuffer when done.
func (p *Protocol) DetachMessage() (bufs [3]*[]byte) {
	if st := p.in; st != nil {
		bufs[0], bufs[1] = st.dec.Detach(), st.asm.Detach()
		p.keep()
	}
	if p.ext != nil {
		bufs[2] = p.ext.detachIn()
	}
	return bufs
}

// ReturnLent gives back the pooled buffers that may hold the payload of the
// last EventMessage, which is invalid afterwards. Receive does it on its next
// call; a transport whose input has run out calls it, so that an idle
// connection holds no buffer.
func (p *Protocol) ReturnLent() {
	if st := p.in; st != nil {
		bufpool.Put(st.dec.Detach())
		bufpool.Put(st.asm.Detach())
		p.keep()
	}
	if p.ext != nil {
		p.ext.returnIn()
	}
}

// ReturnBuffer gives a buffer from DetachMessage back to the pool.
func ReturnBuffer(b *[]byte) { bufpool.Put(b) }

// failSend records that an extension panicked while encoding: its state
// is unknown, so no message may go through it again. The caller closes the
// connection (1011).
func (p *Protocol) failSend(err error) error {
	p.ext.sendErr = err
	return err
}

// Release hands pooled buffers back. Call it once the connection has ended.
// It returns a *PanicError when an extension's Release panicked.
func (p *Protocol) Release() error {
	if st := p.in; st != nil {
		st.release()
		p.in = nil
		inStates.Put(st)
	}
	p.released = true
	bufpool.Put(p.out)
	p.out = nil
	if p.ext != nil {
		return p.ext.release()
	}
	return nil
}
