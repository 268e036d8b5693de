package wskit

import (
	"context"
	"errors"
)

// Broker carries the messages of hubs between the servers (nodes) of a
// cluster, over a messaging system such as NATS: module
// github.com/wskit/wskit/nats implements it, and wskit itself depends on
// none. A hub given a broker (HubOptions.Broker) publishes through it, and
// fans out what it delivers to the hub's subscribers on this node, with the
// same encode-once path as a hub of its own: a message is framed and
// compressed once per node, not once per subscriber.
//
// A hub follows its topic only while it has subscribers on this node: it
// calls Subscribe when the first one comes and Unsubscribe on the
// BrokerSubscription when the last one leaves, so that a million rooms
// cost each node only the rooms its own sessions are in.
//
// A Broker must be safe for concurrent use.
type Broker interface {
	// Publish sends a message of type t (Text or Binary) to the topic's
	// hubs on every node, this one included: a hub delivers its own
	// publishes only when they come back from the broker, so that every
	// node sees the broker's order. p is not kept once Publish returns.
	Publish(ctx context.Context, topic string, t MessageType, p []byte) error
	// Subscribe calls deliver with the topic's messages, one call at a
	// time, in the broker's order, until the subscription is ended. When
	// the broker keeps messages (see BrokerHistory), delivery starts with
	// the newest replay of them that it keeps. deliver may block (under
	// OverflowSuspend it waits for slow subscribers); Payload is valid
	// only during the call. deliver may be called before Subscribe
	// returns.
	Subscribe(topic string, replay int, deliver func(BrokerMessage)) (BrokerSubscription, error)
}

// BrokerSubscription is a node's interest in a topic, as Broker.Subscribe
// returns it.
type BrokerSubscription interface {
	// Unsubscribe ends the delivery. A call of deliver under way may
	// still finish; the hub ignores what an ended subscription delivers.
	Unsubscribe() error
}

// BrokerHistory is implemented by a Broker that keeps each topic's messages
// in one order for every node (NATS JetStream), numbered by increasing
// sequences. Hubs then serve HubOptions.Replay from it on any node, and
// recover what a session missed (Hub.SubscribeAfter).
type BrokerHistory interface {
	Broker
	// KeepsHistory reports whether History serves: a broker may keep
	// history in one of its modes only (NATS JetStream, not core NATS).
	KeepsHistory() bool
	// History calls fn, in order, with the topic's kept messages whose
	// sequence is above after, up to the newest, and stops at fn's first
	// error, which it returns. It reports whether nothing after the
	// message after is missing: false when the broker's limits (of
	// messages, bytes or age) dropped some of them.
	History(ctx context.Context, topic string, after uint64, fn func(BrokerMessage) error) (complete bool, err error)
}

// BrokerMessage is a message as a Broker delivers it.
type BrokerMessage struct {
	// Seq is the message's sequence in its topic: it increases from one
	// message to the next, though not always by one (NATS JetStream
	// numbers a stream's messages, not a topic's). 0 means the broker
	// numbers nothing (core NATS).
	Seq     uint64
	Type    MessageType // Text or Binary, as published
	Payload []byte      // the message, owned by the receiver
}

// ErrBrokerUnavailable is wrapped by the errors a Broker returns while it
// cannot reach its messaging system.
var ErrBrokerUnavailable = errors.New("wskit: broker unavailable")
