package memstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"unsafe"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/infra/storetest"
)

// pageN and visitorN name test pages and visitors by number.
func pageN(tb testing.TB, n int) domain.PageURL {
	tb.Helper()
	return storetest.Page(tb, fmt.Sprintf("https://example.com/p/%d", n))
}

func visitorN(tb testing.TB, n int) domain.VisitorID {
	tb.Helper()
	return storetest.Visitor(tb, fmt.Sprintf("visitor-%d", n))
}

// record records a view and fails the test on error.
func record(tb testing.TB, s *Store, page domain.PageURL, v domain.VisitorID) {
	tb.Helper()
	if err := s.Record(context.Background(), domain.PageView{Page: page, Visitor: v}); err != nil {
		tb.Fatalf("Record(%v, %v): %v", page, v, err)
	}
}

// visitors returns the count of a page and fails the test on error.
func visitors(tb testing.TB, s *Store, page domain.PageURL) int64 {
	tb.Helper()
	n, err := s.Visitors(context.Background(), page)
	if err != nil {
		tb.Fatalf("Visitors(%v): %v", page, err)
	}
	return n.Visitors
}

func TestRecordSequential(t *testing.T) {
	t.Parallel()
	type view struct{ page, visitor string }
	tests := []struct {
		name  string
		views []view
		want  map[string]int64 // by raw page URL; pages absent from views too
		pairs int64
	}{
		{
			name: "nothing recorded",
			want: map[string]int64{"https://example.com/": 0},
		},
		{
			name:  "one view",
			views: []view{{"https://example.com/a", "v1"}},
			want:  map[string]int64{"https://example.com/a": 1, "https://example.com/b": 0},
			pairs: 1,
		},
		{
			name: "the same view again and again",
			views: []view{
				{"https://example.com/a", "v1"}, {"https://example.com/a", "v1"},
				{"https://example.com/a", "v1"},
			},
			want:  map[string]int64{"https://example.com/a": 1},
			pairs: 1,
		},
		{
			name: "one visitor on many pages",
			views: []view{
				{"https://example.com/a", "v1"}, {"https://example.com/b", "v1"},
				{"https://example.com/c", "v1"}, {"https://example.com/b", "v1"},
			},
			want: map[string]int64{
				"https://example.com/a": 1, "https://example.com/b": 1, "https://example.com/c": 1,
			},
			pairs: 3,
		},
		{
			name: "duplicates interleaved",
			views: []view{
				{"https://example.com/a", "v1"}, {"https://example.com/a", "v2"},
				{"https://example.com/b", "v1"}, {"https://example.com/a", "v1"},
				{"https://example.com/a", "v3"}, {"https://example.com/b", "v1"},
				{"https://example.com/a", "v2"},
			},
			want:  map[string]int64{"https://example.com/a": 3, "https://example.com/b": 1},
			pairs: 4,
		},
		{
			name: "ids differ by case and spaces",
			views: []view{
				{"https://example.com/a", "visitor"}, {"https://example.com/a", "Visitor"},
				{"https://example.com/a", "visitor "}, {"https://example.com/a", " visitor"},
			},
			want:  map[string]int64{"https://example.com/a": 4},
			pairs: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := New()
			pages := make(map[string]bool)
			for _, v := range tt.views {
				record(t, s, storetest.Page(t, v.page), storetest.Visitor(t, v.visitor))
				pages[v.page] = true
			}
			for raw, want := range tt.want {
				if got := visitors(t, s, storetest.Page(t, raw)); got != want {
					t.Errorf("Visitors(%s) = %d, want %d", raw, got, want)
				}
			}
			st := s.Stats()
			if st.Pages != int64(len(pages)) || st.Pairs != tt.pairs {
				t.Errorf("Stats() = %+v, want Pages %d, Pairs %d", st, len(pages), tt.pairs)
			}
		})
	}
}

