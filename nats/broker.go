package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/wskit/wskit"
)

// Mode is how a Broker uses NATS.
type Mode uint8

const (
	// Core publishes and subscribes with core NATS: at most once, in
	// each publisher's order, nothing kept.
	Core Mode = iota
	// JetStream stores every message in a stream: one order for every
	// node, replay and recovery from the stream.
	JetStream
)

// String returns the mode's name, as ParseMode takes it.
func (m Mode) String() string {
	switch m {
	case Core:
		return "core"
	case JetStream:
		return "jetstream"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode returns the Mode named "core" or "jetstream".
func ParseMode(name string) (Mode, error) {
	switch strings.ToLower(name) {
	case "core":
		return Core, nil
	case "jetstream", "js":
		return JetStream, nil
	}
	return 0, fmt.Errorf("unknown NATS mode %q: want core or jetstream", name)
}

// Options configure a Broker. The zero value uses core NATS on subjects
// under "wskit".
type Options struct {
	// Mode is Core (the zero value) or JetStream.
	Mode Mode
	// Prefix is the first token of every subject: a topic goes to
	// Prefix.<topic>, its name escaped into one token. "" means "wskit".
	Prefix string

	// JetStream only. Stream is the stream's name, made or updated by
	// New to take every subject under Prefix; "" means "WSKIT". The
	// stream keeps at most MaxMsgsPerTopic messages of each topic (0
	// means 1000, -1 no bound), MaxBytes bytes for all topics together
	// (0 means 1 GiB, -1 no bound; JetStream bounds no topic's bytes
	// alone), and messages no older than MaxAge (0 means 24 hours, -1
	// no bound). Memory keeps the stream in memory rather than in files:
	// it is then lost when its servers restart. Replicas is the number of
	// servers of a JetStream cluster that hold it (0 means 1).
	Stream          string
	MaxMsgsPerTopic int64
	MaxBytes        int64
	MaxAge          time.Duration
	Memory          bool
	Replicas        int
	// PublishTimeout bounds the wait of a JetStream publish for the
	// stream's acknowledgement, besides the context of Publish; 0 means
	// 5 s.
	PublishTimeout time.Duration
	// AsyncPublish makes a JetStream Publish return once the message is
	// on its way, without its acknowledgement, so that one publisher's
	// messages travel together: NATS and the stream then take several per
	// system call. At most MaxPending (0 means 4096) wait for theirs;
	// past that Publish waits up to 200 ms for room, then fails with
	// ErrBrokerUnavailable. A message the stream does not acknowledge is
	// counted in Stats.PublishErrors and logged, not returned: the
	// publisher no longer learns of it.
	AsyncPublish bool
	MaxPending   int

	// Core NATS only. PendingMsgs and PendingBytes bound what a topic's
	// subscription on this node may hold before NATS drops messages for
	// it (a slow consumer); 0 keeps nats.go's defaults (512 Ki messages,
	// 64 MiB).
	PendingMsgs, PendingBytes int

	// Logger receives the broker's events: connection lost and back,
	// slow consumers, failures to deliver; nil means slog.Default().
	Logger *slog.Logger
}

// Defaults of Options.
const (
	defaultPrefix          = "wskit"
	defaultStream          = "WSKIT"
	defaultMaxMsgsPerTopic = 1000
	defaultMaxBytes        = 1 << 30
	defaultMaxAge          = 24 * time.Hour
	defaultPublishTimeout  = 5 * time.Second
	defaultMaxPending      = 4096
)

// Broker is a wskit.Broker on a NATS connection; in JetStream mode it is a
// wskit.BrokerHistory too. Give it to hubs in HubOptions.Broker. It is
// safe for concurrent use.
type Broker struct {
	nc     *nats.Conn
	opts   Options
	log    *slog.Logger
	js     jetstream.JetStream
	stream jetstream.Stream
	status chan nats.Status
	done   chan struct{}
	owns   bool // the connection, made by Connect

	mu   sync.Mutex
	subs map[*subscription]struct{}

	published, publishErrs, delivered      atomic.Uint64
	disconnects, reconnects, consumerErrs  atomic.Uint64
	slowDrops, historyReads, historyErrors atomic.Uint64
}

// Stats are a Broker's counters.
type Stats struct {
	Mode      Mode // the broker's
	Connected bool // to NATS now
	// Topics is the number of topics this node follows.
	Topics        int
	Published     uint64 // messages published
	PublishErrors uint64 // publishes refused or not acknowledged
	Delivered     uint64 // messages delivered to this node's hubs
	// Disconnects and Reconnects count the times the connection to NATS
	// was lost and made again.
	Disconnects, Reconnects uint64
	// SlowConsumerDrops counts the messages NATS dropped for this node
	// because a topic's subscription fell too far behind (core NATS).
	SlowConsumerDrops uint64
	// ConsumerErrors counts the errors of JetStream consumers (each is
	// then made again after the last message it delivered).
	ConsumerErrors uint64
	// HistoryReads counts the fetches of a topic's history for a
	// recovery; HistoryErrors those that failed.
	HistoryReads, HistoryErrors uint64
}

// New returns a Broker on nc, which it does not own: closing the Broker
// leaves nc open. In JetStream mode it makes the stream, or updates it to
// opts, waiting within ctx for a JetStream cluster that is still electing
// its leader. nc should reconnect forever (nats.MaxReconnects(-1)), as
// Connect's does, for the broker to outlive NATS restarts.
func New(ctx context.Context, nc *nats.Conn, opts Options) (*Broker, error) {
	if opts.Prefix == "" {
		opts.Prefix = defaultPrefix
	}
	if opts.Stream == "" {
		opts.Stream = defaultStream
	}
	if opts.MaxMsgsPerTopic == 0 {
		opts.MaxMsgsPerTopic = defaultMaxMsgsPerTopic
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = defaultMaxBytes
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = defaultMaxAge
	}
	if opts.MaxAge < 0 {
		opts.MaxAge = 0 // JetStream's "no bound"
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.PublishTimeout == 0 {
		opts.PublishTimeout = defaultPublishTimeout
	}
	if opts.MaxPending == 0 {
		opts.MaxPending = defaultMaxPending
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	switch {
	case opts.Mode > JetStream:
		return nil, fmt.Errorf("wskit/nats: unknown mode %d", opts.Mode)
	case strings.ContainsAny(opts.Prefix, " \t\r\n*>") || strings.HasPrefix(opts.Prefix, ".") || strings.HasSuffix(opts.Prefix, "."):
		return nil, fmt.Errorf("wskit/nats: prefix %q is not a subject", opts.Prefix)
	}
	b := &Broker{
		nc: nc, opts: opts, log: opts.Logger.With("broker", "nats", "mode", opts.Mode.String()),
		subs: make(map[*subscription]struct{}), done: make(chan struct{}),
	}
	if opts.Mode == JetStream {
		if err := b.makeStream(ctx); err != nil {
			return nil, err
		}
	}
	b.status = nc.StatusChanged(nats.CONNECTED, nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED)
	go b.watch()
	return b, nil
}

// Connect connects to the NATS servers at url (a comma-separated list) and
// returns a Broker that owns the connection, which reconnects forever.
// Options given after opts add to or override the connection's.
func Connect(ctx context.Context, url string, opts Options, connOpts ...nats.Option) (*Broker, error) {
	var b *Broker
	var ready atomic.Bool // b is set
	o := []nats.Option{
		nats.Name("wskit"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if ready.Load() {
				b.asyncError(sub, err)
			}
		}),
	}
	nc, err := nats.Connect(url, append(o, connOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("wskit/nats: connect to %s: %w", url, err)
	}
	b, err = New(ctx, nc, opts)
	if err != nil {
		nc.Close()
		return nil, err
	}
	b.owns = true
	ready.Store(true)
	return b, nil
}

// asyncError logs an error that NATS reported on its own, such as a slow
// consumer. Give it to a connection made elsewhere with nats.ErrorHandler.
func (b *Broker) asyncError(sub *nats.Subscription, err error) {
	attrs := []any{"err", err}
	if sub != nil {
		attrs = append(attrs, "subject", sub.Subject)
	}
	if errors.Is(err, nats.ErrSlowConsumer) {
		b.log.Warn("NATS slow consumer: this node falls behind a topic, and NATS drops messages for it", attrs...)
		return
	}
	b.log.Warn("NATS error", attrs...)
}

// makeStream makes the stream or updates it to the options, retrying while
// JetStream is not yet available (a cluster electing its leader).
func (b *Broker) makeStream(ctx context.Context) error {
	js, err := jetstream.New(b.nc,
		jetstream.WithPublishAsyncMaxPending(b.opts.MaxPending),
		jetstream.WithPublishAsyncTimeout(b.opts.PublishTimeout),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			b.publishErrs.Add(1)
			b.log.Warn("JetStream did not acknowledge a message published without waiting", "subject", m.Subject, "err", err)
		}))
	if err != nil {
		return fmt.Errorf("wskit/nats: %w", err)
	}
	b.js = js
	cfg := jetstream.StreamConfig{
		Name:              b.opts.Stream,
		Description:       "wskit hubs: one subject per topic",
		Subjects:          []string{b.opts.Prefix + ".>"},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: b.opts.MaxMsgsPerTopic,
		MaxBytes:          b.opts.MaxBytes,
		MaxAge:            b.opts.MaxAge,
		MaxMsgs:           -1,
		Storage:           jetstream.FileStorage,
		Replicas:          b.opts.Replicas,
		AllowDirect:       true,
	}
	if b.opts.Memory {
		cfg.Storage = jetstream.MemoryStorage
	}
	for {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		b.stream, err = js.CreateOrUpdateStream(tctx, cfg)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wskit/nats: make stream %s: %w", b.opts.Stream, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// watch logs and counts the connection's changes of state.
func (b *Broker) watch() {
	down := false
	for {
		select {
		case <-b.done:
			return
		case st := <-b.status:
			switch st {
			case nats.DISCONNECTED, nats.RECONNECTING:
				if down {
					continue
				}
				down = true
				b.disconnects.Add(1)
				b.log.Warn("NATS connection lost: publishes fail or are buffered, nothing is delivered", "status", st.String())
			case nats.CONNECTED:
				if !down {
					continue
				}
				down = false
				b.reconnects.Add(1)
				b.log.Info("NATS connection back: topics are followed again", "server", b.nc.ConnectedUrlRedacted())
			case nats.CLOSED:
				b.log.Warn("NATS connection closed")
				return
			}
		}
	}
}

// Close ends the broker's subscriptions, and its connection if Connect
// made it. Hubs that use it should be closed first.
func (b *Broker) Close() {
	b.mu.Lock()
	subs := make([]*subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		s.Unsubscribe()
	}
	select {
	case <-b.done:
	default:
		close(b.done)
		b.nc.RemoveStatusListener(b.status)
	}
	if b.owns {
		b.nc.Close()
	}
}

// Conn returns the broker's NATS connection.
func (b *Broker) Conn() *nats.Conn { return b.nc }

// Options returns the broker's options, with defaults filled in.
func (b *Broker) Options() Options { return b.opts }

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	topics := len(b.subs)
	var drops uint64
	for s := range b.subs {
		if s.sub != nil {
			if n, err := s.sub.Dropped(); err == nil {
				drops += uint64(n)
			}
		}
	}
	b.mu.Unlock()
	return Stats{
		Mode: b.opts.Mode, Connected: b.nc.IsConnected(), Topics: topics,
		Published: b.published.Load(), PublishErrors: b.publishErrs.Load(), Delivered: b.delivered.Load(),
		Disconnects: b.disconnects.Load(), Reconnects: b.reconnects.Load(),
		SlowConsumerDrops: b.slowDrops.Load() + drops, ConsumerErrors: b.consumerErrs.Load(),
		HistoryReads: b.historyReads.Load(), HistoryErrors: b.historyErrors.Load(),
	}
}

// Subject returns the subject of a topic.
func (b *Broker) Subject(topic string) string { return b.opts.Prefix + "." + subjectToken(topic) }

// subjectToken escapes topic into one subject token: letters, digits, '-'
// and '_' stay, every other byte becomes %XX, and "" becomes "%".
func subjectToken(topic string) string {
	if topic == "" {
		return "%"
	}
	plain := true
	for i := 0; i < len(topic) && plain; i++ {
		plain = tokenByte(topic[i])
	}
	if plain {
		return topic
	}
	const hex = "0123456789ABCDEF"
	var sb strings.Builder
	for i := 0; i < len(topic); i++ {
		if c := topic[i]; tokenByte(c) {
			sb.WriteByte(c)
		} else {
			sb.WriteByte('%')
			sb.WriteByte(hex[c>>4])
			sb.WriteByte(hex[c&15])
		}
	}
	return sb.String()
}

func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// typeHeader marks a binary message; a text message has no header.
const typeHeader = "Wskit-Type"

var binaryHeader = nats.Header{typeHeader: []string{"binary"}}

// messageType returns the type a message was published with.
func messageType(h nats.Header) wskit.MessageType {
	if h != nil && h.Get(typeHeader) == "binary" {
		return wskit.Binary
	}
	return wskit.Text
}

// Publish implements wskit.Broker: see the package doc for what it does
// while NATS is away.
func (b *Broker) Publish(ctx context.Context, topic string, t wskit.MessageType, p []byte) error {
	msg := &nats.Msg{Subject: b.Subject(topic), Data: p}
	if t == wskit.Binary {
		msg.Header = binaryHeader
	}
	var err error
	if b.opts.Mode == JetStream {
		err = b.publishStream(ctx, msg)
	} else {
		err = b.nc.PublishMsg(msg)
		if err != nil && (errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, nats.ErrConnectionClosed)) {
			err = fmt.Errorf("%w: %w", wskit.ErrBrokerUnavailable, err)
		}
	}
	if err != nil {
		b.publishErrs.Add(1)
		return fmt.Errorf("wskit/nats: publish to %s: %w", msg.Subject, err)
	}
	b.published.Add(1)
	return nil
}

// publishStream publishes msg to the stream and waits for its
// acknowledgement; it fails at once while NATS is away.
func (b *Broker) publishStream(ctx context.Context, msg *nats.Msg) error {
	if !b.nc.IsConnected() {
		return fmt.Errorf("%w: not connected to NATS (%s)", wskit.ErrBrokerUnavailable, b.nc.Status())
	}
	if b.opts.AsyncPublish {
		// The future keeps msg for its retries: it gets a copy of p.
		msg.Data = append([]byte(nil), msg.Data...)
		_, err := b.js.PublishMsgAsync(msg)
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) || !b.nc.IsConnected() {
			err = fmt.Errorf("%w: %w", wskit.ErrBrokerUnavailable, err)
		}
		return err
	}
	lost := b.disconnects.Load()
	pctx, cancel := context.WithTimeout(ctx, b.opts.PublishTimeout)
	defer cancel()
	_, err := b.js.PublishMsg(pctx, msg)
	switch {
	case err == nil || ctx.Err() != nil:
		// The caller gave up.
	case !b.nc.IsConnected() || b.disconnects.Load() != lost,
		errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, context.DeadlineExceeded):
		// NATS went away meanwhile, or the stream does not answer (its
		// server is starting, or its cluster lost its quorum).
		err = fmt.Errorf("%w: %w", wskit.ErrBrokerUnavailable, err)
	}
	return err
}

