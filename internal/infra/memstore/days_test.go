package memstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/domain"
)

// dayN is the n-th day of November 2026, UTC, at noon.
func dayN(n int) time.Time { return time.Date(2026, 11, n, 12, 0, 0, 0, time.UTC) }

// recordAt records a view at t and fails the test on error.
func recordAt(tb testing.TB, s *Store, page domain.PageURL, v domain.VisitorID, t time.Time) {
	tb.Helper()
	if err := s.Record(context.Background(), domain.PageView{Page: page, Visitor: v, At: domain.QuarterOf(t)}); err != nil {
		tb.Fatalf("Record(%v, %v, %v): %v", page, v, t, err)
	}
}

// daysCount returns the distinct visitors of page over days from to to of
// November 2026, UTC.
func daysCount(tb testing.TB, s *Store, page domain.PageURL, from, to int) int64 {
	tb.Helper()
	p := domain.Period{From: domain.DayOf(dayN(from)).First(), To: domain.DayOf(dayN(to + 1)).First()}
	got, err := s.Range(context.Background(), page, []domain.Period{p})
	if err != nil {
		tb.Fatal(err)
	}
	return got.Total.Visitors
}

// TestDropDays: retention forgets old days, with their memory; all-time
// counts stay. The clock is the day passed in, no sleeping.
func TestDropDays(t *testing.T) {
	t.Parallel()
	s := New()
	page := pageN(t, 1)
	before := s.Stats().Bytes
	for d := 1; d <= 10; d++ {
		for v := range 100 {
			recordAt(t, s, page, visitorN(t, d*1000+v), dayN(d))
		}
	}
	grown := s.Stats()
	if grown.Triples != 1000 || grown.Bytes <= before {
		t.Fatalf("Stats after 1000 (visitor, day) = %+v, want 1000 triples and more bytes", grown)
	}
	if n := s.DropDays(domain.DayOf(dayN(6))); n != 5 {
		t.Errorf("DropDays dropped %d days, want 5", n)
	}
	if n := daysCount(t, s, page, 1, 5); n != 0 {
		t.Errorf("days 1-5 after they were dropped: %d visitors, want 0", n)
	}
	if n := daysCount(t, s, page, 1, 10); n != 500 {
		t.Errorf("days 1-10: %d visitors, want the 500 of days 6-10", n)
	}
	if n := visitors(t, s, page); n != 1000 {
		t.Errorf("all-time: %d visitors, want 1000: retention must not touch it", n)
	}
	st := s.Stats()
	if st.Triples != 500 || st.DaysDropped != 5 || st.Bytes >= grown.Bytes {
		t.Errorf("Stats after the drop = %+v, want 500 triples, 5 days dropped, fewer bytes than %d", st, grown.Bytes)
	}
	if n := s.DropDays(domain.DayOf(dayN(6))); n != 0 {
		t.Errorf("DropDays again dropped %d days, want 0", n)
	}
}

// TestDaysAreFreedWithTheirPage: a page removed (here by Expire) gives back
// the memory of its days.
func TestDaysAreFreedWithTheirPage(t *testing.T) {
	t.Parallel()
	s := New()
	empty := s.Stats().Bytes
	for v := range 2000 {
		recordAt(t, s, pageN(t, 1), visitorN(t, v), dayN(1+v%7))
	}
	if n := s.Expire(time.Now().Add(time.Hour), time.Minute); n != 1 {
		t.Fatalf("Expire removed %d pages, want 1", n)
	}
	if st := s.Stats(); st.Bytes != empty || st.Triples != 0 {
		t.Errorf("Stats after the page went = %+v, want %d bytes and no triples", st, empty)
	}
}

// TestDaysUnderTheMemoryLimit: the days count against the limit, which
// holds with time ranges in play.
func TestDaysUnderTheMemoryLimit(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	s := NewWith(Options{MemoryLimit: limit})
	rng := rand.New(rand.NewPCG(5, 6))
	events := 100_000
	if raceEnabled {
		events = 60_000
	}
	for i := range events {
		v, _ := domain.VisitorFromHash(rng.Uint64() | 1)
		recordAt(t, s, pageN(t, rng.IntN(50)), v, dayN(1+rng.IntN(30)))
		if b := s.used(); b > limit {
			t.Fatalf("event %d: %d bytes held, over the limit of %d", i, b, limit)
		}
	}
	// The limit was reached (pages became sketches; which of them also
	// gave up days or went depends on the race detector's sizes), and
	// days are still kept.
	if st := s.Stats(); st.Conversions == 0 || st.Triples == 0 {
		t.Errorf("Stats() = %+v: want conversions, and days still kept", st)
	}
}

