package servers

import (
	"sync"
)

// connSet holds the connections a server has handed to a library that
// does not close them itself on shutdown (net/http forgets hijacked
// connections), so that Close can end them and wait for their handlers.
type connSet[C comparable] struct {
	mu     sync.Mutex
	conns  map[C]struct{}
	closed bool
	wg     sync.WaitGroup // one per connection added and not yet done
}

// add records c; it reports false, and records nothing, once closeAll has
// run.
func (s *connSet[C]) add(c C) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[C]struct{})
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

// done forgets c once its handler has finished with it; a c that add
// refused is ignored.
func (s *connSet[C]) done(c C) {
	s.mu.Lock()
	_, ok := s.conns[c]
	delete(s.conns, c)
	s.mu.Unlock()
	if ok {
		s.wg.Done()
	}
}

// closeAll refuses further connections, calls close on every one held and
// waits until all of them are done.
func (s *connSet[C]) closeAll(close func(C)) {
	s.mu.Lock()
	s.closed = true
	held := make([]C, 0, len(s.conns))
	for c := range s.conns {
		held = append(held, c)
	}
	s.mu.Unlock()
	for _, c := range held {
		close(c)
	}
	s.wg.Wait()
}
