package domain

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// canonicalCases gives, under the default policy, the exact canonical form of
// valid URLs, one rule at a time.
var canonicalCases = []struct {
	name string
	raw  string
	want string
}{
	// Already canonical: kept as they are.
	{"root", "https://example.com/", "https://example.com/"},
	{"page with sorted query", "https://example.com/blog/post-1?page=2&sort=new", "https://example.com/blog/post-1?page=2&sort=new"},
	{"port kept", "http://example.com:8080/", "http://example.com:8080/"},
	{"highest port", "http://a.com:65535/", "http://a.com:65535/"},
	{"IPv6 with port", "http://[::1]:8080/", "http://[::1]:8080/"},
	{"trailing dot in host", "http://a.com./", "http://a.com./"},
	{"sub-delims and colon and at in path", "http://a.com/!$&'()*+,;=:@", "http://a.com/!$&'()*+,;=:@"},
	{"path case and trailing slash kept", "http://a.com/About/", "http://a.com/About/"},
	{"empty segments kept", "http://a.com/a//b", "http://a.com/a//b"},
	{"three dots are no dot segment", "http://a.com/a/.../b.", "http://a.com/a/.../b."},

	// Rule 1: scheme, host, port.
	{"scheme and host lowered", "HTTPS://Example.COM/About", "https://example.com/About"},
	{"mixed-case scheme", "hTtP://a.com/", "http://a.com/"},
	{"default http port dropped", "http://a.com:80/x", "http://a.com/x"},
	{"default https port dropped", "https://a.com:443/x", "https://a.com/x"},
	{"https port on http kept", "http://a.com:443/", "http://a.com:443/"},
	{"http port on https kept", "https://a.com:80/", "https://a.com:80/"},
	{"empty port is no port", "http://a.com:/", "http://a.com/"},
	{"leading zeros of a default port", "http://a.com:0080/", "http://a.com/"},
	{"leading zeros of a port", "http://a.com:08080/", "http://a.com:8080/"},
	{"IPv6 lowered", "http://[2001:DB8::A]/", "http://[2001:db8::a]/"},
	{"IPv6 default port dropped", "http://[::1]:80/x", "http://[::1]/x"},
	{"sub-delims in host", "http://A!$&'()*+,;=B.com/", "http://a!$&'()*+,;=b.com/"},

	// Rule 2: fragment.
	{"fragment dropped", "http://a.com/p#top", "http://a.com/p"},
	{"fragment after query dropped", "http://a.com/p?x=1#top", "http://a.com/p?x=1"},
	{"empty fragment dropped", "http://a.com/#", "http://a.com/"},

	// Rule 3: path.
	{"empty path", "http://a.com", "http://a.com/"},
	{"empty path before query", "http://a.com?x=1", "http://a.com/?x=1"},
	{"dot segments", "http://a.com/a/b/../c/./d", "http://a.com/a/c/d"},
	{"escaped dot-dot", "http://a.com/a/%2E%2E/b", "http://a.com/b"},
	{"escaped lower-case dot", "http://a.com/a/%2e/b", "http://a.com/a/b"},
	{"dot-dot above root", "http://a.com/../../x", "http://a.com/x"},
	{"final dot-dot", "http://a.com/a/b/..", "http://a.com/a/"},
	{"final dot", "http://a.com/a/.", "http://a.com/a/"},
	{"only dot-dot", "http://a.com/..", "http://a.com/"},
	{"dot-dot over empty segment", "http://a.com/a//../b", "http://a.com/a/b"},
	{"unreserved decoded", "http://a.com/%7Euser/%41%62c%2D%5F%2E", "http://a.com/~user/Abc-_."},
	{"escaped slash kept, hex upper-cased", "http://a.com/a%2fb", "http://a.com/a%2Fb"},
	{"escaped reserved kept", "http://a.com/a%26b%3Dc%21", "http://a.com/a%26b%3Dc%21"},
	{"escaped space kept", "http://a.com/a%20b", "http://a.com/a%20b"},
	{"raw space escaped", "http://a.com/a b", "http://a.com/a%20b"},
	{"raw non-ASCII escaped", "http://a.com/ä", "http://a.com/%C3%A4"},
	{"lower-case escapes upper-cased", "http://a.com/%c3%a4", "http://a.com/%C3%A4"},
	{"raw non-pchar escaped", "http://a.com/\"<>\\^`{|}[]", "http://a.com/%22%3C%3E%5C%5E%60%7B%7C%7D%5B%5D"},
	{"escaped percent kept", "http://a.com/100%25", "http://a.com/100%25"},
	{"escaped bytes that are not UTF-8 kept", "http://a.com/%ff", "http://a.com/%FF"},
	{"escaped question mark kept", "http://a.com/a%3Fb", "http://a.com/a%3Fb"},

	// Rule 4: query.
	{"sorted by name", "http://a.com/?b=2&a=1", "http://a.com/?a=1&b=2"},
	{"repeated names keep their order", "http://a.com/?b=2&a=1&b=1", "http://a.com/?a=1&b=2&b=1"},
	{"many repeated names keep their order", "http://a.com/?" + manyParams("b", "a"), "http://a.com/?" + manyParams("a", "") + "&" + manyParams("b", "")},
	{"empty pairs dropped", "http://a.com/?a=1&&b=2&", "http://a.com/?a=1&b=2"},
	{"empty query", "http://a.com/?", "http://a.com/"},
	{"query of empty pairs", "http://a.com/?&&", "http://a.com/"},
	{"utm parameters dropped", "http://a.com/?utm_source=x&utm_medium=y", "http://a.com/"},
	{"bare utm_ prefix dropped", "http://a.com/?utm_=1&id=2", "http://a.com/?id=2"},
	{"every click id dropped", "http://a.com/?id=7&gclid=1&fbclid=2&msclkid=3&dclid=4&gbraid=5&wbraid=6&yclid=7&mc_cid=8&mc_eid=9&_ga=10&_gl=11&igshid=12", "http://a.com/?id=7"},
	{"tracking name without value dropped", "http://a.com/?gclid&id=1", "http://a.com/?id=1"},
	{"escaped tracking name dropped", "http://a.com/?utm%5Fsource=x&%67clid=y&id=1", "http://a.com/?id=1"},
	{"tracking names are case-sensitive", "http://a.com/?UTM_SOURCE=x&Gclid=y", "http://a.com/?Gclid=y&UTM_SOURCE=x"},
	{"near tracking names kept", "http://a.com/?utm=2&gclidx=1&xutm_a=3", "http://a.com/?gclidx=1&utm=2&xutm_a=3"},
	{"plus kept", "http://a.com/?q=a+b", "http://a.com/?q=a+b"},
	{"escaped plus kept", "http://a.com/?q=a%2bb", "http://a.com/?q=a%2Bb"},
	{"escaped space in query kept", "http://a.com/?q=a%20b", "http://a.com/?q=a%20b"},
	{"raw space in query escaped", "http://a.com/?q=a b", "http://a.com/?q=a%20b"},
	{"unreserved decoded in query", "http://a.com/?%71=%7E%41", "http://a.com/?q=~A"},
	{"non-ASCII in query escaped", "http://a.com/?q=ä", "http://a.com/?q=%C3%A4"},
	{"name without equals kept apart", "http://a.com/?a&a=", "http://a.com/?a&a="},
	{"name with equals kept apart", "http://a.com/?a=&a", "http://a.com/?a=&a"},
	{"equals in value", "http://a.com/?x=1=2", "http://a.com/?x=1=2"},
	{"empty name", "http://a.com/?b=1&=1&=", "http://a.com/?=1&=&b=1"},
	{"sorted by normalized name", "http://a.com/?b=1&%61=2", "http://a.com/?a=2&b=1"},
	{"brackets in names escaped", "http://a.com/?a[]=1", "http://a.com/?a%5B%5D=1"},
	{"slash and question mark kept raw", "http://a.com/?next=/x?y", "http://a.com/?next=/x?y"},
	{"escaped separators kept", "http://a.com/?a=%26&b=%3d", "http://a.com/?a=%26&b=%3D"},
}