func TestZeroValuesAreRejected(t *testing.T) {
	t.Parallel()
	page := pageN(t, 1)
	visitor := visitorN(t, 1)
	tests := []struct {
		name string
		call func(s *Store) error
	}{
		{"record a zero page", func(s *Store) error {
			return s.Record(context.Background(), domain.PageView{Visitor: visitor})
		}},
		{"record a zero visitor", func(s *Store) error {
			return s.Record(context.Background(), domain.PageView{Page: page})
		}},
		{"record a zero view", func(s *Store) error {
			return s.Record(context.Background(), domain.PageView{})
		}},
		{"count a zero page", func(s *Store) error {
			_, err := s.Visitors(context.Background(), domain.PageURL{})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := New()
			if err := tt.call(s); !errors.Is(err, domain.ErrInvalid) {
				t.Errorf("error = %v, want one matching domain.ErrInvalid", err)
			}
			if st := s.Stats(); st != (Stats{}) {
				t.Errorf("Stats() = %+v after a rejected call, want zero", st)
			}
		})
	}
}

// Writers share part of their visitors, so the exact totals depend on
// deduplication across goroutines, and page 0 grows past the split while
// they write.
func TestRecordConcurrentOverlapping(t *testing.T) {
	t.Parallel()
	const (
		writers = 8
		pages   = 4
		span    = 2000 // visitors per writer and page
		step    = 1000 // writer w records visitors [w*step, w*step+span)
	)
	s := New()
	pageURLs := make([]domain.PageURL, pages)
	for p := range pageURLs {
		pageURLs[p] = pageN(t, p)
	}
	ids := make([]domain.VisitorID, (writers-1)*step+span)
	for i := range ids {
		ids[i] = visitorN(t, i)
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w * step; i < w*step+span; i++ {
				for p, page := range pageURLs {
					// Page p gets only the visitors divisible by p+1, so
					// each page has its own total.
					if i%(p+1) == 0 {
						record(t, s, page, ids[i])
					}
				}
			}
		})
	}
	wg.Wait()
	var pairs int64
	for p, page := range pageURLs {
		want := int64((len(ids) + p) / (p + 1)) // multiples of p+1 in [0, len(ids))
		pairs += want
		if got := visitors(t, s, page); got != want {
			t.Errorf("Visitors(page %d) = %d, want %d", p, got, want)
		}
	}
	if st := s.Stats(); st.Pages != pages || st.Pairs != pairs {
		t.Errorf("Stats() = %+v, want Pages %d, Pairs %d", st, pages, pairs)
	}
	if pg := s.shardOf(pageURLs[0].String()).pages[pageURLs[0].String()]; pg.striped.Load() == nil {
		t.Errorf("page 0 with %d visitors is not striped; the test no longer races the split", len(ids))
	}
}

// Many first visits to a brand-new page at the same instant must all count:
// a store that created the page twice would keep only one copy's visitors.
// The writers of a round visit several new pages in the same order, so that
// they meet at each page's creation; on two cores a meeting is rare, hence
// the many rounds.
func TestRecordRacingFirstVisit(t *testing.T) {
	t.Parallel()
	const (
		rounds  = 1000
		pages   = 4 // new pages per round
		writers = 64
	)
	s := New()
	ids := make([]domain.VisitorID, writers)
	for i := range ids {
		ids[i] = visitorN(t, i)
	}
	for r := range rounds {
		round := make([]domain.PageURL, pages)
		for p := range round {
			round[p] = pageN(t, r*pages+p)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Go(func() {
				<-start
				for _, page := range round {
					record(t, s, page, id)
				}
				record(t, s, round[0], id) // idempotent even while racing
			})
		}
		close(start)
		wg.Wait()
		for p, page := range round {
			if got := visitors(t, s, page); got != writers {
				t.Fatalf("round %d, page %d: Visitors = %d, want %d", r, p, got, writers)
			}
		}
	}
	if st := s.Stats(); st.Pages != rounds*pages || st.Pairs != rounds*pages*writers {
		t.Errorf("Stats() = %+v, want Pages %d, Pairs %d", st, rounds*pages, rounds*pages*writers)
	}
}

