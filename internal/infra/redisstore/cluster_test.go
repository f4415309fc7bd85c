package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/infra/redisstore"
	"github.com/webtracker/tracker/internal/infra/redisstore/redistest"
	"github.com/webtracker/tracker/internal/infra/storetest"
)

// openCluster opens a store on cluster, as opts say besides.
func openCluster(t *testing.T, cluster *redistest.Cluster, opts redisstore.Options) *redisstore.Store {
	t.Helper()
	opts.URL = cluster.URL()
	if opts.Retention.Days == 0 {
		opts.Retention = domain.Retention{Days: 3660} // the suite's days are in 2026
	}
	return openURL(t, opts)
}

// TestClusterConformance runs the suite every store runs against a real
// Redis Cluster of three masters and three replicas, in both counting
// modes: no command of a page crosses slots (a CROSSSLOT error would fail
// it).
func TestClusterConformance(t *testing.T) {
	t.Parallel()
	cluster := redistest.StartCluster(t)
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return openCluster(t, cluster, redisstore.Options{})
	})
	t.Run("Approximate", func(t *testing.T) {
		t.Parallel()
		s := openCluster(t, cluster, redisstore.Options{Counting: redisstore.Approximate})
		at := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
		for v := range 500 {
			for d := range 3 {
				if err := s.Record(context.Background(), storetest.ViewAt(t, fmt.Sprint("v", v), "https://example.com/a", at.AddDate(0, 0, d))); err != nil {
					t.Fatal(err)
				}
			}
		}
		days, err := domain.ParseDateRange("2026-11-30", "2026-12-02", "UTC", at.AddDate(0, 0, 3), domain.Retention{Days: 3660})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Range(context.Background(), storetest.Page(t, "https://example.com/a"), []domain.Period{days.Period()})
		if err != nil {
			t.Fatal(err)
		}
		if got.Total.Visitors < 480 || got.Total.Visitors > 520 {
			t.Errorf("3 days of the same 500 visitors: %d, want 500 within 4%%", got.Total.Visitors)
		}
	})
}

// TestClusterKeysOfAPage: every key of a page, all-time and of its days, in
// both counting modes, is on one master, in the slot of the page's URL.
func TestClusterKeysOfAPage(t *testing.T) {
	t.Parallel()
	cluster := redistest.StartCluster(t)
	for _, counting := range []redisstore.Counting{redisstore.Exact, redisstore.Approximate} {
		prefix := fmt.Sprintf("keys%d:", counting)
		s := openCluster(t, cluster, redisstore.Options{Counting: counting, Prefix: prefix, Retention: domain.DefaultRetention})
		const page = "https://example.com/pricing"
		for d := range 3 {
			if err := s.Record(context.Background(), storetest.ViewAt(t, "alice", page, time.Now().Add(-time.Duration(d)*24*time.Hour))); err != nil {
				t.Fatal(err)
			}
		}
		wantSlot, err := cluster.Nodes[0].Int("CLUSTER", "KEYSLOT", page)
		if err != nil {
			t.Fatal(err)
		}
		holders := 0
		keys := 0
		for _, m := range cluster.Masters() {
			found, err := scanKeys(m, prefix+"*")
			if err != nil {
				t.Fatal(err)
			}
			if len(found) > 0 {
				holders++
			}
			for _, k := range found {
				keys++
				if !strings.Contains(k, "{"+page+"}") {
					t.Errorf("key %q does not hold the page in a hash tag", k)
				}
				if slot, err := m.Int("CLUSTER", "KEYSLOT", k); err != nil || slot != wantSlot {
					t.Errorf("key %q is in slot %d (%v), want the page's, %d", k, slot, err, wantSlot)
				}
			}
		}
		// Exact: the all-time set and two sorted sets a day; approximate: the
		// all-time HyperLogLog and three a day (day, hour, quarter).
		if want := map[redisstore.Counting]int{redisstore.Exact: 1 + 2*3, redisstore.Approximate: 1 + 3*3}[counting]; keys != want || holders != 1 {
			t.Errorf("counting %d: %d keys on %d masters, want %d keys on one", counting, keys, holders, want)
		}
	}
}

// scanKeys lists the keys of a node that match pattern.
func scanKeys(n *redistest.Server, pattern string) ([]string, error) {
	reply, err := n.Strings("KEYS", pattern) // a test's few keys
	return reply, err
}

// TestClusterSpread: 10,000 pages spread over the three masters, the
// busiest holding at most 1.2 times the mean share of pages, and of the
// commands that recorded them.
func TestClusterSpread(t *testing.T) {
	t.Parallel()
	cluster := redistest.StartCluster(t)
	s := openCluster(t, cluster, redisstore.Options{Retention: domain.DefaultRetention})
	spread := redistest.MeasureSpread(t, cluster, func() {
		recordPages(t, s, 10_000)
	})
	t.Logf("10,000 pages: %s", spread)
	if spread.Keys > 1.2 || spread.Commands > 1.2 {
		t.Errorf("the busiest master holds %.3f times the mean share of keys and serves %.3f times the mean share of commands; want at most 1.2", spread.Keys, spread.Commands)
	}
}

