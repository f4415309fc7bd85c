package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestBrowserEdge checks, through the real run, what a browser meets: CORS
// on ingest (any origin by default) and not on reads, the API token on
// reads only, the allowed sites, the dashboard with its CSP, the snippet.
func TestBrowserEdge(t *testing.T) {
	t.Parallel()
	in := start(t, nil, "-api-token", "s3cret", "-sites", "shop.example.com")
	call := func(method, path, body string, header ...string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, in.base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := in.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	event := func(page string) string {
		b, _ := json.Marshal(map[string]string{"visitor_id": "v1", "url": page})
		return string(b)
	}

	// Ingest from another origin, as tracker.js sends it.
	resp := call("POST", "/api/v1/events", event("https://shop.example.com/a"), "Origin", "https://shop.example.com", "Content-Type", "text/plain;charset=UTF-8")
	if resp.StatusCode != 202 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("cross-origin event: %d, ACAO %q; want 202 and *", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	resp = call("OPTIONS", "/api/v1/events", "", "Origin", "https://shop.example.com", "Access-Control-Request-Method", "POST")
	if resp.StatusCode != 204 || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight: %d, methods %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Methods"))
	}
	// Another site's event is refused and not counted.
	if resp := call("POST", "/api/v1/events", event("https://evil.example.net/"), "Content-Type", "application/json"); resp.StatusCode != 403 {
		t.Errorf("event for a site not allowed: %d, want 403", resp.StatusCode)
	}

	// Reads need the token, and are not open cross-origin.
	q := "/api/v1/visitors?url=" + url.QueryEscape("https://shop.example.com/a")
	for _, tt := range []struct {
		name, auth string
		want       int
	}{{"missing", "", 401}, {"wrong", "Bearer nope", 401}, {"right", "Bearer s3cret", 200}} {
		for _, path := range []string{q, "/api/v1/pages"} {
			h := []string{"Origin", "https://elsewhere.example"}
			if tt.auth != "" {
				h = append(h, "Authorization", tt.auth)
			}
			resp := call("GET", path, "", h...)
			if resp.StatusCode != tt.want {
				t.Errorf("%s token, GET %s: %d, want %d", tt.name, path, resp.StatusCode, tt.want)
			}
			if acao := resp.Header.Get("Access-Control-Allow-Origin"); acao != "" {
				t.Errorf("GET %s from another origin: ACAO %q, want none", path, acao)
			}
		}
	}
	status, _, body := in.do(t, "GET", "/metrics", "", "")
	if status != 200 || !strings.Contains(body, `tracker_events_total{reason="forbidden",result="rejected"} 1`) {
		t.Errorf("metrics do not count the refused site's event")
	}

	// The dashboard and the snippet are public.
	for path, want := range map[string]string{"/": "text/html", "/dashboard.js": "text/javascript", "/dashboard.css": "text/css", "/tracker.js": "text/javascript"} {
		resp := call("GET", path, "")
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) {
			t.Errorf("GET %s: %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if path != "/tracker.js" && !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("GET %s: CSP %q", path, resp.Header.Get("Content-Security-Policy"))
		}
	}
	if resp := call("GET", "/nope", ""); resp.StatusCode != 404 {
		t.Errorf("GET /nope: %d, want 404", resp.StatusCode)
	}
}

// TestUncleanPathsAreNotFound: a path that only cleans to a route is not
// that route: a 404 problem, not a redirect.
func TestUncleanPathsAreNotFound(t *testing.T) {
	t.Parallel()
	in := start(t, nil)
	for _, path := range []string{"//api/v1/visitors", "/api/v1/./events", "/api/v1/events/", "/api//v1/pages"} {
		status, h, body := in.do(t, "GET", path, "", "")
		if status != http.StatusNotFound || h.Get("Content-Type") != "application/problem+json" || !strings.Contains(body, "not-found") {
			t.Errorf("GET %s: %d %s %s, want a 404 problem", path, status, h.Get("Content-Type"), body)
		}
	}
}
