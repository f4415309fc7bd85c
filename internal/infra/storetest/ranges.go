package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/domain"
)

// runRanges is the part of the suite about time: distinct visitors over
// periods, each visitor counted once however many days it came on.
func runRanges(t *testing.T, open func(t *testing.T) Store) {
	const page = "https://example.com/pricing"
	day := func(n int) time.Time { return time.Date(2026, 11, n, 0, 0, 0, 0, time.UTC) }
	utc := func(from, to int) domain.Period { return dates(t, day(from), day(to), "UTC").Period() }

	t.Run("UnionsCountAVisitorOnce", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		for _, d := range []int{1, 3, 5} { // alice on days 1, 3 and 5, twice a day
			recordAt(t, s, "alice", page, day(d).Add(9*time.Hour))
			recordAt(t, s, "alice", page, day(d).Add(17*time.Hour))
		}
		recordAt(t, s, "bob", page, day(3).Add(12*time.Hour))
		recordAt(t, s, "carol", page, day(6).Add(time.Minute)) // just past the range
		for _, tc := range []struct {
			name     string
			from, to int
			want     int64
		}{
			{"days 1-5", 1, 5, 2}, {"day 1", 1, 1, 1}, {"day 2", 2, 2, 0}, {"day 3", 3, 3, 2},
			{"day 5", 5, 5, 1}, {"days 4-6", 4, 6, 2}, {"days 1-30", 1, 30, 3},
		} {
			if n := rangeCount(t, s, page, utc(tc.from, tc.to)); n != tc.want {
				t.Errorf("%s: %d visitors, want %d", tc.name, n, tc.want)
			}
		}
		if n := count(t, s, page); n != 3 {
			t.Errorf("all-time: %d visitors, want 3", n)
		}
	})
	t.Run("DailyAndItsTotal", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		for d := 1; d <= 7; d++ { // v0 every day, v1 every other day, v2..v7 one day each
			recordAt(t, s, "v0", page, day(d).Add(10*time.Hour))
			if d%2 == 1 {
				recordAt(t, s, "v1", page, day(d).Add(23*time.Hour+50*time.Minute))
			}
			recordAt(t, s, fmt.Sprintf("v%d", d+1), page, day(d))
		}
		r := dates(t, day(1), day(7), "UTC")
		var periods []domain.Period
		var want []int64
		for d, p := range r.Each() {
			periods = append(periods, p)
			n := int64(2) // v0 and the visitor of the day
			if day := d.String(); day[len(day)-1]%2 == 1 {
				n++ // v1, on the odd days
			}
			want = append(want, n)
		}
		got, err := s.Range(context.Background(), Page(t, page), periods)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Each) != len(want) {
			t.Fatalf("%d counts for %d days", len(got.Each), len(want))
		}
		var sum int64
		for i, c := range got.Each {
			sum += c.Visitors
			if c.Visitors != want[i] || !c.Exact() {
				t.Errorf("day %d: %+v, want %d exact", i+1, c, want[i])
			}
		}
		if got.Total.Visitors != 9 || !got.Total.Exact() {
			t.Errorf("total %+v, want 9 exact (the sum of the days is %d)", got.Total, sum)
		}
	})
	t.Run("BoundsAreInclusiveToTheQuarter", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		start := day(10).Add(6 * time.Hour)
		recordAt(t, s, "first", page, start)                             // the first quarter of the period
		recordAt(t, s, "last", page, start.Add(2*time.Hour-time.Second)) // the last second of its last quarter
		recordAt(t, s, "before", page, start.Add(-time.Second))
		recordAt(t, s, "after", page, start.Add(2*time.Hour))
		p := domain.Period{From: domain.QuarterOf(start), To: domain.QuarterOf(start.Add(2 * time.Hour))}
		if n := rangeCount(t, s, page, p); n != 2 {
			t.Errorf("06:00-08:00: %d visitors, want 2 (first, last)", n)
		}
	})
	t.Run("DaysOfAZone", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		// 2026-11-12 23:30 UTC is the 12th in New York and the 13th in Paris and in Kolkata.
		late := time.Date(2026, 11, 12, 23, 30, 0, 0, time.UTC)
		recordAt(t, s, "night-owl", page, late)
		// 2026-11-12 18:45 UTC is 00:15 on the 13th in Kolkata (UTC+05:30), still the 12th in Paris.
		recordAt(t, s, "early-bird", page, time.Date(2026, 11, 12, 18, 45, 0, 0, time.UTC))
		for _, tc := range []struct {
			tz   string
			day  int
			want int64
		}{
			{"UTC", 12, 2}, {"UTC", 13, 0},
			{"America/New_York", 12, 2}, {"America/New_York", 13, 0},
			{"Europe/Paris", 12, 1}, {"Europe/Paris", 13, 1},
			{"Asia/Kolkata", 12, 0}, {"Asia/Kolkata", 13, 2},
			{"Pacific/Kiritimati", 13, 2}, // UTC+14: both on the 13th
		} {
			p := dates(t, day(tc.day), day(tc.day), tc.tz).Period()
			if n := rangeCount(t, s, page, p); n != tc.want {
				t.Errorf("%s on the %d: %d visitors, want %d", tc.tz, tc.day, n, tc.want)
			}
		}
	})
	t.Run("AcrossADaylightSavingChange", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		// New York falls back on 2026-11-01 at 02:00 EDT: that day has 25
		// hours, 04:00 UTC to 05:00 UTC the next day.
		ny := "America/New_York"
		recordAt(t, s, "just-in", page, time.Date(2026, 11, 2, 4, 59, 0, 0, time.UTC)) // 23:59 EST on the 1st
		recordAt(t, s, "just-out", page, time.Date(2026, 11, 2, 5, 0, 0, 0, time.UTC)) // 00:00 EST on the 2nd
		recordAt(t, s, "before", page, time.Date(2026, 11, 1, 3, 59, 0, 0, time.UTC))  // 23:59 EDT on the 31st
		r := dates(t, day(1), day(2), ny)
		var periods []domain.Period
		for _, p := range r.Each() {
			periods = append(periods, p)
		}
		if h := (periods[0].To - periods[0].From) / 4; h != 25 {
			t.Errorf("2026-11-01 in New York has %d hours, want 25", h)
		}
		got, err := s.Range(context.Background(), Page(t, page), periods)
		if err != nil {
			t.Fatal(err)
		}
		if got.Each[0].Visitors != 1 || got.Each[1].Visitors != 1 || got.Total.Visitors != 2 {
			t.Errorf("New York, 1st and 2nd: %+v, want 1, 1 and 2 in all", got)
		}
	})
	t.Run("ViewsWithoutTimeCountAllTimeOnly", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		record(t, s, "timeless", page)
		recordAt(t, s, "timed", page, day(20))
		if n := rangeCount(t, s, page, utc(1, 30)); n != 1 {
			t.Errorf("November: %d visitors, want 1", n)
		}
		if n := count(t, s, page); n != 2 {
			t.Errorf("all-time: %d visitors, want 2", n)
		}
	})
	t.Run("PagesInAPeriod", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		recordAt(t, s, "a", "https://example.com/x", day(3))
		recordAt(t, s, "b", "https://example.com/x", day(4))
		recordAt(t, s, "a", "https://example.com/x", day(9)) // outside
		recordAt(t, s, "a", "https://example.com/y", day(4))
		recordAt(t, s, "a", "https://example.com/z", day(9)) // no visitor in the period
		list, err := s.PagesIn(context.Background(), utc(3, 5))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		for _, pc := range list {
			got[pc.URL] = pc.Visitors
		}
		want := map[string]int64{"https://example.com/x": 2, "https://example.com/y": 1}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("PagesIn = %v, want %v", got, want)
		}
	})
	t.Run("UnknownPageHasNoVisitorsInAnyPeriod", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		got, err := s.Range(context.Background(), Page(t, page), []domain.Period{utc(1, 1), utc(2, 2)})
		if err != nil {
			t.Fatal(err)
		}
		if got.Total.Visitors != 0 || len(got.Each) != 2 || got.Each[0].Visitors != 0 || got.Each[1].Visitors != 0 {
			t.Errorf("Range of a page never seen = %+v, want zeros", got)
		}
		if _, err := s.Range(context.Background(), domain.PageURL{}, []domain.Period{utc(1, 1)}); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("Range of a zero page = %v, want ErrInvalid", err)
		}
	})
	t.Run("MatchesAModel", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		// 600 views of 40 visitors on 3 pages at random times of 26 days;
		// then random ranges in random zones, of a few days to four weeks,
		// counted against the views themselves.
		rnd := rand.New(rand.NewPCG(1, 2))
		type view struct {
			visitor, page string
			at            time.Time
		}
		pagesOf := []string{"https://example.com/m0", "https://example.com/m1", "https://example.com/m2"}
		var views []view
		for range 600 {
			v := view{fmt.Sprintf("v%d", rnd.IntN(40)), pagesOf[rnd.IntN(3)],
				day(2).Add(time.Duration(rnd.Int64N(int64(26 * 24 * time.Hour))))}
			views = append(views, v)
			recordAt(t, s, v.visitor, v.page, v.at)
		}
		zones := []string{"UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Pacific/Kiritimati", "America/St_Johns"}
		for i := range 40 {
			from, days := 1+rnd.IntN(20), rnd.IntN(5)
			if i%2 == 1 {
				from, days = 1+rnd.IntN(5), 7+rnd.IntN(21) // whole weeks inside
			}
			r := dates(t, day(from), day(from).AddDate(0, 0, days), zones[rnd.IntN(len(zones))])
			page := pagesOf[rnd.IntN(3)]
			var periods []domain.Period
			for _, p := range r.Each() {
				periods = append(periods, p)
			}
			got, err := s.Range(context.Background(), Page(t, page), periods)
			if err != nil {
				t.Fatal(err)
			}
			all := map[string]bool{}
			for i, p := range periods {
				each := map[string]bool{}
				for _, v := range views {
					if q := domain.QuarterOf(v.at); v.page == page && q >= p.From && q < p.To {
						each[v.visitor], all[v.visitor] = true, true
					}
				}
				if got.Each[i].Visitors != int64(len(each)) {
					t.Errorf("%s, %v in %v, day %d: %d visitors, want %d", page, r.From, r.Zone, i, got.Each[i].Visitors, len(each))
				}
			}
			if got.Total.Visitors != int64(len(all)) {
				t.Errorf("%s, %v to %v in %v: %d visitors in all, want %d", page, r.From, r.To, r.Zone, got.Total.Visitors, len(all))
			}
			if n := rangeCount(t, s, page, r.Period()); n != int64(len(all)) {
				t.Errorf("%s, %v to %v in %v as one period: %d visitors, want %d", page, r.From, r.To, r.Zone, n, len(all))
			}
		}
	})
	t.Run("ConcurrentWritersAndRangeReaders", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		const writers, visitors = 4, 300
		p := utc(14, 16)
		done := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				// Every writer sends every visitor on each of three days, the
				// same (page, visitor, day) from several writers at once.
				for i := range visitors {
					v := (i + w*visitors/writers) % visitors
					recordAt(t, s, fmt.Sprintf("v%d", v), page, day(14+v%3).Add(time.Duration(w)*time.Hour))
					recordAt(t, s, fmt.Sprintf("v%d", v), page, day(14+(v+1)%3).Add(time.Duration(w)*time.Hour))
				}
			})
		}
		var readers sync.WaitGroup
		readers.Go(func() {
			last := int64(0)
			for {
				select {
				case <-done:
					return
				default:
				}
				n := rangeCount(t, s, page, p)
				if n < last || n > visitors {
					t.Errorf("range count went from %d to %d (of %d)", last, n, visitors)
					return
				}
				last = n
			}
		})
		wg.Wait()
		close(done)
		readers.Wait()
		if n := rangeCount(t, s, page, p); n != visitors {
			t.Errorf("%d visitors in the range after the writes, want %d", n, visitors)
		}
		for d := 14; d <= 16; d++ {
			if n := rangeCount(t, s, page, utc(d, d)); n != 2*visitors/3 {
				t.Errorf("day %d: %d visitors, want %d", d, n, 2*visitors/3)
			}
		}
	})
}

