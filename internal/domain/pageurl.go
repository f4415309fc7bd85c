package domain

import (
	"bytes"
	"errors"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// MaxURLBytes is the longest page URL accepted, in bytes, both as sent and
// once canonical (escaping raw bytes can make a URL up to three times longer).
const MaxURLBytes = 4096

// PageURL is a page's canonical URL; the zero value is no page.
//
// Two URLs name the same page exactly when their PageURLs are equal, so a
// PageURL can be compared with == and used as a map key.
type PageURL struct{ s string }

// String returns the canonical URL, or "" for the zero value.
func (p PageURL) String() string { return p.s }

// IsZero reports whether p is the zero value, which names no page.
func (p PageURL) IsZero() bool { return p.s == "" }

// Hostname returns the page's host, lower-case, without a port.
func (p PageURL) Hostname() string {
	_, rest, _ := strings.Cut(p.s, "://")
	host, _, _ := strings.Cut(rest, "/")
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	return host
}

// URLPolicy holds the site-wide switches of page identity. The zero value is
// the default rules.
type URLPolicy struct {
	StripQuery        bool // drop the whole query: /p?a=1 and /p are the same page
	FoldTrailingSlash bool // /a/ and /a are the same page (the root path "/" stays "/")
}

// ParsePageURL is URLPolicy{}.Canonical(raw).
func ParsePageURL(raw string) (PageURL, error) { return URLPolicy{}.Canonical(raw) }

// Canonical parses raw and returns its canonical form.
//
// raw must be an absolute http or https URL of at most MaxURLBytes bytes of
// valid UTF-8, with an ASCII host and no user info, that net/url accepts;
// its canonical form must fit in MaxURLBytes too. Apart from that last
// limit, whether raw is valid does not depend on p. Its canonical form has:
//
//   - the scheme and host in lower case, without the scheme's default port,
//     and a port without leading zeros;
//   - no fragment;
//   - a path of at least "/", without dot segments, whose percent-encoding is
//     normalized: escapes of unreserved characters (A-Z a-z 0-9 - . _ ~)
//     decoded, other escapes in upper-case hex, and bytes that a path cannot
//     hold raw (space, '"', non-ASCII, ...) escaped; case and trailing slashes
//     are kept unless p.FoldTrailingSlash;
//   - a query without empty parameters or tracking parameters (utm_*, gclid,
//     fbclid and the like), sorted by name, keeping the order of repeated
//     names, each name and value normalized as the path is, '+' kept as it
//     is; no "?" when nothing is left, and no query at all if p.StripQuery.
//
// Its errors are *FieldError for the field "url".
func (p URLPolicy) Canonical(raw string) (PageURL, error) {
	switch {
	case raw == "":
		return PageURL{}, urlError("must not be empty")
	case len(raw) > MaxURLBytes:
		return PageURL{}, urlError("must be at most 4096 bytes")
	}
	// Almost every URL a browser reports is canonical already, or is once
	// its campaign tags are dropped: keep it, or the part of it before the
	// query, without parsing or copying it.
	if c, ok := p.fastCanonical(raw); ok {
		return PageURL{s: c}, nil
	}
	return p.normalize(raw)
}

// urlError returns the error of an invalid page URL.
func urlError(reason string) error {
	return &FieldError{Field: "url", Reason: reason}
}

// normalize validates raw and builds its canonical form. It is the general
// path of Canonical, which calls it when raw is not canonical already.
func (p URLPolicy) normalize(raw string) (PageURL, error) {
	if !utf8.ValidString(raw) {
		return PageURL{}, urlError("must be valid UTF-8")
	}
	// net/url is the judge of what a URL is; the canonical form is then built
	// from the raw text, not from url.URL, whose Path is unescaped and so
	// loses the difference between "/" and "%2F".
	u, err := url.Parse(raw)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the rest repeats the URL
		}
		return PageURL{}, urlError("is not a valid URL: " + err.Error())
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return PageURL{}, urlError("must be an absolute http or https URL")
	case u.User != nil:
		return PageURL{}, urlError("must not contain user info")
	case u.Host == "":
		return PageURL{}, urlError("must have a host")
	}

	// Split raw as url.Parse does: fragment, then query, then the authority,
	// which follows "scheme://" since u has a host and has no user info.
	rest, _, _ := strings.Cut(raw, "#")
	rest, query, _ := strings.Cut(rest, "?")
	rest = rest[len(u.Scheme)+len("://"):]
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	host, port := authority, ""
	if i := strings.LastIndexByte(authority, ':'); i > strings.LastIndexByte(authority, ']') {
		host, port = authority[:i], authority[i+1:]
	}
	if err := checkHost(host); err != nil {
		return PageURL{}, err
	}
	port, ok := canonicalPort(port, u.Scheme)
	if !ok {
		return PageURL{}, urlError("must have a port from 1 to 65535")
	}

	// A stack buffer holds the usual URL, so that the string is the only
	// allocation besides url.Parse's.
	var stack [512]byte
	buf := append(stack[:0], u.Scheme...)
	buf = append(buf, "://"...)
	buf = appendLower(buf, host)
	if port != "" {
		buf = append(buf, ':')
		buf = append(buf, port...)
	}

	pathStart := len(buf)
	// Decoding comes before removing dot segments, so that "%2E%2E" is "..".
	buf, err = appendNormalized(buf, path, pathByte)
	if err != nil {
		return PageURL{}, urlError("is not a valid URL: " + err.Error())
	}
	if len(buf) == pathStart {
		buf = append(buf, '/')
	}
	buf = buf[:pathStart+len(removeDotSegments(buf[pathStart:]))]
	if p.FoldTrailingSlash {
		// Every trailing slash goes, not just one, or "/a//" would become
		// "/a/" and then "/a": canonical forms must be fixed points.
		end := len(buf)
		for end > pathStart+1 && buf[end-1] == '/' {
			end--
		}
		buf = buf[:end]
	}

	// The query is checked even when it is dropped, so that a URL is valid
	// or not whatever the site's policy.
	if p.StripQuery {
		err = checkEscapes(query)
	} else {
		buf, err = appendQuery(buf, query)
	}
	if err != nil {
		return PageURL{}, urlError("is not a valid URL: " + err.Error())
	}

	if len(buf) > MaxURLBytes {
		// Otherwise the canonical form itself would be rejected, breaking
		// idempotence.
		return PageURL{}, urlError("must be at most 4096 bytes when canonical")
	}
	return PageURL{s: string(buf)}, nil
}

