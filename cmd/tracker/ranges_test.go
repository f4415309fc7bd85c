package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestReadmeTimeRanges runs the curl lines of the README's Time ranges
// block against a fresh tracker and compares the answers. The block's dates
// are fixed, so the tracker keeps ten years of days: the answers stay as
// printed after the default retention would have dropped them.
func TestReadmeTimeRanges(t *testing.T) {
	t.Parallel()
	examples := readmeExamples(readmeBlock(t, "## Time ranges"))
	if len(examples) < 8 {
		t.Fatalf("found %d curl examples in the README's Time ranges, want at least 8", len(examples))
	}
	in := start(t, nil, "-retention", "3660d")
	for _, ex := range examples {
		ex.check(t, in.client, map[string]string{"localhost:8080": strings.TrimPrefix(in.base, "http://")})
	}
}

// TestRangesOverHTTP: the time dimension through the real server: events
// with and without time, every bad input of the contract answered 400 and
// never counted, and the daily series agreeing with the range.
func TestRangesOverHTTP(t *testing.T) {
	t.Parallel()
	in := start(t, nil)
	today := time.Now().UTC()
	yesterday := today.AddDate(0, 0, -1)
	page := "https://example.com/ranges"
	post := func(body string) (int, string) {
		status, _, b := in.do(t, "POST", "/api/v1/events", "application/json", body)
		return status, b
	}
	event := func(visitor, at string) string {
		ev := map[string]string{"visitor_id": visitor, "url": page}
		if at != "" {
			ev["time"] = at
		}
		b, _ := json.Marshal(ev)
		return string(b)
	}
	for _, ev := range []string{
		event("v1", ""), // now
		event("v1", yesterday.Format(time.RFC3339)),
		event("v2", yesterday.Format(time.RFC3339)),
	} {
		if status, body := post(ev); status != http.StatusAccepted {
			t.Fatalf("POST %s: %d %s", ev, status, body)
		}
	}
	for _, tc := range []struct{ name, body, field string }{
		{"future", event("bad", today.Add(10*time.Minute).Format(time.RFC3339)), "time"},
		{"too old", event("bad", today.AddDate(-2, 0, 0).Format(time.RFC3339)), "time"},
		{"not RFC 3339", event("bad", today.Format(time.DateTime)), "time"},
		{"a number", `{"visitor_id":"bad","url":"` + page + `","time":1764581400}`, "time"},
		{"null", `{"visitor_id":"bad","url":"` + page + `","time":null}`, "time"},
	} {
		status, body := post(tc.body)
		if status != http.StatusBadRequest || !strings.Contains(body, `"field":"`+tc.field+`"`) ||
			!strings.Contains(body, "urn:webtracker:problem:validation") {
			t.Errorf("%s: %d %s, want a 400 validation problem naming %s", tc.name, status, body, tc.field)
		}
	}
	q := "url=" + url.QueryEscape(page)
	from, to := yesterday.Format(time.DateOnly), today.Format(time.DateOnly)
	var daily struct {
		Visitors int64
		Days     []struct {
			Date     string
			Visitors int64
		}
	}
	status, _, body := in.do(t, "GET", "/api/v1/visitors/daily?"+q+"&from="+from+"&to="+to, "", "")
	if err := json.Unmarshal([]byte(body), &daily); status != 200 || err != nil {
		t.Fatalf("daily: %d %s", status, body)
	}
	if daily.Visitors != 2 || len(daily.Days) != 2 || daily.Days[0].Date != from || daily.Days[0].Visitors != 2 ||
		daily.Days[1].Visitors != 1 {
		t.Errorf("daily = %+v, want 2 visitors in all, 2 yesterday and 1 today (bad events not counted)", daily)
	}
	if c := in.count(t, page); c.Visitors != 2 {
		t.Errorf("all-time: %d visitors, want 2", c.Visitors)
	}
	for _, tc := range []struct{ name, path, field string }{
		{"from after to", "/api/v1/visitors?" + q + "&from=" + to + "&to=" + from, "from"},
		{"bad date", "/api/v1/visitors?" + q + "&from=2026-02-30", "from"},
		{"bad zone", "/api/v1/visitors?" + q + "&from=" + from + "&tz=Moon/Base", "tz"},
		{"longer than the retention", "/api/v1/visitors?" + q + "&from=" + from + "&to=" + today.AddDate(2, 0, 0).Format(time.DateOnly), "to"},
		{"daily of 367 days", "/api/v1/visitors/daily?" + q + "&from=" + today.AddDate(0, 0, -366).Format(time.DateOnly) + "&to=" + to, "to"},
		{"pages, bad zone", "/api/v1/pages?from=" + from + "&tz=Nowhere", "tz"},
	} {
		status, _, body := in.do(t, "GET", tc.path, "", "")
		if status != http.StatusBadRequest || !strings.Contains(body, `"field":"`+tc.field+`"`) {
			t.Errorf("%s: %d %s, want a 400 naming %s", tc.name, status, body, tc.field)
		}
	}
}
