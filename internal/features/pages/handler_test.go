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
	h := pages.Handler(l, time.Second, func() time.Time { return now })
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
	h := pages.Handler(l, time.Second, time.Now)
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
