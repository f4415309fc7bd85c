package memstore

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/infra/storetest"
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
		f.pages[i] = storetest.Page(b, fmt.Sprintf("https://www.example.com/blog/2025/article-%d", i))
	}
	for i := range f.visitors {
		// The length of a UUID, the most common kind of id.
		f.visitors[i] = storetest.Visitor(b, fmt.Sprintf("visitor-%028d", i))
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
		total += n.Visitors
		i++
	}
	if total == 0 {
		b.Fatal("every count was 0")
	}
}

// BenchmarkMemoryPerPair reports the live heap a pair costs, in B/pair: each
// iteration fills a new Store and measures how much more heap is in use once
// it is full and collected. Since the tables live off the heap (see arena),
// that is the pages and their keys alone; what Stats.Bytes makes of the
// tables and keys is stats-B/pair, and BenchmarkResidentMemory measures the
// whole. It also reports the time per pair of filling a store from nothing
// (ns/pair).
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
				pages[i] = storetest.Page(b, fmt.Sprintf("https://www.example.com/blog/2025/article-%d", i))
			}
			visitors := make([]domain.VisitorID, tc.visitors)
			for i := range visitors {
				visitors[i] = storetest.Visitor(b, fmt.Sprintf("visitor-%028d", i))
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

// BenchmarkResidentMemory loads a store with 1 or 10 million distinct
// (page, visitor) pairs and reports what the process pays for them in
// resident memory, GC headroom and garbage included:
//
//   - rss-B/pair: growth of the resident set (/proc/self/statm) per pair,
//     from a baseline taken after runtime.GC and debug.FreeOSMemory to just
//     after the last insert, with no GC forced in between;
//   - heap-B/pair: growth of HeapInuse per pair, at the same two instants
//     (so with garbage not yet collected);
//   - gc-p99-ns: the 99th percentile of the GC stop-the-world pauses during
//     the load (runtime/metrics /sched/pauses/total/gc:seconds; the upper
//     bound of its bucket), and gc-cycles, their number of cycles;
//   - ns/insert: wall time of the load per pair, one goroutine, with each
//     visitor's id parsed once for all its pages.
//
// pairs=1M is 1000 pages of 1000 visitors each. pairs=10M is 10000 pages
// whose audiences follow Zipf's law (page k has about 1/k of the first's):
// from about a million visitors for the first page, which gets striped, to
// about a hundred for the last, a thousand on average. Every view of a round
// is from one visitor, to every page that has that many visitors, so all
// pages grow together, as they do under real traffic. Visitor ids are
// 36 random alphanumeric bytes, as long as a UUID, cut from one string made
// beforehand, so that the load itself allocates nothing.
//
// The resident set of a process only shows a clean growth once, so each
// sub-benchmark must run in its own process, once:
//
//	go test -run '^$' -bench 'ResidentMemory/pairs=1M' -benchtime 1x ./internal/infra/memstore/
//	go test -run '^$' -bench 'ResidentMemory/pairs=10M' -benchtime 1x ./internal/infra/memstore/
//
// A second sub-benchmark in the same process skips; the same one run again
// (as -benchtime in seconds does, to ramp b.N up) reports the first run's
// figures without loading again.
func BenchmarkResidentMemory(b *testing.B) {
	for _, tc := range []struct {
		name   string
		counts func() []int // visitors of each page, most first
	}{
		{"pairs=1M", func() []int { return slices.Repeat([]int{1000}, 1000) }},
		{"pairs=10M", func() []int { return zipfCounts(10_000, 10_000_000) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			residentOnce.Lock()
			defer residentOnce.Unlock()
			switch residentOnce.name {
			case "":
				residentOnce.name = b.Name()
				residentOnce.metrics = loadResident(b, tc.counts())
			case b.Name():
			default:
				b.Skipf("%s ran in this process already; run each sub-benchmark in its own process", residentOnce.name)
			}
			for unit, v := range residentOnce.metrics {
				b.ReportMetric(v, unit)
			}
			b.ReportMetric(0, "ns/op") // meaningless: the load runs once
		})
	}
}

// residentOnce records the one BenchmarkResidentMemory load of the process.
var residentOnce struct {
	sync.Mutex
	name    string
	metrics map[string]float64
}

// loadResident records counts[p] visitors on page p into a new store and
// returns the metrics of BenchmarkResidentMemory.
func loadResident(b *testing.B, counts []int) map[string]float64 {
	b.Helper()
	if _, err := residentBytes(); err != nil {
		b.Skipf("no resident set size on this system: %v", err)
	}
	pages := make([]domain.PageURL, len(counts))
	for i := range pages {
		var err error
		pages[i], err = domain.ParsePageURL(fmt.Sprintf("https://www.example.com/blog/2025/article-%d", i))
		if err != nil {
			b.Fatal(err)
		}
	}
	// Visitor r is ids[r:r+36]: windows of one random string are distinct
	// (two would match with probability about n²/62^36) and cost no
	// allocation.
	const idLen = 36
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	rng := rand.New(rand.NewPCG(1, 2))
	idBytes := make([]byte, counts[0]+idLen)
	for i := range idBytes {
		idBytes[i] = alphabet[rng.IntN(len(alphabet))]
	}
	ids := string(idBytes)
	idBytes = nil
	pairs := 0
	for _, n := range counts {
		pairs += n
	}
	ctx := context.Background()

	runtime.GC()
	debug.FreeOSMemory()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	pausesBefore := gcPauses()
	rssBefore, err := residentBytes()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()

	s := New()
	live := len(counts) // pages with more than r visitors: counts is sorted
	for r := range counts[0] {
		for live > 0 && counts[live-1] <= r {
			live--
		}
		v, err := domain.ParseVisitorID(ids[r : r+idLen])
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range pages[:live] {
			if err := s.Record(ctx, domain.PageView{Page: p, Visitor: v}); err != nil {
				b.Fatal(err)
			}
		}
	}

	elapsed := time.Since(start)
	b.StopTimer()
	rssAfter, err := residentBytes()
	if err != nil {
		b.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	pausesAfter := gcPauses()

	for p, page := range pages {
		n, err := s.Visitors(ctx, page)
		if err != nil {
			b.Fatal(err)
		}
		if n.Visitors != int64(counts[p]) {
			b.Fatalf("page %d: %d visitors counted, %d recorded", p, n.Visitors, counts[p])
		}
	}
	if st := s.Stats(); st.Pages != int64(len(pages)) || st.Pairs != int64(pairs) {
		b.Fatalf("Stats() = %+v, want %d pages, %d pairs", st, len(pages), pairs)
	}
	runtime.KeepAlive(s)
	runtime.KeepAlive(ids)

	n := float64(pairs)
	p99 := pauseQuantile(pausesBefore, pausesAfter, 0.99)
	return map[string]float64{
		"rss-B/pair":  float64(rssAfter-rssBefore) / n,
		"heap-B/pair": (float64(after.HeapInuse) - float64(before.HeapInuse)) / n,
		"gc-p99-ns":   p99 * 1e9,
		"gc-cycles":   float64(after.NumGC - before.NumGC),
		"ns/insert":   float64(elapsed.Nanoseconds()) / n,
	}
}

// zipfCounts spreads pairs over pages by Zipf's law, page k (from 1) having
// about 1/k of the first page's visitors, most first.
func zipfCounts(pages, pairs int) []int {
	var harmonic float64
	for k := 1; k <= pages; k++ {
		harmonic += 1 / float64(k)
	}
	counts := make([]int, pages)
	left := pairs
	for k := range counts {
		counts[k] = int(float64(pairs) / harmonic / float64(k+1))
		left -= counts[k]
	}
	for k := 0; left > 0; k, left = k+1, left-1 {
		counts[k]++ // the rounding's remainder, to the first pages
	}
	return counts
}

// residentBytes returns the resident set size of the process.
func residentBytes() (int64, error) {
	statm, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(string(statm))
	if len(fields) < 2 {
		return 0, fmt.Errorf("/proc/self/statm: %q has no resident field", statm)
	}
	pages, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/self/statm: %w", err)
	}
	return pages * int64(os.Getpagesize()), nil
}

// gcPauses returns the histogram of GC stop-the-world pauses so far.
func gcPauses() *metrics.Float64Histogram {
	sample := []metrics.Sample{{Name: "/sched/pauses/total/gc:seconds"}}
	metrics.Read(sample)
	return sample[0].Value.Float64Histogram()
}

// pauseQuantile returns the q quantile, in seconds, of the pauses counted in
// after but not in before: the upper bound of the bucket that holds it, or 0
// if there are none.
func pauseQuantile(before, after *metrics.Float64Histogram, q float64) float64 {
	var total uint64
	for i := range after.Counts {
		total += after.Counts[i] - before.Counts[i]
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i := range after.Counts {
		seen += after.Counts[i] - before.Counts[i]
		if seen >= rank {
			return after.Buckets[i+1]
		}
	}
	return after.Buckets[len(after.Buckets)-1]
}
