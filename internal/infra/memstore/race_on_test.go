//go:build race

package memstore

// raceEnabled is whether the race detector is on: the tests too slow under
// it run in make test's second pass, without it.
const raceEnabled = true
