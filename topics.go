package wskit

import (
	"context"
	"sync"
)

// Topics is a set of hubs by name, such as chat rooms: one server can run
// many of them cheaply, since a hub holds no goroutine and, without replay,
// nothing between messages. A hub is made when first used, and forgotten
// (closed) when its last subscriber leaves unless it replays messages,
// which it keeps for the next subscriber until Delete.
type Topics struct {
	opts HubOptions
	mu   sync.Mutex
	hubs map[string]*Hub
}

// NewTopics returns an empty set whose hubs all have opts, or an error
// wrapping ErrInvalidOptions.
func NewTopics(opts HubOptions) (*Topics, error) {
	if _, err := NewHub(opts); err != nil {
		return nil, err
	}
	return &Topics{opts: opts, hubs: make(map[string]*Hub)}, nil
}

// Subscribe subscribes s to the topic name, making its hub if needed.
func (t *Topics) Subscribe(name string, s *Session) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.hubs[name]
	made := h == nil
	if made {
		h, _ = NewHub(t.opts) // the options were checked by NewTopics
		h.topics, h.name = t, name
		t.hubs[name] = h
	}
	err := h.Subscribe(s)
	if err != nil && made {
		delete(t.hubs, name) // made for nobody
		h.Close()
	}
	return err
}

// Unsubscribe removes s from the topic name and reports whether it was
// subscribed.
func (t *Topics) Unsubscribe(name string, s *Session) bool {
	h := t.Hub(name)
	return h != nil && h.Unsubscribe(s)
}

// Publish publishes to the topic name (see Hub.Publish). A topic nobody
// subscribes to drops the message, unless it replays: then it is made and
// keeps the message for later subscribers.
func (t *Topics) Publish(ctx context.Context, name string, typ MessageType, p []byte) error {
	t.mu.Lock()
	h := t.hubs[name]
	if h == nil && t.opts.Replay > 0 {
		h, _ = NewHub(t.opts)
		h.topics, h.name = t, name
		t.hubs[name] = h
	}
	t.mu.Unlock()
	if h == nil {
		return nil
	}
	err := h.Publish(ctx, typ, p)
	if err == ErrHubClosed {
		return nil // the topic lost its last subscriber meanwhile
	}
	return err
}

// Hub returns the hub of the topic name, or nil if there is none.
func (t *Topics) Hub(name string) *Hub {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.hubs[name]
}

// Len returns the number of topics.
func (t *Topics) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.hubs)
}

// Delete closes the topic name's hub (its subscribers stay open) and
// forgets it.
func (t *Topics) Delete(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if h := t.hubs[name]; h != nil {
		delete(t.hubs, name)
		h.Close()
	}
}

// prune forgets h if nobody subscribes to it and it replays nothing.
func (t *Topics) prune(h *Hub) {
	if t.opts.Replay > 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) == 0 && t.hubs[h.name] == h {
		delete(t.hubs, h.name)
		h.closeLocked()
	}
}
