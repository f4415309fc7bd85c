package ingest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
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
func decodeRequest(r *http.Request, policy domain.URLPolicy, clock domain.Clock) (domain.PageView, error) {
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
	visitorID, rawURL, rawTime, err := decodeEvent(body)
	if err != nil {
		return domain.PageView{}, err
	}
	v, verr := policy.NewPageView(visitorID, rawURL)
	var terr error
	v.At, terr = timeOf(clock, rawTime)
	if terr != nil {
		// Every bad field at once: the visitor's and the URL's, then the time's.
		errs := []error{}
		for _, fe := range domain.FieldErrors(verr) {
			errs = append(errs, fe)
		}
		return domain.PageView{}, domain.Validate(append(errs, terr)...)
	}
	return v, verr
}

// timeOf returns the quarter of an event's time, given as RFC 3339 text,
// or of now for none.
func timeOf(c domain.Clock, raw []byte) (domain.Quarter, error) {
	now := c.Now()
	if raw == nil {
		return domain.QuarterOf(now), nil
	}
	t, err := parseTime(raw)
	if err != nil {
		return 0, &domain.FieldError{Field: "time", Reason: "must be an RFC 3339 timestamp, such as 2026-12-01T09:30:00Z"}
	}
	return c.Retention.CheckTime(t, now)
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
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return buf, &web.StatusError{Status: http.StatusRequestTimeout, Slug: "request-timeout",
					Detail: "the request body did not arrive within the server's read timeout"}
			}
			return buf, fmt.Errorf("%w: reading the body: %v", web.ErrMalformedBody, err)
		}
	}
}

// decodeEvent reads the two fields of an event, {"visitor_id": "…", "url":
// "…"}, from a JSON object; other fields are skipped, so sites may send more.
// It runs on every request, so it checks the body (UTF-8, JSON syntax as
// encoding/json accepts it, one value) in the same pass that finds the
// fields. A field given twice is rejected rather than resolved, since JSON
// parsers disagree on which one wins.
//
// A body that breaks several rules is reported for the first of: invalid
// UTF-8, invalid JSON, not an object, a field given twice; then every bad
// field at once.
//
// The visitor id is returned in place, inside body when it has no escapes:
// only its hash is kept, so it is never copied.
func decodeEvent(body []byte) (visitorID []byte, rawURL string, rawTime []byte, err error) {
	p := parser{b: body}
	ev, ok := p.event()
	switch {
	case !ok:
		return nil, "", nil, p.err()
	case ev.notObject:
		return nil, "", nil, fmt.Errorf("%w: the body must be a JSON object", web.ErrMalformedBody)
	case ev.twice != "":
		return nil, "", nil, fmt.Errorf("%w: field %q is given twice", web.ErrMalformedBody, ev.twice)
	}
	var fieldErrs [3]error
	visitorID, fieldErrs[0] = stringField("visitor_id", body, ev.visitorID)
	u, uerr := stringField("url", body, ev.url)
	fieldErrs[1] = uerr
	if uerr == nil {
		rawURL = string(u)
	}
	if ev.time.end != 0 { // optional
		rawTime, fieldErrs[2] = stringField("time", body, ev.time)
	}
	return visitorID, rawURL, rawTime, domain.Validate(fieldErrs[:]...)
}

// event is what the parser finds in a body: where the fields' values lie,
// and the rules the body breaks that are not JSON syntax.
type event struct {
	visitorID, url, time span
	twice                string // the first field seen twice
	notObject            bool
}

// span is where one value lies in the body: body[start:end], quotes included
// for a string. The zero span is a field that was not given.
type span struct {
	start, end int
	escaped    bool // a string with backslash escapes
}

