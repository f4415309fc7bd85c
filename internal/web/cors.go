package web

import (
	"net/http"
	"slices"
	"strings"
)

// CORS says which other origins a browser may let call a route.
type CORS struct {
	any     bool     // "*": every origin
	origins []string // exact origins, scheme://host[:port]
	methods string   // of the routes it guards, for preflights
	headers string   // request headers a preflight may ask for
}

// NewCORS allows the comma-separated origins in list ("*" for any; "" for
// none) to call routes with methods; a preflight may ask for the
// Content-Type and Authorization headers.
func NewCORS(list string, methods ...string) *CORS {
	c := &CORS{methods: strings.Join(methods, ", "), headers: "Content-Type, Authorization"}
	for o := range strings.SplitSeq(list, ",") {
		switch o = strings.TrimSpace(o); o {
		case "":
		case "*":
			c.any = true
		default:
			// Scheme and host are case-insensitive; browsers send them
			// lower-case.
			c.origins = append(c.origins, strings.ToLower(strings.TrimSuffix(o, "/")))
		}
	}
	return c
}

// allow returns the Access-Control-Allow-Origin value for origin, or "".
func (c *CORS) allow(origin string) string {
	switch {
	case origin == "":
		return ""
	case c.any:
		return "*"
	case slices.Contains(c.origins, strings.ToLower(origin)):
		return origin
	}
	return ""
}

// Middleware adds Access-Control-Allow-Origin to the answers of requests
// from an allowed origin. Unless every origin is allowed, every answer
// depends on the origin, and says so in Vary, so that a shared cache does
// not give one origin's answer to another.
func (c *CORS) Middleware() Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if allowed := c.allow(headerValue(r.Header, "Origin")); allowed != "" {
				w.Header().Set("Access-Control-Allow-Origin", allowed)
			}
			if !c.any {
				addVaryOrigin(w.Header())
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Preflight answers a CORS preflight (OPTIONS) with 204: with the allowed
// methods and headers for an allowed origin, with no CORS headers (so the
// browser refuses the call) for any other.
func (c *CORS) Preflight() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if allowed := c.allow(headerValue(r.Header, "Origin")); allowed != "" {
			h.Set("Access-Control-Allow-Origin", allowed)
			h.Set("Access-Control-Allow-Methods", c.methods)
			h.Set("Access-Control-Allow-Headers", c.headers)
			h.Set("Access-Control-Max-Age", "86400")
		}
		if !c.any {
			addVaryOrigin(h)
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// varyOrigin is the value of a Vary header naming only Origin, shared by
// every answer that has no other: net/http copies header values and never
// changes them, and an Add after it appends to a full slice, so copies it.
var varyOrigin = []string{"Origin"}

// addVaryOrigin adds Origin to h's Vary header without allocating when it
// is the only one.
func addVaryOrigin(h http.Header) {
	if v := h["Vary"]; len(v) > 0 {
		h["Vary"] = append(v, "Origin")
		return
	}
	h["Vary"] = varyOrigin
}
