package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// RequireToken lets through only requests with "Authorization: Bearer
// <token>" and answers 401 to the others. An empty token lets every request
// through. The comparison takes the same time whatever the sent token, so
// that its bytes cannot be guessed one at a time.
func RequireToken(token string) Middleware {
	want := sha256.Sum256([]byte(token))
	return func(next http.Handler) http.Handler {
		if token == "" {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, ok := strings.CutPrefix(headerValue(r.Header, "Authorization"), "Bearer ")
			// Hashing first makes the comparison independent of the lengths.
			sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
			if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="tracker"`)
				detail := "this endpoint needs Authorization: Bearer <token> (the service's -api-token)"
				if ok {
					detail = "the bearer token is not the service's -api-token"
				}
				Error(w, r, &StatusError{Status: http.StatusUnauthorized, Slug: "unauthorized", Detail: detail})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
