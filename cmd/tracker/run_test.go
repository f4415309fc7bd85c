package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/web"
)

// TestReadmeExamples runs the README's curl examples against the real
// service and checks the answers printed there.
func TestReadmeExamples(t *testing.T) {
	t.Parallel()
	in := start(t, nil)
	in.waitReady(t)

	for _, v := range []string{"alice", "bob", "alice"} {
		if s := in.post(t, v, "https://example.com/pricing?utm_source=newsletter"); s != http.StatusAccepted {
			t.Fatalf("POST: %d", s)
		}
	}
	status, _, body := in.do(t, "GET", "/api/v1/visitors?url=https%3A%2F%2Fexample.com%2Fpricing", "", "")
	if want := `{"url":"https://example.com/pricing","visitors":2}`; status != 200 || strings.TrimSpace(body) != want {
		t.Errorf("GET visitors: %d %s, want 200 %s", status, body, want)
	}
	status, _, body = in.do(t, "GET", "/api/v1/visitors?url=https%3A%2F%2Fexample.com%2Fnever-seen", "", "")
	if want := `{"url":"https://example.com/never-seen","visitors":0}`; status != 200 || strings.TrimSpace(body) != want {
		t.Errorf("GET never seen: %d %s, want 200 %s", status, body, want)
	}
}

// TestContractStatuses walks every status code of the contract through the
// real server, and checks that no rejected event is counted.
func TestContractStatuses(t *testing.T) {
	t.Parallel()
	in := start(t, nil)
	page := "https://shop.example/item/1"
	tests := []struct {
		name, method, path, ctype, body string
		want                            int
		slug                            string
	}{
		{"accepted", "POST", "/api/v1/events", "application/json", `{"visitor_id":"ok","url":"` + page + `"}`, 202, ""},
		{"accepted text/plain", "POST", "/api/v1/events", "text/plain;charset=UTF-8", `{"visitor_id":"ok2","url":"` + page + `"}`, 202, ""},
		{"malformed", "POST", "/api/v1/events", "application/json", `{"visitor_id":"bad1","url":"` + page + `"`, 400, "malformed-body"},
		{"invalid field", "POST", "/api/v1/events", "application/json", `{"visitor_id":"","url":"` + page + `"}`, 400, "validation"},
		{"invalid url", "POST", "/api/v1/events", "application/json", `{"visitor_id":"bad2","url":"javascript:alert(1)"}`, 400, "validation"},
		{"trailing data", "POST", "/api/v1/events", "application/json", `{"visitor_id":"bad3","url":"` + page + `"}{}`, 400, "malformed-body"},
		{"too large", "POST", "/api/v1/events", "application/json", `{"visitor_id":"bad4","url":"` + page + `","p":"` + strings.Repeat("x", 17<<10) + `"}`, 413, "body-too-large"},
		{"media type", "POST", "/api/v1/events", "application/xml", `{"visitor_id":"bad5","url":"` + page + `"}`, 415, "unsupported-media-type"},
		{"wrong method on events", "GET", "/api/v1/events", "", "", 405, "method-not-allowed"},
		{"wrong method on visitors", "POST", "/api/v1/visitors?url=x", "application/json", `{}`, 405, "method-not-allowed"},
		{"unknown path", "GET", "/api/v2/events", "", "", 404, "not-found"},
		{"trailing slash is another path", "POST", "/api/v1/events/", "application/json", `{"visitor_id":"bad6","url":"` + page + `"}`, 404, "not-found"},
		{"visitors bad query", "GET", "/api/v1/visitors?url=", "", "", 400, "validation"},
		{"visitors ok", "GET", "/api/v1/visitors?url=" + page, "", "", 200, ""},
		{"healthz", "GET", "/healthz", "", "", 200, ""},
		{"readyz", "GET", "/readyz", "", "", 200, ""},
		{"openapi", "GET", "/openapi.yaml", "", "", 200, ""},
	}
	for _, tt := range tests {
		status, h, body := in.do(t, tt.method, tt.path, tt.ctype, tt.body)
		if status != tt.want {
			t.Errorf("%s: status %d, want %d (%s)", tt.name, status, tt.want, body)
			continue
		}
		if h.Get("X-Request-ID") == "" {
			t.Errorf("%s: no X-Request-ID", tt.name)
		}
		if tt.slug == "" {
			continue
		}
		var p web.Problem
		if err := json.Unmarshal([]byte(body), &p); err != nil || h.Get("Content-Type") != "application/problem+json" ||
			p.Type != web.ProblemTypePrefix+tt.slug || p.Status != tt.want || p.Title == "" || p.Detail == "" {
			t.Errorf("%s: problem %s (%s, %v), want type %s", tt.name, body, h.Get("Content-Type"), err, tt.slug)
		}
		if tt.want == 405 && h.Get("Allow") == "" {
			t.Errorf("%s: 405 without Allow", tt.name)
		}
	}
	if _, n := in.visitors(t, page); n != 2 {
		t.Errorf("page counts %d visitors, want 2: a rejected event was counted or an accepted one lost", n)
	}
	if got := len(in.logs.matching("request")); got < len(tests) {
		t.Errorf("%d access lines for %d requests", got, len(tests))
	}
}

