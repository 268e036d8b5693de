package wskit

import (
	"context"
	"fmt"
	"sync"
)

// Topics is a set of hubs by name, such as chat rooms: one server can run
// many of them cheaply, since a hub holds no goroutine and, without replay,
// nothing between messages. A hub is made when first used, and forgotten
// (closed) when its last subscriber leaves unless it replays messages,
// which it keeps for the next subscriber until Delete.
//
// With a Broker (HubOptions.Broker), each topic is a hub spread over the
// nodes, named on the broker HubOptions.Topic followed by the topic's
// name: a node follows a topic only while it has subscribers to it, and
// forgets it, replay included, when they leave (the broker's history then
// serves the replay, if it keeps one). Publish goes straight to the broker,
// and makes no hub.
type Topics struct {
	opts HubOptions
	mu   sync.Mutex
	hubs map[string]*Hub
}

// NewTopics returns an empty set whose hubs all have opts, or an error
// wrapping ErrInvalidOptions.
func NewTopics(opts HubOptions) (*Topics, error) {
	check := opts
	if check.Broker != nil {
		check.Topic += "topic" // each hub's is its name after the prefix
	}
	if _, err := NewHub(check); err != nil {
		return nil, err
	}
	return &Topics{opts: opts, hubs: make(map[string]*Hub)}, nil
}

// Subscribe subscribes s to the topic name, making its hub if needed (see
// Hub.Subscribe).
func (t *Topics) Subscribe(name string, s *Session) error {
	_, err := t.subscribe(context.Background(), name, s, 0, false)
	return err
}

// SubscribeAfter subscribes s to the topic name with what it missed after
// the message seq (see Hub.SubscribeAfter), making its hub if needed.
func (t *Topics) SubscribeAfter(ctx context.Context, name string, s *Session, seq uint64) (recovered bool, err error) {
	return t.subscribe(ctx, name, s, seq, true)
}

func (t *Topics) subscribe(ctx context.Context, name string, s *Session, after uint64, recover bool) (bool, error) {
	for {
		t.mu.Lock()
		h := t.hubs[name]
		made := h == nil
		if made {
			h = t.newHub(name)
		}
		t.mu.Unlock()
		// Not under t.mu: with a broker, the hub may wait for it.
		recovered, err := h.subscribe(ctx, s, after, recover)
		switch {
		case err == ErrHubClosed:
			continue // its last subscriber left, or Delete, meanwhile
		case err != nil && made:
			t.forget(h) // made for nobody
		}
		return recovered, err
	}
}

// newHub makes the hub of the topic name. t.mu is held.
func (t *Topics) newHub(name string) *Hub {
	opts := t.opts
	if opts.Broker != nil {
		opts.Topic += name
	}
	h, _ := NewHub(opts) // the options were checked by NewTopics
	h.topics, h.name = t, name
	t.hubs[name] = h
	return h
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
//
// With a broker, it publishes to the topic on every node (see Hub.Publish).
func (t *Topics) Publish(ctx context.Context, name string, typ MessageType, p []byte) error {
	if b := t.opts.Broker; b != nil {
		if typ != Text && typ != Binary {
			return fmt.Errorf("wskit: publish of a %v message: only text and binary messages can be published", typ)
		}
		if err := b.Publish(ctx, t.opts.Topic+name, typ, p); err != nil {
			return fmt.Errorf("wskit: publish on the broker: %w", err)
		}
		return nil
	}
	t.mu.Lock()
	h := t.hubs[name]
	if h == nil && t.opts.Replay > 0 {
		h = t.newHub(name)
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

// prune forgets h if nobody subscribes to it and it replays nothing on
// this node alone.
func (t *Topics) prune(h *Hub) {
	if t.opts.Replay == 0 || t.opts.Broker != nil {
		t.forget(h)
	}
}

// forget closes and forgets h if nobody subscribes to it.
func (t *Topics) forget(h *Hub) {
	t.mu.Lock()
	h.mu.Lock()
	var bs BrokerSubscription
	if len(h.subs) == 0 && t.hubs[h.name] == h {
		delete(t.hubs, h.name)
		bs = h.closeLocked()
	}
	h.mu.Unlock()
	t.mu.Unlock()
	if bs != nil {
		bs.Unsubscribe()
	}
}
