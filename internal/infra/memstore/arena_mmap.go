//go:build linux && !race

package memstore

import (
	"math/bits"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// arena hands out the visitor tables of one Store from anonymous private
// mappings of its own, off the Go heap, and takes them back when they grow.
//
// Off the heap, a table costs its size in resident memory and little more:
// on the heap it would also cost the GC's headroom (with GOGC=100 the heap
// grows to twice what is live before a collection), and each grow would
// leave its old table as garbage until the next cycle.
//
// The arena is a small allocator of its own. Blocks are cut from chunks of
// chunkSize bytes, mapped as needed; a freed block merges with the free
// blocks next to it, and the next table of any size that fits takes (part
// of) the result. This matters because tables grow by a quarter: without the
// merging, a freed table would only ever suit one of the same size, and
// every grow would write new pages, which costs a page fault each (10 µs on
// some virtual machines). A block past chunkSize/4 gets a mapping of its
// own, unmapped when it is freed.
//
// Each OS page of a chunk counts the bytes of live blocks on it. A page whose
// count falls to 0 is kept for reuse while such pages add up to less than
// retainDiv-th of the live tables (and at least retainMin); past that, all
// of them go back to the OS at once (madvise MADV_DONTNEED: they read as
// zeros and cost nothing until written again). So the resident memory of
// the arena is its live tables, the pages they share with free blocks, and
// at most that bounded reserve, whatever the garbage collector does.
//
// Small blocks, of up to keptLines lines, are kept apart when freed, by
// size, for the next table of that size (see arena.kept): a day's table
// starts at a line and doubles, so blocks of the same few sizes are freed
// and asked for all the time, and keeping them spares both calls the free
// maps, which cost a few cache misses each (about 1 µs an alloc and free
// together under ingest). Kept blocks count as free on their pages, so as
// slack or pending pages like others; they join the free maps, and merge,
// when the arena hands pages back to the OS (see drain).
//
// A grow takes the arena's lock briefly, twice (alloc and free), under the
// lock of its set's page or stripe. Nothing reads a table without that lock
// but Visitors, which reads only a page's atomic count; so once a grow has
// copied a table, nobody reads it again, and its memory can be reused at once.
//
// A cleanup unmaps every chunk once the arena is unreachable: the Store
// holds it, and so does every set, so that a set still in hand keeps its
// table mapped.
//
// Under the race detector, which does not see memory outside the Go heap,
// and on other systems, tables come from the Go heap instead (arena_heap.go).
type arena struct {
	mu     sync.Mutex
	chunks *chunks // guarded by mu
	// wild is the chunk whose untouched tail, from wild.cut on, new blocks
	// are cut from once no free block fits, or nil; guarded by mu.
	wild *chunk
	// bins holds the free blocks by size class, floor(log2(size/lineSize)),
	// as stacks. An entry is stale once its block has merged or been
	// taken: the chunk's free map is what counts. Guarded by mu.
	bins    [binCount][]extent
	filled  uint32 // bit b is set while bins[b] has entries; guarded by mu
	entries int    // entries in bins, stale or not; guarded by mu
	extents int    // free blocks; guarded by mu
	live    int    // bytes of live blocks; guarded by mu
	// livePages counts the OS pages that hold live blocks; guarded by mu.
	// slack is livePages' bytes less live: resident memory the blocks
	// share with free space, for the store's memory limit to count.
	livePages int
	slack     atomic.Int64
	pending   int // bytes of pages emptied and not yet handed back; guarded by mu
	// kept holds freed blocks of n lines in kept[n-1], at most keptMax
	// each, outside the free maps; keptCap sums their capacities. Guarded
	// by mu.
	kept    [keptLines][]extent
	keptCap int
	// mapPeaks sums the chunks' peaks (see chunk.peak), binCap the
	// capacities of the bins: what the free lists hold of the Go heap.
	// Guarded by mu.
	mapPeaks, binCap int
	// noPopulate is set once the kernel refuses MADV_POPULATE_WRITE (before
	// Linux 5.14).
	noPopulate atomic.Bool
	// heap keeps the blocks taken from the Go heap after a refused mapping,
	// by address, until freed: a tableRef does not keep them. Guarded by mu.
	heap map[uintptr][]uint64
}

// tableRef is where a day's table is: the address of its block. The days'
// entries are most of a store's Go heap, and with a pointer in each, the
// garbage collector scanned them all on every cycle (a sixth of its work
// under ingest-timed: 4.4 ms a cycle, 3.7 without) to find pointers it
// does not follow anyway, the arena's mappings not being its heap. An
// address is not a pointer to it: the entries are marked without being
// scanned. The block must come from an
// arena, not a nil one, which keeps a block it had to take from the Go heap
// (see arena.heap).
type tableRef struct{ addr uintptr }

// refTo returns the reference of block b.
func refTo(b []uint64) tableRef { return tableRef{uintptr(unsafe.Pointer(unsafe.SliceData(b)))} }

// ptr returns the block's address as a pointer, nil for none. It reads the
// address as a pointer rather than converting it, a conversion vet would
// rightly flag for memory the garbage collector moves or frees; neither
// happens to the arena's blocks.
func (r tableRef) ptr() unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&r.addr)) }

