// Package nats spreads wskit hubs over many servers (nodes) on NATS: a
// [Broker] implements [wskit.Broker] over a NATS connection, in one of two
// modes.
//
//   - [Core]: core NATS publish and subscribe. At most once, in each
//     publisher's order; a node that is away misses what was published
//     meanwhile, and nothing is kept.
//   - [JetStream]: every topic's messages go through one JetStream stream,
//     which gives them one order, the same for every member on every node,
//     and keeps them within its limits ([Options.MaxMsgsPerTopic],
//     [Options.MaxBytes], [Options.MaxAge]). HubOptions.Replay is then
//     served from the stream to a newcomer on any node, and a session that
//     comes back with the sequence of the last message it received gets
//     what it missed (wskit.Hub.SubscribeAfter), as far as those limits
//     keep it.
//
// # How a message flows
//
// A publish on any node goes to NATS, on the subject Prefix.<topic>; NATS
// hands it to every node that follows the topic, the publishing node
// included, and each node's hub frames it once and queues the same bytes
// to its own subscribers. A node follows a topic only while one of its
// sessions subscribes to it: with core NATS a subscription, with JetStream
// an ordered consumer (ephemeral, in memory, filtered to the topic's
// subject), which starts again from the last message it delivered when it
// sees a gap or loses the server.
//
// # Faults
//
// While NATS cannot be reached, core NATS publishes are buffered by the
// client up to its reconnect buffer (nats.ReconnectBufSize, 8 MiB by
// default) and then refused; JetStream publishes are refused at once (with
// [Options.AsyncPublish], a message already sent whose acknowledgement
// never comes is counted in [Stats.PublishErrors] and logged instead). The
// errors wrap [wskit.ErrBrokerUnavailable]. A node delivers nothing
// meanwhile, not even its own publishes: they have not been through NATS.
// Its sessions stay open. When NATS is back the client reconnects and
// subscribes again; core NATS lost what was published meanwhile, and each
// JetStream consumer starts again after the last message it delivered, so
// that its members receive what they missed, none twice. [Broker.Stats]
// and the broker's log (Options.Logger) show each of these events.
//
// A slow node slows nobody else: with core NATS the server drops what it
// cannot take in time (NATS's slow consumer, counted in
// [Stats.SlowConsumerDrops]) and with JetStream its consumer falls behind
// and catches up; on the node, the hub's overflow policy applies to its own
// subscribers.
package nats
