package memstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/domain"
)

// viewModel is what a test sent: the quarters each visitor of each page
// came at, the truth a range is checked against.
type viewModel map[domain.PageURL]map[domain.VisitorID][]domain.Quarter

// send records a view at t and notes it in m.
func (m viewModel) send(tb testing.TB, s *Store, page domain.PageURL, v domain.VisitorID, t time.Time) {
	tb.Helper()
	recordAt(tb, s, page, v, t)
	if m[page] == nil {
		m[page] = map[domain.VisitorID][]domain.Quarter{}
	}
	m[page][v] = append(m[page][v], domain.QuarterOf(t))
}

// count returns the distinct visitors of page that came in p.
func (m viewModel) count(page domain.PageURL, p domain.Period) int64 {
	var n int64
	for _, qs := range m[page] {
		for _, q := range qs {
			if q >= p.From && q < p.To {
				n++
				break
			}
		}
	}
	return n
}

// union returns the distinct visitors of page that came in any of ps.
func (m viewModel) union(page domain.PageURL, ps []domain.Period) int64 {
	var n int64
	for _, qs := range m[page] {
	visitor:
		for _, q := range qs {
			for _, p := range ps {
				if q >= p.From && q < p.To {
					n++
					break visitor
				}
			}
		}
	}
	return n
}

// at returns the time of quarter q of day d of November 2026, UTC.
func at(d, q int) time.Time { return time.Date(2026, 11, d, 0, 15*q, 0, 0, time.UTC) }

// days returns the period from quarter q0 of day d0 to quarter q1 of day d1.
func days(d0, q0, d1, q1 int) domain.Period {
	return domain.Period{From: domain.QuarterOf(at(d0, q0)), To: domain.QuarterOf(at(d1, q1))}
}

// checkEstimate fails the test unless got is an estimate of want within
// four of its standard errors (and one visitor), flagged as one.
func checkEstimate(tb testing.TB, what string, got domain.Count, want int64) {
	tb.Helper()
	if got.Exact() || got.RelativeError != SketchRelativeError {
		tb.Errorf("%s: %+v, want an estimate with a relative error of %v", what, got, SketchRelativeError)
	}
	if d := math.Abs(float64(got.Visitors - want)); d > 4*SketchRelativeError*float64(want)+1 {
		tb.Errorf("%s: %d visitors, want %d within 4 standard errors", what, got.Visitors, want)
	}
}

// TestConversionEstimatesTheDays: under the memory limit, a page with days
// becomes a sketch like any other, giving up its index, but its days stay,
// estimated: a range of it, its ends at any quarter, is an estimate of the
// right count, flagged so, never a sum of days; several periods at once
// each get theirs; the rankings over a range have it, estimated; views
// after the conversion go on counting in its days.
func TestConversionEstimatesTheDays(t *testing.T) {
	t.Parallel()
	const limit, visitors = 2 << 20, 100_000
	s := NewWith(Options{MemoryLimit: limit})
	m := viewModel{}
	hot, small := pageN(t, 1), pageN(t, 2)
	m.send(t, s, small, visitorN(t, 0), at(3, 40))
	for v := range visitors {
		// Every visitor comes on two days of the first nine, at two
		// times: a union of days counts it once.
		m.send(t, s, hot, visitorN(t, v), at(1+v%7, 48))
		m.send(t, s, hot, visitorN(t, v), at(1+(v*3)%9, v%96))
	}
	st := s.Stats()
	if st.Conversions != 1 || st.DaysGivenUp != 0 || s.used() > limit {
		t.Fatalf("Stats() = %+v: want 1 conversion, no days given up, under the limit", st)
	}
	periods := []domain.Period{
		days(1, 0, 10, 0),  // the nine days
		days(1, 0, 2, 0),   // the first alone
		days(2, 24, 5, 24), // from 06:00, as a day in a zone 6 hours behind
		days(3, 54, 8, 0),  // from 13:30 to midnight
	}
	for _, p := range periods {
		got, err := s.Range(context.Background(), hot, []domain.Period{p})
		if err != nil {
			t.Fatal(err)
		}
		checkEstimate(t, fmt.Sprint(p), got.Total, m.count(hot, p))
	}
	got, err := s.Range(context.Background(), hot, periods[1:])
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range periods[1:] {
		checkEstimate(t, fmt.Sprint("of several, ", p), got.Each[i], m.count(hot, p))
	}
	checkEstimate(t, "several together", got.Total, m.union(hot, periods[1:]))
	if n := daysCount(t, s, small, 1, 9); n != 1 {
		t.Errorf("small page, days 1-9: %d visitors, want 1 (exact, its days kept as they were)", n)
	}
	list, err := s.PagesIn(context.Background(), periods[0])
	if err != nil || len(list) != 2 {
		t.Fatalf("PagesIn = %v, %v; want both pages", list, err)
	}
	for _, pc := range list {
		if pc.URL == hot.String() {
			checkEstimate(t, "the ranking's hot page", pc.Count, m.count(hot, periods[0]))
		} else if pc.Visitors != 1 || !pc.Exact() {
			t.Errorf("the ranking's small page: %+v, want 1, exact", pc)
		}
	}
	// Views after the conversion count in its days (one visitor is
	// estimated as one), and all-time.
	m.send(t, s, hot, visitorN(t, visitors), at(12, 10))
	if n := daysCount(t, s, hot, 12, 12); n != 1 {
		t.Errorf("day 12, one visitor since the conversion: %d", n)
	}
	c, err := s.Visitors(context.Background(), hot)
	if err != nil {
		t.Fatal(err)
	}
	checkEstimate(t, "all-time", c, visitors+1)
}

