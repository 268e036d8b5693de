//go:build race

package servers

// raceEnabled is true when built with -race.
const raceEnabled = true
