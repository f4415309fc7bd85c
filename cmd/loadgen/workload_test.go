package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestGeneratorRequests reads what each workload writes with net/http's own
// parser, so that a request the servers would reject fails here first.
func TestGeneratorRequests(t *testing.T) {
	t.Parallel()
	const host = "127.0.0.1:1234"
	for _, w := range []workload{workloadIngestUniform, workloadIngestHot, workloadQuery, workloadUnique, workloadIngestTimed} {
		t.Run(w.String(), func(t *testing.T) {
			t.Parallel()
			g := newGenerator(w, host, 10, 100, pagePath, 1, 2, 0, 1)
			var buf []byte
			pages := map[string]int{}
			tracked := 0
			const n = 2000
			for range n {
				buf, _ = g.appendRequest(buf)
			}
			br := bufio.NewReader(bytes.NewReader(buf))
			for i := range n {
				req, err := http.ReadRequest(br)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if req.Host != host {
					t.Errorf("Host %q, want %q", req.Host, host)
				}
				var page string
				if w == workloadQuery {
					if req.Method != http.MethodGet || req.URL.Path != "/api/v1/visitors" {
						t.Fatalf("%s %s, want GET /api/v1/visitors", req.Method, req.URL.Path)
					}
					page = req.URL.Query().Get("url")
				} else {
					if req.Method != http.MethodPost || req.URL.Path != "/api/v1/events" || req.Header.Get("Content-Type") != "application/json" {
						t.Fatalf("%s %s (%s), want POST /api/v1/events (application/json)", req.Method, req.URL.Path, req.Header.Get("Content-Type"))
					}
					var ev struct {
						VisitorID string `json:"visitor_id"`
						URL       string `json:"url"`
						Time      *time.Time
					}
					body, _ := io.ReadAll(req.Body)
					if err := json.Unmarshal(body, &ev); err != nil || ev.VisitorID == "" {
						t.Fatalf("body %q: %v", body, err)
					}
					if timed := w == workloadIngestTimed; timed != (ev.Time != nil) ||
						timed && (time.Since(*ev.Time) > 30*24*time.Hour || time.Until(*ev.Time) > 0) {
						t.Fatalf("body %q: a time in the last 30 days only for ingest-timed", body)
					}
					page = ev.URL
				}
				if p, ok := strings.CutSuffix(page, trackedSuffix); ok {
					page = p
					tracked++
				}
				if !strings.HasPrefix(page, pageOrigin+pagePath) {
					t.Fatalf("page %q is not under %s", page, pageOrigin+pagePath)
				}
				pages[page]++
			}
			if rest, _ := io.ReadAll(br); len(rest) > 0 {
				t.Errorf("%d bytes after the last request", len(rest))
			}
			if len(pages) != 10 {
				t.Errorf("%d distinct pages, want all 10", len(pages))
			}
			if w != workloadQuery && (tracked < n/3 || tracked > 2*n/3) {
				t.Errorf("%d of %d events carry a tracking parameter, want about half", tracked, n)
			}
			if hot := pages[pageOrigin+pagePath+"0"]; w == workloadIngestHot && (hot < n/3 || hot > 2*n/3) {
				t.Errorf("the hot page has %d of %d events, want about half", hot, n)
			}
		})
	}
}

// TestGeneratorUniquePairs checks that connections sharing a limited unique
// workload send every pair once, spread round-robin over the pages: the
// memory check relies on knowing each page's count.
func TestGeneratorUniquePairs(t *testing.T) {
	t.Parallel()
	const conns, pairs, pages = 3, 100, 7
	seen := map[string]bool{}
	perPage := map[string]int{}
	for i := range conns {
		g := newGenerator(workloadUnique, "h", pages, 1, memoryPath, 1, uint64(i), i, conns)
		g.limit = pairs
		for {
			req, more := g.appendRequest(nil)
			if !more {
				break
			}
			_, body, _ := bytes.Cut(req, []byte("\r\n\r\n"))
			var ev struct {
				VisitorID string `json:"visitor_id"`
				URL       string `json:"url"`
			}
			if err := json.Unmarshal(body, &ev); err != nil {
				t.Fatal(err)
			}
			page := strings.TrimSuffix(ev.URL, trackedSuffix)
			if key := ev.VisitorID + " " + page; seen[key] {
				t.Fatalf("pair %s sent twice", key)
			} else {
				seen[key] = true
			}
			perPage[page]++
		}
	}
	if len(seen) != pairs {
		t.Fatalf("%d pairs sent, want %d", len(seen), pairs)
	}
	for p := range int64(pages) {
		page := pageOrigin + memoryPath + string(rune('0'+p))
		want := pairs / pages
		if p < pairs%pages {
			want++
		}
		if perPage[page] != want {
			t.Errorf("%s has %d pairs, want %d", page, perPage[page], want)
		}
	}
}

func TestGeneratorAllocs(t *testing.T) {
	// Not parallel: AllocsPerRun counts the allocations of the whole process.
	for _, w := range []workload{workloadIngestUniform, workloadIngestHot, workloadQuery, workloadUnique, workloadIngestTimed} {
		g := newGenerator(w, "127.0.0.1:1", 1000, 1_000_000, pagePath, 1, 1, 0, 1)
		buf := make([]byte, 0, 512)
		if allocs := testing.AllocsPerRun(100, func() { buf, _ = g.appendRequest(buf[:0]) }); allocs != 0 {
			t.Errorf("%s: %v allocations per request, want 0", w, allocs)
		}
	}
}

func TestWorkloadList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"ingest-uniform,query", "ingest-uniform,query", false},
		{" unique , ingest-hot ", "unique,ingest-hot", false},
		{"", "", false},
		{"ingest", "", true},
	}
	for _, tt := range tests {
		var l workloadList
		err := l.Set(tt.in)
		if (err != nil) != tt.wantErr || (err == nil && l.String() != tt.want) {
			t.Errorf("Set(%q) = %q, %v; want %q, error %v", tt.in, l.String(), err, tt.want, tt.wantErr)
		}
	}
}

func BenchmarkAppendRequest(b *testing.B) {
	g := newGenerator(workloadIngestUniform, "127.0.0.1:1", 1000, 1_000_000, pagePath, 1, 1, 0, 1)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = g.appendRequest(buf[:0])
	}
}
