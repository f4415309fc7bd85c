package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// artifactDir is where browser tests leave what a person may want to look
// at (a screenshot of the dashboard); it is ignored by git.
const artifactDir = "../../test-artifacts"

// chromium returns the path of a Chromium or Chrome, or skips the test
// loudly; in CI (CI set, as .ci/run does) a missing browser fails it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium on PATH: the browser tests need it (apt-get install chromium)"
	if os.Getenv("CI") != "" {
		t.Fatalf("%s; in CI this is a failure", msg)
	}
	fmt.Fprintf(os.Stderr, "\n*** SKIPPING %s: %s ***\n\n", t.Name(), msg)
	t.Skip(msg)
	return ""
}

// newBrowser starts a headless browser for the test, stopped when it ends
// or after a minute.
func newBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	alloc, cancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1100, 900),
		chromedp.Flag("disable-gpu", true))...)
	t.Cleanup(cancel)
	browser, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(browser); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", path, err)
	}
	return browser
}

// waitUntil evaluates expr, a JavaScript expression giving a string, in the
// tab until ok accepts its value, and returns "", or after ten seconds the
// last value (or error) it had.
func waitUntil(tab context.Context, expr string, ok func(string) bool) string {
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := chromedp.Run(tab, chromedp.Evaluate[string](expr))
		if err == nil && ok(got) {
			return ""
		}
		if time.Now().After(deadline) {
			if err != nil {
				return err.Error()
			}
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot saves the whole page of the tab as name in artifactDir.
func screenshot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err == nil {
		err = os.MkdirAll(artifactDir, 0o755)
	}
	shot := filepath.Join(artifactDir, name)
	if err == nil {
		err = os.WriteFile(shot, png, 0o644)
	}
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	abs, _ := filepath.Abs(shot)
	t.Logf("screenshot: %s", abs)
}

// noOverflow checks that nothing on the page sticks out sideways.
func noOverflow(t *testing.T, tab context.Context) {
	t.Helper()
	width, err := chromedp.Run(tab, chromedp.Evaluate[int](`window.innerWidth`))
	overflow, err2 := chromedp.Run(tab, chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`))
	if err != nil || err2 != nil || overflow > 0 {
		t.Errorf("at %d px the dashboard is %d px wider than the screen (%v, %v)", width, overflow, err, err2)
	}
}

// TestDashboardAsksForToken: with -api-token, the dashboard asks for the
// token once, keeps it, and shows the counts.
func TestDashboardAsksForToken(t *testing.T) {
	t.Parallel()
	path := chromium(t)
	tracker := start(t, nil, "-api-token", "s3cret")
	if status := tracker.post(t, "v1", "https://example.com/private"); status != http.StatusAccepted {
		t.Fatalf("post: %d", status)
	}
	tab, cancel := chromedp.NewContext(newBrowser(t, path))
	defer cancel()
	var asked atomic.Int32
	dialogs := chromedp.Events(tab, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			asked.Add(1)
			answer := page.HandleJavaScriptDialogParams{Accept: true}
			if ev.Type == page.DialogTypePrompt {
				answer.PromptText = "s3cret"
			}
			_, _ = chromedp.Call(tab, page.HandleJavaScriptDialog, answer)
		}
	}()
	for range 2 { // the second visit must not ask again
		if err := chromedp.Do(tab, chromedp.Navigate(tracker.base+"/"), chromedp.WaitVisible(chromedp.CSS("#top tbody tr"))); err != nil {
			t.Fatalf("opening the dashboard: %v", err)
		}
		table, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.querySelector("#top tbody").innerText`))
		if err != nil || !strings.Contains(table, "https://example.com/private\t1") {
			t.Fatalf("the dashboard's table = %q, %v; want the page with 1 visitor", table, err)
		}
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("the dashboard asked for the token %d times, want once", n)
	}
}