// manyParams returns 20 parameters name=0 to name=19, alternating with
// other=0 to other=19 unless other is "". Sorting that many takes more than
// the insertion sort that is stable by chance.
func manyParams(name, other string) string {
	var b strings.Builder
	for i := range 20 {
		if i > 0 {
			b.WriteByte('&')
		}
		fmt.Fprintf(&b, "%s=%d", name, i)
		if other != "" {
			fmt.Fprintf(&b, "&%s=%d", other, i)
		}
	}
	return b.String()
}

// invalidCases gives rejected URLs and a substring of each one's reason.
var invalidCases = []struct {
	name   string
	raw    string
	reason string
}{
	{"empty", "", "must not be empty"},
	{"too long", "http://a.com/" + strings.Repeat("a", MaxURLBytes-len("http://a.com/")+1), "must be at most 4096 bytes"},
	{"too long once canonical", "http://a.com/" + strings.Repeat(" ", 2000), "must be at most 4096 bytes when canonical"},
	{"invalid UTF-8", "http://a.com/\xff", "must be valid UTF-8"},
	{"invalid UTF-8 in host", "http://a\xc3.com/", "must be valid UTF-8"},
	{"no scheme", "example.com/page", "must be an absolute http or https URL"},
	{"path only", "/page", "must be an absolute http or https URL"},
	{"network-path reference", "//a.com/", "must be an absolute http or https URL"},
	{"leading space", " http://a.com/", "is not a valid URL"},
	{"ftp", "ftp://a.com/", "must be an absolute http or https URL"},
	{"mailto", "mailto:x@a.com", "must be an absolute http or https URL"},
	{"javascript", "javascript:alert(1)", "must be an absolute http or https URL"},
	{"opaque", "http:foo", "must have a host"},
	{"one slash", "http:/foo", "must have a host"},
	{"empty authority", "http:///foo", "must have a host"},
	{"nothing after scheme", "http://", "must have a host"},
	{"port only", "http://:8080/", "must have a host"},
	{"user", "http://user@a.com/", "must not contain user info"},
	{"user and password", "http://user:pw@a.com/", "must not contain user info"},
	{"empty user info", "http://@a.com/", "must not contain user info"},
	{"port zero", "http://a.com:0/", "must have a port from 1 to 65535"},
	{"port zeros", "http://a.com:000/", "must have a port from 1 to 65535"},
	{"port too high", "http://a.com:65536/", "must have a port from 1 to 65535"},
	{"port far too high", "http://a.com:99999999999999999999/", "must have a port from 1 to 65535"},
	{"port not numeric", "http://a.com:8o/", "is not a valid URL: invalid port"},
	{"two ports", "http://a.com:80:90/", "is not a valid URL"},
	{"bad escape in path", "http://a.com/%zz", "is not a valid URL: invalid URL escape \"%zz\""},
	{"truncated escape in path", "http://a.com/%4", "is not a valid URL: invalid URL escape"},
	{"bad escape in query", "http://a.com/?a=%zz", "is not a valid URL: invalid URL escape \"%zz\""},
	{"truncated escape at end of query", "http://a.com/?a=%", "is not a valid URL: invalid URL escape \"%\""},
	{"bad escape in dropped parameter", "http://a.com/?utm_source=%zz", "is not a valid URL: invalid URL escape"},
	{"bad escape in fragment", "http://a.com/#%zz", "is not a valid URL: invalid URL escape"},
	{"control character", "http://a.com/\n", "is not a valid URL: net/url: invalid control character"},
	{"delete character", "http://a.com/?q=\x7f", "is not a valid URL: net/url: invalid control character"},
	{"space in host", "http://a b.com/", "is not a valid URL: invalid character \" \" in host name"},
	{"angle bracket in host", "http://a<b.com/", "is not a valid URL: invalid character \"<\" in host name"},
	{"quote in host", "http://a\"b.com/", "is not a valid URL: invalid character \"\\\"\" in host name"},
	{"non-ASCII host", "http://ä.com/", "must have an ASCII host"},
	{"percent-encoded host", "http://%C3%A4.com/", "must not have a percent-encoded host"},
	{"IPv6 zone", "http://[fe80::1%25en0]/", "must not have an IPv6 zone"},
	{"unclosed IP literal", "http://[::1/", "is not a valid URL"},
	{"IPv4 in brackets", "http://[1.2.3.4]/", "is not a valid URL"},
	{"bad IPv6", "http://[::g]/", "is not a valid URL"},
}

