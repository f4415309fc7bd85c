// Package memstore is the in-memory store: it counts the exact distinct
// visitors of each page, for a single process, and forgets everything when
// the process ends.
//
// A visitor is kept as its 64-bit domain.VisitorID.Hash, not as its id: eight
// bytes per (page, visitor) pair in a pointer-free table. Two ids of one page
// would be counted once only if their hashes collided, which is negligible
// (see VisitorID.Hash).
//
// The tables are kept 70% to 87.5% full: they grow by a quarter when 7/8
// full (see set), which makes about 10 bytes of table per pair, 11.4 at
// most, for a page past a few hundred visitors. They live off the Go heap,
// in anonymous mappings the store manages itself (see arena), so that they
// cost their size in resident memory and little more: no GC headroom, no
// garbage when they grow, nothing for the collector to scan or pace. Only
// the pages and their keys, about 200 bytes a page, are on the heap. So the
// runtime's heap figures (runtime.MemStats, heap profiles) leave the tables
// out; Stats.Bytes and the process's resident set count them.
//
// Concurrency rests on sync and sync/atomic alone. Pages are spread over
// shards, each a read-write lock over a map; a page is created under its
// shard's write lock, and only then. Each page has its own lock, so a busy
// page never holds up the others, and a page that grows large is split into
// stripes with a lock each, so that even one hot page takes writes in
// parallel. Reading a count takes no page lock at all: every page keeps it in
// an atomic counter.
package memstore

import (
	"context"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/webtracker/tracker/internal/domain"
)

// Store counts distinct visitors per page in memory. It is safe for
// concurrent use; its methods never block for long, since no lock is held
// while anything but a map lookup or a table insert happens, except for the
// rare pass that brings the store back under its memory limit.
type Store struct {
	// seed picks a page's shard. It is random per Store, which is fine since
	// shards are never persisted, and keeps crafted URLs from piling onto
	// one shard.
	seed maphash.Seed
	// key scrambles visitor hashes before they pick a slot and a stripe;
	// see slotKey.
	key   uint64
	arena *arena // the tables and sketches of every page
	opts  Options
	// now is the store's clock, in Unix seconds, as Expire and shrink last
	// read it: pages note it on every event (see page.seen), without a
	// clock read per event. It is read with the fields above, on every
	// view, and written seldom: the shards keep it off the cache line of
	// bytes, which writers add to.
	now    atomic.Int64
	shards [shardCount]shard

	// bytes is the memory the store accounts for: see Stats.Bytes.
	bytes atomic.Int64
	// shrinking is held by the one pass that brings the store back under
	// its limit; other writers go on meanwhile.
	shrinking sync.Mutex

	estimated, conversions, evicted, expired atomic.Int64
	// triples and the shards' own (see shard.triples) add up to the (page,
	// visitor, day) the days of every page hold; daysDropped counts the
	// (page, day) that DropDays has forgotten; daysGivenUp the pages whose
	// estimated days a shrink gave up.
	triples, daysDropped, daysGivenUp atomic.Int64
}

// Options are a Store's limits. The zero Options keep every count exact, in
// as much memory as that takes.
type Options struct {
	// MemoryLimit bounds Stats.Bytes plus Stats.Slack (0: no bound). Past it, the store moves
	// the visitors of its pages of over a thousand visitors into sketches
	// (see sketch), largest first, until it is under 7/8 of the limit; if
	// that is not enough (a flood of pages with few visitors each, which
	// sketches would not make smaller), it forgets the pages that have gone
	// longest without an event, the fewest visitors first among those.
	MemoryLimit int64
	// Approximate makes every page a sketch from its first visitor.
	Approximate bool
}