// field returns the name of the event field that an object key names, and
// where its value goes, or a nil span for a key to skip. key is the inside
// of the key's literal.
func (ev *event) field(key []byte, escaped bool) (string, *span) {
	if escaped {
		// No client escapes these names, but encoding/json reads them
		// escaped, and so must this. "\uXXXX" is the longest way to spell
		// a byte, and decoding never lengthens, so the buffer is enough.
		if len(key) > 6*len("visitor_id") {
			return "", nil
		}
		var buf [6 * len("visitor_id")]byte
		key = appendUnescaped(buf[:0], key)
	}
	switch string(key) {
	case "visitor_id":
		return "visitor_id", &ev.visitorID
	case "url":
		return "url", &ev.url
	case "time":
		return "time", &ev.time
	}
	return "", nil
}

// stringField returns the text of the string that v spans in body, in place
// unless it has escapes, or why the field named name has no such text.
func stringField(name string, body []byte, v span) ([]byte, error) {
	switch {
	case v.end == 0:
		return nil, &domain.FieldError{Field: name, Reason: "is required"}
	case body[v.start] != '"':
		return nil, &domain.FieldError{Field: name, Reason: "must be a string, not " + jsonKind(body[v.start])}
	}
	s := body[v.start+1 : v.end-1]
	if v.escaped {
		return appendUnescaped(make([]byte, 0, len(s)), s), nil
	}
	return s, nil
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

// maxDepth bounds the nesting of arrays and objects, the top-level object
// included, at encoding/json's limit, so that the two accept the same
// bodies. The parser keeps what it has open in a byte slice, not on the
// call stack, so even this depth costs little.
const maxDepth = 10000

// parser reads a body as JSON (RFC 8259, as encoding/json.Valid reads it)
// that is also valid UTF-8. Its methods take the offset to read from and
// return the offset past what they read, or false once the body breaks the
// grammar, having noted where and why for err.
type parser struct {
	b      []byte
	errAt  int    // offset of the first byte that breaks the grammar, len(b) for the end
	errCtx string // what was being read there, worded as encoding/json words it; "" if the body ends too soon
}

// event reads the whole body, which should be one object, noting where
// the event's fields are.
func (p *parser) event() (ev event, ok bool) {
	b := p.b
	i := skipSpace(b, 0)
	if i == len(b) {
		return ev, p.unexpectedEnd()
	}
	if b[i] != '{' {
		// Check the rest, so a body that is not JSON at all says so.
		if i, ok = p.value(i, 0); ok {
			ok = p.end(i)
		}
		ev.notObject = true
		return ev, ok
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return ev, p.end(i + 1)
	}
	for {
		key, keyEscaped, valueStart, ok := p.key(i)
		if !ok {
			return ev, false
		}
		val := span{start: valueStart}
		if valueStart < len(b) && b[valueStart] == '"' {
			val.end, val.escaped, ok = p.str(valueStart)
		} else {
			val.end, ok = p.value(valueStart, 1)
		}
		if !ok {
			return ev, false
		}
		if name, slot := ev.field(key, keyEscaped); slot != nil {
			if slot.end != 0 && ev.twice == "" {
				ev.twice = name
			}
			*slot = val
		}
		i = skipSpace(b, val.end)
		if i == len(b) {
			return ev, p.unexpectedEnd()
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return ev, p.end(i + 1)
		default:
			return ev, p.fail(i, "after object key:value pair")
		}
	}
}

// end checks that only whitespace follows the top-level value, which ends
// at b[i].
func (p *parser) end(i int) bool {
	if i = skipSpace(p.b, i); i < len(p.b) {
		return p.fail(i, "after top-level value")
	}
	return true
}

// key reads an object key and its colon from b[i], returning the inside of
// the key's literal, whether it has escapes, and where the value starts.
func (p *parser) key(i int) (key []byte, escaped bool, next int, ok bool) {
	b := p.b
	if i == len(b) {
		return nil, false, 0, p.unexpectedEnd()
	}
	if b[i] != '"' {
		return nil, false, 0, p.fail(i, "looking for beginning of object key string")
	}
	end, escaped, ok := p.str(i)
	if !ok {
		return nil, false, 0, false
	}
	key = b[i+1 : end-1]
	if i = skipSpace(b, end); i == len(b) {
		return nil, false, 0, p.unexpectedEnd()
	}
	if b[i] != ':' {
		return nil, false, 0, p.fail(i, "after object key")
	}
	return key, escaped, skipSpace(b, i+1), true
}

// value reads the value that starts at b[i] and lies within depth arrays
// and objects. It keeps the brackets it has yet to close on a stack rather
// than recursing, so that no body can exhaust the goroutine's stack.
func (p *parser) value(i, depth int) (int, bool) {
	b := p.b
	var stack [64]byte // grows on the heap only past 64 levels
	closers := stack[:0]
	for {
		// A value starts at b[i].
		if i == len(b) {
			return 0, p.unexpectedEnd()
		}
		ok := true
		switch c := b[i]; c {
		case '{', '[':
			if depth+len(closers) >= maxDepth {
				return 0, p.fail(i, "exceeded max depth")
			}
			closer := byte(']')
			if c == '{' {
				closer = '}'
			}
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == closer {
				i++ // empty; ends like any other value
				break
			}
			closers = append(closers, closer)
			if c == '{' {
				if _, _, i, ok = p.key(i); !ok {
					return 0, false
				}
			}
			continue
		case '"':
			i, _, ok = p.str(i)
		case 't':
			i, ok = p.literal(i, "true")
		case 'f':
			i, ok = p.literal(i, "false")
		case 'n':
			i, ok = p.literal(i, "null")
		default:
			if c != '-' && !isDigit(c) {
				return 0, p.fail(i, "looking for beginning of value")
			}
			i, ok = p.number(i)
		}
		if !ok {
			return 0, false
		}
		// A value ends at b[i]: close what it completes, then go on to the
		// next element, if any.
		for {
			if len(closers) == 0 {
				return i, true
			}
			i = skipSpace(b, i)
			if i == len(b) {
				return 0, p.unexpectedEnd()
			}
			closer := closers[len(closers)-1]
			if b[i] == closer {
				i++
				closers = closers[:len(closers)-1]
				continue
			}
			if b[i] != ',' {
				if closer == '}' {
					return 0, p.fail(i, "after object key:value pair")
				}
				return 0, p.fail(i, "after array element")
			}
			i = skipSpace(b, i+1)
			if closer == '}' {
				if _, _, i, ok = p.key(i); !ok {
					return 0, false
				}
			}
			break
		}
	}
}

// str reads the string literal that starts at b[i], returning where it
// ends and whether it has escapes.
func (p *parser) str(i int) (end int, escaped, ok bool) {
	b := p.b
	for i++; ; {
		for i+8 <= len(b) && allPlain(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i == len(b) {
			return 0, false, p.unexpectedEnd()
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, escaped, true
		case c == '\\':
			escaped = true
			if i, ok = p.escape(i + 1); !ok {
				return 0, false, false
			}
		case c < 0x20:
			return 0, false, p.fail(i, "in string literal")
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return 0, false, p.fail(i, "in string literal") // err reports it as bad UTF-8
			}
			i += size
		}
	}
}

// plain tells the bytes that stand for themselves in a string literal and
// need no further look: printable ASCII but the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// allPlain tells whether the eight bytes packed in x are all plain, testing
// them at once: none has its top bit set, is below 0x20, or is a quote or a
// backslash. (A byte that is zero after an XOR is the one that matched.)
func allPlain(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote := x ^ (ones * '"')
	backslash := x ^ (ones * '\\')
	return (x|(x-ones*0x20)|(quote-ones)&^quote|(backslash-ones)&^backslash)&highs == 0
}

// escape reads the escape whose backslash is just before b[i].
func (p *parser) escape(i int) (int, bool) {
	b := p.b
	if i == len(b) {
		return 0, p.fail(i, "in string escape code")
	}
	switch b[i] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return i + 1, true
	case 'u':
		for j := i + 1; j < i+5; j++ {
			if j == len(b) || !isHex(b[j]) {
				return 0, p.fail(j, `in \u hexadecimal character escape`)
			}
		}
		return i + 5, true
	}
	return 0, p.fail(i, "in string escape code")
}

