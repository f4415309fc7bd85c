package memstore

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/domain"
)

// hashView records the visitor of hash h on page.
func hashView(tb testing.TB, s *Store, page domain.PageURL, h uint64) {
	tb.Helper()
	v, err := domain.VisitorFromHash(h)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Record(context.Background(), domain.PageView{Page: page, Visitor: v}); err != nil {
		tb.Fatal(err)
	}
}

// Writers keep recording while the limit moves pages into sketches: no
// visitor is lost, so every estimate stays within 3 standard errors of its
// page's true count, and a page that was not converted is still exact.
func TestConversionUnderConcurrentWriters(t *testing.T) {
	t.Parallel()
	const (
		pages   = 8
		writers = 4
	)
	perPage := 40_000
	if raceEnabled {
		perPage = 12_000
	}
	// Room for about a third of the exact tables: most pages must convert
	// while their writers go on.
	s := NewWith(Options{MemoryLimit: int64(pages*perPage) * 10 / 3})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			// Each writer sends every visitor of every page, in its own
			// order, so that all of them race on every visitor.
			for _, i := range rng.Perm(pages * perPage) {
				hashView(t, s, pageN(t, i%pages), uint64(i/pages)+1)
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if st.Conversions == 0 || st.Estimated == 0 {
		t.Fatalf("Stats() = %+v: no page was converted; the test no longer tests conversion", st)
	}
	if st.Evicted != 0 {
		t.Errorf("Stats() = %+v: pages were evicted where sketches were enough", st)
	}
	if st.Bytes+st.Slack > st.Limit {
		t.Errorf("Stats() = %+v: over the limit", st)
	}
	for p := range pages {
		c, err := s.Visitors(context.Background(), pageN(t, p))
		if err != nil {
			t.Fatal(err)
		}
		if c.Exact() {
			if c.Visitors != int64(perPage) {
				t.Errorf("page %d: exact count %d, want %d", p, c.Visitors, perPage)
			}
			continue
		}
		if c.RelativeError != SketchRelativeError {
			t.Errorf("page %d: relative error %g, want %g", p, c.RelativeError, SketchRelativeError)
		}
		if off := math.Abs(float64(c.Visitors-int64(perPage))) / float64(perPage); off > 3*SketchRelativeError {
			t.Errorf("page %d: estimate %d of %d visitors, %.2f%% off", p, c.Visitors, perPage, 100*off)
		}
	}
}

// An adversarial load, random pages and visitors, far more than fit, never
// leaves the store over its limit, and pages keep answering.
func TestAdversarialLoadStaysUnderLimit(t *testing.T) {
	t.Parallel()
	const (
		limit = 1 << 20
		hot   = 5
	)
	events := 200_000
	if raceEnabled {
		events = 50_000
	}
	s := NewWith(Options{MemoryLimit: limit})
	rng := rand.New(rand.NewPCG(3, 4))
	var peak int64
	for i := range events {
		// Half of the events on hot pages, which grow past a sketch; half
		// on pages never seen again.
		page := rng.IntN(hot)
		if i%2 == 1 {
			page = hot + i
		}
		hashView(t, s, pageN(t, page), rng.Uint64()|1)
		if b := s.used(); b > limit {
			t.Fatalf("event %d: %d bytes held, over the limit of %d", i, b, limit)
		} else {
			peak = max(peak, b)
		}
	}
	st := s.Stats()
	t.Logf("%d events: %+v, peak %d bytes", events, st, peak)
	if st.Conversions == 0 || st.Evicted == 0 {
		t.Errorf("Stats() = %+v: want both conversions and evictions", st)
	}
	for p := range hot {
		c, err := s.Visitors(context.Background(), pageN(t, p))
		if err != nil || c.Visitors == 0 {
			t.Errorf("hot page %d: %+v, %v; want it kept, and counting", p, c, err)
		}
	}
}

// A page with a sketch from its first visitor counts like one converted.
func TestApproximate(t *testing.T) {
	t.Parallel()
	s := NewWith(Options{Approximate: true})
	page := pageN(t, 1)
	for i := range 5000 {
		record(t, s, page, visitorN(t, i))
		record(t, s, page, visitorN(t, i/3)) // repeats change nothing
	}
	c, err := s.Visitors(context.Background(), page)
	if err != nil {
		t.Fatal(err)
	}
	if c.Exact() || math.Abs(float64(c.Visitors)-5000) > 3*SketchRelativeError*5000 {
		t.Errorf("Visitors = %+v, want an estimate of 5000", c)
	}
	if st := s.Stats(); st.Estimated != 1 || st.Bytes < sketchBytes || st.Bytes > 2*sketchBytes {
		t.Errorf("Stats() = %+v: want one estimated page of about %d bytes", st, sketchBytes)
	}
}

// Expire removes the pages idle for the TTL, by the store's clock, which
// moves with each call, and frees their memory.
func TestExpire(t *testing.T) {
	t.Parallel()
	s := New()
	t0 := time.Unix(1_000_000, 0)
	s.Expire(t0, time.Hour) // sets the clock
	for p := range 3 {
		for i := range 5000 { // split pages too
			record(t, s, pageN(t, p), visitorN(t, i))
		}
	}
	s.Expire(t0.Add(30*time.Minute), time.Hour)
	record(t, s, pageN(t, 1), visitorN(t, 0)) // seen at t0+30m
	record(t, s, pageN(t, 3), visitorN(t, 0)) // new at t0+30m
	if n := s.Expire(t0.Add(59*time.Minute), time.Hour); n != 0 {
		t.Errorf("at t0+59m: %d pages expired, want 0", n)
	}
	if n := s.Expire(t0.Add(61*time.Minute), time.Hour); n != 2 {
		t.Errorf("at t0+61m: %d pages expired, want 2 (pages 0 and 2)", n)
	}
	for p, want := range []int64{0, 5000, 0, 1} {
		if got := visitors(t, s, pageN(t, p)); got != want {
			t.Errorf("page %d: %d visitors, want %d", p, got, want)
		}
	}
	st := s.Stats()
	wantBytes := keepingBytes(pageN(t, 1).String()) + keepingBytes(pageN(t, 3).String()) + minSlots*8
	if st.Pages != 2 || st.Pairs != 5001 || st.Expired != 2 || st.Bytes <= wantBytes || st.Bytes > wantBytes+60_000 {
		t.Errorf("Stats() = %+v; want 2 pages, 5001 pairs, 2 expired, about one split page's bytes", st)
	}
	if n := s.Expire(t0.Add(3*time.Hour), time.Hour); n != 2 {
		t.Errorf("at t0+3h: %d pages expired, want 2", n)
	}
	if st := s.Stats(); st.Bytes != 0 || st.Pairs != 0 || st.Pages != 0 {
		t.Errorf("Stats() = %+v after every page expired, want nothing held", st)
	}
}
