// Package visitors is the feature that answers how many distinct visitors a
// page had: GET /api/v1/visitors?url=<page URL>, all-time or over a range of
// days (&from=&to=&tz=), and GET /api/v1/visitors/daily, the same range day
// by day.
package visitors

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/web"
)

// Counter answers the number of distinct visitors of a page; a page never
// seen has 0.
type Counter interface {
	Visitors(ctx context.Context, page domain.PageURL) (domain.Count, error)
}

// RangeCounter answers the distinct visitors of a page in each of some
// periods, and in all of them together.
type RangeCounter interface {
	Range(ctx context.Context, page domain.PageURL, periods []domain.Period) (domain.RangeCount, error)
}

// Response is the answer: the page's canonical URL and its visitors, and
// whether that is an exact count or an estimate, with the estimate's
// relative standard error. From, To and TZ are the range asked for, as
// read (open bounds filled in); empty for all-time.
type Response struct {
	URL           string  `json:"url"`
	From          string  `json:"from,omitempty"`
	To            string  `json:"to,omitempty"`
	TZ            string  `json:"tz,omitempty"`
	Visitors      int64   `json:"visitors"`
	Exact         bool    `json:"exact"`
	RelativeError float64 `json:"relative_error,omitempty"`
}

// Header values shared by every answer; net/http copies, never changes, them.
var (
	jsonType = []string{"application/json"}
	noStore  = []string{"no-store"} // counts change with every event: no cache may keep one
)

// answers recycles the buffers answers are written from.
var answers = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// Handler answers 200 with a Response, or a problem for a bad query:
// all-time from c, or, with from or to, over those days from rc, days taken
// in tz (UTC by default) and checked against clock.
func Handler(c Counter, rc RangeCounter, policy domain.URLPolicy, clock domain.Clock) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := readQuery(r.URL.RawQuery)
		var page domain.PageURL
		if err == nil {
			page, err = q.page(policy)
		}
		if err != nil {
			web.Error(w, r, err)
			return
		}
		resp := Response{URL: page.String()}
		var n domain.Count
		if q.ranged() {
			var rng domain.DateRange
			if rng, err = q.dates(clock); err == nil {
				var got domain.RangeCount
				got, err = rc.Range(r.Context(), page, []domain.Period{rng.Period()})
				n = got.Total
				resp.From, resp.To, resp.TZ = rng.From.String(), rng.To.String(), rng.Zone.String()
			}
		} else if err = q.checkAllTime(); err == nil {
			n, err = c.Visitors(r.Context(), page)
		}
		if err != nil {
			web.Error(w, r, err)
			return
		}
		resp.Visitors, resp.Exact, resp.RelativeError = n.Visitors, n.Exact(), n.RelativeError
		bufp := answers.Get().(*[]byte)
		body := appendResponse((*bufp)[:0], resp)
		h := w.Header()
		h["Content-Type"] = jsonType
		h["Cache-Control"] = noStore
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
		*bufp = body
		answers.Put(bufp)
	})
}

// appendResponse appends the JSON of r, as encoding/json would write it with
// HTML escaping off, and a newline.
func appendResponse(b []byte, r Response) []byte {
	b = append(b, `{"url":`...)
	b = appendJSONString(b, r.URL)
	for _, f := range [...]struct{ key, value string }{{`,"from":`, r.From}, {`,"to":`, r.To}, {`,"tz":`, r.TZ}} {
		if f.value != "" {
			b = append(b, f.key...)
			b = appendJSONString(b, f.value)
		}
	}
	b = append(b, `,"visitors":`...)
	b = strconv.AppendInt(b, r.Visitors, 10)
	b = append(b, `,"exact":`...)
	b = strconv.AppendBool(b, r.Exact)
	if r.RelativeError != 0 {
		b = append(b, `,"relative_error":`...)
		b = strconv.AppendFloat(b, r.RelativeError, 'f', -1, 64)
	}
	return append(b, "}\n"...)
}

// appendJSONString appends s as a JSON string. A canonical URL is printable
// ASCII without quotes or backslashes, so the loop below only copies; the
// escapes are there so that the function is right for any string.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		case c < utf8.RuneSelf:
			b = append(b, c)
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
			continue
		}
		i++
	}
	return append(b, '"')
}

// query is what the endpoints read of a query string: url, and the range
// of days from, to and tz, each given at most once. Other parameters are not
// read, so they cannot make the query fail.
type query struct {
	url, from, to, tz string
	// given says which of url, from, to and tz the query has, in that
	// order, even empty.
	given [4]bool
}

// readQuery reads the parameters of a query string, in form encoding
// (%XX escapes, + for a space, in names as in values).
func readQuery(rawQuery string) (query, error) {
	var (
		q    query
		errs []error
	)
	seen := &q.given
	for rest := rawQuery; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		key, value, _ := strings.Cut(pair, "=")
		if strings.ContainsAny(key, "%+") {
			k, err := url.QueryUnescape(key)
			if err != nil {
				continue
			}
			key = k
		}
		var i int
		var dst *string
		switch key {
		case "url":
			i, dst = 0, &q.url
		case "from":
			i, dst = 1, &q.from
		case "to":
			i, dst = 2, &q.to
		case "tz":
			i, dst = 3, &q.tz
		default:
			continue
		}
		if seen[i] {
			errs = append(errs, &domain.FieldError{Field: key, Reason: "must be given once"})
			continue
		}
		seen[i] = true
		*dst = value
		if strings.ContainsAny(value, "%+") {
			v, err := url.QueryUnescape(value)
			if err != nil {
				errs = append(errs, &domain.FieldError{Field: key, Reason: "is not properly URL-encoded in the query string"})
				continue
			}
			*dst = v
		}
	}
	return q, domain.Validate(errs...)
}

// page returns the canonical page of the url parameter.
func (q query) page(policy domain.URLPolicy) (domain.PageURL, error) {
	if !q.given[0] {
		return domain.PageURL{}, &domain.FieldError{Field: "url", Reason: "is required"}
	}
	return policy.Canonical(q.url)
}

// ranged reports whether the query asks for a range of days (from or to
// given) rather than all-time.
func (q query) ranged() bool { return q.given[1] || q.given[2] }

// dates returns the range of days the query asks for.
func (q query) dates(clock domain.Clock) (domain.DateRange, error) {
	for i, name := range [...]string{"from", "to"} {
		if q.given[i+1] && [...]string{q.from, q.to}[i] == "" {
			return domain.DateRange{}, domain.Validate(&domain.FieldError{Field: name, Reason: "must be a date written YYYY-MM-DD"})
		}
	}
	return domain.ParseDateRange(q.from, q.to, q.tz, clock.Now(), clock.Retention)
}

// checkAllTime refuses a tz without from or to, which would be ignored.
func (q query) checkAllTime() error {
	if q.given[3] {
		return &domain.FieldError{Field: "tz", Reason: "is read only with from or to; without them the answer is all-time"}
	}
	return nil
}