// equivalenceCases are pairs of URLs that name the same page, or that must
// not, under the default policy.
var equivalenceCases = []struct {
	name string
	a, b string
	same bool
}{
	{"scheme and host case", "HTTP://A.COM/x", "http://a.com/x", true},
	{"empty path", "http://a.com", "http://a.com/", true},
	{"default port", "http://a.com:80/", "http://a.com/", true},
	{"empty port", "http://a.com:/", "http://a.com/", true},
	{"fragment", "http://a.com/p#x", "http://a.com/p", true},
	{"raw and escaped non-ASCII", "http://a.com/ä", "http://a.com/%C3%A4", true},
	{"lower and upper escapes", "http://a.com/%c3%a4", "http://a.com/%C3%A4", true},
	{"escaped dot segments", "http://a.com/a/%2E%2E/b", "http://a.com/b", true},
	{"escaped unreserved", "http://a.com/%7Euser", "http://a.com/~user", true},
	{"raw and escaped space", "http://a.com/?q=a b", "http://a.com/?q=a%20b", true},
	{"query order", "http://a.com/?b=1&a=2", "http://a.com/?a=2&b=1", true},
	{"tracking parameter", "http://a.com/?a=1&utm_source=x", "http://a.com/?a=1", true},
	{"empty pair", "http://a.com/?a=1&&b=2", "http://a.com/?a=1&b=2", true},
	{"empty query", "http://a.com/?", "http://a.com/", true},

	{"path case", "http://a.com/About", "http://a.com/about", false},
	{"trailing slash", "http://a.com/a/", "http://a.com/a", false},
	{"query value", "http://a.com/?a=1", "http://a.com/?a=2", false},
	{"scheme", "http://a.com/", "https://a.com/", false},
	{"port", "http://a.com:8080/", "http://a.com/", false},
	{"escaped slash", "http://a.com/a%2Fb", "http://a.com/a/b", false},
	{"escaped sub-delim", "http://a.com/!", "http://a.com/%21", false},
	{"name with and without equals", "http://a.com/?a", "http://a.com/?a=", false},
	{"plus and escaped space", "http://a.com/?q=a+b", "http://a.com/?q=a%20b", false},
	{"plus and escaped plus", "http://a.com/?q=a+b", "http://a.com/?q=a%2Bb", false},
	{"order of repeated names", "http://a.com/?a=1&a=2", "http://a.com/?a=2&a=1", false},
	{"trailing dot in host", "http://a.com./", "http://a.com/", false},
	{"tracking name case", "http://a.com/?Gclid=1", "http://a.com/", false},
}

