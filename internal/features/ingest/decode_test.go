package ingest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

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
			v, u, err := decodeEvent([]byte(tt.body))
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
				if v != tt.wantVisitor || u != tt.wantURL {
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

// FuzzDecodeEvent checks that no body panics the decoder, and that whatever
// it accepts agrees with encoding/json's reading of the same body.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{
		`{"visitor_id":"v1","url":"https://a.com/"}`,
		`{"ts":[1,{"a":"}"}],"visitor_id":"v","url":"http://a.com","y":{"z":"\""}}`,
		`{"visitor_id":"\u00e9\"\\","url":"http:\/\/a.com\/"}`,
		`[]`, `{}`, `{"visitor_id":1}`, `{"a":"b"} {}`, "{\"visitor_id\":\"\xff\"}", ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, u, err := decodeEvent(body)
		if err != nil {
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
		if ref.VisitorID == nil || ref.URL == nil || *ref.VisitorID != v || *ref.URL != u {
			t.Fatalf("decodeEvent(%q) = (%q, %q), encoding/json reads %+v", body, v, u, ref)
		}
	})
}
