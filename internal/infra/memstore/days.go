package memstore

import (
	"context"
	"fmt"
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
// A day's visitors are a table like a page's (see set), with the visitor's
// table value and its 16 bits of Seen side by side in one block of the
// arena: 10 bytes a slot, about 12.5 bytes a (page, visitor, day) triple.

// timeline is the days of one page.
type timeline struct {
	mu   sync.RWMutex
	days map[domain.Day]*daySet // guarded by mu; nil until the first day
	gone bool                   // guarded by mu: the page is freed, take nothing more
}

// daySet is the visitors of one page on one UTC day.
type daySet struct {
	mu sync.Mutex
	// keys are the visitors' table values (see slotKey), 0 for an empty
	// slot, and seen[i] the domain.Seen bits of keys[i]; both live in block,
	// one allocation of the arena. All three are guarded by mu.
	keys  []uint64
	seen  []uint16
	block []uint64
	n     int
	dead  bool // released: its page or its day is gone
}

// daySetBytes is what Stats.Bytes counts for a day's keeping besides its
// table: the daySet and its map entry, twice for the Go heap's garbage.
const daySetBytes = 2 * (int64(unsafe.Sizeof(daySet{})) + 24)

// add notes the visitor of table value k in quarter q of day d, and reports
// whether that made a new (visitor, day) and by how many bytes the day grew.
func (tl *timeline) add(a *arena, d domain.Day, k uint64, q int) (added bool, grown int64) {
	tl.mu.RLock()
	ds, gone := tl.days[d], tl.gone
	tl.mu.RUnlock()
	if gone {
		return false, 0
	}
	if ds == nil {
		tl.mu.Lock()
		if tl.gone {
			tl.mu.Unlock()
			return false, 0
		}
		if ds = tl.days[d]; ds == nil {
			if tl.days == nil {
				tl.days = make(map[domain.Day]*daySet)
			}
			ds = new(daySet)
			tl.days[d] = ds
			grown = daySetBytes
		}
		tl.mu.Unlock()
	}
	ds.mu.Lock()
	added, g := ds.insert(a, k, domain.SeenAt(q))
	ds.mu.Unlock()
	return added, grown + g
}

// insert notes k as seen s, merged with what the day had of it; the caller
// holds ds.mu.
func (ds *daySet) insert(a *arena, k uint64, s domain.Seen) (added bool, grown int64) {
	if ds.dead {
		return false, 0
	}
	i, found := ds.find(k)
	if found {
		if old := domain.SeenFromBits(ds.seen[i]); old.Merge(s) != old {
			ds.seen[i] = old.Merge(s).Bits()
		}
		return false, 0
	}
	if ds.n >= maxLoad(len(ds.keys)) {
		grown = ds.grow(a, nextSize(len(ds.keys)))
		i, _ = ds.find(k)
	}
	ds.keys[i] = k
	ds.seen[i] = s.Bits()
	ds.n++
	return true, grown
}

// find returns the slot of k, or the empty slot where it would go.
func (ds *daySet) find(k uint64) (i int, found bool) {
	keys := ds.keys
	if len(keys) == 0 {
		return 0, false
	}
	for i = home(k, len(keys)); ; {
		switch keys[i] {
		case k:
			return i, true
		case 0:
			return i, false
		}
		if i++; i == len(keys) {
			i = 0
		}
	}
}

// lookup returns the Seen of k, and whether the day has k at all.
func (ds *daySet) lookup(k uint64) (domain.Seen, bool) {
	i, found := ds.find(k)
	if !found {
		return domain.Seen{}, false
	}
	return domain.SeenFromBits(ds.seen[i]), true
}

// blockSlots is the size in words of the block of a table of size keys:
// the keys, then their Seen bits, four to a word, in whole cache lines.
func blockSlots(keys int) int {
	return (keys + (keys+3)/4 + lineSlots - 1) / lineSlots * lineSlots
}

// grow moves the day's visitors to a table of size keys and reports the
// bytes added.
func (ds *daySet) grow(a *arena, size int) int64 {
	oldKeys, oldSeen, oldBlock := ds.keys, ds.seen, ds.block
	ds.block = a.alloc(blockSlots(size))
	ds.keys = ds.block[:size:size]
	ds.seen = unsafe.Slice((*uint16)(unsafe.Pointer(&ds.block[size])), size)
	for j, k := range oldKeys {
		if k == 0 {
			continue
		}
		i := home(k, size)
		for ds.keys[i] != 0 {
			if i++; i == size {
				i = 0
			}
		}
		ds.keys[i], ds.seen[i] = k, oldSeen[j]
	}
	if oldBlock != nil {
		a.free(oldBlock)
	}
	return int64(len(ds.block)-len(oldBlock)) * 8
}

// release returns the day's table to a, marks the day dead and reports the
// bytes it held, its keeping included; the caller holds ds.mu.
func (ds *daySet) release(a *arena) (bytes int64, visitors int) {
	if ds.dead {
		return 0, 0
	}
	bytes, visitors = int64(len(ds.block))*8+daySetBytes, ds.n
	if ds.block != nil {
		a.free(ds.block)
	}
	ds.keys, ds.seen, ds.block, ds.n, ds.dead = nil, nil, nil, 0, true
	return bytes, visitors
}

// free releases every day of the timeline, for good, and reports the bytes
// and the (visitor, day) pairs they held.
func (tl *timeline) free(a *arena) (bytes, triples int64) {
	tl.mu.Lock()
	days := tl.days
	tl.days, tl.gone = nil, true
	tl.mu.Unlock()
	for _, ds := range days {
		ds.mu.Lock()
		b, n := ds.release(a)
		ds.mu.Unlock()
		bytes += b
		triples += int64(n)
	}
	return bytes, triples
}

// dropBefore releases the days before first and reports how many, with their
// bytes and (visitor, day) pairs.
func (tl *timeline) dropBefore(a *arena, first domain.Day) (days, bytes, triples int64) {
	var old []*daySet
	tl.mu.Lock()
	for d, ds := range tl.days {
		if d < first {
			old = append(old, ds)
			delete(tl.days, d)
		}
	}
	tl.mu.Unlock()
	for _, ds := range old {
		ds.mu.Lock()
		b, n := ds.release(a)
		ds.mu.Unlock()
		bytes += b
		triples += int64(n)
	}
	return int64(len(old)), bytes, triples
}

// day returns the set of day d, or nil.
func (tl *timeline) day(d domain.Day) *daySet {
	tl.mu.RLock()
	defer tl.mu.RUnlock()
	return tl.days[d]
}

// Range answers the distinct visitors of page in each period and in all of
// them together. Its cost is a pass over the visitors of each day the
// periods touch; it holds one day's lock at a time (two for a period that
// covers parts of two days), so writers of other days never wait for it. A
// page never seen has 0 everywhere. ctx is checked between days.
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
	out.Total.Visitors, err = p.days.union(ctx, periods, out.Each, p.visitors.Load())
	return out, err
}

