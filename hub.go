package wskit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/wskit/wskit/codec"
	"github.com/wskit/wskit/frame"
	"github.com/wskit/wskit/internal/bufpool"
)

// Overflow says what a Hub does with a subscriber whose buffer is full, as
// Kotlin's BufferOverflow does for a SharedFlow.
type Overflow uint8

const (
	// OverflowSuspend makes Publish wait until every subscriber has room,
	// for at most HubOptions.Timeout: then nobody receives the message and
	// Publish fails with ErrPublishTimeout. It must not be used from Events
	// callbacks that run on the poll engine's loop (Options.Workers == 0):
	// the loop that should drain a subscriber would be the one waiting.
	OverflowSuspend Overflow = iota
	// OverflowDropOldest drops the oldest message the subscriber has not
	// yet been handed, to make room.
	OverflowDropOldest
	// OverflowDropLatest drops the new message for that subscriber.
	OverflowDropLatest
	// OverflowCloseTryAgain unsubscribes the subscriber and closes its
	// session with 1013 Try Again Later.
	OverflowCloseTryAgain
	// OverflowClosePolicy unsubscribes the subscriber and closes its
	// session with 1008 Policy Violation.
	OverflowClosePolicy
)

func (o Overflow) String() string {
	switch o {
	case OverflowSuspend:
		return "suspend"
	case OverflowDropOldest:
		return "drop oldest"
	case OverflowDropLatest:
		return "drop latest"
	case OverflowCloseTryAgain:
		return "close 1013"
	case OverflowClosePolicy:
		return "close 1008"
	}
	return fmt.Sprintf("Overflow(%d)", uint8(o))
}

// HubOptions configure a Hub. The zero value is Kotlin's
// MutableSharedFlow() with room for the network: no replay, a buffer of
// 256 messages per subscriber, and publishers that wait for it.
type HubOptions struct {
	// Replay is how many of the latest messages a new subscriber receives
	// first (SharedFlow's replay).
	Replay int
	// Buffer is how many more messages a subscriber may fall behind
	// (SharedFlow's extraBufferCapacity). A message goes to a subscriber's
	// connection at once while its queue of unwritten output is under the
	// session's Options.MaxQueue; past that the hub holds up to
	// Replay+Buffer messages for it and hands them over once the queue has
	// been written. Overflow applies when those are full. 0 means 256.
	Buffer int
	// Overflow says what happens when a subscriber's buffer is full.
	Overflow Overflow
	// Timeout bounds the wait of Publish under OverflowSuspend; 0 means
	// 15 s, and a negative value leaves only the context's bound.
	Timeout time.Duration
	// Converter encodes values for PublishValue; nil means JSON.
	Converter Converter
}

// Errors of a Hub.
var (
	// ErrHubClosed is returned by a Hub after Close.
	ErrHubClosed = errors.New("wskit: hub closed")
	// ErrPublishTimeout is returned by Publish under OverflowSuspend when a
	// subscriber had no room within HubOptions.Timeout.
	ErrPublishTimeout = errors.New("wskit: publish timed out waiting for a slow subscriber")
	// ErrSlowSubscriber ends a session that a Hub closed under
	// OverflowCloseTryAgain or OverflowClosePolicy.
	ErrSlowSubscriber = errors.New("wskit: subscriber too slow for its hub")
	// ErrSubscribed is returned when a session subscribes twice.
	ErrSubscribed = errors.New("wskit: session already subscribed to this hub")
)

// defaultHubBuffer is HubOptions.Buffer's default, as in the chat example of
// gorilla/websocket.
const defaultHubBuffer = 256

// maxSharings is how many different encodings a Hub shares among its
// subscribers (such as plain frames and permessage-deflate with two window
// sizes); sessions beyond them have each message encoded for them alone.
const maxSharings = 4

