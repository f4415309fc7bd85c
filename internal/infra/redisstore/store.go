// Package redisstore keeps the counts in Redis, so that any number of
// stateless tracker instances behind a load balancer share them.
//
// Each canonical page is one key for its all-time count. Exact counting
// keeps a set of 8-byte binary visitor hashes per page (SADD, SCARD),
// <prefix>visitors:{<url>}; approximate counting keeps a HyperLogLog per
// page (PFADD, PFCOUNT), <prefix>hll:{<url>}.
//
// Every key of a page holds its canonical URL in a hash tag, which a
// canonical URL can never break since it holds no brace: on a Redis Cluster
// all the keys of one page are in one slot, so that one node answers each
// of its queries, one script or PFCOUNT reads all its days, and an event's
// writes go to one node; pages spread over the slots by their URLs. Keys
// of releases before the all-time keys had the tag are renamed when the
// store starts (see migrate).
//
// A page view with a time is also kept for its UTC day, for counts over
// periods (Range, PagesIn). With <date> the UTC day as YYYY-MM-DD:
//
//   - exact: <prefix>days:{<url>}:<date>:first and …:last, two sorted sets
//     of the day's 8-byte visitor hashes, scored with the quarter of the day
//     (0 to 95) of the visitor's first view (ZADD LT) and of its last (ZADD
//     GT): a visitor's domain.Seen is its two scores. A script (see Range)
//     takes the members of each period's part of each day by score and
//     counts them, each once, in Redis;
//   - approximate: <prefix>hlldays:{<url>}:<date>, a HyperLogLog of the
//     whole day, and …:<date>:h<HH> and …:<date>:q<QQ>, one of each hour
//     (00 to 23) and of each quarter of the day (00 to 95) with views. A
//     period is counted by one PFCOUNT over the fewest of these that make
//     it up: whole days, then whole hours, then quarters at its ends. HLLs
//     merge register by register without loss, so the estimate of a union
//     has the standard error of one HyperLogLog (HLLRelativeError) whatever
//     the number of keys, and a visitor on several days counts once.
//
// Day keys expire (EXPIREAT NX) at the end of their day plus the retention
// plus two days, a day later than domain.Retention.KeepFrom asks, so that
// Redis's expiry serves retention and a clock a little off loses nothing.
// A view whose day has expired already counts for the all-time figures
// only. EXPIREAT NX needs Redis 7.0 or later.
//
// Requests in flight share connections: commands wait in one queue, and a
// few workers each take every command waiting and send them as one pipeline,
// so that under load one round trip carries many events, the writes of a
// view's day with its all-time write.
//
// Redis acknowledges a write before its replicas have it: a master that
// fails before they do loses it. With Options.WaitReplicas, a pipeline of
// writes ends with WAIT, and its events are acknowledged only once that
// many replicas have them; otherwise they fail as unavailable (and being
// idempotent, are safely sent again). On a Cluster, WAIT speaks for the
// writes of its own connection only, so each master's part of a pipeline
// goes to it on its own connection, with its own WAIT.
package redisstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/webtracker/tracker/internal/domain"
)

// Counting says how a page's visitors are kept.
type Counting int

const (
	// Exact keeps every visitor's hash in a set.
	Exact Counting = iota
	// Approximate keeps a HyperLogLog: 12 KiB per page at most, with a
	// standard error of 0.81%.
	Approximate
)

// HLLRelativeError is the standard error of Redis's HyperLogLog.
const HLLRelativeError = 0.0081

// Options configure a Store.
type Options struct {
	// URL is redis:// or rediss:// (TLS); with addr= parameters it names a
	// Redis Cluster, with master_name= a Sentinel setup (see Open).
	URL      string
	Prefix   string // of every key
	Counting Counting
	Logger   *slog.Logger
	// Workers is the number of pipelines in flight (default 4); Batch the
	// most commands one carries (default 512).
	Workers, Batch int
	// Timeout bounds one pipeline's round trip (default 2s). A request waits
	// no longer than its own deadline either way.
	Timeout time.Duration
	// HealthEvery is how often the server is pinged (default 1s).
	HealthEvery time.Duration
	// Retention is how long the days of page views are kept for ranges
	// (zero: domain.DefaultRetention). All-time counts are kept for good.
	Retention domain.Retention
	// WaitReplicas is how many replicas must have an event's writes before
	// it is acknowledged (0: as soon as the master has them).
	WaitReplicas int
}

