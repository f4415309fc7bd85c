package redisstore_test

import (
	"context"
	"testing"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/infra/redisstore"
	"github.com/webtracker/tracker/internal/infra/redisstore/redistest"
	"github.com/webtracker/tracker/internal/infra/storetest"
)

// TestOlderKeysMove: the all-time keys of a release before the hash tag
// (<prefix>visitors:<url>, <prefix>hll:<url>) are merged into their new
// names when a store opens, with visitors that the new key has already
// counted once, and go; on one server and on a Cluster, where the two
// names are in different slots.
func TestOlderKeysMove(t *testing.T) {
	t.Parallel()
	single := redistest.Start(t)
	cluster := redistest.StartCluster(t)
	const url = "https://example.com/old"
	for _, tc := range []struct {
		name string
		url  string
		node func(key string) *redistest.Server // where a key is written
	}{
		{"single", single.URL(), func(string) *redistest.Server { return single }},
		{"cluster", cluster.URL(), cluster.MasterOf},
	} {
		t.Run(tc.name, func(t *testing.T) {
			do := func(args ...string) {
				t.Helper()
				if reply, err := tc.node(args[1]).Do(args...); err != nil || len(reply) > 0 && reply[0] == '-' {
					t.Fatalf("%v: %q, %v", args, reply, err)
				}
			}
			prefix := tc.name + ":"
			// Before: alice and bob in the old set, bob and carol already in
			// the new one (an instance of this release ran meanwhile).
			do("SADD", prefix+"visitors:"+url, "alice---", "bob-----")
			do("SADD", prefix+"visitors:{"+url+"}", "bob-----", "carol---")
			do("PFADD", prefix+"hll:"+url, "alice", "bob")
			do("PFADD", prefix+"hll:{"+url+"}", "bob", "carol")
			for _, counting := range []redisstore.Counting{redisstore.Exact, redisstore.Approximate} {
				s := openURL(t, redisstore.Options{URL: tc.url, Prefix: prefix, Counting: counting, Retention: domain.DefaultRetention})
				n, err := s.Visitors(context.Background(), storetest.Page(t, url))
				if err != nil || n.Visitors != 3 {
					t.Errorf("counting %d: %d visitors, %v; want 3 (alice, bob, carol)", counting, n.Visitors, err)
				}
				pages, err := s.Pages(context.Background())
				if err != nil || len(pages) != 1 || pages[0].URL != url || pages[0].Count.Visitors != 3 {
					t.Errorf("counting %d: Pages() = %+v, %v; want the page once, with 3", counting, pages, err)
				}
			}
			for _, old := range []string{prefix + "visitors:" + url, prefix + "hll:" + url} {
				if n, err := tc.node(old).Int("EXISTS", old); err != nil || n != 0 {
					t.Errorf("EXISTS %s = %d, %v; want it gone", old, n, err)
				}
			}
		})
	}
}
