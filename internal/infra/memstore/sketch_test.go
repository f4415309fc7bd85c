package memstore

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestNextRegister(t *testing.T) {
	t.Parallel()
	reg := func(u, f1, f2 uint64) uint64 { return u<<2 | f1<<1 | f2 }
	tests := []struct {
		name    string
		r, k    uint64
		want    uint64
		changes bool
	}{
		{"empty takes any value", 0, 5, reg(5, 0, 0), true},
		{"the same value changes nothing", reg(5, 0, 0), 5, reg(5, 0, 0), false},
		{"u-1 is remembered", reg(5, 0, 0), 4, reg(5, 1, 0), true},
		{"u-2 is remembered", reg(5, 0, 0), 3, reg(5, 0, 1), true},
		{"below u-2 is forgotten", reg(5, 0, 0), 2, reg(5, 0, 0), false},
		{"u-1 seen twice changes nothing", reg(5, 1, 0), 4, reg(5, 1, 0), false},
		{"one up keeps u as u-1, u-1 as u-2", reg(5, 1, 0), 6, reg(6, 1, 1), true},
		{"one up from u alone", reg(5, 0, 0), 6, reg(6, 1, 0), true},
		{"two up keeps u as u-2", reg(5, 1, 1), 7, reg(7, 0, 1), true},
		{"three up forgets all", reg(5, 1, 1), 8, reg(8, 0, 0), true},
		{"the largest value", reg(50, 0, 0), maxUpdate, reg(maxUpdate, 0, 1), true},
	}
	for _, tt := range tests {
		got := nextRegister(tt.r, tt.k)
		if got != tt.want || (got != tt.r) != tt.changes {
			t.Errorf("%s: nextRegister(%#b, %d) = %#b, want %#b", tt.name, tt.r, tt.k, got, tt.want)
		}
	}
}

// TestChangeProbability checks μ against its definition: the share of all
// possible update values that change a register, computed by enumeration.
func TestChangeProbability(t *testing.T) {
	t.Parallel()
	prob := func(k uint64) float64 { // P(update value = k)
		if k == maxUpdate {
			return math.Ldexp(1, -(maxUpdate - 1))
		}
		return math.Ldexp(1, -int(k))
	}
	for u := uint64(0); u <= maxUpdate; u++ {
		for flags := uint64(0); flags < 4; flags++ {
			r := u<<2 | flags
			if u == 0 && flags != 0 {
				continue
			}
			want := 0.0
			for k := uint64(1); k <= maxUpdate; k++ {
				if nextRegister(r, k) != r {
					want += prob(k)
				}
			}
			if got := changeProbability(r); math.Abs(got-want) > 1e-18 {
				t.Errorf("changeProbability(u=%d, flags=%02b) = %g, want %g", u, flags, got, want)
			}
		}
	}
}

func TestSketchCountsSmallSetsClosely(t *testing.T) {
	t.Parallel()
	a := newArena()
	s := newSketch(a)
	rng := rand.New(rand.NewPCG(1, 2))
	values := make([]uint64, 1000)
	for i := range values {
		values[i] = rng.Uint64()
		s.add(values[i])
	}
	// Far fewer values than registers: nearly every one changes a register
	// while μ is near 1, so the estimate is within a few percent: its
	// standard deviation is about 5 at 1000 values (measured over 3000
	// sketches), and the bounds are 4 of it, since each sketch's key is
	// random (the bounds were 2 of it, which failed one run in 60).
	if got := s.count(); got < 980 || got > 1020 {
		t.Errorf("1000 distinct values: estimate %d", got)
	}
	for _, v := range values {
		if s.add(v) {
			t.Fatalf("adding %#x again changed the sketch", v)
		}
	}
	if got := s.count(); got < 980 || got > 1020 {
		t.Errorf("after every value again: estimate %d", got)
	}
	if s.release(a) != sketchBytes || s.regs != nil {
		t.Error("release did not give the registers back")
	}
	if n := s.release(a); n != 0 {
		t.Errorf("release again = %d bytes, want 0", n)
	}
}

// TestSketchError measures the relative standard error of the estimate over
// 1000 sketches of n random values each, against the martingale estimator's
// theory, 0.658/√m, and its bias against zero.
func TestSketchError(t *testing.T) {
	if raceEnabled {
		t.Skip("2·10⁸ adds: run by make test's pass without the race detector")
	}
	t.Parallel()
	const (
		trials = 1000
		n      = 200_000 // 24 times the registers: the error is near its asymptote
	)
	a := newArena()
	var sum, sumSq float64
	for trial := range trials {
		rng := rand.New(rand.NewPCG(uint64(trial), 42))
		s := newSketch(a)
		for range n {
			s.add(rng.Uint64())
		}
		e := (s.estimate - n) / n
		sum += e
		sumSq += e * e
		s.release(a)
	}
	mean := sum / trials
	rse := math.Sqrt(sumSq / trials)
	theory := SketchRelativeError
	t.Logf("%d sketches of %d values: relative standard error %.4f%% (theory %.4f%%), mean relative error %+.4f%%",
		trials, n, 100*rse, 100*theory, 100*mean)
	// With 1000 trials the measured error is within about 2.2% of the true
	// one (one standard deviation); these bounds are more than four of them.
	if rse > 1.10*theory || rse < 0.90*theory {
		t.Errorf("relative standard error %.4f%%, theory %.4f%%", 100*rse, 100*theory)
	}
	if rse > 0.008 {
		t.Errorf("relative standard error %.4f%% is above the 0.8%% promised", 100*rse)
	}
	// The estimator is unbiased: the mean error is within 4 standard
	// errors of the mean of 0.
	if math.Abs(mean) > 4*theory/math.Sqrt(trials) {
		t.Errorf("mean relative error %+.4f%%: biased", 100*mean)
	}
}