// TestEstimatedDaysGiveWay: when even estimated days are too much for the
// limit, they go, the largest page's first: a range of the page is then
// ErrNoDays, never a wrong count, the rankings leave it out, and its
// all-time count goes on.
func TestEstimatedDaysGiveWay(t *testing.T) {
	t.Parallel()
	const limit = 256 << 10
	s := NewWith(Options{MemoryLimit: limit})
	hot, small := pageN(t, 1), pageN(t, 2)
	recordAt(t, s, small, visitorN(t, 0), dayN(3))
	for v := range 20000 {
		for d := 1; d <= 7; d++ {
			recordAt(t, s, hot, visitorN(t, v), dayN(d))
		}
	}
	week := domain.Period{From: domain.DayOf(dayN(1)).First(), To: domain.DayOf(dayN(8)).First()}
	if _, err := s.Range(context.Background(), hot, []domain.Period{week}); !errors.Is(err, domain.ErrNoDays) {
		t.Errorf("Range of the page whose days went = %v, want ErrNoDays", err)
	}
	if n := daysCount(t, s, small, 1, 7); n != 1 {
		t.Errorf("small page, days 1-7: %d visitors, want 1 (its days are kept)", n)
	}
	list, err := s.PagesIn(context.Background(), week)
	if err != nil || len(list) != 1 || list[0].URL != small.String() {
		t.Errorf("PagesIn = %v, %v; want the small page alone", list, err)
	}
	st := s.Stats()
	if st.DaysGivenUp != 1 || st.Triples != 1 || s.used() > limit {
		t.Errorf("Stats() = %+v: want the days of 1 page given up, the small page's triple alone, under the limit", st)
	}
	recordAt(t, s, hot, visitorN(t, 20000), dayN(9))
	c, _ := s.Visitors(context.Background(), hot)
	checkEstimate(t, "all-time", c, 20001)
	if _, err := s.Range(context.Background(), hot, []domain.Period{week}); !errors.Is(err, domain.ErrNoDays) {
		t.Errorf("Range after a later view = %v, want ErrNoDays still", err)
	}
}

// TestHeavyDaysMakeSketches: pages with too few visitors to be worth a
// sketch alone, but each visitor on many days, take more than the limit:
// the heaviest become sketches without their days (their ranges
// ErrNoDays, their all-time counts kept), and no page is forgotten.
func TestHeavyDaysMakeSketches(t *testing.T) {
	t.Parallel()
	const limit, pages, visitors, days = 512 << 10, 8, 400, 30
	s := NewWith(Options{MemoryLimit: limit})
	small := pageN(t, 0)
	recordAt(t, s, small, visitorN(t, 0), dayN(3))
	for p := 1; p <= pages; p++ {
		for d := 1; d <= days; d++ {
			for v := range visitors {
				recordAt(t, s, pageN(t, p), visitorN(t, v), dayN(d))
			}
		}
	}
	st := s.Stats()
	if st.Evicted != 0 || st.Conversions == 0 || st.DaysGivenUp != st.Conversions || s.used() > limit {
		t.Fatalf("Stats() = %+v: want pages made sketches without their days, none evicted, under the limit", st)
	}
	month := domain.Period{From: domain.DayOf(dayN(1)).First(), To: domain.DayOf(dayN(days)).First() + domain.QuartersPerDay}
	sketched := 0
	for p := 1; p <= pages; p++ {
		c, err := s.Visitors(context.Background(), pageN(t, p))
		if err != nil {
			t.Fatal(err)
		}
		_, rangeErr := s.Range(context.Background(), pageN(t, p), []domain.Period{month})
		switch {
		case c.Exact():
			if c.Visitors != visitors || rangeErr != nil || daysCount(t, s, pageN(t, p), 1, days) != visitors {
				t.Errorf("exact page %d: %+v, range %v; want %d visitors, all-time and over the days", p, c, rangeErr, visitors)
			}
		default:
			sketched++
			checkEstimate(t, fmt.Sprintf("page %d", p), c, visitors)
			if !errors.Is(rangeErr, domain.ErrNoDays) {
				t.Errorf("Range of sketched page %d = %v, want ErrNoDays", p, rangeErr)
			}
		}
	}
	if int64(sketched) != st.Conversions {
		t.Errorf("%d pages answer estimates, want the %d converted", sketched, st.Conversions)
	}
	if n := daysCount(t, s, small, 1, days); n != 1 {
		t.Errorf("small page, days 1-%d: %d visitors, want 1 (its days are kept)", days, n)
	}
}

