package redisstore

import "github.com/redis/go-redis/v9"

// AddHook adds h to the store's client, for tests that watch what it sends.
func AddHook(s *Store, h redis.Hook) { s.client.AddHook(h) }