// dates returns the days from from to to (UTC dates) in the zone tz, with
// a retention long enough for any date of the suite.
func dates(tb testing.TB, from, to time.Time, tz string) domain.DateRange {
	tb.Helper()
	r, err := domain.ParseDateRange(from.Format(time.DateOnly), to.Format(time.DateOnly), tz,
		to.AddDate(0, 0, 1), domain.Retention{Days: 3660})
	if err != nil {
		tb.Fatalf("dates %v to %v in %s: %v", from, to, tz, err)
	}
	return r
}

// ViewAt returns a valid page view at t.
func ViewAt(tb testing.TB, visitor, page string, t time.Time) domain.PageView {
	tb.Helper()
	v := View(tb, visitor, page)
	v.At = domain.QuarterOf(t)
	return v
}

func recordAt(t *testing.T, s Store, visitor, page string, at time.Time) {
	if err := s.Record(context.Background(), ViewAt(t, visitor, page, at)); err != nil {
		t.Errorf("Record(%s, %s, %v): %v", visitor, page, at, err)
	}
}

func rangeCount(t *testing.T, s Store, page string, p domain.Period) int64 {
	got, err := s.Range(context.Background(), Page(t, page), []domain.Period{p})
	if err != nil {
		t.Errorf("Range(%s): %v", page, err)
		return -1
	}
	if len(got.Each) != 1 || got.Each[0] != got.Total {
		t.Errorf("Range(%s) of one period = %+v: want one count, equal to the total", page, got)
	}
	if !got.Total.Exact() {
		t.Errorf("Range(%s) = %+v: an estimate, where the suite checks exact counts", page, got)
	}
	return got.Total.Visitors
}
