package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/features/ingest"
	"github.com/webtracker/tracker/internal/web"
)

// recorder keeps what it is given, so a test can tell what was counted.
type recorder struct {
	mu    sync.Mutex
	views []domain.PageView
	err   error
}

func (r *recorder) Record(_ context.Context, v domain.PageView) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.views = append(r.views, v)
	return nil
}

// testNow is the handlers' clock, and clock their retention and clock: the
// 400 days of the default retention go back to 2025-10-28 12:00 UTC.
var (
	testNow = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	clock   = domain.Clock{Retention: domain.DefaultRetention, Now: func() time.Time { return testNow }}
)

// onlyReader hides the length of a body, as a chunked upload does.
type onlyReader struct{ io.Reader }

func TestHandler(t *testing.T) {
	t.Parallel()
	big := `{"visitor_id":"v","url":"https://a.com/","pad":"` + strings.Repeat("x", ingest.MaxBodyBytes) + `"}`
	tests := []struct {
		name        string
		contentType string
		body        io.Reader
		storeErr    error
		wantStatus  int
		wantType    string // problem type slug
		wantFields  []string
		wantPage    string // canonical page recorded on success
		wantAt      time.Time
	}{
		{name: "json", contentType: "application/json", body: strings.NewReader(`{"visitor_id":"v1","url":"HTTPS://Example.COM:443/a?utm_source=x#top"}`),
			wantStatus: http.StatusAccepted, wantPage: "https://example.com/a"},
		{name: "text/plain from sendBeacon", contentType: "text/plain;charset=UTF-8", body: strings.NewReader(`{"visitor_id":"v1","url":"https://example.com/"}`),
			wantStatus: http.StatusAccepted, wantPage: "https://example.com/"},
		{name: "no content type", body: strings.NewReader(`{"visitor_id":"v1","url":"https://example.com/"}`),
			wantStatus: http.StatusAccepted, wantPage: "https://example.com/"},
		{name: "body at the limit", contentType: "application/json", body: strings.NewReader(padTo(ingest.MaxBodyBytes)),
			wantStatus: http.StatusAccepted, wantPage: "https://example.com/"},
		{name: "form type", contentType: "application/x-www-form-urlencoded", body: strings.NewReader(`visitor_id=v&url=x`),
			wantStatus: http.StatusUnsupportedMediaType, wantType: "unsupported-media-type"},
		{name: "too large by length", contentType: "application/json", body: strings.NewReader(big),
			wantStatus: http.StatusRequestEntityTooLarge, wantType: "body-too-large"},
		{name: "too large chunked", contentType: "application/json", body: onlyReader{strings.NewReader(big)},
			wantStatus: http.StatusRequestEntityTooLarge, wantType: "body-too-large"},
		{name: "one byte over", contentType: "application/json", body: onlyReader{strings.NewReader(padTo(ingest.MaxBodyBytes + 1))},
			wantStatus: http.StatusRequestEntityTooLarge, wantType: "body-too-large"},
		{name: "malformed", contentType: "application/json", body: strings.NewReader(`{"visitor_id":`),
			wantStatus: http.StatusBadRequest, wantType: "malformed-body"},
		{name: "not an object", body: strings.NewReader(`["v","https://a.com/"]`),
			wantStatus: http.StatusBadRequest, wantType: "malformed-body"},
		{name: "missing field", body: strings.NewReader(`{"url":"https://a.com/"}`),
			wantStatus: http.StatusBadRequest, wantType: "validation", wantFields: []string{"visitor_id"}},
		{name: "both values invalid", body: strings.NewReader(`{"visitor_id":"","url":"ftp://a.com/"}`),
			wantStatus: http.StatusBadRequest, wantType: "validation", wantFields: []string{"visitor_id", "url"}},
		{name: "visitor id too long", body: strings.NewReader(`{"visitor_id":"` + strings.Repeat("v", 257) + `","url":"https://a.com/"}`),
			wantStatus: http.StatusBadRequest, wantType: "validation", wantFields: []string{"visitor_id"}},
		{name: "control character", body: strings.NewReader(`{"visitor_id":"a\u0007b","url":"https://a.com/"}`),
			wantStatus: http.StatusBadRequest, wantType: "validation", wantFields: []string{"visitor_id"}},
		{name: "user info", body: strings.NewReader(`{"visitor_id":"v","url":"https://u:p@a.com/"}`),
			wantStatus: http.StatusBadRequest, wantType: "validation", wantFields: []string{"url"}},
		{name: "relative url", body: strings.NewReader(`{"visitor_id":"v","url":"/pricing"}`),
			wantStatus: http.StatusBadRequest, wantType: "validation", wantFields: []string{"url"}},
		{name: "time given", body: strings.NewReader(`{"visitor_id":"v","url":"https://a.com/","time":"2026-11-30T23:59:59-05:00"}`),
			wantStatus: http.StatusAccepted, wantPage: "https://a.com/", wantAt: time.Date(2026, 12, 1, 4, 45, 0, 0, time.UTC)},
		{name: "time with fractions, escaped", body: strings.NewReader(`{"visitor_id":"v","url":"https://a.com/","time":"2026-12-02T09:31:00.5\u005a"}`),
			wantStatus: http.StatusAccepted, wantPage: "https://a.com/", wantAt: time.Date(2026, 12, 2, 9, 30, 0, 0, time.UTC)},
		{name: "no time is now", body: strings.NewReader(`{"visitor_id":"v","url":"https://a.com/"}`),
			wantStatus: http.StatusAccepted, wantPage: "https://a.com/", wantAt: testNow.Truncate(15 * time.Minute)},
		{name: "time 4 minutes ahead", body: strings.NewReader(`{"visitor_id":"v","url":"https://a.com/","time":"2026-12-02T12:04:00Z"}`),
			wantStatus: http.StatusAccepted, wantPage: "https://a.com/", wantAt: time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)},
		{name: "time in the future", body: strings.NewReader(`{"visitor_id":"v","url":"https://a.com/","time":"2026-12-02T12:05:01Z"}`),
			wantStatus: http.StatusBadRequest, wantType: "validation", wantFields: []string{"time"}},
		{name: "time too old", body: strings.NewReader(`{"visitor_id":"v","url":"https://a.com/","time":"2025-10-28T11:59:59Z"}`),
			wantStatus: http.StatusBadRequest, wantType: "validation", wantFields: []string{"time"}},
		{name: "time not RFC 3339", body: strings.NewReader(`{"visitor_id":"v","url":"https://a.com/","time":"2026-12-01 09:30:00"}`),
			wantStatus: http.StatusBadRequest, wantType: "validation", wantFields: []string{"time"}},
		{name: "time without zone", body: strings.NewReader(`{"visitor_id":"v","url":"https://a.com/","time":"2026-12-01T09:30:00"}`),
			wantStatus: http.StatusBadRequest, wantType: "validation", wantFields: []string{"time"}},
		{name: "time a number", body: strings.NewReader(`{"visitor_id":"v","url":"https://a.com/","time":1764581400}`),
			wantStatus: http.StatusBadRequest, wantType: "validation", wantFields: []string{"time"}},
		{name: "time null", body: strings.NewReader(`{"visitor_id":"v","url":"https://a.com/","time":null}`),
			wantStatus: http.StatusBadRequest, wantType: "validation", wantFields: []string{"time"}},
		{name: "time and url bad", body: strings.NewReader(`{"visitor_id":"v","url":"/x","time":"yesterday"}`),
			wantStatus: http.StatusBadRequest, wantType: "validation", wantFields: []string{"url", "time"}},
		{name: "time given twice", body: strings.NewReader(`{"visitor_id":"v","url":"https://a.com/","time":"2026-12-01T09:30:00Z","time":"2026-12-01T09:30:00Z"}`),
			wantStatus: http.StatusBadRequest, wantType: "malformed-body"},
		{name: "store unavailable", body: strings.NewReader(`{"visitor_id":"v","url":"https://a.com/"}`), storeErr: fmt.Errorf("redis: %w", domain.ErrUnavailable),
			wantStatus: http.StatusServiceUnavailable, wantType: "unavailable"},
		{name: "store fails", body: strings.NewReader(`{"visitor_id":"v","url":"https://a.com/"}`), storeErr: errors.New("disk on fire"),
			wantStatus: http.StatusInternalServerError, wantType: "internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{err: tt.storeErr}
			req := httptest.NewRequest(http.MethodPost, "/api/v1/events", tt.body)
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			w := httptest.NewRecorder()
			ingest.Handler(rec, domain.URLPolicy{}, nil, clock).ServeHTTP(w, req)

			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantStatus == http.StatusAccepted {
				if len(rec.views) != 1 || rec.views[0].Page.String() != tt.wantPage {
					t.Fatalf("recorded %v, want one view of %s", rec.views, tt.wantPage)
				}
				if !tt.wantAt.IsZero() && rec.views[0].At != domain.QuarterOf(tt.wantAt) {
					t.Fatalf("recorded at %v, want the quarter of %v", rec.views[0].At.Time(), tt.wantAt)
				}
				return
			}
			if len(rec.views) != 0 {
				t.Fatalf("a rejected event was recorded: %v", rec.views)
			}
			checkProblem(t, w, tt.wantStatus, tt.wantType, tt.wantFields)
		})
	}
}

