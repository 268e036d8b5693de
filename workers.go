package wskit

import (
	"sync"
	"unsafe"

	"github.com/wskit/wskit/internal/bufpool"
)

// jobKind says which callback a job runs.
type jobKind uint8

const (
	jobOpen jobKind = iota + 1
	jobMessage
	jobClose
)

// job is one callback of an event session.
type job struct {
	kind jobKind
	m    Message
	buf  *[]byte // the copy of m's payload, when queued for a worker
}

// jobOverhead is what a queued job costs beyond its payload's buffer.
const jobOverhead = int(unsafe.Sizeof(job{}))

// cost is the memory j holds while queued: its slot and its payload's copy,
// so that a flood of empty messages is bounded by IncomingQueue too.
func (j *job) cost() int {
	if j.buf == nil {
		return jobOverhead
	}
	return jobOverhead + cap(*j.buf)
}

// workerPool runs the callbacks of event sessions off the loop
// (Options.Workers). Sessions with work wait in a run queue, each at most
// once, so the queue is bounded by the number of sessions; each session's
// queued messages are bounded by Options.IncomingQueue, past which its
// connection stops being read.
type workerPool struct {
	mu      sync.Mutex
	cond    *sync.Cond
	ready   []*jobQueue
	stopped bool
	wg      sync.WaitGroup
}

func newWorkerPool(n int) *workerPool {
	p := &workerPool{}
	p.cond = sync.NewCond(&p.mu)
	for range n {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

func (p *workerPool) submit(q *jobQueue) {
	p.mu.Lock()
	p.ready = append(p.ready, q)
	p.mu.Unlock()
	p.cond.Signal()
}

func (p *workerPool) work() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		for len(p.ready) == 0 && !p.stopped {
			p.cond.Wait()
		}
		if len(p.ready) == 0 {
			p.mu.Unlock()
			return
		}
		q := p.ready[0]
		p.ready[0] = nil
		p.ready = p.ready[1:]
		p.mu.Unlock()
		q.drain()
	}
}

// stop lets the workers finish the queued work and return.
func (p *workerPool) stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.cond.Broadcast()
	p.wg.Wait()
}

// jobQueue holds one session's callbacks in order.
type jobQueue struct {
	lc      *loopConn
	mu      sync.Mutex
	jobs    []job
	bytes   int
	running bool
	paused  bool
}

// push queues j (copying a message's payload) and schedules the session.
func (q *jobQueue) push(j job) {
	if j.kind == jobMessage {
		j.buf = bufpool.Get(len(j.m.Payload))
		*j.buf = append((*j.buf)[:0], j.m.Payload...)
		j.m.Payload = *j.buf
	}
	q.mu.Lock()
	q.jobs = append(q.jobs, j)
	q.bytes += j.cost()
	if q.bytes > q.lc.s.opts.IncomingQueue && !q.paused {
		q.paused = true
		q.lc.pe.PauseRead()
		q.lc.s.shard().incomingFull.Add(1)
	}
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		q.lc.engine().workers.submit(q)
	}
}

// drain runs the queued callbacks until none is left.
func (q *jobQueue) drain() {
	for {
		q.mu.Lock()
		if len(q.jobs) == 0 {
			q.running = false
			q.jobs = nil
			q.mu.Unlock()
			return
		}
		j := q.jobs[0]
		q.jobs[0] = job{}
		q.jobs = q.jobs[1:]
		q.mu.Unlock()
		q.lc.run(j)
		q.mu.Lock()
		q.bytes -= j.cost()
		if j.buf != nil {
			bufpool.Put(j.buf)
		}
		if q.paused && q.bytes <= q.lc.s.opts.IncomingQueue/2 {
			q.paused = false
			q.lc.pe.ResumeRead()
		}
		q.mu.Unlock()
	}
}
