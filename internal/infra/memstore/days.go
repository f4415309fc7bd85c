package memstore

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sync"
	"unsafe"

	"github.com/webtracker/tracker/internal/domain"
)

// The time dimension: beside its all-time visitors, every page keeps, for
// each UTC day it had views on, the visitors of that day and when on that
// day they came (domain.Seen: the first and last quarter hour). That is
// enough to count the distinct visitors of any period whose ends are
// quarters, which the days of every zone are: a visitor is counted once
// however many days of the period it came on, by a union of the days'
// visitors, never a sum of their counts.
//
// A page's timed visitors are numbered in the order they first came (their
// ordinals, see ordIndex), and a day keeps the ordinals of its visitors, 4
// bytes each, with their 2 bytes of Seen: 6 bytes a slot, about 7.5 bytes a
// (page, visitor, day). A union over days is then a bitmap of the page's
// ordinals, small enough to stay in the processor's caches: a 30-day range
// of a page of a hundred thousand visitors sets bits in 16 KB.
//
// All of a page's days are under one read-write lock: writers take it to
// add, readers to scan one day at a time, so a long range never holds up
// the page's writers for more than a day's scan.
//
// Under the memory limit, a page that becomes a sketch gives up its index
// (12 bytes a visitor) and its weeks, and its days become estimated: a day
// then keys each visitor by a 32-bit hash of it (estKey) instead of its
// ordinal, in the same tables, so that the Seen of each (visitor, day) and
// ranges ending at any quarter stay. A range of an estimated page feeds
// the keys of its days' visitors into a scratch sketch, which counts each
// key once however many days it comes on: an estimate with the sketch's
// error (SketchRelativeError), the 32-bit keys adding a bias below
// n/2^33 (0.01% at a million visitors). If that is still too much memory,
// the estimated days go too (the timeline is dropped), and a range of the
// page is ErrNoDays, never a wrong count.

// timeline is the days of one page.
type timeline struct {
	mu    sync.RWMutex
	index ordIndex   // guarded by mu
	days  []dayTable // guarded by mu, in day order
	last  domain.Day // guarded by mu: the last of days, kept here for find
	weeks []week     // guarded by mu, in week order
	gone  bool       // guarded by mu: the page is freed, take nothing more
	// estimated is set, under mu, once the page is a sketch with days
	// keyed by estKey (see above); key is the days' secret, set with it.
	estimated bool
	key       uint64
	// dropped is set, under mu, when even the estimated days are given
	// up under the memory limit: the page's views count all-time only, in
	// the sketch, and a range of it is ErrNoDays.
	dropped bool
	// restored is set, with dropped, on a page restored from a sketch,
	// whose estimated days may follow (see RecordEstimatedDay).
	restored bool
	// pins counts, under mu, the Dumps walking the page: no conversion,
	// giving up of days or removal changes it meanwhile. leaving is set
	// once a removal has begun, which no pin waits for.
	pins    uint16
	leaving bool
	// epoch counts the changes of what the days hold (estimated, dropped,
	// days gone with the retention), so that a range that releases mu
	// between days sees one.
	epoch int
}

// estKey returns the key of the visitor of hash v in the days of an
// estimated timeline: a hash under the timeline's secret, so that no
// visitor ids can be crafted to collide, and never MaxUint32, since a day
// keeps key+1.
func (tl *timeline) estKey(v uint64) uint32 { return min(uint32(fmix64(v^tl.key)), math.MaxUint32-1) }

// estimate turns the days into estimated ones, keyed by estKey of each
// visitor's hash (which hash returns for the index's values) instead of
// its ordinal, and gives up the index and the weeks. It reports the bytes
// it freed and the (visitor, day) that two visitors' keys colliding on a
// day made one. The caller holds tl.mu.
func (tl *timeline) estimate(a *arena, hash func(k uint64) uint64) (freed, merged int64) {
	keys := make([]uint64, tl.index.n)
	tl.index.each(func(k uint64, ord uint32) { keys[ord] = k })
	tl.key = rand.Uint64()
	for i := range tl.days {
		old := &tl.days[i]
		t := dayTable{day: old.day}
		t.setBlk(a.alloc(int(old.lines) * lineSlots)) // as full as the old: no growing
		old.each(func(o uint32, seen uint16) {
			t.insert(a, tl.estKey(hash(keys[o])), domain.SeenFromBits(seen))
		})
		merged += int64(old.n - t.n)
		old.release(a)
		*old = t
	}
	for i := range tl.weeks {
		freed += tl.weeks[i].release(a)
	}
	freed += tl.index.release(a)
	tl.weeks, tl.estimated = nil, true
	tl.epoch++
	return freed, merged
}

// drop gives up the index and the days, for good, and reports their bytes
// and (visitor, day); the caller holds tl.mu.
func (tl *timeline) drop(a *arena) (bytes, triples int64) {
	for i := range tl.days {
		bytes += tl.days[i].release(a) + dayTableBytes
		triples += int64(tl.days[i].n)
	}
	for i := range tl.weeks {
		bytes += tl.weeks[i].release(a)
	}
	bytes += tl.index.release(a)
	tl.days, tl.weeks, tl.dropped, tl.restored = nil, nil, true, false
	tl.epoch++
	return bytes, triples
}