// Hub is a broadcast: sessions subscribe, anyone publishes, and every
// subscriber receives every message in publish order (Ktor's SharedFlow
// recipe). A message is framed once, compressed once per distinct set of
// permessage-deflate parameters, and the same bytes are queued to every
// subscriber without a copy; it goes back to the pool when the last one has
// written it.
//
// A Hub holds no goroutine and Publish makes no system call: it queues the
// message on each subscriber's connection, and the connection's event loop,
// or on the std engine a goroutine that runs only while output is waiting,
// writes everything queued in one system call. A subscriber whose peer does
// not read fills its connection's queue (Options.MaxQueue); then the hub
// holds messages back for it, and HubOptions.Overflow says what happens
// when those are too many. Under every policy but OverflowSuspend a slow or
// dead subscriber never holds up the others.
//
// A shared compressed message resets the compression context of a session
// that takes over its own, so that context buys little on a route whose
// sessions mostly receive broadcasts: ServerNoContextTakeover saves its
// memory there.
//
// A session leaves its hubs when it ends. All methods are safe for
// concurrent use.
type Hub struct {
	opts   HubOptions
	window uint64 // Replay + Buffer: the most a subscriber may hold
	topics *Topics
	name   string // in topics

	pub sync.Mutex // held by Publish: one message at a time, in order

	mu       sync.Mutex
	subs     []*subscription
	log      []*hubMsg // message seq is in log[seq%len(log)]
	seq      uint64    // the next message's number
	sharings []codec.Sharing
	users    [maxSharings]int // subscribers per sharing
	busy     []*subscription  // fanOut's: subscribers whose connection was being written
	closed   bool

	full    atomic.Int64 // subscribers whose buffer is full
	waiting atomic.Bool  // a publisher waits for room
	room    chan struct{}

	published, dropped, disconnected atomic.Uint64
}

// NewHub returns a Hub, or an error wrapping ErrInvalidOptions.
func NewHub(opts HubOptions) (*Hub, error) {
	switch {
	case opts.Replay < 0 || opts.Buffer < 0:
		return nil, fmt.Errorf("%w: hub replay and buffer must not be negative", ErrInvalidOptions)
	case opts.Overflow > OverflowClosePolicy:
		return nil, fmt.Errorf("%w: unknown hub overflow policy %d", ErrInvalidOptions, opts.Overflow)
	}
	if opts.Buffer == 0 {
		opts.Buffer = defaultHubBuffer
	}
	if opts.Timeout == 0 {
		opts.Timeout = 15 * time.Second
	}
	if opts.Converter == nil {
		opts.Converter = JSON{}
	}
	return &Hub{opts: opts, window: uint64(opts.Replay + opts.Buffer), room: make(chan struct{}, 1)}, nil
}

// Options returns the Hub's options, with defaults filled in.
func (h *Hub) Options() HubOptions { return h.opts }

// subscription is a session's place in a hub: the messages [next, end) are
// queued for it and not yet handed to its connection. All of it but idx is
// guarded by the session's output lock.
type subscription struct {
	h         *Hub
	s         *Session
	out       sessionConn
	sharing   int // index in h.sharings; -1: encoded for this session alone
	idx       int // in h.subs, under h.mu
	next, end uint64
	// held replaces [next, end) once OverflowDropLatest has dropped a
	// message for the subscriber: its messages would soon leave the log.
	held []*hubMsg
	gone bool
}

// size returns the number of messages queued for sub.
func (sub *subscription) size() uint64 { return sub.end - sub.next + uint64(len(sub.held)) }

// hold moves sub's messages out of the log into held.
func (sub *subscription) hold() {
	n := uint64(len(sub.h.log))
	for seq := sub.next; seq < sub.end; seq++ {
		sub.held = append(sub.held, sub.h.log[seq%n])
	}
	sub.next = sub.end
}

// hubMsg is a published message, shared by the subscribers that hold it.
type hubMsg struct {
	refs    atomic.Int32
	op      frame.Opcode
	payload *[]byte
	enc     [maxSharings]encoded
}

// encoded is a message encoded for one sharing.
type encoded struct {
	b   *[]byte
	rsv byte
}

