package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/web"
)

// TestReadmeExamples runs every curl line of the README's quick start
// against the real service and compares the answers printed under it
// (request ids aside, since they differ from run to run).
func TestReadmeExamples(t *testing.T) {
	t.Parallel()
	examples := readmeExamples(readmeBlock(t, "## Quick start"))
	if len(examples) < 5 {
		t.Fatalf("found %d curl examples in the README, want at least 5", len(examples))
	}
	in := start(t, nil)
	in.waitReady(t)
	for _, ex := range examples {
		ex.check(t, in.client, map[string]string{"localhost:8080": strings.TrimPrefix(in.base, "http://")})
	}
}

// example is one curl command of the README and the first line under it.
type example struct {
	command, want string
}

// readmeBlock returns the lines of the first sh block with a "$ curl" line
// after the README's heading.
func readmeBlock(t *testing.T, heading string) []string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("no %q in the README", heading)
	}
	for {
		_, block, ok := strings.Cut(after, "```sh\n")
		if !ok {
			t.Fatalf("no sh block with a curl line after %q in the README", heading)
		}
		block, after, _ = strings.Cut(block, "```")
		if strings.Contains(block, "$ curl ") {
			return strings.Split(strings.TrimSuffix(block, "\n"), "\n")
		}
	}
}

// readmeExamples reads the "$ curl" lines of a README block, each with the
// first output line printed under it.
func readmeExamples(lines []string) []example {
	var out []example
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "$ curl "):
			out = append(out, example{command: strings.TrimPrefix(l, "$ ")})
		case l != "" && !strings.HasPrefix(l, "$ ") && len(out) > 0 && out[len(out)-1].want == "":
			out[len(out)-1].want = l
		}
	}
	return out
}

// check sends the example's request to host and compares the answer with
// the one the README prints (request ids aside); with none printed, any
// success will do.
func (ex example) check(t *testing.T, client *http.Client, hosts map[string]string) {
	t.Helper()
	req, err := ex.request(hosts)
	if err != nil {
		t.Fatalf("%s: %v", ex.command, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", ex.command, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case ex.want == "":
		if resp.StatusCode >= 300 {
			t.Errorf("%s: status %d %s", ex.command, resp.StatusCode, body)
		}
	case strings.HasPrefix(ex.want, "HTTP/1.1 "):
		if got := "HTTP/1.1 " + resp.Status; got != ex.want {
			t.Errorf("%s: %q, README shows %q", ex.command, got, ex.want)
		}
	default:
		if got, want := withoutRequestID(t, string(body)), withoutRequestID(t, ex.want); got != want {
			t.Errorf("%s:\n got  %s\n README %s", ex.command, got, want)
		}
	}
}

// request turns a curl command line of the README (options -i -s -X -H -d,
// single quotes) into a request, to the real address hosts gives for the
// README's host:port.
func (ex example) request(hosts map[string]string) (*http.Request, error) {
	args := shellWords(ex.command)[1:]
	method, target, body := "GET", "", ""
	header := http.Header{}
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "-i", "-s":
		case "-X", "-H", "-d":
			if i+1 == len(args) {
				return nil, fmt.Errorf("%s without a value", a)
			}
			i++
			switch a {
			case "-X":
				method = args[i]
			case "-H":
				k, v, _ := strings.Cut(args[i], ":")
				header.Set(k, strings.TrimSpace(v))
			case "-d":
				body = args[i]
				if header.Get("Content-Type") == "" {
					header.Set("Content-Type", "application/x-www-form-urlencoded") // what curl sends
				}
			}
		default:
			target = a
		}
	}
	readmeHost, path, _ := strings.Cut(target, "/")
	host, ok := hosts[readmeHost]
	if !ok {
		return nil, fmt.Errorf("no server for %s", readmeHost)
	}
	req, err := http.NewRequest(method, "http://"+host+"/"+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return req, nil
}

// shellWords splits a command line on spaces, keeping single-quoted text whole.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	quoted, inWord := false, false
	for _, r := range s {
		switch {
		case r == '\'':
			quoted, inWord = !quoted, true
		case r == ' ' && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
			}
			inWord = false
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// withoutRequestID re-encodes a JSON object without its request_id.
func withoutRequestID(t *testing.T, s string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not JSON: %s", s)
	}
	delete(m, "request_id")
	b, _ := json.Marshal(m)
	return string(b)
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
		if tt.slug == "" {
			continue
		}
		if h.Get("X-Request-ID") == "" {
			t.Errorf("%s: a problem without X-Request-ID", tt.name)
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
	// By default (-access-log=errors) only problem answers have access
	// lines at info level.
	problems := 0
	for _, tt := range tests {
		if tt.want >= 400 {
			problems++
		}
	}
	if got := len(in.logs.matching("request")); got != problems {
		t.Errorf("%d access lines for %d problem answers", got, problems)
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

// TestMetricsAndDebug checks the Prometheus metrics after known traffic, and
// that pprof is served on the admin listener only.
func TestMetricsAndDebug(t *testing.T) {
	t.Parallel()
	in := start(t, nil, "-debug-addr", "127.0.0.1:0", "-access-log", "all")
	for _, v := range []string{"m1", "m2", "m1"} {
		if s := in.post(t, v, "https://metrics.example/"); s != http.StatusAccepted {
			t.Fatalf("POST: %d", s)
		}
	}
	in.do(t, "POST", "/api/v1/events", "application/json", `{"visitor_id":"","url":"https://metrics.example/"}`)
	in.do(t, "POST", "/api/v1/events", "application/xml", `x`)
	in.do(t, "GET", "/nowhere", "", "")
	in.visitors(t, "https://metrics.example/")

	status, _, body := in.do(t, "GET", "/metrics", "", "")
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	for _, want := range []string{
		`tracker_events_total{reason="",result="accepted"} 3`,
		`tracker_events_total{reason="validation",result="rejected"} 1`,
		`tracker_events_total{reason="unsupported-media-type",result="rejected"} 1`,
		`tracker_http_requests_total{code="202",route="/api/v1/events"} 3`,
		`tracker_http_requests_total{code="404",route="other"} 1`,
		`tracker_http_requests_total{code="200",route="/api/v1/visitors"} 1`,
		`tracker_http_request_duration_seconds_count{route="/api/v1/events"} 5`,
		`tracker_pages 1`,
		`tracker_pairs 2`,
		`tracker_store_bytes `,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	line := <-in.logs.waitFor("debug listening")
	resp, err := http.Get("http://" + line["addr"].(string) + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("pprof on the admin listener: %d", resp.StatusCode)
	}
	if status, _, _ := in.do(t, "GET", "/debug/pprof/", "", ""); status != http.StatusNotFound {
		t.Errorf("pprof on the public port: %d, want 404", status)
	}
	// -access-log=all: one line per request, successes included.
	if got, want := len(in.logs.matching("request")), 9; got != want {
		t.Errorf("%d access lines, want %d", got, want)
	}
}
