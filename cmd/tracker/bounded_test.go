package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/infra/memstore"
)

// count is an answer of GET /api/v1/visitors.
type count struct {
	Visitors      int64   `json:"visitors"`
	Exact         bool    `json:"exact"`
	RelativeError float64 `json:"relative_error"`
}

func (in *instance) count(t *testing.T, page string) count {
	t.Helper()
	status, _, body := in.do(t, "GET", "/api/v1/visitors?url="+url.QueryEscape(page), "", "")
	var c count
	if err := json.Unmarshal([]byte(body), &c); status != http.StatusOK || err != nil {
		t.Fatalf("visitors(%s): %d %s", page, status, body)
	}
	return c
}

// metric reads one unlabelled sample from /metrics.
func (in *instance) metric(t *testing.T, name string) float64 {
	t.Helper()
	_, _, body := in.do(t, "GET", "/metrics", "", "")
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// hot are the pages loadHotAndCold gives perHot visitors each.
var hot = []string{"https://example.com/hot/1", "https://example.com/hot/2"}

const perHot = 6000

// loadHotAndCold sends perHot visitors, v0 to v5999, to each hot page, and
// one to each of as many cold pages, each seen once.
func loadHotAndCold(t *testing.T, in *instance) {
	t.Helper()
	s := newSender(in.base)
	for i := range perHot {
		for _, p := range hot {
			if !s.send(fmt.Sprintf("v%d", i), p) {
				t.Fatalf("event %d on %s not accepted", i, p)
			}
		}
		if !s.send("once", fmt.Sprintf("https://example.com/cold/%d", i)) {
			t.Fatalf("cold event %d not accepted", i)
		}
	}
}

// Over HTTP, under a small limit: a page past a few thousand visitors becomes
// an estimate, said so in its answer, pages seen once are forgotten as needed,
// and the store stays under the limit.
func TestMemoryLimitOverHTTP(t *testing.T) {
	t.Parallel()
	const limit = 256 << 10
	in := start(t, nil, "-memory-limit", strconv.Itoa(limit))
	loadHotAndCold(t, in)
	for _, p := range hot {
		c := in.count(t, p)
		if c.Exact || c.RelativeError != memstore.SketchRelativeError {
			t.Errorf("%s: %+v, want an estimate with relative error %g", p, c, memstore.SketchRelativeError)
		}
		if off := math.Abs(float64(c.Visitors-perHot)) / perHot; off > 3*memstore.SketchRelativeError {
			t.Errorf("%s: %d visitors of %d, %.2f%% off", p, c.Visitors, perHot, 100*off)
		}
	}
	if c := in.count(t, "https://example.com/cold/5999"); !c.Exact || c.Visitors != 1 {
		t.Errorf("the newest cold page: %+v, want 1, exact", c)
	}
	if got := in.metric(t, "tracker_store_bytes"); got > limit {
		t.Errorf("tracker_store_bytes %v, over the limit %d", got, limit)
	}
	if got := in.metric(t, "tracker_store_limit_bytes"); got != limit {
		t.Errorf("tracker_store_limit_bytes %v, want %d", got, limit)
	}
	if conv, ev := in.metric(t, "tracker_store_conversions_total"), in.metric(t, "tracker_store_evictions_total"); conv != 2 || ev == 0 {
		t.Errorf("%v conversions (want 2), %v evictions (want some)", conv, ev)
	}
	if got := in.metric(t, "tracker_pages_estimated"); got != 2 {
		t.Errorf("tracker_pages_estimated %v, want 2", got)
	}
	// The flood of cold pages took even the hot pages' estimated days,
	// before any page went: a range of them is a clear 409, never a wrong
	// count; an exact page still answers its range.
	if got := in.metric(t, "tracker_store_days_given_up_total"); got != 2 {
		t.Errorf("tracker_store_days_given_up_total %v, want 2", got)
	}
	today := time.Now().UTC().Format(time.DateOnly)
	status, _, body := in.do(t, "GET", "/api/v1/visitors?url="+url.QueryEscape(hot[0])+"&from="+today, "", "")
	if status != http.StatusConflict || !strings.Contains(body, "urn:webtracker:problem:days-not-kept") {
		t.Errorf("a range of an estimated page: %d %s, want a 409 days-not-kept problem", status, body)
	}
	status, _, body = in.do(t, "GET", "/api/v1/visitors?url="+url.QueryEscape("https://example.com/cold/5999")+"&from="+today, "", "")
	if status != http.StatusOK || !strings.Contains(body, `"visitors":1,"exact":true`) {
		t.Errorf("a range of an exact page: %d %s, want 1 visitor, exact", status, body)
	}
}

// Over HTTP, under a limit that a page's exact visitors pass but its
// estimated days do not: a range of the page, its daily series and the
// ranking over the range are estimates, said so, close to the truth.
func TestEstimatedRangesOverHTTP(t *testing.T) {
	t.Parallel()
	const visitors = 20000
	in := start(t, nil, "-memory-limit", "384KiB")
	page := "https://example.com/estimated"
	s := newSender(in.base)
	for i := range visitors {
		if !s.send(fmt.Sprintf("v%d", i), page) {
			t.Fatalf("event %d not accepted", i)
		}
	}
	if got := in.metric(t, "tracker_store_conversions_total"); got != 1 {
		t.Fatalf("tracker_store_conversions_total %v, want 1: the test no longer tests estimated days", got)
	}
	near := func(n int64) bool { return math.Abs(float64(n-visitors)) <= 4*memstore.SketchRelativeError*visitors }
	today := time.Now().UTC().Format(time.DateOnly)
	var c count
	status, _, body := in.do(t, "GET", "/api/v1/visitors?url="+url.QueryEscape(page)+"&from="+today+"&to="+today, "", "")
	if err := json.Unmarshal([]byte(body), &c); status != http.StatusOK || err != nil || c.Exact ||
		c.RelativeError != memstore.SketchRelativeError || !near(c.Visitors) {
		t.Errorf("today's visitors: %d %s, want an estimate of about %d", status, body, visitors)
	}
	var daily struct {
		Days []struct {
			Visitors int64 `json:"visitors"`
		} `json:"days"`
		count
	}
	status, _, body = in.do(t, "GET", "/api/v1/visitors/daily?url="+url.QueryEscape(page)+"&from="+today+"&to="+today, "", "")
	if err := json.Unmarshal([]byte(body), &daily); status != http.StatusOK || err != nil || daily.Exact ||
		len(daily.Days) != 1 || !near(daily.Days[0].Visitors) || !near(daily.Visitors) {
		t.Errorf("today's daily series: %d %s, want one day and a total, estimates of about %d", status, body, visitors)
	}
	var ranking struct {
		Pages []struct {
			URL      string `json:"url"`
			Visitors int64  `json:"visitors"`
			Exact    bool   `json:"exact"`
		} `json:"pages"`
	}
	status, _, body = in.do(t, "GET", "/api/v1/pages?from="+today, "", "")
	if err := json.Unmarshal([]byte(body), &ranking); status != http.StatusOK || err != nil || len(ranking.Pages) != 1 ||
		ranking.Pages[0].URL != page || ranking.Pages[0].Exact || !near(ranking.Pages[0].Visitors) {
		t.Errorf("today's ranking: %d %s, want the page, estimated at about %d", status, body, visitors)
	}
}

func TestApproximateCountingOverHTTP(t *testing.T) {
	t.Parallel()
	in := start(t, nil, "-counting", "approximate")
	for i := range 100 {
		if status := in.post(t, fmt.Sprintf("v%d", i%50), "https://example.com/"); status != http.StatusAccepted {
			t.Fatalf("status %d", status)
		}
	}
	// 50 visitors in 8192 registers: nearly each changes one (two meet in a
	// register, and one of them changes nothing, about once in seven runs),
	// so the estimate is within a visitor or two.
	if c := in.count(t, "https://example.com/"); c.Exact || c.Visitors < 48 || c.Visitors > 52 || c.RelativeError != memstore.SketchRelativeError {
		t.Errorf("count %+v, want an estimate of 50", c)
	}
}

func TestPageTTLOverHTTP(t *testing.T) {
	t.Parallel()
	in := start(t, nil, "-page-ttl", "200ms")
	if status := in.post(t, "v", "https://example.com/gone"); status != http.StatusAccepted {
		t.Fatalf("status %d", status)
	}
	if c := in.count(t, "https://example.com/gone"); c.Visitors != 1 {
		t.Fatalf("count right after the event: %+v", c)
	}
	deadline := time.Now().Add(10 * time.Second)
	for in.count(t, "https://example.com/gone").Visitors != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the page is still counted 10s after its last event, with -page-ttl 200ms")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := in.metric(t, "tracker_store_expired_total"); got != 1 {
		t.Errorf("tracker_store_expired_total %v, want 1", got)
	}
}