// TestWeeksMadeByRanges: the first range over a whole week that is over
// (the page has views after it) makes the week's bitmap; views that come
// late to its days go into it; a week scanned while a day of it changed,
// a week not over, or a store with no room under its memory limit makes
// none; retention that takes some of a week's days takes the week. Each
// count is checked against the days read one by one (several periods
// together use no weeks). November 2026: the 2nd, 9th and 16th are Mondays.
func TestWeeksMadeByRanges(t *testing.T) {
	t.Parallel()
	s := New()
	page := pageN(t, 1)
	// Days 2 to 16, 50 visitors each, 40 of them also the next day's:
	// day d has visitors 10d to 10d+49.
	for d := 2; d <= 16; d++ {
		for v := range 50 {
			recordAt(t, s, page, visitorN(t, d*10+v), dayN(d))
		}
	}
	tl := &s.lookup(page.String()).days
	weeks := func() []int32 { return weeksOf(s, page) }
	period := func(from, to int) domain.Period {
		return domain.Period{From: domain.DayOf(dayN(from)).First(), To: domain.DayOf(dayN(to + 1)).First()}
	}
	// check counts days from to to, as one period and day by day.
	check := func(from, to int, want int64) {
		t.Helper()
		one, err := s.Range(context.Background(), page, []domain.Period{period(from, to)})
		if err != nil {
			t.Fatal(err)
		}
		two, err := s.Range(context.Background(), page, []domain.Period{period(from, to), period(from, from)})
		if err != nil {
			t.Fatal(err)
		}
		if one.Total.Visitors != want || two.Each[0].Visitors != want {
			t.Errorf("days %d-%d: %d visitors, %d read day by day, want %d", from, to, one.Total.Visitors, two.Each[0].Visitors, want)
		}
	}
	w9, w2 := weekOf(domain.DayOf(dayN(9))), weekOf(domain.DayOf(dayN(2)))
	if got := weeks(); len(got) != 0 {
		t.Fatalf("weeks %v before any range, want none", got)
	}
	check(9, 15, 110) // visitors 90 to 199
	if got := weeks(); !slices.Equal(got, []int32{w9}) {
		t.Fatalf("weeks %v after a range over the week of the 9th, want [%d]", got, w9)
	}
	check(16, 22, 50) // the week of the 16th is not over
	if got := weeks(); !slices.Equal(got, []int32{w9}) {
		t.Errorf("weeks %v after a range over the week of the 16th, want only [%d]", got, w9)
	}
	// Late views: a new visitor on the 11th, one already seen that week on
	// the 12th, and one on the 10th seen on another day only.
	recordAt(t, s, page, visitorN(t, 5000), dayN(11))
	recordAt(t, s, page, visitorN(t, 95), dayN(12))
	recordAt(t, s, page, visitorN(t, 30), dayN(10))
	check(9, 15, 112)

	// A scan of the week of the 2nd that a late view overtakes is not kept.
	tl.mu.RLock()
	epoch, words := tl.epoch, tl.index.n/64+1
	var seen [7]int32
	for k := range seen {
		j, _ := tl.find(firstDay(w2) + domain.Day(k))
		seen[k] = tl.days[j].n
	}
	tl.mu.RUnlock()
	recordAt(t, s, page, visitorN(t, 6000), dayN(4))
	s.keepWeek(tl, w2, make(bitmap, words), seen, epoch)
	if got := weeks(); !slices.Equal(got, []int32{w9}) {
		t.Errorf("weeks %v after keeping a week whose day changed, want only [%d]", got, w9)
	}
	// Nor is one past the memory limit.
	s.opts.MemoryLimit = s.used() + 1
	check(2, 8, 111) // 20 to 129, and the late one
	if got := weeks(); !slices.Equal(got, []int32{w9}) {
		t.Errorf("weeks %v at the memory limit, want only [%d]", got, w9)
	}
	s.opts.MemoryLimit = 0
	check(2, 8, 111)
	if got := weeks(); !slices.Equal(got, []int32{w2, w9}) {
		t.Errorf("weeks %v, want [%d %d]", got, w2, w9)
	}

	// Retention takes days 2 to 10: both weeks go, and views that come
	// late to what is left of the week of the 9th count.
	s.DropDays(domain.DayOf(dayN(11)))
	if got := weeks(); len(got) != 0 {
		t.Errorf("weeks %v after their first days went, want none", got)
	}
	recordAt(t, s, page, visitorN(t, 7000), dayN(13))
	check(11, 15, 93) // 110 to 199, 5000, 95 and 7000
}

