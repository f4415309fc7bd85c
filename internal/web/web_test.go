package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/web"
)

func TestError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantSlug   string
		wantHeader map[string]string
		hideDetail bool // the detail is the edge's own words, not the error's
	}{
		{"field", &domain.FieldError{Field: "url", Reason: "must have a host"}, 400, "validation", nil, false},
		{"validation", domain.Validate(&domain.FieldError{Field: "a", Reason: "x"}, &domain.FieldError{Field: "b", Reason: "y"}), 400, "validation", nil, false},
		{"malformed", fmt.Errorf("%w: bad", web.ErrMalformedBody), 400, "malformed-body", nil, false},
		{"media type", fmt.Errorf("%w: text/html", web.ErrUnsupportedMediaType), 415, "unsupported-media-type", nil, false},
		{"too large", &http.MaxBytesError{Limit: 10}, 413, "body-too-large", nil, true},
		{"unavailable", fmt.Errorf("redis: %w", domain.ErrUnavailable), 503, "unavailable", map[string]string{"Retry-After": "1"}, false},
		{"forbidden", fmt.Errorf("%w: other.example", domain.ErrForbidden), 403, "forbidden", nil, false},
		{"days not kept", fmt.Errorf("memstore: %w", domain.ErrNoDays), 409, "days-not-kept", nil, false},
		{"deadline", fmt.Errorf("store: %w", context.DeadlineExceeded), 503, "deadline-exceeded", map[string]string{"Retry-After": "1"}, true},
		{"status", &web.StatusError{Status: 429, Slug: "rate-limited", Detail: "slow down", RetryAfter: 1500 * time.Millisecond}, 429, "rate-limited", map[string]string{"Retry-After": "2"}, false},
		{"allow", &web.StatusError{Status: 405, Slug: "method-not-allowed", Detail: "no", Allow: "GET, HEAD"}, 405, "method-not-allowed", map[string]string{"Allow": "GET, HEAD"}, false},
		{"internal", errors.New("secret connection string"), 500, "internal", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := httptest.NewRecorder()
			web.Error(w, httptest.NewRequest("GET", "/", nil), tt.err)
			p := decodeProblem(t, w, tt.wantStatus, tt.wantSlug)
			for k, v := range tt.wantHeader {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if leaked := strings.Contains(p.Detail, tt.err.Error()); leaked == tt.hideDetail {
				t.Errorf("detail %q: contains the error text = %v, want %v", p.Detail, leaked, !tt.hideDetail)
			}
			if tt.wantSlug == "validation" && len(p.Errors) != len(domain.FieldErrors(tt.err)) {
				t.Errorf("errors = %+v, want one per field", p.Errors)
			}
		})
	}
}

func decodeProblem(t *testing.T, w *httptest.ResponseRecorder, status int, slug string) web.Problem {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var p web.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	if p.Status != status || p.Type != web.ProblemTypePrefix+slug || p.Title != http.StatusText(status) || p.Detail == "" {
		t.Errorf("problem = %+v, want status %d, type %s, title and detail", p, status, slug)
	}
	return p
}

func TestMethods(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
	h := web.Methods(map[string]http.Handler{"GET": ok, "POST": ok})
	for method, want := range map[string]int{"GET": 299, "HEAD": 299, "POST": 299, "PUT": 405, "DELETE": 405, "OPTIONS": 405} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, "/", nil))
		if w.Code != want {
			t.Errorf("%s: status %d, want %d", method, w.Code, want)
		}
		if want == 405 {
			decodeProblem(t, w, 405, "method-not-allowed")
			if got := w.Header().Get("Allow"); got != "GET, HEAD, POST" {
				t.Errorf("%s: Allow = %q", method, got)
			}
		}
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	web.NotFound().ServeHTTP(w, httptest.NewRequest("GET", "/nope", nil))
	if p := decodeProblem(t, w, 404, "not-found"); !strings.Contains(p.Detail, "/nope") {
		t.Errorf("detail %q does not name the path", p.Detail)
	}
}

// observations keeps what an Observer is told.
type observations struct {
	mu   sync.Mutex
	seen []string
}

func (o *observations) Observe(status int, took time.Duration, problem string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if took <= 0 {
		status = -1
	}
	o.seen = append(o.seen, fmt.Sprintf("%d %s", status, problem))
}