// Store counts visitors in Redis. It is safe for concurrent use.
type Store struct {
	client redis.UniversalClient
	opts   Options
	queue  chan *op
	health atomic.Pointer[error] // nil while healthy
	stop   chan struct{}
	wg     sync.WaitGroup

	closeMu sync.RWMutex // read-held while queueing, so that Close sees no op after it
	closed  bool

	migrated bool // an older release's keys are moved; only checkHealth's goroutine uses it

	// rangeScript counts ranges in exact counting; go-redis loads it on a
	// server when a call finds it missing there.
	rangeScript *redis.Script
}

// op is one command waiting for its pipeline: a count, or an add with the
// writes of its day.
type op struct {
	key    string
	member string // for an add; "" for a count
	day    dayAdd // for an add with a time; zero otherwise
	done   chan struct{}
	n      int64
	err    error
	at     int // the index of its first command in the pipeline, for the worker
}

// dayAdd is what an add with a time writes besides its all-time key: the
// keys of its page and UTC day that take it (see the package comment; ""
// for none), its quarter of that day, and when those keys expire.
type dayAdd struct {
	keys     [3]string
	quarter  int
	expireAt int64 // Unix seconds
}

var ops = sync.Pool{New: func() any { return &op{done: make(chan struct{}, 1)} }}

// Open connects to Redis as the URL says and starts the workers. It does not
// wait for Redis: if the server is down, the store answers ErrUnavailable
// and reports itself unhealthy until it is back. Close releases it.
//
// The URL is parsed by go-redis: redis://[user:password@]host:port[/db] or
// rediss:// for TLS, with options as query parameters; addr=host:port
// parameters (one per other node) make it a Cluster client, master_name= a
// Sentinel (failover) client, whose addresses are then the sentinels.
func Open(opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Batch <= 0 {
		opts.Batch = 512
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.HealthEvery <= 0 {
		opts.HealthEvery = time.Second
	}
	if opts.Retention.Days <= 0 {
		opts.Retention = domain.DefaultRetention
	}
	client, err := newClient(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("-redis-url: %w", err)
	}
	s := &Store{client: client, opts: opts, queue: make(chan *op, 4*opts.Batch), stop: make(chan struct{}),
		rangeScript: redis.NewScript(rangeScript)}
	s.checkHealth()
	for range opts.Workers {
		s.wg.Go(s.worker)
	}
	s.wg.Go(s.healthLoop)
	return s, nil
}

// quietLibrary silences go-redis's own logger, a process-wide one that
// writes unstructured lines to stderr (a dial failure per attempt while
// Redis is down). The store reports what matters through its own logger:
// Redis lost and found again, and every failed request as a 503.
var quietLibrary sync.Once

type silent struct{}

func (silent) Printf(context.Context, string, ...any) {}

func newClient(rawURL string) (redis.UniversalClient, error) {
	quietLibrary.Do(func() { redis.SetLogger(silent{}) })
	switch {
	case strings.Contains(rawURL, "master_name="):
		o, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, err
		}
		return redis.NewFailoverClient(o), nil
	case strings.Contains(rawURL, "addr="):
		o, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, err
		}
		return redis.NewClusterClient(o), nil
	default:
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, err
		}
		return redis.NewClient(o), nil
	}
}

// Key returns the key of a page's visitors.
func (s *Store) Key(page domain.PageURL) string {
	return s.key(page.String())
}

// key is the key of the visitors of the page of canonical URL url.
func (s *Store) key(url string) string {
	return s.keyPrefix() + "{" + url + "}"
}

// keyPrefix is the part of every page key before the URL's hash tag. The
// two counting modes keep different types under different names, so that
// switching -counting starts new keys instead of meeting the other type's.
func (s *Store) keyPrefix() string {
	if s.opts.Counting == Approximate {
		return s.opts.Prefix + "hll:"
	}
	return s.opts.Prefix + "visitors:"
}

