//go:build !linux

package poller

import (
	"errors"
	"net"
	"time"
)

// Supported reports whether this platform has the poller.
const Supported = false

// ErrUnsupported is returned by New where there is no epoll.
var ErrUnsupported = errors.New("poller: epoll is only available on Linux")

// ErrClosed is returned by operations on a closed engine or connection.
var ErrClosed = net.ErrClosed

// ErrWriteTimeout is never returned here.
var ErrWriteTimeout = errors.New("poller: peer did not read within the write timeout")

// Releaser owns bytes queued with CommitShared.
type Releaser interface{ Release() }

// Engine is not available on this platform.
type Engine struct{}

// New returns ErrUnsupported.
func New(cfg Config, h Handler) (*Engine, error) { return nil, ErrUnsupported }

// RaiseFileLimit does nothing here.
func RaiseFileLimit() error { return nil }

func (e *Engine) Serve(ln net.Listener) error { return ErrUnsupported }

// CanServe reports false: there is no poller here.
func CanServe(ln net.Listener) bool      { return false }
func (e *Engine) StopAccepting()         {}
func (e *Engine) Close() error           { return nil }
func (e *Engine) Conns() int             { return 0 }
func (e *Engine) Each(fn func(c *Conn))  {}
func (e *Engine) LoopStats() []LoopStats { return nil }
func (e *Engine) Loops() int             { return 0 }

// Conn is not available on this platform.
type Conn struct{ Context any }

func (c *Conn) Handler() Handler                                     { return nil }
func (c *Conn) Fd() int                                              { return -1 }
func (c *Conn) Loop() int                                            { return 0 }
func (c *Conn) RemoteAddr() net.Addr                                 { return nil }
func (c *Conn) RemoteAddrString() string                             { return "" }
func (c *Conn) LocalAddr() net.Addr                                  { return nil }
func (c *Conn) Lock()                                                {}
func (c *Conn) Unlock()                                              {}
func (c *Conn) TryLock() bool                                        { return true }
func (c *Conn) Buffer(n int) []byte                                  { return nil }
func (c *Conn) Commit(b []byte) error                                { return ErrUnsupported }
func (c *Conn) Write(p []byte) (int, error)                          { return 0, ErrUnsupported }
func (c *Conn) CommitShared(b *[]byte, r Releaser, _ int) error      { r.Release(); return ErrUnsupported }
func (c *Conn) Lendable(p []byte) bool                               { return false }
func (c *Conn) CommitInput(head, p []byte)                           {}
func (c *Conn) Refill()                                              {}
func (c *Conn) Queued() int                                          { return 0 }
func (c *Conn) SharedSize() int                                      { return 0 }
func (c *Conn) Close() error                                         { return nil }
func (c *Conn) CloseWithError(err error, linger time.Duration) error { return nil }
func (c *Conn) Abort(err error)                                      {}
func (c *Conn) SetTimer(t time.Time)                                 {}
func (c *Conn) PauseRead()                                           {}
func (c *Conn) ResumeRead()                                          {}
func (c *Conn) Detach() net.Conn                                     { return nil }
func (c *Conn) ReadPaused() bool                                     { return false }
func (c *Conn) Unread(in []byte)                                     {}
func (c *Conn) SetSealer(s Sealer)                                   {}
func (c *Conn) SealOwed()                                            {}

// Attach reports false: there is no loop to attach to.
func Attach(nc net.Conn, setup func(c *Conn), dropped func()) bool { return false }