// union counts the distinct visitors of each period into each, and returns
// the distinct visitors of all of them; hint is about as many as there can
// be (the page's all-time count), for sizing tables.
func (tl *timeline) union(ctx context.Context, periods []domain.Period, each []domain.Count, hint int64) (int64, error) {
	if len(periods) == 1 {
		n, err := tl.count(ctx, periods[0], nil, hint)
		each[0].Visitors = n
		return n, err
	}
	var all set // on the Go heap: it lives for this call only
	all.grow(sizeFor(int(min(hint, 1<<16))))
	for i, p := range periods {
		n, err := tl.count(ctx, p, &all, hint)
		if err != nil {
			return 0, err
		}
		each[i].Visitors = n
	}
	return int64(all.n), nil
}

// count returns the distinct visitors of p, adding each to all if all is
// not nil.
func (tl *timeline) count(ctx context.Context, p domain.Period, all *set, hint int64) (int64, error) {
	var buf [2]domain.Span
	spans := buf[:0]
	for sp := range p.Spans() {
		spans = append(spans, sp)
	}
	if len(spans) <= 2 {
		// One day, or parts of two (a day in a zone other than UTC):
		// counted in place, a visitor of the second day looked up in the
		// first.
		return tl.countNear(spans, all), nil
	}
	// Many days: their union, in a table of its own. The tables of the days
	// are in the order of their values' top bits, and so is this one: the
	// union is filled almost in order, from one end to the other.
	days := make([]*daySet, len(spans))
	var sum int64
	for i, sp := range spans {
		if days[i] = tl.day(sp.Day); days[i] != nil {
			days[i].mu.Lock()
			sum += int64(days[i].n)
			days[i].mu.Unlock()
		}
	}
	var own set
	own.grow(sizeFor(int(min(hint, sum))))
	for j, sp := range spans {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		ds := days[j]
		if ds == nil {
			continue
		}
		ds.mu.Lock()
		for i, k := range ds.keys {
			if k != 0 && domain.SeenFromBits(ds.seen[i]).In(sp) {
				if own.insert(k); all != nil {
					all.insert(k)
				}
			}
		}
		ds.mu.Unlock()
	}
	return int64(own.n), nil
}

