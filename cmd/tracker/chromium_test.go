package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
	png, err := chromedp.Run(dash, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifactDir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(artifactDir, "dashboard.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(shot)
	t.Logf("dashboard screenshot: %s", abs)

	// On a phone's width, nothing may stick out sideways.
	if err := chromedp.Do(dash, chromedp.EmulateViewport(390, 844), chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS("#top tbody tr"))); err != nil {
		t.Fatalf("the dashboard at a phone's width: %v", err)
	}
	overflow, err := chromedp.Run(dash, chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`))
	if err != nil || overflow > 0 {
		t.Errorf("at 390 px the dashboard is %d px wider than the screen (%v)", overflow, err)
	}
	if png, err = chromedp.Run(dash, chromedp.FullScreenshot(100)); err == nil {
		err = os.WriteFile(filepath.Join(artifactDir, "dashboard-phone.png"), png, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}
