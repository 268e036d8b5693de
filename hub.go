package wskit

import (
	"context"
	"errors"
	"fmt"
	"math"
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

// String returns the policy's name, such as "suspend".
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
// 256 messages and 1 MiB per subscriber, and publishers that wait for it.
type HubOptions struct {
	// Replay is how many of the latest messages a new subscriber receives
	// first (SharedFlow's replay), as many of the newest of them as fit in
	// its SubscriberBytes.
	Replay int
	// Buffer is how many more messages a subscriber may fall behind
	// (SharedFlow's extraBufferCapacity). A message goes to a subscriber's
	// connection at once while its queue of unwritten output is under the
	// session's Options.MaxQueue; past that the hub holds up to
	// Replay+Buffer messages for it and hands them over once the queue has
	// been written. Overflow applies when those are full. 0 means 256.
	Buffer int
	// SubscriberBytes bounds the memory a subscriber keeps in use: the
	// messages held back for it and those its connection has not yet
	// written. A message counts all it holds: its copy of the payload,
	// each of its encodings, and its bookkeeping, so that an empty message
	// costs 440 to 700 bytes and one that inflated from a small compressed
	// frame costs what it inflated to. Overflow applies to a message that
	// would take the subscriber past the bound; one that holds nothing
	// still takes a message larger than it. 0 means 1 MiB, which holds
	// Buffer's 256 messages at 1 KiB each with their copies; a negative
	// value removes the bound.
	SubscriberBytes int
	// HubBytes bounds the memory of the messages the hub holds back for
	// its subscribers and keeps for Replay, each message counted once
	// however many subscribers hold it. When a message held back would
	// pass it, the replay first drops its oldest messages, and then
	// Overflow applies to each subscriber that would hold the message
	// back (OverflowDropOldest drops the oldest messages held back, for
	// everyone who holds them). 0 means 64 MiB: room for a message of the
	// default MaxMessageSize (16 MiB) with its copy and two encodings, or
	// for 64 subscribers lagging a full SubscriberBytes apart; a negative
	// value removes the bound.
	HubBytes int
	// Overflow says what happens when a subscriber's buffer is full, in
	// messages or in bytes.
	Overflow Overflow
	// Timeout bounds the wait of Publish under OverflowSuspend; 0 means
	// 15 s, and a negative value leaves only the context's bound.
	Timeout time.Duration
	// Converter encodes values for PublishValue; nil means JSON.
	Converter Converter
	// Broker, when set, spreads the hub over the nodes of a cluster (see
	// Broker): Publish goes through it, and every node fans out what it
	// delivers to its own subscribers. Topic names the hub there; a
	// Topics set names its hubs Topic followed by their name.
	Broker Broker
	Topic  string // the hub's name on the Broker
	// Stamp, when set, makes what subscribers receive of each message:
	// it appends it to dst from the message's sequence and payload p,
	// once per message on each node (the result is framed once, as p
	// would be). It is how a client learns the sequence of the last
	// message it received, to give it back when it comes again, to any
	// node (see Hub.SubscribeAfter): such as "17 hello", or
	// {"seq":17,"text":"hello"}. The sequence is the broker's
	// (BrokerMessage.Seq, 0 when it numbers nothing), or without a broker
	// the hub's count of the messages it fanned out. Stamp may run on
	// several goroutines at once (the history of a recovery is stamped
	// apart from the live messages), and p is valid only during the call.
	Stamp func(dst []byte, seq uint64, p []byte) []byte
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

// Defaults of HubOptions.SubscriberBytes and HubOptions.HubBytes.
const (
	defaultSubscriberBytes = 1 << 20
	defaultHubBytes        = 64 << 20
)

// unbounded stands for a byte bound that was removed: far above any sum of
// message sizes, and far from overflowing when one is added.
const unbounded = math.MaxInt64 / 4

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
// when those are too many, or take too much memory: HubOptions.Buffer
// bounds them in messages, HubOptions.SubscriberBytes bounds in bytes what
// a subscriber keeps in use, and HubOptions.HubBytes bounds in bytes what
// the hub holds back for everyone. Under every policy but OverflowSuspend a
// slow or dead subscriber never holds up the others.
//
// The most memory a hub's messages take is HubBytes plus SubscriberBytes
// and one message for each subscriber, each message counted with its
// encodings: the hub keeps a copy of the payload only while a replay or a
// subscriber encoded alone may need it.
//
// A shared compressed message resets the compression context of a session
// that takes over its own, so that context buys little on a route whose
// sessions mostly receive broadcasts: ServerNoContextTakeover saves its
// memory there.
//
// A session leaves its hubs when it ends. All methods are safe for
// concurrent use.
type Hub struct {
	opts     HubOptions
	window   uint64 // Replay + Buffer: the most a subscriber may hold
	subBytes int64  // the byte bounds, or unbounded
	hubBytes int64
	topics   *Topics
	name     string    // in topics
	topic    string    // on the broker
	msgs     sync.Pool // spare messages of this hub only: see floor

	pub   sync.Mutex // held by Publish: one message at a time, in order
	stamp []byte     // Stamp's output, under pub

	// join is held while the hub starts or ends its interest in the
	// topic on the broker (bsub), so that a Subscribe that starts it and
	// an Unsubscribe that ends it go one after the other.
	join sync.Mutex

	mu       sync.Mutex
	subs     []*subscription
	log      []*hubMsg // message seq is in log[seq%len(log)]
	seq      uint64    // the next message's number
	replayed uint64    // messages [replayed, seq) are kept for Replay
	sharings []codec.Sharing
	users    [maxSharings]int // subscribers per sharing
	unshared int              // subscribers encoded alone, who need payloads
	busy     []*subscription  // fanOut's: subscribers whose connection was being written
	// peak is at least what any subscriber keeps in use (see
	// subscription.load), so that OverflowSuspend looks at each one only
	// when a message might not fit.
	peak   int64
	closed bool
	// bsub is the hub's subscription on the broker while it has
	// subscribers; gen counts the subscriptions, so that what an ended
	// one still delivers is ignored; last is the sequence of the last
	// message it delivered.
	bsub BrokerSubscription
	gen  uint64
	last uint64

	held    atomic.Int64 // bytes of the messages held back or replayed, each once
	full    atomic.Int64 // subscribers whose buffer is full
	waiting atomic.Bool  // a publisher waits for room
	room    chan struct{}

	published, dropped, disconnected, timedOut atomic.Uint64
	brokerErrs, recovered, unrecovered         atomic.Uint64
}

// NewHub returns a Hub, or an error wrapping ErrInvalidOptions.
func NewHub(opts HubOptions) (*Hub, error) {
	switch {
	case opts.Replay < 0 || opts.Buffer < 0:
		return nil, fmt.Errorf("%w: hub replay and buffer must not be negative", ErrInvalidOptions)
	case opts.Overflow > OverflowClosePolicy:
		return nil, fmt.Errorf("%w: unknown hub overflow policy %d", ErrInvalidOptions, opts.Overflow)
	case opts.Topic != "" && opts.Broker == nil:
		return nil, fmt.Errorf("%w: a hub's topic names it on a broker, and it has none", ErrInvalidOptions)
	case opts.Topic == "" && opts.Broker != nil:
		return nil, fmt.Errorf("%w: a hub on a broker needs a topic", ErrInvalidOptions)
	}
	if opts.Buffer == 0 {
		opts.Buffer = defaultHubBuffer
	}
	if opts.SubscriberBytes == 0 {
		opts.SubscriberBytes = defaultSubscriberBytes
	}
	if opts.HubBytes == 0 {
		opts.HubBytes = defaultHubBytes
	}
	if opts.Timeout == 0 {
		opts.Timeout = 15 * time.Second
	}
	if opts.Converter == nil {
		opts.Converter = JSON{}
	}
	h := &Hub{
		opts: opts, window: uint64(opts.Replay + opts.Buffer), topic: opts.Topic,
		subBytes: bound(opts.SubscriberBytes), hubBytes: bound(opts.HubBytes),
		room: make(chan struct{}, 1),
	}
	h.msgs.New = func() any { return &hubMsg{h: h} }
	return h, nil
}

// bound returns a byte bound of HubOptions as the hub keeps it.
func bound(n int) int64 {
	if n < 0 {
		return unbounded
	}
	return int64(n)
}

// Options returns the Hub's options, with defaults filled in.
func (h *Hub) Options() HubOptions { return h.opts }

// subscription is a session's place in a hub: the messages [next, end) are
// queued for it and not yet handed to its connection. All of it but idx is
// guarded by the session's output lock.
type subscription struct {
	h         *Hub
	s         *Session
	sibling   *subscription // the session's next, under its output lock
	out       sessionConn
	sharing   int // index in h.sharings; -1: encoded for this session alone
	idx       int // in h.subs, under h.mu
	next, end uint64
	// held replaces [next, end) once OverflowDropLatest has dropped a
	// message for the subscriber: its messages would soon leave the log.
	held []*hubMsg
	// bytes is the cost of the messages queued for sub. A replayed message
	// may grow an encoding while queued, and cost more when it leaves than
	// when it came: bytes is then kept from going below 0, and is 0 again
	// once nothing is queued.
	bytes int64
	gone  bool
	// paused holds every message back while the hub fetches from the
	// broker what the session missed (SubscribeAfter); messages whose
	// sequence is skip or lower are not handed over, having been
	// received already.
	paused bool
	skip   uint64
}

// size returns the number of messages queued for sub.
func (sub *subscription) size() uint64 { return sub.end - sub.next + uint64(len(sub.held)) }

// load returns the memory sub keeps in use: its messages queued here and
// those its connection has not yet written.
func (sub *subscription) load() int64 { return sub.bytes + int64(sub.out.SharedSize()) }

// fits reports whether a message that costs size bytes may join load, the
// load of sub.
func (sub *subscription) fits(load, size int64) bool {
	return load == 0 || load+size <= sub.h.subBytes
}

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
	refs atomic.Int32
	// holders counts the subscribers that hold m back, and the replay.
	holders atomic.Int32
	h       *Hub
	// seq and size are set by Publish, under h.mu, and outlive m's release
	// (see floor). size is m's memory then, and late that of encodings made
	// afterwards for a replay.
	seq     uint64
	size    int64
	late    atomic.Int64
	pseq    uint64 // the sequence subscribers see (HubOptions.Stamp)
	op      frame.Opcode
	n       uint32  // the payload's length (at most 4 GiB), for the server's counters
	payload *[]byte // nil when nothing will encode or copy it again
	enc     [maxSharings]encoded
}

// encoded is a message encoded for one sharing.
type encoded struct {
	b   *[]byte
	rsv byte
}

// msgOverhead is what a message costs besides its buffers: itself, its
// slot in the log and in a held list, and a connection's record of it.
const msgOverhead = int64(unsafe.Sizeof(hubMsg{})) + 8 + 8 + 48

// cost returns the memory m holds, as last counted.
func (m *hubMsg) cost() int64 { return m.size + m.late.Load() }

// memory returns the bytes m holds.
func (m *hubMsg) memory() int64 {
	n := msgOverhead
	if m.payload != nil {
		n += int64(cap(*m.payload))
	}
	for _, e := range m.enc {
		if e.b != nil {
			n += int64(cap(*e.b))
		}
	}
	return n
}

// Release drops a reference; the last one returns the buffers.
func (m *hubMsg) Release() {
	if m.refs.Add(-1) != 0 {
		return
	}
	bufpool.Put(m.payload)
	m.payload = nil
	for i := range m.enc {
		bufpool.Put(m.enc[i].b)
		m.enc[i] = encoded{}
	}
	m.late.Store(0)
	m.h.msgs.Put(m)
}

// hold counts m as held back once more, in the hub's bytes the first time.
func (h *Hub) hold(m *hubMsg) {
	if m.holders.Add(1) == 1 {
		h.held.Add(m.cost())
	}
}

// unhold undoes hold. The caller still has its reference to m.
func (h *Hub) unhold(m *hubMsg) {
	if m.holders.Add(-1) == 0 {
		h.held.Add(-m.cost())
	}
}

// encode makes m's encoding of payload for sharing i, unless it exists, and
// returns the memory it took. h.mu is held.
func (h *Hub) encode(m *hubMsg, i int, payload []byte) (int64, error) {
	if m.enc[i].b != nil {
		return 0, nil
	}
	sh := &h.sharings[i]
	var scratch [2]*[]byte
	b := bufpool.Get(len(payload) + frame.MaxHeaderSize)
	out, rsv, err := sh.AppendMessage((*b)[:0], m.op, payload, &scratch)
	for _, s := range scratch {
		codec.ReturnBuffer(s)
	}
	if err != nil {
		bufpool.Put(b)
		return 0, err
	}
	if cap(out) != cap(*b) || (len(out) < cap(out)/2 && cap(out) > 4<<10) {
		// out grew past the pooled buffer (many fragments), or compression
		// left most of it unused: move it to a buffer of its size.
		fit := bufpool.Get(len(out))
		out = append((*fit)[:0], out...)
		bufpool.Put(b)
		b = fit
	}
	*b = out
	m.enc[i] = encoded{b: b, rsv: rsv}
	return int64(cap(out)), nil
}

// Subscribe adds s to the hub: it receives the replayed messages, then every
// message published until it unsubscribes or ends.
//
// With a Broker, the first subscriber on this node starts the hub's
// subscription on the broker, which may wait for it: on the poll engine,
// subscribe from a session's goroutine or with Options.Workers set rather
// than from a callback on the event loop.
func (h *Hub) Subscribe(s *Session) error {
	_, err := h.subscribe(context.Background(), s, 0, false)
	return err
}

// SubscribeAfter adds s to the hub as Subscribe does, but instead of the
// replay s receives first every message whose sequence is above seq: a
// client that comes back, to this node or another, with the sequence of
// the last message it received (see HubOptions.Stamp) gets what it missed,
// then every message published, none twice and none skipped. It reports
// whether s got all it missed.
//
// What it missed comes from the messages the hub keeps for Replay, or else
// from the broker's history (BrokerHistory), as far as its limits keep it;
// the newest of them that fit in HubOptions.SubscriberBytes. Messages
// published while the history is fetched are held back for s, up to
// HubOptions.Buffer and the byte bounds, past which Overflow applies. A
// hub whose broker keeps no history recovers only from its replay, and
// otherwise subscribes s with the replay and reports false. seq 0 asks for
// nothing: s is subscribed as by Subscribe, and SubscribeAfter reports
// true. ctx bounds the fetch of the history; when it fails, s is left
// unsubscribed and the error returned, so that the client can try again.
func (h *Hub) SubscribeAfter(ctx context.Context, s *Session, seq uint64) (recovered bool, err error) {
	return h.subscribe(ctx, s, seq, true)
}

// subscribe adds s; with recover, after the message after (see
// SubscribeAfter).
func (h *Hub) subscribe(ctx context.Context, s *Session, after uint64, recover bool) (bool, error) {
	recover = recover && after > 0
	if h.opts.Broker != nil {
		h.join.Lock()
		if err := h.follow(); err != nil {
			h.join.Unlock()
			h.unfollow()
			return false, err
		}
	}
	sub, recovered, err := h.add(s, after, recover)
	if h.opts.Broker != nil {
		h.join.Unlock()
	}
	if err != nil {
		h.unfollow()
		return false, err
	}
	if sub != nil && sub.paused {
		recovered, err = h.recoverFromBroker(ctx, sub, after)
	}
	if recover {
		if recovered {
			h.recovered.Add(1)
		} else {
			h.unrecovered.Add(1)
		}
	}
	return recovered || !recover, err
}

// add subscribes s, with the replay or, with recover, with the messages
// the hub keeps after the message after. It returns the subscription, and
// whether it recovered all s missed; a subscription still to recover from
// the broker's history is paused. With a broker, h.join is held.
func (h *Hub) add(s *Session, after uint64, recover bool) (*subscription, bool, error) {
	out := s.out()
	if wc := s.wsconn(); wc != nil {
		wc.SetSource((*hubSource)(s))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false, ErrHubClosed
	}
	out.Lock()
	over, twice := s.hubsOver, false
	for sub := s.hubSubs; sub != nil; sub = sub.sibling {
		twice = twice || sub.h == h
	}
	sharing, ok := out.Protocol().Sharing()
	out.Unlock()
	switch {
	case over:
		return nil, false, ErrClosed
	case twice:
		return nil, false, ErrSubscribed
	}

	sub := &subscription{h: h, s: s, out: out, sharing: -1}
	if ok {
		sub.sharing = h.sharingIndex(sharing)
	}
	n := uint64(len(h.log))
	recovered := false
	if recover {
		sub.skip = after
		switch {
		case h.last != 0 && after >= h.last:
			// It has seen all this node has: it takes the next message.
			recovered = true
		case h.last != 0 && h.opts.Replay > 0 && h.replayed < h.seq && h.log[h.replayed%n].pseq <= after+1:
			// The replay holds what it missed. (h.last is 0 while the
			// messages have no sequence, as core NATS delivers them.)
			recovered = true
		case h.history() != nil:
			sub.paused = true
		}
	}
	// The newest replayed messages that fit its bound (when recovering,
	// those after the message after), with their encoding for it.
	first := h.seq
	for h.opts.Replay > 0 && first > h.replayed && !sub.paused {
		m := h.log[(first-1)%n]
		if recovered && m.pseq <= after {
			break
		}
		if sub.sharing >= 0 {
			grown, err := h.encode(m, sub.sharing, *m.payload)
			if err != nil {
				return nil, false, err
			}
			// Replayed, so held: no other holder can make it the last.
			m.late.Add(grown)
			h.held.Add(grown)
		}
		if !sub.fits(sub.bytes, m.cost()) {
			recovered = false
			break
		}
		sub.bytes += m.cost()
		first--
	}

	out.Lock()
	defer out.Unlock()
	if s.hubsOver {
		// The session ended meanwhile, and leaveHubs took its list of hubs
		// without this one.
		return nil, false, ErrClosed
	}
	if sub.sharing >= 0 {
		h.users[sub.sharing]++
	} else {
		h.unshared++
	}
	sub.idx = len(h.subs)
	h.subs = append(h.subs, sub)
	sub.sibling, s.hubSubs = s.hubSubs, sub
	sub.next, sub.end = first, h.seq
	for seq := first; seq < h.seq; seq++ {
		m := h.log[seq%n]
		m.refs.Add(1)
		h.hold(m)
	}
	h.peak = max(h.peak, sub.load())
	if sub.next < sub.end {
		out.Refill()
	}
	h.trimReplay(0) // the new encodings may take the hub past its bytes
	return sub, recovered, nil
}

// history returns the hub's broker if it keeps history, else nil.
func (h *Hub) history() BrokerHistory {
	if bh, ok := h.opts.Broker.(BrokerHistory); ok && bh.KeepsHistory() {
		return bh
	}
	return nil
}

// histMsg is a message of a broker's history, as a recovering subscriber
// receives it.
type histMsg struct {
	seq uint64
	op  MessageType
	p   []byte
}

// recoverFromBroker hands a paused sub what it missed after the message
// after, from the broker's history, then what the hub held back for it
// meanwhile, and lets it go on. It reports whether sub missed nothing.
func (h *Hub) recoverFromBroker(ctx context.Context, sub *subscription, after uint64) (bool, error) {
	// The newest messages that fit in SubscriberBytes, as sub receives
	// them: stamped, and copied out of the broker's buffers.
	var msgs []histMsg
	var bytes int64
	trimmed := false
	complete, err := h.history().History(ctx, h.topic, after, func(m BrokerMessage) error {
		var p []byte
		if h.opts.Stamp != nil {
			p = h.opts.Stamp(nil, m.Seq, m.Payload)
		} else {
			p = append([]byte(nil), m.Payload...)
		}
		msgs = append(msgs, histMsg{seq: m.Seq, op: m.Type, p: p})
		bytes += int64(len(p)) + msgOverhead
		for len(msgs) > 1 && bytes > h.subBytes {
			bytes -= int64(len(msgs[0].p)) + msgOverhead
			msgs[0] = histMsg{}
			msgs = msgs[1:]
			trimmed = true
		}
		return nil
	})
	if err != nil {
		h.brokerErrs.Add(1)
		h.Unsubscribe(sub.s)
		return false, fmt.Errorf("wskit: recover from the broker: %w", err)
	}
	out := sub.out
	out.Lock()
	// Not between the fragments of a message a Writer is sending.
	if err := out.WaitHolding(ctx.Done()); err != nil {
		out.Unlock()
		h.Unsubscribe(sub.s)
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, err
	}
	defer out.Unlock()
	if sub.gone {
		return false, ErrClosed
	}
	for _, m := range msgs {
		if m.seq > sub.skip {
			out.AppendMessage(m.op, m.p)
			sub.skip = m.seq
		}
	}
	// What was held back and is not older than the history goes next.
	sub.paused = false
	out.Refill()
	return complete && !trimmed, nil
}

// follow starts the hub's subscription on the broker unless it runs.
// h.join is held.
func (h *Hub) follow() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrHubClosed
	}
	if h.bsub != nil {
		h.mu.Unlock()
		return nil
	}
	h.gen++
	gen := h.gen
	h.mu.Unlock()
	bs, err := h.opts.Broker.Subscribe(h.topic, h.opts.Replay, func(m BrokerMessage) { h.deliver(gen, m) })
	if err != nil {
		h.brokerErrs.Add(1)
		return fmt.Errorf("wskit: subscribe on the broker: %w", err)
	}
	h.mu.Lock()
	closed := h.closed
	if !closed {
		h.bsub = bs
	}
	h.mu.Unlock()
	if closed {
		bs.Unsubscribe()
		return ErrHubClosed
	}
	return nil
}