// Stats are the sizes of a Store, for metrics. Each figure is exact once
// writes stop; during writes they may come from slightly different instants.
type Stats struct {
	// Pages is the number of pages held, and Estimated how many of them are
	// counted by a sketch.
	Pages, Estimated int64
	// Pairs is the number of distinct (page, visitor) pairs, the sum of
	// every page's visitors, estimated ones included.
	Pairs int64
	// Bytes is the memory the store accounts for, what Options.MemoryLimit
	// bounds: its tables and sketches, off the Go heap, at their size; each
	// page's keeping (its struct, map entry and key) twice, since the Go
	// heap holds as much garbage as live data before a collection (GOGC=100).
	Bytes int64
	// Slack is the resident memory the tables share with free space on
	// their OS pages (0 where they live on the Go heap); with Bytes, what
	// Options.MemoryLimit bounds. Emptied pages the arena keeps for reuse
	// (at most max(2 MiB, a sixteenth of the tables)) are left out.
	Slack int64
	// Limit is Options.MemoryLimit.
	Limit int64
	// Conversions counts the pages moved into a sketch under the limit;
	// Evicted the pages forgotten under it; Expired the pages removed by
	// Expire.
	Conversions, Evicted, Expired int64
	// Triples is the number of distinct (page, visitor, UTC day) the days
	// hold; DaysDropped counts the (page, day) DropDays has forgotten;
	// DaysGivenUp the pages whose estimated days were given up under the
	// limit (a range of them is ErrNoDays).
	Triples, DaysDropped, DaysGivenUp int64
}

// New returns an empty Store that keeps every count exact and has no memory
// limit.
func New() *Store { return NewWith(Options{}) }

// NewWith returns an empty Store with the given options.
func NewWith(opts Options) *Store {
	s := &Store{seed: maphash.MakeSeed(), key: rand.Uint64(), arena: newArena(), opts: opts}
	for i := range s.shards {
		s.shards[i].pages = make(map[string]*page)
	}
	s.now.Store(time.Now().Unix())
	return s
}

// Record adds one page view; it is idempotent per (page, visitor). A zero
// page or visitor, which no parser returns, is rejected with an error that
// matches domain.ErrInvalid.
//
// ctx is unused: recording in memory is bounded and brief, so there is
// nothing to cancel. It is there for the stores that do I/O.
func (s *Store) Record(ctx context.Context, v domain.PageView) error {
	if v.Page.IsZero() || v.Visitor.IsZero() {
		return fmt.Errorf("memstore: record a page view with a zero page or visitor: %w", domain.ErrInvalid)
	}
	key := v.Page.String()
	sh := s.shardOf(key)
	hash := v.Visitor.Hash()
	slot := s.slotKey(hash)
	for {
		p := s.page(sh, key)
		p.touch(s.now.Load())
		var (
			added, grown, triples int64
			gone                  bool
		)
		if v.At.IsZero() {
			added, grown, gone = s.addUntimed(p, slot, hash)
		} else {
			added, grown, triples, gone = s.addTimed(p, slot, hash, v.At.Day(), domain.SeenAt(v.At.OfDay()))
		}
		if added != 0 {
			sh.pairs.Add(added)
		}
		if triples != 0 {
			sh.triples.Add(triples)
		}
		if grown != 0 {
			s.grew(grown)
		}
		// A page removed (expired or evicted) between the lookup and the
		// add took nothing: the event goes to the page made anew.
		if !gone {
			return nil
		}
	}
}

// A page's visitors are in one of two places, never both: its timeline's
// index, for a visitor with a timed view (nearly every one, since ingest
// gives every event a time), or its exact sets (or sketch), for the others,
// which only the logs and snapshots of earlier versions bring. The count is
// of both. The timeline's lock comes first, then the page's and the
// stripes': a timed writer holds it to check and move a visitor the sets
// hold, an untimed one holds it for reading, so that the two never count
// one visitor twice.

// addUntimed adds a view without a time: to the sets, unless the index has
// the visitor. It reports how the count and the bytes grew, and gone if the
// page was removed meanwhile.
func (s *Store) addUntimed(p *page, k, v uint64) (added, grown int64, gone bool) {
	tl := &p.days
	tl.mu.RLock()
	defer tl.mu.RUnlock()
	if _, _, found := tl.index.find(k); found {
		return 0, 0, false
	}
	added, grown = p.add(k, v)
	return added, grown, added == 0 && p.removed.Load()
}

// addTimed adds a view seen s on day d: to the index and the day, moving
// the visitor out of the sets if they have it. It reports as addUntimed,
// and the (visitor, day) it made: 1 or 0, for the caller to count in its
// shard (see shard.triples).
func (s *Store) addTimed(p *page, k, v uint64, d domain.Day, seen domain.Seen) (added, grown, triples int64, gone bool) {
	p.days.mu.Lock()
	defer p.days.mu.Unlock()
	return s.addTimedLocked(p, k, v, d, seen)
}