// giveUp drops the days of an estimated timeline (a sketch's, whose
// all-time count needs none of them) and reports their bytes and (visitor,
// day); it leaves any other as it is, or one Dump is walking (ok = false).
func (tl *timeline) giveUp(a *arena) (bytes, triples int64, ok bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if !tl.estimated || tl.dropped || tl.gone || tl.pins > 0 {
		return 0, 0, false
	}
	bytes, triples = tl.drop(a)
	return bytes, triples, true
}

// pin marks the page as walked by Dump, unless its removal has begun, and
// reports whether it did.
func (tl *timeline) pin() bool {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.leaving || tl.gone {
		return false
	}
	tl.pins++
	return true
}

// unpin ends what pin began.
func (tl *timeline) unpin() {
	tl.mu.Lock()
	tl.pins--
	tl.mu.Unlock()
}

// leave marks the page as being removed, unless Dump is walking it, and
// reports whether it did.
func (tl *timeline) leave() bool {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.pins > 0 {
		return false
	}
	tl.leaving = true
	return true
}

// bytes returns what Stats.Bytes counts for the index, days and weeks of
// the timeline; the caller holds tl.mu.
func (tl *timeline) bytes() int64 {
	n := int64(len(tl.index.block)) * 8
	for i := range tl.days {
		n += tl.days[i].bytes() + dayTableBytes
	}
	for i := range tl.weeks {
		n += tl.weeks[i].bytes()
	}
	return n
}

// triples returns the (visitor, day) of the timeline.
func (tl *timeline) triples() int64 {
	tl.mu.RLock()
	defer tl.mu.RUnlock()
	var n int64
	for i := range tl.days {
		n += int64(tl.days[i].n)
	}
	return n
}

// A week is the union of a page's visitors over seven whole UTC days,
// Monday to Sunday, as a bitmap of their ordinals plus one (see bitmap),
// kept beside the days: a long range takes its whole weeks from these,
// an OR of a few kilobytes each, and scans only the days at its ends.
//
// A week is made once it is over, by MakeWeeks or by the first range that
// covers it whole once the page has views after it, whichever comes first
// (see keepWeek), not as views come: most views are of the current week,
// and setting a bit for each would cost every view a cache line or two.
// From then on the days of the week are marked weekly, and a visitor new to
// one of them goes into the week's bitmap as well.
type week struct {
	n    int32 // the week's number: days 4 to 10, the first Monday to Sunday, are week 1
	bits bitmap
}

// weekOf returns the number of the week of day d.
func weekOf(d domain.Day) int32 { return int32(floorDiv(int64(d)+3, 7)) }

// firstDay returns the Monday of week n.
func firstDay(n int32) domain.Day { return domain.Day(int64(n)*7 - 3) }

// bytes is what Stats.Bytes counts for w: its bitmap, in the arena, and
// its entry, twice for the Go heap's garbage.
func (w week) bytes() int64 { return int64(len(w.bits))*8 + 2*int64(unsafe.Sizeof(week{})) }

// add sets bit e, growing the bitmap in a as nextLines says, in whole
// lines, if need be, and reports the bytes it grew.
func (w *week) add(a *arena, e uint32) (grown int64) {
	if need := int(e>>6) + 1; need > len(w.bits) {
		lines := max(nextLines(len(w.bits)/lineSlots), (need+lineSlots-1)/lineSlots)
		bits := a.alloc(lines * lineSlots)
		copy(bits, w.bits)
		if w.bits != nil {
			a.free(w.bits)
		}
		grown = int64(len(bits)-len(w.bits)) * 8
		w.bits = bits
	}
	w.bits[e>>6] |= 1 << (e & 63)
	return grown
}

// release returns the bitmap to a and reports the bytes of w.
func (w *week) release(a *arena) int64 {
	n := w.bytes()
	if w.bits != nil {
		a.free(w.bits)
	}
	w.bits = nil
	return n
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// addWeek notes ordinal ord in the week of day d, a weekly day, and
// reports the bytes the week grew. The caller holds tl.mu.
func (tl *timeline) addWeek(a *arena, d domain.Day, ord uint32) (grown int64) {
	i, found := tl.findWeek(weekOf(d))
	if !found {
		panic("memstore: a weekly day without its week")
	}
	return tl.weeks[i].add(a, ord+1)
}

// dayTableBytes is what Stats.Bytes counts for a day's keeping besides its
// table: its entry in the page's list, twice for the Go heap's garbage.
const dayTableBytes = 2 * int64(unsafe.Sizeof(dayTable{}))

// addDay notes the visitor of ordinal ord (or key, in estimated days) as seen s on day d, and reports
// whether that made a new (visitor, day) and by how many bytes the days
// grew. The caller holds tl.mu.
func (tl *timeline) addDay(a *arena, d domain.Day, ord uint32, s domain.Seen) (added bool, grown int64) {
	i, found := tl.find(d)
	if !found {
		t := dayTable{day: d}
		if !tl.estimated {
			_, t.weekly = tl.findWeek(weekOf(d))
		}
		tl.days = slices.Insert(tl.days, i, t)
		tl.last = tl.days[len(tl.days)-1].day
		grown = dayTableBytes
	}
	added, g := tl.days[i].insert(a, ord, s)
	if added && tl.days[i].weekly {
		g += tl.addWeek(a, d, ord)
	}
	return added, grown + g
}

// free releases the index and every day of the timeline, for good, and
// reports the bytes and the (visitor, day) they held.
func (tl *timeline) free(a *arena) (bytes, triples int64) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.gone = true
	return tl.drop(a)
}

