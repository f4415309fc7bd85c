package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/infra/redisstore"
	"github.com/webtracker/tracker/internal/infra/redisstore/redistest"
)

// BenchmarkClusterSpread reports how evenly 10,000 pages fall on the three
// masters of a Cluster: the busiest master's share of keys and of the
// commands that recorded them, over the mean share.
func BenchmarkClusterSpread(b *testing.B) {
	for range b.N {
		cluster := redistest.StartCluster(b)
		s, err := redisstore.Open(redisstore.Options{URL: cluster.URL(), Prefix: "spread:"})
		if err != nil {
			b.Fatal(err)
		}
		spread := redistest.MeasureSpread(b, cluster, func() { recordPages(b, s, 10_000) })
		_ = s.Close()
		b.ReportMetric(spread.Keys, "busiest/mean-keys")
		b.ReportMetric(spread.Commands, "busiest/mean-commands")
		b.Logf("10,000 pages: %s", spread)
	}
}

// BenchmarkClusterFailovers kills a master under load five times, each
// time the master of the moment, with writes waiting for one replica, and
// reports the acknowledged events lost (the target is 0), those
// acknowledged and those refused while a master was down or without its
// replica.
func BenchmarkClusterFailovers(b *testing.B) {
	for range b.N {
		cluster := redistest.StartCluster(b)
		s, err := redisstore.Open(redisstore.Options{URL: cluster.URL(), Prefix: "failover:", WaitReplicas: 1, Timeout: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		l := startLoad(b, s)
		start := time.Now()
		for i := range 5 {
			cluster.Failover(cluster.Masters()[i%3])
		}
		took := time.Since(start)
		// Writes go on after the last failover before the count.
		for n := l.acked.Load(); l.acked.Load() < n+200; {
			time.Sleep(10 * time.Millisecond)
		}
		pages := l.stop()
		lost := 0
		for _, p := range pages {
			if n, err := s.Visitors(context.Background(), p); err != nil {
				b.Fatal(err)
			} else if n.Visitors != 1 {
				lost++
			}
		}
		_ = s.Close()
		b.ReportMetric(float64(lost), "acked-lost")
		b.ReportMetric(float64(len(pages)), "acked")
		b.ReportMetric(float64(l.failed.Load()), "refused")
		b.ReportMetric(took.Seconds()/5, "s/failover")
	}
}