// unfollow ends the hub's subscription on the broker if the hub has no
// subscriber left on this node.
func (h *Hub) unfollow() {
	if h.opts.Broker == nil {
		return
	}
	h.join.Lock()
	defer h.join.Unlock()
	h.mu.Lock()
	var bs BrokerSubscription
	if len(h.subs) == 0 {
		bs = h.stopFollowing()
	}
	h.mu.Unlock()
	if bs != nil {
		bs.Unsubscribe()
	}
}

// stopFollowing forgets the hub's subscription on the broker, which it
// returns to be ended, and the messages it kept for Replay: without the
// subscription they would go stale. h.mu is held.
func (h *Hub) stopFollowing() BrokerSubscription {
	bs := h.bsub
	if bs == nil {
		return nil
	}
	h.bsub = nil
	h.gen++
	h.last = 0
	for h.opts.Replay > 0 && h.replayed < h.seq {
		h.dropReplayed()
	}
	return bs
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
	for x := s.hubSubs; x != nil; x = x.sibling {
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
	if empty {
		h.emptied()
	}
	return true
}

// emptied lets go of what a hub without subscribers on this node no longer
// needs: its topic of a Topics set, its subscription on the broker.
func (h *Hub) emptied() {
	if h.topics != nil {
		h.topics.prune(h)
	}
	h.unfollow()
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
	} else {
		h.unshared--
	}
	out := sub.out
	out.Lock()
	if !sub.gone { // a closing policy dropped it already
		sub.drop()
	}
	for p := &sub.s.hubSubs; *p != nil; p = &(*p).sibling {
		if *p == sub {
			*p, sub.sibling = sub.sibling, nil
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
		m := h.log[seq%uint64(len(h.log))]
		h.unhold(m)
		m.Release()
	}
	for _, m := range sub.held {
		h.unhold(m)
		m.Release()
	}
	sub.next, sub.held, sub.bytes = sub.end, nil, 0
	sub.gone = true
	h.wake()
}

// dropOldest drops the oldest message queued for sub, which is in the log.
// The session's output is locked.
func (sub *subscription) dropOldest() {
	h := sub.h
	m := h.log[sub.next%uint64(len(h.log))]
	sub.next++
	sub.bytes = max(0, sub.bytes-m.cost())
	h.unhold(m)
	m.Release()
	h.dropped.Add(1)
	sub.s.countHub(hubDroppedOldest)
}

// roomMade records that a full subscriber has room again.
func (h *Hub) roomMade() {
	if h.full.Add(-1) == 0 {
		h.wake()
	}
}

// wake tells a publisher waiting for room to look again.
func (h *Hub) wake() {
	if h.waiting.Load() {
		select {
		case h.room <- struct{}{}:
		default:
		}
	}
}

// fill hands sub's queued messages to its connection. The session's output
// is locked.
func (sub *subscription) fill() {
	h := sub.h
	if sub.paused {
		return // recoverFromBroker asks again
	}
	size := sub.size()
	if size == 0 {
		h.wake() // the connection has drained: a waiting publisher may go on
		return
	}
	if size == h.window {
		h.roomMade()
	}
	for _, m := range sub.held {
		h.unhold(m)
		sub.handOver(m)
	}
	sub.held = nil
	n := uint64(len(h.log))
	for seq := sub.next; seq < sub.end; seq++ {
		m := h.log[seq%n]
		h.unhold(m)
		sub.handOver(m)
	}
	sub.next, sub.bytes = sub.end, 0
	h.wake()
}

// handOver queues m on sub's connection, with the reference sub held.
func (sub *subscription) handOver(m *hubMsg) {
	out := sub.out
	if m.pseq != 0 && m.pseq <= sub.skip {
		m.Release() // the session received it before it came
		return
	}
	if sub.sharing < 0 {
		if out.AppendMessage(m.op, *m.payload) == nil {
			sub.s.countHub(hubDelivered)
		}
		m.Release()
		return
	}
	e := &m.enc[sub.sharing]
	if out.Protocol().SentShared(e.rsv) != nil {
		m.Release() // closing: no message may follow our close frame
		return
	}
	sub.s.countHub(hubDelivered)
	out.Protocol().CountShared(m.op, int(m.n), *e.b)
	out.QueueShared(e.b, m, int(m.cost())) // releases m when written or dropped
}

// hubSource is a Session as the Source of its wsconn.Conn.
type hubSource Session

// Fill implements wsconn.Source.
func (hs *hubSource) Fill() { (*Session)(hs).fillHubs() }

// fillHubs hands the messages of every hub the session is subscribed to to
// its connection. The session's output is locked.
func (s *Session) fillHubs() {
	for sub := s.hubSubs; sub != nil; sub = sub.sibling {
		sub.fill()
	}
}

// leaveHubs unsubscribes an ending session from every hub.
func (s *Session) leaveHubs() {
	out := s.out()
	out.Lock()
	s.hubsOver = true
	var subs []*subscription
	for sub := s.hubSubs; sub != nil; sub = sub.sibling {
		subs = append(subs, sub)
	}
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
		if empty {
			h.emptied()
		}
	}
}

