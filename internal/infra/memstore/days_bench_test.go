package memstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/domain"
)

// benchDay0 is the first day of the time-range benchmarks.
var benchDay0 = domain.DayOf(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))

// rangePage fills a page the way steady traffic does: every day, visitors
// drawn from an audience of audience ids, each id coming on about one day in
// every gap (so that a visitor returns on several days), at a random quarter,
// for days days, into a store of opts. It returns the store and the page.
func rangePage(b *testing.B, opts Options, audience, gap, days int) (*Store, domain.PageURL) {
	b.Helper()
	s := NewWith(opts)
	page := pageN(b, 1)
	rng := rand.New(rand.NewPCG(7, 8))
	ctx := context.Background()
	perDay := audience / gap
	for d := range days {
		day := benchDay0 + domain.Day(d)
		for range perDay {
			v, _ := domain.VisitorFromHash(uint64(rng.IntN(audience))*0x9e3779b97f4a7c15 | 1)
			if err := s.Record(ctx, domain.PageView{Page: page, Visitor: v, At: day.First() + domain.Quarter(rng.IntN(96))}); err != nil {
				b.Fatal(err)
			}
		}
	}
	return s, page
}

// BenchmarkRange measures Range over 30 and 365 days of one busy page,
// whose traffic brings about 100,000 distinct visitors in any 30 days (an
// audience of 120,000 ids, each coming on one day in eight: about 15,000
// visitors a day, each on four days of thirty), and the all-time count of
// the same page for comparison. The store holds 365 days of that traffic.
//
// days=365/cold is the 365-day range of a page whose weeks are not made
// yet: the first range after a restart, or after weeks went by with no
// range and no MakeWeeks; it makes them.
func BenchmarkRange(b *testing.B) {
	s, page := rangePage(b, Options{}, 120_000, 8, 365)
	benchRanges(b, s, page)
	b.Run("days=365/cold", func(b *testing.B) {
		ctx := context.Background()
		to := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, 365)
		periods := []domain.Period{{From: domain.QuarterOf(to.AddDate(0, 0, -365)), To: domain.QuarterOf(to)}}
		tl := &s.lookup(page.String()).days
		for range b.N {
			b.StopTimer()
			tl.mu.Lock()
			for i := range tl.weeks {
				s.bytes.Add(-tl.weeks[i].release(s.arena))
			}
			tl.weeks = nil
			for i := range tl.days {
				tl.days[i].weekly = false
			}
			tl.mu.Unlock()
			b.StartTimer()
			if _, err := s.Range(ctx, page, periods); err != nil {
				b.Fatal(err)
			}
		}
		if got := len(weeksOf(s, page)); got < 50 {
			b.Fatalf("%d weeks made, want 52 or so", got)
		}
	})
}

// BenchmarkEstimatedRange is BenchmarkRange for the page's days estimated,
// as under the memory limit (here from the start, counting approximately).
func BenchmarkEstimatedRange(b *testing.B) {
	s, page := rangePage(b, Options{Approximate: true}, 120_000, 8, 365)
	benchRanges(b, s, page)
}

// BenchmarkEstimatedRangeError reports the relative standard error of
// estimated ranges over 40 pages and 5 ranges each (estimatedErrors), in
// percent, and their mean error.
func BenchmarkEstimatedRangeError(b *testing.B) {
	var errs []float64
	for b.Loop() {
		errs = estimatedErrors(b, 40)
	}
	got, mean := rms(errs)
	b.ReportMetric(100*got, "%rse")
	b.ReportMetric(100*mean, "%mean")
	b.ReportMetric(float64(len(errs)), "ranges")
}

