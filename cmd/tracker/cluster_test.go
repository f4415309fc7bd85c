package main

import (
	"net/http"
	"slices"
	"strings"
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
			var args []string
			readmeAddr := ""
			for j := 1; j < len(words); j++ {
				switch words[j] {
				case "-addr":
					j++
					readmeAddr = "localhost" + words[j]
				case "-redis-url":
					j++
					url := words[j]
					for from, to := range nodes {
						url = strings.ReplaceAll(url, from, to)
					}
					args = append(args, "-redis-url", url)
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
	if curls < 4 || len(hosts) != 2 || cluster == nil {
		t.Fatalf("the README's Cluster walkthrough has %d curl lines, %d trackers and a cluster: %v; want at least 4, 2, true", curls, len(hosts), cluster != nil)
	}
}
