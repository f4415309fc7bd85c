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

func TestHandler(t *testing.T) {
	t.Parallel()
	store := counts{byPage: map[string]int64{"https://example.com/a?x=1&y=2": 7}}
	tests := []struct {
		name       string
		query      string
		store      visitors.Counter
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
			visitors.Handler(tt.store, domain.URLPolicy{}).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/visitors?"+tt.query, nil))
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
	visitors.Handler(store, domain.URLPolicy{}).ServeHTTP(w,
		httptest.NewRequest(http.MethodGet, "/api/v1/visitors?url="+escape("https://example.com/"), nil))
	if got, want := strings.TrimSpace(w.Body.String()), `{"url":"https://example.com/","visitors":1000,"exact":false,"relative_error":0.0081}`; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
}

func escape(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "#", "%23", "+", "%2B", "?", "%3F", "=", "%3D")
	return r.Replace(s)
}
