package memstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
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

// timeline is the days of one page.
type timeline struct {
	mu    sync.RWMutex
	index ordIndex   // guarded by mu
	days  []dayTable // guarded by mu, in day order
	gone  bool       // guarded by mu: the page is freed, take nothing more
	// dropped is set, under mu, when the page's index and days are given
	// up for a sketch under the memory limit: its views count all-time
	// only, in the sketch, and a range of it is ErrNoDays.
	dropped bool
}

// drop gives up the index and the days, for good, and reports their bytes
// and (visitor, day); the caller holds tl.mu.
func (tl *timeline) drop(a *arena) (bytes, triples int64) {
	for i := range tl.days {
		bytes += tl.days[i].release(a) + dayTableBytes
		triples += int64(tl.days[i].n)
	}
	bytes += tl.index.release(a)
	tl.days, tl.dropped = nil, true
	return bytes, triples
}

// dayTableBytes is what Stats.Bytes counts for a day's keeping besides its
// table: its entry in the page's list, twice for the Go heap's garbage.
const dayTableBytes = 2 * int64(unsafe.Sizeof(dayTable{}))

// addDay notes the visitor of ordinal ord as seen s on day d, and reports
// whether that made a new (visitor, day) and by how many bytes the days
// grew. The caller holds tl.mu.
func (tl *timeline) addDay(a *arena, d domain.Day, ord uint32, s domain.Seen) (added bool, grown int64) {
	i, found := slices.BinarySearchFunc(tl.days, d, func(t dayTable, d domain.Day) int { return cmp.Compare(t.day, d) })
	if !found {
		tl.days = slices.Insert(tl.days, i, dayTable{day: d})
		grown = dayTableBytes
	}
	added, g := tl.days[i].insert(a, ord, s)
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
	return int64(i), bytes, triples
}

// Lines of a cache line make the tables of the days: a table of L lines
// holds 64·L/b slots of b bytes, and grows by a quarter of its lines. A
// table is at most 7/8 full, as a page's (see set).
func slotsIn(lines, slotBytes int) int { return lines * lineSlots * 8 / slotBytes }
func nextLines(lines int) int          { return lines + max(1, lines/growDiv) }

// ordIndex numbers the visitors of a page: keys[o] is the table value (see
// slotKey) of the visitor of ordinal o, and slots, a hash table of o+1 (0
// for an empty slot) placed by the key, finds the ordinal of a key. Both
// live in the arena.
type ordIndex struct {
	keys  []uint64 // len is the number of visitors
	slots []uint32
	block []uint64 // of slots
}

// insert returns the ordinal of k, numbering it if it is new, and by how
// many bytes the index grew.
func (x *ordIndex) insert(a *arena, k uint64) (ord uint32, isNew bool, grown int64) {
	i, found := x.find(k)
	if found {
		return x.slots[i] - 1, false, 0
	}
	if len(x.keys) == cap(x.keys) {
		old := x.keys
		keys := a.alloc(nextLines(max(1, cap(old)/lineSlots)) * lineSlots)
		x.keys = keys[:copy(keys, old)]
		if old != nil {
			a.free(old[:cap(old)])
		}
		grown += int64(cap(x.keys)-cap(old)) * 8
	}
	if len(x.keys) >= maxLoad(len(x.slots)) {
		grown += x.grow(a)
		i, _ = x.find(k)
	}
	ord = uint32(len(x.keys))
	x.keys = append(x.keys, k)
	x.slots[i] = ord + 1
	return ord, true, grown
}

// find returns the slot of k's ordinal, or the empty slot where it would go.
func (x *ordIndex) find(k uint64) (i int, found bool) {
	slots := x.slots
	if len(slots) == 0 {
		return 0, false
	}
	for i = home(k, len(slots)); ; {
		switch o := slots[i]; {
		case o == 0:
			return i, false
		case x.keys[o-1] == k:
			return i, true
		}
		if i++; i == len(slots) {
			i = 0
		}
	}
}

// grow moves the ordinals to a table a quarter larger and reports the bytes
// added.
func (x *ordIndex) grow(a *arena) int64 {
	oldBlock := x.block
	lines := nextLines(len(oldBlock) / lineSlots)
	x.block = a.alloc(lines * lineSlots)
	size := slotsIn(lines, 4)
	x.slots = unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(x.block))), size)
	for o, k := range x.keys {
		i := home(k, size)
		for x.slots[i] != 0 {
			if i++; i == size {
				i = 0
			}
		}
		x.slots[i] = uint32(o) + 1
	}
	if oldBlock != nil {
		a.free(oldBlock)
	}
	return int64(len(x.block)-len(oldBlock)) * 8
}