// extent is a free block, known by the number of its chunk (see
// chunks.shared) and its offset: with no pointer in them, the bins, which
// hold tens of thousands under ingest, are not scanned by the garbage
// collector.
type extent struct{ chunk, off uint32 }

// chunks are the mappings of an arena, by address: what its cleanup unmaps.
// shared are the ones blocks are cut from, by number (chunk.id), which stay
// mapped as long as the arena.
type chunks struct{ all, shared []*chunk }

// chunk is one mapping of an arena.
type chunk struct {
	mem       []byte // as syscall.Mmap returned it
	id        uint32 // its number in chunks.shared, if shared
	cut       int    // bytes cut from the start so far; beyond, never used
	populated int    // bytes from the start made resident ahead of use
	// The rest is nil for a mapping that holds a single block.
	// The free blocks, size by offset and offset by end: 32 bits are
	// enough within a chunk (a block past soloSize has a mapping of its
	// own), and halve the maps' size.
	free map[uint32]uint32
	ends map[uint32]uint32
	// peak is the most free blocks since the maps were made: a Go map
	// keeps the size it grew to, so they are made anew once an eighth of
	// that is left, of more than 4,096 (rebuilding makes garbage).
	peak    int
	live    []uint32 // bytes of live blocks on each OS page
	pending []bool   // emptied pages not yet handed back
}

const (
	// chunkSize is the size of a mapping blocks are cut from. Address space
	// is cheap and untouched pages cost nothing, so it is large enough to
	// keep the mappings of a big store to a few (Linux allows 65530 by
	// default, for the whole process).
	chunkSize = 64 << 20
	// soloSize is the size past which a block gets a mapping of its own
	// (a page of over a hundred million visitors), so that freeing it gives
	// back its address space too.
	soloSize = chunkSize / 4
	// lineSize aligns blocks to cache lines.
	lineSize = lineSlots * 8
	// binCount bounds the size classes of free blocks: up to chunkSize.
	binCount = 32
	// Emptied pages are kept for reuse up to 1/retainDiv of the live bytes,
	// and at least retainMin bytes.
	retainDiv = 16
	retainMin = 2 << 20
	// populateAhead is how far past the blocks cut from a chunk its pages
	// are made resident, in one call rather than a fault per page: a fault
	// costs a few µs on a virtual machine (10 µs on the one this was
	// measured on), where the call costs about 1 µs a page.
	populateAhead = 256 << 10
	// populateMin is the size from which a reused block has its pages made
	// resident in one call.
	populateMin = 64 << 10
	// keptLines is the size, in lines, up to which freed blocks are kept
	// for reuse by size, and keptMax how many of each size: at most 590 KiB
	// of blocks that have not merged with their neighbours.
	keptLines = 8
	keptMax   = 256
	// madvPopulateWrite is MADV_POPULATE_WRITE, which package syscall lacks.
	madvPopulateWrite = 23
)