// TestInTheBrowser drives a real headless Chromium: a small site on another
// origin includes /tracker.js; two visitors (two browser contexts, so two
// localStorage ids) visit three pages and one single-page-app navigation;
// the API must count them; then the dashboard must show them. A screenshot
// of the dashboard is saved in test-artifacts/.
func TestInTheBrowser(t *testing.T) {
	t.Parallel()
	path := chromium(t)
	tracker := start(t, nil)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><head><title>%[1]s</title><script src="%[2]s/tracker.js"></script></head>`+
			`<body><h1>Page %[1]s</h1></body></html>`, r.URL.Path, tracker.base)
	}))
	t.Cleanup(site.Close)

	browser := newBrowser(t, path)

	// visit browses paths of the site as one visitor and returns the
	// visitor id tracker.js kept, checking it stays the same throughout.
	visit := func(paths []string, spa string) string {
		t.Helper()
		tab, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
		defer cancel()
		id := ""
		for _, p := range paths {
			if err := chromedp.Do(tab, chromedp.Navigate(site.URL+p)); err != nil {
				t.Fatalf("navigating to %s: %v", p, err)
			}
			got, err := chromedp.Run(tab, chromedp.Evaluate[string](`localStorage.getItem("webtracker_visitor")`))
			if err != nil || got == "" || (id != "" && got != id) {
				t.Fatalf("visitor id on %s = %q, %v; want the same non-empty id on every page (first %q)", p, got, err, id)
			}
			id = got
		}
		if spa != "" {
			if err := chromedp.Do(tab, chromedp.Evaluate[chromedp.Void](`history.pushState({}, "", "`+spa+`")`)); err != nil {
				t.Fatal(err)
			}
		}
		// Let the last beacon leave before the context closes.
		time.Sleep(200 * time.Millisecond)
		return id
	}
	a := visit([]string{"/", "/pricing", "/blog"}, "/blog/spa-post")
	b := visit([]string{"/", "/pricing"}, "")
	if a == b {
		t.Fatalf("two browser contexts got one visitor id %q", a)
	}

	want := map[string]int64{"/": 2, "/pricing": 2, "/blog": 1, "/blog/spa-post": 1}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := map[string]int64{}
		for p := range want {
			_, got[p] = tracker.visitors(t, site.URL+p)
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counts through the API %v, want %v", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, _, body := tracker.do(t, "GET", "/api/v1/pages", "", ""); !strings.Contains(body, `"total":4`) {
		t.Errorf("pages: %s, want 4 pages in all", body)
	}

	// The dashboard shows them.
	dash, cancel := chromedp.NewContext(browser)
	defer cancel()
	if err := chromedp.Do(dash, chromedp.Navigate(tracker.base+"/"), chromedp.WaitVisible(chromedp.CSS("#top tbody tr"))); err != nil {
		t.Fatalf("opening the dashboard: %v", err)
	}
	table, err := chromedp.Run(dash, chromedp.Evaluate[string](`document.querySelector("#top tbody").innerText`))
	if err != nil {
		t.Fatal(err)
	}
	for p, n := range want {
		if row := fmt.Sprintf("%s%s\t%d", site.URL, p, n); !strings.Contains(table, row) {
			t.Errorf("the dashboard's table lacks the row %q:\n%s", row, table)
		}
	}
	total, err := chromedp.Run(dash, chromedp.Evaluate[string](`document.getElementById("total").textContent`))
	if err != nil || total != "4" {
		t.Errorf("the dashboard's total = %q, %v; want 4", total, err)
	}
	bars, err := chromedp.Run(dash, chromedp.Evaluate[int](`document.querySelectorAll("#chart rect").length`))
	if err != nil || bars != 4 {
		t.Errorf("the chart has %d bars, %v; want 4", bars, err)
	}
	screenshot(t, dash, "dashboard.png")

	// A page's row shows its last days; the view is kept in the address.
	if err := chromedp.Do(dash, chromedp.Click(chromedp.CSS(`#top tbody tr[data-url="`+site.URL+`/pricing"] button`))); err != nil {
		t.Fatal(err)
	}
	tz, err := chromedp.Run(dash, chromedp.Evaluate[string](`document.getElementById("tz").value`))
	if err != nil {
		t.Fatal(err)
	}
	zone, err := time.LoadLocation(tz)
	if err != nil {
		t.Fatalf("the dashboard's zone %q: %v", tz, err)
	}
	last30 := dailyView{From: time.Now().In(zone).AddDate(0, 0, -29).Format(time.DateOnly),
		Visitors: make([]int, 30), Total: "2", Label: "distinct visitors in the last 30 days"}
	last30.Visitors[29] = 2

	// On a phone's width, with that chart, nothing may stick out sideways.
	if err := chromedp.Do(dash, chromedp.EmulateViewport(390, 844), chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS("#top tbody tr"))); err != nil {
		t.Fatalf("the dashboard at a phone's width: %v", err)
	}
	waitDaily(t, dash, "all time", last30)
	noOverflow(t, dash)
	screenshot(t, dash, "dashboard-phone.png")
}

