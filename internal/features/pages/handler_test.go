package pages_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/features/pages"
	"github.com/webtracker/tracker/internal/web"
)

// lister serves a fixed list and counts the calls.
type lister struct {
	list  []domain.PageCount
	calls atomic.Int32
}

func (l *lister) Pages(context.Context) ([]domain.PageCount, error) {
	l.calls.Add(1)
	return append([]domain.PageCount(nil), l.list...), nil
}

func TestHandler(t *testing.T) {
	t.Parallel()
	l := &lister{list: []domain.PageCount{
		{URL: "https://a.com/b", Count: domain.Count{Visitors: 5}}, {URL: "https://a.com/a", Count: domain.Count{Visitors: 5}},
		{URL: "https://a.com/", Count: domain.Count{Visitors: 9}}, {URL: "https://a.com/z", Count: domain.Count{Visitors: 1}},
	}}
	now := time.Unix(1000, 0)
	h := pages.Handler(l, nil, time.Second, domain.Clock{Retention: domain.DefaultRetention, Now: func() time.Time { return now }})
	for _, tt := range []struct {
		query     string
		wantURLs  string
		wantField string // for a 400
	}{
		{"", "https://a.com/ https://a.com/a https://a.com/b https://a.com/z", ""},
		{"limit=2", "https://a.com/ https://a.com/a", ""},
		{"limit=2&offset=2", "https://a.com/b https://a.com/z", ""},
		{"offset=10", "", ""},
		{"limit=0", "", "limit"},
		{"limit=1001", "", "limit"},
		{"limit=x", "", "limit"},
		{"offset=-1", "", "offset"},
		{"limit=1&limit=2", "", "limit"},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/pages?"+tt.query, nil))
		if tt.wantField != "" {
			var p web.Problem
			_ = json.Unmarshal(w.Body.Bytes(), &p)
			if w.Code != 400 || len(p.Errors) != 1 || p.Errors[0].Field != tt.wantField {
				t.Errorf("%q: %d %s, want 400 naming %s", tt.query, w.Code, w.Body, tt.wantField)
			}
			continue
		}
		var resp pages.Response
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || w.Code != 200 {
			t.Fatalf("%q: %d %s", tt.query, w.Code, w.Body)
		}
		var urls []string
		for _, p := range resp.Pages {
			urls = append(urls, p.URL)
		}
		if got := strings.Join(urls, " "); got != tt.wantURLs || resp.Total != 4 || resp.Pages == nil {
			t.Errorf("%q: pages %q total %d, want %q total 4", tt.query, got, resp.Total, tt.wantURLs)
		}
	}
	if n := l.calls.Load(); n != 1 {
		t.Errorf("the store was listed %d times within the cache's second, want 1", n)
	}
	now = now.Add(time.Second)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/api/v1/pages", nil))
	if n := l.calls.Load(); n != 2 {
		t.Errorf("after a second, the store was listed %d times in all, want 2", n)
	}
}

// slowLister blocks in Pages until released.
type slowLister struct {
	entered, release chan struct{}
}

func (l *slowLister) Pages(context.Context) ([]domain.PageCount, error) {
	l.entered <- struct{}{}
	<-l.release
	return []domain.PageCount{{URL: "https://a.com/", Count: domain.Count{Visitors: 1}}}, nil
}

// TestWaitersKeepTheirDeadline: while one request makes the ranking, the
// others wait for it, each no longer than its own context.
func TestWaitersKeepTheirDeadline(t *testing.T) {
	t.Parallel()
	l := &slowLister{entered: make(chan struct{}), release: make(chan struct{})}
	h := pages.Handler(l, nil, time.Second, domain.Clock{Retention: domain.DefaultRetention, Now: time.Now})
	first := make(chan int)
	go func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/pages", nil))
		first <- w.Code
	}()
	<-l.entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/pages", nil).WithContext(ctx))
	if w.Code == http.StatusOK {
		t.Errorf("a waiter past its deadline got 200")
	}
	close(l.release)
	if code := <-first; code != http.StatusOK {
		t.Errorf("the request that made the ranking got %d", code)
	}
}

// periodLister answers a ranking in a period and notes the period.
type periodLister struct {
	lister
	asked domain.Period
}

func (l *periodLister) PagesIn(_ context.Context, p domain.Period) ([]domain.PageCount, error) {
	l.asked = p
	return []domain.PageCount{
		{URL: "https://a.com/x", Count: domain.Count{Visitors: 2}}, {URL: "https://a.com/y", Count: domain.Count{Visitors: 7}},
	}, nil
}

func TestRange(t *testing.T) {
	t.Parallel()
	l := &periodLister{}
	clock := domain.Clock{Retention: domain.DefaultRetention,
		Now: func() time.Time { return time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC) }}
	h := pages.Handler(l, l, time.Second, clock)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/pages?from=2026-11-30&tz=Europe/Paris", nil))
	var resp pages.Response
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if resp.From != "2026-11-30" || resp.To != "2026-12-02" || resp.TZ != "Europe/Paris" || resp.Total != 2 ||
		resp.Pages[0].URL != "https://a.com/y" || resp.Pages[1].Visitors != 2 {
		t.Errorf("answer %+v, want y then x, from 2026-11-30 to 2026-12-02 in Europe/Paris", resp)
	}
	// Three days of Paris, from 2026-11-29 23:00 UTC.
	want := domain.Period{From: domain.QuarterOf(time.Date(2026, 11, 29, 23, 0, 0, 0, time.UTC)),
		To: domain.QuarterOf(time.Date(2026, 12, 2, 23, 0, 0, 0, time.UTC))}
	if l.asked != want {
		t.Errorf("asked the store for %+v, want %+v", l.asked, want)
	}
	if l.calls.Load() != 0 {
		t.Errorf("a ranking over a range read the all-time list")
	}
	for query, field := range map[string]string{
		"from=2026-12-03&to=2026-12-01": "from", "from=x": "from", "to=": "to", "tz=UTC": "tz",
		"from=2026-11-30&tz=Nowhere": "tz", "from=2026-11-30&from=2026-11-29": "from", "from=2024-01-01": "from",
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/pages?"+query, nil))
		var p web.Problem
		_ = json.Unmarshal(w.Body.Bytes(), &p)
		if w.Code != 400 || len(p.Errors) != 1 || p.Errors[0].Field != field {
			t.Errorf("%q: %d %s, want 400 naming %s", query, w.Code, w.Body, field)
		}
	}
}
