package autobahn

import (
	"net"
	"runtime"
	"sync"
	"time"
)

// writer writes queued chunks in order on its own goroutine, so that the
// loop never blocks on the network, as Twisted's transport.write.
type writer struct {
	conn    net.Conn
	mu      sync.Mutex
	cond    *sync.Cond
	q       []chunk
	closing bool // close the connection once the queue is written
	stopped bool
	done    chan struct{}
}

// chunk is one write. A sync chunk is written on its own; pause adds a short
// pause after it, as Autobahn re-enters its reactor between chopped writes.
type chunk struct {
	b     []byte
	sync  bool
	pause bool
}

func newWriter(c net.Conn) *writer {
	w := &writer{conn: c, done: make(chan struct{})}
	w.cond = sync.NewCond(&w.mu)
	go w.run()
	return w
}

func (w *writer) push(cs []chunk) {
	w.mu.Lock()
	if !w.stopped && !w.closing {
		w.q = append(w.q, cs...)
		w.cond.Signal()
	}
	w.mu.Unlock()
}

func (w *writer) abort() {
	w.mu.Lock()
	w.stopped = true
	w.q = nil
	w.cond.Signal()
	w.mu.Unlock()
}

// stop ends the writer and waits for it: at once, unless it is writing what
// is left before closing (which the write deadline bounds).
func (w *writer) stop() {
	w.mu.Lock()
	flushing := w.closing && !w.stopped
	if !flushing {
		w.stopped, w.q = true, nil
	}
	w.cond.Signal()
	w.mu.Unlock()
	if !flushing {
		w.conn.Close()
	}
	<-w.done
}

func (w *writer) closeAfterFlush() {
	w.mu.Lock()
	w.closing = true
	w.cond.Signal()
	w.mu.Unlock()
	w.conn.SetWriteDeadline(time.Now().Add(time.Second))
}

func (w *writer) run() {
	defer close(w.done)
	var bufs net.Buffers
	for {
		w.mu.Lock()
		for len(w.q) == 0 && !w.closing && !w.stopped {
			w.cond.Wait()
		}
		if w.stopped || len(w.q) == 0 {
			closing := w.closing && !w.stopped
			w.mu.Unlock()
			if closing {
				w.conn.Close()
			}
			return
		}
		// A sync chunk alone, else every plain chunk up to the next sync one.
		n := 1
		if !w.q[0].sync {
			for n < len(w.q) && !w.q[n].sync {
				n++
			}
		}
		batch := w.q[:n:n]
		w.q = w.q[n:]
		w.mu.Unlock()

		bufs = bufs[:0]
		for _, c := range batch {
			bufs = append(bufs, c.b)
		}
		if _, err := bufs.WriteTo(w.conn); err != nil {
			w.mu.Lock()
			w.stopped, w.q = true, nil
			w.mu.Unlock()
			return
		}
		if batch[0].pause {
			spin(syncPause)
		}
	}
}

// spin waits d without sleeping: time.Sleep rounds tiny waits up to about a
// millisecond, which would make chopped sends crawl.
func spin(d time.Duration) {
	t := time.Now()
	for time.Since(t) < d {
		runtime.Gosched()
	}
}
