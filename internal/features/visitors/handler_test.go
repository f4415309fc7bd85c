package visitors_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/features/visitors"
	"github.com/webtracker/tracker/internal/web"
)

// counts answers from a fixed table of canonical pages, with the relative
// error of an estimating store (0: exact).
type counts struct {
	byPage        map[string]int64
	relativeError float64
	err           error
}

func (c counts) Visitors(_ context.Context, p domain.PageURL) (domain.Count, error) {
	return domain.Count{Visitors: c.byPage[p.String()], RelativeError: c.relativeError}, c.err
}

// Range answers, for each period, its length in quarters times the page's
// count, and for the total of several the page's count (of one, as a store
// does, the period's count): enough for a test to tell which periods it was
// asked.
func (c counts) Range(_ context.Context, p domain.PageURL, periods []domain.Period) (domain.RangeCount, error) {
	n := c.byPage[p.String()]
	out := domain.RangeCount{Total: domain.Count{Visitors: n, RelativeError: c.relativeError}}
	for _, per := range periods {
		out.Each = append(out.Each, domain.Count{Visitors: int64(per.To-per.From) * n, RelativeError: c.relativeError})
	}
	if len(periods) == 1 {
		out.Total = out.Each[0]
	}
	return out, c.err
}

// testClock is 2026-12-02 12:00 UTC, with the default retention: the first
// day kept is 2025-10-29.
var testClock = domain.Clock{Retention: domain.DefaultRetention,
	Now: func() time.Time { return time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC) }}

func TestHandler(t *testing.T) {
	t.Parallel()
	store := counts{byPage: map[string]int64{"https://example.com/a?x=1&y=2": 7}}
	tests := []struct {
		name       string
		query      string
		store      counts
		wantStatus int
		wantBody   string // exact JSON answer on 200
		wantType   string
	}{
		{name: "known page", query: "url=https%3A%2F%2Fexample.com%2Fa%3Fx%3D1%26y%3D2", store: store,
			wantStatus: 200, wantBody: `{"url":"https://example.com/a?x=1&y=2","visitors":7,"exact":true}`},
		{name: "same page other spelling", query: "url=" + escape("HTTPS://EXAMPLE.com:443/a?y=2&utm_medium=mail&x=1#frag"), store: store,
			wantStatus: 200, wantBody: `{"url":"https://example.com/a?x=1&y=2","visitors":7,"exact":true}`},
		{name: "other parameters ignored", query: "x=1&url=" + escape("https://example.com/a?x=1&y=2"), store: store,
			wantStatus: 200, wantBody: `{"url":"https://example.com/a?x=1&y=2","visitors":7,"exact":true}`},
		{name: "never seen is zero", query: "url=" + escape("https://example.com/new"), store: store,
			wantStatus: 200, wantBody: `{"url":"https://example.com/new","visitors":0,"exact":true}`},
		{name: "missing", query: "", store: store, wantStatus: 400, wantType: "validation"},
		{name: "other parameter only", query: "page=x", store: store, wantStatus: 400, wantType: "validation"},
		{name: "empty", query: "url=", store: store, wantStatus: 400, wantType: "validation"},
		{name: "twice", query: "url=https%3A%2F%2Fa.com%2F&url=https%3A%2F%2Fb.com%2F", store: store, wantStatus: 400, wantType: "validation"},
		{name: "invalid url", query: "url=" + escape("mailto:someone@example.com"), store: store, wantStatus: 400, wantType: "validation"},
		{name: "not absolute", query: "url=%2Fpricing", store: store, wantStatus: 400, wantType: "validation"},
		{name: "too long", query: "url=" + escape("https://a.com/"+strings.Repeat("a", 4096)), store: store, wantStatus: 400, wantType: "validation"},
		{name: "malformed query", query: "url=%zz", store: store, wantStatus: 400, wantType: "validation"},
		{name: "escaped key", query: "%75rl=" + escape("https://example.com/a?x=1&y=2"), store: store,
			wantStatus: 200, wantBody: `{"url":"https://example.com/a?x=1&y=2","visitors":7,"exact":true}`},
		{name: "plus is a space", query: "url=https%3A%2F%2Fexample.com%2Fa+b", store: store,
			wantStatus: 200, wantBody: `{"url":"https://example.com/a%20b","visitors":0,"exact":true}`},
		{name: "twice, once escaped", query: "url=https%3A%2F%2Fa.com%2F&%75rl=https%3A%2F%2Fb.com%2F", store: store, wantStatus: 400, wantType: "validation"},
		{name: "malformed other parameter ignored", query: "x=%zz&url=" + escape("https://example.com/new"), store: store,
			wantStatus: 200, wantBody: `{"url":"https://example.com/new","visitors":0,"exact":true}`},
		{name: "store unavailable", query: "url=" + escape("https://a.com/"), store: counts{err: fmt.Errorf("x: %w", domain.ErrUnavailable)},
			wantStatus: 503, wantType: "unavailable"},
		{name: "store fails", query: "url=" + escape("https://a.com/"), store: counts{err: errors.New("boom")},
			wantStatus: 500, wantType: "internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := httptest.NewRecorder()
			visitors.Handler(tt.store, tt.store, domain.URLPolicy{}, testClock).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/visitors?"+tt.query, nil))
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantStatus == 200 {
				if got := strings.TrimSpace(w.Body.String()); got != tt.wantBody {
					t.Errorf("body = %s, want %s", got, tt.wantBody)
				}
				if ct := w.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q", ct)
				}
				if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control = %q, want no-store", cc)
				}
				return
			}
			var p web.Problem
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if w.Header().Get("Content-Type") != "application/problem+json" || p.Type != web.ProblemTypePrefix+tt.wantType || p.Status != tt.wantStatus {
				t.Errorf("problem %+v (%s), want type %s", p, w.Header().Get("Content-Type"), tt.wantType)
			}
			if tt.wantType == "validation" && (len(p.Errors) != 1 || p.Errors[0].Field != "url") {
				t.Errorf("problem errors = %+v, want one naming url", p.Errors)
			}
		})
	}
}

