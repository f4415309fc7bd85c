package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/infra/redisstore/redistest"
)

// redisArgs are the flags of a tracker on srv, with keys of their own.
func redisArgs(t *testing.T, srv *redistest.Server) []string {
	return []string{"-store", "redis", "-redis-url", srv.URL(), "-redis-prefix", t.Name() + ":"}
}

// TestTwoInstancesOneRedis: events sent to either of two trackers on one
// Redis, concurrently, are counted exactly by both.
func TestTwoInstancesOneRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a, b := start(t, nil, redisArgs(t, srv)...), start(t, nil, redisArgs(t, srv)...)
	pages := []string{"https://shop.example.com/", "https://shop.example.com/cart"}
	const writers, perWriter, visitors = 8, 150, 400
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				in := a
				if (w+i)%2 == 1 {
					in = b
				}
				v := (w*perWriter + i) % visitors // visitors repeat across writers
				if status := in.post(t, fmt.Sprintf("visitor-%d", v), pages[v%2]); status != http.StatusAccepted {
					t.Errorf("post: %d", status)
					return
				}
			}
		})
	}
	wg.Wait()
	for p, page := range pages {
		want := int64(0)
		for v := range min(visitors, writers*perWriter) {
			if v%2 == p {
				want++
			}
		}
		_, na := a.visitors(t, page)
		_, nb := b.visitors(t, page)
		if na != want || nb != want {
			t.Errorf("%s: instance a counts %d, b %d; want %d from both", page, na, nb, want)
		}
	}
}

// TestTwoInstancesAgreeOnRanges: timed events sent half to each of two
// trackers on one Redis; both answer the same range, daily series and
// ranking, in a zone, and the range counts a returning visitor once.
func TestTwoInstancesAgreeOnRanges(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a, b := start(t, nil, redisArgs(t, srv)...), start(t, nil, redisArgs(t, srv)...)
	page := "https://shop.example.com/sale"
	day := time.Now().UTC().AddDate(0, 0, -5).Truncate(24 * time.Hour)
	for i := range 60 {
		in := a
		if i%2 == 1 {
			in = b
		}
		at := day.Add(time.Duration((i+i/20)%5)*24*time.Hour + time.Duration(i)*17*time.Minute).Format(time.RFC3339)
		body := fmt.Sprintf(`{"visitor_id":"v%d","url":%q,"time":%q}`, i%20, page, at)
		if status, _, resp := in.do(t, "POST", "/api/v1/events", "application/json", body); status != http.StatusAccepted {
			t.Fatalf("post %s: %d %s", body, status, resp)
		}
	}
	from, to := day.Format(time.DateOnly), day.AddDate(0, 0, 4).Format(time.DateOnly)
	for _, path := range []string{
		"/api/v1/visitors?url=" + page + "&from=" + from + "&to=" + to,
		"/api/v1/visitors/daily?url=" + page + "&from=" + from + "&to=" + to + "&tz=America/New_York",
		"/api/v1/pages?from=" + from + "&to=" + to + "&tz=Asia/Kolkata",
	} {
		sa, _, ba := a.do(t, "GET", path, "", "")
		sb, _, bb := b.do(t, "GET", path, "", "")
		if sa != http.StatusOK || sa != sb || ba != bb {
			t.Errorf("GET %s:\n a: %d %s\n b: %d %s", path, sa, ba, sb, bb)
		}
	}
	_, _, body := a.do(t, "GET", "/api/v1/visitors?url="+page+"&from="+from+"&to="+to, "", "")
	if !strings.Contains(body, `"visitors":20,"exact":true`) {
		t.Errorf("range: %s, want 20 visitors, each counted once over the five days", body)
	}
}