// policyCases give exact canonical forms under each non-default policy.
var policyCases = []struct {
	name   string
	policy URLPolicy
	raw    string
	want   string
}{
	{"strip query", URLPolicy{StripQuery: true}, "http://a.com/p?b=2&a=1#f", "http://a.com/p"},
	{"strip empty query", URLPolicy{StripQuery: true}, "http://a.com/p?", "http://a.com/p"},
	{"strip keeps path", URLPolicy{StripQuery: true}, "http://a.com/a/", "http://a.com/a/"},
	{"strip without query", URLPolicy{StripQuery: true}, "http://a.com/p", "http://a.com/p"},
	{"fold", URLPolicy{FoldTrailingSlash: true}, "http://a.com/a/", "http://a.com/a"},
	{"fold keeps root", URLPolicy{FoldTrailingSlash: true}, "http://a.com/", "http://a.com/"},
	{"fold empty path", URLPolicy{FoldTrailingSlash: true}, "http://a.com", "http://a.com/"},
	{"fold double slash to root", URLPolicy{FoldTrailingSlash: true}, "http://a.com//", "http://a.com/"},
	{"fold every trailing slash", URLPolicy{FoldTrailingSlash: true}, "http://a.com/a//", "http://a.com/a"},
	{"fold after dot-dot", URLPolicy{FoldTrailingSlash: true}, "http://a.com/a/b/..", "http://a.com/a"},
	{"fold before query", URLPolicy{FoldTrailingSlash: true}, "http://a.com/a/?x=1", "http://a.com/a?x=1"},
	{"fold keeps escaped slash", URLPolicy{FoldTrailingSlash: true}, "http://a.com/a%2F", "http://a.com/a%2F"},
	{"fold keeps query", URLPolicy{FoldTrailingSlash: true}, "http://a.com/a?b=1&a=2", "http://a.com/a?a=2&b=1"},
	{"both", URLPolicy{StripQuery: true, FoldTrailingSlash: true}, "HTTP://A.com:80/a/?utm_source=x#y", "http://a.com/a"},
}

