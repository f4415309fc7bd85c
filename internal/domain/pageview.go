package domain

import (
	"unicode"
	"unicode/utf8"
)

// MaxVisitorIDBytes is the longest visitor id accepted, in bytes.
const MaxVisitorIDBytes = 256

// VisitorID identifies a visitor, as chosen by the site. It is opaque and
// compared byte for byte: case, spaces and any Unicode are kept as sent.
type VisitorID struct{ s string }

// ParseVisitorID checks that s is 1 to MaxVisitorIDBytes bytes of valid UTF-8
// without control characters. The error is a *FieldError for "visitor_id".
func ParseVisitorID(s string) (VisitorID, error) {
	switch {
	case s == "":
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
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return VisitorID{}, &FieldError{Field: "visitor_id", Reason: "must be valid UTF-8"}
		}
		if unicode.IsControl(r) {
			return VisitorID{}, &FieldError{Field: "visitor_id", Reason: "must not contain control characters"}
		}
		i += size
	}
	return VisitorID{s: s}, nil
}

// String returns the id as sent.
func (v VisitorID) String() string { return v.s }

// PageView is one visit of one page by one visitor. Both parts are valid.
type PageView struct {
	Page    PageURL
	Visitor VisitorID
}

// NewPageView validates a raw event under the page identity rules of p.
// Its error is a *ValidationError naming every bad field.
func (p URLPolicy) NewPageView(visitorID, rawURL string) (PageView, error) {
	v, verr := ParseVisitorID(visitorID)
	u, uerr := p.Canonical(rawURL)
	if err := Validate(verr, uerr); err != nil {
		return PageView{}, err
	}
	return PageView{Page: u, Visitor: v}, nil
}