// TestRedisFault stops Redis under load: ingest answers 503 with
// Retry-After (never a 202 for an event not stored) and /readyz 503; once
// Redis is started again both recover by themselves, and every event that
// got a 202 is counted.
func TestRedisFault(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	in := start(t, nil, redisArgs(t, srv)...)
	s := newSender(in.base)
	var unavailable, retryAfter atomic.Int64
	s.onStatus = func(resp *http.Response) {
		if resp.StatusCode == http.StatusServiceUnavailable {
			unavailable.Add(1)
			if resp.Header.Get("Retry-After") != "" && strings.Contains(resp.Header.Get("Content-Type"), "problem+json") {
				retryAfter.Add(1)
			}
		}
	}
	stop := make(chan struct{})
	loaded := make(chan struct{})
	go func() { s.loadThrough(4, durablePages, "v", stop); close(loaded) }()

	time.Sleep(300 * time.Millisecond)
	srv.Kill()
	waitStatus(t, in, "/readyz", http.StatusServiceUnavailable)
	time.Sleep(300 * time.Millisecond)
	srv.Restart()
	waitStatus(t, in, "/readyz", http.StatusOK)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	<-loaded

	if unavailable.Load() == 0 || retryAfter.Load() != unavailable.Load() {
		t.Errorf("%d answers 503 while Redis was down, %d of them problem+json with Retry-After; want some, all",
			unavailable.Load(), retryAfter.Load())
	}
	t.Logf("%d events acknowledged, %d answered 503", len(s.acked[durablePages[0]])*len(durablePages), unavailable.Load())
	checkAcked(t, in, s)
}

// waitStatus polls path until it answers status.
func waitStatus(t *testing.T, in *instance, path string, status int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := in.client.Get(in.base + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == status {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %d", path, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReadmeRedis runs the README's two-instance walkthrough line by line:
// redis-server and two trackers started as printed (on free ports), events
// sent to each, and the counts each answers compared with the ones printed.
func TestReadmeRedis(t *testing.T) {
	t.Parallel()
	lines := readmeBlock(t, "## Scale out on Redis")
	var srv *redistest.Server
	hosts := map[string]string{}
	client := &http.Client{Timeout: 10 * time.Second}
	curls := 0
	for i, l := range lines {
		words := shellWords(strings.TrimSuffix(strings.TrimPrefix(l, "$ "), " &"))
		switch {
		case l == "$ make build": // the test binary is the tracker
		case strings.HasPrefix(l, "$ redis-server ") && strings.HasSuffix(l, " &"):
			var extra []string
			for j := 1; j < len(words); j++ {
				if words[j] == "--port" {
					j++ // the test's own free port instead
					continue
				}
				extra = append(extra, words[j])
			}
			srv = redistest.Start(t, extra...)
		case strings.HasPrefix(l, "$ bin/tracker ") && strings.HasSuffix(l, " &"):
			readmeAddr, host := startReadmeTracker(t, words, func(url string) string {
				return strings.Replace(url, "127.0.0.1:6379", srv.Addr, 1)
			})
			hosts[readmeAddr] = host
		case strings.HasPrefix(l, "$ curl "):
			readmeExamples(lines[i:min(i+2, len(lines))])[0].check(t, client, hosts)
			curls++
		case strings.HasPrefix(l, "$ "):
			t.Fatalf("the README's walkthrough has a line this test cannot run: %s", l)
		}
	}
	if curls < 4 || len(hosts) != 2 {
		t.Fatalf("the README's walkthrough has %d curl lines and %d trackers; want at least 4 and 2", curls, len(hosts))
	}
}

// startReadmeTracker starts a README's "bin/tracker … &" line, split into
// words, as a child process: on a free port instead of its -addr, its
// -redis-url rewritten by redisURL, with keys of the test's own. It
// returns the README's address (localhost:port) and the child's.
func startReadmeTracker(t *testing.T, words []string, redisURL func(string) string) (readmeAddr, host string) {
	t.Helper()
	var args []string
	for j := 1; j < len(words); j++ {
		switch words[j] {
		case "-addr":
			j++
			readmeAddr = "localhost" + words[j]
		case "-redis-url":
			j++
			args = append(args, "-redis-url", redisURL(words[j]))
		default:
			args = append(args, words[j])
		}
	}
	args = append(args, "-redis-prefix", t.Name()+":")
	return readmeAddr, strings.TrimPrefix(startMain(t, args...).base, "http://")
}
