package redisstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

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
