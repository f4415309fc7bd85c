//go:build linux && !race

package memstore

import (
	"reflect"
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/webtracker/tracker/internal/domain"
)

// Tables that grow in turn, as the pages of a store do, reuse the memory of
// the tables they replace, whatever their sizes; and once all are freed,
// the free blocks merge back into one per chunk, and the pages kept for
// reuse stay within bounds.
func TestArenaReusesAndMerges(t *testing.T) {
	t.Parallel()
	a := newArena()
	const tables = 200
	sets := make([][]uint64, tables)
	peak := 0
	for size := minSlots; size < 10_000; size = nextSize(size) {
		for i := range sets {
			t := a.alloc(size)
			if sets[i] != nil {
				a.free(sets[i])
			}
			sets[i] = t
		}
		peak = max(peak, a.live)
	}
	mapped := 0
	for _, c := range a.chunks.all {
		mapped += c.cut
	}
	if mapped > 2*peak {
		t.Errorf("%d bytes cut from chunks for %d live at most; want at most twice", mapped, peak)
	}
	for _, s := range sets {
		a.free(s)
	}
	if a.live != 0 {
		t.Errorf("live = %d bytes after freeing every table, want 0", a.live)
	}
	if a.pending > retainMin {
		t.Errorf("pending = %d bytes with nothing live, want at most %d", a.pending, retainMin)
	}
	for i, c := range a.chunks.all {
		if len(c.free) != 1 || c.free[0] != uint32(c.cut) {
			t.Errorf("chunk %d: free blocks %v, want one of %d bytes at 0", i, c.free, c.cut)
		}
	}
}

// The arena's lists of free blocks are on the Go heap, outside its blocks:
// tens of thousands of holes between live tables count in the slack the
// memory limit bounds, and once they merge away the maps and bins are made
// anew, small, and count no more (a Go map keeps the size it grew to).
func TestFreeListsCount(t *testing.T) {
	t.Parallel()
	a := newArena()
	const tables = 160_000
	blocks := make([][]uint64, tables)
	for i := range blocks {
		blocks[i] = a.alloc(lineSlots)
	}
	base := a.slackBytes()
	for i := 0; i < tables; i += 2 {
		a.free(blocks[i]) // a hole between two live blocks
	}
	holes := a.slackBytes() - base
	if min := int64(tables / 2 * (mapMeta + binMeta)); holes < min {
		t.Errorf("slack grew by %d bytes for %d holes, want at least %d for their lists", holes, tables/2, min)
	}
	for i := 1; i < tables; i += 2 {
		a.free(blocks[i])
	}
	// The last blocks freed are kept for reuse (see arena.kept) until the
	// arena drains them, as it does before it hands pages back.
	a.mu.Lock()
	a.drain()
	a.publishSlack()
	a.mu.Unlock()
	c := a.wild
	if len(c.free) != 1 || c.peak > tables/2/8 {
		t.Errorf("after every block is freed: %d free blocks, peak %d; want 1 and the maps made anew from %d", len(c.free), c.peak, tables/2)
	}
	if got := a.slackBytes(); got > holes/4 {
		t.Errorf("slack = %d bytes with nothing live, want a quarter of the %d the holes took at most", got, holes)
	}
}

// A store that nobody holds any more gives its mappings back. The test
// measures the resident set of the process, so it does not run in parallel.
func TestStoreIsUnmapped(t *testing.T) {
	const (
		stores = 10
		pages  = 100
		pairs  = 400_000 // over 4 MB of tables a store
	)
	pageURLs := make([]domain.PageURL, pages)
	for i := range pageURLs {
		pageURLs[i] = pageN(t, i)
	}
	ids := make([]domain.VisitorID, pairs/pages)
	for i := range ids {
		ids[i] = visitorN(t, i)
	}
	runtime.GC()
	before, err := residentBytes()
	if err != nil {
		t.Skip(err)
	}
	for range stores {
		s := New()
		for _, id := range ids {
			for _, page := range pageURLs {
				record(t, s, page, id)
			}
		}
	}
	// Cleanups run on a goroutine of their own after a GC. Leaked, the
	// tables would take 40 MB; the heap's garbage takes a few.
	var grown int64
	for range 100 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		after, err := residentBytes()
		if err != nil {
			t.Fatal(err)
		}
		if grown = after - before; grown < stores*pairs*10/2 {
			return
		}
	}
	t.Errorf("resident set grew by %d bytes over %d dropped stores of %d pairs", grown, stores, pairs)
}