// Publish sends a message of type t (Text or Binary) with payload p to
// every subscriber; p is not kept, and may be reused once Publish returns.
// Under OverflowSuspend it waits for room, within HubOptions.Timeout and
// ctx; the message then reaches every subscriber or none. A Text payload is
// not checked for UTF-8.
//
// With a Broker, Publish hands the message to the broker and returns its
// error, wrapped; the message reaches the subscribers of every node, this
// one included, when the broker delivers it, and the overflow policy
// applies then, on each node to its own subscribers: under
// OverflowSuspend a node's delivery waits for its slow subscribers, and a
// message they had no room for within Timeout reaches nobody on that node.
func (h *Hub) Publish(ctx context.Context, t MessageType, p []byte) error {
	if t != Text && t != Binary {
		return fmt.Errorf("wskit: publish of a %v message: only text and binary messages can be published", t)
	}
	if h.opts.Broker != nil {
		return h.publishOnBroker(ctx, t, p)
	}
	h.pub.Lock()
	defer h.pub.Unlock()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrHubClosed
	}
	return h.publishLocked(ctx, t, p, h.last+1)
}

// publishOnBroker publishes through the hub's broker.
func (h *Hub) publishOnBroker(ctx context.Context, t MessageType, p []byte) error {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return ErrHubClosed
	}
	if err := h.opts.Broker.Publish(ctx, h.topic, t, p); err != nil {
		h.brokerErrs.Add(1)
		return fmt.Errorf("wskit: publish on the broker: %w", err)
	}
	return nil
}