// weeksOf returns the numbers of the weeks page has bitmaps of.
func weeksOf(s *Store, page domain.PageURL) []int32 {
	tl := &s.lookup(page.String()).days
	tl.mu.RLock()
	defer tl.mu.RUnlock()
	var ns []int32
	for _, w := range tl.weeks {
		ns = append(ns, w.n)
	}
	return ns
}

// TestMakeWeeks: MakeWeeks makes the weeks over before the day it is
// given, of every exact page, once, and none of an estimated page; ranges
// then answer the same as the days read one by one; it stops at its
// context's end. November 2026: the 2nd, 9th and 16th are Mondays.
func TestMakeWeeks(t *testing.T) {
	t.Parallel()
	s := New()
	ctx := context.Background()
	pages := []domain.PageURL{pageN(t, 1), pageN(t, 2), pageN(t, 3)}
	for d := 2; d <= 17; d++ {
		for v := range 20 {
			recordAt(t, s, pages[0], visitorN(t, d*10+v), dayN(d))
			recordAt(t, s, pages[1], visitorN(t, v), dayN(d))
			recordAt(t, s, pages[2], visitorN(t, d*10+v), dayN(d))
		}
	}
	p := s.lookup(pages[2].String())
	if _, ok := p.convert(s, true); !ok {
		t.Fatal("convert: not done")
	}
	period := domain.Period{From: domain.DayOf(dayN(2)).First(), To: domain.DayOf(dayN(16)).First()}
	want := make([]int64, len(pages))
	for i, page := range pages[:2] {
		// Two periods: the days one by one, which makes no week.
		got, err := s.Range(ctx, page, []domain.Period{period, period})
		if err != nil {
			t.Fatal(err)
		}
		want[i] = got.Each[0].Visitors
	}
	if got := weeksOf(s, pages[0]); len(got) != 0 {
		t.Fatalf("weeks %v before MakeWeeks, want none", got)
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.MakeWeeks(canceled, domain.DayOf(dayN(17))); !errors.Is(err, context.Canceled) {
		t.Errorf("MakeWeeks(canceled) = %v, want context.Canceled", err)
	}
	made, err := s.MakeWeeks(ctx, domain.DayOf(dayN(17)))
	if err != nil || made != 4 {
		t.Errorf("MakeWeeks(the 17th) = %d, %v; want 4 (2 weeks of 2 exact pages)", made, err)
	}
	w2, w9 := weekOf(domain.DayOf(dayN(2))), weekOf(domain.DayOf(dayN(9)))
	for _, page := range pages[:2] {
		if got := weeksOf(s, page); !slices.Equal(got, []int32{w2, w9}) {
			t.Errorf("%v: weeks %v, want [%d %d]: the week of the 16th is not over", page, got, w2, w9)
		}
	}
	if got := weeksOf(s, pages[2]); len(got) != 0 {
		t.Errorf("estimated page: weeks %v, want none", got)
	}
	for i, page := range pages[:2] {
		got, err := s.Range(ctx, page, []domain.Period{period})
		if err != nil || got.Total.Visitors != want[i] {
			t.Errorf("%v: range %+v, %v with weeks; want %d visitors, as day by day", page, got.Total, err, want[i])
		}
	}
	if made, err := s.MakeWeeks(ctx, domain.DayOf(dayN(17))); made != 0 || err != nil {
		t.Errorf("MakeWeeks again = %d, %v; want 0, nil", made, err)
	}
	// A late view of a new visitor, numbered past the week's bitmap, goes
	// into it.
	recordAt(t, s, pages[0], visitorN(t, 9000), dayN(3))
	one, err := s.Range(ctx, pages[0], []domain.Period{period})
	two, err2 := s.Range(ctx, pages[0], []domain.Period{period, period})
	if err != nil || err2 != nil || one.Total.Visitors != want[0]+1 || two.Each[0].Visitors != want[0]+1 {
		t.Errorf("after a late view: %+v (%v) with weeks, %+v (%v) day by day; want %d", one.Total, err, two.Each[0], err2, want[0]+1)
	}
}

// TestWeeksUnderConcurrency: writers add late views to the days of weeks
// that MakeWeeks and ranges make meanwhile, and retention takes the first
// days once; at the end every week is the union of its days, and a day is
// marked weekly exactly when its week has a bitmap. Run under -race by
// make test.
func TestWeeksUnderConcurrency(t *testing.T) {
	t.Parallel()
	s := New()
	ctx := context.Background()
	page := pageN(t, 1)
	for d := 2; d <= 17; d++ {
		recordAt(t, s, page, visitorN(t, d), dayN(d))
	}
	whole := domain.Period{From: domain.DayOf(dayN(2)).First(), To: domain.DayOf(dayN(16)).First()}
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range 3000 {
				recordAt(t, s, page, visitorN(t, rng.IntN(3000)), dayN(2+rng.IntN(15)))
			}
		})
	}
	wg.Go(func() {
		for i := range 30 {
			if _, err := s.MakeWeeks(ctx, domain.DayOf(dayN(17))); err != nil {
				t.Error(err)
				return
			}
			if i == 10 {
				s.DropDays(domain.DayOf(dayN(4)))
			}
		}
	})
	wg.Go(func() {
		for range 30 {
			if _, err := s.Range(ctx, page, []domain.Period{whole}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()

	tl := &s.lookup(page.String()).days
	tl.mu.RLock()
	defer tl.mu.RUnlock()
	made := map[int32]bool{}
	for _, w := range tl.weeks {
		made[w.n] = true
		union := make(bitmap, tl.index.n/64+1)
		for _, d := range tl.days {
			if weekOf(d.day) == w.n {
				d.each(func(o uint32, _ uint16) { union.add(o + 1) })
			}
		}
		for e := uint32(1); e <= uint32(tl.index.n); e++ {
			inWeek := int(e>>6) < len(w.bits) && w.bits[e>>6]&(1<<(e&63)) != 0
			if inDays := union[e>>6]&(1<<(e&63)) != 0; inWeek != inDays {
				t.Fatalf("week %d: ordinal %d in its bitmap %v, in its days %v", w.n, e-1, inWeek, inDays)
			}
		}
	}
	if len(made) == 0 {
		t.Fatal("no week made")
	}
	for _, d := range tl.days {
		if d.weekly != made[weekOf(d.day)] {
			t.Errorf("day %v: weekly %v, its week made %v", d.day, d.weekly, made[weekOf(d.day)])
		}
	}
}

// TestWeekBitmapSize: a week's bitmap ends at its last visitor's word, in
// whole lines, whatever the page's visitors since; a week without days
// has none, though a range over it is over.
func TestWeekBitmapSize(t *testing.T) {
	t.Parallel()
	s := New()
	page := pageN(t, 1)
	for v := range 50 { // ordinals 0 to 49, in the week of the 2nd
		recordAt(t, s, page, visitorN(t, v), dayN(3))
	}
	for v := range 2000 { // 50 to 2049, in the week of the 9th
		recordAt(t, s, page, visitorN(t, 100+v), dayN(10))
	}
	recordAt(t, s, page, visitorN(t, 5000), dayN(16)) // the weeks before are over
	// A range from October 26th: its first week has no days.
	r := domain.Period{From: domain.DayOf(dayN(2).AddDate(0, 0, -7)).First(), To: domain.DayOf(dayN(16)).First()}
	got, err := s.Range(context.Background(), page, []domain.Period{r})
	if err != nil || got.Total.Visitors != 2050 {
		t.Fatalf("Range = %+v, %v; want 2050 visitors", got.Total, err)
	}
	tl := &s.lookup(page.String()).days
	tl.mu.RLock()
	defer tl.mu.RUnlock()
	var lens []int
	for _, w := range tl.weeks {
		lens = append(lens, len(w.bits))
	}
	// Bits 1 to 50: one word, one line; bits up to 2050: 33 words, 5 lines.
	if want := []int{lineSlots, 5 * lineSlots}; !slices.Equal(lens, want) {
		t.Errorf("week bitmaps of %v words, want %v (the weeks of the 2nd and the 9th only)", lens, want)
	}
}

// TestRangeDuringGrowth: a range read while writers grow the same day's
// table never sees a visitor twice or loses one.
func TestRangeDuringGrowth(t *testing.T) {
	t.Parallel()
	s := New()
	page := pageN(t, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for v := range 5000 {
			recordAt(t, s, page, visitorN(t, v), dayN(3))
			recordAt(t, s, page, visitorN(t, v), dayN(4))
		}
	}()
	last := int64(0)
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		n := daysCount(t, s, page, 1, 5)
		if n < last || n > 5000 {
			t.Fatalf("count went from %d to %d", last, n)
		}
		last = n
	}
	if n := daysCount(t, s, page, 1, 5); n != 5000 {
		t.Errorf("%d visitors after the writes, want 5000", n)
	}
}

func TestRecordWithTimeDoesNotAllocate(t *testing.T) {
	s := New()
	page := pageN(t, 1)
	ids := make([]domain.VisitorID, 5000)
	for i := range ids {
		ids[i] = visitorN(t, i)
	}
	recordAt(t, s, page, ids[0], dayN(1))
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		_ = s.Record(context.Background(), domain.PageView{Page: page, Visitor: ids[i%len(ids)], At: domain.QuarterOf(dayN(1))})
		i++
	})
	if allocs != 0 {
		t.Errorf("Record with a time allocates %v times per call, want 0", allocs)
	}
}

