package redisstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/infra/redisstore"
	"github.com/webtracker/tracker/internal/infra/redisstore/redistest"
	"github.com/webtracker/tracker/internal/infra/storetest"
)

// BenchmarkRedisMemory measures what Redis holds for a page, by MEMORY
// USAGE of its key, in each counting mode, for a small and a large page.
// make bench runs it once (-benchtime 1x).
func BenchmarkRedisMemory(b *testing.B) {
	srv := redistest.Start(b, "--appendonly", "no") // sizes only: no need to sync
	for _, mode := range []struct {
		name     string
		counting redisstore.Counting
	}{{"exact", redisstore.Exact}, {"approximate", redisstore.Approximate}} {
		for _, visitors := range []int{10, 1000, 100_000} {
			b.Run(fmt.Sprintf("%s/visitors=%d", mode.name, visitors), func(b *testing.B) {
				s, err := redisstore.Open(redisstore.Options{URL: srv.URL(), Prefix: b.Name() + ":", Counting: mode.counting})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				page := storetest.Page(b, "https://example.com/page")
				for range b.N {
					var wg sync.WaitGroup
					for w := range 32 {
						wg.Go(func() {
							for i := w; i < visitors; i += 32 {
								if err := s.Record(context.Background(), storetest.View(b, fmt.Sprintf("visitor-%d", i), page.String())); err != nil {
									b.Error(err)
									return
								}
							}
						})
					}
					wg.Wait()
				}
				bytes, err := srv.Int("MEMORY", "USAGE", s.Key(page), "SAMPLES", "0")
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(bytes), "B/page")
				b.ReportMetric(float64(bytes)/float64(visitors), "B/visitor")
			})
		}
	}
}

// BenchmarkRange measures a daily series with its total, the dashboard's
// heaviest read: a week in New York (every day two parts of UTC days) of a
// page with 20,000 visitors a day, half of them back the next day. It
// reports the (visitor, day) pairs read per second in exact counting.
func BenchmarkRange(b *testing.B) {
	srv := redistest.Start(b, "--appendonly", "no")
	const days, perDay = 7, 20000
	periods := make([]domain.Period, days)
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		b.Fatal(err)
	}
	for d := range days {
		start := time.Date(2026, 11, 2+d, 0, 0, 0, 0, ny)
		periods[d] = domain.Period{From: domain.QuarterOf(start), To: domain.QuarterOf(start.AddDate(0, 0, 1))}
	}
	for _, mode := range []struct {
		name     string
		counting redisstore.Counting
	}{{"exact", redisstore.Exact}, {"approximate", redisstore.Approximate}} {
		b.Run(mode.name, func(b *testing.B) {
			s, err := redisstore.Open(redisstore.Options{URL: srv.URL(), Prefix: b.Name() + ":", Counting: mode.counting,
				Retention: domain.Retention{Days: 3660}})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			page := storetest.Page(b, "https://example.com/page")
			var wg sync.WaitGroup
			for w := range 32 {
				wg.Go(func() {
					for i := w; i < (days+1)*perDay; i += 32 {
						// Visitor i comes on its day, at a time of its own.
						d := i / perDay
						v := fmt.Sprintf("visitor-%d", i%perDay+d*perDay/2)
						at := time.Date(2026, 11, 2+d, 0, 0, 0, 0, time.UTC).Add(time.Duration(i%96) * 15 * time.Minute)
						if err := s.Record(context.Background(), storetest.ViewAt(b, v, page.String(), at)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := s.Range(context.Background(), page, periods); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*float64(days+1)*perDay/b.Elapsed().Seconds(), "pairs/s")
		})
	}
}
