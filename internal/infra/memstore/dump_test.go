package memstore

import (
	"context"
	"encoding/binary"
	"errors"
	"maps"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/infra/storetest"
)

// dump returns every page's visitor hashes, sorted, as Each sees them.
func dump(tb testing.TB, s *Store) map[string][]uint64 {
	tb.Helper()
	got := make(map[string][]uint64)
	err := s.Each(func(page string, visitors []domain.VisitorID, sketch []byte) error {
		if sketch != nil {
			tb.Errorf("Each gave a sketch for page %q of an exact store", page)
		}
		if _, dup := got[page]; dup {
			tb.Errorf("Each gave page %q twice", page)
		}
		hs := make([]uint64, len(visitors))
		for i, v := range visitors {
			hs[i] = v.Hash()
		}
		slices.Sort(hs)
		got[page] = hs
		return nil
	})
	if err != nil {
		tb.Fatalf("Each: %v", err)
	}
	return got
}

// TestEachRecordAllRoundTrip writes a store out with Each and reads it into
// another with RecordAll: the visitors must be the very hashes recorded
// (unscrambled, though the two stores scramble with different keys), on
// small and striped pages alike, including the visitor whose hash is the
// first store's key.
func TestEachRecordAllRoundTrip(t *testing.T) {
	t.Parallel()
	a := New()
	want := make(map[string][]uint64)
	add := func(page domain.PageURL, v domain.VisitorID) {
		record(t, a, page, v)
		want[page.String()] = append(want[page.String()], v.Hash())
	}
	sizes := []int{1, 7, 100, splitVisitors + 1000} // the last one is striped
	for p, size := range sizes {
		for i := range size {
			add(pageN(t, p), visitorN(t, p*100000+i))
		}
	}
	keyVisitor, _ := domain.VisitorFromHash(a.key)
	add(pageN(t, 0), keyVisitor)
	for _, hs := range want {
		slices.Sort(hs)
	}

	got := dump(t, a)
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("Each gave %d pages, want %d; or their visitors differ", len(got), len(want))
	}

	b := New()
	for page, hs := range got {
		vs := make([]domain.VisitorID, len(hs))
		for i, h := range hs {
			vs[i], _ = domain.VisitorFromHash(h)
		}
		if err := b.RecordAll(context.Background(), storetest.Page(t, page), vs); err != nil {
			t.Fatal(err)
		}
		// Twice: a log replayed over a snapshot repeats visitors.
		if err := b.RecordAll(context.Background(), storetest.Page(t, page), vs[:len(vs)/2]); err != nil {
			t.Fatal(err)
		}
	}
	if got := dump(t, b); !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatal("the store read back with RecordAll differs from the one written")
	}
	if sa, sb := a.Stats(), b.Stats(); sa.Pages != sb.Pages || sa.Pairs != sb.Pairs {
		t.Errorf("Stats: written %+v, read back %+v", sa, sb)
	}
	for p := range sizes {
		if na, nb := visitors(t, a, pageN(t, p)), visitors(t, b, pageN(t, p)); na != nb {
			t.Errorf("page %d: %d visitors written, %d read back", p, na, nb)
		}
	}
}

// TestEachDuringWrites walks the store while writers add to it: every
// visitor recorded before the walk began must be in it, none twice.
func TestEachDuringWrites(t *testing.T) {
	t.Parallel()
	s := New()
	const pages, before = 8, 5000
	for p := range pages {
		for i := range before {
			record(t, s, pageN(t, p), visitorN(t, i))
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := before + w; ; i += 4 {
				select {
				case <-stop:
					return
				default:
				}
				record(t, s, pageN(t, i%pages), visitorN(t, i))
			}
		})
	}
	got := dump(t, s)
	close(stop)
	wg.Wait()
	for p := range pages {
		hs := got[pageN(t, p).String()]
		if len(slices.Compact(slices.Clone(hs))) != len(hs) {
			t.Errorf("page %d: a visitor is given twice", p)
		}
		for i := range before {
			if _, ok := slices.BinarySearch(hs, visitorN(t, i).Hash()); !ok {
				t.Fatalf("page %d: visitor %d, recorded before the walk, is missing", p, i)
			}
		}
	}
}

