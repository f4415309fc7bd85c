package main

import (
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/features/ingest"
	"github.com/webtracker/tracker/internal/features/visitors"
	"github.com/webtracker/tracker/internal/infra/metrics"
	"github.com/webtracker/tracker/internal/web"
)

// store is what the features need of the storage.
type store interface {
	ingest.Recorder
	visitors.Counter
}

// deps is what the handlers are built from; run makes each part.
type deps struct {
	logger         *slog.Logger
	quietSuccess   bool // access lines of 2xx/3xx answers at Debug level
	store          store
	metrics        *metrics.Metrics
	policy         domain.URLPolicy
	relativeError  float64 // of the store's counts; 0: exact
	ready          *atomic.Bool
	health         func() error     // nil: the store is always healthy
	limiter        *web.RateLimiter // nil: no rate limit
	clientIPs      *web.ClientIPs
	requestTimeout time.Duration
}

// route is one method on one path of the API.
type route struct {
	method, path string
	handler      http.Handler
}

// routes is the one map of the API: every route and the middleware it alone
// gets. What every request gets is in newHandler.
func routes(d deps) []route {
	ingestHandler := ingest.Handler(d.store, d.policy)
	if d.limiter != nil {
		ingestHandler = web.Limit(d.limiter, d.clientIPs)(ingestHandler)
	}
	return []route{
		{http.MethodPost, "/api/v1/events", ingestHandler},
		{http.MethodGet, "/api/v1/visitors", visitors.Handler(d.store, d.policy, d.relativeError)},
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
	mux := http.NewServeMux()
	for _, p := range paths {
		obs := d.metrics.Route(p, p == "/api/v1/events")
		mux.Handle(p, web.Observed(obs, web.Methods(byPath[p])))
	}
	mux.Handle("/", web.Observed(d.metrics.Route("other", false), web.NotFound()))
	return web.Chain(mux,
		web.Observe(d.logger, d.quietSuccess),
		web.Deadline(d.requestTimeout),
	)
}
