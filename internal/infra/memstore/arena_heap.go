//go:build !linux || race

package memstore

import "unsafe"

// arena stands in for the mapped arena of arena_mmap.go where that one is
// not built: on systems other than Linux, and under the race detector, which
// does not see memory outside the Go heap and so would not check the tables.
// Tables are plain slices of the Go heap, and freeing one is the garbage
// collector's job.
type arena struct{}

// newArena returns an arena.
func newArena() *arena { return new(arena) }

// alloc returns a zeroed table of size slots.
func (a *arena) alloc(slots int) []uint64 { return make([]uint64, slots) }

// slackBytes is 0: a table on the Go heap costs its size (and the
// collector's headroom, which Stats.Bytes does not count here).
func (a *arena) slackBytes() int64 { return 0 }

// free leaves t to the garbage collector.
func (a *arena) free(t []uint64) {}

// tableRef is where a day's table is: here a pointer, which keeps the
// block alive (arena_mmap.go's is an address the collector does not scan).
type tableRef struct{ p unsafe.Pointer }

// refTo returns the reference of block b.
func refTo(b []uint64) tableRef { return tableRef{unsafe.Pointer(unsafe.SliceData(b))} }

// ptr returns the block's address, nil for none.
func (r tableRef) ptr() unsafe.Pointer { return r.p }
