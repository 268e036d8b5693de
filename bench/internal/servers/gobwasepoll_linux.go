package servers

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/gobwas/pool/pbufio"
	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// gobwasWorkers is the size of gobwas-epoll's worker pool: the 128 of the
// "million WebSockets" article's pool. A worker blocks while a frame it
// started to read is incomplete, so the pool is larger than the CPUs.
const gobwasWorkers = 128

// gobwasPeer is a connection of gobwas-epoll and its ws.State. The state
// passes from worker to worker through epoll, which the race detector
// cannot see: it is kept in an atomic.
type gobwasPeer struct {
	c     net.Conn
	fd    int32
	state atomic.Uint32
}

// gobwasTask is one job of the pool: upgrade a new connection, or answer
// the frames of one that epoll reported readable.
type gobwasTask struct {
	c    net.Conn    // a new connection to upgrade
	peer *gobwasPeer // or a readable one
}

// gobwasPoll is gobwas/ws in the design of its author's "million
// WebSockets" article (its Mail.Ru chat server): connections are accepted
// by one goroutine and upgraded on a worker pool with ws.Upgrader, then
// registered with epoll and left without a goroutine or a buffer; when one
// becomes readable a worker takes a bufio.Reader from gobwas/pool's pbufio
// (as the article reuses its buffers), answers the frames with gobwasEcho,
// returns the reader and re-arms the connection. The article uses
// mailru/easygo's netpoll, which the module proxy does not serve: this is
// the same loop on golang.org/x/sys/unix, one-shot and level-triggered like
// netpoll's HandleReadOnce and Resume, so that one worker at a time reads a
// connection and data left in its socket wakes the loop again.
type gobwasPoll struct {
	batch bool // see gobwasEcho
	ln    net.Listener
	epfd  int
	wake  int // eventfd that ends the loop
	tasks chan gobwasTask

	mu      sync.Mutex
	conns   map[int32]*gobwasPeer
	closing bool

	accepted, looped, workers sync.WaitGroup
	stopped                   atomic.Bool
}

const gobwasEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

func (s *Server) startGobwasEpoll(ln net.Listener, batch bool) error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return err
	}
	p := &gobwasPoll{ln: ln, epfd: epfd, wake: wake, tasks: make(chan gobwasTask, 1024), conns: make(map[int32]*gobwasPeer), batch: batch}
	for range gobwasWorkers {
		p.workers.Go(p.work)
	}
	p.looped.Go(p.loop)
	p.accepted.Go(p.accept)
	s.stop = func() error {
		p.stop()
		s.done <- nil
		return nil
	}
	return nil
}

func (p *gobwasPoll) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.tasks <- gobwasTask{c: c}
	}
}

// loop hands every readable connection to the pool.
func (p *gobwasPoll) loop() {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			if ev.Fd == int32(p.wake) {
				return
			}
			p.mu.Lock()
			peer := p.conns[ev.Fd]
			p.mu.Unlock()
			if peer != nil {
				p.tasks <- gobwasTask{peer: peer}
			}
		}
	}
}

// work runs tasks until the pool closes. Its echo state (and output
// buffer) serves every connection it reads.
func (p *gobwasPoll) work() {
	e := gobwasEcho{batch: p.batch}
	ev := unix.EpollEvent{Events: gobwasEvents}
	for t := range p.tasks {
		if t.peer == nil {
			p.register(t.c, &ev)
			continue
		}
		c := t.peer.c
		br := pbufio.GetReader(c, 4<<10)
		st := ws.State(t.peer.state.Load())
		err := e.serve(c, br, &st)
		t.peer.state.Store(uint32(st))
		if err == nil {
			err = e.flush(c)
		}
		e.out.b = e.out.b[:0]
		pbufio.PutReader(br)
		if err != nil {
			p.drop(t.peer)
			continue
		}
		ev.Fd = t.peer.fd
		if unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(ev.Fd), &ev) != nil {
			p.drop(t.peer)
		}
	}
}

// register upgrades c and adds it to epoll, or closes it.
func (p *gobwasPoll) register(c net.Conn, ev *unix.EpollEvent) {
	fd := -1
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			rc.Control(func(f uintptr) { fd = int(f) })
		}
	}
	if fd < 0 || gobwasUpgrade(c) != nil {
		c.Close()
		return
	}
	peer := &gobwasPeer{c: c, fd: int32(fd)}
	peer.state.Store(uint32(ws.StateServerSide))
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.conns[peer.fd] = peer
	p.mu.Unlock()
	ev.Fd = peer.fd
	if unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, ev) != nil {
		p.drop(peer)
	}
}

// drop forgets a connection and closes it, taking it out of epoll first:
// its descriptor's number may be reused once closed.
func (p *gobwasPoll) drop(peer *gobwasPeer) {
	p.mu.Lock()
	if p.conns[peer.fd] == peer {
		delete(p.conns, peer.fd)
		unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(peer.fd), nil)
	}
	p.mu.Unlock()
	peer.c.Close()
}

// stop closes the listener and every connection, ends the loop and the
// workers, and closes the descriptors of its own.
func (p *gobwasPoll) stop() {
	if p.stopped.Swap(true) {
		return
	}
	p.ln.Close()
	p.mu.Lock()
	p.closing = true
	for fd, peer := range p.conns {
		unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
		delete(p.conns, fd)
		peer.c.Close()
	}
	p.mu.Unlock()
	p.accepted.Wait()
	var one [8]byte
	one[0] = 1
	unix.Write(p.wake, one[:])
	p.looped.Wait()
	close(p.tasks)
	p.workers.Wait()
	unix.Close(p.epfd)
	unix.Close(p.wake)
}
