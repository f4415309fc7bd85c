// Package visitors is the feature that answers how many distinct visitors a
// page had: GET /api/v1/visitors?url=<page URL>.
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

// Response is the answer: the page's canonical URL and its visitors, and
// whether that is an exact count or an estimate, with the estimate's
// relative standard error.
type Response struct {
	URL           string  `json:"url"`
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
		bufp := answers.Get().(*[]byte)
		body := appendResponse((*bufp)[:0], Response{URL: page.String(), Visitors: n.Visitors,
			Exact: n.Exact(), RelativeError: n.RelativeError})
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

// pageOf reads the one url parameter of a query string. Other parameters
// are not read, so they cannot make the query fail.
func pageOf(rawQuery string, policy domain.URLPolicy) (domain.PageURL, error) {
	var (
		raw   string
		found int
	)
	for q := rawQuery; q != ""; {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		key, value, _ := strings.Cut(pair, "=")
		if key != "url" {
			if !strings.ContainsAny(key, "%+") {
				continue
			}
			if k, err := url.QueryUnescape(key); err != nil || k != "url" {
				continue
			}
		}
		if found++; found > 1 {
			return domain.PageURL{}, &domain.FieldError{Field: "url", Reason: "must be given once"}
		}
		raw = value
		if strings.ContainsAny(value, "%+") {
			v, err := url.QueryUnescape(value)
			if err != nil {
				return domain.PageURL{}, &domain.FieldError{Field: "url", Reason: "is not properly URL-encoded in the query string"}
			}
			raw = v
		}
	}
	if found == 0 {
		return domain.PageURL{}, &domain.FieldError{Field: "url", Reason: "is required"}
	}
	return policy.Canonical(raw)
}