// deliver fans out a message the broker delivered to the hub's
// subscription number gen, unless that subscription has ended or the
// message came already.
func (h *Hub) deliver(gen uint64, bm BrokerMessage) {
	h.pub.Lock()
	defer h.pub.Unlock()
	h.mu.Lock()
	if h.closed || gen != h.gen || bm.Seq != 0 && bm.Seq <= h.last {
		h.mu.Unlock()
		return
	}
	if err := h.publishLocked(context.Background(), bm.Type, bm.Payload, bm.Seq); err != nil {
		h.dropped.Add(1)
	}
}

// maxStampKept is the largest buffer of HubOptions.Stamp the hub keeps for
// the next message.
const maxStampKept = 64 << 10

// publishLocked fans out message pseq (see hubMsg.pseq) on this node: h.pub
// and h.mu are held, and h.mu is let go.
func (h *Hub) publishLocked(ctx context.Context, t MessageType, p []byte, pseq uint64) error {
	if pseq != 0 {
		h.last = pseq
	}
	if len(h.subs) == 0 && h.opts.Replay == 0 {
		h.mu.Unlock()
		h.published.Add(1)
		return nil
	}
	if h.opts.Stamp != nil {
		h.stamp = h.opts.Stamp(h.stamp[:0], pseq, p)
		p = h.stamp
		if cap(h.stamp) > maxStampKept {
			h.stamp = nil // p stays valid: prepare copies it
		}
	}
	m := h.msgs.Get().(*hubMsg)
	m.op, m.n = t, uint32(min(uint64(len(p)), math.MaxUint32))
	m.pseq = pseq
	var err error
	if h.opts.Overflow == OverflowSuspend {
		err = h.awaitRoom(ctx, m, p)
	} else {
		_, err = h.makeRoom(m, p)
	}
	if err != nil {
		h.mu.Unlock()
		m.refs.Store(1)
		m.Release()
		if err == ErrPublishTimeout {
			h.timedOut.Add(1)
		}
		return err
	}
	victims := h.fanOut(m)
	h.mu.Unlock()
	h.published.Add(1)
	for _, sub := range victims {
		h.disconnect(sub)
	}
	if len(victims) > 0 {
		h.emptied()
	}
	return nil
}