func TestMiddlewareChain(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var sawDeadline bool
	obs := &observations{}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, sawDeadline = r.Context().Deadline()
		switch r.URL.Path {
		case "/panic":
			panic("handler bug")
		case "/silent":
			return // answers nothing: Observe answers 200
		case "/bad":
			web.Error(w, r, &domain.FieldError{Field: "url", Reason: "bad"})
			return
		}
		if web.RequestID(w) == "" {
			t.Error("no request id for the handler")
		}
		w.WriteHeader(http.StatusTeapot)
	})
	chain := func(quiet bool) http.Handler {
		return web.Chain(web.Observed(obs, inner), web.Observe(logger, quiet), web.Deadline(time.Second))
	}
	h := chain(false)

	t.Run("access line", func(t *testing.T) {
		logs.Reset()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/teapot?secret=1", nil))
		if w.Code != http.StatusTeapot || !sawDeadline {
			t.Fatalf("status %d, deadline %v", w.Code, sawDeadline)
		}
		line := decodeLine(t, &logs)
		if id, _ := line["request_id"].(string); id == "" || w.Header().Get("X-Request-ID") != "" || line["method"] != "GET" || line["path"] != "/teapot" ||
			line["status"] != float64(418) || line["duration"] == nil || line["msg"] != "request" || line["level"] != "INFO" {
			t.Errorf("access line %v (X-Request-ID %q)", line, w.Header().Get("X-Request-ID"))
		}
	})
	t.Run("quiet success logs errors only", func(t *testing.T) {
		logs.Reset()
		q := chain(true)
		q.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/silent", nil))
		if logs.Len() != 0 {
			t.Errorf("a success was logged at info: %s", logs.String())
		}
		q.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/bad", nil))
		if line := decodeLine(t, &logs); line["status"] != float64(400) {
			t.Errorf("a 400 was not logged: %v", line)
		}
	})
	t.Run("observer sees status and problem", func(t *testing.T) {
		obs.mu.Lock()
		obs.seen = nil
		obs.mu.Unlock()
		for _, p := range []string{"/silent", "/bad", "/panic"} {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
		}
		if got := strings.Join(obs.seen, ","); got != "200 ,400 validation,500 internal" {
			t.Errorf("observed %q", got)
		}
	})
	t.Run("incoming request id kept, bad one replaced", func(t *testing.T) {
		for in, keep := range map[string]bool{"abc-123": true, "bad id": false, strings.Repeat("x", 33): false} {
			w := httptest.NewRecorder()
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("X-Request-ID", in)
			h.ServeHTTP(w, r)
			if got := w.Header().Get("X-Request-ID"); (got == in) != keep {
				t.Errorf("incoming %q: answered %q, keep=%v", in, got, keep)
			}
		}
	})
	t.Run("panic becomes 500 and a log line", func(t *testing.T) {
		logs.Reset()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/panic", nil))
		p := decodeProblem(t, w, 500, "internal")
		if p.RequestID == "" || p.RequestID != w.Header().Get("X-Request-ID") {
			t.Errorf("problem request id %q, header %q", p.RequestID, w.Header().Get("X-Request-ID"))
		}
		out := logs.String()
		if !strings.Contains(out, `"msg":"panic"`) || !strings.Contains(out, "handler bug") || !strings.Contains(out, `"status":500`) {
			t.Errorf("logs do not show the panic and its 500:\n%s", out)
		}
	})
	t.Run("panic after part of an answer aborts", func(t *testing.T) {
		logs.Reset()
		partial := web.Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("half"))
			panic("late bug")
		}), web.Observe(logger, false))
		w := httptest.NewRecorder()
		func() {
			defer func() {
				if v := recover(); v != http.ErrAbortHandler {
					t.Errorf("recovered %v, want http.ErrAbortHandler", v)
				}
			}()
			partial.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		}()
		if strings.Contains(w.Body.String(), "problem") || w.Body.String() != "half" {
			t.Errorf("body %q: a problem was appended to a partial answer", w.Body.String())
		}
		if !strings.Contains(logs.String(), "late bug") {
			t.Errorf("the panic was not logged: %s", logs.String())
		}
	})
	t.Run("only the id read is echoed", func(t *testing.T) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Add("X-Request-ID", "first")
		r.Header.Add("X-Request-ID", "second")
		h.ServeHTTP(w, r)
		if got := w.Header().Values("X-Request-ID"); len(got) != 1 || got[0] != "first" {
			t.Errorf("echoed %q", got)
		}
	})
	t.Run("unique ids", func(t *testing.T) {
		seen := map[string]bool{}
		for range 100 {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/bad", nil))
			id := w.Header().Get("X-Request-ID")
			if p := decodeProblem(t, w, 400, "validation"); p.RequestID != id {
				t.Fatalf("problem request id %q, header %q", p.RequestID, id)
			}
			if seen[id] {
				t.Fatalf("id %q given twice", id)
			}
			seen[id] = true
		}
	})
}

