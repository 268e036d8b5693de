package wskit

import (
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/wskit/wskit/internal/bufpool"
)

// bodyReader reads an HTTP/2 body, a stream's input, with the read
// deadlines of a net.Conn, which the session's timers need to wake its
// reader. net/http's bodies have none (a client's), or one that ends the
// stream for good when it passes (a server's). A goroutine of its own reads
// the body into its buffer, and Read waits for it or for the deadline; the
// goroutine reads again only once Read has taken all it gave.
type bodyReader struct {
	body  io.ReadCloser
	in    chan h2Chunk
	ack   chan struct{} // Read has taken the last chunk
	done  chan struct{} // closed by stop
	ended chan struct{} // closed once the body has ended
	once  sync.Once

	cur  []byte // what Read has not given yet of the last chunk
	held bool   // a chunk is being given: the goroutine waits for ack
	err  error  // the body's end, once seen

	mu      sync.Mutex
	stopped bool
	rdl     chan struct{} // closed at the read deadline; nil for none
	timer   *time.Timer
	changed chan struct{} // closed when the deadline changes, made by a waiting Read
}

// h2Chunk is what the goroutine read from the body.
type h2Chunk struct {
	b   []byte
	err error
}

func newBodyReader(body io.ReadCloser) *bodyReader {
	return &bodyReader{body: body, in: make(chan h2Chunk), ack: make(chan struct{}),
		done: make(chan struct{}), ended: make(chan struct{})}
}

func (b *bodyReader) start() { b.once.Do(func() { go b.pump() }) }

func (b *bodyReader) pump() {
	defer close(b.ended)
	p := bufpool.Get(16 << 10)
	defer bufpool.Put(p)
	buf := (*p)[:cap(*p)]
	for {
		n, err := b.body.Read(buf)
		if err != nil && err != io.EOF {
			err = streamGone{err}
		}
		select {
		case b.in <- h2Chunk{buf[:n], err}:
		case <-b.done:
			if err == nil {
				b.drain()
			}
			return
		}
		if err != nil {
			return
		}
		select {
		case <-b.ack:
		case <-b.done:
			b.drain()
			return
		}
	}
}

// drain reads what is left of the body once Reads have stopped, into a
// buffer of its own: a Read may be copying from the last chunk.
func (b *bodyReader) drain() { io.Copy(io.Discard, b.body) }

// Read is a net.Conn's: one reader at a time.
func (b *bodyReader) Read(p []byte) (int, error) {
	select {
	case <-b.done:
		return 0, net.ErrClosed
	default:
	}
	b.start()
	for len(b.cur) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		if b.held {
			b.held = false
			select {
			case b.ack <- struct{}{}:
			case <-b.done:
				return 0, net.ErrClosed
			}
		}
		b.mu.Lock()
		dl := b.rdl
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case c := <-b.in:
			b.cur, b.err, b.held = c.b, c.err, c.err == nil
		case <-dl:
			return 0, os.ErrDeadlineExceeded
		case <-changed: // wait for the new deadline
		case <-b.done:
			return 0, net.ErrClosed
		}
	}
	n := copy(p, b.cur)
	b.cur = b.cur[n:]
	return n, nil
}

// SetReadDeadline wakes a Read at t, as a net.Conn's deadline does; a
// Read waiting already waits for the new deadline.
func (b *bodyReader) SetReadDeadline(t time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.rdl = nil
	if t.IsZero() || b.stopped {
		return nil
	}
	ch := make(chan struct{})
	b.rdl = ch
	if d := time.Until(t); d <= 0 {
		close(ch)
	} else {
		b.timer = time.AfterFunc(d, func() { close(ch) })
	}
	return nil
}

// stop ends Reads; the goroutine goes on reading, and dropping, what comes
// until the body ends, which ended then reports. It reports whether this
// call stopped the reader.
func (b *bodyReader) stop() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return false
	}
	b.stopped = true
	if b.timer != nil {
		b.timer.Stop()
	}
	close(b.done)
	b.start()
	return true
}

// streamGone is the error of a stream that ended without END_STREAM: the
// peer reset it (a browser closing its tab cancels its streams) or the
// connection under it was lost. To the session the peer went away in the
// middle, as when a TCP connection is cut: it matches io.ErrUnexpectedEOF.
type streamGone struct{ err error }

func (e streamGone) Error() string   { return "wskit: the HTTP/2 stream ended: " + e.err.Error() }
func (e streamGone) Unwrap() []error { return []error{e.err, io.ErrUnexpectedEOF} }
