package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/features/ingest"
	"github.com/webtracker/tracker/internal/infra/diskstore"
	"github.com/webtracker/tracker/internal/infra/memstore"
	"github.com/webtracker/tracker/internal/infra/metrics"
	"github.com/webtracker/tracker/internal/infra/redisstore"
	"github.com/webtracker/tracker/internal/web"
)

// run is the whole program: it reads its configuration from args and getenv,
// serves until ctx is done, then shuts down gracefully. Tests call it with
// their own arguments, in parallel.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	cfg, err := parseConfig(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) { // -h was asked for and answered
		return nil
	}
	if err != nil {
		return err
	}
	if cfg.showVersion {
		fmt.Fprintln(stdout, "tracker", buildVersion())
		return nil
	}
	logger, err := newLogger(stderr, cfg.logFormat, cfg.logLevel)
	if err != nil {
		return err
	}

	var tlsConfig *tls.Config
	if cfg.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
		if err != nil {
			return fmt.Errorf("loading the TLS key pair: %w", err)
		}
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}

	sto, err := openStore(cfg, logger)
	if err != nil {
		return err
	}
	// After the server has stopped: in-flight requests still use the store,
	// and a durable store's last snapshot must hold every event answered.
	defer func() { err = errors.Join(err, sto.close()) }()

	var ready atomic.Bool
	handler := newHandler(newDeps(cfg, logger, sto, &ready))

	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.readHeaderTimeout,
		ReadTimeout:       cfg.readTimeout,
		WriteTimeout:      cfg.writeTimeout,
		IdleTimeout:       cfg.idleTimeout,
		MaxHeaderBytes:    cfg.maxHeaderBytes,
		TLSConfig:         tlsConfig,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	if cfg.debugAddr != "" {
		stopDebug, err := serveDebug(logger, cfg.debugAddr)
		if err != nil {
			ln.Close()
			return err
		}
		defer stopDebug()
	}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	serveErr := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			// Certificates are in TLSConfig; ServeTLS adds HTTP/2.
			serveErr <- srv.ServeTLS(ln, "", "")
		} else {
			serveErr <- srv.Serve(ln)
		}
	}()
	ready.Store(true)
	logger.Info("listening", "addr", ln.Addr().String(), "scheme", scheme, "version", buildVersion())

	select {
	case err := <-serveErr:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	return shutdown(logger, srv, &ready, cfg, serveErr)
}

// shutdown turns readiness off, waits -shutdown-delay so that a load balancer
// can stop sending, then closes the listener and lets in-flight requests
// finish within -shutdown-timeout.
func shutdown(logger *slog.Logger, srv *http.Server, ready *atomic.Bool, cfg *config, serveErr <-chan error) error {
	ready.Store(false)
	logger.Info("shutting down", "delay", cfg.shutdownDelay, "timeout", cfg.shutdownTimeout)
	time.Sleep(cfg.shutdownDelay)

	ctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("in-flight requests did not finish within %v: %w", cfg.shutdownTimeout, err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// newDeps gathers what the handlers are built from, as the configuration
// says.
func newDeps(cfg *config, logger *slog.Logger, sto *openedStore, ready *atomic.Bool) deps {
	var limiter *web.RateLimiter
	if cfg.rateLimit > 0 {
		limiter = web.NewRateLimiter(cfg.rateLimit, cfg.rateBurst, time.Now)
	}
	return deps{
		logger:         logger,
		quietSuccess:   cfg.accessLog == "errors",
		store:          sto.store,
		metrics:        sto.metrics,
		policy:         cfg.policy,
		ready:          ready,
		health:         sto.health,
		limiter:        limiter,
		clientIPs:      web.NewClientIPs(cfg.trustedProxies),
		requestTimeout: cfg.requestTimeout,
		clock:          domain.Clock{Retention: cfg.retention, Now: time.Now},

		sites:           ingest.ParseSites(cfg.sites),
		corsOrigins:     cfg.corsOrigins,
		corsReadOrigins: cfg.corsReadOrigins,
		apiToken:        cfg.apiToken,
	}
}

// openedStore is the store run serves from, with what goes with it.
type openedStore struct {
	store   store
	metrics *metrics.Metrics // the service's metrics, with the store's own
	health  func() error     // nil: always healthy
	close   func() error
}

// openStore opens the store the configuration asks for: Redis, or memory,
// made durable by -data-dir.
func openStore(cfg *config, logger *slog.Logger) (*openedStore, error) {
	if cfg.store == "redis" {
		rs, err := openRedis(cfg, logger)
		if err != nil {
			return nil, err
		}
		o := &openedStore{store: rs, health: rs.Healthy, close: rs.Close,
			metrics: metrics.New(nil)} // the sizes are Redis's own (INFO, MEMORY USAGE)
		o.metrics.Redis(func() []metrics.RedisNode {
			var out []metrics.RedisNode
			for _, n := range rs.Nodes() {
				out = append(out, metrics.RedisNode(n))
			}
			return out
		})
		return o, nil
	}
	mem := memstore.NewWith(memstore.Options{MemoryLimit: cfg.memoryLimit, Approximate: cfg.counting == "approximate"})
	o := &openedStore{store: mem, close: func() error { return nil },
		metrics: metrics.New(func() metrics.StoreStats {
			st := mem.Stats()
			return metrics.StoreStats{Pages: st.Pages, Estimated: st.Estimated, Pairs: st.Pairs, Bytes: st.Bytes + st.Slack,
				Limit: st.Limit, Conversions: st.Conversions, Evicted: st.Evicted, Expired: st.Expired,
				Triples: st.Triples, DaysDropped: st.DaysDropped, DaysGivenUp: st.DaysGivenUp}
		})}
	logger.Info("store", "kind", "memory", "counting", cfg.counting, "memory_limit", cfg.memoryLimit,
		"memory_limit_from", cfg.memoryLimitFrom, "page_ttl", cfg.pageTTL, "retention_days", cfg.retention.Days)
	if cfg.dataDir != "" {
		ds, err := openDisk(cfg, logger, o.metrics, mem)
		if err != nil {
			return nil, err
		}
		o.store, o.health, o.close = ds, ds.Healthy, ds.Close
	}
	// Once what the disk held is back: its days past the retention go at
	// once, and its weeks are made.
	stops := []func() error{every(time.Hour, func(ctx context.Context, now time.Time) {
		if n := mem.DropDays(cfg.retention.KeepFrom(now)); n > 0 {
			logger.Info("days past the retention dropped", "days", n, "retention_days", cfg.retention.Days)
		}
		// The weeks over since the last tick, so that no range waits for them.
		if n, err := mem.MakeWeeks(ctx, domain.DayOf(now)); n > 0 || err != nil {
			logger.Debug("weeks made", "weeks", n, "err", err)
		}
	})}
	if cfg.pageTTL > 0 {
		stops = append(stops, expireEvery(mem, cfg.pageTTL, logger))
	}
	closeStore := o.close
	o.close = func() error {
		var errs []error
		for _, stop := range stops {
			errs = append(errs, stop())
		}
		return errors.Join(append(errs, closeStore())...)
	}
	return o, nil
}

// expireEvery removes the pages of mem idle for ttl, checking every quarter
// of ttl (every minute at most), until the returned function is called.
func expireEvery(mem *memstore.Store, ttl time.Duration, logger *slog.Logger) (stop func() error) {
	return every(min(max(ttl/4, 10*time.Millisecond), time.Minute), func(_ context.Context, now time.Time) {
		if n := mem.Expire(now, ttl); n > 0 {
			logger.Debug("pages expired", "pages", n, "ttl", ttl)
		}
	})
}

// every calls fn at once, then every tick, in a goroutine of its own, until
// the returned function is called, which ends fn's context and waits for
// fn to return.
func every(tick time.Duration, fn func(ctx context.Context, now time.Time)) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(tick)
		defer t.Stop()
		for now := time.Now(); ; {
			fn(ctx, now)
			select {
			case <-ctx.Done():
				return
			case now = <-t.C:
			}
		}
	}()
	return func() error {
		cancel()
		<-stopped
		return nil
	}
}