// recordPages records one view now of each of n pages, concurrently.
func recordPages(tb testing.TB, s *redisstore.Store, n int) {
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				if err := s.Record(context.Background(), storetest.ViewAt(tb, "alice", fmt.Sprintf("https://example.com/page/%d", i), time.Now())); err != nil {
					tb.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestClusterFailover kills a master under load, with writes that wait for
// a replica: events to its slots fail (never acknowledged and lost) while
// its replica takes over and until the old master is back as the new one's
// replica, then recording goes on, and every acknowledged event is counted.
// Each event is of a page of its own, so that a page's count says whether
// its one event is kept.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	cluster := redistest.StartCluster(t)
	s := openCluster(t, cluster, redisstore.Options{WaitReplicas: 1, Timeout: time.Second})
	load := startLoad(t, s)
	time.Sleep(200 * time.Millisecond)
	victim := cluster.Masters()[0]
	cluster.Failover(victim)
	// Recording goes on: wait for acknowledgments after the cluster is whole.
	before := load.acked.Load()
	deadline := time.Now().Add(10 * time.Second)
	for load.acked.Load() < before+200 {
		if time.Now().After(deadline) {
			t.Fatalf("after the failover, %d events acknowledged in 10s, want 200", load.acked.Load()-before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	pages := load.stop()
	if load.failed.Load() == 0 {
		t.Error("no event failed while a master was down: the failover did not happen under load")
	}
	lost := 0
	for _, p := range pages {
		n, err := s.Visitors(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		if n.Visitors != 1 {
			lost++
		}
	}
	t.Logf("%d events acknowledged, %d failed (not acknowledged), %d acknowledged and lost", len(pages), load.failed.Load(), lost)
	if lost > 0 {
		t.Errorf("%d of %d acknowledged events are lost after the failover", lost, len(pages))
	}
}

// load records events of pages of their own from a few writers until
// stopped, and keeps the pages of those acknowledged.
type load struct {
	acked, failed atomic.Int64
	mu            sync.Mutex
	pages         []domain.PageURL
	quit          chan struct{}
	wg            sync.WaitGroup
}

func startLoad(tb testing.TB, s *redisstore.Store) *load {
	l := &load{quit: make(chan struct{})}
	for w := range 8 {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.quit:
					return
				default:
				}
				v := storetest.View(tb, "alice", fmt.Sprintf("https://example.com/%d/%d", w, i))
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				err := s.Record(ctx, v)
				cancel()
				switch {
				case err == nil:
					l.acked.Add(1)
					l.mu.Lock()
					l.pages = append(l.pages, v.Page)
					l.mu.Unlock()
				case errors.Is(err, domain.ErrUnavailable):
					l.failed.Add(1)
					time.Sleep(5 * time.Millisecond)
				default:
					tb.Errorf("Record: %v", err)
					return
				}
			}
		})
	}
	return l
}

// stop stops the writers and returns the pages of the events acknowledged.
func (l *load) stop() []domain.PageURL {
	close(l.quit)
	l.wg.Wait()
	return l.pages
}

// TestClusterWithoutWaitLosesAcknowledged shows what WaitReplicas buys:
// with a replica that has fallen behind (cut off here) when its master
// fails, an event acknowledged without waiting is lost on the failover,
// while one that waits for the replica is refused instead of acknowledged.
func TestClusterWithoutWaitLosesAcknowledged(t *testing.T) {
	t.Parallel()
	cluster := redistest.StartCluster(t)
	fast := openCluster(t, cluster, redisstore.Options{Prefix: "fast:", Timeout: time.Second})
	safe := openCluster(t, cluster, redisstore.Options{Prefix: "safe:", Timeout: time.Second, WaitReplicas: 1})
	const page = "https://example.com/campaign" // both stores' keys of it are in its slot
	master := cluster.MasterOf(page)
	replica := cluster.ReplicaOf(master)
	// Paused, the replica cannot connect again once its master drops it:
	// what the master writes next goes nowhere else.
	replica.Pause()
	if _, err := master.Do("CLIENT", "KILL", "TYPE", "replica"); err != nil {
		t.Fatal(err)
	}
	if err := fast.Record(context.Background(), storetest.View(t, "alice", page)); err != nil {
		t.Fatalf("without waiting for replicas, Record = %v, want it acknowledged", err)
	}
	if err := safe.Record(context.Background(), storetest.View(t, "alice", page)); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("waiting for a replica that is paused, Record = %v, want ErrUnavailable", err)
	}
	master.Kill()
	replica.Resume()
	cluster.WaitPromoted(replica)
	var (
		n   domain.Count
		err error
	)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if n, err = fast.Visitors(context.Background(), storetest.Page(t, page)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the promoted replica does not answer after 10s: %v", err)
		}
	}
	if n.Visitors != 0 {
		t.Errorf("the acknowledged event's page has %d visitors after the failover; the replica never had it, want 0", n.Visitors)
	}
	master.Restart()
	cluster.WaitReady()
}
