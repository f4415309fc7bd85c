// Package snippet is the feature that serves the tracking script a site adds
// with one tag: GET /tracker.js.
//
// The script sends a page view when it loads and on every single-page-app
// navigation (history.pushState, replaceState, popstate), through
// navigator.sendBeacon with a text/plain JSON body (which needs no CORS
// preflight), or fetch with keepalive where beacons are missing. The visitor
// id is the tag's data-visitor-id, else window.webTrackerVisitorId (a string
// or a function), else a random id kept in localStorage; no cookie. Events go
// to the script's own origin, or to the tag's data-endpoint.
package snippet

import (
	_ "embed"
	"net/http"
)

// Script is tracker.js, served as is: it is written small.
//
//go:embed tracker.js
var Script []byte

// Handler serves the script; browsers may keep it five minutes.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("Cache-Control", "public, max-age=300")
		h.Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(Script)
	})
}
