package main

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/webtracker/tracker/api"
	"github.com/webtracker/tracker/internal/web"
)

// healthz answers 200 while the process can serve at all (liveness).
func healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		web.WriteJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// readyz answers 200 while the service takes traffic, and 503 once shutdown
// has begun, so that a load balancer stops sending before the listener
// closes, or while health reports the store unable to take events.
func readyz(ready *atomic.Bool, health func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			web.Error(w, r, &web.StatusError{Status: http.StatusServiceUnavailable, Slug: "not-ready",
				Detail: "the service is shutting down", RetryAfter: 5 * time.Second})
			return
		}
		if health != nil {
			if err := health(); err != nil {
				web.Error(w, r, &web.StatusError{Status: http.StatusServiceUnavailable, Slug: "not-ready",
					Detail: "the store cannot take events: " + err.Error(), RetryAfter: 5 * time.Second})
				return
			}
		}
		web.WriteJSON(w, r, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// openAPI serves the OpenAPI document of the API.
func openAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(api.OpenAPI)
	})
}
