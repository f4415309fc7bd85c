package memstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/webtracker/tracker/internal/domain"
)

// Each calls fn with every page and its visitors, one page at a time, in no
// particular order, and stops at fn's first error, which it returns. It is
// for writing the store out while it takes writes: each page's visitors are
// copied under the page's locks (a stripe at a time for a large page), so
// writers wait for a copy, never for fn. A visitor recorded during the walk
// may or may not be seen.
//
// An estimated page has no list of visitors: fn gets its sketch instead,
// marshaled (for RestoreSketch), and visitors nil.
//
// visitors and sketch are reused from one call of fn to the next: fn must
// not keep them.
func (s *Store) Each(fn func(page string, visitors []domain.VisitorID, sketch []byte) error) error {
	var (
		buf []domain.VisitorID
		sk  []byte
	)
	return s.eachPage(func(key string, p *page) error {
		var exact bool
		if buf, exact = p.appendVisitors(buf[:0], s); exact {
			return fn(key, buf, nil)
		}
		p.mu.Lock() // a conversion holds it until the sketch is whole
		sk = p.sketch.appendMarshal(sk[:0])
		p.mu.Unlock()
		return fn(key, nil, sk)
	})
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
// an undercount of that page, never an overcount. Malformed data is rejected
// with an error that matches domain.ErrInvalid; ctx is unused, as in Record.
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
	grown := int64(0)
	if saved, ok := p.convert(s); ok {
		grown -= saved
		s.estimated.Add(1)
	}
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