// addTimedLocked is addTimed for a caller that holds p.days.mu.
func (s *Store) addTimedLocked(p *page, k, v uint64, d domain.Day, seen domain.Seen) (added, grown, triples int64, gone bool) {
	tl := &p.days
	switch {
	case tl.gone:
		return 0, 0, 0, true
	case tl.dropped: // a sketch, which takes it all-time
		return p.addSketch(v), 0, 0, false
	case tl.estimated: // a sketch, all-time, and the day by its key
		newDay, grown := tl.addDay(s.arena, d, tl.estKey(v), seen)
		return p.addSketch(v), grown, b2i(newDay), false
	}
	ord, isNew, grown := tl.index.insert(s.arena, k)
	if isNew {
		switch {
		case p.sketched.Load(): // stable: a conversion holds tl.mu too
			added = p.addSketch(v)
		case !p.take(k):
			p.visitors.Add(1)
			added = 1
		}
	}
	newDay, g := tl.addDay(s.arena, d, ord, seen)
	return added, grown + g, b2i(newDay), false
}

// b2i returns 1 for true and 0 for false, for counters.
func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// take removes the visitor of table value k from the page's exact sets and
// reports whether they had it; the caller holds p.days.mu, which keeps
// conversions out.
func (p *page) take(k uint64) bool {
	if st := p.striped.Load(); st != nil {
		s := &st[stripeOf(k)]
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.set.remove(k)
	}
	p.mu.Lock()
	if p.striped.Load() != nil { // split meanwhile
		p.mu.Unlock()
		return p.take(k)
	}
	defer p.mu.Unlock()
	return p.small.remove(k)
}

// grew accounts for n more bytes and, past the limit, shrinks the store.
func (s *Store) grew(n int64) {
	if used := s.bytes.Add(n) + s.arena.slackBytes(); s.opts.MemoryLimit > 0 && used > s.opts.MemoryLimit {
		s.shrink()
	}
}

// used is what the memory limit bounds: Stats.Bytes plus Stats.Slack.
func (s *Store) used() int64 { return s.bytes.Load() + s.arena.slackBytes() }

// slotKey turns a visitor hash into the value the tables keep. The visitor
// hash is fixed and public (it must mean the same in every process), so
// anyone could craft ids whose hashes share the bits that pick a slot and a
// stripe, and make every insert into one page probe a long cluster under its
// lock. Tables keep a keyed scramble of it instead, with a key random per
// Store. The scramble (xor, then murmur3's finalizer) is a bijection, so
// distinct hashes stay distinct and counts stay exact; 0, which the tables
// use for an empty slot, is moved to the image of hash 0, which no visitor
// has. A later snapshot can recover the hash by inverting it.
func (s *Store) slotKey(h uint64) uint64 {
	k := fmix64(h ^ s.key)
	if k == 0 {
		k = fmix64(s.key)
	}
	return k
}

// visitorHash inverts slotKey: it returns the visitor hash that a table
// value k was made from.
func (s *Store) visitorHash(k uint64) uint64 {
	h := unfmix64(k) ^ s.key
	if h == 0 {
		// k is the image of 0, which slotKey gives the visitor whose hash
		// is the key itself.
		return s.key
	}
	return h
}

// fmix64 is murmur3's 64-bit finalizer, a bijection that mixes every bit.
func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

// unfmix64 is the inverse of fmix64: each k ^= k>>33 is its own inverse on
// 64 bits (applied twice it gives k ^ k>>66 = k), and each multiplier is
// replaced by its inverse modulo 2^64.
func unfmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0x9cb4b2f8129337db
	k ^= k >> 33
	k *= 0x4f74430c22a54005
	k ^= k >> 33
	return k
}

// Visitors answers the number of distinct visitors of page, exact or
// estimated; a page never seen has 0. It costs a map lookup and an atomic
// load, whatever the size of the page. A zero page is rejected with an error
// that matches domain.ErrInvalid. ctx is unused, as in Record.
func (s *Store) Visitors(ctx context.Context, page domain.PageURL) (domain.Count, error) {
	if page.IsZero() {
		return domain.Count{}, fmt.Errorf("memstore: count the visitors of a zero page: %w", domain.ErrInvalid)
	}
	p := s.lookup(page.String())
	if p == nil {
		return domain.Count{}, nil
	}
	return p.count(), nil
}