// TestConcurrentIngest posts overlapping visitors to a few pages from many
// goroutines over real connections and checks the exact counts.
func TestConcurrentIngest(t *testing.T) {
	t.Parallel()
	in := start(t, nil)
	const workers, perWorker, visitorsPerPage = 16, 150, 100
	pages := []string{"https://a.example/", "https://a.example/x", "https://b.example/?q=1"}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				n := w*perWorker + i
				page := pages[n%len(pages)]
				body := fmt.Sprintf(`{"visitor_id":"v%d","url":%q}`, n%visitorsPerPage, page)
				resp, err := in.client.Post(in.base+"/api/v1/events", "application/json", strings.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Visitor v(k) lands on page k%3 only, since 100 and 3 are coprime and
	// every n < 2400 is used: each page sees the visitors k with k%3 == its index.
	for i, p := range pages {
		want := 0
		for k := range visitorsPerPage {
			for n := k; n < workers*perWorker; n += visitorsPerPage {
				if n%len(pages) == i {
					want++
					break
				}
			}
		}
		if _, got := in.visitors(t, p); got != int64(want) {
			t.Errorf("%s: %d visitors, want %d", p, got, want)
		}
	}
}

// TestStalledClient holds a connection mid-body and checks that others are
// served meanwhile and that the server drops the stalled one by ReadTimeout.
func TestStalledClient(t *testing.T) {
	t.Parallel()
	in := start(t, nil, "-read-timeout", "1s", "-read-header-timeout", "1s")
	conn, err := net.Dial("tcp", strings.TrimPrefix(in.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"visitor_id\":")

	for i := range 20 {
		if s := in.post(t, fmt.Sprint("v", i), "https://stall.example/"); s != http.StatusAccepted {
			t.Fatalf("a request behind a stalled client: %d", s)
		}
	}
	// The server must give up on the stalled request: it answers or closes.
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept a stalled connection open past its read timeout")
	}
	if strings.Contains(line, " 202 ") {
		t.Fatalf("a partial body was accepted: %q", line)
	}
	if _, n := in.visitors(t, "https://stall.example/"); n != 20 {
		t.Errorf("%d visitors, want 20", n)
	}
}

// TestRateLimit checks 429 with Retry-After past a client's burst, that the
// refused event is not counted, and that clients behind a trusted proxy get
// a bucket each.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	in := start(t, nil, "-rate-limit", "0.001", "-rate-burst", "2", "-trusted-proxies", "127.0.0.1/32")
	page := "https://limited.example/"
	send := func(visitor, forwardedFor string) (int, http.Header) {
		req, _ := http.NewRequest("POST", in.base+"/api/v1/events",
			strings.NewReader(fmt.Sprintf(`{"visitor_id":%q,"url":%q}`, visitor, page)))
		if forwardedFor != "" {
			req.Header.Set("X-Forwarded-For", forwardedFor)
		}
		resp, err := in.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	for i, want := range []int{202, 202, 429} {
		status, h := send(fmt.Sprint("a", i), "198.51.100.1")
		if status != want {
			t.Fatalf("client A request %d: %d, want %d", i, status, want)
		}
		if status == 429 && h.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	if status, _ := send("b0", "198.51.100.2"); status != 202 {
		t.Errorf("client B limited by client A: %d", status)
	}
	if _, n := in.visitors(t, page); n != 3 {
		t.Errorf("%d visitors, want 3 (a refused event was counted?)", n)
	}
	// Queries are not rate limited.
	for range 5 {
		in.visitors(t, page)
	}
}