// TestDashboardRanges drives the range picker and the daily chart in a
// browser whose zone is Asia/Tokyo: visits placed on chosen days (one at
// 02:00 in Tokyo, which is the day before in UTC) for three pages; the
// custom range must rank only its days, and the chosen page's chart must
// have one bar per day with that day's distinct visitors, beside the
// range's distinct total, which is less than the sum of the bars because a
// visitor came back. Screenshots: dashboard-range.png and, at a phone's
// width, dashboard-range-phone.png.
func TestDashboardRanges(t *testing.T) {
	t.Parallel()
	path := chromium(t)
	const zone = "Asia/Tokyo"
	tokyo, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	// The days are Tokyo's today and the days before it: a test that ran
	// across midnight there (15:00 UTC) would see them move, so one that
	// starts in the last minute before it waits for the new day.
	now := time.Now().In(tokyo)
	if midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, tokyo); midnight.Sub(now) < time.Minute {
		t.Logf("waiting %v for midnight in Tokyo", midnight.Sub(now).Round(time.Second))
		time.Sleep(time.Until(midnight) + time.Second)
		now = time.Now().In(tokyo)
	}
	tracker := start(t, nil)
	const a, b, old = "https://shop.example.com/a", "https://shop.example.com/b", "https://shop.example.com/old"
	// at is hour o'clock in Tokyo, n days before today there.
	at := func(n, hour int) time.Time {
		return time.Date(now.Year(), now.Month(), now.Day()-n, hour, 0, 0, 0, tokyo)
	}
	date := func(n int) string { return at(n, 12).Format(time.DateOnly) }
	visits := []struct {
		visitor, page string
		at            time.Time
	}{
		{"alice", a, at(5, 12)}, {"bob", a, at(5, 18)},
		{"alice", a, at(3, 9)}, {"carol", a, at(3, 2)}, // carol: the day before in UTC
		{"alice", a, at(1, 23)},
		{"dave", b, at(4, 12)}, {"erin", b, at(2, 12)},
		{"v1", old, at(10, 12)}, {"v2", old, at(10, 12)}, {"v3", old, at(10, 12)}, {"v4", old, at(10, 12)}, {"v5", old, at(10, 12)},
	}
	for _, v := range visits {
		body, _ := json.Marshal(map[string]string{"visitor_id": v.visitor, "url": v.page, "time": v.at.Format(time.RFC3339)})
		if status, _, resp := tracker.do(t, "POST", "/api/v1/events", "application/json", string(body)); status != http.StatusAccepted {
			t.Fatalf("posting %s on %s at %s: %d %s", v.visitor, v.page, v.at, status, resp)
		}
	}
	if status := tracker.post(t, "frank", a); status != http.StatusAccepted { // now: after the custom range
		t.Fatalf("post: %d", status)
	}

	tab, cancel := chromedp.NewContext(newBrowser(t, path))
	defer cancel()
	if _, err := chromedp.Call(tab, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: zone}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tab, chromedp.Navigate(tracker.base+"/"), chromedp.WaitVisible(chromedp.CSS("#top tbody tr"))); err != nil {
		t.Fatalf("opening the dashboard: %v", err)
	}
	if tz, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("tz").value`)); err != nil || tz != zone {
		t.Errorf("the zone is %q, %v; want the browser's, %s", tz, err, zone)
	}
	// All time, at first: the old page leads.
	waitRanking(t, tab, "all time", map[string]string{old: "5", a: "4", b: "2"})

	// 7 days, today included.
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(`#range label:has(> input[value="7d"])`))); err != nil {
		t.Fatal(err)
	}
	waitRanking(t, tab, "7 days", map[string]string{a: "4", b: "2"})
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(`#top tbody tr[data-url="`+a+`"] button`))); err != nil {
		t.Fatal(err)
	}
	waitDaily(t, tab, "7 days", dailyView{From: date(6), Visitors: []int{0, 2, 0, 2, 0, 1, 1}, Total: "4", Label: "distinct visitors in range"})

	// Custom: five days ending yesterday, so without frank.
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(`#range label:has(> input[value="custom"])`)),
		chromedp.WaitVisible(chromedp.CSS("#from")),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
			const from = document.getElementById("from"), to = document.getElementById("to");
			from.value = %q; to.value = %q;
			to.dispatchEvent(new Event("change", { bubbles: true }));
		})()`, date(5), date(1)))); err != nil {
		t.Fatal(err)
	}
	waitRanking(t, tab, "the custom range", map[string]string{a: "3", b: "2"})
	custom := dailyView{From: date(5), Visitors: []int{2, 0, 2, 0, 1}, Total: "3", Label: "distinct visitors in range"}
	if sum := 2 + 0 + 2 + 0 + 1; strconv.Itoa(sum) == custom.Total {
		t.Fatalf("the test's visits must make the total (%s) differ from the sum of the days (%d)", custom.Total, sum)
	}
	waitDaily(t, tab, "the custom range", custom)
	desc, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("range-desc").textContent`))
	if want := date(5) + " to " + date(1); err != nil || !strings.Contains(desc, want) || !strings.Contains(desc, zone) {
		t.Errorf("the range is described as %q, %v; want %q and %s in it", desc, err, want, zone)
	}
	screenshot(t, tab, "dashboard-range.png")

	// On a phone's width, after a reload (the view is kept in the
	// address), the chart is there and nothing sticks out sideways.
	if err := chromedp.Do(tab, chromedp.EmulateViewport(390, 844), chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS("#daily g.day"))); err != nil {
		t.Fatalf("the dashboard at a phone's width: %v", err)
	}
	waitDaily(t, tab, "the custom range on a phone", custom)
	noOverflow(t, tab)
	screenshot(t, tab, "dashboard-range-phone.png")
}

