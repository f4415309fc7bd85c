package domain_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/webtracker/tracker/internal/domain"
)

func TestParseVisitorID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, id string
		reason   string // "" when valid
	}{
		{"one byte", "a", ""},
		{"email", "Jane.Doe@Example.com", ""},
		{"spaces and unicode", "  Zoë 🙂 東京 ", ""},
		{"exactly 256 bytes", strings.Repeat("x", 256), ""},
		{"256 bytes of 2-byte runes", strings.Repeat("é", 128), ""},
		{"empty", "", "must not be empty"},
		{"257 bytes", strings.Repeat("x", 257), "at most 256 bytes"},
		{"invalid UTF-8", "ab\xffcd", "valid UTF-8"},
		{"truncated rune", "é"[:1], "valid UTF-8"},
		{"NUL", "a\x00b", "control characters"},
		{"newline", "a\nb", "control characters"},
		{"unit separator", "a\x1fb", "control characters"},
		{"DEL", "a\x7fb", "control characters"},
		{"C1 control", "a\u0085b", "control characters"},
		{"C1 control end", "a\u009fb", "control characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := domain.ParseVisitorID(tt.id)
			// Bytes and string are one id: a decoder passes bytes, a test
			// or a store may pass a string.
			if vb, errb := domain.ParseVisitorID([]byte(tt.id)); vb != v || fmt.Sprint(errb) != fmt.Sprint(err) {
				t.Fatalf("ParseVisitorID of bytes = %v, %v; of string = %v, %v", vb, errb, v, err)
			}
			if tt.reason == "" {
				if err != nil || v.IsZero() {
					t.Fatalf("ParseVisitorID(%q) = %v, %v", tt.id, v, err)
				}
				return
			}
			var fe *domain.FieldError
			if !errors.As(err, &fe) || fe.Field != "visitor_id" || !strings.Contains(fe.Reason, tt.reason) || !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("ParseVisitorID(%q) error = %v, want visitor_id: …%s", tt.id, err, tt.reason)
			}
		})
	}
}

func TestVisitorIDsAreCaseSensitive(t *testing.T) {
	t.Parallel()
	a, _ := domain.ParseVisitorID("Alice")
	b, _ := domain.ParseVisitorID("alice")
	if a == b || a.Hash() == b.Hash() {
		t.Error("Alice and alice are one visitor")
	}
}

func TestNewPageView(t *testing.T) {
	t.Parallel()
	v, err := domain.URLPolicy{}.NewPageView([]byte("v1"), "HTTP://A.com:80/x#y")
	if want, _ := domain.ParseVisitorID("v1"); err != nil || v.Visitor != want || v.Page.String() != "http://a.com/x" {
		t.Fatalf("NewPageView = %+v, %v", v, err)
	}
	_, err = domain.URLPolicy{}.NewPageView(nil, "ftp://a.com/")
	var ve *domain.ValidationError
	if !errors.As(err, &ve) || len(ve.Fields) != 2 || ve.Fields[0].Field != "visitor_id" || ve.Fields[1].Field != "url" {
		t.Fatalf("err = %v, want both fields named, visitor_id first", err)
	}
	if !errors.Is(err, domain.ErrInvalid) {
		t.Error("a validation error does not match ErrInvalid")
	}
	_, err = domain.URLPolicy{}.NewPageView([]byte("ok"), "nope")
	if fs := domain.FieldErrors(err); len(fs) != 1 || fs[0].Field != "url" {
		t.Errorf("FieldErrors = %v, want url only", fs)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	if err := domain.Validate(nil, nil); err != nil {
		t.Errorf("Validate(nil, nil) = %v", err)
	}
	other := errors.New("disk")
	if err := domain.Validate(&domain.FieldError{Field: "a", Reason: "x"}, other); err != other {
		t.Errorf("a non-field error is not returned as is: %v", err)
	}
	if domain.FieldErrors(other) != nil {
		t.Error("FieldErrors of a plain error is not nil")
	}
}

func TestVisitorFromHash(t *testing.T) {
	t.Parallel()
	v, _ := domain.ParseVisitorID("v1")
	got, err := domain.VisitorFromHash(v.Hash())
	if err != nil || got != v {
		t.Errorf("VisitorFromHash(%#x) = %v, %v; want the visitor it came from", v.Hash(), got, err)
	}
	if _, err := domain.VisitorFromHash(0); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("VisitorFromHash(0) error = %v, want ErrInvalid", err)
	}
}
