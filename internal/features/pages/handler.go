// Package pages is the feature that ranks pages by distinct visitors:
// GET /api/v1/pages?limit=&offset=.
package pages

import (
	"cmp"
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/web"
)

// Lister lists every page and its count, in any order.
type Lister interface {
	Pages(ctx context.Context) ([]domain.PageCount, error)
}

// Limits of the query parameters.
const (
	DefaultLimit = 20
	MaxLimit     = 1000
)

// Response is the answer: one slice of the ranking, and the number of pages.
type Response struct {
	Pages []Page `json:"pages"`
	Total int    `json:"total"`
}

// Page is one page of the ranking.
type Page struct {
	URL      string `json:"url"`
	Visitors int64  `json:"visitors"`
}

// Handler answers 200 with a Response: pages by visitors, most first, ties
// by URL. The ranking is computed at most once per ttl and shared by every
// request meanwhile, so that asking for it never weighs on ingest more than
// one pass over the pages per ttl.
func Handler(l Lister, ttl time.Duration, now func() time.Time) http.Handler {
	c := &cache{list: l, ttl: ttl, now: now}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit, offset, err := window(r.URL.Query())
		if err != nil {
			web.Error(w, r, err)
			return
		}
		ranked, err := c.get(r.Context())
		if err != nil {
			web.Error(w, r, err)
			return
		}
		resp := Response{Pages: []Page{}, Total: len(ranked)}
		for _, pc := range ranked[min(offset, len(ranked)):min(offset+limit, len(ranked))] {
			resp.Pages = append(resp.Pages, Page{URL: pc.URL, Visitors: pc.Visitors})
		}
		w.Header().Set("Cache-Control", "no-store")
		web.WriteJSON(w, r, http.StatusOK, resp)
	})
}

// window reads limit and offset, each at most once.
func window(q url.Values) (limit, offset int, err error) {
	read := func(name string, def, lo, hi int) (int, error) {
		vs, ok := q[name]
		switch {
		case !ok:
			return def, nil
		case len(vs) != 1:
			return 0, &domain.FieldError{Field: name, Reason: "must be given once"}
		}
		n, err := strconv.Atoi(vs[0])
		if err != nil || n < lo || n > hi {
			return 0, &domain.FieldError{Field: name, Reason: "must be an integer from " + strconv.Itoa(lo) + " to " + strconv.Itoa(hi)}
		}
		return n, nil
	}
	limit, lerr := read("limit", DefaultLimit, 1, MaxLimit)
	offset, oerr := read("offset", 0, 0, 1<<31-1)
	return limit, offset, domain.Validate(lerr, oerr)
}

// cache keeps the ranking for ttl.
type cache struct {
	list Lister
	ttl  time.Duration
	now  func() time.Time

	mu     sync.Mutex // held while the ranking is made: one pass at a time
	at     time.Time
	ranked []domain.PageCount
}

func (c *cache) get(ctx context.Context) ([]domain.PageCount, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ranked != nil && c.now().Sub(c.at) < c.ttl {
		return c.ranked, nil
	}
	list, err := c.list.Pages(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list, func(a, b domain.PageCount) int {
		return cmp.Or(cmp.Compare(b.Visitors, a.Visitors), cmp.Compare(a.URL, b.URL))
	})
	if list == nil {
		list = []domain.PageCount{}
	}
	c.ranked, c.at = list, c.now()
	return list, nil
}
