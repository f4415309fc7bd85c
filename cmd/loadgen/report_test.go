package main

import (
	"math"
	"testing"
)

func TestSummarize(t *testing.T) {
	t.Parallel()
	wr := workloadResult{Rounds: []roundResult{
		{BareReqPerSec: 1000, TrackerReqPerSec: 500, BareCPUUsPerReq: 10, TrackerCPUUsPerReq: 20},
		{BareReqPerSec: 1000, TrackerReqPerSec: 900, BareCPUUsPerReq: 10, TrackerCPUUsPerReq: 11},
		{BareReqPerSec: 2000, TrackerReqPerSec: 1400, BareCPUUsPerReq: 10, TrackerCPUUsPerReq: 15},
		{BareReqPerSec: 800, TrackerReqPerSec: 80},
	}}
	wr.summarize()
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if got := wr.Rounds[2].ReqPerSecRatio; !near(got, 0.7) {
		t.Errorf("round 3 ratio %v, want tracker ÷ bare = 0.7", got)
	}
	checks := []struct {
		name      string
		got, want float64
	}{
		{"median ratio", wr.MedianRatio, (0.5 + 0.7) / 2},
		{"min ratio", wr.MinRatio, 0.1},
		{"max ratio", wr.MaxRatio, 0.9},
		{"bare median", wr.BareMedianReqPerSec, 1000},
		{"tracker median", wr.TrackerMedianReqPerSec, (500 + 900) / 2},
		// The round without CPU figures is left out, not counted as 0.
		{"median cpu ratio", wr.MedianCPUPerReqRatio, 1.5},
	}
	for _, c := range checks {
		if !near(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestCheckedPages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pairs, pages int64
		want         []int64
	}{
		{1000, 1000, []int64{0, 1, 500, 999}},
		{1003, 1000, []int64{0, 1, 2, 3, 500, 999}},
		{42, 1, []int64{0}},
		{5, 10, []int64{0, 1, 4, 5, 9}},
	}
	for _, tt := range tests {
		got := checkedPages(tt.pairs, tt.pages)
		if len(got) != len(tt.want) {
			t.Errorf("checkedPages(%d, %d) = %v, want %v", tt.pairs, tt.pages, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("checkedPages(%d, %d) = %v, want %v", tt.pairs, tt.pages, got, tt.want)
				break
			}
		}
	}
}

func TestCountRight(t *testing.T) {
	for _, tt := range []struct {
		c    count
		want int64
		ok   bool
	}{
		{count{Visitors: 5000, Exact: true}, 5000, true},
		{count{Visitors: 5001, Exact: true}, 5000, false},
		{count{Visitors: 5100, RelativeError: 0.0073}, 5000, true},  // 2% off: under 4 × 0.73%
		{count{Visitors: 5200, RelativeError: 0.0073}, 5000, false}, // 4% off
		{count{Visitors: 5001, RelativeError: 0}, 5000, false},      // an estimate that claims no error
	} {
		if got := tt.c.right(tt.want); got != tt.ok {
			t.Errorf("%+v.right(%d) = %v, want %v", tt.c, tt.want, got, tt.ok)
		}
	}
}