func TestCanonical(t *testing.T) {
	t.Parallel()
	for _, tc := range canonicalCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkCanonical(t, URLPolicy{}, tc.raw, tc.want)
		})
	}
}

func TestCanonicalPolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range policyCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkCanonical(t, tc.policy, tc.raw, tc.want)
		})
	}
}

// checkCanonical checks that raw has the canonical form want under p, and
// that want is a fixed point both of Canonical and of its general path, so
// that the fast path cannot hide a bug of the general one.
func checkCanonical(t *testing.T, p URLPolicy, raw, want string) {
	t.Helper()
	got, err := p.Canonical(raw)
	if err != nil {
		t.Fatalf("Canonical(%q): %v", raw, err)
	}
	if got.String() != want {
		t.Errorf("Canonical(%q) = %q, want %q", raw, got, want)
	}
	if got.IsZero() {
		t.Errorf("Canonical(%q).IsZero() = true", raw)
	}
	again, err := p.Canonical(want)
	if err != nil || again.String() != want {
		t.Errorf("Canonical(%q) = %q, %v; want it unchanged", want, again, err)
	}
	slow, err := p.normalize(want)
	if err != nil || slow.String() != want {
		t.Errorf("normalize(%q) = %q, %v; want it unchanged", want, slow, err)
	}
	if _, err := url.Parse(want); err != nil {
		t.Errorf("canonical form %q does not parse: %v", want, err)
	}
}

func TestCanonicalInvalid(t *testing.T) {
	t.Parallel()
	policies := []URLPolicy{{}, {StripQuery: true, FoldTrailingSlash: true}}
	for _, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Validity does not depend on the policy.
			for _, p := range policies {
				got, err := p.Canonical(tc.raw)
				if err == nil {
					t.Fatalf("%+v.Canonical(%q) = %q, want an error", p, tc.raw, got)
				}
				if !got.IsZero() {
					t.Errorf("%+v.Canonical(%q) = %q with its error, want the zero PageURL", p, tc.raw, got)
				}
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("error %v is not ErrInvalid", err)
				}
				var fe *FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("error %v (%T) is not a *FieldError", err, err)
				}
				if fe.Field != "url" {
					t.Errorf("Field = %q, want \"url\"", fe.Field)
				}
				if !strings.Contains(fe.Reason, tc.reason) {
					t.Errorf("Reason = %q, want it to contain %q", fe.Reason, tc.reason)
				}
			}
		})
	}
}