// number reads the number that starts at b[i], a minus sign or a digit.
func (p *parser) number(i int) (int, bool) {
	b := p.b
	if b[i] == '-' {
		if i++; i == len(b) || !isDigit(b[i]) {
			return 0, p.fail(i, "in numeric literal")
		}
	}
	if b[i] == '0' {
		i++ // no leading zeros
	} else {
		i = skipDigits(b, i+1)
	}
	if i < len(b) && b[i] == '.' {
		if i++; i == len(b) || !isDigit(b[i]) {
			return 0, p.fail(i, "after decimal point in numeric literal")
		}
		i = skipDigits(b, i+1)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i == len(b) || !isDigit(b[i]) {
			return 0, p.fail(i, "in exponent of numeric literal")
		}
		i = skipDigits(b, i+1)
	}
	return i, true
}

// literal reads lit, which is true, false or null, from b[i], whose first
// byte is known to match.
func (p *parser) literal(i int, lit string) (int, bool) {
	b := p.b
	for k := 1; k < len(lit); k++ {
		if i+k == len(b) || b[i+k] != lit[k] {
			return 0, p.fail(i+k, "in literal "+lit+" (expecting "+quoteChar(lit[k])+")")
		}
	}
	return i + len(lit), true
}

// fail notes that b[i] breaks the grammar while reading ctx; i == len(b)
// when the body ends inside a token. It returns false for its caller to
// pass on.
func (p *parser) fail(i int, ctx string) bool {
	p.errAt, p.errCtx = i, ctx
	return false
}