// Writers racing a page across the split must neither lose nor double any
// visitor, whichever of them does the split.
func TestRecordRacingSplit(t *testing.T) {
	t.Parallel()
	const (
		rounds  = 20
		writers = 8
		each    = splitVisitors / writers * 2 // together twice the split point
	)
	ids := make([]domain.VisitorID, writers*each)
	for i := range ids {
		ids[i] = visitorN(t, i)
	}
	for r := range rounds {
		s := New()
		page := pageN(t, r)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				<-start
				// Interleaved ids, so that every writer is busy at the split.
				for i := w; i < len(ids); i += writers {
					record(t, s, page, ids[i])
				}
			})
		}
		close(start)
		wg.Wait()
		if got := visitors(t, s, page); got != int64(len(ids)) {
			t.Fatalf("round %d: Visitors = %d, want %d", r, got, len(ids))
		}
		pg := s.shardOf(page.String()).pages[page.String()]
		st := pg.striped.Load()
		if st == nil {
			t.Fatalf("round %d: page with %d visitors is not striped", r, len(ids))
		}
		if n := stripedLen(st); n != len(ids) {
			t.Fatalf("round %d: stripes hold %d values, want %d", r, n, len(ids))
		}
	}
}

// stripedLen counts the values of st, checking none is in the wrong stripe.
func stripedLen(st *stripes) int {
	n := 0
	for i := range st {
		for _, h := range st[i].set.slots {
			if h != 0 && stripeOf(h) != uint64(i) {
				return -1
			}
		}
		n += st[i].set.n
	}
	return n
}

// Readers during writes see each count go up or stay, never down, and never
// past the final total.
func TestVisitorsDuringWrites(t *testing.T) {
	t.Parallel()
	const (
		writers = 4
		readers = 4
		total   = 20000 // distinct visitors, each recorded by every writer
	)
	s := New()
	page := pageN(t, 1)
	ids := make([]domain.VisitorID, total)
	for i := range ids {
		ids[i] = visitorN(t, i)
	}
	done := make(chan struct{})
	var ready, writing, reading sync.WaitGroup
	midway := make([]int, readers) // reads that saw neither 0 nor total
	ready.Add(readers)
	for r := range readers {
		reading.Go(func() {
			var last int64
			for i := 0; ; i++ {
				if i == 1 {
					ready.Done()
				}
				select {
				case <-done:
					return
				default:
				}
				c, err := s.Visitors(context.Background(), page)
				if err != nil {
					t.Errorf("Visitors: %v", err)
					return
				}
				n := c.Visitors
				if n < last || n > total {
					t.Errorf("Visitors = %d after %d; want a count in [%d, %d]", n, last, last, total)
					return
				}
				if 0 < n && n < total {
					midway[r]++
				}
				last = n
				runtime.Gosched() // spinning readers would starve the writers
			}
		})
	}
	ready.Wait()
	for w := range writers {
		writing.Go(func() {
			for i := range ids {
				record(t, s, page, ids[(i+w*total/writers)%total])
				if i%500 == 0 {
					runtime.Gosched() // let the readers in, even on one core
				}
			}
		})
	}
	writing.Wait()
	close(done)
	reading.Wait()
	if got := visitors(t, s, page); got != total {
		t.Errorf("final Visitors = %d, want %d", got, total)
	}
	if n := sum(midway); n == 0 {
		t.Error("no reader saw a count while the writers were busy: the test tested nothing")
	}
}

// sum adds up xs.
func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

func TestPageWithManyVisitors(t *testing.T) {
	t.Parallel()
	const n = 100_000
	s := New()
	page, other := pageN(t, 1), pageN(t, 2)
	for i := range n {
		v := visitorN(t, i)
		record(t, s, page, v)
		if i%10 == 0 {
			record(t, s, page, visitorN(t, i/2)) // an earlier visitor comes back
			record(t, s, other, v)
		}
	}
	if got := visitors(t, s, page); got != n {
		t.Errorf("Visitors(page) = %d, want %d", got, n)
	}
	if got := visitors(t, s, other); got != n/10 {
		t.Errorf("Visitors(other) = %d, want %d", got, n/10)
	}
	pg := s.shardOf(page.String()).pages[page.String()]
	if st := pg.striped.Load(); st == nil {
		t.Error("page is not striped")
	} else if got := stripedLen(st); got != n {
		t.Errorf("stripes hold %d values (-1: one misplaced), want %d", got, n)
	}
}

