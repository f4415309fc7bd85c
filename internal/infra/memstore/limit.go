package memstore

import (
	"cmp"
	"slices"
	"time"
)

// shrinkNum/shrinkDen is the share of the limit a shrink brings the store
// down to, so that the next one waits for an eighth of the limit of growth.
const shrinkNum, shrinkDen = 7, 8

// convertBytes is the least memory a page's exact visitors must take for
// the page to be moved into a sketch: 10 KiB, a quarter more than a
// sketch; a smaller page is cheaper exact. That is about 1,024 visitors
// kept in the page's sets (10 bytes each, tables 7/8 full), or 640 kept in
// its index, as visitors with times are (16 bytes each: the index goes
// with the conversion, the days stay). convertMin is the fewest visitors
// that can take that.
const (
	convertBytes  = 10 << 10
	setVisitorB   = 10
	indexVisitorB = 16
	convertMin    = convertBytes / indexVisitorB
	// sketchWeight is the bytes a page's exact visitors and days must take
	// for the page to be moved into a sketch without them: a little more
	// than the sketch (a page that takes what its sketch would grows on, a
	// sketch does not).
	sketchWeight = sketchBytes + sketchBytes/32
)

// worthConverting reports whether the exact visitors of p take convertBytes
// or more.
func (p *page) worthConverting() bool {
	p.days.mu.RLock()
	indexed := int64(p.days.index.n)
	p.days.mu.RUnlock()
	return indexed*indexVisitorB+max(0, p.visitors.Load()-indexed)*setVisitorB >= convertBytes
}

// weight returns the bytes that the exact visitors of p and its days take
// (those in its sets, if any, about), which moving it into a sketch without
// its days frees.
func (p *page) weight() int64 {
	tl := &p.days
	tl.mu.RLock()
	defer tl.mu.RUnlock()
	return tl.bytes() + max(0, p.visitors.Load()-int64(tl.index.n))*setVisitorB
}

// candidate is a page a shrink may convert or evict.
type candidate struct {
	sh    *shard
	key   string
	p     *page
	seen  int64
	count int64
}

// shrink brings the store back under its limit, if it is still over it once
// no other writer is shrinking it: first by moving the visitors of its
// largest exact pages into sketches (their days estimated), then, if that
// is not enough, by giving up the estimated days of the pages with most,
// then by moving into sketches the exact pages that, with their days and
// their share of the arena's slack, weigh more than one, their days given
// up at once, and last by forgetting the pages that have gone longest
// without an event. It runs in
// the writer that passed the limit, holding no lock but s.shrinking while it
// walks the shards (each under its read lock, briefly) and one page's locks
// at a time while it converts; other writers go on meanwhile, and the ones
// that pass the limit too leave the work to it.
func (s *Store) shrink() {
	if !s.shrinking.TryLock() {
		return
	}
	defer s.shrinking.Unlock()
	limit := s.opts.MemoryLimit
	if s.used() <= limit {
		return
	}
	s.now.Store(time.Now().Unix())
	target := limit / shrinkDen * shrinkNum

	// Sketches first, for the pages big enough to gain by one.
	pages := s.candidates(convertMin)
	slices.SortFunc(pages, func(a, b candidate) int { return cmp.Compare(b.count, a.count) })
	for _, c := range pages {
		if s.used() <= target {
			return
		}
		if !c.p.worthConverting() {
			continue
		}
		s.convert(c.p, true)
	}
	// Then the estimated days, of the pages with most first: their ranges
	// become ErrNoDays, their all-time counts stay.
	var timed []candidate
	for _, c := range s.candidates(0) {
		if c.p.sketched.Load() {
			if c.count = c.p.days.triples(); c.count > 0 {
				timed = append(timed, c)
			}
		}
	}
	slices.SortFunc(timed, func(a, b candidate) int { return cmp.Compare(b.count, a.count) })
	for _, c := range timed {
		if s.used() <= target {
			return
		}
		if bytes, triples, ok := c.p.days.giveUp(s.arena); ok {
			s.bytes.Add(-bytes)
			s.triples.Add(-triples)
			s.daysGivenUp.Add(1)
		}
	}
	// Then the exact pages too small alone for a sketch but not with their
	// days (a flood of pages each with a few hundred visitors, each on a
	// different day), the heaviest first: forgetting them would lose
	// their all-time counts, this loses only their ranges. "Too small" is
	// reckoned with the arena's slack spread over the bytes it holds:
	// small tables of many pages, scattered over the arena, keep pages of
	// it resident that no one table fills, and converting such pages, each
	// a little lighter than a sketch on its own bytes, frees them.
	pages = s.candidates(1)
	for i := range pages {
		pages[i].count = pages[i].p.weight()
	}
	bytes := max(1, s.bytes.Load())
	heavy := int64(float64(sketchWeight) * float64(bytes) / float64(bytes+s.arena.slackBytes()))
	slices.SortFunc(pages, func(a, b candidate) int { return cmp.Compare(b.count, a.count) })
	converted := false
	for _, c := range pages {
		if s.used() <= target {
			return
		}
		if c.count < heavy {
			break
		}
		s.convert(c.p, false)
		converted = true
	}
	// Then the pages idle longest, the smallest first among those idle as
	// long: down to the target, or just under the limit if pages became
	// sketches above, which grow no more.
	if converted {
		target = limit - limit/32
	}
	pages = s.candidates(0)
	slices.SortFunc(pages, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.seen, b.seen), cmp.Compare(a.count, b.count))
	})
	for _, c := range pages {
		if s.used() <= target {
			return
		}
		if s.remove(c) {
			s.evicted.Add(1)
		}
	}
}

