package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/wskit/wskit"
	"github.com/wskit/wskit/internal/cli"
	wsnats "github.com/wskit/wskit/nats"
	"github.com/wskit/wskit/nats/internal/embedded"
)

// natsFlags are the flags wskit-nats adds to wskit serve.
type natsFlags struct {
	url      string
	embedded bool
	listen   string
	cluster  string
	routes   string
	store    string
	mode     string
	keep     int64
	maxBytes int64
	maxAge   time.Duration
	replicas int
	async    bool
}

func (f *natsFlags) extension() *cli.Extension {
	return &cli.Extension{Flags: f.register, Check: f.check, Start: f.start}
}

func (f *natsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "nats", "", "join the NATS server or cluster at this `URL` (nats://host:port, comma-separated for several)")
	fs.BoolVar(&f.embedded, "nats-embedded", false, "run a NATS server in this process (with JetStream in jetstream mode)")
	fs.StringVar(&f.listen, "nats-listen", "127.0.0.1:4222", "the embedded NATS server's client `address`")
	fs.StringVar(&f.cluster, "nats-cluster", "", "the embedded NATS server's route `address`, to form a cluster with -nats-routes")
	fs.StringVar(&f.routes, "nats-routes", "", "the route addresses of the cluster's servers, comma-separated (may include this one's)")
	fs.StringVar(&f.store, "nats-store", "", "the embedded server's JetStream `directory` (default: a temporary one, removed at exit)")
	fs.StringVar(&f.mode, "nats-mode", "jetstream", "jetstream (one order on every node, replay and recovery) or core (at most once, publisher order)")
	fs.Int64Var(&f.keep, "nats-keep", 1000, "messages the stream keeps per topic (jetstream; -1: no bound)")
	fs.Int64Var(&f.maxBytes, "nats-max-bytes", 1<<30, "bytes the stream keeps for all topics (jetstream; -1: no bound)")
	fs.DurationVar(&f.maxAge, "nats-max-age", 24*time.Hour, "age past which the stream drops a message (jetstream; -1ns: no bound)")
	fs.IntVar(&f.replicas, "nats-replicas", 1, "servers of a JetStream cluster that hold the stream")
	fs.BoolVar(&f.async, "nats-async", false, "jetstream: publish without waiting for each acknowledgement (errors are logged, not returned)")
}

func (f *natsFlags) check() error {
	if _, err := wsnats.ParseMode(f.mode); err != nil {
		return err
	}
	switch {
	case f.url != "" && f.embedded:
		return errors.New("-nats and -nats-embedded exclude each other")
	case (f.cluster != "" || f.routes != "") && !f.embedded:
		return errors.New("-nats-cluster and -nats-routes are for -nats-embedded")
	case f.routes != "" && f.cluster == "":
		return errors.New("-nats-routes needs -nats-cluster")
	case f.keep == 0 || f.maxBytes == 0 || f.maxAge == 0:
		return errors.New("-nats-keep, -nats-max-bytes and -nats-max-age must not be 0")
	case f.replicas < 1:
		return errors.New("-nats-replicas must be at least 1")
	}
	return nil
}

// start starts the embedded server if asked, and the broker.
func (f *natsFlags) start(ctx context.Context, log *slog.Logger) (wskit.Broker, func(), error) {
	if f.url == "" && !f.embedded {
		log.Info("no -nats or -nats-embedded: the chat spans this server alone")
		return nil, func() {}, nil
	}
	mode, _ := wsnats.ParseMode(f.mode)
	var stops []func()
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	url := f.url
	if f.embedded {
		ns, cleanup, err := f.startServer(mode, log)
		if err != nil {
			return nil, nil, err
		}
		stops = append(stops, cleanup)
		url = ns.ClientURL()
	}
	opts := wsnats.Options{Mode: mode, MaxMsgsPerTopic: f.keep, MaxBytes: f.maxBytes, MaxAge: f.maxAge, Replicas: f.replicas,
		AsyncPublish: f.async, Logger: log}
	if mode == wsnats.JetStream {
		log.Info("NATS: making the JetStream stream (a JetStream cluster answers once most of its servers are up)", "url", url)
	}
	b, err := wsnats.Connect(ctx, url, opts)
	if err != nil {
		stop()
		return nil, nil, err
	}
	stops = append(stops, b.Close)
	o := b.Options()
	log.Info("NATS: the chat spans every server on it", "url", url, "mode", mode.String(), "subjects", o.Prefix+".>",
		"stream", o.Stream, "keep_per_topic", o.MaxMsgsPerTopic, "max_bytes", o.MaxBytes, "max_age", o.MaxAge)
	return b, stop, nil
}

// startServer starts the embedded nats-server; the function it returns
// stops it and removes a temporary store.
func (f *natsFlags) startServer(mode wsnats.Mode, log *slog.Logger) (*server.Server, func(), error) {
	c := embedded.Config{Listen: f.listen, Cluster: f.cluster, JetStream: mode == wsnats.JetStream, StoreDir: f.store}
	if f.routes != "" {
		c.Routes = strings.Split(f.routes, ",")
	}
	if _, port, err := net.SplitHostPort(f.listen); err == nil {
		c.Name = "wskit-" + port // unique among the processes of one machine
	}
	var temp string
	if c.JetStream && c.StoreDir == "" {
		var err error
		if temp, err = os.MkdirTemp("", "wskit-nats-"); err != nil {
			return nil, nil, err
		}
		c.StoreDir = temp
	}
	ns, err := embedded.Start(c)
	if err != nil {
		os.RemoveAll(temp)
		return nil, nil, err
	}
	log.Info("NATS: embedded server", "name", c.Name, "clients", ns.ClientURL(), "cluster", f.cluster, "routes", f.routes, "jetstream", c.JetStream, "store", c.StoreDir)
	return ns, func() {
		ns.Shutdown()
		ns.WaitForShutdown()
		if temp != "" {
			os.RemoveAll(temp)
		}
	}, nil
}
