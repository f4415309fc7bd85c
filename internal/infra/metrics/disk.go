package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DiskStats is what the metrics read from a durable store at each scrape.
type DiskStats struct {
	LogBytes, SnapshotBytes    int64
	SnapshotDuration, Recovery time.Duration
	Snapshots, SnapshotErrors  int64
}

// Disk registers the metrics of a durable store: stats is called once per
// scrape, and the returned function records the duration of each log sync.
func (m *Metrics) Disk(stats func() DiskStats) (observeFsync func(time.Duration)) {
	fsync := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tracker_disk_fsync_duration_seconds",
		Help:    "Time of each fsync of the write-ahead log.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	})
	m.registry.MustRegister(fsync, &diskCollector{stats: stats})
	return func(d time.Duration) { fsync.Observe(d.Seconds()) }
}

var (
	logBytesDesc     = prometheus.NewDesc("tracker_disk_log_bytes", "Bytes of the current write-ahead log.", nil, nil)
	snapBytesDesc    = prometheus.NewDesc("tracker_disk_snapshot_bytes", "Bytes of the newest snapshot.", nil, nil)
	snapSecondsDesc  = prometheus.NewDesc("tracker_disk_snapshot_duration_seconds", "Time the newest snapshot took to write.", nil, nil)
	snapshotsDesc    = prometheus.NewDesc("tracker_disk_snapshots_total", "Snapshots written since start, by result (ok or error).", []string{"result"}, nil)
	recoverySecsDesc = prometheus.NewDesc("tracker_disk_recovery_seconds", "Time the start took to load the snapshot and replay the logs.", nil, nil)
)

// diskCollector reads a durable store's figures once per scrape.
type diskCollector struct {
	stats func() DiskStats
}

func (c *diskCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{logBytesDesc, snapBytesDesc, snapSecondsDesc, snapshotsDesc, recoverySecsDesc} {
		ch <- d
	}
}

func (c *diskCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(logBytesDesc, prometheus.GaugeValue, float64(s.LogBytes))
	ch <- prometheus.MustNewConstMetric(snapBytesDesc, prometheus.GaugeValue, float64(s.SnapshotBytes))
	ch <- prometheus.MustNewConstMetric(snapSecondsDesc, prometheus.GaugeValue, s.SnapshotDuration.Seconds())
	ch <- prometheus.MustNewConstMetric(snapshotsDesc, prometheus.CounterValue, float64(s.Snapshots), "ok")
	ch <- prometheus.MustNewConstMetric(snapshotsDesc, prometheus.CounterValue, float64(s.SnapshotErrors), "error")
	ch <- prometheus.MustNewConstMetric(recoverySecsDesc, prometheus.GaugeValue, s.Recovery.Seconds())
}
