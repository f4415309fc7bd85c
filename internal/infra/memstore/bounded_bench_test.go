package memstore

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/infra/storetest"
)

// BenchmarkBoundedMemory feeds 20 million random (page, visitor) pairs, each
// page drawn at random from 5000 and each visitor a random hash, to a store
// limited to 64 MiB: exact, they would take about 200 MB. It reports
//
//   - rss-peak-MiB: the resident set's largest growth over the load, from a
//     baseline taken before it (sampled every 100 000 pairs), and
//     rss-over-limit-MiB, how far that went past the limit (0 if not);
//   - rse-%: the relative standard error of the estimated pages' counts
//     against their true counts, and max-err-%, the largest relative error;
//   - estimated, conversions, evicted: pages estimated at the end, moved
//     into a sketch, forgotten; short-pages, the exact pages that answer
//     fewer visitors than they had, having been forgotten and counted anew;
//   - ns/pair: wall time per pair, one goroutine.
//
// Like BenchmarkResidentMemory it measures the process's resident set, so it
// must run alone in its process, once:
//
//	go test -run '^$' -bench BoundedMemory -benchtime 1x ./internal/infra/memstore/
func BenchmarkBoundedMemory(b *testing.B) { boundedLoad(b, false) }

// BenchmarkBoundedMemoryWithTime is BenchmarkBoundedMemory with each view at
// a random quarter of 30 days, so that the days take memory too (each pair
// one (page, visitor, day)): the limit must hold with them. It reports as
// BenchmarkBoundedMemory, and days-given-up, the pages whose estimated days
// went. It must run alone in its process too:
//
//	go test -run '^$' -bench BoundedMemoryWithTime -benchtime 1x ./internal/infra/memstore/
func BenchmarkBoundedMemoryWithTime(b *testing.B) { boundedLoad(b, true) }

// boundedLoad is the load of BenchmarkBoundedMemory, with times if timed.
func boundedLoad(b *testing.B, timed bool) {
	const (
		limit = 64 << 20
		pages = 5000
		pairs = 20_000_000
	)
	if _, err := residentBytes(); err != nil {
		b.Skipf("no resident set size on this system: %v", err)
	}
	if b.N > 1 {
		b.Skip("runs once: -benchtime 1x")
	}
	urls := make([]domain.PageURL, pages)
	for i := range urls {
		urls[i] = storetest.Page(b, "https://www.example.com/blog/article-"+itoa(i))
	}
	truth := make([]int64, pages)
	rng := rand.New(rand.NewPCG(5, 6))
	ctx := context.Background()

	runtime.GC()
	debug.FreeOSMemory()
	base, err := residentBytes()
	if err != nil {
		b.Fatal(err)
	}
	var peak int64
	b.ResetTimer()
	start := time.Now()
	s := NewWith(Options{MemoryLimit: limit})
	for i := range pairs {
		p := rng.IntN(pages)
		v, err := domain.VisitorFromHash(rng.Uint64() | 1)
		if err != nil {
			b.Fatal(err)
		}
		pv := domain.PageView{Page: urls[p], Visitor: v}
		if timed {
			pv.At = boundedDay0.First() + domain.Quarter(rng.IntN(30*domain.QuartersPerDay))
		}
		if err := s.Record(ctx, pv); err != nil {
			b.Fatal(err)
		}
		truth[p]++ // 64-bit random visitors: a repeat is as good as impossible
		if i%100_000 == 0 {
			rss, err := residentBytes()
			if err != nil {
				b.Fatal(err)
			}
			peak = max(peak, rss-base)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	rss, _ := residentBytes()
	peak = max(peak, rss-base)

	var sumSq, worst float64
	estimated, short := 0, 0
	for p, u := range urls {
		c, err := s.Visitors(ctx, u)
		if err != nil {
			b.Fatal(err)
		}
		if c.Visitors == 0 {
			b.Fatalf("page %d answers 0 after %d visitors", p, truth[p])
		}
		if c.Exact() {
			if c.Visitors < truth[p] && s.Stats().Evicted > 0 {
				short++ // forgotten under the limit, and counted anew since
				continue
			}
			if c.Visitors != truth[p] {
				b.Fatalf("page %d: exact count %d, true %d; %+v", p, c.Visitors, truth[p], s.Stats())
			}
			continue
		}
		e := float64(c.Visitors-truth[p]) / float64(truth[p])
		sumSq += e * e
		worst = max(worst, math.Abs(e))
		estimated++
	}
	st := s.Stats()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.Logf("Stats() = %+v; Go heap: %d MiB in use, %d MiB obtained from the OS", st, ms.HeapInuse>>20, ms.HeapSys>>20)
	if st.Bytes+st.Slack > limit {
		b.Errorf("Stats() = %+v: over the limit of %d", st, limit)
	}
	runtime.KeepAlive(s)
	b.ReportMetric(float64(peak)/(1<<20), "rss-peak-MiB")
	b.ReportMetric(max(0, float64(peak-limit))/(1<<20), "rss-over-limit-MiB")
	if estimated > 0 {
		b.ReportMetric(100*math.Sqrt(sumSq/float64(estimated)), "rse-%")
		b.ReportMetric(100*worst, "max-err-%")
	}
	b.ReportMetric(float64(estimated), "estimated")
	b.ReportMetric(float64(st.Conversions), "conversions")
	b.ReportMetric(float64(st.Evicted), "evicted")
	b.ReportMetric(float64(short), "short-pages")
	if timed {
		b.ReportMetric(float64(st.DaysGivenUp), "days-given-up")
	}
	b.ReportMetric(float64(elapsed.Nanoseconds())/pairs, "ns/pair")
	b.ReportMetric(0, "ns/op") // meaningless: the load runs once
}

func itoa(i int) string { return strconv.Itoa(i) }

// boundedDay0 is the first of the 30 days of BenchmarkBoundedMemoryWithTime.
var boundedDay0 = domain.DayOf(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
