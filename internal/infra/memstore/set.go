package memstore

// set is a set of non-zero 64-bit hashes: open addressing with linear
// probing over a power-of-two table, where 0 marks an empty slot. It holds
// no pointers, so the garbage collector never scans its table.
//
// The hashes come from domain.VisitorID.Hash, which is already well mixed,
// so the low bits index the table directly, with no further hashing.
//
// A set is not safe for concurrent use; its owner locks it.
type set struct {
	slots []uint64
	n     int // values held
}

const (
	// minSlots is the capacity of a set's first table: 64 bytes, one cache
	// line, room for 6 visitors.
	minSlots = 8
	// A set grows once it is 3/4 full. Linear probing then costs about 2.5
	// probes for a hit and 8.5 for a miss at worst, still within one or two
	// cache lines since the probes are adjacent; a fuller table would save
	// memory but make misses (new visitors) slower.
	loadNum, loadDen = 3, 4
)

// insert adds h, which must not be 0, and reports whether it was new and
// by how many bytes the table grew. Only a new value can grow the table.
func (s *set) insert(h uint64) (added bool, grown int64) {
	i, found := s.find(h)
	if found {
		return false, 0
	}
	if s.full() {
		grown = s.grow()
		i, _ = s.find(h)
	}
	s.slots[i] = h
	s.n++
	return true, grown
}

// contains reports whether h is in the set.
func (s *set) contains(h uint64) bool {
	_, found := s.find(h)
	return found
}

// find returns the slot of h if it is in the set, else the empty slot where
// it would go (meaningless in a set without a table).
func (s *set) find(h uint64) (i uint64, found bool) {
	if len(s.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(s.slots) - 1)
	for i = h & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case h:
			return i, true
		case 0:
			return i, false
		}
	}
}

// full reports whether the next insert would grow the table.
func (s *set) full() bool { return s.n >= len(s.slots)*loadNum/loadDen }

// bytes returns the size of the table.
func (s *set) bytes() int64 { return int64(len(s.slots)) * 8 }

// grow doubles the table (or makes the first one) and reinserts every value;
// it returns the bytes added.
func (s *set) grow() int64 {
	old := s.slots
	s.slots = make([]uint64, max(minSlots, 2*len(old)))
	mask := uint64(len(s.slots) - 1)
	for _, h := range old {
		if h == 0 {
			continue
		}
		i := h & mask
		for s.slots[i] != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = h
	}
	return int64(len(s.slots)-len(old)) * 8
}

// sizeFor returns the table size a set reaches by inserting n values.
func sizeFor(n int) int {
	slots := minSlots
	for n > slots*loadNum/loadDen {
		slots *= 2
	}
	return slots
}