// checkHost checks a host that url.Parse accepted, adding the rules of page
// identity.
func checkHost(host string) error {
	if host == "" {
		return urlError("must have a host")
	}
	if host[0] == '[' {
		// url.Parse has checked that an IP literal holds an IPv6 address.
		// A zone names an interface of the visitor's machine, never a page.
		if strings.IndexByte(host, '%') >= 0 {
			return urlError("must not have an IPv6 zone")
		}
		return nil
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case byteClass[c]&hostByte != 0:
		case c >= utf8.RuneSelf:
			// Browsers report international names in punycode, and mapping
			// one to the other needs IDNA tables outside the standard
			// library, so "ä.example" and "xn--4ca.example" would be two
			// sites.
			return urlError("must have an ASCII host (punycode for international names)")
		case c == '%':
			return urlError("must not have a percent-encoded host")
		default:
			// url.Parse lets '<', '>', '"' and ']' through, which RFC 3986
			// and browsers do not.
			return urlError("is not a valid URL: " + url.InvalidHostError(host[i:i+1]).Error())
		}
	}
	return nil
}

// canonicalPort returns port without leading zeros, or "" when it is empty or
// the default port of scheme. It reports false if port is out of range.
// url.Parse has checked that port is all digits.
func canonicalPort(port, scheme string) (string, bool) {
	if port == "" {
		return "", true // "http://a.com:/" is "http://a.com/"
	}
	port = strings.TrimLeft(port, "0")
	if port == "" || len(port) > 5 || port > "65535" && len(port) == 5 {
		return "", false
	}
	if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		return "", true
	}
	return port, true
}

// appendLower appends s to dst with ASCII letters in lower case.
func appendLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// appendNormalized appends s to dst with its percent-encoding normalized:
// escapes of unreserved characters decoded, other escapes in upper-case hex,
// and bytes outside class escaped. It fails on a malformed escape.
func appendNormalized(dst []byte, s string, class uint8) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return dst, url.EscapeError(s[i:min(i+3, len(s))])
			}
			b := unhex(s[i+1])<<4 | unhex(s[i+2])
			if byteClass[b]&unreserved != 0 {
				dst = append(dst, b)
			} else {
				dst = append(dst, '%', upperHex[b>>4], upperHex[b&0xf])
			}
			i += 2
		case byteClass[c]&class != 0:
			dst = append(dst, c)
		default:
			dst = append(dst, '%', upperHex[c>>4], upperHex[c&0xf])
		}
	}
	return dst, nil
}