// dropBefore releases the days before first and reports how many, with their
// bytes and (visitor, day). The index stays: the visitors are still the
// page's, all-time.
func (tl *timeline) dropBefore(a *arena, first domain.Day) (days, bytes, triples int64) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	i := 0
	for ; i < len(tl.days) && tl.days[i].day < first; i++ {
		bytes += tl.days[i].release(a) + dayTableBytes
		triples += int64(tl.days[i].n)
	}
	tl.days = slices.Delete(tl.days, 0, i)
	// A week with a day gone is no longer the union of its days.
	w := 0
	for ; w < len(tl.weeks) && firstDay(tl.weeks[w].n) < first; w++ {
		bytes += tl.weeks[w].release(a)
	}
	tl.weeks = slices.Delete(tl.weeks, 0, w)
	for k := 0; k < len(tl.days) && firstDay(weekOf(tl.days[k].day)) < first; k++ {
		tl.days[k].weekly = false // its week went
	}
	if i > 0 || w > 0 {
		tl.epoch++ // a week scanned before is no longer the union of its days
	}
	return int64(i), bytes, triples
}

// nextLines returns the size, in cache lines, of the table that follows one
// of lines lines: a quarter more, or twice as many below smallLines, where
// a quarter is a line or less and growing a line at a time would copy a
// table's entries once for every few added. The tables of the days are at
// most 7/8 full, as a page's (see set).
func nextLines(lines int) int {
	if lines < smallLines {
		return max(1, 2*lines)
	}
	return lines + lines/growDiv
}

// Both tables of the days pack their entries into cache lines, so that
// finding an entry costs one line from memory, not one per array: an index
// entry is 12 bytes, five to a line; a day entry 6 bytes, ten to a line.
const (
	indexPerLine = 5
	dayPerLine   = 10
	smallLines   = 8
)

// ordIndex numbers the visitors of a page: a hash table of (table value of
// the visitor (see slotKey), its ordinal plus one) entries, placed by the
// value, 0 for an empty entry. Ordinals count from 0 in the order visitors
// first came. It lives in the arena.
type ordIndex struct {
	block []uint64
	n     int // visitors
}

// size returns the number of entries of x.
func (x *ordIndex) size() int { return len(x.block) / lineSlots * indexPerLine }

// words returns x's block as 32-bit words: entry i is the three words from
// indexAt(i), the value's low and high halves, then the ordinal plus one.
func (x *ordIndex) words() []uint32 {
	return unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(x.block))), 2*len(x.block))
}

func indexAt(i int) int { return i/indexPerLine*(2*lineSlots) + i%indexPerLine*3 }

// find returns the entry of k and its ordinal, or the empty entry where k
// would go.
func (x *ordIndex) find(k uint64) (i int, ord uint32, found bool) {
	size := x.size()
	if size == 0 {
		return 0, 0, false
	}
	w := x.words()
	lo, hi := uint32(k), uint32(k>>32)
	for i = home(k, size); ; {
		switch j := indexAt(i); {
		case w[j+2] == 0:
			return i, 0, false
		case w[j] == lo && w[j+1] == hi:
			return i, w[j+2] - 1, true
		}
		if i++; i == size {
			i = 0
		}
	}
}

// insert returns the ordinal of k, numbering it if it is new, and by how
// many bytes the index grew.
func (x *ordIndex) insert(a *arena, k uint64) (ord uint32, isNew bool, grown int64) {
	i, ord, found := x.find(k)
	if found {
		return ord, false, 0
	}
	if x.n >= maxLoad(x.size()) {
		grown = x.grow(a)
		i, _, _ = x.find(k)
	}
	ord = uint32(x.n)
	x.put(i, k, ord)
	x.n++
	return ord, true, grown
}

func (x *ordIndex) put(i int, k uint64, ord uint32) {
	w, j := x.words(), indexAt(i)
	w[j], w[j+1], w[j+2] = uint32(k), uint32(k>>32), ord+1
}

// each calls fn with every visitor's table value and ordinal.
func (x *ordIndex) each(fn func(k uint64, ord uint32)) {
	w := x.words()
	for i := range x.size() {
		if j := indexAt(i); w[j+2] != 0 {
			fn(uint64(w[j])|uint64(w[j+1])<<32, w[j+2]-1)
		}
	}
}

