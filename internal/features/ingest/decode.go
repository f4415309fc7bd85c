package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/web"
)

// MaxBodyBytes is the largest event body read; a larger one is answered 413.
const MaxBodyBytes = 16 << 10

// bodyBuffers recycles the buffers bodies are read into: one event is small,
// and the server reads many of them.
var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// decodeRequest turns an HTTP request into a valid page view, or an error
// that web.Error maps to 400, 413 or 415.
func decodeRequest(r *http.Request, policy domain.URLPolicy) (domain.PageView, error) {
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		return domain.PageView{}, err
	}
	if r.ContentLength > MaxBodyBytes {
		return domain.PageView{}, &http.MaxBytesError{Limit: MaxBodyBytes}
	}
	bufp := bodyBuffers.Get().(*[]byte)
	defer bodyBuffers.Put(bufp)
	body, err := readBody(r.Body, (*bufp)[:0])
	*bufp = body[:0]
	if err != nil {
		return domain.PageView{}, err
	}
	visitorID, rawURL, err := decodeEvent(body)
	if err != nil {
		return domain.PageView{}, err
	}
	return policy.NewPageView(visitorID, rawURL)
}

// checkContentType accepts application/json, text/plain (what
// navigator.sendBeacon sends to avoid a CORS preflight) with any parameters,
// and no type at all.
func checkContentType(ct string) error {
	if ct == "" {
		return nil
	}
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	if strings.EqualFold(mt, "application/json") || strings.EqualFold(mt, "text/plain") {
		return nil
	}
	return fmt.Errorf("%w: content type %q is not accepted; send application/json or text/plain",
		web.ErrUnsupportedMediaType, mt)
}

// readBody reads r into buf, failing with *http.MaxBytesError past
// MaxBodyBytes.
func readBody(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) > MaxBodyBytes {
			return buf, &http.MaxBytesError{Limit: MaxBodyBytes}
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			if len(buf) > MaxBodyBytes {
				return buf, &http.MaxBytesError{Limit: MaxBodyBytes}
			}
			return buf, nil
		}
		if err != nil {
			return buf, fmt.Errorf("%w: reading the body: %v", web.ErrMalformedBody, err)
		}
	}
}

// decodeEvent reads the two fields of an event, {"visitor_id": "…", "url":
// "…"}, from a JSON object; other fields are skipped, so sites may send more.
// The body is checked in full first (UTF-8, JSON syntax, one value), so the
// walk below can trust its shape. A field given twice is rejected rather
// than resolved, since JSON parsers disagree on which one wins.
func decodeEvent(body []byte) (visitorID, rawURL string, err error) {
	if !utf8.Valid(body) {
		return "", "", fmt.Errorf("%w: the body is not valid UTF-8", web.ErrMalformedBody)
	}
	if !json.Valid(body) {
		return "", "", syntaxError(body)
	}
	i := skipSpace(body, 0)
	if body[i] != '{' {
		return "", "", fmt.Errorf("%w: the body must be a JSON object", web.ErrMalformedBody)
	}
	var (
		seenVisitor, seenURL bool
		fieldErrs            [2]error
	)
	i = skipSpace(body, i+1)
	for body[i] != '}' {
		keyEnd := skipValue(body, i)
		key := unquote(body[i:keyEnd])
		i = skipSpace(body, skipSpace(body, keyEnd)+1) // past the colon
		valEnd := skipValue(body, i)
		val := body[i:valEnd]
		switch key {
		case "visitor_id":
			if seenVisitor {
				return "", "", fmt.Errorf("%w: field \"visitor_id\" is given twice", web.ErrMalformedBody)
			}
			seenVisitor = true
			visitorID, fieldErrs[0] = stringField(key, val)
		case "url":
			if seenURL {
				return "", "", fmt.Errorf("%w: field \"url\" is given twice", web.ErrMalformedBody)
			}
			seenURL = true
			rawURL, fieldErrs[1] = stringField(key, val)
		}
		i = skipSpace(body, valEnd)
		if body[i] == ',' {
			i = skipSpace(body, i+1)
		}
	}
	if !seenVisitor {
		fieldErrs[0] = &domain.FieldError{Field: "visitor_id", Reason: "is required"}
	}
	if !seenURL {
		fieldErrs[1] = &domain.FieldError{Field: "url", Reason: "is required"}
	}
	return visitorID, rawURL, domain.Validate(fieldErrs[:]...)
}

func stringField(name string, val []byte) (string, error) {
	if val[0] != '"' {
		return "", &domain.FieldError{Field: name, Reason: "must be a string, not " + jsonKind(val[0])}
	}
	return unquote(val), nil
}

func jsonKind(first byte) string {
	switch first {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	default:
		return "a number"
	}
}

// unquote returns the text of a valid JSON string literal q.
func unquote(q []byte) string {
	inner := q[1 : len(q)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner)
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		panic("ingest: unquote of a validated string: " + err.Error())
	}
	return s
}

// syntaxError describes where body stops being one JSON value.
func syntaxError(body []byte) error {
	var v any
	err := json.Unmarshal(body, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%w: invalid JSON at byte %d: %s", web.ErrMalformedBody, se.Offset, se.Error())
	}
	return fmt.Errorf("%w: invalid JSON", web.ErrMalformedBody)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the valid JSON value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
	default: // a number, true, false or null
		for i < len(b) && !strings.ContainsRune(",}] \t\n\r", rune(b[i])) {
			i++
		}
		return i
	}
}

// skipString returns the end of the string literal that starts at b[i].
func skipString(b []byte, i int) int {
	for i++; ; i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}
