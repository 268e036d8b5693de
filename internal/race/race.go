//go:build race

// Package race reports whether the race detector is on. Under it sync.Pool
// drops items at random, so allocation counts of pooled paths are not exact.
package race

// Enabled is true when built with -race.
const Enabled = true