var msgPool = sync.Pool{New: func() any { return new(hubMsg) }}

// Release drops a reference; the last one returns the buffers.
func (m *hubMsg) Release() {
	if m.refs.Add(-1) != 0 {
		return
	}
	bufpool.Put(m.payload)
	for i := range m.enc {
		bufpool.Put(m.enc[i].b)
	}
	*m = hubMsg{}
	msgPool.Put(m)
}

// encode makes m's encoding for sharing i, unless it exists. h.mu is held.
func (h *Hub) encode(m *hubMsg, i int) error {
	if m.enc[i].b != nil {
		return nil
	}
	sh := &h.sharings[i]
	var scratch [2]*[]byte
	b := bufpool.Get(len(*m.payload) + frame.MaxHeaderSize)
	out, rsv, err := sh.AppendMessage((*b)[:0], m.op, *m.payload, &scratch)
	for _, s := range scratch {
		codec.ReturnBuffer(s)
	}
	if err != nil {
		bufpool.Put(b)
		return err
	}
	if cap(out) != cap(*b) {
		// out grew past the pooled buffer (many fragments): move it back.
		bufpool.Put(b)
		b = bufpool.Get(len(out))
		out = append((*b)[:0], out...)
	}
	*b = out
	m.enc[i] = encoded{b: b, rsv: rsv}
	return nil
}

// Subscribe adds s to the hub: it receives the replayed messages, then every
// message published until it unsubscribes or ends.
func (h *Hub) Subscribe(s *Session) error {
	out := s.out()
	if wc := s.wsconn(); wc != nil {
		wc.SetSource((*hubSource)(s))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrHubClosed
	}
	out.Lock()
	over, twice := s.hubsOver, false
	for _, sub := range s.hubSubs {
		twice = twice || sub.h == h
	}
	sharing, ok := out.Protocol().Sharing()
	out.Unlock()
	switch {
	case over:
		return ErrClosed
	case twice:
		return ErrSubscribed
	}

	sub := &subscription{h: h, s: s, out: out, sharing: -1}
	if ok {
		sub.sharing = h.sharingIndex(sharing)
	}
	first := h.seq - min(h.seq, uint64(h.opts.Replay))
	if sub.sharing >= 0 {
		for seq := first; seq < h.seq; seq++ {
			if err := h.encode(h.log[seq%uint64(len(h.log))], sub.sharing); err != nil {
				return err
			}
		}
	}

	out.Lock()
	defer out.Unlock()
	if s.hubsOver {
		// The session ended meanwhile, and leaveHubs took its list of hubs
		// without this one.
		return ErrClosed
	}
	if sub.sharing >= 0 {
		h.users[sub.sharing]++
	}
	sub.idx = len(h.subs)
	h.subs = append(h.subs, sub)
	s.hubSubs = append(s.hubSubs, sub)
	sub.next, sub.end = first, h.seq
	for seq := first; seq < h.seq; seq++ {
		h.log[seq%uint64(len(h.log))].refs.Add(1)
	}
	if sub.next < sub.end {
		out.Refill()
	}
	return nil
}

// sharingIndex returns the index of sh among the hub's sharings, adding it
// if there is room; -1 if there is not. A sharing is never replaced: its
// encodings may still be queued on connections. h.mu is held.
func (h *Hub) sharingIndex(sh codec.Sharing) int {
	for i := range h.sharings {
		if h.sharings[i].Key == sh.Key {
			return i
		}
	}
	if len(h.sharings) == maxSharings {
		return -1
	}
	h.sharings = append(h.sharings, sh)
	return len(h.sharings) - 1
}

// Unsubscribe removes s from the hub. Messages not yet handed to its
// connection are dropped. It reports whether s was subscribed.
func (h *Hub) Unsubscribe(s *Session) bool {
	out := s.out()
	h.mu.Lock()
	var sub *subscription
	out.Lock()
	for _, x := range s.hubSubs {
		if x.h == h {
			sub = x
		}
	}
	out.Unlock()
	if sub == nil {
		h.mu.Unlock()
		return false
	}
	h.remove(sub)
	empty := len(h.subs) == 0
	h.mu.Unlock()
	if empty && h.topics != nil {
		h.topics.prune(h)
	}
	return true
}

