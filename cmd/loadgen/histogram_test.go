package main

import (
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	// values returns n durations: the first n-k of a, then k of b.
	values := func(n, k int, a, b time.Duration) []time.Duration {
		var out []time.Duration
		for i := range n {
			if i < n-k {
				out = append(out, a)
			} else {
				out = append(out, b)
			}
		}
		return out
	}
	ramp := func(n int, unit time.Duration) []time.Duration {
		var out []time.Duration
		for i := 1; i <= n; i++ {
			out = append(out, time.Duration(i)*unit)
		}
		return out
	}
	tests := []struct {
		name   string
		values []time.Duration
		q      float64
		want   time.Duration
		exact  bool
	}{
		{"empty", nil, 0.5, 0, true},
		{"small values are exact: p50", ramp(100, 1), 0.5, 50, true},
		{"small values are exact: p99", ramp(100, 1), 0.99, 99, true},
		{"p100 is the max", ramp(100, time.Microsecond), 1, 100 * time.Microsecond, true},
		{"p0 is the min", ramp(100, time.Microsecond), 0, time.Microsecond, true},
		{"p50 of a microsecond ramp", ramp(10000, time.Microsecond), 0.5, 5 * time.Millisecond, false},
		{"p99 of a microsecond ramp", ramp(10000, time.Microsecond), 0.99, 9900 * time.Microsecond, false},
		{"p99 below a rare stall", values(1000, 10, time.Millisecond, time.Second), 0.99, time.Millisecond, false},
		{"p99.9 inside a rare stall", values(1000, 10, time.Millisecond, time.Second), 0.999, time.Second, false},
		{"negative counts as zero", []time.Duration{-5}, 0.5, 0, true},
		{"hours", []time.Duration{3 * time.Hour}, 0.5, 3 * time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var h histogram
			for _, v := range tt.values {
				h.record(v)
			}
			got := h.quantile(tt.q)
			tolerance := time.Duration(0)
			if !tt.exact {
				tolerance = tt.want / (2 * histSub)
			}
			if diff := got - tt.want; diff < -tolerance || diff > tolerance {
				t.Errorf("quantile(%v) = %v, want %v ± %v", tt.q, got, tt.want, tolerance)
			}
		})
	}
}

func TestHistogramMerge(t *testing.T) {
	t.Parallel()
	var a, b, all histogram
	for i := 1; i <= 1000; i++ {
		d := time.Duration(i*i) * time.Nanosecond
		all.record(d)
		if i%3 == 0 {
			a.record(d)
		} else {
			b.record(d)
		}
	}
	var merged histogram
	merged.merge(&a)
	merged.merge(&b)
	merged.merge(&histogram{})
	if merged != all {
		t.Fatalf("merged histogram differs from one fed every value: n %d/%d, min %d/%d, max %d/%d",
			merged.n, all.n, merged.min, all.min, merged.max, all.max)
	}
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 1} {
		if merged.quantile(q) != all.quantile(q) {
			t.Errorf("quantile(%v): merged %v, direct %v", q, merged.quantile(q), all.quantile(q))
		}
	}
}

// TestBuckets checks that buckets tile the values without gap or overlap
// and that each is narrower than 1/histSub of its values.
func TestBuckets(t *testing.T) {
	t.Parallel()
	next := int64(0)
	for i := range histBuckets {
		lo, hi := bucketBounds(i)
		if lo != next || hi < lo {
			t.Fatalf("bucket %d is [%d, %d], want it to start at %d", i, lo, hi, next)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d is [%d, %d], but its ends map to %d and %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if width := hi - lo + 1; width > 1 && width*histSub > lo {
			t.Fatalf("bucket %d is [%d, %d]: wider than 1/%d of its values", i, lo, hi, histSub)
		}
		next = hi + 1
	}
	if next != -1<<63 {
		t.Errorf("the last bucket ends at %d, want the largest int64", next-1)
	}
}

func TestHistogramRecordAllocs(t *testing.T) {
	// Not parallel: AllocsPerRun counts the allocations of the whole process.
	h := new(histogram)
	if allocs := testing.AllocsPerRun(100, func() { h.record(1234 * time.Microsecond) }); allocs != 0 {
		t.Errorf("%v allocations per record, want 0", allocs)
	}
}
