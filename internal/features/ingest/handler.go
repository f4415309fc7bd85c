// Package ingest is the feature that takes page views in:
// POST /api/v1/events with one JSON event per request.
package ingest

import (
	"context"
	"net/http"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/web"
)

// Recorder stores a page view. Recording is idempotent per (page, visitor).
type Recorder interface {
	Record(ctx context.Context, v domain.PageView) error
}

// Handler answers 202 Accepted once the event is recorded, and a problem
// otherwise; a rejected event is never recorded.
func Handler(rec Recorder, policy domain.URLPolicy) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := decodeRequest(r, policy)
		if err != nil {
			web.Error(w, r, err)
			return
		}
		if err := rec.Record(r.Context(), v); err != nil {
			web.Error(w, r, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}