// unexpectedEnd notes that the body ended where more was expected.
func (p *parser) unexpectedEnd() bool {
	return p.fail(len(p.b), "")
}

// err describes why the body was rejected, worded as it was when
// encoding/json checked bodies: bad UTF-8 first, wherever it is, then the
// first byte that breaks the grammar, counted from 1, with the body's end
// read as a space (which ends a number or a literal, but no escape).
func (p *parser) err() error {
	if !utf8.Valid(p.b) {
		return fmt.Errorf("%w: the body is not valid UTF-8", web.ErrMalformedBody)
	}
	if p.errCtx == "" {
		return fmt.Errorf("%w: invalid JSON at byte %d: unexpected end of JSON input", web.ErrMalformedBody, len(p.b))
	}
	c, offset := byte(' '), len(p.b)
	if p.errAt < len(p.b) {
		c, offset = p.b[p.errAt], p.errAt+1
	}
	return fmt.Errorf("%w: invalid JSON at byte %d: invalid character %s %s",
		web.ErrMalformedBody, offset, quoteChar(c), p.errCtx)
}

// quoteChar formats c as encoding/json's syntax errors do.
func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

// appendUnescaped appends the text of s, the inside of a string literal the
// parser has read, to dst. Like encoding/json, it reads a surrogate pair as
// one rune and a surrogate that is not half of a pair as U+FFFD. The text
// is never longer than s.
func appendUnescaped(dst, s []byte) []byte {
	for {
		n := bytes.IndexByte(s, '\\')
		if n < 0 {
			return append(dst, s...)
		}
		dst = append(dst, s[:n]...)
		c := s[n+1]
		s = s[n+2:]
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(s)
			s = s[4:]
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if len(s) >= 6 && s[0] == '\\' && s[1] == 'u' {
					r2 = hex4(s[2:])
				}
				if r = utf16.DecodeRune(r, r2); r != utf8.RuneError {
					s = s[6:]
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\' or '/'
			dst = append(dst, c)
		}
	}
}

// hex4 returns the value of the four hexadecimal digits s starts with.
func hex4(s []byte) rune {
	var r rune
	for _, c := range s[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c >= 'a':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