// benchRanges measures the ranges of BenchmarkRange on page of s.
func benchRanges(b *testing.B, s *Store, page domain.PageURL) {
	ctx := context.Background()
	last := benchDay0 + 365
	for _, tc := range []struct {
		name string
		days int
		tz   string
	}{
		{"days=30", 30, "UTC"},
		{"days=30/tz=Europe_Paris", 30, "Europe/Paris"},
		{"days=365", 365, "UTC"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			zone, err := time.LoadLocation(tc.tz)
			if err != nil {
				b.Fatal(err)
			}
			from := time.Date(2026, 1, 1, 0, 0, 0, 0, zone).AddDate(0, 0, 365-tc.days)
			p := domain.Period{From: domain.QuarterOf(from), To: domain.QuarterOf(from.AddDate(0, 0, tc.days))}
			periods := []domain.Period{p}
			var n int64
			for b.Loop() {
				got, err := s.Range(ctx, page, periods)
				if err != nil {
					b.Fatal(err)
				}
				n = got.Total.Visitors
			}
			b.ReportMetric(float64(n), "visitors")
		})
	}
	b.Run("daily=30", func(b *testing.B) {
		var periods []domain.Period
		for d := last - 30; d < last; d++ {
			periods = append(periods, domain.Period{From: d.First(), To: (d + 1).First()})
		}
		var n int64
		for b.Loop() {
			got, err := s.Range(ctx, page, periods)
			if err != nil {
				b.Fatal(err)
			}
			n = got.Total.Visitors
		}
		b.ReportMetric(float64(n), "visitors")
	})
	b.Run("all-time", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Visitors(ctx, page); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRecordWithTime measures Record of a view with a time against
// one without, on the same pairs: a new pair on a page already seen, its
// day already seen; and with times spread over 30 days, as loadgen's
// ingest-timed sends them.
func BenchmarkRecordWithTime(b *testing.B) {
	f := newFixture(b)
	at := (benchDay0 + 100).First() + 40
	for _, days := range []int{0, 1, 30} {
		b.Run(fmt.Sprintf("days=%d", days), func(b *testing.B) {
			b.ReportAllocs()
			s := New()
			ctx := context.Background()
			i := 0
			for b.Loop() {
				v := f.view(i)
				if days > 0 {
					v.At = at - domain.Quarter(uint32(i*0x9e3779b1)%uint32(days)*domain.QuartersPerDay)
				}
				if err := s.Record(ctx, v); err != nil {
					b.Fatal(err)
				}
				if i++; i == benchPages*benchVisitors {
					i = 0
				}
			}
		})
	}
}

// BenchmarkResidentMemoryDays loads 10 million distinct (page, visitor, UTC
// day) triples into a store and reports the growth of the resident set per
// triple (rss-B/triple; GC headroom and garbage included), as
// BenchmarkResidentMemory does for pairs. The mix: 10,000 pages whose
// audiences follow Zipf's law, 2.5 million (page, visitor) pairs in all,
// each pair coming on each of 30 days with probability 4/30 (four days on
// average, so most visitors return), one to three views a day at random
// quarters; loaded day by day, as traffic comes. Every page's count, all-time
// and on each day, is checked exact against the mix. Run it in a process
// of its own:
//
//	go test -run '^$' -bench 'ResidentMemoryDays' -benchtime 1x ./internal/infra/memstore/
func BenchmarkResidentMemoryDays(b *testing.B) {
	if _, err := residentBytes(); err != nil {
		b.Skipf("no resident set size on this system: %v", err)
	}
	const days = 30
	counts := zipfCounts(10_000, 2_500_000)
	pages := make([]domain.PageURL, len(counts))
	for i := range pages {
		pages[i] = pageN(b, i)
	}
	// visits reports whether visitor r of page p comes on day d, and how
	// many views it makes then: a hash of the three, so that the check
	// below can tell what was sent without keeping it.
	visits := func(p, r, d int) int {
		h := fmix64(uint64(p)<<40 ^ uint64(r)<<8 ^ uint64(d) ^ 0x5bd1e995)
		if h%30 >= 4 {
			return 0
		}
		return 1 + int(h>>32%3)
	}
	visitor := func(r int) domain.VisitorID {
		v, _ := domain.VisitorFromHash(fmix64(uint64(r)+1) | 1)
		return v
	}
	ctx := context.Background()
	runtime.GC()
	debug.FreeOSMemory()
	rssBefore, err := residentBytes()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	s := New()
	events := 0
	for d := range days {
		day := benchDay0 + domain.Day(d)
		live := len(counts)
		for r := range counts[0] {
			for live > 0 && counts[live-1] <= r {
				live--
			}
			v := visitor(r)
			for p := range live {
				for k := range visits(p, r, d) {
					at := day.First() + domain.Quarter((r+p+k*37)%96)
					if err := s.Record(ctx, domain.PageView{Page: pages[p], Visitor: v, At: at}); err != nil {
						b.Fatal(err)
					}
					events++
				}
			}
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	rssAfter, err := residentBytes()
	if err != nil {
		b.Fatal(err)
	}
	st := s.Stats()

	// Every count exact: all-time, each day, and the 30 days together.
	var triples int64
	dayCount := make([]int64, days)
	for p, page := range pages {
		clear(dayCount)
		pairs := int64(0)
		for r := range counts[p] {
			came := false
			for d := range days {
				if visits(p, r, d) > 0 {
					dayCount[d]++
					came = true
				}
			}
			if came {
				pairs++
			}
		}
		var periods []domain.Period
		for d := range days {
			day := benchDay0 + domain.Day(d)
			periods = append(periods, domain.Period{From: day.First(), To: (day + 1).First()})
			triples += dayCount[d]
		}
		got, err := s.Range(ctx, page, periods)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := s.Visitors(ctx, page)
		if got.Total.Visitors != pairs || n.Visitors != pairs {
			b.Fatalf("page %d: %d visitors over the days, %d all-time, want %d", p, got.Total.Visitors, n.Visitors, pairs)
		}
		for d := range days {
			if got.Each[d].Visitors != dayCount[d] {
				b.Fatalf("page %d, day %d: %d visitors, want %d", p, d, got.Each[d].Visitors, dayCount[d])
			}
		}
	}
	if st.Triples != triples {
		b.Fatalf("Stats().Triples = %d, want %d", st.Triples, triples)
	}
	runtime.KeepAlive(s)
	b.ReportMetric(float64(rssAfter-rssBefore)/float64(triples), "rss-B/triple")
	b.ReportMetric(float64(st.Bytes+st.Slack)/float64(triples), "stats-B/triple")
	b.ReportMetric(float64(triples), "triples")
	b.ReportMetric(float64(st.Pairs), "pairs")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(events), "ns/event")
	b.ReportMetric(0, "ns/op")
}