func TestCanonicalEquivalence(t *testing.T) {
	t.Parallel()
	for _, tc := range equivalenceCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := ParsePageURL(tc.a)
			if err != nil {
				t.Fatalf("ParsePageURL(%q): %v", tc.a, err)
			}
			b, err := ParsePageURL(tc.b)
			if err != nil {
				t.Fatalf("ParsePageURL(%q): %v", tc.b, err)
			}
			if (a == b) != tc.same {
				t.Errorf("ParsePageURL(%q) = %q and ParsePageURL(%q) = %q; same page = %v, want %v",
					tc.a, a, tc.b, b, a == b, tc.same)
			}
		})
	}
}

func TestCanonicalPolicyEquivalence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		policy URLPolicy
		a, b   string
		same   bool
	}{
		{"strip query", URLPolicy{StripQuery: true}, "http://a.com/p?a=1", "http://a.com/p", true},
		{"strip query keeps trailing slash", URLPolicy{StripQuery: true}, "http://a.com/p/?a=1", "http://a.com/p", false},
		{"fold", URLPolicy{FoldTrailingSlash: true}, "http://a.com/a/", "http://a.com/a", true},
		{"fold keeps query", URLPolicy{FoldTrailingSlash: true}, "http://a.com/a/?x=1", "http://a.com/a", false},
		{"fold keeps case", URLPolicy{FoldTrailingSlash: true}, "http://a.com/A/", "http://a.com/a", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := tc.policy.Canonical(tc.a)
			if err != nil {
				t.Fatalf("Canonical(%q): %v", tc.a, err)
			}
			b, err := tc.policy.Canonical(tc.b)
			if err != nil {
				t.Fatalf("Canonical(%q): %v", tc.b, err)
			}
			if (a == b) != tc.same {
				t.Errorf("Canonical(%q) = %q and Canonical(%q) = %q; same page = %v, want %v",
					tc.a, a, tc.b, b, a == b, tc.same)
			}
		})
	}
}

func TestCanonicalLengthBoundary(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		raw  string
		ok   bool
	}{
		{"at the limit", "http://a.com/" + strings.Repeat("a", MaxURLBytes-len("http://a.com/")), true},
		{"one past the limit", "http://a.com/" + strings.Repeat("a", MaxURLBytes-len("http://a.com/")+1), false},
		// A raw space takes three bytes once escaped.
		{"at the limit once canonical", "http://a.com/" + strings.Repeat("a", MaxURLBytes-len("http://a.com/")-3) + " ", true},
		{"one past the limit once canonical", "http://a.com/" + strings.Repeat("a", MaxURLBytes-len("http://a.com/")-2) + " ", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePageURL(tc.raw)
			if (err == nil) != tc.ok {
				t.Fatalf("ParsePageURL(%d bytes) error = %v, want ok = %v", len(tc.raw), err, tc.ok)
			}
			if err == nil && len(got.String()) > MaxURLBytes {
				t.Errorf("canonical form has %d bytes, more than %d", len(got.String()), MaxURLBytes)
			}
		})
	}
}

func TestPageURLZero(t *testing.T) {
	t.Parallel()
	var zero PageURL
	if !zero.IsZero() {
		t.Error("PageURL{}.IsZero() = false")
	}
	if zero.String() != "" {
		t.Errorf("PageURL{}.String() = %q, want \"\"", zero.String())
	}
}

