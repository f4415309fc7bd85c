package snippet_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/webtracker/tracker/internal/features/snippet"
)

// TestScriptIsSmall holds the script to the promise of the README: under
// 2 KB, as served (it is written minified).
func TestScriptIsSmall(t *testing.T) {
	t.Parallel()
	if n := len(snippet.Script); n >= 2048 {
		t.Errorf("tracker.js is %d bytes, want under 2048", n)
	}
	w := httptest.NewRecorder()
	snippet.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/tracker.js", nil))
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" || w.Body.Len() != len(snippet.Script) {
		t.Errorf("GET /tracker.js: %d %q, %d bytes", w.Code, w.Header().Get("Content-Type"), w.Body.Len())
	}
}
