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
	// Until a store has found the new master, it answers unavailable: each
	// call is retried for a while on that, and only on that.
	retry := func(what string, call func() error) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			err := call()
			if err == nil {
				return
			}
			if !errors.Is(err, domain.ErrUnavailable) || time.Now().After(deadline) {
				t.Fatalf("%s: %v", what, err)
			}
		}
	}
	record := func(s *redisstore.Store, from, to int) {
		t.Helper()
		for v := from; v < to; v++ {
			view := storetest.ViewAt(t, fmt.Sprint("visitor-", v), page, at)
			retry(fmt.Sprint("Record of visitor ", v), func() error { return s.Record(context.Background(), view) })
		}
	}
	record(s, 0, 300)
	sn.Master.Kill()
	sn.WaitFailover()
	record(after, 300, 400)
	var n domain.Count
	retry("Visitors", func() (err error) {
		n, err = s.Visitors(context.Background(), storetest.Page(t, page))
		return err
	})
	if n.Visitors != 400 {
		t.Errorf("after the failover: %d visitors; want 400", n.Visitors)
	}
	day, err := domain.ParseDateRange(at.Format(time.DateOnly), at.Format(time.DateOnly), "UTC", time.Now(), domain.Retention{Days: 3660})
	if err != nil {
		t.Fatal(err)
	}
	var got domain.RangeCount
	retry("Range", func() (err error) {
		got, err = s.Range(context.Background(), storetest.Page(t, page), []domain.Period{day.Period()})
		return err
	})
	if got.Total.Visitors != 400 {
		t.Errorf("the day's range after the failover: %+v; want 400", got)
	}
}
