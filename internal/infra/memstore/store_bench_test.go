package memstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/webtracker/tracker/internal/domain"
)

// The benchmarks draw from benchPages pages and benchVisitors visitor ids,
// made before the timer starts: up to 2^26 distinct pairs.
const (
	benchPages    = 1 << 10
	benchVisitors = 1 << 16
)

// fixture holds the pages and visitor ids of the benchmarks.
type fixture struct {
	pages    []domain.PageURL
	visitors []domain.VisitorID
}

func newFixture(b *testing.B) fixture {
	b.Helper()
	f := fixture{
		pages:    make([]domain.PageURL, benchPages),
		visitors: make([]domain.VisitorID, benchVisitors),
	}
	for i := range f.pages {
		f.pages[i] = pageURL(b, fmt.Sprintf("https://www.example.com/blog/2025/article-%d", i))
	}
	for i := range f.visitors {
		// The length of a UUID, the most common kind of id.
		f.visitors[i] = visitorID(b, fmt.Sprintf("visitor-%028d", i))
	}
	return f
}

// view returns the i-th distinct pair: pages turn fastest, so each new pair
// lands on a page already seen, as most views do.
func (f fixture) view(i int) domain.PageView {
	return domain.PageView{
		Page:    f.pages[i%benchPages],
		Visitor: f.visitors[i/benchPages%benchVisitors],
	}
}

// BenchmarkRecordNewPair records a pair never seen before, on a page that
// exists (but for the first view of each page), table growth included.
//
// A new pair lands on a random table slot, so its cost depends on whether
// the tables fit in the caches: each sub-benchmark keeps the store at most
// its size, in pairs over benchPages pages, by starting a new one (with the
// timer stopped) once it is full.
func BenchmarkRecordNewPair(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	for _, size := range []int{1 << 16, 1 << 20, 1 << 24} {
		b.Run(fmt.Sprintf("pairs=%d", size), func(b *testing.B) {
			s := New()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == size {
					b.StopTimer()
					s, i = New(), 0
					b.StartTimer()
				}
				if err := s.Record(ctx, f.view(i)); err != nil {
					b.Fatal(err)
				}
				i++
			}
			if got := s.Stats().Pairs; got != int64(i) {
				b.Fatalf("%d pairs recorded, %d counted", i, got)
			}
		})
	}
}

// BenchmarkRecordRepeatedPair records pairs already recorded: the common case
// of a visitor coming back to a page.
func BenchmarkRecordRepeatedPair(b *testing.B) {
	const pairs = 4 * benchPages // beyond what one cache line per page holds
	f := newFixture(b)
	s := New()
	ctx := context.Background()
	for i := range pairs {
		if err := s.Record(ctx, f.view(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.Record(ctx, f.view(i%pairs)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if got := s.Stats().Pairs; got != pairs {
		b.Fatalf("%d pairs counted, want %d", got, pairs)
	}
}

// BenchmarkRecordParallel records views from GOMAXPROCS goroutines, on
// pages drawn uniformly: new pairs mostly, on pages that exist.
func BenchmarkRecordParallel(b *testing.B) {
	benchmarkParallel(b, func(r uint64) int { return int(r % benchPages) })
}

// BenchmarkRecordParallelHotPage sends half of the views to one page, the
// case that a lock per page would serialize. The hot page sees each visitor
// many times: its views are repeated pairs mostly.
func BenchmarkRecordParallelHotPage(b *testing.B) {
	benchmarkParallel(b, func(r uint64) int {
		if r&1 == 0 {
			return 0
		}
		return int(r>>1) % benchPages
	})
}

// benchmarkParallel records views on pages that pageOf picks from 32 random
// bits. Each goroutine takes its visitors in turn, for parallelViews views
// each, from its own place in the list: a visitor's id stays in the cache
// meanwhile, as an id just read from a request would, so the benchmark
// measures the store and not the loading of ids from all over memory.
func benchmarkParallel(b *testing.B, pageOf func(r uint64) int) {
	const parallelViews = 64
	f := newFixture(b)
	s := New()
	ctx := context.Background()
	var goroutines atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := goroutines.Add(1)
		// On the goroutine's stack: two generators side by side on the heap
		// would share a cache line, and the benchmark would measure that.
		var rng rand.PCG
		rng.Seed(g, 0)
		first := int(g * 7919) // far apart in the list, a prime step
		for k := 0; pb.Next(); k++ {
			v := domain.PageView{
				Page:    f.pages[pageOf(rng.Uint64()&(1<<32-1))],
				Visitor: f.visitors[(first+k/parallelViews)%benchVisitors],
			}
			if err := s.Record(ctx, v); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkVisitors answers counts of existing pages, of all sizes.
func BenchmarkVisitors(b *testing.B) {
	f := newFixture(b)
	s := New()
	ctx := context.Background()
	for i := range 100 * benchPages {
		if err := s.Record(ctx, f.view(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	var total int64
	for b.Loop() {
		n, err := s.Visitors(ctx, f.pages[i%benchPages])
		if err != nil {
			b.Fatal(err)
		}
		total += n
		i++
	}
	if total == 0 {
		b.Fatal("every count was 0")
	}
}

// BenchmarkMemoryPerPair reports the heap a pair costs, in B/pair: each
// iteration fills a new Store and measures how much more heap is in use once
// it is full. It also reports what Stats.Bytes makes of it (stats-B/pair),
// and the time per pair of filling a store from nothing (ns/pair).
//
// Pages of a thousand visitors are the headline; a page with one visitor
// shows the fixed cost of a page, and pages of a hundred thousand the cost in
// stripes.
func BenchmarkMemoryPerPair(b *testing.B) {
	for _, tc := range []struct{ pages, visitors int }{
		{1000, 1000},
		{100_000, 1},
		{10, 100_000},
	} {
		b.Run(fmt.Sprintf("pages=%d/visitors=%d", tc.pages, tc.visitors), func(b *testing.B) {
			pages := make([]domain.PageURL, tc.pages)
			for i := range pages {
				pages[i] = pageURL(b, fmt.Sprintf("https://www.example.com/blog/2025/article-%d", i))
			}
			visitors := make([]domain.VisitorID, tc.visitors)
			for i := range visitors {
				visitors[i] = visitorID(b, fmt.Sprintf("visitor-%028d", i))
			}
			pairs := float64(tc.pages * tc.visitors)
			ctx := context.Background()
			var grown, counted float64
			for b.Loop() {
				b.StopTimer()
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				b.StartTimer()

				s := New()
				// Visitor by visitor, so that all pages grow together.
				for _, v := range visitors {
					for _, p := range pages {
						if err := s.Record(ctx, domain.PageView{Page: p, Visitor: v}); err != nil {
							b.Fatal(err)
						}
					}
				}

				b.StopTimer()
				runtime.GC()
				runtime.ReadMemStats(&after)
				st := s.Stats()
				if st.Pairs != int64(pairs) {
					b.Fatalf("%d pairs counted, want %v", st.Pairs, pairs)
				}
				grown += float64(after.HeapInuse) - float64(before.HeapInuse)
				counted += float64(st.Bytes)
				runtime.KeepAlive(s)
				b.StartTimer()
			}
			n := float64(b.N) * pairs
			b.ReportMetric(grown/n, "B/pair")
			b.ReportMetric(counted/n, "stats-B/pair")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/pair")
		})
	}
}
