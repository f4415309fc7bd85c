// Package storetest is the conformance suite every store runs in its tests:
// the memory store, the durable store and the Redis store must count alike.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/webtracker/tracker/internal/domain"
)

// Store is what the features need of a store.
type Store interface {
	Record(ctx context.Context, v domain.PageView) error
	Visitors(ctx context.Context, page domain.PageURL) (domain.Count, error)
	Pages(ctx context.Context) ([]domain.PageCount, error)
	Range(ctx context.Context, page domain.PageURL, periods []domain.Period) (domain.RangeCount, error)
	PagesIn(ctx context.Context, p domain.Period) ([]domain.PageCount, error)
}

// Run runs the suite; open returns a new, empty store for each test, and
// cleans it up with t.Cleanup. The store must keep the days of the suite,
// which are in 2026: a retention of ten years or more.
func Run(t *testing.T, open func(t *testing.T) Store) {
	runRanges(t, open)
	t.Run("UnknownPageIsZero", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		if n := count(t, s, "https://example.com/never"); n != 0 {
			t.Errorf("a page never seen has %d visitors, want 0", n)
		}
	})
	t.Run("DistinctVisitors", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		a, b := "https://example.com/a", "https://example.com/b"
		for _, ev := range []struct{ visitor, page string }{
			{"alice", a}, {"alice", a}, {"bob", a}, {"Alice", a}, // ids are case-sensitive
			{"alice", b},
		} {
			record(t, s, ev.visitor, ev.page)
		}
		if n := count(t, s, a); n != 3 {
			t.Errorf("page a: %d visitors, want 3 (alice, bob, Alice)", n)
		}
		if n := count(t, s, b); n != 1 {
			t.Errorf("page b: %d visitors, want 1", n)
		}
	})
	t.Run("ConcurrentWritersOverlapping", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		const writers, visitors, pages = 8, 400, 3
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				// Every writer sends every visitor, from a different start,
				// so that the same pair arrives from several at once.
				for i := range visitors {
					v := (i + w*visitors/writers) % visitors
					record(t, s, fmt.Sprintf("visitor-%d", v), fmt.Sprintf("https://example.com/p/%d", v%pages))
				}
			})
		}
		wg.Wait()
		for p := range pages {
			want := int64(0)
			for v := range visitors {
				if v%pages == p {
					want++
				}
			}
			if n := count(t, s, fmt.Sprintf("https://example.com/p/%d", p)); n != want {
				t.Errorf("page %d: %d visitors, want %d", p, n, want)
			}
		}
	})
	t.Run("ReadersDuringWrites", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		const page, visitors = "https://example.com/busy", 600
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			defer close(done)
			for v := range visitors {
				record(t, s, fmt.Sprintf("v%d", v), page)
			}
		})
		for range 2 {
			wg.Go(func() {
				last := int64(0)
				for {
					select {
					case <-done:
						return
					default:
					}
					n := count(t, s, page)
					if n < last || n > visitors {
						t.Errorf("count went from %d to %d (of %d)", last, n, visitors)
						return
					}
					last = n
				}
			})
		}
		wg.Wait()
		if n := count(t, s, page); n != visitors {
			t.Errorf("%d visitors after the writes, want %d", n, visitors)
		}
	})
	t.Run("PagesListsEveryPage", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		want := map[string]int64{"https://example.com/": 3, "https://example.com/a?x=1": 1, "https://other.example/b": 2}
		for page, n := range want {
			for v := range n {
				record(t, s, fmt.Sprintf("v%d", v), page)
			}
		}
		list, err := s.Pages(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		for _, pc := range list {
			got[pc.URL] = pc.Visitors
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Pages = %v, want %v", got, want)
		}
	})
	t.Run("ZeroValuesRejected", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		v, _ := domain.ParseVisitorID("v")
		if err := s.Record(context.Background(), domain.PageView{Visitor: v}); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("Record of a zero page = %v, want ErrInvalid", err)
		}
		if _, err := s.Visitors(context.Background(), domain.PageURL{}); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("Visitors of a zero page = %v, want ErrInvalid", err)
		}
	})
}

// Page returns the canonical page of raw, failing the test if it has none.
func Page(tb testing.TB, raw string) domain.PageURL {
	tb.Helper()
	p, err := domain.URLPolicy{}.Canonical(raw)
	if err != nil {
		tb.Fatalf("Canonical(%q): %v", raw, err)
	}
	return p
}

// Visitor returns the visitor of id, failing the test if it is invalid.
func Visitor(tb testing.TB, id string) domain.VisitorID {
	tb.Helper()
	v, err := domain.ParseVisitorID(id)
	if err != nil {
		tb.Fatalf("ParseVisitorID(%q): %v", id, err)
	}
	return v
}

// View returns a valid page view.
func View(tb testing.TB, visitor, page string) domain.PageView {
	tb.Helper()
	return domain.PageView{Page: Page(tb, page), Visitor: Visitor(tb, visitor)}
}

func record(t *testing.T, s Store, visitor, page string) {
	if err := s.Record(context.Background(), View(t, visitor, page)); err != nil {
		t.Errorf("Record(%s, %s): %v", visitor, page, err) // not Fatal: writers are goroutines
	}
}

func count(t *testing.T, s Store, page string) int64 {
	n, err := s.Visitors(context.Background(), Page(t, page))
	if err != nil {
		t.Errorf("Visitors(%s): %v", page, err)
	}
	if !n.Exact() {
		t.Errorf("Visitors(%s) = %+v: an estimate, where the suite checks exact counts", page, n)
	}
	return n.Visitors
}
