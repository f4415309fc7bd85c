package main

import (
	"math"
	"math/bits"
	"time"
)

// The histogram is log-linear: values below 2·histSub nanoseconds have a
// bucket each, then every power of two is cut into histSub buckets, so a
// value read back is off by less than 1/histSub (1.6%) at any magnitude,
// from nanoseconds to minutes, in a fixed array that never allocates.
const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histBuckets = (64 - histSubBits) * histSub
)

// histogram counts durations. Each connection records into its own and the
// phase merges them at the end, so that recording needs no lock or atomic.
type histogram struct {
	counts   [histBuckets]int64
	n        int64
	min, max int64
}

// record counts one duration; a negative one counts as zero.
func (h *histogram) record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	h.max = max(h.max, v)
	h.n++
}

// merge adds the counts of o to h.
func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
}

// quantile returns the smallest duration that at least q (0 to 1) of the
// recorded ones do not exceed, to the bucket's precision; 0 if empty.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := min(max(int64(math.Ceil(q*float64(h.n))), 1), h.n)
	// The smallest and largest values are kept exactly.
	switch rank {
	case 1:
		return time.Duration(h.min)
	case h.n:
		return time.Duration(h.max)
	}
	var seen int64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			lo, hi := bucketBounds(i)
			// The middle of the bucket halves the worst error.
			return time.Duration(min(max(lo+(hi-lo)/2, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// bucketOf returns the bucket of a non-negative value.
func bucketOf(v int64) int {
	if v < 2*histSub {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - histSubBits - 1
	return shift<<histSubBits + int(v>>shift)
}

// bucketBounds returns the smallest and largest values of bucket i.
func bucketBounds(i int) (lo, hi int64) {
	if i < 2*histSub {
		return int64(i), int64(i)
	}
	shift := i>>histSubBits - 1
	mantissa := int64(i - shift<<histSubBits)
	return mantissa << shift, (mantissa+1)<<shift - 1
}