// TestRangesDuringConversion: readers of ranges race writers on the same
// page and days while the page becomes a sketch and its days estimated:
// no reader errs or sees more visitors than there are, and the final
// answer is right. Run under -race by make test.
func TestRangesDuringConversion(t *testing.T) {
	t.Parallel()
	const writers, each = 4, 5000
	s := NewWith(Options{MemoryLimit: 512 << 10})
	page := pageN(t, 1)
	week := days(1, 0, 8, 0)
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				v := w*each + i
				recordAt(t, s, page, visitorN(t, v), at(1+v%7, v%96))
				recordAt(t, s, page, visitorN(t, v), at(1+(v+1)%7, 0))
			}
		})
	}
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				got, err := s.Range(context.Background(), page, []domain.Period{week, days(2, 0, 3, 0)})
				if err != nil || float64(got.Total.Visitors) > writers*each*(1+4*SketchRelativeError)+1 {
					t.Errorf("Range during writes: %+v, %v", got, err)
					return
				}
				// Leave the writers most of the processors: under -race a
				// range of estimated days costs what thousands of views do
				// (about 10 ms), and readers that never paused took 90 s.
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	close(done)
	readers.Wait()
	if st := s.Stats(); st.Conversions != 1 {
		t.Fatalf("Stats() = %+v: want the page converted during the writes", st)
	}
	got, err := s.Range(context.Background(), page, []domain.Period{week})
	if err != nil {
		t.Fatal(err)
	}
	checkEstimate(t, "the week after the writes", got.Total, writers*each)
}

// estimatedErrors loads pages visitors each (times 1 to pages, in
// thousands) into a store that estimates every page's days, each visitor
// coming on one to four random days of thirty, at random quarters, and
// returns the relative error of the estimate of five ranges of each page,
// against the truth: thirty days, a week, two days, fifteen days from
// 05:30 (a zone's days) and one day.
func estimatedErrors(tb testing.TB, pages int) []float64 {
	s := NewWith(Options{Approximate: true})
	rng := rand.New(rand.NewPCG(1, 2))
	m := viewModel{}
	v := 0
	for p := range pages {
		page := pageN(tb, p)
		for range 1000 * (p + 1) {
			v++
			for range 1 + rng.IntN(4) {
				m.send(tb, s, page, visitorN(tb, v), at(1+rng.IntN(30), rng.IntN(96)))
			}
		}
	}
	ranges := []domain.Period{days(1, 0, 31, 0), days(8, 0, 15, 0), days(10, 0, 12, 0), days(5, 22, 20, 22), days(15, 0, 16, 0)}
	var errs []float64
	for p := range pages {
		page := pageN(tb, p)
		for _, r := range ranges {
			got, err := s.Range(context.Background(), page, []domain.Period{r})
			if err != nil {
				tb.Fatal(err)
			}
			want := m.count(page, r)
			if want < 100 {
				continue
			}
			if got.Total.Exact() {
				tb.Fatalf("page %d, %v: %+v, want an estimate", p, r, got.Total)
			}
			errs = append(errs, float64(got.Total.Visitors-want)/float64(want))
		}
	}
	return errs
}

// rms returns the root mean square and the mean of xs.
func rms(xs []float64) (rms, mean float64) {
	for _, x := range xs {
		rms += x * x
		mean += x
	}
	return math.Sqrt(rms / float64(len(xs))), mean / float64(len(xs))
}

// TestEstimatedRangeError: over many pages and ranges, estimated ranges
// have a relative standard error within 1% (the sketch's 0.73% in theory)
// and no bias to speak of.
func TestEstimatedRangeError(t *testing.T) {
	if raceEnabled {
		t.Skip("too slow under the race detector; make test runs it in its second pass")
	}
	t.Parallel()
	errs := estimatedErrors(t, 30)
	got, mean := rms(errs)
	t.Logf("%d estimated ranges: relative standard error %.3f%%, mean error %+.3f%%", len(errs), 100*got, 100*mean)
	if len(errs) < 120 || got > 0.01 || math.Abs(mean) > 0.003 {
		t.Errorf("%d estimated ranges: relative standard error %.3f%%, mean error %+.3f%%; want at most 1%% and ±0.3%%",
			len(errs), 100*got, 100*mean)
	}
}