// grow moves the entries to a table a quarter larger and reports the bytes
// added.
func (x *ordIndex) grow(a *arena) int64 {
	old := *x
	lines := nextLines(len(old.block) / lineSlots)
	x.block = a.alloc(lines * lineSlots)
	old.each(func(k uint64, ord uint32) {
		i, _, _ := x.find(k)
		x.put(i, k, ord)
	})
	if old.block != nil {
		a.free(old.block)
	}
	return int64(len(x.block)-len(old.block)) * 8
}

// release returns the index's memory to a and reports its bytes.
func (x *ordIndex) release(a *arena) int64 {
	n := int64(len(x.block)) * 8
	if x.block != nil {
		a.free(x.block)
	}
	*x = ordIndex{}
	return n
}

// dayTable is the visitors of one page on one UTC day: a hash table of
// (ordinal plus one, Seen bits) entries, placed by the ordinal, 0 for an
// empty entry, in one block of the arena.
type dayTable struct {
	day   domain.Day
	n     int32 // visitors
	lines int32 // of the block
	// weekly is set when the day's week has a bitmap, which the day's new
	// visitors then go into too (see week).
	weekly bool
	// block is the table's memory, lines cache lines of the arena: a
	// reference rather than a slice, to keep the table's entry in the
	// page's list at 24 bytes, and one the garbage collector need not
	// follow where the arena is off its heap (see tableRef).
	block tableRef
}

// blk returns t's block as a slice.
func (t *dayTable) blk() []uint64 {
	if t.block.ptr() == nil {
		return nil
	}
	return unsafe.Slice((*uint64)(t.block.ptr()), int(t.lines)*lineSlots)
}

// setBlk makes b t's block.
func (t *dayTable) setBlk(b []uint64) {
	t.block, t.lines = refTo(b), int32(len(b)/lineSlots)
}

// size returns the number of entries of t.
func (t *dayTable) size() int { return int(t.lines) * dayPerLine }

// words returns t's block as 16-bit words: entry i is the three words from
// dayAt(i), the ordinal plus one's low and high halves, then the Seen bits.
func (t *dayTable) words() []uint16 {
	return unsafe.Slice((*uint16)(t.block.ptr()), 4*int(t.lines)*lineSlots)
}

// raw returns t's block as bytes, for the scans that read an entry (and
// two bytes of the next) in one little-endian load: entry i of a line is
// at byte 6*i of it.
func (t *dayTable) raw() []byte {
	return unsafe.Slice((*byte)(t.block.ptr()), 8*int(t.lines)*lineSlots)
}

func dayAt(i int) int { return i/dayPerLine*(4*lineSlots) + i%dayPerLine*3 }

// ordHome returns the home entry of ordinal o in a table of size entries:
// ordinals are dense, so they are spread by a multiplicative hash first.
func ordHome(o uint32, size int) int { return int(uint64(o*0x9e3779b1) * uint64(size) >> 32) }

// find returns the entry of ordinal o, or the empty entry where it would go.
func (t *dayTable) find(w []uint16, size int, o uint32) (i int, found bool) {
	if size == 0 {
		return 0, false
	}
	lo, hi := uint16(o+1), uint16((o+1)>>16)
	for i = ordHome(o, size); ; {
		j := dayAt(i)
		switch {
		case w[j] == lo && w[j+1] == hi:
			return i, true
		case w[j] == 0 && w[j+1] == 0:
			return i, false
		}
		if i++; i == size {
			i = 0
		}
	}
}

// insert notes ordinal o as seen s, merged with what the day had of it.
func (t *dayTable) insert(a *arena, o uint32, s domain.Seen) (added bool, grown int64) {
	w, size := t.words(), t.size()
	i, found := t.find(w, size, o)
	if found {
		j := dayAt(i)
		if old := domain.SeenFromBits(w[j+2]); old.Merge(s) != old {
			w[j+2] = old.Merge(s).Bits()
		}
		return false, 0
	}
	if int(t.n) >= maxLoad(size) {
		grown = t.grow(a)
		w, size = t.words(), t.size()
		i, _ = t.find(w, size, o)
	}
	j := dayAt(i)
	w[j], w[j+1], w[j+2] = uint16(o+1), uint16((o+1)>>16), s.Bits()
	t.n++
	return true, grown
}

// each calls fn with every ordinal of the day and its Seen bits.
func (t *dayTable) each(fn func(o uint32, seen uint16)) {
	w := t.words()
	for line := 0; line < len(w); line += 4 * lineSlots {
		for j := line; j < line+3*dayPerLine; j += 3 {
			if e := uint32(w[j]) | uint32(w[j+1])<<16; e != 0 {
				fn(e-1, w[j+2])
			}
		}
	}
}