// release returns the index's memory to a and reports its bytes.
func (x *ordIndex) release(a *arena) int64 {
	n := int64(len(x.block)+cap(x.keys)) * 8
	if x.block != nil {
		a.free(x.block)
	}
	if x.keys != nil {
		a.free(x.keys[:cap(x.keys)])
	}
	*x = ordIndex{}
	return n
}

// dayTable is the visitors of one page on one UTC day: a hash table of
// ordinals plus one (0 for an empty slot), and each one's Seen bits, in
// one block of the arena: the slots, then the Seen bits.
type dayTable struct {
	day   domain.Day
	n     int32 // visitors
	block []uint64
}

// size returns the number of slots of t.
func (t *dayTable) size() int { return len(t.block) * 8 / 6 }

// tables returns the slots of t and their Seen bits.
func (t *dayTable) tables() (slots []uint32, seen []uint16) {
	size := t.size()
	if size == 0 {
		return nil, nil
	}
	p := unsafe.Pointer(unsafe.SliceData(t.block))
	return unsafe.Slice((*uint32)(p), size), unsafe.Slice((*uint16)(unsafe.Add(p, 4*size)), size)
}

// ordHome returns the home slot of ordinal o in a table of size slots:
// ordinals are dense, so they are spread by a multiplicative hash first.
func ordHome(o uint32, size int) int { return int(uint64(o*0x9e3779b1) * uint64(size) >> 32) }

// insert notes ordinal o as seen s, merged with what the day had of it.
func (t *dayTable) insert(a *arena, o uint32, s domain.Seen) (added bool, grown int64) {
	slots, seen := t.tables()
	if i, found := t.find(slots, o); found {
		if old := domain.SeenFromBits(seen[i]); old.Merge(s) != old {
			seen[i] = old.Merge(s).Bits()
		}
		return false, 0
	}
	if int(t.n) >= maxLoad(len(slots)) {
		grown = t.grow(a)
		slots, seen = t.tables()
	}
	i, _ := t.find(slots, o)
	slots[i], seen[i] = o+1, s.Bits()
	t.n++
	return true, grown
}

// find returns the slot of o in slots, or the empty slot where it would go.
func (t *dayTable) find(slots []uint32, o uint32) (i int, found bool) {
	if len(slots) == 0 {
		return 0, false
	}
	for i = ordHome(o, len(slots)); ; {
		switch slots[i] {
		case o + 1:
			return i, true
		case 0:
			return i, false
		}
		if i++; i == len(slots) {
			i = 0
		}
	}
}

// grow moves the day to a table a quarter larger and reports the bytes
// added.
func (t *dayTable) grow(a *arena) int64 {
	oldSlots, oldSeen := t.tables()
	oldBlock := t.block
	lines := nextLines(len(oldBlock) / lineSlots)
	t.block = a.alloc(lines * lineSlots)
	slots, seen := t.tables()
	for j, o := range oldSlots {
		if o != 0 {
			i, _ := t.find(slots, o-1)
			slots[i], seen[i] = o, oldSeen[j]
		}
	}
	if oldBlock != nil {
		a.free(oldBlock)
	}
	return int64(len(t.block)-len(oldBlock)) * 8
}

// release returns the day's table to a and reports its bytes.
func (t *dayTable) release(a *arena) int64 {
	n := int64(len(t.block)) * 8
	if t.block != nil {
		a.free(t.block)
	}
	t.block = nil
	return n
}

// Range answers the distinct visitors of page in each period and in all of
// them together. Its cost is a pass over the visitors of each day the
// periods touch; it holds the page's read lock for one day at a time, so
// writers never wait for more than a day's scan. A page never seen has 0
// everywhere. ctx is checked between days.
func (s *Store) Range(ctx context.Context, page domain.PageURL, periods []domain.Period) (domain.RangeCount, error) {
	if page.IsZero() {
		return domain.RangeCount{}, fmt.Errorf("memstore: count the visitors of a zero page: %w", domain.ErrInvalid)
	}
	out := domain.RangeCount{Each: make([]domain.Count, len(periods))}
	key := page.String()
	sh := s.shardOf(key)
	sh.mu.RLock()
	p := sh.pages[key]
	sh.mu.RUnlock()
	if p == nil {
		return out, nil
	}
	var err error
	out.Total.Visitors, err = p.days.union(ctx, periods, out.Each)
	return out, err
}

// bitmap is a set of ordinals.
type bitmap []uint64

// add adds o and reports whether it was new, growing b if need be (an
// ordinal numbered after the bitmap was made).
func (b *bitmap) add(o uint32) bool {
	w := int(o >> 6)
	if w >= len(*b) {
		*b = append(*b, make([]uint64, w+1-len(*b))...)
	}
	m := uint64(1) << (o & 63)
	if (*b)[w]&m != 0 {
		return false
	}
	(*b)[w] |= m
	return true
}