// prepare copies p into m if the hub may need it later, encodes it for
// every sharing in use, and sets m's size. It may run again on the same m
// after a wait, for the subscribers that came meanwhile. h.mu is held.
func (h *Hub) prepare(m *hubMsg, p []byte) error {
	if m.payload == nil && (h.opts.Replay > 0 || h.unshared > 0) {
		m.payload = bufpool.Get(len(p))
		*m.payload = append((*m.payload)[:0], p...)
	}
	for i := range h.sharings {
		if h.users[i] > 0 {
			if _, err := h.encode(m, i, p); err != nil {
				return fmt.Errorf("wskit: publish: %w", err)
			}
		}
	}
	m.size = m.memory()
	return nil
}

// makeRoom prepares m, makes room for it in the replay, and reports
// whether it has room everywhere (see roomFor) under OverflowSuspend.
// h.mu is held.
func (h *Hub) makeRoom(m *hubMsg, p []byte) (bool, error) {
	if err := h.prepare(m, p); err != nil {
		return false, err
	}
	h.trimReplay(m.size)
	return h.opts.Overflow != OverflowSuspend || h.roomFor(m.size), nil
}

// trimReplay drops the oldest replayed messages until a message of size
// bytes held back fits in HubBytes. h.mu is held.
func (h *Hub) trimReplay(size int64) {
	for h.opts.Replay > 0 && h.replayed < h.seq {
		if held := h.held.Load(); held == 0 || held+size <= h.hubBytes {
			return
		}
		h.dropReplayed()
	}
}