// grow moves the day to a table a quarter larger and reports the bytes
// added.
func (t *dayTable) grow(a *arena) int64 {
	old := *t
	t.setBlk(a.alloc(nextLines(int(old.lines)) * lineSlots))
	w, size := t.words(), t.size()
	old.each(func(o uint32, seen uint16) {
		i, _ := t.find(w, size, o)
		j := dayAt(i)
		w[j], w[j+1], w[j+2] = uint16(o+1), uint16((o+1)>>16), seen
	})
	if old.block.ptr() != nil {
		a.free(old.blk())
	}
	return int64(t.lines-old.lines) * lineSlots * 8
}

// bytes returns the bytes of t's block.
func (t *dayTable) bytes() int64 { return int64(t.lines) * lineSlots * 8 }

// release returns the day's table to a and reports its bytes.
func (t *dayTable) release(a *arena) int64 {
	n := t.bytes()
	if t.block.ptr() != nil {
		a.free(t.blk())
	}
	t.block, t.lines = tableRef{}, 0
	return n
}

// Range answers the distinct visitors of page in each period and in all of
// them together. Its cost is a pass over the visitors of each day the
// periods touch, but for whole weeks, which come from their bitmaps; it
// holds the page's read lock for one day at a time, so writers never wait
// for more than a day's scan. A week it covers that is over and has no
// bitmap yet, it makes and keeps (see week): then it takes the page's lock
// briefly, and accounts for the bitmap, which may shrink the store. A page
// never seen has 0 everywhere. ctx is checked between days.
func (s *Store) Range(ctx context.Context, page domain.PageURL, periods []domain.Period) (domain.RangeCount, error) {
	if page.IsZero() {
		return domain.RangeCount{}, fmt.Errorf("memstore: count the visitors of a zero page: %w", domain.ErrInvalid)
	}
	out := domain.RangeCount{Each: make([]domain.Count, len(periods))}
	p := s.lookup(page.String())
	if p == nil {
		return out, nil
	}
	var err error
	out.Total, err = p.days.union(ctx, s, periods, out.Each)
	return out, err
}

// bitmap is a set of ordinals plus one: bit 0 stands for no visitor, so
// that the scan of a day sets a bit for every entry, without a branch, and
// leaves the ones it does not count in bit 0.
type bitmap []uint64

// add adds e and returns 1 if it was new, else 0, growing b if need be (an
// ordinal numbered after the bitmap was made).
func (b *bitmap) add(e uint32) int64 {
	w := int(e >> 6)
	if w >= len(*b) {
		*b = append(*b, make([]uint64, w+1-len(*b))...)
	}
	old := (*b)[w]
	(*b)[w] = old | 1<<(e&63)
	return int64(^old>>(e&63)) & 1
}

// or adds the members of o and returns how many were new.
func (b *bitmap) or(o bitmap) int64 {
	if len(o) > len(*b) {
		*b = append(*b, make([]uint64, len(o)-len(*b))...)
	}
	a := (*b)[:len(o)]
	var n int
	for i, w := range o {
		n += bits.OnesCount64(w &^ a[i])
		a[i] |= w
	}
	return int64(n)
}

// count returns the number of visitors set, bit 0 aside.
func (b bitmap) count(n int64) int64 { return n - int64(b[0]&1) }

// union counts the distinct visitors of each period into each, and returns
// the distinct visitors of all of them. s is the store of the timeline,
// which keeps the weeks union makes.
// If what the days hold changes meanwhile (the page becomes estimated, or
// its days are given up), it begins again.
func (tl *timeline) union(ctx context.Context, s *Store, periods []domain.Period, each []domain.Count) (domain.Count, error) {
	tl.mu.RLock()
	words, dropped, estimated, epoch := tl.index.n/64+1, tl.dropped, tl.estimated, tl.epoch
	tl.mu.RUnlock()
	switch {
	case dropped:
		return domain.Count{}, fmt.Errorf("memstore: %w: the page's days were given up under the memory limit", domain.ErrNoDays)
	case estimated:
		return tl.estimatedUnion(ctx, s, periods, each, epoch)
	}
	all := make(bitmap, words)
	var cur bitmap // the period's own visitors, for several periods
	if len(periods) > 1 {
		cur = make(bitmap, words)
	}
	var total int64
	for i, p := range periods {
		var n int64
		skipTo := domain.Day(math.MinInt32) // days before it came from a week
		for sp := range p.Spans() {
			if err := ctx.Err(); err != nil {
				return domain.Count{}, err
			}
			if sp.Day < skipTo {
				continue
			}
			if cur == nil && sp.Whole() && weekOf(sp.Day) != weekOf(sp.Day-1) &&
				p.To >= firstDay(weekOf(sp.Day)+1).First() {
				// A whole week of the period, from its Monday: its
				// bitmap, instead of seven days' scans.
				w := weekOf(sp.Day)
				tl.mu.RLock()
				if tl.epoch != epoch {
					tl.mu.RUnlock()
					return tl.union(ctx, s, periods, each)
				}
				j, found := tl.findWeek(w)
				if found {
					total += all.or(tl.weeks[j].bits)
				}
				// A week with views after it is over, but for late ones:
				// worth making.
				over := !found && len(tl.days) > 0 && tl.last >= firstDay(w+1)
				tl.mu.RUnlock()
				if over {
					bits, _, err := tl.makeWeek(ctx, s, w, words, epoch)
					if err != nil {
						return domain.Count{}, err
					}
					if bits == nil {
						return tl.union(ctx, s, periods, each)
					}
					total += all.or(bits)
					found = true
				}
				if found { // else the week's days, if any are left, one by one
					skipTo = sp.Day + 7
					continue
				}
			}
			tl.mu.RLock()
			if tl.epoch != epoch {
				tl.mu.RUnlock()
				return tl.union(ctx, s, periods, each)
			}
			if j, found := tl.find(sp.Day); found {
				t, c := tl.days[j].scan(sp, &all, cur)
				total += t
				n += c
			}
			tl.mu.RUnlock()
		}
		if cur == nil {
			n = all.count(total)
		} else {
			n = cur.count(n)
			clear(cur)
		}
		each[i] = domain.Count{Visitors: n}
	}
	return domain.Count{Visitors: all.count(total)}, nil
}

