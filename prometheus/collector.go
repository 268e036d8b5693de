// Package prometheus exports a wskit server's counters (wskit.Stats) as
// Prometheus metrics, through github.com/prometheus/client_golang. It is a
// module of its own so that the wskit module itself depends on no metrics
// library: import it as
//
//	import wsprom "github.com/wskit/wskit/prometheus"
//
//	prometheus.MustRegister(wsprom.NewCollector(srv, wsprom.Hub("chat", chat)))
//	mux.Handle("GET /metrics", promhttp.Handler())
//
// A Collector reads Server.Stats once per scrape and computes nothing in
// between. Every metric is named wskit_… (see Namespace); the counters end
// in _total. Command wskit-exporter, in this module, serves the same
// metrics for a process that publishes its Stats through expvar
// (Server.PublishExpvar), such as wskit serve -metrics.
package prometheus

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wskit/wskit"
)

// Collector is a prometheus.Collector of a wskit server's Stats and of
// the hubs named with Hub.
type Collector struct {
	stats func() (wskit.Stats, error)
	hubs  []namedHub
	descs descs
}

type namedHub struct {
	name string
	h    *wskit.Hub
}

// Option configures a Collector.
type Option func(*config)

type config struct {
	namespace string
	hubs      []namedHub
}

// Namespace sets the prefix of every metric's name, "wskit" by default.
func Namespace(ns string) Option { return func(c *config) { c.namespace = ns } }

// Hub adds the Stats of hub h, labelled hub=name: its subscribers,
// messages published, dropped and held. What hubs did to the server's
// sessions is in the server's own metrics (wskit_hub_…_total), without
// naming them.
func Hub(name string, h *wskit.Hub) Option {
	return func(c *config) { c.hubs = append(c.hubs, namedHub{name, h}) }
}

// NewCollector returns a Collector of srv's Stats.
func NewCollector(srv *wskit.Server, opts ...Option) *Collector {
	return NewStatsCollector(func() (wskit.Stats, error) { return srv.Stats(), nil }, opts...)
}

// NewStatsCollector returns a Collector of the Stats that stats returns at
// each scrape, such as those another process publishes; when it fails,
// the scrape reports its error.
func NewStatsCollector(stats func() (wskit.Stats, error), opts ...Option) *Collector {
	c := config{namespace: "wskit"}
	for _, o := range opts {
		o(&c)
	}
	return &Collector{stats: stats, hubs: c.hubs, descs: newDescs(c.namespace)}
}

// descs are the descriptions of the metrics.
type descs struct {
	sessionsOpen, sessionsTotal                            *prometheus.Desc
	accepted, refused                                      *prometheus.Desc
	frames, messages, bytes, pings, pongs, closes, deflate *prometheus.Desc
	pongTimeouts, closeTimeouts                            *prometheus.Desc
	queueFull, queueTimeouts, incomingFull                 *prometheus.Desc
	hubDelivered, hubDropped, hubDisconnected              *prometheus.Desc
	loopConns, loopIterations                              *prometheus.Desc
	loopReads, loopReadBytes, loopReadEAGAIN               *prometheus.Desc
	loopWrites, loopWriteBytes, loopWriteEAGAIN            *prometheus.Desc
	hubSubscribers, hubPublished, hubMsgsDropped           *prometheus.Desc
	hubSubsDisconnected, hubHeldBytes, hubPublishTimeouts  *prometheus.Desc
	all                                                    []*prometheus.Desc
}