// TestAppendResponse checks the hand-written JSON against encoding/json on
// strings that need escaping.
func TestAppendResponse(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"https://a.com/", `quote " back \ slash`, "tab\tnl\ncr\rbs\bff\f\x00\x1f", "é ünï 🙂", "bad \xff utf8", "<&>"} {
		for _, r := range []visitors.Response{
			{URL: s, Visitors: -3, Exact: true},
			{URL: s, Visitors: 12345, RelativeError: 0.0081},
			{URL: s, From: "2026-12-01", To: s, TZ: "Europe/Paris", Visitors: 2, Exact: true},
		} {
			var want strings.Builder
			enc := json.NewEncoder(&want)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(r); err != nil {
				t.Fatal(err)
			}
			if got := string(visitors.AppendResponse(nil, r)); got != want.String() {
				t.Errorf("%q: got %s want %s", s, got, want.String())
			}
		}
	}
}

func TestEstimatedAnswer(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	store := counts{byPage: map[string]int64{"https://example.com/": 1000}, relativeError: 0.0081}
	visitors.Handler(store, store, domain.URLPolicy{}, testClock).ServeHTTP(w,
		httptest.NewRequest(http.MethodGet, "/api/v1/visitors?url="+escape("https://example.com/"), nil))
	if got, want := strings.TrimSpace(w.Body.String()), `{"url":"https://example.com/","visitors":1000,"exact":false,"relative_error":0.0081}`; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
}

func escape(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "#", "%23", "+", "%2B", "?", "%3F", "=", "%3D")
	return r.Replace(s)
}