// TestSlotKey checks that the scramble of visitor hashes is one to one and
// never 0, and that two stores scramble differently.
func TestSlotKey(t *testing.T) {
	t.Parallel()
	a, b := New(), New()
	seen := make(map[uint64]bool)
	for i := range 10000 {
		h := visitorN(t, i).Hash()
		k := a.slotKey(h)
		if k == 0 || seen[k] {
			t.Fatalf("slotKey(%#x) = %#x: zero or taken", h, k)
		}
		seen[k] = true
		if k == b.slotKey(h) && a.key != b.key {
			t.Fatalf("two stores scramble %#x alike", h)
		}
	}
	// The one hash whose scramble is 0 is moved, not lost.
	s := &Store{key: 12345}
	h0 := unfmix64(0) ^ s.key
	if fmix64(h0^s.key) != 0 {
		t.Fatal("unfmix64 does not invert fmix64")
	}
	if k := s.slotKey(h0); k == 0 || k == s.slotKey(h0+1) {
		t.Errorf("slotKey(%#x) = %#x, want a free non-zero value", h0, k)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	// A page of n visitors numbered from 0 holds these table bytes.
	tableBytes := func(t *testing.T, s *Store, n int) int64 {
		if n <= splitVisitors {
			return int64(sizeFor(n)) * 8
		}
		var counts [stripeCount]int
		for i := range n {
			counts[stripeOf(s.slotKey(visitorN(t, i).Hash()))]++
		}
		b := int64(stripeCount * stripeSize)
		for _, c := range counts {
			b += int64(sizeFor(c)) * 8
		}
		return b
	}
	tests := []struct {
		name  string
		sizes []int // visitors of each page
	}{
		{"empty", nil},
		{"one page, one visitor", []int{1}},
		{"table sizes", []int{6, 7, 12, 13, 100}},
		{"at the split", []int{splitVisitors, splitVisitors + 1}},
		{"large", []int{20000, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := New()
			var want Stats
			for p, n := range tt.sizes {
				page := pageN(t, p)
				for i := range n {
					record(t, s, page, visitorN(t, i))
					record(t, s, page, visitorN(t, i/2)) // a repeat, not counted
				}
				want.Pages++
				want.Pairs += int64(n)
				want.Bytes += keepingBytes(page.String()) + tableBytes(t, s, n)
			}
			// Slack depends on where the arena put the tables: TestArenaSlack
			// checks it.
			want.Slack = s.arena.slackBytes()
			if got := s.Stats(); got != want {
				t.Errorf("Stats() = %+v, want %+v", got, want)
			}
		})
	}
}

// A page is keyed by its canonical form, so two spellings of one page share
// their visitors; this holds whatever the URL policy deems canonical.
func TestPageKeyIsCanonical(t *testing.T) {
	t.Parallel()
	s := New()
	a := storetest.Page(t, "https://example.com/a")
	b, err := domain.ParsePageURL(a.String())
	if err != nil {
		t.Fatalf("ParsePageURL(%q): %v", a, err)
	}
	record(t, s, a, visitorN(t, 1))
	record(t, s, b, visitorN(t, 2))
	if got := visitors(t, s, a); got != 2 {
		t.Errorf("Visitors = %d, want 2", got)
	}
}

func TestSet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		n      int
		values func(rng *rand.Rand, i int) uint64
	}{
		// Random values are what sets hold in practice.
		{"random 1", 1, random},
		{"random 6", 6, random},
		{"random 7", 7, random},
		{"random 1000", 1000, random},
		{"random 100000", 100_000, random},
		// Small integers share their high bits and fill runs of slots: the
		// worst case for linear probing, and for wrapping around the end.
		{"consecutive 5000", 5000, func(_ *rand.Rand, i int) uint64 { return uint64(i + 1) }},
		{"top of the table", 3000, func(_ *rand.Rand, i int) uint64 { return ^uint64(0) - uint64(i) }},
		{"one slot apart", 3000, func(_ *rand.Rand, i int) uint64 { return uint64(i+1) << 32 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(1, uint64(tt.n)))
			in := make(map[uint64]bool, tt.n)
			var s set
			var grown int64
			for i := range tt.n {
				h := tt.values(rng, i)
				if in[h] {
					continue
				}
				in[h] = true
				added, g := s.insert(h)
				grown += g
				if !added {
					t.Fatalf("insert(%#x) of a new value = false", h)
				}
				if again, g := s.insert(h); again || g != 0 {
					t.Fatalf("insert(%#x) of a present value = %v, grew by %d; want false, 0", h, again, g)
				}
				if s.n != len(in) {
					t.Fatalf("n = %d after %d inserts", s.n, len(in))
				}
				if len(s.slots) != sizeFor(s.n) || s.n*loadDen > len(s.slots)*loadNum {
					t.Fatalf("%d values in %d slots: want %d slots, at most %d/%d full",
						s.n, len(s.slots), sizeFor(s.n), loadNum, loadDen)
				}
			}
			for h := range in {
				if !s.contains(h) {
					t.Fatalf("contains(%#x) of an inserted value = false", h)
				}
			}
			for range 10000 {
				if h := random(rng, 0); !in[h] && s.contains(h) {
					t.Fatalf("contains(%#x) of a value never inserted = true", h)
				}
			}
			if got, want := len(s.slots), sizeFor(len(in)); got != want {
				t.Errorf("%d values in %d slots, want %d", len(in), got, want)
			}
			if grown != s.bytes() {
				t.Errorf("inserts reported %d bytes of growth, the table has %d", grown, s.bytes())
			}
		})
	}
}

