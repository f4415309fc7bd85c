// Package visitors is the feature that answers how many distinct visitors a
// page had: GET /api/v1/visitors?url=<page URL>.
package visitors

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/web"
)

// Counter answers the number of distinct visitors of a page; a page never
// seen has 0.
type Counter interface {
	Visitors(ctx context.Context, page domain.PageURL) (int64, error)
}

// Response is the answer: the page's canonical URL and its visitors.
type Response struct {
	URL      string `json:"url"`
	Visitors int64  `json:"visitors"`
}

// Handler answers 200 with a Response, or a problem for a bad query.
func Handler(c Counter, policy domain.URLPolicy) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page, err := pageOf(r.URL.RawQuery, policy)
		if err != nil {
			web.Error(w, r, err)
			return
		}
		n, err := c.Visitors(r.Context(), page)
		if err != nil {
			web.Error(w, r, err)
			return
		}
		// Counts change with every event: no cache may keep one.
		w.Header().Set("Cache-Control", "no-store")
		web.WriteJSON(w, r, http.StatusOK, Response{URL: page.String(), Visitors: n})
	})
}

// pageOf reads the one url parameter of a query string; other parameters
// are ignored.
func pageOf(rawQuery string, policy domain.URLPolicy) (domain.PageURL, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return domain.PageURL{}, &domain.FieldError{Field: "url",
			Reason: fmt.Sprintf("the query string is malformed: %v", err)}
	}
	switch vals := q["url"]; {
	case len(vals) == 0:
		return domain.PageURL{}, &domain.FieldError{Field: "url", Reason: "is required"}
	case len(vals) > 1:
		return domain.PageURL{}, &domain.FieldError{Field: "url", Reason: "must be given once"}
	default:
		return policy.Canonical(vals[0])
	}
}
