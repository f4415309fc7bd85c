package main

import (
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/features/dashboard"
	"github.com/webtracker/tracker/internal/features/ingest"
	"github.com/webtracker/tracker/internal/features/pages"
	"github.com/webtracker/tracker/internal/features/snippet"
	"github.com/webtracker/tracker/internal/features/visitors"
	"github.com/webtracker/tracker/internal/infra/metrics"
	"github.com/webtracker/tracker/internal/web"
)

// store is what the features need of the storage.
type store interface {
	ingest.Recorder
	visitors.Counter
	visitors.RangeCounter
	pages.Lister
	pages.RangeLister
}

// deps is what the handlers are built from; run makes each part.
type deps struct {
	logger         *slog.Logger
	quietSuccess   bool // access lines of 2xx/3xx answers at Debug level
	store          store
	metrics        *metrics.Metrics
	policy         domain.URLPolicy
	ready          *atomic.Bool
	health         func() error     // nil: the store is always healthy
	limiter        *web.RateLimiter // nil: no rate limit
	clientIPs      *web.ClientIPs
	requestTimeout time.Duration
	clock          domain.Clock // now and the retention, for times and ranges

	sites           ingest.Sites // nil: every host
	corsOrigins     string       // may send events from a browser
	corsReadOrigins string       // may read counts from a browser
	apiToken        string       // "": reads are open
}

// route is one method on one path of the API.
type route struct {
	method, path string
	handler      http.Handler
}

// routes is the one map of the API: every route and the middleware it alone
// gets. What every request gets is in newHandler.
func routes(d deps) []route {
	ingestCORS := web.NewCORS(d.corsOrigins, http.MethodPost)
	ingestHandler := web.Chain(ingest.Handler(d.store, d.policy, d.sites, d.clock), ingestCORS.Middleware())
	if d.limiter != nil {
		ingestHandler = web.Limit(d.limiter, d.clientIPs)(ingestHandler)
	}
	// Reads: CORS outside the token check, so that a browser can read a 401.
	readCORS := web.NewCORS(d.corsReadOrigins, http.MethodGet)
	read := func(h http.Handler) http.Handler {
		return web.Chain(h, readCORS.Middleware(), web.RequireToken(d.apiToken))
	}
	return []route{
		{http.MethodPost, "/api/v1/events", ingestHandler},
		{http.MethodOptions, "/api/v1/events", ingestCORS.Preflight()},
		{http.MethodGet, "/api/v1/visitors", read(visitors.Handler(d.store, d.store, d.policy, d.clock))},
		{http.MethodOptions, "/api/v1/visitors", readCORS.Preflight()},
		{http.MethodGet, "/api/v1/visitors/daily", read(visitors.Daily(d.store, d.policy, d.clock))},
		{http.MethodOptions, "/api/v1/visitors/daily", readCORS.Preflight()},
		{http.MethodGet, "/api/v1/pages", read(pages.Handler(d.store, d.store, time.Second, d.clock))},
		{http.MethodOptions, "/api/v1/pages", readCORS.Preflight()},
		{http.MethodGet, "/", dashboard.Handler("index.html", "text/html; charset=utf-8")},
		{http.MethodGet, "/dashboard.js", dashboard.Handler("dashboard.js", "text/javascript; charset=utf-8")},
		{http.MethodGet, "/dashboard.css", dashboard.Handler("dashboard.css", "text/css; charset=utf-8")},
		{http.MethodGet, "/tracker.js", snippet.Handler()},
		{http.MethodGet, "/healthz", healthz()},
		{http.MethodGet, "/readyz", readyz(d.ready, d.health)},
		{http.MethodGet, "/openapi.yaml", openAPI()},
		{http.MethodGet, "/metrics", d.metrics.Handler()},
	}
}

// newHandler builds the service's handler: the routes, 405 for a known path
// with another method, 404 for any other path, and the middleware every
// request gets, outermost first.
func newHandler(d deps) http.Handler {
	byPath := make(map[string]map[string]http.Handler)
	var paths []string
	for _, rt := range routes(d) {
		if byPath[rt.path] == nil {
			byPath[rt.path] = make(map[string]http.Handler)
			paths = append(paths, rt.path)
		}
		byPath[rt.path][rt.method] = rt.handler
	}
	// Every route is an exact path, so a map finds the handler: cheaper
	// than a pattern router, and a path that is not one of them, however it
	// is spelled (a double slash, a dot segment), is a 404 problem rather
	// than a redirect to its cleaned form.
	mux := exactPaths{other: web.Observed(d.metrics.Route("other", false), web.NotFound()),
		byPath: make(map[string]http.Handler, len(paths))}
	for _, p := range paths {
		mux.byPath[p] = web.Observed(d.metrics.Route(p, p == "/api/v1/events"), web.Methods(byPath[p]))
	}
	return web.Chain(mux,
		web.Observe(d.logger, d.quietSuccess),
		web.Deadline(d.requestTimeout),
	)
}

// exactPaths serves each request with the handler of its exact path, and
// with other for any other path.
type exactPaths struct {
	byPath map[string]http.Handler
	other  http.Handler
}

func (m exactPaths) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h, ok := m.byPath[r.URL.Path]; ok {
		h.ServeHTTP(w, r)
		return
	}
	m.other.ServeHTTP(w, r)
}