func decodeLine(t *testing.T, logs *bytes.Buffer) map[string]any {
	t.Helper()
	var line map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(logs.Bytes()), &line); err != nil {
		t.Fatalf("log %q: %v", logs, err)
	}
	return line
}

func TestClientIPs(t *testing.T) {
	t.Parallel()
	trusted, err := web.ParsePrefixes("10.0.0.0/8, 192.168.1.1,::1")
	if err != nil {
		t.Fatal(err)
	}
	ips := web.NewClientIPs(trusted)
	tests := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct client", "203.0.113.7:5555", nil, "203.0.113.7"},
		{"untrusted peer's header ignored", "203.0.113.7:5555", []string{"1.2.3.4"}, "203.0.113.7"},
		{"trusted proxy", "10.1.2.3:80", []string{"198.51.100.9"}, "198.51.100.9"},
		{"chain of proxies", "10.1.2.3:80", []string{"6.6.6.6, 198.51.100.9, 192.168.1.1"}, "198.51.100.9"},
		{"several headers", "[::1]:80", []string{"6.6.6.6", "198.51.100.9, 10.9.9.9"}, "198.51.100.9"},
		{"spoofed left entries ignored", "10.1.2.3:80", []string{"10.0.0.1, 7.7.7.7"}, "7.7.7.7"},
		{"only trusted hops", "10.1.2.3:80", []string{"10.0.0.5"}, "10.0.0.5"},
		{"garbage falls back to peer", "10.1.2.3:80", []string{"not-an-ip"}, "10.1.2.3"},
		{"entry with a port", "10.1.2.3:80", []string{"198.51.100.9:5555"}, "198.51.100.9"},
		{"IPv6 entry with a port", "10.1.2.3:80", []string{"[2001:db8::9]:443"}, "2001:db8::9"},
		{"trusted peer, no header", "10.1.2.3:80", nil, "10.1.2.3"},
		{"ipv4-mapped", "[::ffff:203.0.113.7]:1", nil, "203.0.113.7"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		for _, v := range tt.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := ips.Of(r); got != netip.MustParseAddr(tt.want) {
			t.Errorf("%s: got %v, want %s", tt.name, got, tt.want)
		}
	}
	if _, err := web.ParsePrefixes("10.0.0.0/8,nonsense"); err == nil {
		t.Error("ParsePrefixes accepted nonsense")
	}
}

func TestRateLimiter(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	l := web.NewRateLimiter(2, 3, clock) // 2/s, burst 3
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i := range 3 {
		if ok, _ := l.Allow(a); !ok {
			t.Fatalf("burst request %d refused", i)
		}
	}
	ok, wait := l.Allow(a)
	if ok || wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("4th request: ok=%v wait=%v, want refused with wait in (0, 500ms]", ok, wait)
	}
	if ok, _ := l.Allow(b); !ok {
		t.Fatal("another client is limited by the first one's use")
	}
	now = now.Add(500 * time.Millisecond) // one token back
	if ok, _ := l.Allow(a); !ok {
		t.Fatal("refill did not give a token back")
	}
	if ok, _ := l.Allow(a); ok {
		t.Fatal("more tokens than the refill gave")
	}

	// The addresses of one IPv6 /64 share a bucket; another /64 does not.
	v6 := web.NewRateLimiter(2, 1, clock)
	if ok, _ := v6.Allow(netip.MustParseAddr("2001:db8:1:2::1")); !ok {
		t.Fatal("first request of a /64 refused")
	}
	if ok, _ := v6.Allow(netip.MustParseAddr("2001:db8:1:2::ffff")); ok {
		t.Error("another address of the same /64 got a fresh bucket")
	}
	if ok, _ := v6.Allow(netip.MustParseAddr("2001:db8:1:3::1")); !ok {
		t.Error("another /64 is limited by the first")
	}

	ips := web.NewClientIPs(nil)
	h := web.Limit(l, ips)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(202) }))
	r := httptest.NewRequest("POST", "/", nil)
	r.RemoteAddr = "192.0.2.1:1000"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	decodeProblem(t, w, 429, "rate-limited")
	if w.Header().Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q, want 1", w.Header().Get("Retry-After"))
	}
	now = now.Add(10 * time.Minute) // refilled, and old buckets are swept
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 202 {
		t.Errorf("after refill: status %d", w.Code)
	}
}

