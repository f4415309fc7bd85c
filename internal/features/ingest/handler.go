// Package ingest is the feature that takes page views in:
// POST /api/v1/events with one JSON event per request.
package ingest

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/web"
)

// Recorder stores a page view. Recording is idempotent per (page, visitor).
type Recorder interface {
	Record(ctx context.Context, v domain.PageView) error
}

// Sites are the hosts events are taken for, lower-case; nil takes every
// host.
type Sites []string

// ParseSites reads a comma-separated list of hosts.
func ParseSites(list string) Sites {
	var s Sites
	for h := range strings.SplitSeq(list, ",") {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			s = append(s, h)
		}
	}
	return s
}

// check returns an error matching domain.ErrForbidden for a page of a host
// not in s.
func (s Sites) check(page domain.PageURL) error {
	if s == nil || slices.Contains(s, page.Hostname()) {
		return nil
	}
	return fmt.Errorf("%w: this tracker takes events for %s only, not %s", domain.ErrForbidden,
		strings.Join(s, ", "), page.Hostname())
}

// Handler answers 202 Accepted once the event is recorded, and a problem
// otherwise; a rejected event is never recorded. Events for pages of hosts
// not in sites are refused with 403. An event's time, if given, must be
// within clock's retention and not in the future; without one, the event
// happened at the time it is received.
func Handler(rec Recorder, policy domain.URLPolicy, sites Sites, clock domain.Clock) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := decodeRequest(r, policy, clock)
		if err == nil {
			err = sites.check(v.Page)
		}
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
