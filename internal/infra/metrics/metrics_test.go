package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/infra/metrics"
)

func TestRouteObserve(t *testing.T) {
	t.Parallel()
	m := metrics.New(func() metrics.StoreStats { return metrics.StoreStats{Pages: 3, Pairs: 7, Bytes: 4096} })
	events := m.Route("/api/v1/events", true)
	query := m.Route("/api/v1/visitors", false)
	events.Observe(202, time.Millisecond, "")
	events.Observe(202, time.Millisecond, "")
	events.Observe(400, time.Millisecond, "validation")
	events.Observe(405, time.Millisecond, "method-not-allowed") // not an event
	events.Observe(418, time.Millisecond, "teapot")             // a code without a prepared counter
	query.Observe(200, 2*time.Second, "")

	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(w.Body)
	out := string(body)
	for _, want := range []string{
		`tracker_events_total{reason="",result="accepted"} 2`,
		`tracker_events_total{reason="validation",result="rejected"} 1`,
		`tracker_events_total{reason="teapot",result="rejected"} 1`,
		`tracker_http_requests_total{code="202",route="/api/v1/events"} 2`,
		`tracker_http_requests_total{code="405",route="/api/v1/events"} 1`,
		`tracker_http_requests_total{code="418",route="/api/v1/events"} 1`,
		`tracker_http_request_duration_seconds_count{route="/api/v1/events"} 5`,
		`tracker_http_request_duration_seconds_bucket{route="/api/v1/visitors",le="2.5"} 1`,
		`tracker_http_request_duration_seconds_bucket{route="/api/v1/visitors",le="1"} 0`,
		"tracker_pages 3", "tracker_pairs 7", "tracker_store_bytes 4096",
		"go_goroutines ", "process_resident_memory_bytes ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(out, `reason="method-not-allowed"`) {
		t.Error("a 405 was counted as a rejected event")
	}
}

// TestRegistriesAreSeparate checks that two Metrics share no counter, as
// two services in one process (or two tests) must not.
func TestRegistriesAreSeparate(t *testing.T) {
	t.Parallel()
	stats := func() metrics.StoreStats { return metrics.StoreStats{} }
	a, b := metrics.New(stats), metrics.New(stats)
	a.Route("/x", true).Observe(202, time.Millisecond, "")
	w := httptest.NewRecorder()
	b.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if strings.Contains(w.Body.String(), `result="accepted"} 1`) {
		t.Error("an event counted on one registry shows on another")
	}
}

func TestDisk(t *testing.T) {
	t.Parallel()
	m := metrics.New(func() metrics.StoreStats { return metrics.StoreStats{} })
	observe := m.Disk(func() metrics.DiskStats {
		return metrics.DiskStats{LogBytes: 120, SnapshotBytes: 4096, SnapshotDuration: 250 * time.Millisecond,
			Recovery: 2 * time.Second, Snapshots: 3, SnapshotErrors: 1}
	})
	observe(300 * time.Microsecond)
	observe(20 * time.Millisecond)
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	out := w.Body.String()
	for _, want := range []string{
		"tracker_disk_log_bytes 120", "tracker_disk_snapshot_bytes 4096",
		"tracker_disk_snapshot_duration_seconds 0.25", "tracker_disk_recovery_seconds 2",
		`tracker_disk_snapshots_total{result="ok"} 3`, `tracker_disk_snapshots_total{result="error"} 1`,
		"tracker_disk_fsync_duration_seconds_count 2",
		`tracker_disk_fsync_duration_seconds_bucket{le="0.0005"} 1`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}