// waitRanking waits until the dashboard's table has exactly the rows of
// want (URL to count), in any order, but for pages counted 0.
func waitRanking(t *testing.T, tab context.Context, what string, want map[string]string) {
	t.Helper()
	last := waitUntil(tab, `JSON.stringify([...document.querySelectorAll("#top tbody tr")].map((r) => [r.cells[0].innerText, r.cells[1].innerText]))`,
		func(got string) bool {
			var rows [][2]string
			if json.Unmarshal([]byte(got), &rows) != nil {
				return false
			}
			seen := map[string]string{}
			for _, r := range rows {
				if r[1] != "0" {
					seen[r[0]] = r[1]
				}
			}
			return fmt.Sprint(seen) == fmt.Sprint(want)
		})
	if last != "" {
		t.Fatalf("the ranking for %s is %s; want %v", what, last, want)
	}
}

// dailyView is what the daily chart must show: the bars' values from the
// day From on, and the total with its label.
type dailyView struct {
	From         string
	Visitors     []int
	Total, Label string
}

// waitDaily waits until the daily chart shows want: as many bars as days,
// each one with its date and value, heights in proportion to the values,
// and the total beside them.
func waitDaily(t *testing.T, tab context.Context, what string, want dailyView) {
	t.Helper()
	type bar struct {
		Date     string
		Visitors int
		Height   float64
	}
	var got struct {
		Bars         []bar
		Total, Label string
	}
	last := waitUntil(tab, `JSON.stringify({
		Bars: [...document.querySelectorAll("#daily g.day")].map((g) => ({
			Date: g.dataset.date, Visitors: Number(g.dataset.visitors),
			Height: Number(g.querySelector("rect.bar").getAttribute("height")) })),
		Total: document.getElementById("daily-total").textContent,
		Label: document.getElementById("daily-total-label").textContent })`,
		func(s string) bool {
			if json.Unmarshal([]byte(s), &got) != nil || got.Total != want.Total || got.Label != want.Label || len(got.Bars) != len(want.Visitors) {
				return false
			}
			// The bars' heights are in proportion to their values: a bar
			// of the largest value is full height, one of 0 is flat.
			top := slices.Max(want.Visitors)
			full := 0.0
			for _, b := range got.Bars {
				full = max(full, b.Height)
			}
			from, _ := time.Parse(time.DateOnly, want.From)
			for i, b := range got.Bars {
				if b.Date != from.AddDate(0, 0, i).Format(time.DateOnly) || b.Visitors != want.Visitors[i] ||
					full <= 0 || math.Abs(b.Height/full-float64(want.Visitors[i])/float64(top)) > 0.01 {
					return false
				}
			}
			return true
		})
	if last != "" {
		t.Fatalf("the daily chart for %s is %s; want bars %v from %s and the total %q %q", what, last, want.Visitors, want.From, want.Total, want.Label)
	}
}
