package domain

import (
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The hashes are persisted, so these values are fixed forever: if this test
// fails, the function changed and every stored hash with it. Fix the
// function, never the table.
func TestVisitorIDHashGolden(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   string
		want uint64
	}{
		{"a", 0xb88b502a8e217ec6},
		{"visitor-1", 0xa7021031433ab4f2},
		{"visitor-2", 0xfaf002dd191a3d39},
		{"0123456789abcdef", 0x41b9150790ce0fee},
		{"f47ac10b-58cc-4372-a567-0e02b2c3d479", 0xc14499984c84d867},
		{"ü-visiteur", 0x0b86e2e4ea99615e},
		{strings.Repeat("a", 104), 0x2e4300adabfcd7bf},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.id), func(t *testing.T) {
			t.Parallel()
			id, err := ParseVisitorID(tt.id)
			if err != nil {
				t.Fatalf("ParseVisitorID(%q): %v", tt.id, err)
			}
			if got := id.Hash(); got != tt.want {
				t.Errorf("VisitorID(%q).Hash() = %#016x, want %#016x", tt.id, got, tt.want)
			}
		})
	}
}

// The core must be wyhash final 3 exactly: these are the reference test
// vectors published with it (test_vector.cpp), where the seed is the index.
func TestWyhashReferenceVectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		seed uint64
		want uint64
	}{
		{"", 0, 0x42bc986dc5eec4d3},
		{"a", 1, 0x84508dc903c31551},
		{"abc", 2, 0x0bc54887cfc9ecb1},
		{"message digest", 3, 0x6e2ff3298208a67c},
		{"abcdefghijklmnopqrstuvwxyz", 4, 0x9a64e42e897195b9},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 5, 0x9199383239c32554},
		{strings.Repeat("1234567890", 8), 6, 0x7c1ccf6bba30f5a5},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(len(tt.in)), func(t *testing.T) {
			t.Parallel()
			if got := wyhash(tt.in, tt.seed); got != tt.want {
				t.Errorf("wyhash(%q, %d) = %#016x, want %#016x", tt.in, tt.seed, got, tt.want)
			}
		})
	}
}

func TestNonZero(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   uint64
		want uint64
	}{
		{"zero is replaced", 0, zeroHash},
		{"one is kept", 1, 1},
		{"max is kept", ^uint64(0), ^uint64(0)},
		{"zeroHash is kept", zeroHash, zeroHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := nonZero(tt.in); got != tt.want {
				t.Errorf("nonZero(%#x) = %#x, want %#x", tt.in, got, tt.want)
			}
		})
	}
	if zeroHash == 0 {
		t.Error("zeroHash is 0")
	}
}

// Every length takes its own path through the byte reads (1-3, 4-16, 17-48,
// above 48); prefixes of one string catch a path that ignores some bytes.
func TestVisitorIDHashAllLengthsDiffer(t *testing.T) {
	t.Parallel()
	const longest = 64
	for _, base := range []string{
		strings.Repeat("a", longest),
		strings.Repeat("\x00", longest),
		"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_",
	} {
		seen := make(map[uint64]int, longest+1)
		for n := 0; n <= longest; n++ {
			h := hashID(base[:n])
			if h == 0 {
				t.Errorf("Hash(%q) = 0", base[:n])
			}
			if m, dup := seen[h]; dup {
				t.Errorf("Hash(%q) = Hash(%q) = %#x", base[:n], base[:m], h)
			}
			seen[h] = n
		}
	}
}

// Changing any single byte must change the hash, at every position and
// length: a byte the reads skip would show up here.
func TestVisitorIDHashEveryByteCounts(t *testing.T) {
	t.Parallel()
	for n := 1; n <= 100; n++ {
		b := []byte(strings.Repeat("v", n))
		h := hashID(string(b))
		for i := range b {
			b[i] = 'w'
			if hashID(string(b)) == h {
				t.Errorf("len %d: changing byte %d leaves the hash unchanged", n, i)
			}
			b[i] = 'v'
		}
	}
}

func TestVisitorIDHashNoCollisions(t *testing.T) {
	t.Parallel()
	const n = 1_000_000
	// A sorted slice rather than a map: the race detector makes a million
	// map inserts take many seconds.
	hashes := make([]uint64, n)
	buf := make([]byte, 0, 32)
	for i := range n {
		buf = strconv.AppendInt(append(buf[:0], "visitor-"...), int64(i), 10)
		hashes[i] = hashID(string(buf))
	}
	slices.Sort(hashes)
	for i := 1; i < n; i++ {
		if hashes[i] == hashes[i-1] {
			t.Fatalf("two of visitor-0 … visitor-%d hash to %#x", n-1, hashes[i])
		}
	}
}

// Each output bit must be set in about half of the hashes of similar ids,
// since stores take slot indexes and stripes straight from them.
func TestVisitorIDHashBitBalance(t *testing.T) {
	t.Parallel()
	const n = 200_000
	var ones [64]int
	buf := make([]byte, 0, 32)
	for i := range n {
		buf = strconv.AppendInt(append(buf[:0], "visitor-"...), int64(i), 10)
		h := hashID(string(buf))
		for b := range ones {
			ones[b] += int(h >> b & 1)
		}
	}
	// One standard deviation is sqrt(n)/2 ≈ 0.11% of n: 1% is 9 of them.
	for b, c := range ones {
		if f := float64(c) / n; f < 0.49 || f > 0.51 {
			t.Errorf("bit %d is set in %.2f%% of hashes, want 50±1%%", b, 100*f)
		}
	}
}

// Flipping any one input bit must flip each output bit with probability
// about 1/2 (the strict avalanche criterion), at the lengths ids have.
func TestVisitorIDHashAvalanche(t *testing.T) {
	t.Parallel()
	const samples = 1000
	for _, size := range []int{3, 8, 13, 16, 24, 36, 48, 64} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(1, uint64(size))) // fixed: the test is deterministic
			flips := make([][64]int, size*8)
			in := make([]byte, size)
			for range samples {
				for i := range in {
					in[i] = byte(rng.Uint32())
				}
				h := hashID(string(in))
				for bit := range flips {
					in[bit/8] ^= 1 << (bit % 8)
					d := h ^ hashID(string(in))
					in[bit/8] ^= 1 << (bit % 8)
					for d != 0 {
						flips[bit][bits.TrailingZeros64(d)]++
						d &= d - 1
					}
				}
			}
			// One standard deviation is sqrt(samples)/2 ≈ 1.6%: 10% is 6 of them.
			worst := 0.0
			for inBit, outs := range flips {
				for out, c := range outs {
					bias := float64(c)/samples - 0.5
					worst = max(worst, bias, -bias)
					if bias < -0.1 || bias > 0.1 {
						t.Errorf("input bit %d flips output bit %d in %.1f%% of cases, want 50±10%%",
							inBit, out, 100*float64(c)/samples)
					}
				}
			}
			t.Logf("worst bias %.1f%%", 100*worst)
		})
	}
}

func TestVisitorIDHashDoesNotAllocate(t *testing.T) {
	id := []byte("f47ac10b-58cc-4372-a567-0e02b2c3d479")
	var sink uint64
	if n := testing.AllocsPerRun(100, func() { sink ^= hashID(id) }); n != 0 {
		t.Errorf("Hash allocates %v times per call, want 0", n)
	}
	_ = sink
}

func BenchmarkVisitorIDHash(b *testing.B) {
	for _, size := range []int{8, 16, 24, 36, 64} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			id := []byte(strings.Repeat("v", size))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var sink uint64
			for b.Loop() {
				sink ^= hashID(id)
			}
			_ = sink
		})
	}
}