func TestParsePageURLIsDefaultPolicy(t *testing.T) {
	t.Parallel()
	// Each URL is changed by some policy switch, so that the test fails if
	// ParsePageURL uses a policy other than the zero one.
	for _, raw := range []string{"http://a.com/a/", "http://a.com/a?x=1"} {
		t.Run(raw, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePageURL(raw)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != raw {
				t.Errorf("ParsePageURL(%q) = %q, want it unchanged", raw, got)
			}
		})
	}
}

// TestCanonicalFastPathDoesNotAllocate is not parallel: AllocsPerRun counts
// the allocations of the whole process.
func TestCanonicalFastPathDoesNotAllocate(t *testing.T) {
	for _, bc := range benchCases {
		t.Run(bc.name, func(t *testing.T) {
			got, err := ParsePageURL(bc.raw)
			if err != nil {
				t.Fatal(err)
			}
			if (got.String() == bc.raw) != bc.canonical {
				t.Fatalf("ParsePageURL(%q) = %q; canonical already = %v, want %v", bc.raw, got, !bc.canonical, bc.canonical)
			}
			if !bc.fast {
				return
			}
			allocs := testing.AllocsPerRun(100, func() {
				_, _ = ParsePageURL(bc.raw)
			})
			if allocs != 0 {
				t.Errorf("ParsePageURL(%q) allocates %v times, want 0", bc.raw, allocs)
			}
		})
	}
}

func FuzzCanonicalURL(f *testing.F) {
	for _, tc := range canonicalCases {
		f.Add(tc.raw, false, false)
	}
	for _, tc := range invalidCases {
		f.Add(tc.raw, false, false)
	}
	for _, tc := range equivalenceCases {
		f.Add(tc.a, false, false)
		f.Add(tc.b, false, false)
	}
	for _, tc := range policyCases {
		f.Add(tc.raw, tc.policy.StripQuery, tc.policy.FoldTrailingSlash)
	}
	f.Fuzz(func(t *testing.T, raw string, stripQuery, fold bool) {
		p := URLPolicy{StripQuery: stripQuery, FoldTrailingSlash: fold}
		got, err := p.Canonical(raw)

		// The fast path must agree with the general one, errors included.
		if raw != "" && len(raw) <= MaxURLBytes {
			slow, serr := p.normalize(raw)
			if slow != got || (err == nil) != (serr == nil) || err != nil && err.Error() != serr.Error() {
				t.Fatalf("Canonical(%q) = %q, %v but normalize = %q, %v", raw, got, err, slow, serr)
			}
		}
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "url" || fe.Reason == "" {
				t.Fatalf("Canonical(%q): error %#v is not a FieldError for url", raw, err)
			}
			if !got.IsZero() {
				t.Fatalf("Canonical(%q) = %q with error %v", raw, got, err)
			}
			return
		}

		if _, perr := url.Parse(raw); perr != nil {
			t.Fatalf("Canonical(%q) accepted what net/url rejects: %v", raw, perr)
		}
		s := got.String()
		if s == "" || len(s) > MaxURLBytes {
			t.Fatalf("Canonical(%q) = %q (%d bytes)", raw, s, len(s))
		}
		u, perr := url.Parse(s)
		if perr != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", s, raw, perr)
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
			t.Fatalf("canonical form %q of %q parses as %#v", s, raw, u)
		}
		again, err := p.Canonical(s)
		if err != nil || again != got {
			t.Fatalf("Canonical(%q) = %q, but Canonical(%q) = %q, %v", raw, s, s, again, err)
		}
	})
}

func TestHostname(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"https://Shop.Example.com/a?b=1": "shop.example.com",
		"http://example.com:8080/":       "example.com",
		"http://[::1]:8080/x":            "[::1]",
		"http://[::1]/x":                 "[::1]",
	} {
		u, err := URLPolicy{}.Canonical(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := u.Hostname(); got != want {
			t.Errorf("Hostname of %s = %q, want %q", u, got, want)
		}
	}
}