// padTo returns a valid event body of exactly n bytes.
func padTo(n int) string {
	head := `{"visitor_id":"v","url":"https://example.com/","pad":"`
	return head + strings.Repeat("x", n-len(head)-2) + `"}`
}

func checkProblem(t *testing.T, w *httptest.ResponseRecorder, status int, slug string, fields []string) {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	var p web.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body %q: %v", w.Body, err)
	}
	if p.Status != status || p.Type != web.ProblemTypePrefix+slug || p.Title != http.StatusText(status) || p.Detail == "" {
		t.Errorf("problem = %+v, want status %d, type %s, a title and a detail", p, status, slug)
	}
	var got []string
	for _, f := range p.Errors {
		got = append(got, f.Field)
		if f.Reason == "" {
			t.Errorf("field %s has no reason", f.Field)
		}
	}
	if strings.Join(got, ",") != strings.Join(fields, ",") {
		t.Errorf("problem names fields %v, want %v", got, fields)
	}
}

// TestSites: with an allow-list, events for other hosts are refused with
// 403 and never recorded.
func TestSites(t *testing.T) {
	t.Parallel()
	sites := ingest.ParseSites(" Example.com, shop.example.com ,")
	for _, tt := range []struct {
		url  string
		want int
	}{
		{"https://example.com/a", 202},
		{"https://SHOP.example.com:8443/cart", 202},
		{"https://evil.example.net/", 403},
		{"https://www.example.com/", 403}, // hosts match exactly
	} {
		rec := &recorder{}
		w := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/api/v1/events",
			strings.NewReader(`{"visitor_id":"v","url":"`+tt.url+`"}`))
		ingest.Handler(rec, domain.URLPolicy{}, sites, clock).ServeHTTP(w, req)
		if w.Code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.url, w.Code, w.Body, tt.want)
		}
		if recorded := len(rec.views) > 0; recorded != (tt.want == 202) {
			t.Errorf("%s: recorded %v, want %v", tt.url, recorded, tt.want == 202)
		}
		if tt.want == 403 && !strings.Contains(w.Body.String(), "urn:webtracker:problem:forbidden") {
			t.Errorf("%s: body %s, want a forbidden problem", tt.url, w.Body)
		}
	}
}