// TestDeadline checks the lazily armed deadline context: a deadline is
// visible at once, Err agrees with the clock before Done is asked for, Done
// closes at the deadline once armed, and a parent's cancel goes through.
func TestDeadline(t *testing.T) {
	t.Parallel()
	run := func(d time.Duration, parent context.Context, f func(ctx context.Context)) {
		h := web.Deadline(d)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f(r.Context()) }))
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil).WithContext(parent))
	}
	t.Run("deadline and Err before arming", func(t *testing.T) {
		run(200*time.Millisecond, context.Background(), func(ctx context.Context) {
			dl, ok := ctx.Deadline()
			if !ok || time.Until(dl) > 200*time.Millisecond {
				t.Errorf("Deadline = %v, %v", dl, ok)
			}
			if err := ctx.Err(); err != nil && time.Now().Before(dl) {
				t.Errorf("Err before the deadline = %v", err)
			}
			time.Sleep(time.Until(dl) + 10*time.Millisecond)
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				t.Errorf("Err after the deadline = %v", ctx.Err())
			}
			if err := ctx.Err(); err != ctx.Err() {
				t.Errorf("Err changed from %v", err)
			}
			// A context derived from it ends with it.
			child, cancel := context.WithCancel(ctx)
			defer cancel()
			select {
			case <-child.Done():
			case <-time.After(time.Second):
				t.Error("a derived context outlived its parent's deadline")
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
				t.Error("Done did not close for a past deadline")
			}
		})
	})
	t.Run("Done closes at the deadline", func(t *testing.T) {
		run(30*time.Millisecond, context.Background(), func(ctx context.Context) {
			dl, _ := ctx.Deadline()
			select {
			case <-ctx.Done():
				if time.Now().Before(dl) {
					t.Errorf("Done closed %v before the deadline", time.Until(dl))
				}
				if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
					t.Errorf("Err = %v", ctx.Err())
				}
			case <-time.After(5 * time.Second):
				t.Error("Done never closed")
			}
		})
	})
	t.Run("parent cancel", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		run(time.Hour, parent, func(ctx context.Context) {
			done := ctx.Done()
			cancel()
			select {
			case <-done:
				if !errors.Is(ctx.Err(), context.Canceled) {
					t.Errorf("Err = %v", ctx.Err())
				}
			case <-time.After(5 * time.Second):
				t.Error("the parent's cancel did not reach the request")
			}
		})
	})
	t.Run("earlier parent deadline wins", func(t *testing.T) {
		parent, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		want, _ := parent.Deadline()
		run(time.Hour, parent, func(ctx context.Context) {
			if dl, _ := ctx.Deadline(); !dl.Equal(want) {
				t.Errorf("Deadline = %v, want the parent's %v", dl, want)
			}
			if v := ctx.Value(struct{}{}); v != nil {
				t.Errorf("Value = %v", v)
			}
		})
	})
}

// TestRateLimiterBounded checks that the limiter forgets its clients, failing
// open, rather than grow past its bound when many addresses come at once.
func TestRateLimiterBounded(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	l := web.NewRateLimiter(1, 1, func() time.Time { return now })
	a := netip.MustParseAddr("192.0.2.1")
	l.Allow(a)
	if ok, _ := l.Allow(a); ok {
		t.Fatal("burst of 1 allowed twice")
	}
	for i := range 1 << 16 {
		l.Allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	if ok, _ := l.Allow(a); !ok {
		t.Error("past the bound, the limiter still remembers every client")
	}
}
