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
	"sync"
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
	// A slice, not the map: a route has one or two methods, and a scan of
	// those is cheaper than a map lookup on every request.
	type entry struct {
		method string
		h      http.Handler
	}
	var entries []entry
	allowed := make([]string, 0, len(handlers)+1)
	for m, h := range handlers {
		entries = append(entries, entry{m, h})
		allowed = append(allowed, m)
	}
	if get, ok := handlers[http.MethodGet]; ok {
		if _, ok := handlers[http.MethodHead]; !ok {
			entries = append(entries, entry{http.MethodHead, get})
			allowed = append(allowed, http.MethodHead)
		}
	}
	slices.Sort(allowed)
	allow := strings.Join(allowed, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, e := range entries {
			if e.method == r.Method {
				e.h.ServeHTTP(w, r)
				return
			}
		}
		Error(w, r, &StatusError{Status: http.StatusMethodNotAllowed, Slug: "method-not-allowed",
			Detail: "method " + r.Method + " is not allowed here; allowed: " + allow, Allow: allow})
	})
}

// Observer records one answered request: its status, how long its handler
// took and, for a problem answer, the problem type (the end of its URI).
type Observer interface {
	Observe(status int, took time.Duration, problem string)
}

// exchange is the state of one request on its way through Observe: what the
// handler answered, and the request's id. It wraps the ResponseWriter, so
// that the code which answers can reach it without a context value; it is
// pooled, so that observing a request costs no allocation.
type exchange struct {
	http.ResponseWriter
	status   int
	bytes    int64
	err      error  // the error behind a problem answer
	problem  string // the problem type of a problem answer
	observer Observer
	idBuf    [32]byte
	idLen    int
}

func (x *exchange) WriteHeader(code int) {
	if x.status == 0 {
		x.status = code
	}
	x.ResponseWriter.WriteHeader(code)
}

func (x *exchange) Write(p []byte) (int, error) {
	if x.status == 0 {
		x.status = http.StatusOK
	}
	n, err := x.ResponseWriter.Write(p)
	x.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (x *exchange) Unwrap() http.ResponseWriter { return x.ResponseWriter }

func (x *exchange) id() string { return string(x.idBuf[:x.idLen]) }

// RequestID returns the id Observe gave the request answered through w, or "".
func RequestID(w http.ResponseWriter) string {
	if x, ok := w.(*exchange); ok {
		return x.id()
	}
	return ""
}

// noteProblem hands the error behind a problem answer to Observe.
func noteProblem(w http.ResponseWriter, err error, problem string) {
	if x, ok := w.(*exchange); ok {
		x.err, x.problem = err, problem
	}
}

// Observed makes the requests served by h count under obs. Observe, further
// out, does the counting; a request that reaches no Observed handler is not
// counted.
func Observed(obs Observer, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if x, ok := w.(*exchange); ok {
			x.observer = obs
		}
		h.ServeHTTP(w, r)
	})
}

// Observe is the outermost middleware. For every request it:
//   - gives the request an id, kept from a sane incoming X-Request-ID (so
//     that a proxy's id follows the request, and is echoed back) or made
//     here; a problem answer carries it in its body and X-Request-ID header,
//     and access lines carry it too (a made id is not sent with a success:
//     that header would cost every request a header copy);
//   - turns a panicking handler into a 500 problem answer and a logged
//     stack, and keeps the server serving (http.ErrAbortHandler is let
//     through, as net/http expects);
//   - writes one access line (method, path, status, duration, bytes, request
//     id) at level Info, or at level Debug for a 2xx or 3xx answer when
//     quietSuccess is set, plus the error behind a 5xx answer;
//   - reports the request to its route's Observer.
func Observe(logger *slog.Logger, quietSuccess bool) Middleware {
	// A random prefix per process and a counter make ids unique across
	// restarts and instances without a random read per request.
	var prefix [6]byte
	_, _ = rand.Read(prefix[:])
	base := hex.EncodeToString(prefix[:]) + "-"
	var seq atomic.Uint64
	pool := sync.Pool{New: func() any { return new(exchange) }}

	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			x := pool.Get().(*exchange)
			*x = exchange{ResponseWriter: w}
			// Read by its canonical key: Header.Get would canonicalize, and
			// allocate, on every request.
			if id := headerValue(r.Header, "X-Request-Id"); validRequestID(id) {
				x.idLen = copy(x.idBuf[:], id)
				w.Header()["X-Request-Id"] = r.Header["X-Request-Id"][:1:1] // echoed: the one read
			} else {
				b := strconv.AppendUint(append(x.idBuf[:0], base...), seq.Add(1), 36)
				x.idLen = len(b)
			}
			defer func() {
				abort := false
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					logger.LogAttrs(r.Context(), slog.LevelError, "panic",
						slog.String("request_id", x.id()),
						slog.Any("panic", v),
						slog.String("stack", string(debug.Stack())))
					if x.status == 0 {
						Error(x, r, fmt.Errorf("panic: %v", v))
					} else {
						// Part of an answer is out: a problem cannot follow
						// it, so net/http is told to cut the connection.
						abort = true
					}
				}
				if x.status == 0 {
					// Answer now, so that net/http reads no header of a pooled
					// exchange after it has gone back to the pool.
					x.WriteHeader(http.StatusOK)
				}
				took := time.Since(start)
				if x.observer != nil {
					x.observer.Observe(x.status, took, x.problem)
				}
				logAccess(logger, quietSuccess, r, x, took)
				pool.Put(x)
				if abort {
					panic(http.ErrAbortHandler)
				}
			}()
			next.ServeHTTP(x, r)
		})
	}
}

