package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/infra/redisstore/redistest"
)

// TestSlowRedis: while Redis answers nothing (DEBUG SLEEP), every request
// of a burst from many clients answers 503 problem+json with Retry-After
// within its deadline (-request-timeout) and a margin, the tracker's
// goroutines and heap stay bounded by the clients in flight, not by the
// requests sent, and once Redis answers again the tracker counts again,
// twice over. The tracker is a process of its own, measured by its
// /metrics, which does not wait for Redis.
func TestSlowRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, "--enable-debug-command", "yes")
	const timeout = 300 * time.Millisecond
	c := startMain(t, "-store", "redis", "-redis-url", srv.URL(), "-redis-prefix", t.Name()+":", "-request-timeout", timeout.String())
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range 20 {
		if status, body := send(client, c.base, "POST", fmt.Sprint("before-", i), slowPage); status != http.StatusAccepted {
			t.Fatalf("before: POST %d %s", status, body)
		}
	}
	goroutines0, heap0 := scrape(t, client, c.base, "go_goroutines"), scrape(t, client, c.base, "go_memstats_heap_inuse_bytes")
	const clients = 64
	for round := range 2 {
		slept := make(chan error, 1)
		go func() { _, err := srv.Do("DEBUG", "SLEEP", "2"); slept <- err }()
		time.Sleep(100 * time.Millisecond) // the sleep has begun
		var (
			sent, slow atomic.Int64
			worst      atomic.Int64 // nanoseconds
			wg         sync.WaitGroup
		)
		stop := time.Now().Add(1500 * time.Millisecond)
		for w := range clients {
			wg.Go(func() {
				cl := &http.Client{Timeout: 10 * time.Second}
				for i := 0; time.Now().Before(stop); i++ {
					method := []string{"POST", "GET"}[i%2]
					began := time.Now()
					resp, err := request(cl, c.base, method, fmt.Sprintf("r%d-w%d-%d", round, w, i), slowPage)
					took := time.Since(began)
					if err != nil {
						t.Error(err)
						return
					}
					sent.Add(1)
					if took > timeout+time.Second {
						slow.Add(1)
					}
					for w := worst.Load(); int64(took) > w && !worst.CompareAndSwap(w, int64(took)); w = worst.Load() {
					}
					if resp.status != http.StatusServiceUnavailable || resp.contentType != "application/problem+json" || resp.retryAfter == "" {
						t.Errorf("%s while Redis sleeps: %d %q Retry-After %q %s; want 503 problem+json with Retry-After",
							method, resp.status, resp.contentType, resp.retryAfter, resp.body)
						return
					}
				}
			})
		}
		// Sampled while the clients wait on a Redis that does not answer.
		time.Sleep(time.Second)
		during, heap := scrape(t, client, c.base, "go_goroutines"), scrape(t, client, c.base, "go_memstats_heap_inuse_bytes")
		wg.Wait()
		t.Logf("round %d: %d requests from %d clients, the slowest %v; goroutines %v before, %v during; heap in use %.1f MiB before, %.1f during",
			round, sent.Load(), clients, time.Duration(worst.Load()), goroutines0, during, heap0/(1<<20), heap/(1<<20))
		if slow.Load() > 0 {
			t.Errorf("%d answers took longer than the request timeout (%v) and a second; the slowest %v", slow.Load(), timeout, time.Duration(worst.Load()))
		}
		// A connection's goroutine and a handler's for each client, and the
		// store's few: nothing grows with the requests sent.
		if limit := goroutines0 + 4*clients; during > limit {
			t.Errorf("%v goroutines while Redis sleeps, %d requests in; want at most %v", during, sent.Load(), limit)
		}
		if limit := heap0 + 32<<20; heap > limit {
			t.Errorf("heap in use %.1f MiB while Redis sleeps; want at most %.1f", heap/(1<<20), limit/(1<<20))
		}
		if err := <-slept; err != nil {
			t.Fatal(err)
		}
		// Redis is back: the tracker counts again, by itself.
		page := fmt.Sprintf("https://example.com/after/%d", round)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			status, _ := send(client, c.base, "POST", "first", page)
			if status == http.StatusAccepted {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("10s after Redis woke up, POST answers %d", status)
			}
		}
		for i := range 49 {
			if status, body := send(client, c.base, "POST", fmt.Sprint("v", i), page); status != http.StatusAccepted {
				t.Fatalf("after: POST %d %s", status, body)
			}
		}
		if status, body := send(client, c.base, "GET", "", page); status != http.StatusOK || !strings.Contains(body, `"visitors":50`) {
			t.Errorf("after: GET %d %s, want 50 visitors", status, body)
		}
	}
	var after float64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if after = scrape(t, client, c.base, "go_goroutines"); after <= goroutines0+10 || time.Now().After(deadline) {
			break
		}
	}
	if after > goroutines0+10 {
		t.Errorf("%v goroutines 10s after the last sleep, %v before: some are left behind", after, goroutines0)
	}
}

const slowPage = "https://example.com/slow"

type answer struct {
	status                        int
	contentType, retryAfter, body string
}

// request sends an event of visitor to page (POST) or asks the page's
// count (GET).
func request(client *http.Client, base, method, visitor, page string) (answer, error) {
	var resp *http.Response
	var err error
	if method == "POST" {
		resp, err = client.Post(base+"/api/v1/events", "application/json",
			strings.NewReader(fmt.Sprintf(`{"visitor_id":%q,"url":%q}`, visitor, page)))
	} else {
		resp, err = client.Get(base + "/api/v1/visitors?url=" + url.QueryEscape(page))
	}
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After"), string(body)}, err
}

// send is request, for its status and body.
func send(client *http.Client, base, method, visitor, page string) (int, string) {
	a, err := request(client, base, method, visitor, page)
	if err != nil {
		return 0, err.Error()
	}
	return a.status, a.body
}

// scrape reads one unlabelled sample from the /metrics of base.
func scrape(t *testing.T, client *http.Client, base, name string) float64 {
	t.Helper()
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