// pageSize is the size of an OS page.
var pageSize = os.Getpagesize()

// newArena returns an empty arena, whose mappings are unmapped once it is
// unreachable.
func newArena() *arena {
	a := &arena{chunks: new(chunks)}
	runtime.AddCleanup(a, (*chunks).unmap, a.chunks)
	return a
}

// alloc returns a zeroed table of size slots. It falls back to the Go heap
// when a nil arena is asked, or when the OS refuses a mapping.
func (a *arena) alloc(slots int) []uint64 {
	if a == nil {
		return make([]uint64, slots)
	}
	size := slots * 8
	a.mu.Lock()
	p, reused, ahead := a.take(size)
	a.publishSlack()
	a.mu.Unlock()
	if ahead != nil && populate(ahead) != nil {
		// Out of the lock: populating changes no byte, so blocks cut from
		// those pages meanwhile are safe.
		a.noPopulate.Store(true)
	}
	if p == nil {
		return a.heapBlock(slots)
	}
	t := unsafe.Slice((*uint64)(p), slots)
	if reused {
		// Out of the lock: the block is this set's alone now. Some of its
		// pages may have gone back to the OS; a large block gets them back
		// in one call rather than a fault per page (see populateAhead).
		if size >= populateMin {
			_ = populate(unsafe.Slice((*byte)(p), size))
		}
		clear(t)
	}
	return t
}

// heapBlock returns a table of size slots from the Go heap, which the arena
// keeps alive until it is freed.
func (a *arena) heapBlock(slots int) []uint64 {
	t := make([]uint64, slots)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.heap == nil {
		a.heap = make(map[uintptr][]uint64)
	}
	a.heap[uintptr(unsafe.Pointer(unsafe.SliceData(t)))] = t
	return t
}

// take returns a block of size bytes, and whether it was used before (and
// so needs clearing), or nil if the OS refuses a mapping; and the pages to
// populate ahead of the blocks cut, if any. a.mu is held.
func (a *arena) take(size int) (p unsafe.Pointer, reused bool, ahead []byte) {
	if size > soloSize {
		c := a.chunks.add(size, false)
		if c == nil {
			return nil, false, nil
		}
		c.cut = size
		return unsafe.Pointer(&c.mem[0]), false, nil
	}
	size = (size + lineSize - 1) / lineSize * lineSize
	if lines := size / lineSize; lines <= keptLines && len(a.kept[lines-1]) > 0 {
		k := a.kept[lines-1]
		c, off := a.chunks.at(k[len(k)-1])
		a.kept[lines-1] = k[:len(k)-1]
		a.hold(c, off, size)
		return unsafe.Pointer(&c.mem[off]), true, nil
	}
	if e, free, ok := a.fit(size); ok {
		c, off := a.chunks.at(e)
		a.unfree(c, off, free)
		if free > size {
			a.addFree(c, off+size, free-size)
		}
		a.hold(c, off, size)
		return unsafe.Pointer(&c.mem[off]), true, nil
	}
	if a.wild == nil || a.wild.cut+size > len(a.wild.mem) {
		if c := a.wild; c != nil && c.cut < len(c.mem) {
			// The unused rest becomes a free block like another, and the
			// pages populated ahead pending pages like others.
			for page := (c.cut + pageSize - 1) / pageSize; page < c.populated/pageSize; page++ {
				c.pending[page] = true
				a.pending += pageSize
			}
			a.addFree(c, c.cut, len(c.mem)-c.cut)
			c.cut = len(c.mem)
		}
		if a.wild = a.chunks.add(chunkSize, true); a.wild == nil {
			return nil, false, nil
		}
	}
	c := a.wild
	off := c.cut
	c.cut += size
	if c.cut > c.populated && !a.noPopulate.Load() {
		next := min(len(c.mem), (c.cut+populateAhead+pageSize-1)/pageSize*pageSize)
		ahead = c.mem[c.populated:next]
		c.populated = next
	}
	a.hold(c, off, size)
	return unsafe.Pointer(&c.mem[off]), false, ahead
}