// makeWeek returns the visitors of week w, scanning its days one read lock
// at a time as union does, has s keep them as the week's bitmap, and
// reports whether it did (see keepWeek). It returns nil if what the days
// hold changed from epoch.
func (tl *timeline) makeWeek(ctx context.Context, s *Store, w int32, words, epoch int) (bitmap, bool, error) {
	bits := make(bitmap, words)
	var seen [7]int32 // the visitors of each day as scanned; -1: no such day
	for k := range seen {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		d := firstDay(w) + domain.Day(k)
		tl.mu.RLock()
		if tl.epoch != epoch {
			tl.mu.RUnlock()
			return nil, false, nil
		}
		seen[k] = -1
		if j, found := tl.find(d); found {
			seen[k] = tl.days[j].n
			tl.days[j].orInto(&bits)
		}
		tl.mu.RUnlock()
	}
	bits[0] &^= 1 // see bitmap
	return bits, s.keepWeek(tl, w, bits, seen, epoch), nil
}

// keepWeek makes bits the bitmap of week w of tl, unless a day of the week
// changed since it was scanned (the visitors of each as seen), or what the
// days hold changed from epoch: a week must be the union of its days. A
// week without days keeps nothing, and a store with no room under its
// memory limit for the bitmap keeps none, since that would only make it
// forget something else. The bitmap kept ends at the week's last visitor,
// as one set view by view would. It reports whether it kept bits.
func (s *Store) keepWeek(tl *timeline, w int32, bits bitmap, seen [7]int32, epoch int) bool {
	if seen == [7]int32{-1, -1, -1, -1, -1, -1, -1} {
		return false
	}
	n := len(bits)
	for n > 1 && bits[n-1] == 0 {
		n--
	}
	bits = bits[:n]
	lines := (n + lineSlots - 1) / lineSlots
	kept := week{n: w}
	size := kept.bytes() + int64(lines*lineSlots)*8
	if !s.roomFor(size) {
		return false
	}
	tl.mu.Lock()
	defer func() {
		tl.mu.Unlock()
		if kept.bits != nil {
			s.grew(size)
		}
	}()
	i, found := tl.findWeek(w)
	if tl.epoch != epoch || found {
		return false
	}
	var days [7]*dayTable
	for k, n := range seen {
		j, found := tl.find(firstDay(w) + domain.Day(k))
		if found != (n >= 0) || found && tl.days[j].n != n {
			return false
		}
		if found {
			days[k] = &tl.days[j]
		}
	}
	kept.bits = s.arena.alloc(lines * lineSlots)
	copy(kept.bits, bits)
	tl.weeks = slices.Insert(tl.weeks, i, kept)
	for _, t := range days {
		if t != nil {
			t.weekly = true
		}
	}
	return true
}

// roomFor reports whether the store's memory limit, if any, leaves room for
// size bytes more.
func (s *Store) roomFor(size int64) bool {
	limit := s.opts.MemoryLimit
	return limit <= 0 || s.used()+size <= limit
}

// find returns the index of day d in tl.days, or where it would go; the
// caller holds tl.mu.
//
// The days and weeks of a page are nearly always dense, a page having
// views every day, so find and findWeek first try the entry d has if none
// is missing between it and the last, which costs one cache line where a
// binary search costs several, and search only if that is wrong. (find
// takes the last day from tl.last, beside the lock, rather than from the
// list: one line less; a list emptied since is still searched right.)
func (tl *timeline) find(d domain.Day) (int, bool) {
	n := len(tl.days)
	if i := n - 1 - int(int64(tl.last)-int64(d)); i >= 0 && i < n && tl.days[i].day == d {
		return i, true
	}
	return slices.BinarySearchFunc(tl.days, d, func(t dayTable, d domain.Day) int { return cmp.Compare(t.day, d) })
}