// subscription is a node's interest in a topic: a core NATS subscription
// or a JetStream ordered consumer.
type subscription struct {
	b    *Broker
	sub  *nats.Subscription       // core
	cc   jetstream.ConsumeContext // JetStream
	once sync.Once
}

// Unsubscribe implements wskit.BrokerSubscription.
func (s *subscription) Unsubscribe() error {
	var err error
	s.once.Do(func() {
		s.b.mu.Lock()
		delete(s.b.subs, s)
		s.b.mu.Unlock()
		if s.sub != nil {
			if n, derr := s.sub.Dropped(); derr == nil {
				s.b.slowDrops.Add(uint64(n))
			}
			err = s.sub.Unsubscribe()
			if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
				err = nil // gone with the connection
			}
		}
		if s.cc != nil {
			s.cc.Stop()
		}
	})
	return err
}

// Subscribe implements wskit.Broker.
func (b *Broker) Subscribe(topic string, replay int, deliver func(wskit.BrokerMessage)) (wskit.BrokerSubscription, error) {
	s := &subscription{b: b}
	subject := b.Subject(topic)
	var err error
	if b.opts.Mode == JetStream {
		err = b.consume(s, subject, replay, deliver)
	} else {
		s.sub, err = b.nc.Subscribe(subject, func(m *nats.Msg) {
			b.delivered.Add(1)
			deliver(wskit.BrokerMessage{Type: messageType(m.Header), Payload: m.Data})
		})
		if err == nil && (b.opts.PendingMsgs != 0 || b.opts.PendingBytes != 0) {
			msgs, bytes := b.opts.PendingMsgs, b.opts.PendingBytes
			if msgs == 0 {
				msgs = nats.DefaultSubPendingMsgsLimit
			}
			if bytes == 0 {
				bytes = nats.DefaultSubPendingBytesLimit
			}
			err = s.sub.SetPendingLimits(msgs, bytes)
		}
		if err == nil {
			// Once the server has the subscription, whatever is published
			// reaches it. While NATS is away this fails, and the client
			// subscribes again when it is back.
			b.nc.FlushTimeout(b.opts.PublishTimeout)
		}
	}
	if err != nil {
		if s.sub != nil {
			s.sub.Unsubscribe()
		}
		return nil, fmt.Errorf("wskit/nats: follow %s: %w", subject, err)
	}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s, nil
}

var _ wskit.BrokerHistory = (*Broker)(nil)
