package redisstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// migrateTimeout bounds the renaming of an older release's keys.
const migrateTimeout = 10 * time.Minute

// migrate moves the all-time keys of releases before the hash tag,
// <prefix>visitors:<url> and <prefix>hll:<url>, into their keys now,
// <prefix>visitors:{<url>} and <prefix>hll:{<url>}, on every master, and
// returns how many it moved. The two keys are in different slots on a
// Cluster, so RENAME cannot: the members (or the HyperLogLog's registers)
// are merged into the new key, which instances of this release may have
// written already, and the old key goes. Merging is idempotent, so that an
// interrupted or concurrent migration (instances starting together) loses
// nothing; only instances of an older release still writing old keys
// would, which is why the README says to stop them first.
func (s *Store) migrate(ctx context.Context) (int, error) {
	prefix := s.keyPrefix()
	pattern := escapeGlob(prefix) + "[^{]*" // the new keys' URLs start with the tag's brace
	moved := 0
	scan := func(ctx context.Context, c redis.UniversalClient) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			old := iter.Val()
			if err := s.moveKey(ctx, old, s.key(strings.TrimPrefix(old, prefix))); err != nil {
				return fmt.Errorf("moving %q: %w", old, err)
			}
			moved++
		}
		return iter.Err()
	}
	var err error
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		// One master at a time: moved is not shared between goroutines.
		var (
			mu      sync.Mutex
			masters []*redis.Client
		)
		if err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			mu.Lock()
			masters = append(masters, c)
			mu.Unlock()
			return nil
		}); err != nil {
			return 0, err
		}
		for _, c := range masters {
			if err = scan(ctx, c); err != nil {
				break
			}
		}
	} else {
		err = scan(ctx, s.client)
	}
	return moved, err
}

// moveKey merges the key old into the key to and deletes old, through the
// store's client, which finds each key's node on a Cluster.
func (s *Store) moveKey(ctx context.Context, old, to string) error {
	c := s.client
	if s.opts.Counting == Approximate {
		// A HyperLogLog is a string: copied beside to, in its slot, it
		// merges into it.
		hll, err := c.Get(ctx, old).Result()
		if err == redis.Nil {
			return nil // moved meanwhile by another instance
		} else if err != nil {
			return err
		}
		tmp := to + ":migrating"
		if err := c.Set(ctx, tmp, hll, time.Hour).Err(); err != nil {
			return err
		}
		if err := c.PFMerge(ctx, to, tmp).Err(); err != nil {
			return err
		}
		if err := c.Del(ctx, tmp).Err(); err != nil {
			return err
		}
		return c.Del(ctx, old).Err()
	}
	var cursor uint64
	for {
		members, next, err := c.SScan(ctx, old, cursor, "", 1000).Result()
		if err != nil {
			return err
		}
		if len(members) > 0 {
			args := make([]any, len(members))
			for i, m := range members {
				args[i] = m
			}
			if err := c.SAdd(ctx, to, args...).Err(); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			return c.Del(ctx, old).Err()
		}
	}
}
