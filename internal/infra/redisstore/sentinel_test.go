package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/infra/redisstore"
	"github.com/webtracker/tracker/internal/infra/redisstore/redistest"
	"github.com/webtracker/tracker/internal/infra/storetest"
)

// TestSentinelFailover: a store on a Sentinel setup (a master, its replica,
// three sentinels) follows the master the sentinels elect when the first
// one dies: writes that waited for the replica before the crash are all
// counted by the new master, recording goes on there, and ranges agree.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	sn := redistest.StartSentinel(t)
	opts := redisstore.Options{URL: sn.URL(), Prefix: "sentinel:", Timeout: time.Second, Retention: domain.Retention{Days: 3660}}
	after := openURL(t, opts) // once the replica is the master, no replica is left to wait for
	opts.WaitReplicas = 1
	s := openURL(t, opts)
	const page = "https://example.com/sentinel"
	at := time.Now().UTC().Add(-time.Hour)
	record := func(s *redisstore.Store, from, to int) {
		t.Helper()
		for v := from; v < to; v++ {
			view := storetest.ViewAt(t, fmt.Sprint("visitor-", v), page, at)
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				err := s.Record(context.Background(), view)
				if err == nil {
					break
				}
				if !errors.Is(err, domain.ErrUnavailable) || time.Now().After(deadline) {
					t.Fatalf("Record of visitor %d: %v", v, err)
				}
			}
		}
	}
	record(s, 0, 300)
	sn.Master.Kill()
	sn.WaitFailover()
	record(after, 300, 400)
	n, err := s.Visitors(context.Background(), storetest.Page(t, page))
	if err != nil || n.Visitors != 400 {
		t.Fatalf("after the failover: %d visitors, %v; want 400", n.Visitors, err)
	}
	day, err := domain.ParseDateRange(at.Format(time.DateOnly), at.Format(time.DateOnly), "UTC", time.Now(), domain.Retention{Days: 3660})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Range(context.Background(), storetest.Page(t, page), []domain.Period{day.Period()})
	if err != nil || got.Total.Visitors != 400 {
		t.Errorf("the day's range after the failover: %+v, %v; want 400", got, err)
	}
}