// remove takes sub out of the hub and its session. h.mu is held.
func (h *Hub) remove(sub *subscription) {
	last := len(h.subs) - 1
	h.subs[sub.idx] = h.subs[last]
	h.subs[sub.idx].idx = sub.idx
	h.subs[last] = nil
	h.subs = h.subs[:last]
	if sub.sharing >= 0 {
		h.users[sub.sharing]--
	}
	out := sub.out
	out.Lock()
	if !sub.gone { // a closing policy dropped it already
		sub.drop()
	}
	subs := sub.s.hubSubs
	for i, x := range subs {
		if x == sub {
			subs[i] = subs[len(subs)-1]
			subs[len(subs)-1] = nil
			sub.s.hubSubs = subs[:len(subs)-1]
			break
		}
	}
	out.Unlock()
}

// drop releases the messages queued for sub and marks it gone. The
// session's output is locked.
func (sub *subscription) drop() {
	h := sub.h
	if sub.size() == h.window {
		h.roomMade()
	}
	for seq := sub.next; seq < sub.end; seq++ {
		h.log[seq%uint64(len(h.log))].Release()
	}
	for _, m := range sub.held {
		m.Release()
	}
	sub.next, sub.held = sub.end, nil
	sub.gone = true
}

// roomMade records that a full subscriber has room again.
func (h *Hub) roomMade() {
	if h.full.Add(-1) == 0 && h.waiting.Load() {
		select {
		case h.room <- struct{}{}:
		default:
		}
	}
}

// fill hands sub's queued messages to its connection. The session's output
// is locked.
func (sub *subscription) fill() {
	size := sub.size()
	if size == 0 {
		return
	}
	h := sub.h
	if size == h.window {
		h.roomMade()
	}
	for _, m := range sub.held {
		sub.handOver(m)
	}
	sub.held = nil
	n := uint64(len(h.log))
	for seq := sub.next; seq < sub.end; seq++ {
		sub.handOver(h.log[seq%n])
	}
	sub.next = sub.end
}

// handOver queues m on sub's connection, with the reference sub held.
func (sub *subscription) handOver(m *hubMsg) {
	out := sub.out
	if sub.sharing < 0 {
		out.AppendMessage(m.op, *m.payload)
		m.Release()
		return
	}
	e := &m.enc[sub.sharing]
	if out.Protocol().SentShared(e.rsv) != nil {
		m.Release() // closing: no message may follow our close frame
		return
	}
	out.QueueShared(e.b, m, len(*e.b)) // releases m when written or dropped
}

// hubSource is a Session as the Source of its wsconn.Conn.
type hubSource Session

// Fill implements wsconn.Source.
func (hs *hubSource) Fill() { (*Session)(hs).fillHubs() }

// fillHubs hands the messages of every hub the session is subscribed to to
// its connection. The session's output is locked.
func (s *Session) fillHubs() {
	for _, sub := range s.hubSubs {
		sub.fill()
	}
}

// leaveHubs unsubscribes an ending session from every hub.
func (s *Session) leaveHubs() {
	out := s.out()
	out.Lock()
	s.hubsOver = true
	subs := append([]*subscription(nil), s.hubSubs...)
	out.Unlock()
	for _, sub := range subs {
		h := sub.h
		h.mu.Lock()
		empty := false
		if !sub.gone {
			h.remove(sub)
			empty = len(h.subs) == 0
		}
		h.mu.Unlock()
		if empty && h.topics != nil {
			h.topics.prune(h)
		}
	}
}