// With -data-dir, estimated pages are kept across a restart as sketches: the
// same counts, still estimates, and their old visitors, sent again, are not
// counted twice.
func TestMemoryLimitWithDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := []string{"-data-dir", dir, "-memory-limit", "256KiB"}
	in := start(t, nil, args...)
	loadHotAndCold(t, in)
	want := map[string]count{}
	for _, p := range hot {
		if want[p] = in.count(t, p); want[p].Exact {
			t.Fatalf("%s: %+v, want an estimate before the restart", p, want[p])
		}
	}
	in.stop()
	<-in.done
	if in.err != nil {
		t.Fatalf("run: %v", in.err)
	}

	again := start(t, nil, args...)
	for _, p := range hot {
		if got := again.count(t, p); got != want[p] {
			t.Errorf("%s: %+v after the restart, want %+v", p, got, want[p])
		}
	}
	s := newSender(again.base)
	for i := range 500 {
		for _, p := range hot {
			if !s.send(fmt.Sprintf("v%d", i), p) {
				t.Fatalf("event %d on %s not accepted", i, p)
			}
		}
	}
	for _, p := range hot {
		if got := again.count(t, p); got != want[p] {
			t.Errorf("%s: %+v after 500 of its visitors came again, want %+v", p, got, want[p])
		}
	}
}