// Stats reports sizes for metrics. It takes each shard's read lock briefly,
// one shard at a time, and never scans the pages.
func (s *Store) Stats() Stats {
	st := Stats{Bytes: s.bytes.Load(), Slack: s.arena.slackBytes(), Limit: s.opts.MemoryLimit, Estimated: s.estimated.Load(),
		Conversions: s.conversions.Load(), Evicted: s.evicted.Load(), Expired: s.expired.Load(),
		Triples: s.triples.Load(), DaysDropped: s.daysDropped.Load(), DaysGivenUp: s.daysGivenUp.Load()}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		st.Pages += int64(len(sh.pages))
		sh.mu.RUnlock()
		st.Pairs += sh.pairs.Load()
		st.Triples += sh.triples.Load()
	}
	return st
}

const (
	// shardBits sets the number of shards. A shard's write lock is taken
	// only to create a page, and its read lock for the time of one map
	// lookup, so 64 shards keep contention on page creation low on machines
	// far larger than the ones this runs on.
	shardBits  = 6
	shardCount = 1 << shardBits
	// cacheLine pads structs that different cores write, so that two of
	// them never share a cache line.
	cacheLine = 64
)

// shard holds the pages whose keys hash to it.
type shard struct {
	mu    sync.RWMutex
	pages map[string]*page // guarded by mu
	pairs atomic.Int64     // distinct pairs of the shard's pages
	// triples counts the (page, visitor, day) that views of the shard's
	// pages made; what leaves goes off Store.triples. Counted here, not
	// there, since a counter all writers add to is a cache line that moves
	// between processors on nearly every view.
	triples atomic.Int64
	_       [cacheLine]byte
}

// shardOf returns the shard of a page key, chosen by the top bits of a hash
// independent of the one the map uses inside each shard.
func (s *Store) shardOf(key string) *shard {
	return &s.shards[maphash.String(s.seed, key)>>(64-shardBits)]
}

// page returns the page of key in sh, creating it if need be.
func (s *Store) page(sh *shard, key string) *page {
	sh.mu.RLock()
	p := sh.pages[key]
	sh.mu.RUnlock()
	if p != nil {
		return p
	}
	sh.mu.Lock()
	// Look again: another writer may have created the page between the two
	// locks, and replacing it would lose the visitors it has since counted.
	if p = sh.pages[key]; p != nil {
		sh.mu.Unlock()
		return p
	}
	p = &page{small: set{arena: s.arena}}
	grown := keepingBytes(key)
	if s.opts.Approximate {
		p.sketch = newSketch(s.arena)
		p.sketched.Store(true)
		p.days.estimated, p.days.key = true, rand.Uint64()
		s.estimated.Add(1)
		grown += sketchBytes
	}
	// The key outlives the request: a copy keeps its backing array, which
	// may hold much more, from being retained.
	sh.pages[strings.Clone(key)] = p
	sh.mu.Unlock()
	s.grew(grown)
	return p
}

// keepingBytes is what Stats.Bytes counts for the keeping of a page of key,
// its tables aside: the page, its sketch's header, its map entry (about 40
// bytes with the map's spare room) and its key, twice for the garbage the
// heap may hold beside them.
func keepingBytes(key string) int64 {
	return 2 * int64(unsafe.Sizeof(page{})+unsafe.Sizeof(sketch{})+40+uintptr(len(key)))
}

const (
	// A page's visitors are split into stripes when its single table is
	// full at splitSlots slots, with splitVisitors (3178) visitors, instead
	// of growing: past that, a page is busy enough for writers to meet, and
	// big enough that 64 stripe headers (7 KB) are small beside its 29 KB of
	// table. splitSlots is one of the sizes a table takes (see nextSize).
	splitSlots    = 3632
	splitVisitors = splitSlots * loadNum / loadDen
	// stripeBits sets the number of stripes of a split page.
	stripeBits  = 6
	stripeCount = 1 << stripeBits
	// stripeSize is the size of a stripe (its lock, its set and its
	// padding), counted in Stats.Bytes. A test checks it.
	stripeSize = 8 + 40 + cacheLine
)