// fit finds a free block of at least size bytes, and returns it with its
// size: the latest one freed of the size's own class if it is large enough
// (often one of exactly that size), else any of a larger class, all of which
// are. a.mu is held.
func (a *arena) fit(size int) (e extent, free int, ok bool) {
	b := binOf(size)
	if e, free, ok := a.top(b); ok && free >= size {
		a.pop(b)
		return e, free, true
	}
	for larger := a.filled >> (b + 1) << (b + 1); larger != 0; larger &= larger - 1 {
		b := bits.TrailingZeros32(larger)
		if e, free, ok := a.top(b); ok {
			a.pop(b)
			return e, free, true
		}
	}
	return extent{}, 0, false
}

// pop drops the top entry of bin b. a.mu is held.
func (a *arena) pop(b int) {
	a.setBin(b, a.bins[b][:len(a.bins[b])-1])
}

// top returns the free block on top of bin b, and its size, dropping stale
// entries, and reports whether there is one. a.mu is held.
func (a *arena) top(b int) (e extent, free int, ok bool) {
	bin := a.bins[b]
	for ; len(bin) > 0; bin = bin[:len(bin)-1] {
		e := bin[len(bin)-1]
		if free, ok := a.chunks.shared[e.chunk].free[e.off]; ok && binOf(int(free)) == b {
			break
		}
	}
	a.setBin(b, bin)
	if len(bin) == 0 {
		return extent{}, 0, false
	}
	e = bin[len(bin)-1]
	return e, int(a.chunks.shared[e.chunk].free[e.off]), true
}

// setBin sets bin b to bin, a prefix of it or an extension by one entry.
// a.mu is held.
func (a *arena) setBin(b int, bin []extent) {
	a.entries += len(bin) - len(a.bins[b])
	a.binCap += cap(bin) - cap(a.bins[b])
	a.bins[b] = bin
	if len(bin) == 0 {
		a.filled &^= 1 << b
	} else {
		a.filled |= 1 << b
	}
}

// free takes back a table that alloc returned, which nobody reads any more.
func (a *arena) free(t []uint64) {
	if a == nil {
		return
	}
	p := unsafe.Pointer(unsafe.SliceData(t))
	size := len(t) * 8
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.chunks.of(p)
	switch {
	case c == nil:
		// From the Go heap, after a refused mapping: the collector's.
		delete(a.heap, uintptr(p))
	case c.live == nil:
		a.chunks.remove(c)
		_ = syscall.Munmap(c.mem) // fails only on a bad address
	default:
		size = (size + lineSize - 1) / lineSize * lineSize
		off := c.offset(p)
		a.unhold(c, off, size)
		if lines := size / lineSize; lines <= keptLines && len(a.kept[lines-1]) < keptMax {
			k := append(a.kept[lines-1], c.extent(off))
			a.keptCap += cap(k) - cap(a.kept[lines-1])
			a.kept[lines-1] = k
		} else {
			a.merge(c, off, size)
		}
		if a.pending > max(retainMin, a.live/retainDiv) {
			a.drain()
			a.release()
		}
		a.publishSlack()
	}
}

// merge makes the block of size bytes at off in c free, merged with the
// free blocks on either side. a.mu is held.
func (a *arena) merge(c *chunk, off, size int) {
	end := off + size
	if start, ok := c.ends[uint32(off)]; ok {
		a.unfree(c, int(start), off-int(start))
		off = int(start)
	}
	if n, ok := c.free[uint32(end)]; ok {
		a.unfree(c, end, int(n))
		end += int(n)
	}
	a.addFree(c, off, end-off)
}

// drain moves the kept blocks to the free maps, where they merge with
// their neighbours: before pages go back to the OS, so that the free space
// they are part of is whole again. a.mu is held.
func (a *arena) drain() {
	for i, k := range a.kept {
		for _, e := range k {
			c, off := a.chunks.at(e)
			a.merge(c, off, (i+1)*lineSize)
		}
		a.kept[i] = k[:0]
	}
}

