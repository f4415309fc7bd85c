package diskstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/infra/memstore"
)

// BenchmarkRecovery measures a start over 10 million (page, visitor) pairs:
// 9 million in the snapshot and 1 million in the log after it, over 1000
// pages. Every view has a time, as ingest gives them, spread over 30 days:
// each pair is also a (page, visitor, day), in a day record of the snapshot
// or a quarter of the log. make bench runs it once (-benchtime 1x); the
// figures are the recovery time, pairs read per second, and the snapshot's
// bytes per pair, its day records included.
func BenchmarkRecovery(b *testing.B) {
	const pages, snapPairs, logPairs = 1000, 9_000_000, 1_000_000
	dir := b.TempDir()
	urls := make([]domain.PageURL, pages)
	for i := range urls {
		u, err := domain.URLPolicy{}.Canonical(fmt.Sprintf("https://example.com/page/%d", i))
		if err != nil {
			b.Fatal(err)
		}
		urls[i] = u
	}
	s, err := Open(Options{Dir: dir, Sync: SyncInterval}, memstore.New())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	first := domain.DayOf(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)).First()
	add := func(from, to int) {
		for i := from; i < to; i++ {
			v, _ := domain.VisitorFromHash(uint64(i)*0x9e3779b97f4a7c15 | 1)
			at := first + domain.Quarter(i/pages%(30*domain.QuartersPerDay))
			if err := s.Record(ctx, domain.PageView{Page: urls[i%pages], Visitor: v, At: at}); err != nil {
				b.Fatal(err)
			}
		}
	}
	add(0, snapPairs)
	if err := s.Snapshot(); err != nil {
		b.Fatal(err)
	}
	add(snapPairs, snapPairs+logPairs)
	s.log.flush(true)
	opened{Store: s}.crash() // the log stays as it is, not folded into a snapshot
	snapBytes := s.Stats().SnapshotBytes

	b.ResetTimer()
	var took time.Duration
	for range b.N {
		b.StopTimer()
		mem := memstore.New()
		b.StartTimer()
		start := time.Now()
		r, err := Open(Options{Dir: dir, Sync: SyncInterval}, mem)
		if err != nil {
			b.Fatal(err)
		}
		took += time.Since(start)
		b.StopTimer()
		if st := mem.Stats(); st.Pairs != snapPairs+logPairs || st.Triples != snapPairs+logPairs {
			b.Fatalf("%d pairs and %d (page, visitor, day) recovered, want %d of each", st.Pairs, st.Triples, snapPairs+logPairs)
		}
		opened{Store: r}.crash() // no snapshot: the next round reads the same files
		b.StartTimer()
	}
	b.ReportMetric(took.Seconds()/float64(b.N), "s/recovery")
	b.ReportMetric(float64(snapPairs+logPairs)*float64(b.N)/took.Seconds(), "pairs/s")
	b.ReportMetric(float64(snapBytes)/snapPairs, "snapshot-B/pair")
}