func TestRanges(t *testing.T) {
	t.Parallel()
	store := counts{byPage: map[string]int64{"https://example.com/": 1}}
	page := "url=" + escape("https://example.com/")
	tests := []struct {
		name      string
		query     string
		wantBody  string // on 200; visitors is the period's length in quarters
		wantField string // on 400
	}{
		{name: "one UTC day", query: page + "&from=2026-12-01&to=2026-12-01",
			wantBody: `{"url":"https://example.com/","from":"2026-12-01","to":"2026-12-01","tz":"UTC","visitors":96,"exact":true}`},
		{name: "a week in Paris", query: page + "&from=2026-11-25&to=2026-12-01&tz=Europe%2FParis",
			wantBody: `{"url":"https://example.com/","from":"2026-11-25","to":"2026-12-01","tz":"Europe/Paris","visitors":672,"exact":true}`},
		{name: "the day New York falls back has 25 hours", query: page + "&from=2026-11-01&to=2026-11-01&tz=America/New_York",
			wantBody: `{"url":"https://example.com/","from":"2026-11-01","to":"2026-11-01","tz":"America/New_York","visitors":100,"exact":true}`},
		{name: "open start: from the first day kept", query: page + "&to=2025-10-29",
			wantBody: `{"url":"https://example.com/","from":"2025-10-29","to":"2025-10-29","tz":"UTC","visitors":96,"exact":true}`},
		{name: "open end: up to today", query: page + "&from=2026-12-02&tz=Asia/Kolkata",
			wantBody: `{"url":"https://example.com/","from":"2026-12-02","to":"2026-12-02","tz":"Asia/Kolkata","visitors":96,"exact":true}`},
		{name: "the whole retention", query: page + "&from=2025-10-29&to=2026-12-02",
			wantBody: `{"url":"https://example.com/","from":"2025-10-29","to":"2026-12-02","tz":"UTC","visitors":38400,"exact":true}`},
		{name: "from after to", query: page + "&from=2026-12-02&to=2026-12-01", wantField: "from"},
		{name: "bad date", query: page + "&from=2026-13-01&to=2026-12-01", wantField: "from"},
		{name: "date with one digit", query: page + "&from=2026-12-1", wantField: "from"},
		{name: "empty to", query: page + "&from=2026-12-01&to=", wantField: "to"},
		{name: "bad zone", query: page + "&from=2026-12-01&tz=Mars%2FOlympus", wantField: "tz"},
		{name: "Local is not a zone", query: page + "&from=2026-12-01&tz=Local", wantField: "tz"},
		{name: "range longer than the retention", query: page + "&from=2025-10-29&to=2026-12-03", wantField: "to"},
		{name: "before the retention", query: page + "&from=2025-10-28&to=2025-10-30", wantField: "from"},
		{name: "tz without a range", query: page + "&tz=UTC", wantField: "tz"},
		{name: "from twice", query: page + "&from=2026-12-01&from=2026-12-02", wantField: "from"},
		{name: "no url", query: "from=2026-12-01", wantField: "url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := httptest.NewRecorder()
			visitors.Handler(store, store, domain.URLPolicy{}, testClock).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/visitors?"+tt.query, nil))
			checkAnswer(t, w, tt.wantBody, tt.wantField)
		})
	}
}

func TestDaily(t *testing.T) {
	t.Parallel()
	store := counts{byPage: map[string]int64{"https://example.com/": 1}}
	page := "url=" + escape("https://example.com/")
	var thirty strings.Builder
	for d := 3; d <= 32; d++ {
		date := time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
		fmt.Fprintf(&thirty, `,{"date":"%s","visitors":96}`, date)
	}
	tests := []struct {
		name      string
		query     string
		wantBody  string
		wantField string
	}{
		{name: "three days in New York", query: page + "&from=2026-10-31&to=2026-11-02&tz=America/New_York",
			wantBody: `{"url":"https://example.com/","from":"2026-10-31","to":"2026-11-02","tz":"America/New_York","visitors":1,"exact":true,` +
				`"days":[{"date":"2026-10-31","visitors":96},{"date":"2026-11-01","visitors":100},{"date":"2026-11-02","visitors":96}]}`},
		{name: "thirty days by default", query: page,
			wantBody: `{"url":"https://example.com/","from":"2026-11-03","to":"2026-12-02","tz":"UTC","visitors":1,"exact":true,"days":[` + thirty.String()[1:] + `]}`},
		{name: "366 days", query: page + "&from=2025-12-02&to=2026-12-02", wantBody: ""},
		{name: "367 days", query: page + "&from=2025-12-01&to=2026-12-02", wantField: "to"},
		{name: "bad zone", query: page + "&tz=Nowhere", wantField: "tz"},
		{name: "no url", query: "from=2026-12-01", wantField: "url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := httptest.NewRecorder()
			visitors.Daily(store, domain.URLPolicy{}, testClock).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/visitors/daily?"+tt.query, nil))
			if tt.wantBody == "" && tt.wantField == "" {
				var resp visitors.DailyResponse
				if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &resp) != nil || len(resp.Days) != 366 {
					t.Fatalf("status %d, %d days, want 200 and 366 days; body %.200s", w.Code, len(resp.Days), w.Body)
				}
				return
			}
			checkAnswer(t, w, tt.wantBody, tt.wantField)
		})
	}
}

// checkAnswer checks a 200 with wantBody, or, if wantField is set, a 400
// validation problem naming that field alone.
func checkAnswer(t *testing.T, w *httptest.ResponseRecorder, wantBody, wantField string) {
	t.Helper()
	if wantField == "" {
		if got := strings.TrimSpace(w.Body.String()); w.Code != 200 || got != wantBody {
			t.Errorf("status %d, body %s\nwant 200, %s", w.Code, got, wantBody)
		}
		return
	}
	var p web.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || w.Code != 400 {
		t.Fatalf("status %d, body %s: want a 400 problem (%v)", w.Code, w.Body, err)
	}
	if p.Type != web.ProblemTypePrefix+"validation" || len(p.Errors) != 1 || p.Errors[0].Field != wantField {
		t.Errorf("problem %+v, want a validation problem naming %s", p, wantField)
	}
}
