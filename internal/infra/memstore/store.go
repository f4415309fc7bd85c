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

	"github.com/webtracker/tracker/internal/domain"
)

// Store counts distinct visitors per page in memory. It is safe for
// concurrent use; its methods never block for long, since no lock is held
// while anything but a map lookup or a table insert happens.
type Store struct {
	// seed picks a page's shard. It is random per Store, which is fine since
	// shards are never persisted, and keeps crafted URLs from piling onto
	// one shard.
	seed maphash.Seed
	// key scrambles visitor hashes before they pick a slot and a stripe;
	// see slotKey.
	key    uint64
	arena  *arena // the tables of every page
	shards [shardCount]shard
}

// Stats are the sizes of a Store, for metrics. Each figure is exact once
// writes stop; during writes the three may come from slightly different
// instants.
type Stats struct {
	// Pages is the number of pages seen.
	Pages int64
	// Pairs is the number of distinct (page, visitor) pairs, the sum of
	// every page's visitors.
	Pairs int64
	// Bytes approximates the memory held by the visitor tables, most of it
	// off the Go heap, and the page keys. The fixed cost of each page (its
	// map entry and bookkeeping, about 100 bytes) is left out, and so are the
	// free pieces of the tables' mappings, a few pages.
	Bytes int64
}

// New returns an empty Store.
func New() *Store {
	s := &Store{seed: maphash.MakeSeed(), key: rand.Uint64(), arena: newArena()}
	for i := range s.shards {
		s.shards[i].pages = make(map[string]*page)
	}
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
	added, grown := sh.page(key, s.arena).add(s.slotKey(v.Visitor.Hash()))
	if added {
		sh.pairs.Add(1)
	}
	if grown != 0 {
		sh.bytes.Add(grown)
	}
	return nil
}

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

// Visitors answers the number of distinct visitors of page; a page never
// seen has 0. It costs a map lookup and an atomic load, whatever the size of
// the page. A zero page is rejected with an error that matches
// domain.ErrInvalid. ctx is unused, as in Record.
func (s *Store) Visitors(ctx context.Context, page domain.PageURL) (int64, error) {
	if page.IsZero() {
		return 0, fmt.Errorf("memstore: count the visitors of a zero page: %w", domain.ErrInvalid)
	}
	key := page.String()
	sh := s.shardOf(key)
	sh.mu.RLock()
	p := sh.pages[key]
	sh.mu.RUnlock()
	if p == nil {
		return 0, nil
	}
	return p.visitors.Load(), nil
}

// Stats reports sizes for metrics. It takes each shard's read lock briefly,
// one shard at a time, and never scans the pages.
func (s *Store) Stats() Stats {
	var st Stats
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		st.Pages += int64(len(sh.pages))
		sh.mu.RUnlock()
		st.Pairs += sh.pairs.Load()
		st.Bytes += sh.bytes.Load()
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
	pages map[string]*page // guarded by mu; pages are never removed
	pairs atomic.Int64     // distinct pairs of the shard's pages
	bytes atomic.Int64     // table and key bytes of the shard's pages
	_     [cacheLine]byte
}

// shardOf returns the shard of a page key, chosen by the top bits of a hash
// independent of the one the map uses inside each shard.
func (s *Store) shardOf(key string) *shard {
	return &s.shards[maphash.String(s.seed, key)>>(64-shardBits)]
}

// page returns the page of key, creating it if need be, with its tables in a.
func (sh *shard) page(key string, a *arena) *page {
	sh.mu.RLock()
	p := sh.pages[key]
	sh.mu.RUnlock()
	if p != nil {
		return p
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	// Look again: another writer may have created the page between the two
	// locks, and replacing it would lose the visitors it has since counted.
	if p = sh.pages[key]; p == nil {
		p = &page{small: set{arena: a}}
		// The key outlives the request: a copy keeps its backing array,
		// which may hold much more, from being retained.
		sh.pages[strings.Clone(key)] = p
		sh.bytes.Add(int64(len(key)))
	}
	return p
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
type page struct {
	// visitors is the number of distinct visitors. It is added to after each
	// new insert, so it never counts a visitor twice and never goes down.
	visitors atomic.Int64
	mu       sync.Mutex
	small    set                     // guarded by mu; empty once striped
	striped  atomic.Pointer[stripes] // nil until the page is split
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

// add inserts the visitor hash h and reports whether it was new and by how
// many bytes the tables grew.
func (p *page) add(h uint64) (added bool, grown int64) {
	if st := p.striped.Load(); st != nil {
		added, grown = st.add(h)
	} else {
		added, grown = p.addSmall(h)
	}
	if added {
		p.visitors.Add(1)
	}
	return added, grown
}

// addSmall inserts h into the page's single set, or splits the page when that
// set is due to grow past splitSlots.
func (p *page) addSmall(h uint64) (added bool, grown int64) {
	p.mu.Lock()
	if st := p.striped.Load(); st != nil {
		// Another writer split the page while this one waited for the lock.
		p.mu.Unlock()
		return st.add(h)
	}
	if p.small.n < splitVisitors {
		added, grown = p.small.insert(h)
		p.mu.Unlock()
		return added, grown
	}
	if p.small.contains(h) {
		// Only a new visitor may trigger the split, as only one may grow
		// a table.
		p.mu.Unlock()
		return false, 0
	}
	st := split(&p.small)
	grown = st.bytes() - p.small.release()
	p.striped.Store(st)
	p.mu.Unlock()
	added, g := st.add(h)
	return added, grown + g
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

// add inserts h into its stripe.
func (st *stripes) add(h uint64) (added bool, grown int64) {
	s := &st[stripeOf(h)]
	s.mu.Lock()
	added, grown = s.set.insert(h)
	s.mu.Unlock()
	return added, grown
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

// free returns the tables of p to the arena and reports the bytes they and
// the stripes held, for Stats; freeing again reports 0. It is for removing a
// page, which nothing does yet: the caller must first take p out of its
// shard, so that no new writer finds it. A writer that found it before may
// still insert once free has run; its table then comes from the Go heap and
// goes with the page, and its visitor is lost with the page, as it should be.
func (p *page) free() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
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
	return n
}
