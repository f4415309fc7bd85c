package domain

import (
	"errors"
	"strings"
)

// Sentinel errors. Adapters wrap them (with %w) so that the HTTP edge can map
// any error to a status code in one place, by errors.Is.
var (
	// ErrInvalid reports input that breaks the rules of the domain.
	ErrInvalid = errors.New("invalid input")
	// ErrUnavailable reports a backing store that cannot serve right now;
	// the caller may retry later.
	ErrUnavailable = errors.New("store unavailable")
	// ErrForbidden reports a valid request that the service is configured
	// to refuse, such as an event for a site it does not track.
	ErrForbidden = errors.New("forbidden")
	// ErrNoDays reports a range asked of a page whose visits by day the
	// store no longer keeps: a page moved into a sketch under the memory
	// limit, whose all-time count is estimated since.
	ErrNoDays = errors.New("the days of this page are not kept")
)

// FieldError says why one named input field is invalid.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Error implements error.
func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Is makes every FieldError match ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// ValidationError gathers the field errors of one input, so that a client
// learns about every bad field at once.
type ValidationError struct {
	Fields []*FieldError
}

// Error implements error.
func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return strings.Join(parts, "; ")
}

// Is makes every ValidationError match ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Validate returns nil when every error is nil, else a *ValidationError with
// the field errors among errs, in order. Errors that are not field errors are
// returned as they are, first come first served, since they are not about
// the input.
func Validate(errs ...error) error {
	var fields []*FieldError
	for _, err := range errs {
		if err == nil {
			continue
		}
		var fe *FieldError
		if !errors.As(err, &fe) {
			return err
		}
		fields = append(fields, fe)
	}
	if len(fields) == 0 {
		return nil
	}
	return &ValidationError{Fields: fields}
}

// FieldErrors returns the field errors carried by err, or nil.
func FieldErrors(err error) []*FieldError {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve.Fields
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return []*FieldError{fe}
	}
	return nil
}