// dropReplayed takes the oldest message out of the replay. h.mu is held.
func (h *Hub) dropReplayed() {
	m := h.log[h.replayed%uint64(len(h.log))]
	h.replayed++
	h.unhold(m)
	m.Release()
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
	m.seq = seq
	// The slot of seq-n is in no buffer, which holds at most n-1 messages.
	h.log[seq%n] = m
	// Whether the hub has room to hold m back; under OverflowSuspend,
	// Publish waited for it.
	held := h.held.Load()
	room := held == 0 || held+m.size <= h.hubBytes || h.opts.Overflow == OverflowSuspend
	var floor uint64
	if !room && h.opts.Overflow == OverflowDropOldest {
		floor, room = h.floor(seq, held+m.size-h.hubBytes), true
	}
	m.refs.Store(1 + int32(len(h.subs))) // ours until the fan-out ends, and the subscribers'
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
		took, victim := h.offer(sub, m, seq, room, floor)
		sub.out.Unlock()
		taken += took
		if victim {
			victims = append(victims, sub)
		}
	}
	for i, sub := range busy {
		sub.out.Lock()
		took, victim := h.offer(sub, m, seq, room, floor)
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
	if h.opts.Replay > 0 {
		h.replay(m, seq)
	}
	m.refs.Add(taken - int32(len(h.subs)+len(victims)))
	m.Release() // ours
	return victims
}