func logAccess(logger *slog.Logger, quietSuccess bool, r *http.Request, x *exchange, took time.Duration) {
	level := slog.LevelInfo
	switch {
	case x.status >= 500:
		level = slog.LevelError
	case x.status < 400 && quietSuccess:
		level = slog.LevelDebug
	}
	if !logger.Enabled(r.Context(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", x.status),
		slog.Duration("duration", took),
		slog.Int64("bytes", x.bytes),
		slog.String("request_id", x.id()),
	}
	if x.status >= 500 && x.err != nil {
		attrs = append(attrs, slog.String("error", x.err.Error()))
	}
	logger.LogAttrs(r.Context(), level, "request", attrs...)
}

func headerValue(h http.Header, canonicalKey string) string {
	if v := h[canonicalKey]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// Deadline bounds each request's context by d, so that work on its behalf
// (a store call, a wait) stops when the client could no longer use the answer.
//
// The context arms its timer only when someone asks for its Done channel: a
// request served from memory never does, and then the deadline costs one
// small allocation instead of a timer and a cancel context.
func Deadline(d time.Duration) Middleware {
	return func(next http.Handler) http.Handler {
		if d <= 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := &deadlineCtx{Context: r.Context(), deadline: time.Now().Add(d)}
			defer ctx.release()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// deadlineCtx is a context with a deadline whose timer is made on first use
// of Done. Until then, Err compares the clock with the deadline, which is
// what the armed context would say, so the two states agree.
type deadlineCtx struct {
	context.Context // the parent
	deadline        time.Time

	mu    sync.Mutex
	armed atomic.Pointer[context.Context] // set once, under mu
	stop  context.CancelFunc
}

func (c *deadlineCtx) Deadline() (time.Time, bool) {
	if d, ok := c.Context.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *deadlineCtx) Done() <-chan struct{} { return c.arm().Done() }

func (c *deadlineCtx) Err() error {
	if a := c.armed.Load(); a != nil {
		return (*a).Err()
	}
	if c.Context.Err() == nil && time.Now().Before(c.deadline) {
		return nil
	}
	// Done or past due: arm, so that this error is the one every later call
	// sees, as the Context contract asks.
	return c.arm().Err()
}

// AfterFunc lets context.WithCancel and friends, given this context as a
// parent, register with the armed context rather than start a goroutine
// each to watch Done.
func (c *deadlineCtx) AfterFunc(f func()) (stop func() bool) {
	return context.AfterFunc(c.arm(), f)
}

// arm returns the real deadline context, making it on the first call.
func (c *deadlineCtx) arm() context.Context {
	if a := c.armed.Load(); a != nil {
		return *a
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.armed.Load(); a != nil {
		return *a
	}
	ctx, stop := context.WithDeadline(c.Context, c.deadline)
	c.stop = stop
	c.armed.Store(&ctx)
	return ctx
}

// release stops the timer, if one was made, when the request ends.
func (c *deadlineCtx) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop != nil {
		c.stop()
	}
}
