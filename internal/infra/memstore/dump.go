package memstore

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/webtracker/tracker/internal/domain"
)

// Dump walks every page once, in no particular order, for a durable store
// to write the store out while it takes writes: onPage gets the page with
// its visitors, or, if it is estimated, its sketch marshaled (for
// RestoreSketch) and visitors nil; then, in day order, onDay gets each of
// its exact days (the UTC day, its visitors and when on it each was seen),
// or onEstimated each of its estimated days (the UTC day, the secret the
// page's keys are made with, see timeline.estKey, and the keys with when
// each was seen). A nil function is not called. Dump stops at the first
// error, which it returns.
//
// A page is pinned while it is walked: no conversion, giving up of days or
// removal changes it before its last day is given, so that its record and
// its days are of one state (a shrink meanwhile passes over it). Writers
// wait for a copy, never for a function: a page's visitors are copied under
// its locks (a stripe at a time for a large page), a day under its read
// lock. A visitor or day recorded during the walk may or may not be given,
// and so may a day retention drops meanwhile.
//
// The slices given are reused from one call to the next: the functions
// must not keep them.
func (s *Store) Dump(
	onPage func(page string, visitors []domain.VisitorID, sketch []byte) error,
	onDay func(page string, day domain.Day, visitors []domain.VisitorID, seen []domain.Seen) error,
	onEstimated func(page string, day domain.Day, secret uint64, keys []uint32, seen []domain.Seen) error,
) error {
	var d dumper
	return s.eachPage(func(key string, p *page) error {
		if !p.days.pin() {
			return nil // being removed
		}
		defer p.days.unpin()
		if onPage != nil {
			if err := d.page(s, key, p, onPage); err != nil {
				return err
			}
		}
		return d.days(s, key, &p.days, onDay, onEstimated)
	})
}

// Each calls fn with every page and its visitors, as Dump does.
func (s *Store) Each(fn func(page string, visitors []domain.VisitorID, sketch []byte) error) error {
	return s.Dump(fn, nil, nil)
}

// EachDay calls fn with every exact day of every page: the page, the UTC
// day, and its visitors with when they were seen that day, as Dump does.
func (s *Store) EachDay(fn func(page string, day domain.Day, visitors []domain.VisitorID, seen []domain.Seen) error) error {
	return s.Dump(nil, fn, nil)
}

// EachEstimatedDay calls fn with every day of every estimated page, as Dump
// does: the page, the UTC day, the secret its visitors' keys are made with,
// and the keys with when they were seen that day. It is EachDay for the
// days that have no visitor ids, only keys (see timeline.estKey).
func (s *Store) EachEstimatedDay(fn func(page string, day domain.Day, secret uint64, keys []uint32, seen []domain.Seen) error) error {
	return s.Dump(nil, nil, fn)
}

// dumper holds the buffers of a Dump, reused from page to page.
type dumper struct {
	visitors []domain.VisitorID
	sketch   []byte
	seen     []domain.Seen
	keys     []uint32
	ords     []uint64 // a page's visitors' index values by ordinal
}

// page gives fn the visitors of p, or its sketch.
func (d *dumper) page(s *Store, key string, p *page, fn func(string, []domain.VisitorID, []byte) error) error {
	var exact bool
	if d.visitors, exact = p.appendVisitors(d.visitors[:0], s); exact {
		return fn(key, d.visitors, nil)
	}
	p.mu.Lock() // a conversion holds it until the sketch is whole
	d.sketch = p.sketch.appendMarshal(d.sketch[:0])
	p.mu.Unlock()
	return fn(key, nil, d.sketch)
}

