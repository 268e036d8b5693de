// Package poller moves bytes and readiness for many non-blocking sockets
// with few goroutines: epoll event loops (one per CPU by default), accept
// balanced across them, a shared read buffer per loop, per-connection output
// queues flushed with one writev per loop iteration, and a timer wheel. It
// knows nothing of WebSocket; wskit's poll engine is built on it.
//
// A connection is driven in one of two ways. On the loop, a Handler's
// methods are called with the bytes read into the loop's buffer (borrowed
// for the call); the connection holds a buffer only while output waits to be
// written, so an idle one holds none, and no goroutine. Or, after Detach, a
// goroutine owns it as a net.Conn whose Read and Write wait for readiness
// from the loop instead of the runtime's network poller, with deadlines on
// the loop's timer wheel.
//
// # Edge-triggered
//
// Connections are registered once, edge-triggered, for input and output
// (Config.LevelTriggered registers loop-driven connections level-triggered
// instead, for comparison). Edge triggering needs no epoll_ctl when output
// backs up (EPOLLOUT is already armed) nor to pause reading, and a read that
// returns less than the buffer proves the socket drained, so it costs no
// extra read to reach EAGAIN. A connection that fills the buffer is read at
// most a few times per event and then revisited on the next iteration, so
// one fast sender cannot starve the others. Measured on echo benchmarks, the
// two modes were within noise of each other; edge triggering was kept for
// the syscalls it saves when output backs up and when reading is paused.
//
// # Waiting
//
// A loop that finds no events does not block in epoll_wait: its epoll
// descriptor is itself registered with the Go runtime's network poller, and
// the loop goroutine parks there (Config.Wait = WaitPark, the default). The
// loop then holds no thread and no P while idle, so goroutines woken by it
// (session handlers) run at once even with GOMAXPROCS=1. A loop blocked in
// the epoll_wait system call (WaitBlock) keeps its P until the runtime's
// monitor takes it back, which costs up to half the throughput on one CPU.
//
// # Lent output
//
// A handler may queue a slice of the input it was given without copying it
// (Conn.Lendable, Conn.CommitInput), as an echo of a large payload does.
// The loop reads a connection's successive reads into successive parts of
// its buffer while earlier parts hold such output, then writes it all in one
// writev before it reads another connection, and copies only what the
// socket did not take. A 16 KiB echo then costs the system calls of a plain
// TCP echo (a read per 64 KiB in, a write per 256 KiB out when pipelined)
// and no copy of the payload in user space.
package poller