func TestEachStopsAtError(t *testing.T) {
	t.Parallel()
	s := New()
	record(t, s, pageN(t, 1), visitorN(t, 1))
	record(t, s, pageN(t, 2), visitorN(t, 1))
	stop := errors.New("stop")
	calls := 0
	err := s.Each(func(string, []domain.VisitorID, []byte) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Each = %v after %d calls, want fn's error after 1", err, calls)
	}
}

func TestRecordAllRejectsZeroValues(t *testing.T) {
	t.Parallel()
	s := New()
	v := visitorN(t, 1)
	if err := s.RecordAll(context.Background(), domain.PageURL{}, []domain.VisitorID{v}); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("zero page: %v, want ErrInvalid", err)
	}
	if err := s.RecordAll(context.Background(), pageN(t, 1), []domain.VisitorID{v, {}}); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("zero visitor: %v, want ErrInvalid", err)
	}
	if st := s.Stats(); st.Pairs != 0 {
		t.Errorf("a rejected RecordAll stored %d pairs", st.Pairs)
	}
}

// A store's estimated pages go out through Each as sketches and come back
// through RestoreSketch as they were: same counts, still estimates, and, the
// sketch keeping its own scramble, visitors seen before are not counted
// again, while new ones are.
func TestSketchRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const pages, perPage = 4, 3000
	// Room for one or two pages exact: the others become sketches.
	s := NewWith(Options{MemoryLimit: 90_000})
	for p := range pages {
		for i := range perPage {
			record(t, s, pageN(t, p), visitorN(t, i))
		}
	}
	if st := s.Stats(); st.Estimated == 0 || st.Estimated == pages {
		t.Fatalf("Stats() = %+v: want some pages estimated and some exact", st)
	}

	r := New()
	sketches := 0
	err := s.Each(func(page string, visitors []domain.VisitorID, sketch []byte) error {
		u := storetest.Page(t, page)
		if sketch != nil {
			sketches++
			if visitors != nil {
				t.Errorf("%s: both visitors and a sketch", page)
			}
			return r.RestoreSketch(ctx, u, sketch)
		}
		return r.RecordAll(ctx, u, visitors)
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := s.Stats().Estimated; int64(sketches) != want {
		t.Errorf("Each gave %d sketches, the store has %d estimated pages", sketches, want)
	}
	for p := range pages {
		before, _ := s.Visitors(ctx, pageN(t, p))
		after, _ := r.Visitors(ctx, pageN(t, p))
		if before != after {
			t.Errorf("page %d: %+v before, %+v read back", p, before, after)
		}
		for i := range perPage {
			record(t, r, pageN(t, p), visitorN(t, i))
		}
		if again, _ := r.Visitors(ctx, pageN(t, p)); again != before {
			t.Errorf("page %d: %+v after its visitors came again, want %+v", p, again, before)
		}
		for i := range 1000 {
			record(t, r, pageN(t, p), visitorN(t, perPage+i))
		}
		// Each new visitor adds 1/μ, μ the chance that one changes the
		// sketch (above 0.6 here), and the variance (1-μ)/μ: 1000 of them,
		// at most 670, a standard deviation of 26; exact pages, none.
		if more, _ := r.Visitors(ctx, pageN(t, p)); math.Abs(float64(more.Visitors-before.Visitors-1000)) > 4*26 {
			t.Errorf("page %d: %d after 1000 new visitors, want about %d", p, more.Visitors, before.Visitors+1000)
		}
	}
	if st := r.Stats(); st.Estimated != int64(sketches) {
		t.Errorf("read back: Stats() = %+v, want %d estimated pages", st, sketches)
	}
}

func TestRestoreSketchRejectsBadData(t *testing.T) {
	t.Parallel()
	s := NewWith(Options{Approximate: true})
	record(t, s, pageN(t, 1), visitorN(t, 1))
	var good []byte
	_ = s.Each(func(_ string, _ []domain.VisitorID, sk []byte) error { good = slices.Clone(sk); return nil })
	bad := func(change func([]byte)) []byte { b := slices.Clone(good); change(b); return b }
	for name, data := range map[string][]byte{
		"short":             good[:len(good)-1],
		"register past 52":  bad(func(b []byte) { b[16] = 53 << 2 }),
		"flags of an empty": bad(func(b []byte) { b[16] = 1 }),
		"negative estimate": bad(func(b []byte) { binary.LittleEndian.PutUint64(b[8:], math.Float64bits(-1)) }),
		"not a number":      bad(func(b []byte) { binary.LittleEndian.PutUint64(b[8:], math.Float64bits(math.NaN())) }),
	} {
		if err := New().RestoreSketch(context.Background(), pageN(t, 2), data); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if err := New().RestoreSketch(context.Background(), pageN(t, 2), good); err != nil {
		t.Errorf("the good one: %v", err)
	}
}

// TestDumpPinsThePage: while Dump walks a page (or two Dumps do), a
// conversion, giving up its days, removing it or restoring a sketch into
// it is refused, so its record and its days are of one state (exact here),
// and once the walk is over they work again.
// Days are found by date: one dropped by retention or added late during
// the walk makes Dump skip no day after it and give no day twice.
func TestDumpPinsThePage(t *testing.T) {
	t.Parallel()
	s := New()
	page := pageN(t, 1)
	want := map[domain.Day]int{}
	for d := 1; d <= 6; d++ {
		for v := range 50 * d {
			recordAt(t, s, page, visitorN(t, v), dayN(d))
		}
		want[domain.DayOf(dayN(d))] = 50 * d
	}
	other := NewWith(Options{Approximate: true}) // a sketch of more visitors than the page's
	for v := range 1000 {
		record(t, other, page, visitorN(t, v))
	}
	var marshaled []byte
	_ = other.Each(func(_ string, _ []domain.VisitorID, sk []byte) error { marshaled = slices.Clone(sk); return nil })
	key := page.String()
	p := s.lookup(key)
	c := candidate{sh: s.shardOf(key), key: key, p: p}
	got := map[domain.Day]int{}
	err := s.Dump(func(_ string, visitors []domain.VisitorID, sketch []byte) error {
		if sketch != nil || len(visitors) != 300 {
			t.Errorf("the page's record: %d visitors, sketch %v; want 300 exact", len(visitors), sketch != nil)
		}
		// A second Dump meanwhile pins the page too, and unpins only its
		// own pin.
		if err := s.Each(func(string, []domain.VisitorID, []byte) error { return nil }); err != nil {
			t.Fatal(err)
		}
		s.convert(p, true)
		s.convert(p, false)
		if _, _, ok := p.days.giveUp(s.arena); ok {
			t.Error("giveUp of the page Dump walks succeeded")
		}
		if s.remove(c) {
			t.Error("remove of the page Dump walks succeeded")
		}
		if err := s.RestoreSketch(context.Background(), page, marshaled); err == nil {
			t.Error("RestoreSketch of the page Dump walks succeeded")
		}
		return nil
	}, func(_ string, day domain.Day, visitors []domain.VisitorID, _ []domain.Seen) error {
		if _, twice := got[day]; twice {
			t.Errorf("day %v given twice", day)
		}
		got[day] = len(visitors)
		switch day {
		case domain.DayOf(dayN(1)): // days 1 and 2 go: day 3 comes next
			s.DropDays(domain.DayOf(dayN(3)))
			delete(want, domain.DayOf(dayN(2)))
		case domain.DayOf(dayN(3)): // a day before it comes in: day 4 next
			recordAt(t, s, page, visitorN(t, 1), dayN(2))
		}
		return nil
	}, func(string, domain.Day, uint64, []uint32, []domain.Seen) error {
		t.Error("Dump gave an estimated day of a page whose record is exact")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("Dump gave days %v, want %v", got, want)
	}
	if p.sketched.Load() {
		t.Fatal("the page was converted during the walk")
	}
	s.convert(p, true)
	if !p.sketched.Load() {
		t.Error("the page could not be converted after the walk")
	}
	if !s.remove(c) || s.lookup(key) != nil {
		t.Error("the page could not be removed after the walk")
	}
}
