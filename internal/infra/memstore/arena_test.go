package memstore

import (
	"math/rand/v2"
	"testing"
)

// Tables from an arena come zeroed, and keep what is written in them until
// they are freed, whatever the order of allocs and frees: so no two live
// tables overlap. The sizes are those sets use, up to past soloSize.
func TestArenaTables(t *testing.T) {
	t.Parallel()
	var sizes []int
	for s := minSlots; s <= 100_000; s = nextSize(s) {
		sizes = append(sizes, s)
	}
	a := newArena()
	rng := rand.New(rand.NewPCG(3, 4))
	type table struct {
		slots []uint64
		mark  uint64
	}
	check := func(tb table) {
		t.Helper()
		for j, v := range tb.slots {
			if v != tb.mark+uint64(j) {
				t.Fatalf("table %#x of %d slots: slot %d = %#x, want %#x", tb.mark, len(tb.slots), j, v, tb.mark+uint64(j))
			}
		}
	}
	var live []table
	alloc := func(i, size int) {
		tb := table{a.alloc(size), uint64(i+1) << 32}
		for j, v := range tb.slots {
			if v != 0 {
				t.Fatalf("new table of %d slots: slot %d = %#x, want 0", size, j, v)
			}
			tb.slots[j] = tb.mark + uint64(j)
		}
		live = append(live, tb)
	}
	for i := range 3000 {
		if len(live) > 0 && rng.IntN(2) == 0 {
			k := rng.IntN(len(live))
			check(live[k])
			a.free(live[k].slots)
			live[k] = live[len(live)-1]
			live = live[:len(live)-1]
			continue
		}
		// Mostly small tables, as most pages are.
		alloc(i, sizes[min(rng.IntN(len(sizes)), rng.IntN(len(sizes)))])
	}
	alloc(-1, 3<<20) // 24 MB: past soloSize, with a mapping of its own
	for _, tb := range live {
		check(tb)
		a.free(tb.slots)
	}
}

// Freeing a page gives back its tables, and a writer that still held it
// can go on, harmlessly.
func TestPageFree(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 100, 5000} {
		s := New()
		page := pageN(t, 1)
		for i := range n {
			record(t, s, page, visitorN(t, i))
		}
		key := page.String()
		p := s.shardOf(key).pages[key]
		want := s.Stats().Bytes - keepingBytes(key)
		if got := p.free(s.arena); got != want {
			t.Errorf("%d visitors: free() = %d bytes, want %d", n, got, want)
		}
		if got := p.free(s.arena); got != 0 {
			t.Errorf("%d visitors: free() again = %d bytes, want 0", n, got)
		}
		// A late writer, which found the page before it was removed: it
		// adds nothing, neither a visitor nor a byte, to a page that is gone.
		for i := range 100 {
			if added, grown := p.add(visitorN(t, n+i).Hash(), visitorN(t, n+i).Hash()); added != 0 || grown != 0 {
				t.Fatalf("%d visitors: add to a freed page = %d visitors, %d bytes; want none", n, added, grown)
			}
		}
	}
}
