//go:build !linux

package load

import (
	"context"
	"time"
)

// Run needs epoll: elsewhere it returns ErrUnsupported.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if _, err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	return nil, ErrUnsupported
}

// ProcessCPU needs /proc: elsewhere it returns ErrUnsupported.
func ProcessCPU(pid int) (time.Duration, error) { return 0, ErrUnsupported }

// ProcessRSS needs /proc: elsewhere it returns ErrUnsupported.
func ProcessRSS(pid int) (int64, error) { return 0, ErrUnsupported }

// SelfCPU is not measured here: it returns 0.
func SelfCPU() time.Duration { return 0 }
