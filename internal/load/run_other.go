//go:build !linux

package load

import "context"

// Run needs epoll: elsewhere it returns ErrUnsupported.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if _, err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	return nil, ErrUnsupported
}