// union counts the distinct visitors of each period into each, and returns
// the distinct visitors of all of them.
func (tl *timeline) union(ctx context.Context, periods []domain.Period, each []domain.Count) (int64, error) {
	tl.mu.RLock()
	words, dropped := (len(tl.index.keys)+63)/64, tl.dropped
	tl.mu.RUnlock()
	if dropped {
		return 0, fmt.Errorf("memstore: %w: the page's days were given up for a sketch under the memory limit", domain.ErrNoDays)
	}
	all := make(bitmap, words)
	var cur bitmap // the period's own visitors, for several periods
	if len(periods) > 1 {
		cur = make(bitmap, words)
	}
	var total int64
	for i, p := range periods {
		var n int64
		for sp := range p.Spans() {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			tl.mu.RLock()
			if j, found := slices.BinarySearchFunc(tl.days, sp.Day, func(t dayTable, d domain.Day) int { return cmp.Compare(t.day, d) }); found {
				slots, seen := tl.days[j].tables()
				for k, o := range slots {
					if o == 0 || !domain.SeenFromBits(seen[k]).In(sp) {
						continue
					}
					if all.add(o - 1) {
						total++
						if cur == nil {
							continue
						}
					}
					if cur != nil && cur.add(o-1) {
						n++
					}
				}
			}
			tl.mu.RUnlock()
		}
		if cur == nil {
			n = total
		} else {
			clear(cur)
		}
		each[i].Visitors = n
	}
	return total, nil
}

// PagesIn lists every page with visitors in p, and their distinct visitors
// in p, in no particular order. It costs a pass over the visitors of every
// page on the days p touches; ctx is checked between pages. A page whose
// days were given up under the memory limit is left out: it has no count
// for p to rank by.
func (s *Store) PagesIn(ctx context.Context, p domain.Period) ([]domain.PageCount, error) {
	var out []domain.PageCount
	var (
		keys  []string
		pages []*page
	)
	for i := range s.shards {
		sh := &s.shards[i]
		keys, pages = keys[:0], pages[:0]
		sh.mu.RLock()
		for k, pg := range sh.pages {
			keys, pages = append(keys, k), append(pages, pg)
		}
		sh.mu.RUnlock()
		for j, pg := range pages {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			var each [1]domain.Count
			n, err := pg.days.union(ctx, []domain.Period{p}, each[:])
			if errors.Is(err, domain.ErrNoDays) {
				continue // see PagesIn's doc: an estimated page has no days
			}
			if err != nil {
				return nil, err
			}
			if n > 0 {
				out = append(out, domain.PageCount{URL: keys[j], Count: domain.Count{Visitors: n}})
			}
		}
	}
	return out, nil
}

// DropDays forgets the days before first, of every page, as retention asks,
// and returns how many (page, day) it dropped. All-time counts stay.
func (s *Store) DropDays(first domain.Day) int64 {
	var days int64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		pages := make([]*page, 0, len(sh.pages))
		for _, p := range sh.pages {
			pages = append(pages, p)
		}
		sh.mu.RUnlock()
		for _, p := range pages {
			d, b, n := p.days.dropBefore(s.arena, first)
			days += d
			s.bytes.Add(-b)
			s.triples.Add(-n)
		}
	}
	s.daysDropped.Add(days)
	return days
}

// EachDay calls fn with every day of every page: the page, the UTC day, and
// its visitors with when they were seen that day, one day at a time, copied
// under the page's read lock. It stops at fn's first error, which it
// returns. visitors and seen are reused from one call to the next.
func (s *Store) EachDay(fn func(page string, day domain.Day, visitors []domain.VisitorID, seen []domain.Seen) error) error {
	var (
		vs    []domain.VisitorID
		seen  []domain.Seen
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
			tl := &p.days
			for d := 0; ; d++ {
				vs, seen = vs[:0], seen[:0]
				tl.mu.RLock()
				if d >= len(tl.days) {
					tl.mu.RUnlock()
					break
				}
				day := tl.days[d].day
				slots, bits := tl.days[d].tables()
				for k, o := range slots {
					if o != 0 {
						v, _ := domain.VisitorFromHash(s.visitorHash(tl.index.keys[o-1]))
						vs = append(vs, v)
						seen = append(seen, domain.SeenFromBits(bits[k]))
					}
				}
				tl.mu.RUnlock()
				if len(vs) == 0 {
					continue
				}
				if err := fn(keys[j], day, vs, seen); err != nil {
					return err
				}
			}
		}
	}
	return nil
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
	for i, v := range visitors {
		for {
			p := s.page(sh, key)
			added, grown, gone := s.addTimed(p, s.slotKey(v.Hash()), v.Hash(), day, seen[i])
			sh.pairs.Add(added)
			if grown != 0 {
				s.grew(grown)
			}
			if !gone {
				break
			}
		}
	}
	return nil
}
