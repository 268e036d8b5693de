// Package bench measures wskit end to end beside peer libraries. It is its
// own module so that the peers (gorilla/websocket, nbio) are never
// downloaded by wskit's users; it holds tests, benchmarks and the tools
// below.
//
// # In-process echo
//
// BenchmarkEcho and BenchmarkEchoParallel run client and server in the test
// process, so that B/op and allocs/op are the server's. gorilla runs its
// fast path, as in the zoo below; gorillareadmessage and gorillacopy are
// the ReadMessage and NextReader/NextWriter/io.Copy loops of its package
// doc, for reference:
//
//	cd bench && go test -run '^$' -bench Echo -benchmem -count 6 | tee /tmp/echo.txt
//	benchstat -col /impl /tmp/echo.txt
//
// # End to end, server in its own process
//
// BenchmarkE2E/conns=N/size=S/mode=M/impl=X runs the server X of the zoo
// (internal/servers) in a child process (the test binary re-executed) and
// echoes over loopback TCP from N client connections of this process (1 and
// 1000), with payloads of 64 B and 16 KiB, one message in flight per
// connection (mode=closed) or 32 (mode=pipe32). One op is one message. The
// servers all run side by side, and each case measures them one after the
// other, so that the machine's drift falls between cases more than between
// servers. The zoo:
//
//	gorilla             gorilla/websocket, goroutine per connection: NextReader into a pooled buffer, WriteMessage, Upgrader.WriteBufferPool
//	coder               coder/websocket, goroutine per connection: Accept, each message's Reader read into a pooled buffer, Write
//	gobwas              gobwas/ws, goroutine per connection: ws.Upgrader on a raw listener, ws.ReadHeader per frame, one write per reply
//	gobwas-epoll        gobwas/ws in its "million WebSockets" design: epoll wakes a pool of 128 workers; idle connections hold no goroutine
//	gws                 lxzan/gws's Upgrader in net/http, a ReadLoop goroutine per connection, OnMessage with ParallelEnabled
//	nbio                nbio's nbhttp epoll engine (IOModNonBlocking), one poller per CPU, OnMessage on nbio's goroutine pool
//	nbio-sync           the same with its handlers on the poller goroutines (ServerExecutor), like wskit's Events
//	wskit-std           EngineStd, default session ranging over Messages
//	wskit-poll-session  EnginePoll, default session (a goroutine per session)
//	wskit-poll-events   EnginePoll, Events.OnMessage on the event loop
//	tcp                 raw TCP echo on wskit's poller, no framing: the ceiling
//
// Each peer runs on the fast path its own documentation gives, so that its
// maintainers would accept the configuration as theirs:
//
//   - gorilla: "Buffers are held for the lifetime of the connection by
//     default. If the Dialer or Upgrader WriteBufferPool field is set, then
//     a connection holds the write buffer only when writing a message"
//     (package doc, Buffers; Upgrader.WriteBufferPool: "most useful when the
//     application has a modest volume of writes across a large number of
//     connections"), so the pool is set (with the default buffer sizes it
//     saves no memory at idle: gorilla otherwise reuses net/http's hijacked
//     write buffer, which net/http holds for the connection in any case).
//     Messages are read with NextReader ("An application can also send and
//     receive messages using the io.WriteCloser and io.Reader interfaces",
//     package doc) into a buffer
//     from a sync.Pool, as nbio's go-websocket-benchmark gives gorilla a
//     reused buffer (frameworks/gorilla/server.go), and written with
//     WriteMessage, whose server path sends one frame from the caller's
//     slice. ReadMessage (io.ReadAll into a new, growing slice per message)
//     is the variant gorilla-readmessage.
//   - coder: websocket.Accept with default AcceptOptions, its README's
//     server; Conn.Reader into a pooled buffer and Conn.Write (see
//     internal/servers/coder.go for why not Conn.Read or io.Copy).
//   - gobwas: its README's zero-copy ws.Upgrader and "the lower-level
//     example without wsutil" (ws.ReadHeader, the payload, ws.Cipher,
//     ws.WriteHeader); gobwas-epoll in the design of its author's "A
//     Million WebSockets and Go" (epoll, a pool of 128 workers, pooled
//     readers, no goroutine per idle connection).
//   - gws: its README's "Best Practice": an Upgrader with ParallelEnabled
//     and Recovery, ReadLoop on a goroutine of its own.
//   - nbio: nbhttp.Engine as nbio's go-websocket-benchmark configures it
//     (frameworks/nbio_nonblocking/server.go: IOModNonBlocking,
//     ReleaseWebsocketPayload, no read deadline), with nbhttp.Config.NPoller
//     ("poller goroutine num") set to one per CPU, as wskit runs one loop
//     per CPU: its default, runtime.NumCPU()/4 and at least one, would give
//     a 2-CPU machine one poller. Both of nbio's execution modes run in the
//     table: handlers on its goroutine pool (its default) and on the
//     pollers (nbio-sync, nbhttp.Config.ServerExecutor).
//   - antlabs/greatws (the best published idle memory, 448 MB at a million
//     connections) is not in the zoo: the Go module proxy reachable here
//     does not serve github.com/antlabs/greatws.
//
// and the variants gorilla-readmessage (above), gobwas-batch and
// gobwas-epoll-batch (replies to frames
// that arrived together in one write, which gobwas's README does not do),
// gws-serial (gws without ParallelEnabled: a connection's replies keep
// their order), tcp-block (poller.WaitBlock), tcp-lt
// (level-triggered), wskit-poll-session-block and wskit-poll-events-block
// (Options.BlockingLoops), wskit-poll-events-chain and wskit-std-chain (the
// Events echo behind three middlewares: a logger, an auth check of the
// query's token that puts the user in the context, a session cookie), which
// run only when named in BENCH_IMPLS. Every client asks for servers.URI,
// the echo path with that token, which the other servers ignore. Every
// WebSocket server gets the same client: prepared masked frames, replies
// counted from their headers. How each peer is used, and after which of its
// docs, is said in internal/servers.
//
// Over TLS (the -tls variants, internal/servers.TLSVariants: wss:// with a
// self-signed ECDSA P-256 certificate made when the server starts, the
// default crypto/tls configuration otherwise), each peer is set up as its
// documentation shows:
//
//   - gorilla-tls: gorilla's Upgrader runs in a net/http handler and its
//     docs say nothing of TLS on the server, which is net/http's:
//     http.Server.ServeTLS with the certificate in TLSConfig, crypto/tls on
//     the connection's goroutine.
//   - gws-tls: gws's Server.RunTLS (its examples/wss) wraps the listener in
//     tls.NewListener with ALPN http/1.1 and accepts on it; the same
//     listener under net/http and the Upgrader, as the plain gws runs.
//   - nbio-tls, nbio-sync-tls: nbhttp.Config's AddrsTLS and TLSConfig, as
//     nbio's README (websocket-tls-server) and its autobahn server do:
//     nbio's fork of crypto/tls (lesismal/llib/std/crypto/tls) on its loops.
//   - wskit-poll-events-tls: Options.TLSConfig with the plain listener;
//     crypto/tls shakes hands off the loop, then the loop runs the TLS 1.3
//     record layer (no goroutine, no buffer per idle connection).
//   - wskit-std-tls: Options.TLSConfig on EngineStd: crypto/tls, a
//     goroutine per connection. wskit-poll-session-tls: a default session
//     on the poll engine, served through net/http over crypto/tls.
//
// Reported: msgs/s; server-µs/msg, the server process's utime+stime (from
// /proc/PID/stat, 10 ms ticks) per message; client-µs/msg, this process's;
// server-allocs/msg and server-B/msg, from the server's runtime.MemStats.
// Client and server share the CPUs unless the server is pinned.
//
// Environment: BENCH_IMPLS=a,b,... picks the servers (default: the eleven
// above); BENCH_E2E_CONNS=1,50 the connection counts (default 1 and
// 1000); BENCH_SERVER_CPUS=LIST runs the server under taskset -c LIST with
// GOMAXPROCS set to the number of CPUs listed; BENCH_SERVER_PROFILE=DIR
// makes each server write DIR/IMPL.cpu.pprof and, when it stops,
// DIR/IMPL.allocs.pprof (BENCH_SERVER_MEMPROFILERATE=1 records every
// allocation); analyse them with the test binary, which go test -c writes.
//
// One run of every case takes about a minute and a half; runs as separate
// invocations let cmd/ratios divide within each run, which cancels the
// machine's drift:
//
//	cd bench
//	for i in 1 2 3; do go test -run '^$' -bench E2E -timeout 30m > /tmp/e2e-$i.txt; done
//	go run ./cmd/ratios -base gorilla /tmp/e2e-[123].txt
//	go run ./cmd/ratios -base tcp /tmp/e2e-[123].txt
//	go run ./cmd/ratios -base tcp -metric server-µs/msg /tmp/e2e-[123].txt
//	go run ./cmd/ratios -base '' -metric server-allocs/msg /tmp/e2e-[123].txt
//	benchstat -col /impl /tmp/e2e-[123].txt
//
// On one CPU each, the server on CPU 0 (GOMAXPROCS=1) and the client on 1:
//
//	for i in 1 2 3; do BENCH_SERVER_CPUS=0 taskset -c 1 go test -run '^$' -bench E2E -timeout 30m > /tmp/e2e1-$i.txt; done
//
// A profile of one case:
//
//	go test -c -o /tmp/bench.test && mkdir -p /tmp/prof
//	BENCH_IMPLS=wskit-poll-events BENCH_SERVER_PROFILE=/tmp/prof /tmp/bench.test -test.run '^$' \
//		-test.bench 'E2E/conns=1000/size=64B/mode=closed' -test.benchtime 5s
//	go tool pprof -top /tmp/bench.test /tmp/prof/wskit-poll-events.cpu.pprof
//	go tool pprof -sample_index=alloc_objects -top /tmp/bench.test /tmp/prof/wskit-poll-events.allocs.pprof
//
// go test ./... runs TestZoo (every server echoes 64 B and 16 KiB exactly
// and the benchmark's client counts its replies), TestZooDeflate (the
// -deflate variants negotiate what their names say and echo compressed
// messages to cmd/idle's client), TestServerProcess and TestReplyCounter,
// all in well under a second, and internal/servers' TestEcho (every
// WebSocket server, the -tls variants over wss:// (TLS 1.3, ECDSA P-256
// checked), through gorilla's client: text and binary, pings,
// a burst of 32, the close handshake, no goroutine left after Close).
//
// # Fan-out, subscribers in their own process
//
// BenchmarkFanout/subs=N/size=S/impl=X broadcasts messages of 64 B and
// 1 KiB from a server in the test process to N subscriber connections
// (10000, or $BENCH_FANOUT_SUBS) held by a subscriber process: the test
// binary re-executed, which reads every connection from one epoll loop,
// parses only frame headers and the sequence numbers at both ends of each
// payload, and checks that every connection receives every message, whole
// and in order; a message lost, repeated, reordered or mangled fails the
// benchmark. The servers (internal/fanout):
//
//	gorilla-hub  gorilla/websocket and its chat example's hub: a hub goroutine, per client a send queue of 256, a read and a write goroutine; each message framed once as a PreparedMessage ("Use PreparedMessage to efficiently send a message payload to multiple connections", its doc) and written on its own
//	wskit-std    wskit.Hub{Buffer: 256, Overflow: OverflowSuspend} on EngineStd, sessions subscribed by a WebSocket handler
//	wskit-poll   the same Hub on EnginePoll, sessions subscribed by Events.OnOpen on the event loop
//
// Messages go out in rounds of 32, fewer than both hubs' 256 per
// subscriber so that no overflow policy applies, each round waiting until
// the subscribers report all of its deliveries. One op is one message
// delivered to one subscriber (b.N is rounded up to a multiple of N).
// Reported: deliveries/s; server-µs/delivery, server-allocs/delivery and
// server-B/delivery, this process's CPU time and runtime.MemStats (it holds
// only the server and the publisher); server-writes/delivery, its write
// system calls from /proc/self/io (1 is one per message and connection,
// less means messages written together); client-µs/delivery, the subscriber
// process's CPU time. One server is up at a time: a process may open 20000
// files here. BENCH_FANOUT_IMPLS=a,b,... picks the servers. wskit's hubs
// write all the messages queued for a subscriber in one writev, so their
// speed depends on how far the publisher gets ahead of the writers, and runs
// vary more than gorilla-hub's; server-writes/delivery shows it.
//
// While developing, BENCH_FANOUT_SUBS=200 runs in seconds. go test ./...
// runs only TestFanout (every server, 20 subscribers). Runs as separate
// invocations, compared within each run by cmd/ratios or by benchstat:
//
//	cd bench
//	for i in 1 2 3; do go test -run '^$' -bench Fanout -benchtime 3s -timeout 30m > /tmp/fanout-$i.txt; done
//	benchstat -col /impl /tmp/fanout-[123].txt
//	go run ./cmd/ratios -base gorilla-hub -metric deliveries/s /tmp/fanout-[123].txt
//	go run ./cmd/ratios -base gorilla-hub -metric server-µs/delivery /tmp/fanout-[123].txt
//	go run ./cmd/ratios -base '' -metric server-allocs/delivery /tmp/fanout-[123].txt
//
// # Across servers on NATS
//
// cmd/cluster measures hubs spread over nodes (module wskit/nats): three
// wskit-nats serve processes on one nats-server process, the load tool's
// broadcast (the code of `wskit bench -scenario broadcast`, several URLs)
// with -c subscribers dealt over the nodes' /chat and -publishers
// publishers dealt over them too, on core NATS and on JetStream; beside one
// node holding every subscriber, and beside NATS alone fanning the same
// messages out to three nats.go subscribers (the ceiling of the hop through
// NATS). It reports deliveries/s, publish-to-delivery latency and the CPU
// time of every server process (nodes and nats-server) per delivery:
//
//	cd bench
//	go run ./cmd/cluster -c 15000 -rate 100 -d 10s                   # 3 × 5 000 subscribers
//	go run ./cmd/cluster -c 15000 -publishers 3 -rate 100 -d 10s     # a publisher on each node
//	go run ./cmd/cluster -c 30 -publishers 3 -rate 10000 -d 10s      # latency at 10 000 publishes/s
//
// By hand, with the nodes started as in the README's Many servers:
//
//	wskit bench -scenario broadcast -c 15000 -publishers 3 ws://127.0.0.1:8081/chat ws://127.0.0.1:8082/chat ws://127.0.0.1:8083/chat
//
// # The comparison
//
// cmd/compare runs what the README shows and keeps the raw data of every
// table it writes under results/: the load suite (every server of Names as
// a process of its own, cmd/benchserver, fresh for every case, measured by
// `wskit bench -verify`, one client for all, which checks every reply
// byte for byte: echo with 1000 connections × 64 B, echo with 100
// connections × 16 KiB, idle with 19 000 connections, churn with 100
// cycles at once; tcp, the ceiling, runs all but churn) into
// results/comparison.json, and BenchmarkE2E, BenchmarkFanout and
// BenchmarkEcho/EchoParallel, one go test invocation per run, into
// results/e2e/, results/fanout/ and results/echo/ (run-N.txt, the
// benchmark output after lines naming the machine, the date, the order and
// the command). In every run the servers go in an order drawn at random
// for that run (-seed repeats it; the orders are kept with the data), so
// that no server keeps the first or last place while the machine drifts.
// Every cell of a table is a ratio within one run to a reference (gorilla,
// gorilla-hub, or the plain TCP echo for CPU time), the median over the
// runs with the range in brackets; the reference's row shows its medians.
// Under every table, the servers best in each run (a tie counts for each).
// The tables go between the README's markers (comparison, e2e, fanout,
// echo), the load suite's chart to results/comparison.svg:
//
//	go run ./cmd/compare                     # every suite, 3 runs: about an hour on 2 CPUs
//	go run ./cmd/compare -report             # measure nothing: rewrite the tables from results/
//	go run ./cmd/compare -suites load -runs 5 -d 10s
//	go run ./cmd/compare -runs 1 -d 2s -dry -suites load   # a quick look; writes nothing
//	BENCH_FANOUT_SUBS=200 go run ./cmd/compare -runs 2 -benchtime 20000x -dry -suites fanout,e2e,echo
//
// BenchmarkLoad runs the same scenarios at small sizes, with the servers in
// the test process, for benchstat across commits:
//
//	go test -run '^$' -bench Load -count 6 > new.txt; benchstat -col /impl new.txt
//
// # Tools
//
// cmd/benchserver serves one server of the zoo until SIGTERM or the end of
// its stdin (-stdin=false to ignore it), printing "ADDR DEBUGADDR"; the
// debug listener serves /debug/stats (goroutines, heap, allocations; ?gc=1
// collects first) and /debug/pprof/:
//
//	go run ./cmd/benchserver -impl wskit-poll-events -addr 127.0.0.1:9001 -cpuprofile /tmp/srv.pprof
//
// cmd/idle measures the memory of idle connections: it starts a server,
// opens -n connections (19000 by default) from client processes of at most
// -per (9000) connections each, bound to 127.0.0.2, 127.0.0.3, ..., each
// completing the handshake and then silent, waits until the server is quiet
// and prints its VmRSS, live heap (after a GC), goroutine stacks and
// goroutines per connection, and the sockets it holds:
//
//	go run ./cmd/idle -n 19000
//	go run ./cmd/idle -impl wskit-poll-events -n 19000 -heapprofile /tmp
//
// It also reads VmRSS once the server has returned freed memory to the
// system ("RSS freed"). With permessage-deflate: the variants
// gorilla-deflate (Upgrader.EnableCompression), wskit-std-deflate and
// wskit-poll-events-deflate (codec.PerMessageDeflate{}, context takeover)
// and wskit-std-deflate-nocontext and wskit-poll-events-deflate-nocontext
// (ServerNoContextTakeover and ClientNoContextTakeover) get clients that
// offer "permessage-deflate; client_max_window_bits" and require it to be
// accepted; -echo SIZE sends one JSON-like message per connection
// (compressed when negotiated) and checks its echo before going idle;
// -churn opens, echoes on and closes all connections once first; -runs N
// measures each server N times in turn and prints medians:
//
//	go run ./cmd/idle -n 10000 -per 5000 -runs 3 -echo 1024 \
//		-impl wskit-poll-events,wskit-poll-events-deflate,wskit-poll-events-deflate-nocontext
//
// The TLS variants (-tls) get clients that make a TLS 1.3 handshake first;
// -json prints one JSON object per measurement:
//
//	go run ./cmd/idle -impl wskit-poll-events-tls,nbio-tls -n 19000 -echo 16384
//
// cmd/tlscompare measures every server of its -impls over wss:// (its -tls
// variant) beside ws://, in one run, each case against a fresh process:
// idle RSS per connection after a 16 KiB echo (cmd/idle, 19 000
// connections), server CPU per message with 1000 connections × 1 KiB
// (wskit bench -pid) and handshakes/s (wskit bench -scenario churn). The
// order of the servers rotates by one place per run; every figure is
// divided by plain wskit-poll-events's from the same run. Raw data goes to
// results/tls/tls.json, the table and the check of issue 16's targets to
// docs/performance.md's tls section:
//
//	go run ./cmd/tlscompare                          # 3 runs, about half an hour on 2 CPUs
//	go run ./cmd/tlscompare -report                  # rewrite the table from results/tls/
//	go run ./cmd/tlscompare -runs 1 -d 3s -n 2000 -dry
//
// cmd/ratios prints BenchmarkE2E, BenchmarkFanout or BenchmarkEcho results
// as medians of per-run ratios with their range, the same arithmetic as
// cmd/compare's tables (see above).
package bench
