// Package baseline is the bare net/http handler the tracker is measured
// against: the API's two routes on net/http's own mux, doing no more than
// answering. The load generator of make bench and the allocation benchmark
// of cmd/tracker both serve it, so their floors are the same code.
package baseline

import (
	"io"
	"net/http"
)

// Answer is the fixed body of every GET /api/v1/visitors.
const Answer = `{"url":"https://example.com/","visitors":42}`

// Handler returns the baseline: POST /api/v1/events reads the body and
// answers 202; GET /api/v1/visitors writes Answer as JSON.
func Handler() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/events", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /api/v1/visitors", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, Answer)
	})
	return mux
}
