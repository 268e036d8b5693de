// Package load is wskit's load generator, behind wskit bench: one client
// for every server it measures, built so that the client is not what limits
// the result.
//
// # How it drives connections
//
// A run deals its connections to a few event loops (one per CPU), each an
// epoll descriptor and a goroutine; connections are non-blocking sockets
// registered once, edge-triggered. A loop with nothing to do parks in the Go
// runtime's network poller, where its epoll descriptor is registered, with a
// read deadline for its next timed job (a ramp step, a rate token, a
// timeout scan), so that it holds no thread while it waits. Sockets are
// connected and upgraded on the loops too: the request is built once, with
// RFC 6455's sample key so that the accept value is known, and offers no
// extension. With source addresses, each socket is bound to one in turn
// with IP_BIND_ADDRESS_NO_PORT, so that each address has its own ephemeral
// ports towards the server.
//
// Messages are masked once, before the run, with one key for the whole run
// (see newMaskKey): a connection's send is a write of bytes that all
// connections share, up to as many messages as it has in flight. Replies
// are parsed only as far as their frame headers (frameReader) and counted;
// payloads are skipped in the loop's read buffer, save a Broadcast
// message's stamp. With Config.Verify every reply is also compared byte for
// byte, where it lies in the read buffer, with the payload all messages
// share (bytes.Equal on each stretch read; no copy), so that a server that
// answers with the right length but the wrong bytes fails the run. Pings are answered. Per message, nothing is allocated:
// send times sit in a ring per connection within one slice per loop, and
// latencies go to a fixed-size Histogram per loop, merged at the end.
//
// # Phases
//
// Connections open first, spread over Config.Ramp, at most maxDialing per
// loop at a time; under Echo and Pipeline each starts its closed loop as it
// opens, which warms the server up. Measuring starts once all are open or
// have failed (Churn: once the ramp is over): counters and histograms are
// reset, and the server's CPU time and this process's are read. After
// Duration the loops stop sending and wait, up to DrainTimeout, for the
// replies in flight, so that every message sent is accounted for; Idle
// instead sends one message on every connection, in batches between reads,
// and times the echoes. Then every connection is closed with 1000.
//
// Under Churn a cycle sends its close frame and waits for the server's and
// for the server to end the TCP connection, as RFC 6455 §7.1.1 has it, so
// that TIME_WAIT stays on the server's side and the client's ephemeral
// ports can be reused at once.
//
// # Numbers
//
// Rates are per second of the measured window. Latency is recorded with
// the time of the read that completed the reply, so it includes the time
// the loop spent on the other replies of that read and of the same epoll
// batch; on a machine shared with the server it also includes the server's
// share of the CPUs. Server CPU time comes from /proc/PID/stat in 10 ms
// ticks, so short windows read coarsely.
package load