// days gives onDay each exact day of tl, or onEstimated each estimated one,
// copied under the read lock one at a time. A day is found by its date, not
// its place, which days retention drops or late views add move meanwhile.
func (d *dumper) days(s *Store, key string, tl *timeline,
	onDay func(string, domain.Day, []domain.VisitorID, []domain.Seen) error,
	onEstimated func(string, domain.Day, uint64, []uint32, []domain.Seen) error,
) error {
	d.ords = d.ords[:0]
	for next := domain.Day(math.MinInt32); ; {
		d.visitors, d.keys, d.seen = d.visitors[:0], d.keys[:0], d.seen[:0]
		tl.mu.RLock()
		i, _ := tl.find(next)
		estimated := tl.estimated
		if i >= len(tl.days) || (estimated && onEstimated == nil) || (!estimated && onDay == nil) {
			tl.mu.RUnlock()
			return nil
		}
		t := &tl.days[i]
		date, secret := t.day, tl.key
		if estimated {
			t.each(func(k uint32, bits uint16) {
				d.keys, d.seen = append(d.keys, k), append(d.seen, domain.SeenFromBits(bits))
			})
		} else {
			if len(d.ords) != tl.index.n { // anew if the index grew
				d.ords = slices.Grow(d.ords[:0], tl.index.n)[:tl.index.n]
				tl.index.each(func(k uint64, ord uint32) { d.ords[ord] = k })
			}
			t.each(func(o uint32, bits uint16) {
				v, _ := domain.VisitorFromHash(s.visitorHash(d.ords[o]))
				d.visitors, d.seen = append(d.visitors, v), append(d.seen, domain.SeenFromBits(bits))
			})
		}
		tl.mu.RUnlock()
		next = date + 1
		var err error
		switch {
		case len(d.seen) == 0:
		case estimated:
			err = onEstimated(key, date, secret, d.keys, d.seen)
		default:
			err = onDay(key, date, d.visitors, d.seen)
		}
		if err != nil {
			return err
		}
	}
}

// appendVisitors appends the visitors of p to dst, or reports exact = false
// if p is (or becomes, during the walk) a sketch, which cannot list them.
// Each set is read under its lock, where a conversion is seen.
func (p *page) appendVisitors(dst []domain.VisitorID, s *Store) (_ []domain.VisitorID, exact bool) {
	p.days.mu.RLock() // before the page's lock, as everywhere (see addTimed)
	defer p.days.mu.RUnlock()
	p.mu.Lock()
	if p.sketched.Load() {
		p.mu.Unlock()
		return dst, false
	}
	p.days.index.each(func(k uint64, _ uint32) {
		v, _ := domain.VisitorFromHash(s.visitorHash(k))
		dst = append(dst, v)
	})
	st := p.striped.Load()
	if st == nil {
		dst = p.small.appendVisitors(dst, s)
	}
	p.mu.Unlock()
	if st != nil {
		for i := range st {
			st[i].mu.Lock()
			sketched := p.sketched.Load()
			if !sketched {
				dst = st[i].set.appendVisitors(dst, s)
			}
			st[i].mu.Unlock()
			if sketched {
				return dst, false
			}
		}
	}
	return dst, true
}

// appendVisitors appends the visitors whose values set s holds to dst.
func (set *set) appendVisitors(dst []domain.VisitorID, s *Store) []domain.VisitorID {
	for _, k := range set.slots {
		if k != 0 {
			v, _ := domain.VisitorFromHash(s.visitorHash(k)) // never 0: it is a bijection's image of a non-zero value
			dst = append(dst, v)
		}
	}
	return dst
}

// Pages lists every page and its count, in no particular order. It takes
// each shard's read lock in turn, for the time of a walk over its map; no
// page lock. ctx is unused, as in Record.
func (s *Store) Pages(ctx context.Context) ([]domain.PageCount, error) {
	var out []domain.PageCount
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		out = slices.Grow(out, len(sh.pages))
		for k, p := range sh.pages {
			out = append(out, domain.PageCount{URL: k, Count: p.count()})
		}
		sh.mu.RUnlock()
	}
	return out, nil
}