// findWeek returns the index of week w in tl.weeks, or where it would go;
// the caller holds tl.mu. See find.
func (tl *timeline) findWeek(w int32) (int, bool) {
	n := len(tl.weeks)
	if n == 0 || w > tl.weeks[n-1].n {
		return n, false
	}
	if i := n - 1 - int(int64(tl.weeks[n-1].n)-int64(w)); i >= 0 && tl.weeks[i].n == w {
		return i, true
	}
	return slices.BinarySearchFunc(tl.weeks, w, func(x week, w int32) int { return cmp.Compare(x.n, w) })
}

// estimatedUnion is union for estimated days, as of epoch: the keys of the
// visitors of each span go into a scratch sketch under the page's secret,
// one for all the periods and one for the period's own, for several. A
// count of nothing is exact; any other is an estimate.
func (tl *timeline) estimatedUnion(ctx context.Context, s *Store, periods []domain.Period, each []domain.Count, epoch int) (domain.Count, error) {
	tl.mu.RLock()
	key := tl.key
	tl.mu.RUnlock()
	all := newScratch(key)
	var cur *sketch
	if len(periods) > 1 {
		cur = newScratch(key)
	}
	for i, p := range periods {
		for sp := range p.Spans() {
			if err := ctx.Err(); err != nil {
				return domain.Count{}, err
			}
			tl.mu.RLock()
			if tl.epoch != epoch {
				tl.mu.RUnlock()
				return tl.union(ctx, s, periods, each)
			}
			if j, found := tl.find(sp.Day); found {
				tl.days[j].estimatedScan(sp, all, cur)
			}
			tl.mu.RUnlock()
		}
		if cur == nil {
			each[i] = all.estimated()
		} else {
			each[i] = cur.estimated()
			*cur = *newScratch(key)
		}
	}
	return all.estimated(), nil
}

// scan adds to all, and to cur if not nil, the visitors of t seen in span
// sp, and returns how many of them each did not have: the hot loop of every
// range. It reads each entry with one load (see dayAt), and an entry out of
// the span, or empty, goes to bit 0: the loop has no branch but the
// bitmaps' bounds.
func (t *dayTable) scan(sp domain.Span, all *bitmap, cur bitmap) (inAll, inCur int64) {
	bs := t.raw()
	from, to := int64(sp.From), int64(sp.To)
	a := *all
	for line := 0; line+lineSlots*8 <= len(bs); line += lineSlots * 8 {
		l := bs[line : line+lineSlots*8 : line+lineSlots*8]
		for off := 0; off < 6*dayPerLine; off += 6 {
			x := binary.LittleEndian.Uint64(l[off:]) // the entry, and two bytes of the next
			first, last := int64(x>>40&0xff), int64(x>>32&0xff)
			// 1 if last ≥ from and first < to (domain.Seen.In), else 0.
			in := uint32(((from-last-1)>>63)&((first-to)>>63)) & 1
			e := uint32(x) * in
			w := int(e >> 6)
			if w >= len(a) {
				all.add(e) // an ordinal numbered after the bitmap was made
				a = *all
			}
			old := a[w]
			a[w] = old | 1<<(e&63)
			inAll += int64(^old>>(e&63)) & 1
			if cur != nil {
				inCur += (&cur).add(e)
			}
		}
	}
	*all = a
	return inAll, inCur
}

// orInto sets in b the bit of every ordinal plus one of t, and bit 0 for
// each empty entry: scan for a whole day, counting nothing, for makeWeek.
func (t *dayTable) orInto(b *bitmap) {
	bs := t.raw()
	a := *b
	for line := 0; line+lineSlots*8 <= len(bs); line += lineSlots * 8 {
		l := bs[line : line+lineSlots*8 : line+lineSlots*8]
		for off := 0; off < 6*dayPerLine; off += 6 {
			e := binary.LittleEndian.Uint32(l[off:])
			w := int(e >> 6)
			if w >= len(a) {
				b.add(e) // an ordinal numbered after the bitmap was made
				a = *b
			}
			a[w] |= 1 << (e & 63)
		}
	}
	*b = a
}

// estimatedScan adds to all, and to cur if not nil, the keys of the
// visitors of t seen in span sp, read as scan reads them.
func (t *dayTable) estimatedScan(sp domain.Span, all, cur *sketch) {
	bs := t.raw()
	from, to := uint64(sp.From), uint64(sp.To)
	for line := 0; line+lineSlots*8 <= len(bs); line += lineSlots * 8 {
		l := bs[line : line+lineSlots*8 : line+lineSlots*8]
		for off := 0; off < 6*dayPerLine; off += 6 {
			x := binary.LittleEndian.Uint64(l[off:])
			if e, first, last := uint32(x), x>>40&0xff, x>>32&0xff; e != 0 && last >= from && first < to {
				all.add(uint64(e))
				if cur != nil {
					cur.add(uint64(e))
				}
			}
		}
	}
}

