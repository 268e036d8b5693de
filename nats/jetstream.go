package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/wskit/wskit"
)

// Pull settings of the consumers that follow a topic: a heartbeat every
// second tells within a few seconds that the server is gone, and the
// consumer is then made again after its last message.
const (
	pullExpiry    = 10 * time.Second
	pullHeartbeat = 2 * time.Second
)

// consume follows subject with an ordered consumer, which delivers the
// stream's messages of the topic in the stream's order and, after a gap or
// the loss of the server, starts again after the last one it delivered.
// With replay, it starts with the newest replay messages kept: it reads
// the topic's kept messages from the first, which the stream's per-topic
// limit bounds, and skips all but those.
func (b *Broker) consume(s *subscription, subject string, replay int, deliver func(wskit.BrokerMessage)) error {
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	}
	if replay > 0 {
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.PublishTimeout)
	defer cancel()
	cons, err := b.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return err
	}
	skip := int64(-1) // messages to skip, once the first tells how many are kept
	handler := func(m jetstream.Msg) {
		meta, err := m.Metadata()
		if err != nil {
			b.consumerErrs.Add(1)
			b.log.Warn("NATS message without JetStream metadata", "subject", subject, "err", err)
			return
		}
		if skip < 0 {
			skip = max(0, int64(meta.NumPending)+1-int64(replay))
		}
		if replay > 0 && skip > 0 {
			skip--
			return
		}
		b.delivered.Add(1)
		deliver(wskit.BrokerMessage{Seq: meta.Sequence.Stream, Type: messageType(m.Headers()), Payload: m.Data()})
	}
	s.cc, err = cons.Consume(handler,
		jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			b.consumerErrs.Add(1)
			b.log.Debug("JetStream consumer: made again after its last message", "subject", subject, "err", err)
		}))
	return err
}

// historyBatch is how many messages History fetches at a time.
const historyBatch = 256

// History's waits before it asks again when no server answers: doubling
// from the first to the most.
const (
	historyRetryFirst = 25 * time.Millisecond
	historyRetryMost  = 400 * time.Millisecond
)

// KeepsHistory implements wskit.BrokerHistory: true in JetStream mode.
func (b *Broker) KeepsHistory() bool { return b.opts.Mode == JetStream }

// History implements wskit.BrokerHistory, in JetStream mode: it reads the
// topic's messages after the sequence after with an ordered consumer of
// its own, up to the newest when it starts. While no server answers for
// the stream (its replicas catching up, or electing a leader), it asks
// again until ctx ends.
func (b *Broker) History(ctx context.Context, topic string, after uint64, fn func(wskit.BrokerMessage) error) (bool, error) {
	if b.opts.Mode != JetStream {
		return false, errors.New("wskit/nats: core NATS keeps no history")
	}
	b.historyReads.Add(1)
	complete, err := b.historyRetrying(ctx, b.Subject(topic), after, fn)
	if err != nil {
		b.historyErrors.Add(1)
		if !b.nc.IsConnected() && !errors.Is(err, wskit.ErrBrokerUnavailable) {
			err = fmt.Errorf("%w: %w", wskit.ErrBrokerUnavailable, err)
		}
		return false, fmt.Errorf("wskit/nats: history of %s: %w", topic, err)
	}
	return complete, nil
}

// historyRetrying reads the history, asking again while no server answers
// for the stream: its replicas are catching up or electing a leader
// (JetStream's direct gets are answered only by replicas that are
// current). It stops with ctx, or once fn has had a message.
func (b *Broker) historyRetrying(ctx context.Context, subject string, after uint64, fn func(wskit.BrokerMessage) error) (bool, error) {
	wait := historyRetryFirst
	for {
		handed := false
		complete, err := b.history(ctx, subject, after, func(m wskit.BrokerMessage) error {
			handed = true
			return fn(m)
		})
		if err == nil || handed || !errors.Is(err, nats.ErrNoResponders) {
			return complete, err
		}
		b.log.Debug("JetStream history: no server answers for the stream yet", "subject", subject, "again_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, fmt.Errorf("%w: %w (%w)", wskit.ErrBrokerUnavailable, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, historyRetryMost)
	}
}

func (b *Broker) history(ctx context.Context, subject string, after uint64, fn func(wskit.BrokerMessage) error) (bool, error) {
	// Limits drop the oldest messages first: if message after is kept,
	// so is every later one.
	complete := false
	if m, err := b.stream.GetMsg(ctx, after); err == nil {
		complete = m.Subject == subject
	} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, err
	}
	last, err := b.stream.GetLastMsgForSubject(ctx, subject)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return complete, nil // the topic has nothing kept
	case err != nil:
		return false, err
	case last.Sequence <= after:
		return complete, nil
	}
	cons, err := b.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{subject},
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       after + 1,
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return false, err
	}
	defer func() {
		// An ordered consumer is ephemeral; delete it rather than wait.
		if name := cons.CachedInfo().Name; name != "" {
			dctx, cancel := context.WithTimeout(context.Background(), time.Second)
			b.stream.DeleteConsumer(dctx, name)
			cancel()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		batch, err := cons.FetchNoWait(historyBatch)
		if err != nil {
			return false, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				return false, err
			}
			if err := fn(wskit.BrokerMessage{Seq: meta.Sequence.Stream, Type: messageType(m.Headers()), Payload: m.Data()}); err != nil {
				return false, err
			}
			if meta.Sequence.Stream >= last.Sequence || meta.NumPending == 0 {
				return complete, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return false, err
		}
		if n == 0 {
			return complete, nil // what was newest went meanwhile
		}
	}
}
