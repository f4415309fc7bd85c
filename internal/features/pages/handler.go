// Package pages is the feature that ranks pages by distinct visitors:
// GET /api/v1/pages?limit=&offset=, all-time or over a range of days
// (&from=&to=&tz=).
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

// RangeLister lists every page with visitors in a period, and its count
// there, in any order.
type RangeLister interface {
	PagesIn(ctx context.Context, p domain.Period) ([]domain.PageCount, error)
}

// Limits of the query parameters.
const (
	DefaultLimit = 20
	MaxLimit     = 1000
)

// Response is the answer: one slice of the ranking, and the number of pages;
// for a range, the range as read (open bounds filled in).
type Response struct {
	Pages []Page `json:"pages"`
	Total int    `json:"total"`
	From  string `json:"from,omitempty"`
	To    string `json:"to,omitempty"`
	TZ    string `json:"tz,omitempty"`
}

// Page is one page of the ranking.
type Page struct {
	URL      string `json:"url"`
	Visitors int64  `json:"visitors"`
	Exact    bool   `json:"exact"` // false for an estimate
}

// Handler answers 200 with a Response: pages by visitors, most first, ties
// by URL. The all-time ranking is computed at most once per ttl and shared
// by every request meanwhile, so that asking for it never weighs on ingest
// more than one pass over the pages per ttl. A ranking over a range of days
// (from or to given, days taken in tz, checked against clock) is made for
// its request, from rl.
func Handler(l Lister, rl RangeLister, ttl time.Duration, clock domain.Clock) http.Handler {
	c := &cache{list: l, ttl: ttl, now: clock.Now}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, offset, err := window(q)
		var (
			rng    domain.DateRange
			ranged bool
		)
		if err == nil {
			rng, ranged, err = dates(q, clock)
		}
		if err != nil {
			web.Error(w, r, err)
			return
		}
		var ranked []domain.PageCount
		if ranged {
			ranked, err = rl.PagesIn(r.Context(), rng.Period())
			sortRanking(ranked)
		} else {
			ranked, err = c.get(r.Context())
		}
		if err != nil {
			web.Error(w, r, err)
			return
		}
		resp := Response{Pages: []Page{}, Total: len(ranked)}
		if ranged {
			resp.From, resp.To, resp.TZ = rng.From.String(), rng.To.String(), rng.Zone.String()
		}
		for _, pc := range ranked[min(offset, len(ranked)):min(offset+limit, len(ranked))] {
			resp.Pages = append(resp.Pages, Page{URL: pc.URL, Visitors: pc.Visitors, Exact: pc.Exact()})
		}
		w.Header().Set("Cache-Control", "no-store")
		web.WriteJSON(w, r, http.StatusOK, resp)
	})
}

// dates reads from, to and tz, each at most once: a range if from or to is
// given (ranged), else nothing, and then no tz either.
func dates(q url.Values, clock domain.Clock) (rng domain.DateRange, ranged bool, err error) {
	var vals [3]string
	var errs []error
	for i, name := range [...]string{"from", "to", "tz"} {
		switch vs := q[name]; {
		case len(vs) > 1:
			errs = append(errs, &domain.FieldError{Field: name, Reason: "must be given once"})
		case len(vs) == 1 && vs[0] == "" && name != "tz":
			errs = append(errs, &domain.FieldError{Field: name, Reason: "must be a date written YYYY-MM-DD"})
		case len(vs) == 1:
			vals[i] = vs[0]
		}
	}
	if err := domain.Validate(errs...); err != nil {
		return rng, false, err
	}
	_, hasFrom := q["from"]
	_, hasTo := q["to"]
	if !hasFrom && !hasTo {
		if _, hasTZ := q["tz"]; hasTZ {
			return rng, false, domain.Validate(&domain.FieldError{Field: "tz",
				Reason: "is read only with from or to; without them the ranking is all-time"})
		}
		return rng, false, nil
	}
	rng, err = domain.ParseDateRange(vals[0], vals[1], vals[2], clock.Now(), clock.Retention)
	return rng, true, err
}

// sortRanking sorts pages by visitors, most first, ties by URL.
func sortRanking(list []domain.PageCount) {
	slices.SortFunc(list, func(a, b domain.PageCount) int {
		return cmp.Or(cmp.Compare(b.Visitors, a.Visitors), cmp.Compare(a.URL, b.URL))
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

// makeTimeout bounds one making of the ranking.
const makeTimeout = 10 * time.Second

// cache keeps the ranking for ttl. One request at a time makes it; the
// others wait for that one, each no longer than its own context.
type cache struct {
	list Lister
	ttl  time.Duration
	now  func() time.Time

	mu      sync.Mutex
	at      time.Time
	ranked  []domain.PageCount
	err     error         // of the last making
	running chan struct{} // closed when the making under way ends; nil if none
}

func (c *cache) get(ctx context.Context) ([]domain.PageCount, error) {
	c.mu.Lock()
	if c.ranked != nil && c.now().Sub(c.at) < c.ttl {
		defer c.mu.Unlock()
		return c.ranked, nil
	}
	if running := c.running; running != nil {
		c.mu.Unlock()
		select {
		case <-running:
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.ranked, c.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	running := make(chan struct{})
	c.running = running
	c.mu.Unlock()

	// Made for every waiter, so not cut short by the one client that asked.
	makeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), makeTimeout)
	list, err := c.list.Pages(makeCtx)
	cancel()
	if err == nil {
		sortRanking(list)
		if list == nil {
			list = []domain.PageCount{}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
	if err == nil {
		c.ranked, c.at = list, c.now()
	}
	c.running = nil
	close(running)
	return list, err
}