// page is the visitor set of one page.
//
// A page starts as one small set under one lock, so that the many pages with
// few visitors stay small: about 200 bytes and the URL for a page of up to
// seven visitors, 64 of them in its arena. Once the set reaches splitSlots,
// the page moves its visitors into stripes, chosen by the low bits of their
// hashes, each with its own lock: writers of one hot page then rarely wait
// for each other. The move happens once, under the page lock, and the
// stripes are published by an atomic pointer; writers that still queue on
// the page lock find it set and go to the stripes.
//
// Under a memory limit, a page may move once more, from its sets into a
// sketch, under the page lock and every stripe lock; a writer that finds it
// done when it gets its lock goes to the sketch. From then on the page is an
// estimate, under the page lock.
type page struct {
	// visitors is the number of distinct visitors, or the sketch's estimate
	// of it. It is added to under the lock of the set that took the visitor,
	// so that it is exact whenever every lock is held, and it never goes down.
	visitors atomic.Int64
	// seen is the store's clock at the page's last event.
	seen     atomic.Int64
	mu       sync.Mutex
	small    set                     // guarded by mu; empty once striped or sketched
	striped  atomic.Pointer[stripes] // nil until the page is split, and once it is sketched
	sketched atomic.Bool             // set, once, when sketch is
	sketch   *sketch                 // guarded by mu
	// removed is set, under mu, when the page is freed: a writer that still
	// holds it then adds nothing, so that it counts no visitor and no byte
	// for a page that is gone (Record then tries the page anew).
	removed atomic.Bool
	// days are the page's visitors day by day, for time ranges; they have
	// locks of their own (see timeline).
	days timeline
}

// count returns the page's count.
func (p *page) count() domain.Count {
	c := domain.Count{Visitors: p.visitors.Load()}
	if p.sketched.Load() {
		c.RelativeError = SketchRelativeError
	}
	return c
}

// touch notes an event at now, the store's clock; a write only when the
// clock has moved since the page's last event.
func (p *page) touch(now int64) {
	if p.seen.Load() != now {
		p.seen.Store(now)
	}
}

// stripes are the visitor sets of a split page.
type stripes [stripeCount]stripe

// stripe is one part of a split page's visitors, padded so that writers of
// neighboring stripes do not contend for a cache line. (A stripe of exactly
// one line would not do: the Go allocator puts a header before objects with
// pointers, so the stripes of a page are not aligned to a line.)
type stripe struct {
	mu  sync.Mutex
	set set // guarded by mu
	_   [cacheLine]byte
}

// add inserts the visitor of hash v, whose value in the tables is h (see
// slotKey), and reports by how much the page's count rose (1 or 0 for an
// exact page; for a sketch, however its rounded estimate moved) and by how
// many bytes the tables grew.
func (p *page) add(h, v uint64) (added, grown int64) {
	if !p.sketched.Load() {
		var done bool
		if st := p.striped.Load(); st != nil {
			added, grown, done = st.add(p, h)
		} else {
			added, grown, done = p.addSmall(h)
		}
		if done {
			return added, grown
		}
		// The page was sketched while this writer waited for its lock;
		// grown is a split it made before.
		return p.addSketch(v), grown
	}
	return p.addSketch(v), 0
}

// addSmall inserts h into the page's single set, or splits the page when that
// set is due to grow past splitSlots. It reports done = false, having done
// nothing, if the page is sketched.
func (p *page) addSmall(h uint64) (added, grown int64, done bool) {
	p.mu.Lock()
	if p.sketched.Load() {
		p.mu.Unlock()
		return 0, 0, false
	}
	if p.removed.Load() {
		p.mu.Unlock()
		return 0, 0, true
	}
	if st := p.striped.Load(); st != nil {
		// Another writer split the page while this one waited for the lock.
		p.mu.Unlock()
		return st.add(p, h)
	}
	if p.small.n < splitVisitors {
		added, grown = p.insert(&p.small, h)
		p.mu.Unlock()
		return added, grown, true
	}
	if p.small.contains(h) {
		// Only a new visitor may trigger the split, as only one may grow
		// a table.
		p.mu.Unlock()
		return 0, 0, true
	}
	st := split(&p.small)
	grown = st.bytes() - p.small.release()
	p.striped.Store(st)
	p.mu.Unlock()
	added, g, done := st.add(p, h)
	return added, grown + g, done
}

// insert inserts h into s, which the caller has locked, and counts it.
func (p *page) insert(s *set, h uint64) (added, grown int64) {
	if p.removed.Load() {
		return 0, 0
	}
	ok, grown := s.insert(h)
	if !ok {
		return 0, grown
	}
	p.visitors.Add(1)
	return 1, grown
}

