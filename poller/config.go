package poller

import (
	"log/slog"
	"runtime"
	"time"
)

// Config sets up an Engine. The zero value is ready to use.
type Config struct {
	// Loops is the number of event loops; 0 means runtime.GOMAXPROCS(0).
	Loops int
	// ReadBufferSize is the most one read takes; 0 means 64 KiB. Each loop
	// holds a shared buffer of four times that, so that output lent from
	// the input of one read (see Conn.CommitInput) outlasts the next reads
	// of the same connection.
	ReadBufferSize int
	// LevelTriggered registers loop-driven connections level-triggered
	// rather than edge-triggered (see the package documentation).
	LevelTriggered bool
	// Wait says how an idle loop waits for events.
	Wait WaitMode
	// TimerTick is the resolution of the timer wheel; 0 means 10 ms.
	TimerTick time.Duration
	// WriteTimeout bounds how long output may wait for a peer that does
	// not read: a connection whose socket stays full that long is closed
	// with ErrWriteTimeout, its output dropped. 0 means 15 s; < 0 never.
	WriteTimeout time.Duration
	// KeepAlive sets TCP keep-alive on accepted connections, as net's
	// listeners do: 0 means probes after 15 s idle, every 15 s, 9 of them
	// (the kernel then drops a peer that vanished without a FIN); a
	// negative value turns it off; a positive one sets the idle time and
	// the interval.
	KeepAlive time.Duration
	// Logger receives accept errors; nil means slog.Default().
	Logger *slog.Logger
}

// Go's defaults for TCP keep-alive (net.KeepAliveConfig).
const (
	defaultKeepAlive      = 15 * time.Second
	defaultKeepAliveCount = 9
)

// Filler is implemented by a Handler that queues output only as fast as
// connections take it (see Conn.Refill).
type Filler interface {
	// Fill is called on the loop, with c locked, after Conn.Refill once
	// c's output has been written: it may queue more (Commit, CommitShared)
	// and must not block.
	Fill(c *Conn)
}

// WaitMode says how an idle loop waits for events.
type WaitMode uint8

const (
	// WaitPark parks the loop goroutine in the runtime's network poller,
	// giving up its thread and P while idle.
	WaitPark WaitMode = iota
	// WaitBlock blocks the loop in the epoll_wait system call.
	WaitBlock
)

func (c *Config) setDefaults() {
	if c.Loops <= 0 {
		c.Loops = runtime.GOMAXPROCS(0)
	}
	if c.ReadBufferSize <= 0 {
		c.ReadBufferSize = 64 << 10
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 15 * time.Second
	}
	if c.TimerTick <= 0 {
		c.TimerTick = 10 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Handler receives a loop's events about its connections. Every method runs
// on the connection's loop and must not block: the loop serves many
// connections. A connection's methods are never called concurrently.
type Handler interface {
	// OnOpen is called when a connection has been accepted.
	OnOpen(c *Conn)
	// OnData is called with bytes read from c. in is the loop's buffer,
	// borrowed for the call.
	OnData(c *Conn, in []byte)
	// OnTimer is called when the timer set by Conn.SetTimer is due.
	OnTimer(c *Conn)
	// OnClose is called once when c has been closed: err is io.EOF when the
	// peer closed, ErrClosed when the engine closed, the read or write error,
	// or the error given to Conn.CloseWithError.
	OnClose(c *Conn, err error)
}

// LoopStats are the counters of one event loop (see Engine.LoopStats).
// Conns is a gauge; the others only grow.
type LoopStats struct {
	// Conns is the number of connections the loop holds now, those
	// detached to a goroutine included.
	Conns int64
	// Iterations counts the loop's rounds: waiting for events (or
	// polling, when work is left over) and handling what they brought.
	Iterations uint64
	// Reads counts read system calls on the connections the loop drives,
	// ReadBytes what they returned, and ReadEAGAIN those that found
	// nothing to read.
	Reads, ReadBytes, ReadEAGAIN uint64
	// Writes counts write and writev system calls writing the output of
	// the connections the loop drives (made on the loop, or by a sender
	// off the loop that found the socket idle), WriteBytes what they
	// wrote, and WriteEAGAIN those that found the socket's buffer full.
	Writes, WriteBytes, WriteEAGAIN uint64
}