// checkEscapes returns the error appendNormalized would return for s.
func checkEscapes(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return url.EscapeError(s[i:min(i+3, len(s))])
		}
		i += 2
	}
	return nil
}

// removeDotSegments removes the "." and ".." segments of path, which starts
// with "/", as RFC 3986 §5.2.4 does. It works in place and returns the
// shortened path.
func removeDotSegments(path []byte) []byte {
	if !hasDotSegment(path) {
		return path
	}
	// out never grows past the segment being read, so the copy in append
	// never overwrites unread bytes.
	out := path[:0]
	for i := 0; i < len(path); {
		j := i + 1
		for j < len(path) && path[j] != '/' {
			j++
		}
		seg, last := path[i+1:j], j == len(path)
		switch {
		case isDot(seg):
			if last {
				out = append(out, '/')
			}
		case isDotDot(seg):
			if k := bytes.LastIndexByte(out, '/'); k >= 0 {
				out = out[:k]
			}
			if last {
				out = append(out, '/')
			}
		default:
			out = append(out, path[i:j]...)
		}
		i = j
	}
	if len(out) == 0 {
		out = append(out, '/')
	}
	return out
}

// hasDotSegment reports whether path, which starts with "/", has a "." or
// ".." segment.
func hasDotSegment[S ~string | ~[]byte](path S) bool {
	start := 1
	for i := 1; i <= len(path); i++ {
		if i < len(path) && path[i] != '/' {
			continue
		}
		if seg := path[start:i]; isDot(seg) || isDotDot(seg) {
			return true
		}
		start = i + 1
	}
	return false
}

// isDot reports whether seg is the segment ".".
func isDot[S ~string | ~[]byte](seg S) bool { return len(seg) == 1 && seg[0] == '.' }

// isDotDot reports whether seg is the segment "..".
func isDotDot[S ~string | ~[]byte](seg S) bool {
	return len(seg) == 2 && seg[0] == '.' && seg[1] == '.'
}

// param locates one normalized query parameter, name[=value], in a buffer.
type param struct{ start, nameEnd, end int }

// appendQuery appends to dst the canonical form of query, with its "?", or
// nothing if no parameter is left.
func appendQuery(dst []byte, query string) ([]byte, error) {
	base := len(dst)
	// Parameters are normalized into dst past base, then appended in order
	// after them, and that result is moved down to base: one buffer serves.
	var stack [16]param
	params := stack[:0]
	for query != "" {
		var piece string
		piece, query, _ = strings.Cut(query, "&")
		if piece == "" {
			continue // "a=1&&b=2" has no third parameter
		}
		name, value, hasValue := strings.Cut(piece, "=")
		start := len(dst)
		var err error
		if dst, err = appendNormalized(dst, name, queryByte); err != nil {
			return dst, err
		}
		nameEnd := len(dst)
		if hasValue {
			dst = append(dst, '=')
			if dst, err = appendNormalized(dst, value, queryByte); err != nil {
				return dst, err
			}
		}
		if isTracking(string(dst[start:nameEnd])) {
			dst = dst[:start]
			continue
		}
		params = append(params, param{start, nameEnd, len(dst)})
	}
	if len(params) == 0 {
		return dst[:base], nil
	}

	// Names are compared normalized, not decoded: the order differs from
	// the decoded one, but it is the same for every spelling of a query,
	// which is all that identity needs. A stable sort keeps "a=2&a=1" apart
	// from "a=1&a=2": to many sites the order of repeated names matters.
	b := dst
	slices.SortStableFunc(params, func(x, y param) int {
		return bytes.Compare(b[x.start:x.nameEnd], b[y.start:y.nameEnd])
	})
	sorted := len(dst)
	for i, q := range params {
		sep := byte('&')
		if i == 0 {
			sep = '?'
		}
		dst = append(dst, sep)
		dst = append(dst, dst[q.start:q.end]...)
	}
	n := copy(dst[base:], dst[sorted:])
	return dst[:base+n], nil
}

// isTracking reports whether a query parameter, by its normalized name, only
// says how the visitor came (campaign and click ids), not which page it is.
//
// Names are compared case-sensitively: the query is data to the site, which
// may tell "Gclid" from "gclid", and the ad platforms that add these
// parameters always write them in lower case. Since every character of
// these names is unreserved, the normalized name equals the decoded one
// whenever either is a tracking name.
func isTracking(name string) bool {
	if strings.HasPrefix(name, "utm_") {
		return true
	}
	switch name {
	case "gclid", "fbclid", "msclkid", "dclid", "gbraid", "wbraid", "yclid",
		"mc_cid", "mc_eid", "_ga", "_gl", "igshid":
		return true
	}
	return false
}