// convert moves p into a sketch, with its days estimated if days, else
// without them, and accounts for it.
func (s *Store) convert(p *page, days bool) {
	saved, ok := p.convert(s, days)
	if !ok {
		return
	}
	s.bytes.Add(-saved)
	s.estimated.Add(1)
	s.conversions.Add(1)
	if !days {
		s.daysGivenUp.Add(1)
	}
}

// candidates lists every page, or, for minVisitors > 0, the exact pages
// with that many visitors or more.
func (s *Store) candidates(minVisitors int64) []candidate {
	var out []candidate
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for k, p := range sh.pages {
			n := p.visitors.Load()
			if minVisitors > 0 && (n < minVisitors || p.sketched.Load()) {
				continue
			}
			out = append(out, candidate{sh: sh, key: k, p: p, seen: p.seen.Load(), count: n})
		}
		sh.mu.RUnlock()
	}
	return out
}

// remove takes the page of c out of its shard and frees it, if it is still
// there and Dump is not walking it, and reports whether it did.
func (s *Store) remove(c candidate) bool {
	if !c.p.days.leave() {
		return false
	}
	c.sh.mu.Lock()
	if c.sh.pages[c.key] != c.p {
		c.sh.mu.Unlock()
		return false
	}
	delete(c.sh.pages, c.key)
	c.sh.mu.Unlock()
	// After free, which no writer adds past: the count is final.
	dayBytes, triples := c.p.days.free(s.arena)
	s.bytes.Add(-c.p.free(s.arena) - dayBytes - keepingBytes(c.key))
	s.triples.Add(-triples)
	c.sh.pairs.Add(-c.p.visitors.Load())
	if c.p.sketched.Load() {
		s.estimated.Add(-1)
	}
	return true
}

// Expire removes the pages that have had no event for ttl or longer, as of
// now, and returns how many it removed. The store's clock, which pages note
// their events by, is the now of the last call: called every tick, Expire
// removes a page between ttl and ttl plus a tick after its last event.
func (s *Store) Expire(now time.Time, ttl time.Duration) int {
	s.shrinking.Lock()
	defer s.shrinking.Unlock()
	cutoff := now.Add(-ttl).Unix()
	s.now.Store(now.Unix())
	removed := 0
	for _, c := range s.candidates(0) {
		// Read again: an event may have come since the list was made.
		if c.seen < cutoff && c.p.seen.Load() < cutoff && s.remove(c) {
			removed++
		}
	}
	s.expired.Add(int64(removed))
	return removed
}