func newDescs(ns string) descs {
	var all []*prometheus.Desc
	d := func(name, help string, labels ...string) *prometheus.Desc {
		desc := prometheus.NewDesc(prometheus.BuildFQName(ns, "", name), help, labels, nil)
		all = append(all, desc)
		return desc
	}
	ds := descs{
		sessionsOpen:        d("sessions_open", "Sessions open now, by engine (std, poll) and kind (default, raw, events).", "engine", "kind"),
		sessionsTotal:       d("sessions_total", "Sessions opened, by engine (std, poll) and kind (default, raw, events).", "engine", "kind"),
		accepted:            d("handshakes_accepted_total", "Opening handshakes answered with 101."),
		refused:             d("handshakes_refused_total", "Opening handshakes refused, by reason.", "reason"),
		frames:              d("frames_total", "Frames of every kind received (in) and sent (out).", "direction"),
		messages:            d("messages_total", "Data messages received (in) and sent (out), by type (text, binary).", "direction", "type"),
		bytes:               d("message_bytes_total", "Payload bytes of data messages as the application has them, by direction and type.", "direction", "type"),
		pings:               d("pings_total", "Ping frames received (in) and sent (out).", "direction"),
		pongs:               d("pongs_total", "Pong frames received (in) and sent (out).", "direction"),
		closes:              d("close_frames_total", "Close frames received (in) and sent (out), by code: 1000 to 1015 (1005: no code), or other.", "direction", "code"),
		deflate:             d("deflate_bytes_total", "Payload bytes of data messages on sessions with permessage-deflate, on the wire and as the application has them (form plain).", "direction", "form"),
		pongTimeouts:        d("pong_timeouts_total", "Sessions failed because a keepalive ping went unanswered."),
		closeTimeouts:       d("close_timeouts_total", "Sessions whose peer did not answer our close frame in time."),
		queueFull:           d("queue_full_total", "Sends that found the outgoing queue (MaxQueue) full."),
		queueTimeouts:       d("queue_timeouts_total", "Sends that waited for room in the outgoing queue in vain."),
		incomingFull:        d("incoming_queue_full_total", "Times a session's incoming queue (IncomingQueue) filled and reading paused."),
		hubDelivered:        d("hub_deliveries_total", "Messages hubs handed to the server's sessions."),
		hubDropped:          d("hub_dropped_total", "Messages hubs dropped for the server's sessions, by overflow policy (drop_oldest, drop_latest).", "policy"),
		hubDisconnected:     d("hub_disconnected_total", "Sessions hubs closed for being too slow, by overflow policy (close_1013, close_1008).", "policy"),
		loopConns:           d("loop_connections", "Connections an event loop of the poll engine holds now.", "loop"),
		loopIterations:      d("loop_iterations_total", "Rounds of an event loop.", "loop"),
		loopReads:           d("loop_reads_total", "Read system calls of an event loop.", "loop"),
		loopReadBytes:       d("loop_read_bytes_total", "Bytes an event loop read.", "loop"),
		loopReadEAGAIN:      d("loop_read_eagain_total", "Reads of an event loop that found nothing (EAGAIN).", "loop"),
		loopWrites:          d("loop_writes_total", "Write and writev system calls for an event loop's connections.", "loop"),
		loopWriteBytes:      d("loop_write_bytes_total", "Bytes written for an event loop's connections.", "loop"),
		loopWriteEAGAIN:     d("loop_write_eagain_total", "Writes for an event loop's connections that found the socket full (EAGAIN).", "loop"),
		hubSubscribers:      d("hub_subscribers", "Subscribers of a hub now.", "hub"),
		hubPublished:        d("hub_published_total", "Messages published to a hub.", "hub"),
		hubMsgsDropped:      d("hub_messages_dropped_total", "Messages a hub dropped for a subscriber (drop policies).", "hub"),
		hubSubsDisconnected: d("hub_subscribers_disconnected_total", "Subscribers a hub closed under a closing overflow policy.", "hub"),
		hubHeldBytes:        d("hub_held_bytes", "Memory of the messages a hub holds back or keeps for replay.", "hub"),
		hubPublishTimeouts:  d("hub_publish_timeouts_total", "Publishes that timed out waiting for room (suspend policy).", "hub"),
	}
	ds.all = all
	return ds
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs.all {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it takes one snapshot of the
// Stats and of each hub.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	d := &c.descs
	for _, nh := range c.hubs {
		hs := nh.h.Stats()
		ch <- gauge(d.hubSubscribers, float64(hs.Subscribers), nh.name)
		ch <- counter(d.hubPublished, hs.Published, nh.name)
		ch <- counter(d.hubMsgsDropped, hs.Dropped, nh.name)
		ch <- counter(d.hubSubsDisconnected, hs.Disconnected, nh.name)
		ch <- gauge(d.hubHeldBytes, float64(hs.HeldBytes), nh.name)
		ch <- counter(d.hubPublishTimeouts, hs.PublishTimeouts, nh.name)
	}
	st, err := c.stats()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(d.sessionsOpen, err)
		return
	}
	for _, e := range []struct {
		name  string
		kinds wskit.SessionKinds
	}{{"std", st.Sessions.Std}, {"poll", st.Sessions.Poll}} {
		for _, k := range []struct {
			name string
			n    wskit.SessionCount
		}{{"default", e.kinds.Default}, {"raw", e.kinds.Raw}, {"events", e.kinds.Events}} {
			ch <- gauge(d.sessionsOpen, float64(k.n.Open), e.name, k.name)
			ch <- counter(d.sessionsTotal, k.n.Total, e.name, k.name)
		}
	}
	ch <- counter(d.accepted, st.Handshakes.Accepted)
	r := &st.Handshakes.Refused
	for _, x := range []struct {
		reason string
		n      uint64
	}{
		{"method", r.Method}, {"upgrade", r.Upgrade}, {"version", r.Version}, {"key", r.Key},
		{"origin", r.Origin}, {"subprotocol", r.Subprotocol}, {"extension", r.Extension},
		{"hook", r.Hook}, {"limit", r.Limit}, {"timeout", r.Timeout}, {"other", r.Other},
	} {
		ch <- counter(d.refused, x.n, x.reason)
	}
	for _, t := range []struct {
		dir string
		t   *wskit.TrafficStats
	}{{"in", &st.In}, {"out", &st.Out}} {
		ch <- counter(d.frames, t.t.Frames, t.dir)
		ch <- counter(d.messages, t.t.Text.Messages, t.dir, "text")
		ch <- counter(d.messages, t.t.Binary.Messages, t.dir, "binary")
		ch <- counter(d.bytes, t.t.Text.Bytes, t.dir, "text")
		ch <- counter(d.bytes, t.t.Binary.Bytes, t.dir, "binary")
		ch <- counter(d.pings, t.t.Pings, t.dir)
		ch <- counter(d.pongs, t.t.Pongs, t.dir)
		for i, n := range t.t.Close.Codes {
			ch <- counter(d.closes, n, t.dir, strconv.Itoa(1000+i))
		}
		ch <- counter(d.closes, t.t.Close.Other, t.dir, "other")
		ch <- counter(d.deflate, t.t.Deflate.Wire, t.dir, "wire")
		ch <- counter(d.deflate, t.t.Deflate.Plain, t.dir, "plain")
	}
	ch <- counter(d.pongTimeouts, st.PongTimeouts)
	ch <- counter(d.closeTimeouts, st.CloseTimeouts)
	ch <- counter(d.queueFull, st.Queues.Full)
	ch <- counter(d.queueTimeouts, st.Queues.Timeouts)
	ch <- counter(d.incomingFull, st.Queues.IncomingFull)
	ch <- counter(d.hubDelivered, st.Hubs.Delivered)
	ch <- counter(d.hubDropped, st.Hubs.DroppedOldest, "drop_oldest")
	ch <- counter(d.hubDropped, st.Hubs.DroppedLatest, "drop_latest")
	ch <- counter(d.hubDisconnected, st.Hubs.ClosedTryAgain, "close_1013")
	ch <- counter(d.hubDisconnected, st.Hubs.ClosedPolicy, "close_1008")
	for i, l := range st.Loops {
		loop := strconv.Itoa(i)
		ch <- gauge(d.loopConns, float64(l.Conns), loop)
		ch <- counter(d.loopIterations, l.Iterations, loop)
		ch <- counter(d.loopReads, l.Reads, loop)
		ch <- counter(d.loopReadBytes, l.ReadBytes, loop)
		ch <- counter(d.loopReadEAGAIN, l.ReadEAGAIN, loop)
		ch <- counter(d.loopWrites, l.Writes, loop)
		ch <- counter(d.loopWriteBytes, l.WriteBytes, loop)
		ch <- counter(d.loopWriteEAGAIN, l.WriteEAGAIN, loop)
	}
}

func counter(d *prometheus.Desc, v uint64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}
