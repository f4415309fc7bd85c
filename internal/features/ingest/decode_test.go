package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/web"
)

func TestDecodeEvent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		body          string
		wantVisitor   string
		wantURL       string
		wantMalformed string   // substring of a malformed-body error
		wantFields    []string // fields named by a validation error
	}{
		{name: "minimal", body: `{"visitor_id":"v1","url":"https://a.com/"}`, wantVisitor: "v1", wantURL: "https://a.com/"},
		{name: "order and space", body: " \n{ \"url\" : \"https://a.com/x\" ,\t\"visitor_id\" : \"v 2\" }\r\n", wantVisitor: "v 2", wantURL: "https://a.com/x"},
		{name: "unknown fields skipped", body: `{"ts":[1,{"a":"}"}],"visitor_id":"v","x":null,"url":"http://a.com","y":{"z":"\""},"n":-1.5e3,"b":true}`, wantVisitor: "v", wantURL: "http://a.com"},
		{name: "escapes decoded", body: `{"visitor_id":"\u00e9\"\\","url":"http:\/\/a.com\/"}`, wantVisitor: "é\"\\", wantURL: "http://a.com/"},
		{name: "unicode kept", body: `{"visitor_id":"Zoë 🙂","url":"http://a.com/"}`, wantVisitor: "Zoë 🙂", wantURL: "http://a.com/"},
		{name: "field names are exact", body: `{"Visitor_ID":"v","URL":"http://a.com/"}`, wantFields: []string{"visitor_id", "url"}},
		{name: "numbers skipped", body: `{"a":-0,"b":1e5,"c":1E+2,"d":0.5e-3,"e":[0,-1.25E-7,10],"visitor_id":"v","url":"u"}`, wantVisitor: "v", wantURL: "u"},
		{name: "control escapes", body: `{"visitor_id":"\b\f\n\r\t\/\u0000","url":"\ud83d\ude00"}`, wantVisitor: "\b\f\n\r\t/\x00", wantURL: "😀"},
		{name: "lone surrogates", body: `{"visitor_id":"\ud800","url":"\udc00\ud800x\ud800\u0041\ud800\ud800\udc00"}`, wantVisitor: "\uFFFD", wantURL: "\uFFFD\uFFFDx\uFFFDA\uFFFD\U00010000"},
		{name: "escaped names", body: `{"visitor\u005fid":"v","\u0075rl":"u"}`, wantVisitor: "v", wantURL: "u"},
		{name: "DEL and trailing space", body: "{\"visitor_id\":\"a\x7fb\",\"url\":\"u\"} \t\r\n", wantVisitor: "a\x7fb", wantURL: "u"},
		{name: "deep unknown value", body: `{"x":` + nested(200) + `,"visitor_id":"v","url":"u"}`, wantVisitor: "v", wantURL: "u"},

		{name: "empty body", body: ``, wantMalformed: "invalid JSON"},
		{name: "whitespace only", body: "  \n", wantMalformed: "invalid JSON"},
		{name: "truncated", body: `{"visitor_id":"v","url":"http://a.com/"`, wantMalformed: "invalid JSON"},
		{name: "single quotes", body: `{'visitor_id':'v'}`, wantMalformed: "invalid JSON"},
		{name: "trailing comma", body: `{"visitor_id":"v","url":"http://a.com/",}`, wantMalformed: "invalid JSON"},
		{name: "trailing data", body: `{"visitor_id":"v","url":"http://a.com/"} {}`, wantMalformed: "after top-level value"},
		{name: "trailing garbage", body: `{"visitor_id":"v","url":"http://a.com/"}x`, wantMalformed: "invalid JSON"},
		{name: "invalid UTF-8", body: "{\"visitor_id\":\"\xff\",\"url\":\"http://a.com/\"}", wantMalformed: "UTF-8"},
		{name: "array", body: `[{"visitor_id":"v","url":"http://a.com/"}]`, wantMalformed: "must be a JSON object"},
		{name: "string", body: `"hello"`, wantMalformed: "must be a JSON object"},
		{name: "null", body: `null`, wantMalformed: "must be a JSON object"},
		{name: "number", body: `42`, wantMalformed: "must be a JSON object"},
		{name: "duplicate visitor_id", body: `{"visitor_id":"a","visitor_id":"b","url":"http://a.com/"}`, wantMalformed: `"visitor_id" is given twice`},
		{name: "duplicate url", body: `{"visitor_id":"a","url":"http://a.com/","url":"http://b.com/"}`, wantMalformed: `"url" is given twice`},
		{name: "escaped duplicate", body: `{"visitor_id":"a","visitor\u005fid":"b","url":"u"}`, wantMalformed: `"visitor_id" is given twice`},
		{name: "duplicate before bad fields", body: `{"url":1,"url":2}`, wantMalformed: `"url" is given twice`},
		{name: "syntax before duplicate", body: `{"url":"a","url":"b",`, wantMalformed: "invalid JSON at byte 21: unexpected end of JSON input"},
		{name: "syntax before not an object", body: `[`, wantMalformed: "invalid JSON at byte 1: unexpected end of JSON input"},
		{name: "leading zero", body: `{"visitor_id":01}`, wantMalformed: "invalid JSON at byte 16: invalid character '1' after object key:value pair"},
		{name: "no fraction", body: `{"visitor_id":1.}`, wantMalformed: "invalid JSON at byte 17: invalid character '}' after decimal point in numeric literal"},
		{name: "no integer part", body: `{"visitor_id":.5}`, wantMalformed: "invalid JSON at byte 15: invalid character '.' looking for beginning of value"},
		{name: "plus sign", body: `{"visitor_id":+1}`, wantMalformed: "invalid JSON at byte 15: invalid character '+' looking for beginning of value"},
		{name: "minus alone", body: `{"visitor_id":-}`, wantMalformed: "invalid JSON at byte 16: invalid character '}' in numeric literal"},
		{name: "no exponent", body: `{"visitor_id":1e}`, wantMalformed: "invalid JSON at byte 17: invalid character '}' in exponent of numeric literal"},
		{name: "top-level number cut", body: `1.`, wantMalformed: "invalid JSON at byte 2: invalid character ' ' after decimal point in numeric literal"},
		{name: "raw control character", body: "{\"visitor_id\":\"a\x01\"}", wantMalformed: `invalid JSON at byte 17: invalid character '\x01' in string literal`},
		{name: "raw tab", body: "{\"visitor_id\":\"a\tb\"}", wantMalformed: `invalid JSON at byte 17: invalid character '\t' in string literal`},
		{name: "bad escape", body: `{"visitor_id":"\x"}`, wantMalformed: "invalid JSON at byte 17: invalid character 'x' in string escape code"},
		{name: "bad hex escape", body: `{"visitor_id":"\u12G4"}`, wantMalformed: `invalid JSON at byte 20: invalid character 'G' in \u hexadecimal character escape`},
		{name: "cut escape", body: `{"a":"\`, wantMalformed: "invalid JSON at byte 7: invalid character ' ' in string escape code"},
		{name: "bad literal", body: `{"visitor_id":tru}`, wantMalformed: "invalid JSON at byte 18: invalid character '}' in literal true (expecting 'e')"},
		{name: "cut literal", body: `{"visitor_id":nul`, wantMalformed: "invalid JSON at byte 17: invalid character ' ' in literal null (expecting 'l')"},
		{name: "byte order mark", body: "\xef\xbb\xbf{}", wantMalformed: "invalid JSON at byte 1: invalid character 'ï' looking for beginning of value"},
		{name: "form feed is not space", body: "{}\f", wantMalformed: `invalid JSON at byte 3: invalid character '\f' after top-level value`},
		{name: "nested trailing comma", body: `{"a":[1,]}`, wantMalformed: "invalid JSON at byte 9: invalid character ']' looking for beginning of value"},
		{name: "nested key without value", body: `{"a":{"b"}}`, wantMalformed: "invalid JSON at byte 10: invalid character '}' after object key"},
		{name: "nested key not a string", body: `{"a":{1:2}}`, wantMalformed: "invalid JSON at byte 7: invalid character '1' looking for beginning of object key string"},
		{name: "invalid UTF-8 in a key", body: "{\"\xff\":1,\"visitor_id\":\"v\",\"url\":\"u\"}", wantMalformed: "UTF-8"},
		{name: "invalid UTF-8 in a skipped value", body: "{\"visitor_id\":\"v\",\"url\":\"u\",\"x\":[\"\xc3\"]}", wantMalformed: "UTF-8"},
		{name: "UTF-8 surrogate", body: "{\"visitor_id\":\"\xed\xa0\x80\",\"url\":\"u\"}", wantMalformed: "UTF-8"},
		{name: "UTF-8 overlong", body: "{\"visitor_id\":\"\xc0\xaf\",\"url\":\"u\"}", wantMalformed: "UTF-8"},
		{name: "invalid UTF-8 after a syntax error", body: "{\"visitor_id\":x \"\xff\"}", wantMalformed: "UTF-8"},
		{name: "invalid UTF-8 after the object", body: "{\"visitor_id\":\"v\",\"url\":\"u\"}\xff", wantMalformed: "UTF-8"},

		{name: "missing both", body: `{}`, wantFields: []string{"visitor_id", "url"}},
		{name: "missing visitor_id", body: `{"url":"http://a.com/"}`, wantFields: []string{"visitor_id"}},
		{name: "missing url", body: `{"visitor_id":"v"}`, wantFields: []string{"url"}},
		{name: "visitor_id number", body: `{"visitor_id":42,"url":"http://a.com/"}`, wantFields: []string{"visitor_id"}},
		{name: "visitor_id null", body: `{"visitor_id":null,"url":"http://a.com/"}`, wantFields: []string{"visitor_id"}},
		{name: "url object", body: `{"visitor_id":"v","url":{"href":"http://a.com/"}}`, wantFields: []string{"url"}},
		{name: "url array and visitor bool", body: `{"visitor_id":true,"url":["http://a.com/"]}`, wantFields: []string{"visitor_id", "url"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, u, _, err := decodeEvent([]byte(tt.body))
			switch {
			case tt.wantMalformed != "":
				if !errors.Is(err, web.ErrMalformedBody) || !strings.Contains(err.Error(), tt.wantMalformed) {
					t.Fatalf("err = %v, want a malformed-body error containing %q", err, tt.wantMalformed)
				}
			case tt.wantFields != nil:
				assertFields(t, err, tt.wantFields)
			default:
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if string(v) != tt.wantVisitor || u != tt.wantURL {
					t.Errorf("got (%q, %q), want (%q, %q)", v, u, tt.wantVisitor, tt.wantURL)
				}
			}
		})
	}
}

func assertFields(t *testing.T, err error, want []string) {
	t.Helper()
	if !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("err = %v, want a validation error", err)
	}
	var got []string
	for _, f := range domain.FieldErrors(err) {
		got = append(got, f.Field)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("bad fields = %v, want %v (err: %v)", got, want, err)
	}
}

// nested returns n arrays, each inside the one before.
func nested(n int) string {
	return strings.Repeat("[", n) + strings.Repeat("]", n)
}

// TestDecodeEventDepth checks that nesting is bounded where encoding/json
// bounds it, the top-level value included, and that no depth exhausts the
// stack.
func TestDecodeEventDepth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		body          string
		wantMalformed string // "" for a body read without error
	}{
		{name: "field at the limit", body: `{"visitor_id":"v","url":"u","x":` + nested(maxDepth-1) + `}`},
		{name: "field past the limit", body: `{"visitor_id":"v","url":"u","x":` + nested(maxDepth) + `}`,
			wantMalformed: "invalid character '[' exceeded max depth"},
		{name: "objects past the limit", body: strings.Repeat(`{"x":`, maxDepth+1), wantMalformed: "invalid character '{' exceeded max depth"},
		{name: "top level at the limit", body: nested(maxDepth), wantMalformed: "must be a JSON object"},
		{name: "top level past the limit", body: nested(maxDepth + 1), wantMalformed: "exceeded max depth"},
		{name: "far past the limit", body: strings.Repeat("[", 1<<20), wantMalformed: "exceeded max depth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, _, err := decodeEvent([]byte(tt.body))
			if tt.wantMalformed == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
			} else if !errors.Is(err, web.ErrMalformedBody) || !strings.Contains(err.Error(), tt.wantMalformed) {
				t.Fatalf("err = %v, want a malformed-body error containing %q", err, tt.wantMalformed)
			}
			if wantValid := !strings.Contains(tt.wantMalformed, "depth"); json.Valid([]byte(tt.body)) != wantValid {
				t.Errorf("bad test: json.Valid = %v", !wantValid)
			}
		})
	}
}

// TestDecodeEventSkipsValidJSON checks that an unknown field may hold any
// valid JSON and nothing else.
func TestDecodeEventSkipsValidJSON(t *testing.T) {
	t.Parallel()
	for value, valid := range map[string]bool{
		`-0`: true, `1e5`: true, `1E+2`: true, `0.5e-3`: true, `-1.25E-7`: true, `10`: true, `0`: true,
		`01`: false, `-01`: false, `1.`: false, `.5`: false, `+1`: false, `-`: false, `1e`: false, `1e+`: false,
		`0x10`: false, `NaN`: false, `Infinity`: false, `1_000`: false,
		`true`: true, `false`: true, `null`: true, `tru`: false, `True`: false, `nul`: false, `falsey`: false,
		`"\u00e9"`: true, `"\ud83d\ude00"`: true, `"\ud800"`: true, `"\u0000"`: true, `"\""`: true, `"\/"`: true,
		`"\x"`: false, `"\u12G4"`: false, `"\u12"`: false, `"\'"`: false, "\"\x01\"": false, "\"\t\"": false,
		"\"\x7f\"": true, `"é"`: true, `"`: false,
		`[]`: true, `[ ]`: true, `[1,[2,{"a":[]}]]`: true, `[1,]`: false, `[,1]`: false, `[1 2]`: false, `[`: false, `]`: false,
		`{}`: true, `{ "a" : 1 , "b" : {} }`: true, `{"a"}`: false, `{"a":}`: false, `{1:2}`: false, `{"a":1,}`: false,
		`{"a" "b"}`: false, `{"a":1 "b":2}`: false, `{'a':1}`: false,
		"\xc2\xa01": false, "\v1": false, "\f1": false, " \t\r\n1 \t\r\n": true,
		`1 2`: false, ``: false,
	} {
		body := `{"visitor_id":"v","url":"u","x":` + value + `}`
		if json.Valid([]byte(body)) != valid {
			t.Errorf("bad test: json.Valid(%q) = %v", body, !valid)
		}
		_, _, _, err := decodeEvent([]byte(body))
		if valid && err != nil {
			t.Errorf("decodeEvent(%q) = %v, want no error", body, err)
		}
		if !valid && !errors.Is(err, web.ErrMalformedBody) {
			t.Errorf("decodeEvent(%q) = %v, want a malformed-body error", body, err)
		}
	}
}

// TestDecodeEventAllocs checks that reading an event allocates the URL's
// string and nothing else: the visitor id is read in place. An escaped
// string costs one more buffer. It is not parallel, since AllocsPerRun
// counts the allocations of every goroutine.
func TestDecodeEventAllocs(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		want       float64
	}{
		{"plain", `{"visitor_id":"3f2a9c1e-6b1d-4c55-9a7e-2d1f0b8e4c21","url":"https://shop.example.com/products/42?utm_source=newsletter&color=red"}`, 1},
		{"unknown fields", `{"ts":1732581234567,"screen":{"w":1920,"dpr":2.0},"tags":["sale",null,true],"visitor_id":"v1","url":"https://a.com/"}`, 1},
		{"escaped names", `{"visitor\u005fid":"v1","\u0075rl":"https://a.com/"}`, 1},
		{"deep value", `{"x":` + nested(60) + `,"visitor_id":"v1","url":"https://a.com/"}`, 1},
		{"escaped values", `{"visitor_id":"\u00e9","url":"a\/b"}`, 3},
	} {
		b := []byte(tt.body)
		allocs := testing.AllocsPerRun(100, func() {
			if _, _, _, err := decodeEvent(b); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
		})
		if allocs != tt.want {
			t.Errorf("%s: %v allocations, want %v", tt.name, allocs, tt.want)
		}
	}
}

func TestCheckContentType(t *testing.T) {
	t.Parallel()
	for ct, ok := range map[string]bool{
		"":                                  true,
		"application/json":                  true,
		"application/json; charset=utf-8":   true,
		"Application/JSON;charset=UTF-8":    true,
		"text/plain":                        true,
		"text/plain;charset=UTF-8":          true,
		" text/plain ; charset=iso-8859-1 ": true,
		"application/x-www-form-urlencoded": false,
		"multipart/form-data; boundary=x":   false,
		"text/html":                         false,
		"application/jsonx":                 false,
		"json":                              false,
	} {
		err := checkContentType(ct)
		if ok != (err == nil) {
			t.Errorf("checkContentType(%q) = %v, want ok=%v", ct, err, ok)
		}
		if err != nil && !errors.Is(err, web.ErrUnsupportedMediaType) {
			t.Errorf("checkContentType(%q) = %v, want ErrUnsupportedMediaType", ct, err)
		}
	}
}

// FuzzDecodeEvent checks that no body panics the decoder, that it reads
// JSON (in UTF-8) exactly as encoding/json does, and that whatever it
// accepts agrees with encoding/json's reading of the same body.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{
		`{"visitor_id":"v1","url":"https://a.com/"}`,
		`{"ts":[1,{"a":"}"}],"visitor_id":"v","url":"http://a.com","y":{"z":"\""}}`,
		`{"visitor_id":"\u00e9\"\\","url":"http:\/\/a.com\/"}`,
		`[]`, `{}`, `{"visitor_id":1}`, `{"a":"b"} {}`, "{\"visitor_id\":\"\xff\"}", ``,
		`{"a":-0,"b":1e5,"c":1E+2,"d":0.5e-3,"visitor_id":"v","url":"u"}`,
		`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":+1}`, `-`, `1e+`, `tru`,
		`{"visitor_id":"\ud83d\ude00","url":"\ud800"}`, `{"visitor_id":"\u0000\b\f\n\r\t","url":"\udc00\ud800\udc00"}`,
		`{"visitor\u005fid":"a","\u0075rl":"b"}`, `{"url":"a","\u0075rl":"b"}`, `{"url":"a","url":"b",`,
		`{"x":` + nested(100) + `,"visitor_id":"v","url":"u"}`, `{"x":` + nested(maxDepth) + `}`, nested(maxDepth),
		"{\"visitor_id\":\"a\x01\",\"url\":\"u\"}", "{\"visitor_id\":\"a\tb\",\"url\":\"u\"}",
		"{\"\xff\":1,\"visitor_id\":\"v\",\"url\":\"u\"}", "{\"visitor_id\":\"v\",\"url\":\"u\",\"x\":[\"\xed\xa0\x80\"]}",
		"\xef\xbb\xbf{\"visitor_id\":\"v\",\"url\":\"u\"}", "{\"visitor_id\":\"v\",\"url\":\"u\"} \t\r\n", "{}\f",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, u, _, err := decodeEvent(body)
		valid := json.Valid(body) && utf8.Valid(body)
		if errors.Is(err, web.ErrMalformedBody) {
			if valid && isEventObject(body) {
				t.Fatalf("decodeEvent(%q) = %v, but encoding/json reads an object with no field twice", body, err)
			}
			if strings.Contains(err.Error(), "UTF-8") == utf8.Valid(body) {
				t.Fatalf("decodeEvent(%q) = %v, but utf8.Valid = %v", body, err, utf8.Valid(body))
			}
			return
		}
		if !valid {
			t.Fatalf("decodeEvent(%q) = (%q, %q, %v), but json.Valid = %v and utf8.Valid = %v",
				body, v, u, err, json.Valid(body), utf8.Valid(body))
		}
		if err != nil {
			if !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("decodeEvent(%q) = %v, want a malformed-body or a validation error", body, err)
			}
			return
		}
		var ref struct {
			VisitorID *string `json:"visitor_id"`
			URL       *string `json:"url"`
		}
		var top map[string]json.RawMessage
		if jerr := json.Unmarshal(body, &top); jerr != nil {
			t.Fatalf("decodeEvent accepted %q, encoding/json says %v", body, jerr)
		}
		for k := range top {
			if (strings.EqualFold(k, "url") && k != "url") || (strings.EqualFold(k, "visitor_id") && k != "visitor_id") {
				return // encoding/json matches keys case-insensitively; decodeEvent does not
			}
		}
		if jerr := json.Unmarshal(body, &ref); jerr != nil {
			t.Fatalf("decodeEvent accepted %q, encoding/json says %v", body, jerr)
		}
		if ref.VisitorID == nil || ref.URL == nil || *ref.VisitorID != string(v) || *ref.URL != u {
			t.Fatalf("decodeEvent(%q) = (%q, %q), encoding/json reads %+v", body, v, u, ref)
		}
	})
}

// isEventObject reports whether encoding/json reads body as an object that
// names neither visitor_id nor url twice.
func isEventObject(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		key, _ := tok.(string)
		if (key == "visitor_id" || key == "url") && seen[key] {
			return false
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return false
		}
	}
	return true
}
