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
			var args []string
			readmeAddr := ""
			for j := 1; j < len(words); j++ {
				switch words[j] {
				case "-addr":
					j++
					readmeAddr = "localhost" + words[j]
				case "-redis-url":
					j++
					args = append(args, "-redis-url", strings.Replace(words[j], "127.0.0.1:6379", srv.Addr, 1))
				default:
					args = append(args, words[j])
				}
			}
			args = append(args, "-redis-prefix", t.Name()+":")
			c := startMain(t, args...)
			hosts[readmeAddr] = strings.TrimPrefix(c.base, "http://")
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