// random returns a random non-zero value.
func random(rng *rand.Rand, _ int) uint64 {
	for {
		if h := rng.Uint64(); h != 0 {
			return h
		}
	}
}

func TestEmptySetContainsNothing(t *testing.T) {
	t.Parallel()
	var s set
	for _, h := range []uint64{1, 2, ^uint64(0)} {
		if s.contains(h) {
			t.Errorf("contains(%#x) = true in an empty set", h)
		}
	}
}

// Stats.Bytes counts stripes with the size stripeSize: it must be true.
func TestStripeSize(t *testing.T) {
	t.Parallel()
	if got := unsafe.Sizeof(stripe{}); got != stripeSize {
		t.Errorf("unsafe.Sizeof(stripe{}) = %d, want stripeSize = %d", got, stripeSize)
	}
}

// Recording allocates nothing once a page exists, apart from table growth,
// which the test steers clear of.
func TestRecordDoesNotAllocate(t *testing.T) {
	s := New()
	small, large := pageN(t, 1), pageN(t, 2)
	ids := make([]domain.VisitorID, 10000)
	for i := range ids {
		ids[i] = visitorN(t, i)
	}
	record(t, s, small, ids[0])
	// 5000 visitors: past the split at splitVisitors (3178).
	for _, id := range ids[:5000] {
		record(t, s, large, id)
	}
	tests := []struct {
		name string
		page domain.PageURL
		next func(i int) domain.VisitorID
	}{
		{"repeated pair", small, func(int) domain.VisitorID { return ids[0] }},
		{"new pair, small page", small, func(i int) domain.VisitorID { return ids[1+i%4] }},
		{"new pair, striped page", large, func(i int) domain.VisitorID { return ids[5000+i] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := 0
			allocs := testing.AllocsPerRun(4, func() {
				_ = s.Record(context.Background(), domain.PageView{Page: tt.page, Visitor: tt.next(i)})
				i++
			})
			if allocs != 0 {
				t.Errorf("Record allocates %v times per call, want 0", allocs)
			}
		})
	}
}