// replay keeps m, message seq, for later subscribers, if it fits: the
// oldest replayed message makes room for it. h.mu is held.
func (h *Hub) replay(m *hubMsg, seq uint64) {
	for h.replayed < seq && seq-h.replayed >= uint64(h.opts.Replay) {
		h.dropReplayed()
	}
	if held := h.held.Load(); m.holders.Load() == 0 && held > 0 && held+m.size > h.hubBytes {
		// It would pass HubBytes: nothing older may be replayed after it.
		for h.replayed < seq {
			h.dropReplayed()
		}
		h.replayed = seq + 1
		return
	}
	m.refs.Add(1)
	h.hold(m)
}

// floor returns the message number below which messages held back are
// dropped, for every subscriber, to free need bytes for message seq under
// OverflowDropOldest. h.mu is held.
func (h *Hub) floor(seq uint64, need int64) uint64 {
	n := uint64(len(h.log))
	floor := seq - min(seq, n-1)
	for s := floor; s < seq && need > 0; s++ {
		// A message of a slot may have been released meanwhile; it then
		// has no holder, or, back from the hub's pool, another number.
		m := h.log[s%n]
		if m == nil || m.seq != s || m.holders.Load() == 0 {
			continue
		}
		need -= m.cost()
		floor = s + 1
	}
	return floor
}

// offer queues message seq for sub, or applies the overflow policy; it
// reports whether sub took it and whether sub is to be disconnected. room
// says whether the hub may hold m back, and messages below floor are to be
// dropped. sub's output is locked.
func (h *Hub) offer(sub *subscription, m *hubMsg, seq uint64, room bool, floor uint64) (took int32, victim bool) {
	out := sub.out
	for sub.next < floor && sub.next < sub.end {
		if sub.size() == h.window {
			h.roomMade()
		}
		sub.dropOldest()
	}
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
	load := sub.load()
	fits := sub.fits(load, m.size)
	if size == 0 && fits && !sub.paused && !out.Holding() && out.Queued() < sub.s.opts.MaxQueue {
		// The connection takes it at once; the loop or the session's writer
		// writes it with whatever else is queued.
		sub.next, sub.end = seq+1, seq+1
		sub.handOver(m)
		out.Refill()
		h.peak = max(h.peak, load+m.size)
		return 1, false
	}
	if size == h.window || !fits || !room {
		switch h.opts.Overflow {
		case OverflowDropLatest:
			if sub.next < sub.end {
				sub.hold() // the log moves on without it
			}
			h.dropped.Add(1)
			sub.s.countHub(hubDroppedLatest)
			return 0, false
		case OverflowCloseTryAgain, OverflowClosePolicy:
			sub.drop()
			return 0, true
		}
		// OverflowDropOldest; under OverflowSuspend Publish waited for
		// room, so this only follows a subscriber that came with a full
		// replay, or whose connection took other hubs' messages meanwhile,
		// which may take it past its bytes.
		dropOldest := h.opts.Overflow == OverflowDropOldest
		if size == h.window && sub.next < sub.end {
			h.roomMade()
		}
		for sub.next < sub.end && (sub.size() >= h.window || dropOldest && !sub.fits(load, m.size)) {
			load -= h.log[sub.next%uint64(len(h.log))].cost()
			sub.dropOldest()
		}
		if dropOldest && !sub.fits(load, m.size) {
			// What its connection holds leaves no room.
			h.dropped.Add(1)
			sub.s.countHub(hubDroppedOldest)
			return 0, false
		}
		if sub.next == sub.end && !sub.paused && !out.Holding() && out.Queued() < sub.s.opts.MaxQueue {
			sub.next, sub.end = seq+1, seq+1
			sub.handOver(m)
			out.Refill()
			h.peak = max(h.peak, load+m.size)
			return 1, false
		}
	}
	sub.end = seq + 1
	sub.bytes += m.size
	h.hold(m)
	h.peak = max(h.peak, load+m.size)
	if sub.end-sub.next == h.window {
		h.full.Add(1)
	}
	if sub.end-sub.next == 1 {
		out.Refill()
	}
	return 1, false
}