// Publish sends a message of type t (Text or Binary) with payload p, which
// is copied, to every subscriber. Under OverflowSuspend it waits for room,
// within HubOptions.Timeout and ctx; the message then reaches every
// subscriber or none. A Text payload is not checked for UTF-8.
func (h *Hub) Publish(ctx context.Context, t MessageType, p []byte) error {
	if t != Text && t != Binary {
		return fmt.Errorf("wskit: publish of a %v message: only text and binary messages can be published", t)
	}
	h.pub.Lock()
	defer h.pub.Unlock()
	if h.opts.Overflow == OverflowSuspend {
		if err := h.awaitRoom(ctx); err != nil {
			return err
		}
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrHubClosed
	}
	if len(h.subs) == 0 && h.opts.Replay == 0 {
		h.mu.Unlock()
		h.published.Add(1)
		return nil
	}
	m := msgPool.Get().(*hubMsg)
	m.op = t
	m.payload = bufpool.Get(len(p))
	*m.payload = append((*m.payload)[:0], p...)
	for i := range h.sharings {
		if h.users[i] == 0 {
			continue
		}
		if err := h.encode(m, i); err != nil {
			h.mu.Unlock()
			m.refs.Store(1)
			m.Release()
			return fmt.Errorf("wskit: publish: %w", err)
		}
	}
	victims := h.fanOut(m)
	h.mu.Unlock()
	h.published.Add(1)
	for _, sub := range victims {
		h.disconnect(sub)
	}
	if len(victims) > 0 && h.topics != nil {
		h.topics.prune(h)
	}
	return nil
}

// fanOut queues m to every subscriber and returns those that overflowed
// under a closing policy, already removed. h.mu is held.
func (h *Hub) fanOut(m *hubMsg) (victims []*subscription) {
	if h.log == nil {
		h.log = make([]*hubMsg, h.window+1)
	}
	n := uint64(len(h.log))
	seq := h.seq
	h.seq++
	// The slot of seq-n is in no buffer, which holds at most n-1 messages.
	h.log[seq%n] = m
	keep := int32(1) // ours until the fan-out ends
	if h.opts.Replay > 0 {
		keep++ // the log's, while m is among the replayed
	}
	m.refs.Store(keep + int32(len(h.subs)))
	taken := int32(0)
	// A connection whose lock is taken is being written: it is served after
	// the others rather than waited for, so that the fan-out does not trail
	// the loop's writes and the messages meanwhile go out together.
	busy := h.busy[:0]
	for _, sub := range h.subs {
		if !sub.out.TryLock() {
			busy = append(busy, sub)
			continue
		}
		took, victim := h.offer(sub, m, seq)
		sub.out.Unlock()
		taken += took
		if victim {
			victims = append(victims, sub)
		}
	}
	for i, sub := range busy {
		sub.out.Lock()
		took, victim := h.offer(sub, m, seq)
		sub.out.Unlock()
		taken += took
		if victim {
			victims = append(victims, sub)
		}
		busy[i] = nil
	}
	h.busy = busy[:0]
	for _, sub := range victims {
		h.remove(sub)
	}
	if h.opts.Replay > 0 && seq >= uint64(h.opts.Replay) {
		h.log[(seq-uint64(h.opts.Replay))%n].Release() // no longer replayed
	}
	m.refs.Add(taken - int32(len(h.subs)+len(victims)))
	m.Release() // ours
	return victims
}

// offer queues message seq for sub, or applies the overflow policy; it
// reports whether sub took it and whether sub is to be disconnected. sub's
// output is locked.
func (h *Hub) offer(sub *subscription, m *hubMsg, seq uint64) (took int32, victim bool) {
	out := sub.out
	size := sub.size()
	if sub.end != seq {
		// Messages were dropped for sub (OverflowDropLatest): it has room
		// only once it has been handed all it holds.
		if size == 0 {
			sub.next, sub.end = seq, seq
		} else {
			size = h.window
		}
	}
	if size == 0 && out.Queued() < sub.s.opts.MaxQueue {
		// The connection takes it at once; the loop or the session's writer
		// writes it with whatever else is queued.
		sub.next, sub.end = seq+1, seq+1
		sub.handOver(m)
		out.Refill()
		return 1, false
	}
	if size == h.window {
		switch h.opts.Overflow {
		case OverflowDropLatest:
			if sub.next < sub.end {
				sub.hold() // the log moves on without it
			}
			h.dropped.Add(1)
			return 0, false
		case OverflowCloseTryAgain, OverflowClosePolicy:
			sub.drop()
			return 0, true
		default:
			// OverflowDropOldest; under OverflowSuspend Publish waited for
			// room, so this only follows a subscriber that came with a full
			// replay.
			h.log[sub.next%uint64(len(h.log))].Release()
			sub.next++
			h.dropped.Add(1)
			h.roomMade()
		}
	}
	sub.end = seq + 1
	if sub.end-sub.next == h.window {
		h.full.Add(1)
	}
	if sub.end-sub.next == 1 {
		out.Refill()
	}
	return 1, false
}

