package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/infra/redisstore"
	"github.com/webtracker/tracker/internal/infra/redisstore/redistest"
	"github.com/webtracker/tracker/internal/infra/storetest"
)

func open(t *testing.T, srv *redistest.Server, counting redisstore.Counting) *redisstore.Store {
	t.Helper()
	// Ten years of retention: the suite's days are in 2026 (see storetest.Run).
	return openWith(t, srv, redisstore.Options{Counting: counting, Retention: domain.Retention{Days: 3660}})
}

// openWith opens a store with opts, on srv, under a prefix of the test's
// own unless opts has one.
func openWith(t *testing.T, srv *redistest.Server, opts redisstore.Options) *redisstore.Store {
	t.Helper()
	opts.URL = srv.URL()
	return openURL(t, opts)
}

// openURL opens a store as opts say, under a prefix of the test's own
// unless opts has one.
func openURL(t *testing.T, opts redisstore.Options) *redisstore.Store {
	t.Helper()
	opts.HealthEvery = 50 * time.Millisecond
	if opts.Prefix == "" {
		opts.Prefix = strings.ReplaceAll(t.Name(), "/", ":") + ":"
	}
	s, err := redisstore.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// TestConformance runs the suite every store runs, against a real Redis.
func TestConformance(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T) storetest.Store { return open(t, srv, redisstore.Exact) })
}

// TestKeysAndMembers checks the data layout the README documents: one set
// per canonical page, of 8-byte visitor hashes.
func TestKeysAndMembers(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := open(t, srv, redisstore.Exact)
	v := storetest.View(t, "alice", "HTTPS://Example.com:443/a")
	if err := s.Record(context.Background(), v); err != nil {
		t.Fatal(err)
	}
	key := s.Key(v.Page)
	if !strings.HasSuffix(key, "visitors:{https://example.com/a}") {
		t.Errorf("key %q does not end in the canonical page", key)
	}
	if typ, err := srv.Do("TYPE", key); err != nil || typ != "+set" {
		t.Fatalf("TYPE %s = %q, %v; want a set", key, typ, err)
	}
	member := string([]byte{
		byte(v.Visitor.Hash()), byte(v.Visitor.Hash() >> 8), byte(v.Visitor.Hash() >> 16), byte(v.Visitor.Hash() >> 24),
		byte(v.Visitor.Hash() >> 32), byte(v.Visitor.Hash() >> 40), byte(v.Visitor.Hash() >> 48), byte(v.Visitor.Hash() >> 56),
	})
	if n, err := srv.Int("SISMEMBER", key, member); err != nil || n != 1 {
		t.Errorf("SISMEMBER of the visitor's 8-byte little-endian hash = %d, %v; want 1", n, err)
	}
}

// TestApproximate: a HyperLogLog per page, counting within a few standard
// errors.
func TestApproximate(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := open(t, srv, redisstore.Approximate)
	const visitors = 20000
	page := "https://example.com/big"
	var wg sync.WaitGroup
	for w := range 32 { // concurrent writers share pipelines
		wg.Go(func() {
			for i := w; i < visitors; i += 32 {
				if err := s.Record(context.Background(), storetest.View(t, fmt.Sprintf("v%d", i), page)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	c, err := s.Visitors(context.Background(), storetest.Page(t, page))
	if err != nil {
		t.Fatal(err)
	}
	if c.Exact() || c.RelativeError != redisstore.HLLRelativeError {
		t.Errorf("Visitors = %+v: want an estimate with the HyperLogLog's error", c)
	}
	n := c.Visitors
	if rel := math.Abs(float64(n)-visitors) / visitors; rel > 4*redisstore.HLLRelativeError {
		t.Errorf("estimate %d of %d visitors: %.2f%% off, more than 4 standard errors", n, visitors, 100*rel)
	}
	if v, _ := srv.Do("GET", s.Key(storetest.Page(t, page))); !strings.HasPrefix(v, "HYLL") {
		t.Errorf("the page's key is not a HyperLogLog (%d bytes, not starting HYLL)", len(v))
	}
}

// TestRedisDownAndBack: with Redis gone, Record and Visitors fail with
// ErrUnavailable and the store reports itself unhealthy; once Redis is
// back, both recover by themselves, and what was acknowledged is there.
func TestRedisDownAndBack(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := open(t, srv, redisstore.Exact)
	ctx := context.Background()
	page := "https://example.com/a"
	if err := s.Record(ctx, storetest.View(t, "before", page)); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	ctx1, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := s.Record(ctx1, storetest.View(t, "during", page)); !errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("Record with Redis down = %v, want ErrUnavailable", err)
	}
	waitFor(t, "unhealthy", func() bool { return s.Healthy() != nil })

	srv.Restart()
	waitFor(t, "healthy again", func() bool { return s.Healthy() == nil })
	if err := s.Record(ctx, storetest.View(t, "after", page)); err != nil {
		t.Fatalf("Record after Redis came back: %v", err)
	}
	c, err := s.Visitors(ctx, storetest.Page(t, page))
	if n := c.Visitors; err != nil || n < 2 || n > 3 {
		t.Errorf("Visitors = %d, %v; want before and after (and maybe during)", c.Visitors, err)
	}
}

// TestDeadline: a request's deadline bounds its wait for Redis.
func TestDeadline(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := open(t, srv, redisstore.Exact)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Record(ctx, storetest.View(t, "v", "https://example.com/"))
	if !errors.Is(err, domain.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("Record with a done context = %v, want ErrUnavailable and the context's error", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestForeignKeyIsNotAnOutage: a key of another type under the prefix fails
// the requests for that page (a 500), and leaves Redis healthy for the rest.
func TestForeignKeyIsNotAnOutage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := open(t, srv, redisstore.Exact)
	page := storetest.Page(t, "https://example.com/taken")
	if reply, err := srv.Do("SET", s.Key(page), "not a set"); err != nil || reply != "+OK" {
		t.Fatalf("SET: %q, %v", reply, err)
	}
	err := s.Record(context.Background(), storetest.View(t, "v", page.String()))
	if err == nil || errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("Record on a foreign key = %v, want an error that is not ErrUnavailable", err)
	}
	if err := s.Healthy(); err != nil {
		t.Errorf("Healthy = %v after one foreign key", err)
	}
	if err := s.Record(context.Background(), storetest.View(t, "v", "https://example.com/other")); err != nil {
		t.Errorf("Record of another page: %v", err)
	}
}

// TestModesUseTheirOwnKeys: switching the counting mode does not meet the
// other mode's keys.
func TestModesUseTheirOwnKeys(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	exact, approx := open(t, srv, redisstore.Exact), open(t, srv, redisstore.Approximate)
	page := storetest.Page(t, "https://example.com/")
	if exact.Key(page) == approx.Key(page) {
		t.Fatalf("both modes use the key %q", exact.Key(page))
	}
}