// addFree records the free block of size bytes at off in c. a.mu is held.
func (a *arena) addFree(c *chunk, off, size int) {
	c.free[uint32(off)] = uint32(size)
	c.ends[uint32(off+size)] = uint32(off)
	a.extents++
	if n := len(c.free); n > c.peak {
		a.mapPeaks += n - c.peak
		c.peak = n
	}
	switch {
	case a.binCap > 8*a.entries+64<<10:
		a.rebin(true) // bins left large
	case a.entries > 2*a.extents+1024:
		a.rebin(false) // stale entries buried under live ones
	}
	b := binOf(size)
	a.setBin(b, append(a.bins[b], c.extent(off)))
}

// unfree forgets the free block of size bytes at off in c. a.mu is held.
func (a *arena) unfree(c *chunk, off, size int) {
	delete(c.free, uint32(off))
	delete(c.ends, uint32(off+size))
	a.extents--
	if n := len(c.free); c.peak > 4<<10 && n < c.peak/8 {
		c.free, c.ends = shrunk(c.free), shrunk(c.ends)
		a.mapPeaks -= c.peak - n
		c.peak = n
	}
}

// shrunk returns a copy of m sized for what it holds (maps.Clone would
// keep its size).
func shrunk(m map[uint32]uint32) map[uint32]uint32 {
	out := make(map[uint32]uint32, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// rebin rebuilds the bins from the free blocks of the chunks, without stale
// entries: in the slices they have, or, if fresh, in new ones of their
// size. a.mu is held.
func (a *arena) rebin(fresh bool) {
	for b := range a.bins {
		if fresh {
			a.setBin(b, nil)
		} else {
			a.setBin(b, a.bins[b][:0])
		}
	}
	for _, c := range a.chunks.all {
		for off, size := range c.free {
			off, size := int(off), int(size)
			b := binOf(size)
			a.setBin(b, append(a.bins[b], c.extent(off)))
		}
	}
}

// hold counts the block of size bytes at off in c as live on its pages.
// a.mu is held.
func (a *arena) hold(c *chunk, off, size int) {
	a.live += size
	for page, stop := off/pageSize, off+size; off < stop; page++ {
		end := min((page+1)*pageSize, stop)
		if c.live[page] == 0 {
			a.livePages++
			if c.pending[page] {
				c.pending[page] = false
				a.pending -= pageSize
			}
		}
		c.live[page] += uint32(end - off)
		off = end
	}
}

// unhold counts the block of size bytes at off in c as dead on its pages,
// and the pages it leaves empty as pending. a.mu is held.
func (a *arena) unhold(c *chunk, off, size int) {
	a.live -= size
	for page, stop := off/pageSize, off+size; off < stop; page++ {
		end := min((page+1)*pageSize, stop)
		if c.live[page] -= uint32(end - off); c.live[page] == 0 {
			a.livePages--
			c.pending[page] = true
			a.pending += pageSize
		}
		off = end
	}
}

// The free lists live on the Go heap: each free block has an entry in each
// of its chunk's two maps (8 bytes in a table between 7/16 and 7/8 full,
// and a control byte: about 14 bytes), and at least one in its bin's stack
// (8 bytes). A store whose tables come and go by the hundred thousand
// (pages turned into sketches and their days given up under the memory
// limit) keeps megabytes of them. They count for their peaks and
// capacities (see chunk.peak), twice for the garbage collector's headroom.
const mapMeta, binMeta = 2 * 2 * 14, 2 * int(unsafe.Sizeof(extent{}))

// publishSlack sets a.slack, after each alloc and free: the bytes that
// live blocks share with free space on their pages, and the arena's lists
// of free blocks. a.mu is held.
func (a *arena) publishSlack() {
	a.slack.Store(int64(a.livePages*pageSize - a.live + a.listBytes()))
}

// listBytes returns what the lists of free blocks count for. a.mu is held.
func (a *arena) listBytes() int { return a.mapPeaks*mapMeta + (a.binCap+a.keptCap)*binMeta }

// slackBytes returns the resident memory the tables cost beyond their
// size: the rest of the pages they are on, and the arena's bookkeeping of
// the free space.
func (a *arena) slackBytes() int64 {
	if a == nil {
		return 0
	}
	return a.slack.Load()
}

// release hands every pending page back to the OS, a run of pages per call.
// It runs under a.mu: once unlocked, a block could be reusing the pages.
// a.mu is held.
func (a *arena) release() {
	for _, c := range a.chunks.all {
		for lo := 0; lo < len(c.pending); lo++ {
			if !c.pending[lo] {
				continue
			}
			hi := lo
			for hi < len(c.pending) && c.pending[hi] {
				c.pending[hi] = false
				hi++
			}
			// Fails only on a bad range; the pages then stay resident.
			_ = syscall.Madvise(c.mem[lo*pageSize:hi*pageSize], syscall.MADV_DONTNEED)
			lo = hi
		}
	}
	a.pending = 0
}

// populate makes the pages of b resident and writable, as writing them
// would, in one call.
func populate(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	return syscall.Madvise(b, madvPopulateWrite)
}

// binOf returns the bin of a free block of size bytes.
func binOf(size int) int { return bits.Len(uint(size/lineSize)) - 1 }

// extent returns the free block at off in c.
func (c *chunk) extent(off int) extent { return extent{c.id, uint32(off)} }

// at returns the chunk and offset of e.
func (cs *chunks) at(e extent) (*chunk, int) { return cs.shared[e.chunk], int(e.off) }

// offset returns the offset of p in c.
func (c *chunk) offset(p unsafe.Pointer) int {
	return int(uintptr(p) - uintptr(unsafe.Pointer(&c.mem[0])))
}

// add maps a chunk of at least size bytes, ready to be cut into blocks if
// shared, and returns it, or nil if the OS refuses.
func (cs *chunks) add(size int, shared bool) *chunk {
	size = (size + pageSize - 1) / pageSize * pageSize
	// NORESERVE: the chunk is mostly address space, not to be charged
	// against the commit limit before it is written.
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	// With transparent huge pages always on, the kernel could back a sparse
	// chunk with whole 2 MB pages, and fill in pages handed back. Tables
	// are read at random, so huge pages would spare TLB misses; but resident
	// memory that follows the live tables matters more here. Failure (a
	// kernel without huge pages) changes nothing.
	_ = syscall.Madvise(mem, syscall.MADV_NOHUGEPAGE)
	c := &chunk{mem: mem}
	if shared {
		pages := size / pageSize
		c.free, c.ends = make(map[uint32]uint32), make(map[uint32]uint32)
		c.live, c.pending = make([]uint32, pages), make([]bool, pages)
		c.id = uint32(len(cs.shared))
		cs.shared = append(cs.shared, c)
	}
	i, _ := slices.BinarySearchFunc(cs.all, c, compareChunks)
	cs.all = slices.Insert(cs.all, i, c)
	return c
}

// of returns the chunk that holds p, or nil.
func (cs *chunks) of(p unsafe.Pointer) *chunk {
	i, found := slices.BinarySearchFunc(cs.all, uintptr(p), func(c *chunk, p uintptr) int {
		base := uintptr(unsafe.Pointer(&c.mem[0]))
		switch {
		case p < base:
			return 1
		case p >= base+uintptr(len(c.mem)):
			return -1
		}
		return 0
	})
	if !found {
		return nil
	}
	return cs.all[i]
}

// remove forgets c.
func (cs *chunks) remove(c *chunk) {
	if i := slices.Index(cs.all, c); i >= 0 {
		cs.all = slices.Delete(cs.all, i, i+1)
	}
}

// unmap unmaps every chunk. It is the arena's cleanup: nothing can use the
// chunks any more.
func (cs *chunks) unmap() {
	for _, c := range cs.all {
		_ = syscall.Munmap(c.mem)
	}
	cs.all, cs.shared = nil, nil
}

// compareChunks orders chunks by address.
func compareChunks(a, b *chunk) int {
	pa, pb := uintptr(unsafe.Pointer(&a.mem[0])), uintptr(unsafe.Pointer(&b.mem[0]))
	switch {
	case pa < pb:
		return -1
	case pa > pb:
		return 1
	}
	return 0
}