// awaitRoom prepares m and waits until the hub and every subscriber have
// room for it, under OverflowSuspend. h.mu is held, and let go while it
// waits.
func (h *Hub) awaitRoom(ctx context.Context, m *hubMsg, p []byte) error {
	if room, err := h.makeRoom(m, p); room || err != nil {
		return err
	}
	// Room made from now on is signalled; the loop looks once more first.
	h.waiting.Store(true)
	defer h.waiting.Store(false)
	var expired <-chan time.Time
	if h.opts.Timeout > 0 {
		t := time.NewTimer(h.opts.Timeout)
		defer t.Stop()
		expired = t.C
	}
	for {
		if room, err := h.makeRoom(m, p); room || err != nil {
			return err
		}
		h.mu.Unlock()
		var err error
		select {
		case <-h.room:
		case <-ctx.Done():
			err = ctx.Err()
		case <-expired:
			err = ErrPublishTimeout
		}
		h.mu.Lock()
		switch {
		case h.closed:
			return ErrHubClosed
		case err != nil:
			return err
		}
	}
}

// roomFor reports whether a message of size bytes fits: no subscriber's
// buffer is full, the hub can hold it back, and it fits each subscriber's
// bound. Those it does not fit are asked to fill, so that their connection
// tells when it has drained. h.mu is held.
func (h *Hub) roomFor(size int64) bool {
	if h.full.Load() > 0 {
		return false
	}
	if held := h.held.Load(); held > 0 && held+size > h.hubBytes {
		return false
	}
	if h.peak+size <= h.subBytes {
		return true
	}
	room, peak := true, int64(0)
	for _, sub := range h.subs {
		sub.out.Lock()
		load := sub.load()
		if load > 0 && load+size > h.subBytes {
			room = false
			sub.out.Refill()
		}
		peak = max(peak, load)
		sub.out.Unlock()
	}
	h.peak = peak
	return room
}

// disconnect closes the session of a subscriber that overflowed.
func (h *Hub) disconnect(sub *subscription) {
	h.disconnected.Add(1)
	code, reason := CloseTryAgainLater, "too slow for the hub"
	if h.opts.Overflow == OverflowClosePolicy {
		code = ClosePolicyViolation
		sub.s.countHub(hubClosedPolicy)
	} else {
		sub.s.countHub(hubClosedTryAgain)
	}
	s := sub.s
	s.mu.Lock()
	s.recordCause(ErrSlowSubscriber)
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
	t, p, err := marshal(h.opts.Converter, v)
	if err != nil {
		return err
	}
	return h.Publish(ctx, t, p)
}

// HubStats are a Hub's counters. What hubs do to a server's sessions is
// also counted in the server's Stats (Stats.Hubs), on the sessions' side,
// whatever hub it was.
type HubStats struct {
	Subscribers int // subscribed now
	// Published counts the messages published; with a Broker, those the
	// broker delivered and the hub fanned out on this node.
	Published    uint64
	Dropped      uint64 // messages dropped for a subscriber (drop policies)
	Disconnected uint64 // subscribers closed by a closing policy
	// HeldBytes is the memory of the messages held back for subscribers
	// or kept for replay, each counted once: what HubOptions.HubBytes
	// bounds.
	HeldBytes int64
	// Sequence is that of the last message the hub fanned out on this
	// node (see HubOptions.Stamp).
	Sequence uint64
	// With a Broker: the hub's publishes and subscriptions it refused,
	// and the failed fetches of its history.
	BrokerErrors uint64
	// Subscriptions of SubscribeAfter that got all they missed, and those
	// that did not.
	Recovered, Unrecovered uint64
	// PublishTimeouts counts messages that reached nobody because Publish
	// timed out under OverflowSuspend (ErrPublishTimeout).
	PublishTimeouts uint64
}

// Stats returns the hub's counters.
func (h *Hub) Stats() HubStats {
	h.mu.Lock()
	n, last := len(h.subs), h.last
	h.mu.Unlock()
	return HubStats{
		Subscribers: n, Published: h.published.Load(), Dropped: h.dropped.Load(),
		Disconnected: h.disconnected.Load(), HeldBytes: h.held.Load(), Sequence: last,
		BrokerErrors: h.brokerErrs.Load(), Recovered: h.recovered.Load(), Unrecovered: h.unrecovered.Load(),
		PublishTimeouts: h.timedOut.Load(),
	}
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
	bs := h.closeLocked()
	h.mu.Unlock()
	if bs != nil {
		bs.Unsubscribe()
	}
}

// closeLocked closes the hub, and returns its subscription on the broker,
// if any, to be ended once h.mu is let go.
func (h *Hub) closeLocked() BrokerSubscription {
	if h.closed {
		return nil
	}
	bs := h.stopFollowing()
	h.closed = true
	for len(h.subs) > 0 {
		h.remove(h.subs[len(h.subs)-1])
	}
	if h.opts.Replay > 0 {
		for h.replayed < h.seq {
			h.dropReplayed()
		}
	}
	clear(h.log)
	h.wake()
	return bs
}
