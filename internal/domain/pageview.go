package domain

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxVisitorIDBytes is the longest visitor id accepted, in bytes.
const MaxVisitorIDBytes = 256

// VisitorID identifies a visitor, as chosen by the site. The id is opaque and
// compared byte for byte (case, spaces and any Unicode are kept as sent), so
// a VisitorID keeps only its 64-bit hash (see Hash): stores keep nothing
// else, and a request's id need never be copied out of its body.
type VisitorID struct{ hash uint64 }

// ParseVisitorID checks that s is 1 to MaxVisitorIDBytes bytes of valid UTF-8
// without control characters, and hashes it. The error is a *FieldError for
// "visitor_id". It takes bytes as well as a string, so that a decoder can
// pass the id in place.
func ParseVisitorID[S ~string | ~[]byte](s S) (VisitorID, error) {
	switch {
	case len(s) == 0:
		return VisitorID{}, &FieldError{Field: "visitor_id", Reason: "must not be empty"}
	case len(s) > MaxVisitorIDBytes:
		return VisitorID{}, &FieldError{Field: "visitor_id", Reason: "must be at most 256 bytes"}
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf { // ASCII fast path
			if c < 0x20 || c == 0x7f {
				return VisitorID{}, &FieldError{Field: "visitor_id", Reason: "must not contain control characters"}
			}
			i++
			continue
		}
		// At most 4 bytes: the conversion stays on the stack.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			return VisitorID{}, &FieldError{Field: "visitor_id", Reason: "must be valid UTF-8"}
		}
		if unicode.IsControl(r) {
			return VisitorID{}, &FieldError{Field: "visitor_id", Reason: "must not contain control characters"}
		}
		i += size
	}
	return VisitorID{hash: hashID(s)}, nil
}

// VisitorFromHash returns the visitor whose Hash is h, for stores that read
// back the hashes they kept. 0, which Hash never returns, is rejected with
// an error that matches ErrInvalid.
func VisitorFromHash(h uint64) (VisitorID, error) {
	if h == 0 {
		return VisitorID{}, fmt.Errorf("visitor hash 0: %w", ErrInvalid)
	}
	return VisitorID{hash: h}, nil
}

// IsZero reports whether v is the zero VisitorID, which no parser returns.
func (v VisitorID) IsZero() bool { return v.hash == 0 }

// PageView is one visit of one page by one visitor. Page and Visitor are
// valid; At is when, or zero for a view that counts for the all-time
// figures only.
type PageView struct {
	Page    PageURL
	Visitor VisitorID
	At      Quarter
}

// NewPageView validates a raw event under the page identity rules of p.
// Its error is a *ValidationError naming every bad field.
func (p URLPolicy) NewPageView(visitorID []byte, rawURL string) (PageView, error) {
	v, verr := ParseVisitorID(visitorID)
	u, uerr := p.Canonical(rawURL)
	if err := Validate(verr, uerr); err != nil {
		return PageView{}, err
	}
	return PageView{Page: u, Visitor: v}, nil
}

// Count is a page's distinct visitors: an exact count, or an estimate with
// its relative standard error.
type Count struct {
	Visitors int64
	// RelativeError is the standard error of an estimate, relative to the
	// count (0.0073 for 0.73%); 0 for an exact count.
	RelativeError float64
}

// Exact reports whether c is an exact count.
func (c Count) Exact() bool { return c.RelativeError == 0 }

// PageCount is a page's canonical URL and its distinct visitors, as a store
// lists them for a ranking.
type PageCount struct {
	URL string
	Count
}