// Slack is what the live blocks' pages hold beyond the blocks: a page's rest
// while one small table lives on it, nothing once a page is full or empty
// (and the free lists, which TestFreeListsCount checks).
func TestArenaSlack(t *testing.T) {
	t.Parallel()
	a := newArena()
	pageSlack := func() int64 { return a.slackBytes() - int64(a.listBytes()) }
	small := a.alloc(minSlots) // one cache line
	if got, want := pageSlack(), int64(pageSize-minSlots*8); got != want {
		t.Errorf("one %d-byte table: slack %d, want %d", minSlots*8, got, want)
	}
	rest := a.alloc(pageSize/8 - minSlots) // the rest of the page
	if got := pageSlack(); got != 0 {
		t.Errorf("a full page: slack %d, want 0", got)
	}
	a.free(small)
	if got, want := pageSlack(), int64(minSlots*8); got != want {
		t.Errorf("the first table freed: slack %d, want %d", got, want)
	}
	a.free(rest)
	if got := pageSlack(); got != 0 {
		t.Errorf("every table freed: slack %d, want 0", got)
	}
}

// A small block freed is kept for the next table of its size, which gets
// it back zeroed, without the free maps; it counts as free on its page; past
// keptMax of a size, blocks go to the free maps; and once drained, kept
// blocks merge with their neighbours.
func TestArenaKeepsSmallBlocks(t *testing.T) {
	t.Parallel()
	a := newArena()
	pageSlack := func() int64 { return a.slackBytes() - int64(a.listBytes()) }
	const size = 2 * lineSlots
	blocks := make([][]uint64, keptMax+2)
	for i := range blocks {
		blocks[i] = a.alloc(size)
		blocks[i][0] = uint64(i + 1)
	}
	guard := a.alloc(lineSlots) // keeps the last block from the chunk's uncut rest
	c := a.wild
	before := pageSlack()
	a.free(blocks[0])
	if got, want := pageSlack()-before, int64(size*8); got != want {
		t.Errorf("a kept block adds %d bytes of slack, want its %d", got, want)
	}
	if len(c.free) != 0 {
		t.Errorf("a kept block is in the free maps: %v", c.free)
	}
	again := a.alloc(size)
	if &again[0] != &blocks[0][0] || again[0] != 0 {
		t.Errorf("the next table of the size: %p (first word %d), want the kept %p, zeroed", &again[0], again[0], &blocks[0][0])
	}
	blocks[0] = again
	for _, b := range blocks[:keptMax+1] {
		a.free(b)
	}
	if len(a.kept[size/lineSlots-1]) != keptMax || len(c.free) != 1 {
		t.Errorf("%d blocks freed: %d kept and %d free blocks, want %d and 1", keptMax+1, len(a.kept[size/lineSlots-1]), len(c.free), keptMax)
	}
	a.free(blocks[keptMax+1])
	a.free(guard)
	a.mu.Lock()
	a.drain()
	a.mu.Unlock()
	if len(c.free) != 1 || c.free[0] != uint32(c.cut) || a.live != 0 {
		t.Errorf("every block freed and drained: free blocks %v, %d bytes live; want one of %d bytes at 0, none live", c.free, a.live, c.cut)
	}
}

// A block the arena takes from the Go heap, when the OS refuses a mapping,
// stays alive while a day's table refers to it, which a tableRef alone
// would not ensure, and goes once freed.
func TestArenaKeepsHeapBlocks(t *testing.T) {
	a := newArena()
	var day dayTable
	day.setBlk(a.heapBlock(lineSlots))
	day.blk()[0] = 42
	w := weak.Make(&day.blk()[0])
	runtime.GC()
	runtime.GC()
	if w.Value() == nil || day.blk()[0] != 42 {
		t.Fatal("a block from the Go heap was collected while a table referred to it")
	}
	a.free(day.blk())
	day = dayTable{}
	defer runtime.KeepAlive(a) // the arena lives on: only its free lets the block go
	for range 10 {
		runtime.GC()
		if w.Value() == nil {
			return
		}
	}
	t.Error("a block from the Go heap stayed alive after it was freed")
}

// TestNoPointersToScan: what the store keeps by the million or the ten
// thousand on the Go heap, a page's list of days and the arena's lists of
// free blocks, holds no pointer, so the garbage collector marks it without
// scanning it (see tableRef and extent).
func TestNoPointersToScan(t *testing.T) {
	t.Parallel()
	if pointerIn(reflect.TypeFor[[2]struct {
		n, p uintptr
		c    *chunk
	}]()) == "" {
		t.Fatal("pointerIn misses a pointer")
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[dayTable](), reflect.TypeFor[extent]()} {
		if path := pointerIn(typ); path != "" {
			t.Errorf("%v holds a pointer: %s", typ, path)
		}
	}
}

// pointerIn returns where typ holds a pointer, or "" if nowhere.
func pointerIn(typ reflect.Type) string {
	switch typ.Kind() {
	case reflect.Struct:
		for i := range typ.NumField() {
			f := typ.Field(i)
			if path := pointerIn(f.Type); path != "" {
				return f.Name + "." + path
			}
		}
		return ""
	case reflect.Array:
		return pointerIn(typ.Elem())
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return ""
	}
	return typ.String()
}
