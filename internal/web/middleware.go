package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Middleware wraps a handler with behaviour common to several routes.
type Middleware func(http.Handler) http.Handler

// Chain applies middleware so that the first listed is the outermost.
func Chain(h http.Handler, mw ...Middleware) http.Handler {
	for _, m := range slices.Backward(mw) {
		h = m(h)
	}
	return h
}

// Methods serves each request with the handler for its method and answers
// 405 with an Allow header otherwise. A GET handler serves HEAD too.
func Methods(handlers map[string]http.Handler) http.Handler {
	allowed := make([]string, 0, len(handlers)+1)
	for m := range handlers {
		allowed = append(allowed, m)
	}
	if _, ok := handlers[http.MethodGet]; ok {
		if _, ok := handlers[http.MethodHead]; !ok {
			allowed = append(allowed, http.MethodHead)
		}
	}
	slices.Sort(allowed)
	allow := strings.Join(allowed, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := handlers[r.Method]
		if !ok && r.Method == http.MethodHead {
			h, ok = handlers[http.MethodGet]
		}
		if !ok {
			Error(w, r, &StatusError{Status: http.StatusMethodNotAllowed, Slug: "method-not-allowed",
				Detail: "method " + r.Method + " is not allowed here; allowed: " + allow, Allow: allow})
			return
		}
		h.ServeHTTP(w, r)
	})
}

type requestIDKey struct{}

// RequestID returns the id given to the request by the RequestIDs
// middleware, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// RequestIDs gives each request an id, kept from a sane incoming X-Request-ID
// (so that a proxy's id follows the request) or made here, and echoes it in
// the X-Request-ID response header.
func RequestIDs() Middleware {
	// A random prefix per process and a counter make ids unique across
	// restarts and instances without a random read per request.
	var prefix [6]byte
	_, _ = rand.Read(prefix[:])
	base := hex.EncodeToString(prefix[:]) + "-"
	var seq atomic.Uint64
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := r.Header.Get("X-Request-ID")
			if !validRequestID(id) {
				id = base + strconv.FormatUint(seq.Add(1), 36)
			}
			w.Header().Set("X-Request-ID", id)
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
		})
	}
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// statusRecorder remembers what a handler answered, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	err    error
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// noteError hands err to the access log, if one wraps w.
func noteError(w http.ResponseWriter, err error) {
	if rec, ok := w.(*statusRecorder); ok {
		rec.err = err
	}
}

// AccessLog writes one line per request at level Info: method, path, status,
// duration, bytes and request id, plus the error behind a 5xx answer.
func AccessLog(logger *slog.Logger) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !logger.Enabled(r.Context(), slog.LevelInfo) {
				next.ServeHTTP(w, r)
				return
			}
			start := time.Now()
			rec := &statusRecorder{ResponseWriter: w}
			defer func() {
				// Logged even when a panic unwinds through here, so the
				// Recover middleware's 500 is on record.
				level := slog.LevelInfo
				attrs := []slog.Attr{
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.Int("status", rec.status),
					slog.Duration("duration", time.Since(start)),
					slog.Int64("bytes", rec.bytes),
					slog.String("request_id", RequestID(r.Context())),
				}
				if rec.status >= 500 {
					level = slog.LevelError
					if rec.err != nil {
						attrs = append(attrs, slog.String("error", rec.err.Error()))
					}
				}
				logger.LogAttrs(r.Context(), level, "request", attrs...)
			}()
			next.ServeHTTP(rec, r)
		})
	}
}

// Recover turns a panicking handler into a 500 problem answer and a logged
// stack, and keeps the server serving. http.ErrAbortHandler is let through,
// as net/http expects.
func Recover(logger *slog.Logger) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler {
					panic(v)
				}
				logger.LogAttrs(r.Context(), slog.LevelError, "panic",
					slog.String("request_id", RequestID(r.Context())),
					slog.Any("panic", v),
					slog.String("stack", string(debug.Stack())))
				Error(w, r, fmt.Errorf("panic: %v", v))
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// Deadline bounds each request's context by d, so that work on its behalf
// (a store call, a wait) stops when the client could no longer use the answer.
func Deadline(d time.Duration) Middleware {
	return func(next http.Handler) http.Handler {
		if d <= 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}