// PagesIn lists every page with visitors in p, and their distinct visitors
// in p, in no particular order, estimated for an estimated page. It costs a
// pass over the visitors of every page on the days p touches; ctx is
// checked between pages. A page whose days were given up under the memory
// limit is left out: it has no count for p to rank by.
func (s *Store) PagesIn(ctx context.Context, p domain.Period) ([]domain.PageCount, error) {
	var out []domain.PageCount
	err := s.eachPage(func(key string, pg *page) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		var each [1]domain.Count
		n, err := pg.days.union(ctx, s, []domain.Period{p}, each[:])
		switch {
		case errors.Is(err, domain.ErrNoDays):
			return nil // see above: the page has no days
		case err != nil:
			return err
		case n.Visitors > 0:
			out = append(out, domain.PageCount{URL: key, Count: n})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// lookup returns the page of key, or nil.
func (s *Store) lookup(key string) *page {
	sh := s.shardOf(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.pages[key]
}

// eachPage calls fn with every page and its key, a shard at a time: the
// shard's pages are listed under its read lock, and fn is called after it,
// with no lock held. It stops at fn's first error, which it returns.
func (s *Store) eachPage(fn func(key string, p *page) error) error {
	var (
		keys  []string
		pages []*page
	)
	for i := range s.shards {
		sh := &s.shards[i]
		keys, pages = keys[:0], pages[:0]
		sh.mu.RLock()
		for k, p := range sh.pages {
			keys, pages = append(keys, k), append(pages, p)
		}
		sh.mu.RUnlock()
		for j, p := range pages {
			if err := fn(keys[j], p); err != nil {
				return err
			}
		}
	}
	return nil
}

// DropDays forgets the days before first, of every page, as retention asks,
// and returns how many (page, day) it dropped. All-time counts stay.
func (s *Store) DropDays(first domain.Day) int64 {
	var days int64
	_ = s.eachPage(func(_ string, p *page) error {
		d, b, n := p.days.dropBefore(s.arena, first)
		days += d
		s.bytes.Add(-b)
		s.triples.Add(-n)
		return nil
	})
	s.daysDropped.Add(days)
	return days
}

// MakeWeeks makes the bitmaps of the weeks over before day today that
// have days and none yet, of every exact page, as the first range over
// each would (see week), and returns how many it made. Called every so
// often, it keeps a week's first long range from paying for it. A page
// whose days change meanwhile (it becomes estimated) is left to a later
// pass, and so is every week once the store has no room under its memory
// limit for one more. It stops at ctx's end.
func (s *Store) MakeWeeks(ctx context.Context, today domain.Day) (int, error) {
	made := 0
	err := s.eachPage(func(_ string, p *page) error {
		tl := &p.days
		var todo []int32
		tl.mu.RLock()
		words, epoch := tl.index.n/64+1, tl.epoch
		for i := 0; i < len(tl.days) && !tl.estimated && !tl.dropped && !tl.gone; i++ {
			w := weekOf(tl.days[i].day)
			if firstDay(w+1) > today {
				break
			}
			if _, found := tl.findWeek(w); !found && (len(todo) == 0 || todo[len(todo)-1] != w) {
				todo = append(todo, w)
			}
		}
		tl.mu.RUnlock()
		for _, w := range todo {
			if !s.roomFor(int64(words) * 8) { // spare the scan keepWeek would refuse
				return nil
			}
			bits, kept, err := tl.makeWeek(ctx, s, w, words, epoch)
			switch {
			case err != nil:
				return err
			case bits == nil:
				return nil // the page changed: a later pass will do
			case kept:
				made++
			}
		}
		return nil
	})
	return made, err
}

// RecordDay adds visitors to one day of page, each seen as seen[i] says,
// merged with what the day has: how a durable store reads a day back. They
// count all-time too, as any view does (their page's own record, read back
// by RecordAll, has them already: they are counted once). A zero page or visitor, or a Seen that no
// day has, is rejected with an error that matches domain.ErrInvalid; ctx is
// unused, as in Record.
func (s *Store) RecordDay(ctx context.Context, page domain.PageURL, day domain.Day, visitors []domain.VisitorID, seen []domain.Seen) error {
	if page.IsZero() || len(visitors) != len(seen) {
		return fmt.Errorf("memstore: record a day of a zero page, or with %d visitors and %d times: %w",
			len(visitors), len(seen), domain.ErrInvalid)
	}
	for i, v := range visitors {
		if v.IsZero() || !seen[i].Valid() {
			return fmt.Errorf("memstore: record a zero visitor, or one seen at %v: %w", seen[i], domain.ErrInvalid)
		}
	}
	key := page.String()
	sh := s.shardOf(key)
	for len(visitors) > 0 {
		// The whole day under one hold of the page's lock, as far as it
		// goes: a page removed meanwhile takes the rest anew.
		p := s.page(sh, key)
		var added, grown, triples int64
		p.days.mu.Lock()
		for len(visitors) > 0 {
			a, g, t, gone := s.addTimedLocked(p, s.slotKey(visitors[0].Hash()), visitors[0].Hash(), day, seen[0])
			if gone {
				break
			}
			added, grown, triples = added+a, grown+g, triples+t
			visitors, seen = visitors[1:], seen[1:]
		}
		p.days.mu.Unlock()
		sh.pairs.Add(added)
		sh.triples.Add(triples)
		if grown != 0 {
			s.grew(grown)
		}
	}
	return nil
}