// openRedis connects the Redis store; a Redis still down is logged, not
// fatal: readiness and ingest answer 503 until it is up.
func openRedis(cfg *config, logger *slog.Logger) (*redisstore.Store, error) {
	counting := redisstore.Exact
	if cfg.counting == "approximate" {
		counting = redisstore.Approximate
	}
	rs, err := redisstore.Open(redisstore.Options{URL: cfg.redisURL, Prefix: cfg.redisPrefix, Counting: counting,
		Retention: cfg.retention, WaitReplicas: cfg.redisWait, Logger: logger})
	if err != nil {
		return nil, err
	}
	logger.Info("store", "kind", "redis", "url", redactURL(cfg.redisURL), "prefix", cfg.redisPrefix, "counting", cfg.counting,
		"wait_replicas", cfg.redisWait, "healthy", rs.Healthy() == nil)
	return rs, nil
}

// redactURL hides the password of a URL for the logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}

// openDisk recovers the data in -data-dir into mem and returns the store
// that keeps it durable, its metrics registered on m.
func openDisk(cfg *config, logger *slog.Logger, m *metrics.Metrics, mem *memstore.Store) (*diskstore.Store, error) {
	var ds *diskstore.Store
	observeFsync := m.Disk(func() metrics.DiskStats {
		s := ds.Stats() // scraped once the server runs, after ds is set
		return metrics.DiskStats{LogBytes: s.LogBytes, SnapshotBytes: s.SnapshotBytes,
			SnapshotDuration: s.SnapshotDuration, Recovery: s.RecoveryDuration,
			Snapshots: s.Snapshots, SnapshotErrors: s.SnapshotErrors}
	})
	ds, err := diskstore.Open(diskstore.Options{
		Dir: cfg.dataDir, Sync: cfg.fsync, SyncInterval: cfg.fsyncInterval,
		SnapshotInterval: cfg.snapshotInterval, Policy: cfg.policy,
		Logger: logger, ObserveFsync: observeFsync,
	}, mem)
	if err != nil {
		return nil, fmt.Errorf("-data-dir %s: %w", cfg.dataDir, err)
	}
	s, pages := ds.Stats(), mem.Stats()
	logger.Info("recovered", "dir", cfg.dataDir, "pages", pages.Pages, "visitors", pages.Pairs,
		"duration", s.RecoveryDuration, "fsync", cfg.fsync.String())
	return ds, nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// buildVersion is the stamped version, else the module version or VCS
// revision recorded by the Go toolchain.
func buildVersion() string {
	if version != "dev" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return version
}
