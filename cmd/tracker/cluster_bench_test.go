package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/infra/redisstore/redistest"
)

// BenchmarkRedisClusterIngest measures ingest through two tracker
// instances on a Redis Cluster of three masters and three replicas,
// against the same two instances on one redis-server, in interleaved rounds
// of the same run, on this machine's cores (every redis-server, both
// trackers and the load share them): the figure is each setup's median
// over the rounds and the ratio to one redis-server. The cluster is
// measured as it comes and with -redis-wait-replicas 1. Every node appends
// to its log and syncs it every second.
func BenchmarkRedisClusterIngest(b *testing.B) {
	const rounds, round, clients = 5, 2 * time.Second, 32
	single := redistest.Start(b, "--appendfsync", "everysec")
	cluster := redistest.StartCluster(b)
	setups := []struct {
		name  string
		args  []string
		rates []float64
	}{
		{name: "one-redis-server", args: []string{"-redis-url", single.URL()}},
		{name: "cluster", args: []string{"-redis-url", cluster.URL()}},
		{name: "cluster-wait-1", args: []string{"-redis-url", cluster.URL(), "-redis-wait-replicas", "1"}},
	}
	type pair [2]*instance
	trackers := make([]pair, len(setups))
	for i, s := range setups {
		for j := range 2 {
			trackers[i][j] = start(b, nil, append([]string{"-store", "redis", "-redis-prefix", fmt.Sprintf("bench%d:", i)}, s.args...)...)
		}
	}
	var seq atomic.Int64
	for range b.N {
		for r := range rounds {
			for i := range setups {
				k := (i + r) % len(setups) // each round in another order
				setups[k].rates = append(setups[k].rates, ingestRound(b, trackers[k][:], clients, round, &seq))
			}
		}
	}
	base := median(setups[0].rates)
	for _, s := range setups {
		b.ReportMetric(median(s.rates), s.name+"-req/s")
		if s.name != setups[0].name {
			b.ReportMetric(median(s.rates)/base, s.name+"/one-server")
		}
		b.Logf("%s: req/s per round %.0f", s.name, s.rates)
	}
}

// ingestRound sends events of distinct visitors over 1,000 pages from
// clients keep-alive connections, alternating between the trackers, for d,
// and returns the events acknowledged a second.
func ingestRound(b *testing.B, trackers []*instance, clients int, d time.Duration, seq *atomic.Int64) float64 {
	var acked atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}, Timeout: 10 * time.Second}
			defer client.CloseIdleConnections()
			for i := 0; time.Now().Before(stop); i++ {
				n := seq.Add(1)
				body := fmt.Appendf(nil, `{"visitor_id":"v%d","url":"https://example.com/p/%d"}`, n, n%1000)
				resp, err := client.Post(trackers[(c+i)%len(trackers)].base+"/api/v1/events", "application/json", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					acked.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return float64(acked.Load()) / d.Seconds()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
