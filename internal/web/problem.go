package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/webtracker/tracker/internal/domain"
)

// ProblemTypePrefix starts every problem type URI. The URIs are stable
// identifiers (RFC 9457 §3.1.1 allows a URI that is not dereferenced); each
// is listed in the README and the OpenAPI document.
const ProblemTypePrefix = "urn:webtracker:problem:"

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	// Errors names each bad field of a validation problem.
	Errors []*domain.FieldError `json:"errors,omitempty"`
	// RequestID lets an operator find the request's access log line.
	RequestID string `json:"request_id,omitempty"`
}

// StatusError is an error that the HTTP edge itself raises, with the status
// and problem it stands for. Features return domain errors instead.
type StatusError struct {
	Status int
	Slug   string // the end of the problem type URI
	Detail string
	// RetryAfter, when positive, is sent as the Retry-After header.
	RetryAfter time.Duration
	// Allow, when set, is sent as the Allow header (405 answers).
	Allow string
}

// Error implements error.
func (e *StatusError) Error() string { return e.Detail }

// Sentinel edge errors, wrapped with a detail by the code that raises them.
var (
	// ErrUnsupportedMediaType reports a request body of a type the endpoint
	// does not read.
	ErrUnsupportedMediaType = errors.New("unsupported media type")
	// ErrMalformedBody reports a body that is not what the endpoint reads:
	// bad JSON, not an object, trailing data.
	ErrMalformedBody = errors.New("malformed request body")
)

// Error answers err as a problem+json document. It is the one place where an
// error becomes a status code:
//
//   - *StatusError: its own status;
//   - domain.ErrInvalid: 400, naming each bad field;
//   - ErrMalformedBody: 400; ErrUnsupportedMediaType: 415;
//   - *http.MaxBytesError: 413;
//   - domain.ErrForbidden: 403; domain.ErrNoDays: 409;
//   - domain.ErrUnavailable: 503 with Retry-After;
//   - a context deadline: 503; any other error: 500, with its text kept out of
//     the answer and handed to the access log instead.
func Error(w http.ResponseWriter, r *http.Request, err error) {
	p := Problem{Detail: err.Error()}
	var (
		se         *StatusError
		tooLarge   *http.MaxBytesError
		retryAfter time.Duration
	)
	switch {
	case errors.As(err, &se):
		p.Status, p.Type = se.Status, se.Slug
		retryAfter = se.RetryAfter
		if se.Allow != "" {
			w.Header().Set("Allow", se.Allow)
		}
	case errors.Is(err, domain.ErrInvalid):
		p.Status, p.Type = http.StatusBadRequest, "validation"
		p.Errors = domain.FieldErrors(err)
		p.Detail = "the request has invalid fields: " + err.Error()
	case errors.Is(err, ErrMalformedBody):
		p.Status, p.Type = http.StatusBadRequest, "malformed-body"
	case errors.Is(err, ErrUnsupportedMediaType):
		p.Status, p.Type = http.StatusUnsupportedMediaType, "unsupported-media-type"
	case errors.As(err, &tooLarge):
		p.Status, p.Type = http.StatusRequestEntityTooLarge, "body-too-large"
		p.Detail = "the request body is larger than " + strconv.FormatInt(tooLarge.Limit, 10) + " bytes"
	case errors.Is(err, domain.ErrForbidden):
		p.Status, p.Type = http.StatusForbidden, "forbidden"
	case errors.Is(err, domain.ErrNoDays):
		p.Status, p.Type = http.StatusConflict, "days-not-kept"
	case errors.Is(err, domain.ErrUnavailable):
		p.Status, p.Type = http.StatusServiceUnavailable, "unavailable"
		retryAfter = time.Second
	case errors.Is(err, context.DeadlineExceeded):
		p.Status, p.Type = http.StatusServiceUnavailable, "deadline-exceeded"
		p.Detail = "the request did not complete within its deadline"
		retryAfter = time.Second
	default:
		p.Status, p.Type = http.StatusInternalServerError, "internal"
		p.Detail = "the server could not complete the request; see its log under the request id"
	}
	p.Title = http.StatusText(p.Status)
	if p.RequestID = RequestID(w); p.RequestID != "" {
		w.Header().Set("X-Request-Id", p.RequestID)
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retryAfter+time.Second-1)/time.Second)))
	}
	noteProblem(w, err, p.Type)
	p.Type = ProblemTypePrefix + p.Type
	WriteProblem(w, &p)
}

// WriteProblem writes p with its status and the problem+json media type.
func WriteProblem(w http.ResponseWriter, p *Problem) {
	body, err := json.Marshal(p)
	if err != nil { // a Problem holds only strings and ints
		panic("web: cannot encode problem: " + err.Error())
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(body, '\n'))
}

// NotFound answers 404 problem+json for every request: the catch-all route.
func NotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Error(w, r, &StatusError{Status: http.StatusNotFound, Slug: "not-found",
			Detail: "no resource at " + strconv.Quote(r.URL.Path)})
	})
}