// awaitRoom waits until no subscriber's buffer is full.
func (h *Hub) awaitRoom(ctx context.Context) error {
	if h.full.Load() == 0 {
		return nil
	}
	var expired <-chan time.Time
	if h.opts.Timeout > 0 {
		t := time.NewTimer(h.opts.Timeout)
		defer t.Stop()
		expired = t.C
	}
	h.waiting.Store(true)
	defer h.waiting.Store(false)
	for h.full.Load() > 0 {
		select {
		case <-h.room:
		case <-ctx.Done():
			return ctx.Err()
		case <-expired:
			return ErrPublishTimeout
		}
	}
	return nil
}

// disconnect closes the session of a subscriber that overflowed.
func (h *Hub) disconnect(sub *subscription) {
	h.disconnected.Add(1)
	code, reason := CloseTryAgainLater, "too slow for the hub"
	if h.opts.Overflow == OverflowClosePolicy {
		code = ClosePolicyViolation
	}
	s := sub.s
	s.mu.Lock()
	if s.err == nil && !s.ended {
		s.err = ErrSlowSubscriber
	}
	s.mu.Unlock()
	if s.lc != nil {
		s.lc.WriteClose(code, reason)
		return
	}
	// A std session's writer may be stuck on the slow peer: do not wait.
	go s.out().WriteClose(code, reason)
}

// PublishText publishes a text message.
func (h *Hub) PublishText(ctx context.Context, text string) error {
	return h.Publish(ctx, Text, unsafe.Slice(unsafe.StringData(text), len(text)))
}

// PublishValue encodes v with the hub's Converter and publishes it (Ktor's
// sendSerialized, to every subscriber).
func (h *Hub) PublishValue(ctx context.Context, v any) error {
	t, p, err := h.opts.Converter.Marshal(v)
	if err != nil {
		return fmt.Errorf("wskit: encoding %T: %w", v, err)
	}
	return h.Publish(ctx, t, p)
}

// HubStats are a Hub's counters.
type HubStats struct {
	Subscribers  int
	Published    uint64 // messages published
	Dropped      uint64 // messages dropped for a subscriber (drop policies)
	Disconnected uint64 // subscribers closed by a closing policy
}

// Stats returns the hub's counters.
func (h *Hub) Stats() HubStats {
	h.mu.Lock()
	n := len(h.subs)
	h.mu.Unlock()
	return HubStats{Subscribers: n, Published: h.published.Load(), Dropped: h.dropped.Load(), Disconnected: h.disconnected.Load()}
}

// Subscribers returns the number of subscribers.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Close unsubscribes everyone and drops the replayed messages; the hub then
// refuses Subscribe and Publish with ErrHubClosed. Sessions stay open.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closeLocked()
}

func (h *Hub) closeLocked() {
	if h.closed {
		return
	}
	h.closed = true
	for len(h.subs) > 0 {
		h.remove(h.subs[len(h.subs)-1])
	}
	if h.opts.Replay > 0 && h.log != nil {
		for seq := h.seq - min(h.seq, uint64(h.opts.Replay)); seq < h.seq; seq++ {
			h.log[seq%uint64(len(h.log))].Release()
		}
	}
	clear(h.log)
}
