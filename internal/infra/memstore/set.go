package memstore

import "math/bits"

// set is a set of non-zero 64-bit hashes: open addressing with linear
// probing, where 0 marks an empty slot. Its table holds no pointers, and
// comes from an arena, off the Go heap (see arena), so the garbage collector
// neither scans it nor counts it.
//
// The hashes come from domain.VisitorID.Hash, which is already well mixed,
// so a hash picks its home slot directly, by Lemire's multiply-shift
// (hash·size)/2^64: from the top bits, for any table size. Tables can then
// grow by a quarter instead of doubling, which keeps them fuller (see
// growDiv); and since the home slot rises with the hash, a table is nearly
// sorted, so a grow writes the new table almost in order.
//
// A set is not safe for concurrent use; its owner locks it.
type set struct {
	slots []uint64
	n     int // values held
	// arena provides slots, and takes it back on grow. nil means the Go
	// heap. While the set is reachable, so is the arena, which keeps its
	// mappings, and so slots, alive.
	arena *arena
}

const (
	// minSlots is the capacity of a set's first table: 64 bytes, one cache
	// line, room for 7 visitors.
	minSlots = 8
	// lineSlots is the number of slots in a cache line: tables are whole
	// lines, so that an arena's blocks stay aligned to them.
	lineSlots = 8
	// A set grows once it is 7/8 full. Linear probing then costs about 4.5
	// probes for a hit and 32 for a miss at worst; a table is that full only
	// just before it grows, by a quarter, to 70% full (2.2 and 6 probes), so
	// a new visitor costs about 13 probes on average, 2.5 cache lines read
	// in order, and a known one about 3. (Doubling at 3/4 full, as this
	// store did, cost 3.7 probes, 1.3 lines, for 15.4 bytes a value on
	// average.) At 13/16 it would be 8 probes, 1.9 lines, for 11 bytes; at
	// 3/4, 5.4 probes, 1.6 lines, for 12. The benchmarks show no clear
	// difference in speed between the three, even with the tables out of
	// the caches, where one miss to memory dominates; the memory is plain.
	loadNum, loadDen = 7, 8
	// A table grows by 1/growDiv of its size, rounded up to whole cache
	// lines, so it holds 8/(7/8)·(1+1/growDiv) = 11.4 bytes per value right
	// after a grow, and 10.2 on average over the sizes of a page. Doubling
	// would cost 18.3 and 13.2; growing by half, 13.7 and 11.3. Each value is
	// copied about growDiv times over the growth of its table: cheap, since
	// the copy runs almost in order, and the arena reuses the old table's
	// memory at once, so no garbage piles up.
	growDiv = 4
)

// insert adds h, which must not be 0, and reports whether it was new and
// by how many bytes the table grew. Only a new value can grow the table.
func (s *set) insert(h uint64) (added bool, grown int64) {
	i, found := s.find(h)
	if found {
		return false, 0
	}
	if s.full() {
		grown = s.grow(nextSize(len(s.slots)))
		i, _ = s.find(h)
	}
	s.slots[i] = h
	s.n++
	return true, grown
}

// remove deletes h, if the set has it, and reports whether it did. The
// table keeps its size. The values after h in its probe run that may sit
// in its slot move back (backward-shift deletion), so that every value stays
// reachable from its home without tombstones.
func (s *set) remove(h uint64) bool {
	i, found := s.find(h)
	if !found {
		return false
	}
	slots := s.slots
	for j := i; ; {
		if j++; j == len(slots) {
			j = 0
		}
		if slots[j] == 0 {
			break
		}
		// slots[j] may fill the hole at i unless its home lies after i,
		// up to j, going round.
		k := home(slots[j], len(slots))
		if i <= j && (k <= i || k > j) || i > j && k <= i && k > j {
			slots[i] = slots[j]
			i = j
		}
	}
	slots[i] = 0
	s.n--
	return true
}

// contains reports whether h is in the set.
func (s *set) contains(h uint64) bool {
	_, found := s.find(h)
	return found
}

// find returns the slot of h if it is in the set, else the empty slot where
// it would go (meaningless in a set without a table).
func (s *set) find(h uint64) (i int, found bool) {
	slots := s.slots
	if len(slots) == 0 {
		return 0, false
	}
	for i = home(h, len(slots)); ; {
		switch slots[i] {
		case h:
			return i, true
		case 0:
			return i, false
		}
		if i++; i == len(slots) {
			i = 0
		}
	}
}

// home returns the first slot to probe for h in a table of size slots.
func home(h uint64, size int) int {
	hi, _ := bits.Mul64(h, uint64(size))
	return int(hi)
}

// full reports whether the next insert would grow the table.
func (s *set) full() bool { return s.n >= maxLoad(len(s.slots)) }

// bytes returns the size of the table.
func (s *set) bytes() int64 { return int64(len(s.slots)) * 8 }

// grow moves the values to a new table of size slots, which must hold them,
// returns the old table to the arena and reports the bytes added.
func (s *set) grow(size int) int64 {
	old := s.slots
	s.slots = s.arena.alloc(size)
	for _, h := range old {
		if h != 0 {
			s.place(h)
		}
	}
	if old != nil {
		s.arena.free(old)
	}
	return int64(len(s.slots)-len(old)) * 8
}

// place puts h, which is not in the set, in the first empty slot from its
// home, without counting it.
func (s *set) place(h uint64) {
	slots := s.slots
	i := home(h, len(slots))
	for slots[i] != 0 {
		if i++; i == len(slots) {
			i = 0
		}
	}
	slots[i] = h
}

// release returns the table to the arena, empties the set and reports the
// bytes it held. A released set takes no more inserts: its page has moved
// its visitors elsewhere (stripes, a sketch) or is removed, and writers
// check which under the set's lock.
func (s *set) release() int64 {
	b := s.bytes()
	if s.slots != nil {
		s.arena.free(s.slots)
	}
	*s = set{}
	return b
}

// maxLoad returns the most values a table of size slots holds before it
// grows.
func maxLoad(slots int) int { return slots * loadNum / loadDen }

// nextSize returns the size of the table that follows one of size slots: a
// quarter more, in whole cache lines, and minSlots after none.
func nextSize(slots int) int {
	if slots == 0 {
		return minSlots
	}
	return (slots + slots/growDiv + lineSlots - 1) / lineSlots * lineSlots
}

// sizeFor returns the table size a set reaches by inserting n values.
func sizeFor(n int) int {
	slots := minSlots
	for n > maxLoad(slots) {
		slots = nextSize(slots)
	}
	return slots
}