// fastCanonical returns the canonical form of raw under p when it is raw
// itself, or raw without a query made only of tracking parameters. It accepts
// only a plain subset of URLs, all of which url.Parse accepts, with a
// lower-case host name (no IP literal) and no escapes or dot segments to
// change; for anything else it reports false and normalize decides.
func (p URLPolicy) fastCanonical(raw string) (string, bool) {
	var rest, defaultPort string
	switch {
	case strings.HasPrefix(raw, "https://"):
		rest, defaultPort = raw[len("https://"):], "443"
	case strings.HasPrefix(raw, "http://"):
		rest, defaultPort = raw[len("http://"):], "80"
	default:
		return "", false
	}

	i := 0
	for i < len(rest) && byteClass[rest[i]]&hostByte != 0 && (rest[i] < 'A' || rest[i] > 'Z') {
		i++
	}
	if i == 0 {
		return "", false
	}
	if i < len(rest) && rest[i] == ':' {
		j := i + 1
		for j < len(rest) && '0' <= rest[j] && rest[j] <= '9' {
			j++
		}
		port := rest[i+1 : j]
		if port == "" || port[0] == '0' || len(port) > 5 || len(port) == 5 && port > "65535" || port == defaultPort {
			return "", false
		}
		i = j
	}
	if i == len(rest) || rest[i] != '/' {
		return "", false
	}

	path, query, hasQuery := strings.Cut(rest[i:], "?")
	if !isCanonicalComponent(path, pathByte) || hasDotSegment(path) {
		return "", false
	}
	if p.FoldTrailingSlash && len(path) > 1 && path[len(path)-1] == '/' {
		return "", false
	}
	if !hasQuery {
		return raw, true
	}
	if p.StripQuery || query == "" {
		return "", false
	}
	beforeQuery := raw[:len(raw)-len(query)-1]
	prev, kept, dropped := "", 0, 0
	for more := true; more; {
		var piece string
		piece, query, more = strings.Cut(query, "&")
		name, _, _ := strings.Cut(piece, "=")
		if piece == "" || !isCanonicalComponent(piece, queryByte) {
			return "", false
		}
		if isTracking(name) {
			dropped++
			continue
		}
		// prev starts as "", below every name but the empty one, which
		// sorts first anyway.
		if name < prev {
			return "", false
		}
		prev = name
		kept++
	}
	switch {
	case dropped == 0:
		return raw, true
	case kept == 0:
		return beforeQuery, true
	}
	return "", false // some kept, some dropped: normalize rebuilds the query
}

// isCanonicalComponent reports whether appendNormalized would leave s as it
// is: every raw byte in class, every escape in upper case and of a byte that
// is not unreserved.
func isCanonicalComponent(s string, class uint8) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			if byteClass[c]&class == 0 {
				return false
			}
			continue
		}
		if i+2 >= len(s) || !isUpperHex(s[i+1]) || !isUpperHex(s[i+2]) ||
			byteClass[unhex(s[i+1])<<4|unhex(s[i+2])]&unreserved != 0 {
			return false
		}
		i += 2
	}
	return true
}

// Byte classes, as bits of byteClass.
const (
	unreserved uint8 = 1 << iota // RFC 3986 unreserved: A-Z a-z 0-9 - . _ ~
	hostByte                     // may be in a host name: unreserved and sub-delims
	pathByte                     // kept raw in a path: pchar and "/"
	queryByte                    // kept raw in a query name or value: pchar, "/" and "?"
)

// byteClass maps each byte to its classes. It is a constant table, built
// once and only read.
var byteClass = func() (t [256]uint8) {
	const subDelims = "!$&'()*+,;="
	for c := range 256 {
		b := byte(c)
		if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("-._~", b) >= 0 {
			t[c] |= unreserved | hostByte | pathByte | queryByte
		}
		if strings.IndexByte(subDelims, b) >= 0 {
			t[c] |= hostByte | pathByte | queryByte
		}
		if strings.IndexByte(":@/", b) >= 0 {
			t[c] |= pathByte | queryByte
		}
		if b == '?' {
			t[c] |= queryByte
		}
	}
	return t
}()

// upperHex holds the hex digits that escapes are written with.
const upperHex = "0123456789ABCDEF"

// isHex reports whether c is a hex digit.
func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// isUpperHex reports whether c is a hex digit as canonical escapes write it.
func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

// unhex returns the value of the hex digit c (either case).
func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}
