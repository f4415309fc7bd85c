package memstore

import "testing"

// Table sizes grow by about a quarter, in whole cache lines, and the split
// happens at one of them, so that no page grows its table just before it.
func TestTableSizes(t *testing.T) {
	t.Parallel()
	for size := minSlots; size < 1<<24; size = nextSize(size) {
		next := nextSize(size)
		if next%lineSlots != 0 || next <= size || next > size+size/growDiv+lineSlots {
			t.Fatalf("nextSize(%d) = %d: want a multiple of %d above %d, at most %d",
				size, next, lineSlots, size, size+size/growDiv+lineSlots)
		}
		if got := sizeFor(maxLoad(size)); got != size {
			t.Fatalf("sizeFor(%d) = %d, want %d", maxLoad(size), got, size)
		}
	}
	if got := sizeFor(splitVisitors); got != splitSlots {
		t.Errorf("sizeFor(splitVisitors) = %d, want splitSlots = %d: not a table size", got, splitSlots)
	}
}