// addSketch adds the visitor of hash v to the page's sketch.
func (p *page) addSketch(v uint64) (added int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.removed.Load() || !p.sketch.add(v) {
		return 0
	}
	n := p.sketch.count()
	added = n - p.visitors.Load()
	if added > 0 {
		p.visitors.Store(n)
	}
	return max(added, 0)
}

// convert moves the page's visitors into a sketch in the arena of s, whose
// estimate starts at their exact number, and reports how many bytes that
// saved (negative if it cost). A sketched or removed page, or one Dump is
// walking, is left as it is (ok = false).
func (p *page) convert(s *Store, days bool) (saved int64, ok bool) {
	// The index's visitors go into the sketch too, and the index goes:
	// that is where a page with times keeps its visitors. The days stay,
	// estimated (see timeline.estimate), if days; else they go.
	p.days.mu.Lock()
	defer p.days.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sketched.Load() || p.removed.Load() || p.days.pins > 0 {
		return 0, false
	}
	sk := newSketch(s.arena)
	p.days.index.each(func(k uint64, _ uint32) { sk.add(s.visitorHash(k)) })
	if days {
		freed, merged := p.days.estimate(s.arena, s.visitorHash)
		s.triples.Add(-merged)
		saved = freed
	} else {
		freed, triples := p.days.drop(s.arena)
		p.days.estimated = true // as giveUp leaves it
		s.triples.Add(-triples)
		saved = freed
	}
	saved -= int64(sketchBytes)
	if st := p.striped.Load(); st != nil {
		for i := range st {
			st[i].mu.Lock()
		}
		for i := range st {
			sk.addAll(st[i].set.slots, s.visitorHash)
		}
		p.publish(sk)
		for i := range st {
			saved += st[i].set.release()
			st[i].mu.Unlock()
		}
		saved += stripeCount * stripeSize
		p.striped.Store(nil)
	} else {
		sk.addAll(p.small.slots, s.visitorHash)
		p.publish(sk)
		saved += p.small.release()
	}
	return saved, true
}

// publish makes sk the page's counter, its estimate starting at the exact
// count. The caller holds every lock of the page.
func (p *page) publish(sk *sketch) {
	sk.estimate = float64(p.visitors.Load())
	p.sketch = sk
	p.sketched.Store(true)
}

// split spreads the values of s over new stripes, each table sized for its
// share as if it had been filled one insert at a time, in the arena of s.
func split(s *set) *stripes {
	var counts [stripeCount]int
	for _, h := range s.slots {
		if h != 0 {
			counts[stripeOf(h)]++
		}
	}
	st := new(stripes)
	for i := range st {
		st[i].set.arena = s.arena
		st[i].set.grow(sizeFor(counts[i]))
	}
	// No stripe lock is needed: nobody else sees st until it is published.
	for _, h := range s.slots {
		if h != 0 {
			st[stripeOf(h)].set.insert(h)
		}
	}
	return st
}

// stripeOf picks a stripe by the low bits of h; sets place values in their
// tables by the top bits, which stay uniform within a stripe.
func stripeOf(h uint64) uint64 { return h & (stripeCount - 1) }

// add inserts h into its stripe, as page.addSmall does.
func (st *stripes) add(p *page, h uint64) (added, grown int64, done bool) {
	s := &st[stripeOf(h)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.sketched.Load() {
		return 0, 0, false
	}
	added, grown = p.insert(&s.set, h)
	return added, grown, true
}

// bytes returns the size of the stripes and their tables. The caller must
// own them, or hold every stripe lock.
func (st *stripes) bytes() int64 {
	n := int64(stripeCount * stripeSize)
	for i := range st {
		n += st[i].set.bytes()
	}
	return n
}

// free returns the tables or sketch of p to a and reports the bytes they and
// the stripes held, for Stats; freeing again reports 0. It is for removing a
// page: the caller must first take p out of its shard, so that no new writer
// finds it. A writer that found it before and comes after free adds nothing
// (see removed): its visitor is lost with the page, as it should be.
func (p *page) free(a *arena) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.removed.Store(true)
	n := p.small.release()
	if st := p.striped.Load(); st != nil {
		n += stripeCount * stripeSize
		for i := range st {
			s := &st[i]
			s.mu.Lock()
			n += s.set.release()
			s.mu.Unlock()
		}
		p.striped.Store(nil)
	}
	if p.sketch != nil {
		n += p.sketch.release(a)
	}
	return n
}
