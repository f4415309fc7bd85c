// Package metrics exposes the service's Prometheus metrics: HTTP requests by
// route and status, latency, events accepted and rejected by reason, the
// store's sizes, and the Go runtime's own metrics.
//
// Everything is registered on a registry made by New, never on the global
// default one, so that tests and several instances in one process do not
// share counters.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// StoreStats is what the metrics read from the store at each scrape.
type StoreStats struct {
	Pages, Estimated, Pairs, Bytes, Limit int64
	Conversions, Evicted, Expired         int64
	// Triples are the (page, visitor, day) kept for time ranges;
	// DaysDropped counts the (page, day) forgotten past the retention;
	// DaysGivenUp the pages whose estimated days went under the limit.
	Triples, DaysDropped, DaysGivenUp int64
}

// Metrics holds the service's collectors and the registry they live on.
type Metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	events   *prometheus.CounterVec
}

// New makes the metrics and registers them, with the Go runtime and process
// collectors, on a registry of their own. stats is called once per scrape;
// nil leaves the store's sizes out (a store outside the process).
func New(stats func() StoreStats) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracker_http_requests_total",
			Help: "HTTP requests answered, by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tracker_http_request_duration_seconds",
			Help:    "Time from the request's headers to the end of its handler, by route.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracker_events_total",
			Help: "Page view events received, by result (accepted or rejected) and, for rejections, the problem type.",
		}, []string{"result", "reason"}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.events,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if stats != nil {
		m.registry.MustRegister(&storeCollector{stats: stats})
	}
	return m
}

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Route returns the recorder of one route's requests. The counters of the
// usual status codes are looked up once here, so that recording a request
// costs a few atomic adds and no label lookup.
func (m *Metrics) Route(route string, events bool) *Route {
	r := &Route{m: m, name: route, latency: m.latency.WithLabelValues(route), events: events}
	for _, code := range []int{200, 202, 400, 404, 405, 413, 415, 429, 500, 503} {
		r.codes[code-200] = m.requests.WithLabelValues(route, strconv.Itoa(code))
	}
	if events {
		r.accepted = m.events.WithLabelValues("accepted", "")
	}
	return r
}

// Route records the requests of one route.
type Route struct {
	m        *Metrics
	name     string
	latency  prometheus.Observer
	codes    [400]prometheus.Counter // by status - 200, for 200..599
	events   bool                    // the route takes events: count them too
	accepted prometheus.Counter
}

// Observe records one answered request: its status, how long it took and,
// for an event route, whether the event was accepted or why not (reason is
// the problem type of a rejection).
func (r *Route) Observe(status int, took time.Duration, reason string) {
	r.latency.Observe(took.Seconds())
	if c := r.counter(status); c != nil {
		c.Inc()
	}
	if !r.events || status == http.StatusMethodNotAllowed || status == http.StatusNotFound {
		return // not an event: another method on the path
	}
	if status < 300 {
		r.accepted.Inc()
		return
	}
	r.m.events.WithLabelValues("rejected", reason).Inc()
}

func (r *Route) counter(status int) prometheus.Counter {
	if status >= 200 && status < 600 {
		if c := r.codes[status-200]; c != nil {
			return c
		}
	}
	return r.m.requests.WithLabelValues(r.name, strconv.Itoa(status))
}

// storeCollector reads the store's sizes once per scrape.
type storeCollector struct {
	stats func() StoreStats
}

var (
	pagesDesc = prometheus.NewDesc("tracker_pages", "Pages tracked.", nil, nil)
	pairsDesc = prometheus.NewDesc("tracker_pairs", "Distinct (page, visitor) pairs stored.", nil, nil)
	bytesDesc = prometheus.NewDesc("tracker_store_bytes", "Bytes the store accounts for: visitor tables, sketches, and pages (twice, for the Go heap's garbage).", nil, nil)
	limitDesc = prometheus.NewDesc("tracker_store_limit_bytes", "The store's memory limit (-memory-limit); 0: none.", nil, nil)
	estDesc   = prometheus.NewDesc("tracker_pages_estimated", "Pages counted by a sketch (an estimate) rather than exactly.", nil, nil)
	convDesc  = prometheus.NewDesc("tracker_store_conversions_total", "Pages moved from an exact set into a sketch under the memory limit.", nil, nil)
	evictDesc = prometheus.NewDesc("tracker_store_evictions_total", "Pages forgotten under the memory limit, sketches not being enough.", nil, nil)
	expDesc   = prometheus.NewDesc("tracker_store_expired_total", "Pages removed after -page-ttl without an event.", nil, nil)
	tripDesc  = prometheus.NewDesc("tracker_day_visitors", "Distinct (page, visitor, UTC day) kept for time ranges.", nil, nil)
	dropDesc  = prometheus.NewDesc("tracker_days_dropped_total", "Days of a page forgotten for being older than -retention (all-time counts stay).", nil, nil)
	giveDesc  = prometheus.NewDesc("tracker_store_days_given_up_total", "Estimated pages whose days were given up under the memory limit (their ranges answer 409).", nil, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pagesDesc
	ch <- pairsDesc
	ch <- bytesDesc
	ch <- limitDesc
	ch <- estDesc
	ch <- convDesc
	ch <- evictDesc
	ch <- expDesc
	ch <- tripDesc
	ch <- dropDesc
	ch <- giveDesc
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(pagesDesc, prometheus.GaugeValue, float64(s.Pages))
	ch <- prometheus.MustNewConstMetric(pairsDesc, prometheus.GaugeValue, float64(s.Pairs))
	ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.GaugeValue, float64(s.Bytes))
	ch <- prometheus.MustNewConstMetric(limitDesc, prometheus.GaugeValue, float64(s.Limit))
	ch <- prometheus.MustNewConstMetric(estDesc, prometheus.GaugeValue, float64(s.Estimated))
	ch <- prometheus.MustNewConstMetric(convDesc, prometheus.CounterValue, float64(s.Conversions))
	ch <- prometheus.MustNewConstMetric(evictDesc, prometheus.CounterValue, float64(s.Evicted))
	ch <- prometheus.MustNewConstMetric(expDesc, prometheus.CounterValue, float64(s.Expired))
	ch <- prometheus.MustNewConstMetric(tripDesc, prometheus.GaugeValue, float64(s.Triples))
	ch <- prometheus.MustNewConstMetric(dropDesc, prometheus.CounterValue, float64(s.DaysDropped))
	ch <- prometheus.MustNewConstMetric(giveDesc, prometheus.CounterValue, float64(s.DaysGivenUp))
}