// Record adds one page view, and if it has a time, adds it to its UTC day
// too, in the same round trip. It returns once Redis has acknowledged it;
// an error that matches domain.ErrUnavailable means it may not be stored.
func (s *Store) Record(ctx context.Context, v domain.PageView) error {
	if v.Page.IsZero() || v.Visitor.IsZero() {
		return fmt.Errorf("redisstore: record a page view with a zero page or visitor: %w", domain.ErrInvalid)
	}
	var member [8]byte
	binary.LittleEndian.PutUint64(member[:], v.Visitor.Hash())
	var day dayAdd
	if !v.At.IsZero() {
		day = s.dayOf(v.Page, v.At, time.Now())
	}
	_, err := s.do(ctx, s.Key(v.Page), string(member[:]), day)
	return err
}

// Visitors answers the number of distinct visitors of page (an estimate
// when counting is Approximate); a page never seen has 0.
func (s *Store) Visitors(ctx context.Context, page domain.PageURL) (domain.Count, error) {
	if page.IsZero() {
		return domain.Count{}, fmt.Errorf("redisstore: count the visitors of a zero page: %w", domain.ErrInvalid)
	}
	n, err := s.do(ctx, s.Key(page), "", dayAdd{})
	return s.count(n), err
}

// count is n as counted in the store's mode.
func (s *Store) count(n int64) domain.Count {
	c := domain.Count{Visitors: n}
	if s.opts.Counting == Approximate {
		c.RelativeError = HLLRelativeError
	}
	return c
}

// Pages lists every page and its count, by scanning the keys of the prefix
// (on every master of a Cluster) and counting each, a pipeline of counts per
// batch of keys. It costs a pass over the keyspace: callers cache it.
func (s *Store) Pages(ctx context.Context) ([]domain.PageCount, error) {
	var (
		mu   sync.Mutex
		out  []domain.PageCount
		seen = map[string]bool{}
	)
	scan := func(ctx context.Context, c redis.UniversalClient) error {
		keyPrefix := s.keyPrefix() + "{"
		iter := c.Scan(ctx, 0, escapeGlob(keyPrefix)+"*}", 1000).Iterator()
		var keys []string
		flush := func() error {
			pipe := c.Pipeline()
			cmds := make([]*redis.IntCmd, len(keys))
			for i, k := range keys {
				if s.opts.Counting == Approximate {
					cmds[i] = pipe.PFCount(ctx, k)
				} else {
					cmds[i] = pipe.SCard(ctx, k)
				}
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
			mu.Lock()
			for i, k := range keys {
				if !seen[k] { // SCAN may give a key twice
					seen[k] = true
					url := strings.TrimSuffix(strings.TrimPrefix(k, keyPrefix), "}")
					out = append(out, domain.PageCount{URL: url, Count: s.count(cmds[i].Val())})
				}
			}
			mu.Unlock()
			keys = keys[:0]
			return nil
		}
		for iter.Next(ctx) {
			if keys = append(keys, iter.Val()); len(keys) == 1000 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		return flush()
	}
	var err error
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, s.client)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: redis: listing pages: %v", domain.ErrUnavailable, err)
	}
	return out, nil
}