// TestTimedAndUntimedCountOnce: a visitor with views with and without time,
// in either order or at once from racing writers, counts once, and a
// visitor the sets had moves to the index when it comes with a time, as
// after a restart (RecordAll, then RecordDay).
func TestTimedAndUntimedCountOnce(t *testing.T) {
	t.Parallel()
	s := New()
	page := pageN(t, 1)
	const n = 2000
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range n {
				v := visitorN(t, (i+w*n/4)%n)
				if (i+w)%2 == 0 {
					record(t, s, page, v)
				} else {
					recordAt(t, s, page, v, dayN(1+i%3))
				}
			}
		})
	}
	wg.Wait()
	if got := visitors(t, s, page); got != n {
		t.Errorf("%d visitors after racing timed and untimed views, want %d", got, n)
	}
	if st := s.Stats(); st.Pairs != n {
		t.Errorf("Stats().Pairs = %d, want %d", st.Pairs, n)
	}

	r := New()
	other := pageN(t, 2)
	var all []domain.VisitorID
	var seen []domain.Seen
	for i := range 5000 { // past a split into stripes
		all = append(all, visitorN(t, i))
		seen = append(seen, domain.SeenAt(i%96))
	}
	if err := r.RecordAll(context.Background(), other, all); err != nil {
		t.Fatal(err)
	}
	if err := r.RecordDay(context.Background(), other, domain.DayOf(dayN(5)), all[:4000], seen[:4000]); err != nil {
		t.Fatal(err)
	}
	if got := visitors(t, r, other); got != 5000 {
		t.Errorf("%d visitors after RecordAll and RecordDay, want 5000", got)
	}
	p := r.shardOf(other.String()).pages[other.String()]
	inSets := p.small.n
	if st := p.striped.Load(); st != nil {
		for i := range st {
			inSets += st[i].set.n
		}
	}
	if inSets != 1000 {
		t.Errorf("the sets hold %d visitors, want the 1000 without a day: the others moved to the index", inSets)
	}
	got := map[uint64]bool{}
	if err := r.Each(func(page string, vs []domain.VisitorID, _ []byte) error {
		for _, v := range vs {
			got[v.Hash()] = true
		}
		return nil
	}); err != nil || len(got) != 5000 {
		t.Errorf("Each lists %d distinct visitors (%v), want 5000", len(got), err)
	}
}

// TestSetRemove checks removal against a map, with values crowded into a
// few homes so that probe runs are long and wrap around.
func TestSetRemove(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(9, 10))
	var s set
	model := map[uint64]bool{}
	for i := range 20000 {
		// Top bits from a small range: long runs near the end of the table,
		// wrapping to its start.
		h := (uint64(rng.IntN(4))+^uint64(3))<<60 | rng.Uint64()>>4 | 1
		if rng.IntN(3) == 0 && len(model) > 0 {
			for k := range model {
				h = k
				break
			}
		}
		if model[h] {
			if !s.remove(h) {
				t.Fatalf("step %d: remove of a held value failed", i)
			}
			delete(model, h)
		} else {
			s.insert(h)
			model[h] = true
		}
		if s.n != len(model) {
			t.Fatalf("step %d: n = %d, want %d", i, s.n, len(model))
		}
	}
	for k := range model {
		if !s.contains(k) {
			t.Fatalf("lost %x", k)
		}
	}
	if s.remove(2) {
		t.Error("removed a value never held")
	}
}