// RestoreSketch reads a sketch that Each gave back into page, as a durable
// store does on start. A sketch cannot be merged with other visitors (their
// scrambles differ), so if the page has visitors already, which only a page
// identity rule turned on since the sketch was written can bring about (by
// making two pages one), the page keeps whichever of the two counts more:
// an undercount of that page, never an overcount. It is for a store not yet
// dumped: a page Dump is walking is left as it is, with an error. Malformed
// data is rejected with an error that matches domain.ErrInvalid; ctx is
// unused, as in Record.
func (s *Store) RestoreSketch(ctx context.Context, page domain.PageURL, data []byte) error {
	if page.IsZero() {
		return fmt.Errorf("memstore: restore a sketch of a zero page: %w", domain.ErrInvalid)
	}
	sk, err := unmarshalSketch(s.arena, data)
	if err != nil {
		return fmt.Errorf("memstore: %w: %v", domain.ErrInvalid, err)
	}
	key := page.String()
	sh := s.shardOf(key)
	p := s.page(sh, key)
	p.touch(s.now.Load())
	if p.visitors.Load() >= sk.count() && p.visitors.Load() > 0 {
		sk.release(s.arena)
		return nil
	}
	p.days.mu.RLock()
	fresh := len(p.days.days) == 0 && !p.days.dropped
	p.days.mu.RUnlock()
	grown := int64(0)
	saved, ok := p.convert(s, false) // its days go below
	if ok {
		grown -= saved
		s.estimated.Add(1)
	}
	// The sketch's own days may follow (RecordEstimatedDay); until they
	// do, a range of the page is ErrNoDays, as it is for good if none come
	// (a snapshot of an earlier version, or a page whose days were given
	// up). Days the page had already (two URLs made one) are not the
	// sketch's: they go, and the sketch's with them.
	p.days.mu.Lock()
	if p.days.pins > 0 || !p.sketched.Load() {
		// A store is restored before it is dumped: a page that Dump walks,
		// or that was removed meanwhile, is left as it is.
		p.days.mu.Unlock()
		sk.release(s.arena)
		s.grew(grown)
		return fmt.Errorf("memstore: restore a sketch of %s while it is dumped or removed", key)
	}
	if !p.days.gone {
		bytes, triples := p.days.drop(s.arena)
		grown -= bytes
		s.triples.Add(-triples)
		p.days.restored = fresh
	}
	p.days.mu.Unlock()
	p.mu.Lock()
	old, before := p.sketch, p.visitors.Load()
	p.sketch = sk
	p.visitors.Store(sk.count())
	p.mu.Unlock()
	old.release(s.arena)
	sh.pairs.Add(sk.count() - before)
	s.grew(grown)
	return nil
}

// RecordAll adds the visitors of one page, as Record does for each, with one
// lookup of the page: it is how a durable store reads a page back. Like
// Record, it rejects a zero page or visitor, and ctx is unused.
func (s *Store) RecordAll(ctx context.Context, page domain.PageURL, visitors []domain.VisitorID) error {
	if page.IsZero() {
		return fmt.Errorf("memstore: record visitors of a zero page: %w", domain.ErrInvalid)
	}
	for _, v := range visitors {
		if v.IsZero() {
			return fmt.Errorf("memstore: record a zero visitor: %w", domain.ErrInvalid)
		}
	}
	key := page.String()
	sh := s.shardOf(key)
	for _, v := range visitors {
		for {
			p := s.page(sh, key)
			p.touch(s.now.Load())
			added, grown, gone := s.addUntimed(p, s.slotKey(v.Hash()), v.Hash())
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

// RecordEstimatedDay adds the keys of one day of an estimated page, each
// seen as seen[i] says, as EachEstimatedDay gave them with secret: how a
// durable store reads an estimated day back, after the page's sketch
// (RestoreSketch). The first day of a page restored so takes the page's
// secret; a day with another secret, or of a page whose days are exact or
// were given up, is left out, since its keys cannot be told from the
// page's own: the page's ranges are then ErrNoDays, never wrong. A zero
// page, a key of MaxUint32, or a Seen that no day has is rejected with an
// error that matches domain.ErrInvalid; ctx is unused.
func (s *Store) RecordEstimatedDay(ctx context.Context, page domain.PageURL, day domain.Day, secret uint64, keys []uint32, seen []domain.Seen) error {
	if page.IsZero() || len(keys) != len(seen) {
		return fmt.Errorf("memstore: record an estimated day of a zero page, or with %d keys and %d times: %w",
			len(keys), len(seen), domain.ErrInvalid)
	}
	for i, k := range keys {
		if k == math.MaxUint32 || !seen[i].Valid() {
			return fmt.Errorf("memstore: record key %#x seen at %v: %w", k, seen[i], domain.ErrInvalid)
		}
	}
	p := s.lookup(page.String())
	if p == nil {
		return nil
	}
	tl := &p.days
	tl.mu.Lock()
	var grown, added int64
	switch {
	case tl.gone:
	case tl.dropped && tl.restored:
		tl.dropped, tl.restored, tl.estimated, tl.key = false, false, true, secret
		tl.epoch++
		fallthrough
	case tl.estimated && !tl.dropped && tl.key == secret:
		for i, k := range keys {
			a, g := tl.addDay(s.arena, day, k, seen[i])
			grown += g
			if a {
				added++
			}
		}
	case tl.estimated && !tl.dropped:
		// Days under two secrets (two URLs made one page since): none
		// can be counted.
		b, n := tl.drop(s.arena)
		grown -= b
		added -= n
	}
	tl.mu.Unlock()
	s.triples.Add(added)
	if grown != 0 {
		s.grew(grown)
	}
	return nil
}