// escapeGlob escapes the characters SCAN's MATCH treats as a pattern.
func escapeGlob(s string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`).Replace(s)
}

// do queues one command and waits for its answer, no longer than ctx. While
// the server is known to be unreachable it fails at once, rather than let
// every request wait for a connection that will not come; the health loop
// notices when it is back.
func (s *Store) do(ctx context.Context, key, member string, day dayAdd) (int64, error) {
	if err := s.Healthy(); err != nil {
		return 0, fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
	}
	o := ops.Get().(*op)
	o.key, o.member, o.day = key, member, day
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		ops.Put(o)
		return 0, fmt.Errorf("%w: redis: the store is closed", domain.ErrUnavailable)
	}
	select {
	case s.queue <- o:
		s.closeMu.RUnlock()
	case <-ctx.Done():
		s.closeMu.RUnlock()
		ops.Put(o)
		return 0, fmt.Errorf("%w: redis: waiting for a pipeline: %w", domain.ErrUnavailable, ctx.Err())
	}
	select {
	case <-o.done:
		n, err := o.n, o.err
		ops.Put(o)
		return n, err
	case <-ctx.Done():
		// The worker still holds o and will answer into its buffered
		// channel; o is left to the garbage collector.
		return 0, fmt.Errorf("%w: redis: %w", domain.ErrUnavailable, ctx.Err())
	}
}

// worker sends the waiting commands, as many as there are up to Batch, as
// one pipeline, until the store is closed.
func (s *Store) worker() {
	batch := make([]*op, 0, s.opts.Batch)
	cmds := make([]redis.Cmder, 0, s.opts.Batch)
	for {
		select {
		case o := <-s.queue:
			batch = append(batch[:0], o)
		case <-s.stop:
			return
		}
	gather:
		for len(batch) < cap(batch) {
			select {
			case o := <-s.queue:
				batch = append(batch, o)
			default:
				break gather
			}
		}
		cmds = s.exec(batch, cmds[:0])
	}
}

// exec runs one pipeline and answers every op of it: a pipeline of each
// master's ops on a Cluster whose writes wait for replicas.
func (s *Store) exec(batch []*op, cmds []redis.Cmder) []redis.Cmder {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	cc, ok := s.client.(*redis.ClusterClient)
	if !ok || s.opts.WaitReplicas == 0 {
		return s.run(ctx, s.client, batch, cmds)
	}
	byNode := map[*redis.Client][]*op{}
	for _, o := range batch {
		node, err := cc.MasterForKey(ctx, o.key) // every key of an op has its page's slot
		if err != nil {
			o.n, o.err = 0, fmt.Errorf("%w: redis: %v", domain.ErrUnavailable, err)
			o.done <- struct{}{}
			continue
		}
		byNode[node] = append(byNode[node], o)
	}
	var wg sync.WaitGroup
	for node, ops := range byNode {
		wg.Go(func() { s.run(ctx, node, ops, nil) })
	}
	wg.Wait()
	return cmds
}

// run sends batch to c as one pipeline, with its WAIT if it writes, and
// answers every op of it.
func (s *Store) run(ctx context.Context, c redis.UniversalClient, batch []*op, cmds []redis.Cmder) []redis.Cmder {
	pipe := c.Pipeline()
	writes := false
	for _, o := range batch {
		writes = writes || o.member != ""
		o.at = len(cmds)
		switch {
		case o.member != "" && s.opts.Counting == Approximate:
			cmds = append(cmds, pipe.PFAdd(ctx, o.key, o.member))
		case o.member != "":
			cmds = append(cmds, pipe.SAdd(ctx, o.key, o.member))
		case s.opts.Counting == Approximate:
			cmds = append(cmds, pipe.PFCount(ctx, o.key))
		default:
			cmds = append(cmds, pipe.SCard(ctx, o.key))
		}
		if o.day.keys[0] != "" {
			cmds = s.appendDay(ctx, pipe, cmds, o.member, o.day)
		}
	}
	var wait *redis.IntCmd
	if writes && s.opts.WaitReplicas > 0 {
		// Half the pipeline's time, so that the answer comes before it ends.
		wait = redis.NewIntCmd(ctx, "wait", s.opts.WaitReplicas, (s.opts.Timeout / 2).Milliseconds())
		_ = pipe.Process(ctx, wait)
	}
	if _, err := pipe.Exec(ctx); err != nil && !wrongType(err) {
		s.lost(err)
	}
	var unreplicated error
	if wait != nil && wait.Err() == nil && wait.Val() < int64(s.opts.WaitReplicas) {
		unreplicated = fmt.Errorf("%w: redis: the write reached %d of the %d replicas asked for in %v",
			domain.ErrUnavailable, wait.Val(), s.opts.WaitReplicas, s.opts.Timeout/2)
	} else if wait != nil && wait.Err() != nil {
		unreplicated = cmdError(wait)
	}
	for i, o := range batch {
		end := len(cmds)
		if i+1 < len(batch) {
			end = batch[i+1].at
		}
		o.n, o.err = 0, nil
		for _, cmd := range cmds[o.at:end] {
			if cmd.Err() != nil {
				o.err = cmdError(cmd)
				break
			}
		}
		switch {
		case o.err == nil && o.member == "":
			o.n = cmds[o.at].(*redis.IntCmd).Val()
		case o.err == nil && unreplicated != nil:
			o.err = unreplicated
		}
		o.done <- struct{}{}
	}
	clear(cmds)
	return cmds
}

// cmdError is the error of a command of a pipeline that failed.
func cmdError(cmd redis.Cmder) error {
	err := cmd.Err()
	if wrongType(err) {
		key := ""
		if args := cmd.Args(); len(args) > 1 {
			key, _ = args[1].(string)
		}
		return fmt.Errorf("redis answered %q for key %q", err, key) // a 500: a foreign key in our prefix
	}
	return fmt.Errorf("%w: redis: %v", domain.ErrUnavailable, err)
}

// wrongType reports whether err is Redis's answer that a key holds another
// type than the command works on: a key under the prefix that this store
// did not make.
func wrongType(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "WRONGTYPE")
}

// Healthy reports why Redis cannot be used, or nil: the last ping or
// pipeline that failed, until a ping succeeds.
func (s *Store) Healthy() error {
	if e := s.health.Load(); e != nil {
		return *e
	}
	return nil
}

// lost notes that Redis failed a command (down, timed out, loading,
// read-only, out of memory, a slot moved…): the store fails fast until a
// ping succeeds, and a Cluster client learns the slots anew, as it would
// only every ten seconds otherwise (while a master is gone, or after its
// replica took over). A key of another type says nothing of Redis: the
// callers leave it out.
func (s *Store) lost(err error) {
	s.setHealth(err)
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		cc.ReloadState(context.Background())
	}
}

func (s *Store) setHealth(err error) {
	if err == nil {
		if s.health.Swap(nil) != nil {
			s.opts.Logger.Info("redis is reachable again")
		}
		return
	}
	err = fmt.Errorf("redis: %w", err)
	if s.health.Swap(&err) == nil {
		s.opts.Logger.Warn("redis is unreachable; ingest answers 503 until it is back", "err", err)
	}
}

// checkHealth pings the server once. The first time it answers, the keys of
// an older release are moved, and until they are the store answers
// ErrUnavailable rather than counts without them.
func (s *Store) checkHealth() {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	err := s.client.Ping(ctx).Err()
	if err != nil || s.migrated {
		s.setHealth(err)
		return
	}
	busy := fmt.Errorf("redis: moving the keys of an older release")
	was := s.health.Swap(&busy)
	mctx, cancel := context.WithTimeout(context.Background(), migrateTimeout)
	defer cancel()
	n, err := s.migrate(mctx)
	if err != nil {
		s.setHealth(fmt.Errorf("moving the keys of an older release: %w", err))
		return
	}
	if n > 0 {
		s.opts.Logger.Info("moved the keys of an older release into their hash-tagged names", "keys", n)
	}
	s.migrated = true
	s.health.Store(was) // so that setHealth logs a return only after an outage
	s.setHealth(nil)
}

func (s *Store) healthLoop() {
	t := time.NewTicker(s.opts.HealthEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.checkHealth()
		case <-s.stop:
			return
		}
	}
}

// Close stops the workers, once the commands they hold are answered, and
// closes the connections. Commands still queued are answered
// ErrUnavailable; call Close once nothing records any more.
func (s *Store) Close() error {
	s.closeMu.Lock()
	s.closed = true
	s.closeMu.Unlock()
	close(s.stop)
	s.wg.Wait()
	for {
		select {
		case o := <-s.queue:
			o.n, o.err = 0, fmt.Errorf("%w: redis: the store is closed", domain.ErrUnavailable)
			o.done <- struct{}{}
		default:
			return s.client.Close()
		}
	}
}

// NodeStats is the connection pool of one node, as go-redis counts it.
type NodeStats struct {
	Addr                                                 string
	Hits, Misses, Timeouts, TotalConns, IdleConns, Stale int64
}

// Nodes returns the connection pool of each node the client knows: every
// master and replica of a Cluster, else the one server (the master of the
// moment, with Sentinel). It does not wait for Redis.
func (s *Store) Nodes() []NodeStats {
	stats := func(addr string, p *redis.PoolStats) NodeStats {
		return NodeStats{Addr: addr, Hits: int64(p.Hits), Misses: int64(p.Misses), Timeouts: int64(p.Timeouts),
			TotalConns: int64(p.TotalConns), IdleConns: int64(p.IdleConns), Stale: int64(p.StaleConns)}
	}
	cc, ok := s.client.(*redis.ClusterClient)
	if !ok {
		c := s.client.(*redis.Client)
		return []NodeStats{stats(c.Options().Addr, c.PoolStats())}
	}
	var (
		mu  sync.Mutex
		out []NodeStats
	)
	// The client's known nodes; a context already done keeps it from
	// asking Redis for the slots.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = cc.ForEachShard(ctx, func(_ context.Context, c *redis.Client) error {
		mu.Lock()
		out = append(out, stats(c.Options().Addr, c.PoolStats()))
		mu.Unlock()
		return nil
	})
	return out
}
