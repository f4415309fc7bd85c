package metrics

import "github.com/prometheus/client_golang/prometheus"

// RedisNode is the connection pool of one Redis node as the client sees it.
type RedisNode struct {
	Addr                         string
	Hits, Misses, Timeouts       int64 // connections taken from the pool; made anew; waits that timed out
	TotalConns, IdleConns, Stale int64 // open now, idle now, closed as stale so far
}

// Redis registers the connection pools of the Redis nodes, one series per
// node (every master and replica of a Cluster), read by nodes once per
// scrape.
func (m *Metrics) Redis(nodes func() []RedisNode) {
	m.registry.MustRegister(&redisCollector{nodes: nodes})
}

type redisCollector struct {
	nodes func() []RedisNode
}

var (
	redisLabels   = []string{"node"}
	redisHits     = prometheus.NewDesc("tracker_redis_pool_hits_total", "Commands that found an idle connection to the node.", redisLabels, nil)
	redisMisses   = prometheus.NewDesc("tracker_redis_pool_misses_total", "Commands that had to open a connection to the node.", redisLabels, nil)
	redisTimeouts = prometheus.NewDesc("tracker_redis_pool_timeouts_total", "Waits for a connection to the node that timed out.", redisLabels, nil)
	redisConns    = prometheus.NewDesc("tracker_redis_pool_connections", "Connections open to the node.", redisLabels, nil)
	redisIdle     = prometheus.NewDesc("tracker_redis_pool_idle_connections", "Idle connections to the node.", redisLabels, nil)
	redisStale    = prometheus.NewDesc("tracker_redis_pool_stale_connections_total", "Connections to the node closed as stale.", redisLabels, nil)
)

func (c *redisCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{redisHits, redisMisses, redisTimeouts, redisConns, redisIdle, redisStale} {
		ch <- d
	}
}

func (c *redisCollector) Collect(ch chan<- prometheus.Metric) {
	for _, n := range c.nodes() {
		for _, s := range []struct {
			d *prometheus.Desc
			t prometheus.ValueType
			v int64
		}{
			{redisHits, prometheus.CounterValue, n.Hits}, {redisMisses, prometheus.CounterValue, n.Misses},
			{redisTimeouts, prometheus.CounterValue, n.Timeouts}, {redisConns, prometheus.GaugeValue, n.TotalConns},
			{redisIdle, prometheus.GaugeValue, n.IdleConns}, {redisStale, prometheus.CounterValue, n.Stale},
		} {
			ch <- prometheus.MustNewConstMetric(s.d, s.t, float64(s.v), n.Addr)
		}
	}
}
