// Command wskit-nats is wskit's command line with NATS: its serve runs
// the /chat hubs of wskit serve over a broker on NATS, so that the members
// on every server that joins the same NATS chat together. dial and bench
// are wskit's.
//
//	wskit-nats serve [wskit serve's flags] -nats URL
//	wskit-nats serve [wskit serve's flags] -nats-embedded [-nats-listen 127.0.0.1:4222]
//		[-nats-cluster ADDR -nats-routes ADDR,...] [-nats-store DIR]
//	and either with [-nats-mode jetstream|core] [-nats-keep 1000] [-nats-max-bytes 1GiB] [-nats-max-age 24h]
//
// -nats joins an existing NATS server or cluster; -nats-embedded runs a
// nats-server in the process, and -nats-cluster with -nats-routes joins it
// to those of other wskit-nats processes (a route list may name the
// server itself, so that every process is given the same one). Three
// terminals give a three-node chat:
//
//	go run ./cmd/wskit-nats serve -addr :8081 -nats-embedded -nats-listen 127.0.0.1:4221 -nats-cluster 127.0.0.1:6221 -nats-routes 127.0.0.1:6221,127.0.0.1:6222,127.0.0.1:6223
//	go run ./cmd/wskit-nats serve -addr :8082 -nats-embedded -nats-listen 127.0.0.1:4222 -nats-cluster 127.0.0.1:6222 -nats-routes 127.0.0.1:6221,127.0.0.1:6222,127.0.0.1:6223
//	go run ./cmd/wskit-nats serve -addr :8083 -nats-embedded -nats-listen 127.0.0.1:4223 -nats-cluster 127.0.0.1:6223 -nats-routes 127.0.0.1:6221,127.0.0.1:6222,127.0.0.1:6223
//
// It lives in the NATS module, not beside cmd/wskit, so that wskit's own
// module never depends on NATS: both run the same command line
// (internal/cli), this one with an extension that adds the flags and the
// broker.
package main

import "github.com/wskit/wskit/internal/cli"

func main() {
	var f natsFlags
	cli.Main(f.extension())
}
