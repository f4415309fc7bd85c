package web_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/webtracker/tracker/internal/web"
)

func TestCORS(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	for _, tt := range []struct {
		name, list, origin string
		wantAllow          string
		wantVary           bool
	}{
		{"any origin", "*", "https://shop.example.com", "*", false},
		{"no origin header", "*", "", "", false},
		{"listed origin", "https://a.com, https://b.com/", "https://b.com", "https://b.com", true},
		{"listed origin, other case", "https://Shop.Example.com", "https://shop.example.com", "https://shop.example.com", true},
		{"no origin, list configured", "https://a.com", "", "", true},
		{"unlisted origin", "https://a.com", "https://evil.com", "", true},
		{"none configured", "", "https://a.com", "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := web.NewCORS(tt.list, http.MethodPost)
			for _, h := range []http.Handler{c.Middleware()(ok), c.Preflight()} {
				r := httptest.NewRequest(http.MethodOptions, "/api/v1/events", nil)
				if tt.origin != "" {
					r.Header.Set("Origin", tt.origin)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if got := w.Header().Get("Access-Control-Allow-Origin"); got != tt.wantAllow {
					t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tt.wantAllow)
				}
				if got := w.Header().Get("Vary") == "Origin"; got != tt.wantVary {
					t.Errorf("Vary: Origin = %v, want %v", got, tt.wantVary)
				}
			}
			// The preflight itself.
			r := httptest.NewRequest(http.MethodOptions, "/api/v1/events", nil)
			r.Header.Set("Origin", tt.origin)
			w := httptest.NewRecorder()
			c.Preflight().ServeHTTP(w, r)
			if w.Code != http.StatusNoContent {
				t.Errorf("preflight status %d, want 204", w.Code)
			}
			allowed := tt.wantAllow != ""
			if got := w.Header().Get("Access-Control-Allow-Methods") == "POST"; got != allowed {
				t.Errorf("Access-Control-Allow-Methods %q for an allowed origin: %v", w.Header().Get("Access-Control-Allow-Methods"), allowed)
			}
		})
	}
}

func TestRequireToken(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	for _, tt := range []struct {
		name, token, header string
		want                int
	}{
		{"no token configured", "", "", 200},
		{"missing", "s3cret", "", 401},
		{"wrong", "s3cret", "Bearer s3cre", 401},
		{"wrong scheme", "s3cret", "Basic s3cret", 401},
		{"right", "s3cret", "Bearer s3cret", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/api/v1/visitors", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			w := httptest.NewRecorder()
			web.RequireToken(tt.token)(ok).ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d", w.Code, tt.want)
			}
			if tt.want == 401 {
				var p web.Problem
				if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Type != web.ProblemTypePrefix+"unauthorized" ||
					w.Header().Get("WWW-Authenticate") == "" || w.Header().Get("Content-Type") != "application/problem+json" {
					t.Errorf("401 answer %s, %v; headers %v", w.Body, err, w.Header())
				}
			}
		})
	}
}
