package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/infra/redisstore/redistest"
)

// TestReadmeCluster runs the README's Redis Cluster walkthrough line by
// line: its six redis-server lines become a real cluster of the test's own
// (the ports of the README mapped to free ones, the other arguments kept),
// joined as its redis-cli line says; its trackers start with their flags
// on it, and every curl line answers as printed.
func TestReadmeCluster(t *testing.T) {
	t.Parallel()
	lines := readmeBlock(t, "### On a Redis Cluster")
	var (
		readmeNodes []string // host:port of the README's redis-server lines
		extra       []string // their other arguments, the same for all
		cluster     *redistest.Cluster
		nodes       = map[string]string{} // README address → the test's
		hosts       = map[string]string{}
		client      = &http.Client{Timeout: 10 * time.Second}
		curls       = 0
	)
	for i, l := range lines {
		words := shellWords(strings.TrimSuffix(strings.TrimPrefix(l, "$ "), " &"))
		switch {
		case l == "$ make build": // the test binary is the tracker
		case strings.HasPrefix(l, "$ redis-server ") && strings.HasSuffix(l, " &"):
			var rest []string
			port := ""
			for j := 1; j < len(words); j++ {
				switch words[j] {
				case "--port":
					j++
					port = words[j]
				case "--cluster-enabled", "--cluster-config-file": // redistest sets them
					j++
				default:
					rest = append(rest, words[j])
				}
			}
			if port == "" || readmeNodes != nil && !slices.Equal(rest, extra) {
				t.Fatalf("README: the redis-server lines differ in more than their ports and files: %s", l)
			}
			readmeNodes, extra = append(readmeNodes, "127.0.0.1:"+port), rest
		case strings.HasPrefix(l, "$ redis-cli --cluster create "):
			want := append(append([]string{"redis-cli", "--cluster", "create"}, readmeNodes...), "--cluster-replicas", "1", "--cluster-yes")
			if !slices.Equal(words, want) || len(readmeNodes) != 6 {
				t.Fatalf("README: %s\nwant the cluster of the six redis-server lines above: %s", l, strings.Join(want, " "))
			}
			cluster = redistest.StartCluster(t, extra...)
			for j, addr := range readmeNodes {
				nodes[addr] = cluster.Nodes[j].Addr
			}
		case strings.HasPrefix(l, "$ bin/tracker ") && strings.HasSuffix(l, " &"):
			if cluster == nil {
				t.Fatalf("README: a tracker before the cluster is created: %s", l)
			}
			readmeAddr, host := startReadmeTracker(t, words, func(url string) string {
				for from, to := range nodes {
					url = strings.ReplaceAll(url, from, to)
				}
				return url
			})
			hosts[readmeAddr] = host
		case strings.HasPrefix(l, "$ curl "):
			readmeExamples(lines[i:min(i+2, len(lines))])[0].check(t, client, hosts)
			curls++
		case strings.HasPrefix(l, "$ "):
			t.Fatalf("the README's walkthrough has a line this test cannot run: %s", l)
		}
	}
	if curls < 4 || len(hosts) != 2 || cluster == nil {
		t.Fatalf("the README's Cluster walkthrough has %d curl lines, %d trackers and a cluster: %v; want at least 4, 2, true", curls, len(hosts), cluster != nil)
	}
}

// TestClusterFailoverOverHTTP kills a master of a Redis Cluster under load
// through a tracker that waits for a replica on every write: while the
// master's slots move (and until it is back as a replica), ingest answers
// 503 problem+json with Retry-After, never a 202 for an event then lost,
// and it answers 202 again afterwards. Each event is of a page of its own,
// so that a page's count says whether its one event is kept.
func TestClusterFailoverOverHTTP(t *testing.T) {
	t.Parallel()
	cluster := redistest.StartCluster(t)
	in := start(t, nil, "-store", "redis", "-redis-url", cluster.URL(), "-redis-prefix", t.Name()+":",
		"-redis-wait-replicas", "1", "-request-timeout", "2s")
	var (
		mu         sync.Mutex
		acked      []string
		refused    atomic.Int64
		afterWhole atomic.Int64 // acknowledgments once the cluster is whole again
		whole      atomic.Bool
		quit       = make(chan struct{})
		wg         sync.WaitGroup
	)
	for w := range 8 {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-quit:
					return
				default:
				}
				page := fmt.Sprintf("https://example.com/%d/%d", w, i)
				resp, err := client.Post(in.base+"/api/v1/events", "application/json",
					strings.NewReader(fmt.Sprintf(`{"visitor_id":"alice","url":%q}`, page)))
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusAccepted:
					mu.Lock()
					acked = append(acked, page)
					mu.Unlock()
					if whole.Load() {
						afterWhole.Add(1)
					}
				case resp.StatusCode == http.StatusServiceUnavailable:
					refused.Add(1)
					if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" || resp.Header.Get("Retry-After") == "" {
						t.Errorf("503 with Content-Type %q and Retry-After %q, want problem+json and a delay: %s", ct, resp.Header.Get("Retry-After"), body)
						return
					}
					time.Sleep(5 * time.Millisecond)
				default:
					t.Errorf("POST: %d %s, want 202 or 503", resp.StatusCode, body)
					return
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	cluster.Failover(cluster.Masters()[1])
	whole.Store(true)
	for deadline := time.Now().Add(10 * time.Second); afterWhole.Load() < 200; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("%d events acknowledged in the 10s after the failover, want 200", afterWhole.Load())
			break
		}
	}
	close(quit)
	wg.Wait()
	if refused.Load() == 0 {
		t.Error("no 503 while a master was down: the failover did not happen under load")
	}
	lost := 0
	for _, page := range acked {
		if _, n := in.visitors(t, page); n != 1 {
			lost++
		}
	}
	// Each node's connection pool the client knows is in /metrics, the
	// masters' open (a node restarted may not be known again yet).
	_, _, metrics := in.do(t, "GET", "/metrics", "", "")
	open := 0
	conns := regexp.MustCompile(`(?m)^tracker_redis_pool_connections\{node="([^"]+)"\} (\S+)$`).FindAllStringSubmatch(metrics, -1)
	for _, m := range conns {
		if m[2] != "0" {
			open++
		}
	}
	if open < 3 {
		t.Errorf("/metrics has %d nodes with connections open, want the 3 masters at least:\n%v", open, conns)
	}
	t.Logf("%d events acknowledged, %d answered 503, %d acknowledged and lost", len(acked), refused.Load(), lost)
	if lost > 0 {
		t.Errorf("%d of %d acknowledged events are lost after the failover", lost, len(acked))
	}
}
