//go:build race

package bench

// raceEnabled is true when built with -race. Under it sync.Pool drops items
// at random, so allocation counts of pooled paths are not exact.
// (wskit's internal/race cannot be imported from this module.)
const raceEnabled = true