// countNear counts the visitors of one or two consecutive spans, adding
// them to all if all is not nil.
func (tl *timeline) countNear(spans []domain.Span, all *set) int64 {
	if len(spans) == 0 {
		return 0
	}
	var n int64
	first := tl.day(spans[0].Day)
	if first != nil {
		first.mu.Lock()
		defer first.mu.Unlock()
		if all == nil && spans[0].Whole() {
			n = int64(first.n)
		} else {
			for i, k := range first.keys {
				if k != 0 && domain.SeenFromBits(first.seen[i]).In(spans[0]) {
					n++
					if all != nil {
						all.insert(k)
					}
				}
			}
		}
	}
	if len(spans) < 2 {
		return n
	}
	second := tl.day(spans[1].Day)
	if second == nil {
		return n
	}
	second.mu.Lock() // after the first: days are locked in order, as everywhere
	defer second.mu.Unlock()
	for i, k := range second.keys {
		if k == 0 || !domain.SeenFromBits(second.seen[i]).In(spans[1]) {
			continue
		}
		if first != nil {
			if s, ok := first.lookup(k); ok && s.In(spans[0]) {
				continue
			}
		}
		n++
		if all != nil {
			all.insert(k)
		}
	}
	return n
}

// PagesIn lists every page with visitors in p, and their distinct visitors
// in p, in no particular order. It costs a pass over the visitors of every
// page on the days p touches; ctx is checked between pages.
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
			n, err := pg.days.count(ctx, p, nil, pg.visitors.Load())
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
// under the day's lock. It stops at fn's first error, which it returns.
// visitors and seen are reused from one call to the next.
func (s *Store) EachDay(fn func(page string, day domain.Day, visitors []domain.VisitorID, seen []domain.Seen) error) error {
	var (
		vs   []domain.VisitorID
		seen []domain.Seen
	)
	type pageDay struct {
		key string
		d   domain.Day
		ds  *daySet
	}
	var list []pageDay
	for i := range s.shards {
		sh := &s.shards[i]
		list = list[:0]
		sh.mu.RLock()
		for k, p := range sh.pages {
			p.days.mu.RLock()
			for d, ds := range p.days.days {
				list = append(list, pageDay{k, d, ds})
			}
			p.days.mu.RUnlock()
		}
		sh.mu.RUnlock()
		for _, pd := range list {
			vs, seen = vs[:0], seen[:0]
			pd.ds.mu.Lock()
			for i, k := range pd.ds.keys {
				if k != 0 {
					v, _ := domain.VisitorFromHash(s.visitorHash(k))
					vs = append(vs, v)
					seen = append(seen, domain.SeenFromBits(pd.ds.seen[i]))
				}
			}
			pd.ds.mu.Unlock()
			if len(vs) == 0 {
				continue
			}
			if err := fn(pd.key, pd.d, vs, seen); err != nil {
				return err
			}
		}
	}
	return nil
}

// RecordDay adds visitors to one day of page, each seen as seen[i] says,
// merged with what the day has: how a durable store reads a day back. The
// visitors count for the day only, not for the all-time figures, which
// their page's own record holds. A zero page or visitor, or a Seen that no
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
	p := s.page(s.shardOf(key), key)
	var added, grown int64
	for i, v := range visitors {
		// Two views, at the first and at the last quarter, make the Seen.
		k := s.slotKey(v.Hash())
		a, g := p.days.add(s.arena, day, k, int(seen[i].First))
		_, g2 := p.days.add(s.arena, day, k, int(seen[i].Last))
		if a {
			added++
		}
		grown += g + g2
	}
	s.triples.Add(added)
	if grown != 0 {
		s.grew(grown)
	}
	return nil
}
