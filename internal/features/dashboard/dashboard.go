// Package dashboard is the feature a marketeer looks at: a page at / with
// the number of pages tracked, the top pages (a table and an SVG bar
// chart), refreshed every few seconds, and a lookup of any URL. It is
// embedded in the binary and makes no request but to this service; its
// Content-Security-Policy says so to the browser.
//
// The page and its assets are public; the data it reads comes from the read
// endpoints, which need the API token when one is set (the page asks for it
// once and keeps it in localStorage).
package dashboard

import (
	"embed"
	"net/http"
)

//go:embed static
var static embed.FS

// CSP lets the page load its own script and style and call its own origin,
// and nothing else.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler serves one file of the dashboard: index.html, dashboard.js or
// dashboard.css.
func Handler(name, contentType string) http.Handler {
	body, err := static.ReadFile("static/" + name)
	if err != nil {
		panic("dashboard: no embedded " + name) // a build without the file is a bug
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(body)
	})
}
