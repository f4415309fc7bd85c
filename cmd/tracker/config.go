package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/infra/diskstore"
	"github.com/webtracker/tracker/internal/web"
)

// config is everything the service can be told at start.
type config struct {
	addr        string
	logFormat   string
	logLevel    string
	showVersion bool

	requestTimeout    time.Duration
	readHeaderTimeout time.Duration
	readTimeout       time.Duration
	writeTimeout      time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int
	shutdownTimeout   time.Duration
	shutdownDelay     time.Duration

	rateLimit      float64
	rateBurst      int
	trustedProxies []netip.Prefix

	tlsCert, tlsKey string

	debugAddr string
	accessLog string

	policy domain.URLPolicy

	sites           string
	corsOrigins     string
	corsReadOrigins string
	apiToken        string

	store       string // memory or redis
	redisURL    string
	redisPrefix string
	redisWait   int    // replicas each write waits for
	counting    string // exact or approximate

	// memoryLimit bounds the memory store (0: none); memoryLimitFrom says
	// where it came from: -memory-limit, or GOMEMLIMIT by default.
	memoryLimit     int64
	memoryLimitFrom string
	pageTTL         time.Duration
	retention       domain.Retention

	dataDir          string
	snapshotInterval time.Duration
	fsync            diskstore.SyncMode
	fsyncInterval    time.Duration
}

// parseConfig reads flags from args, each defaulting to its environment
// variable TRACKER_<NAME> when set, then to its built-in default. A flag on
// the command line wins over the environment.
func parseConfig(args []string, getenv func(string) string, stdout io.Writer) (*config, error) {
	var c config
	var trusted string
	fs := flag.NewFlagSet("tracker", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.StringVar(&c.addr, "addr", ":8080", "listen address (host:port)")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text (development) or json (production)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&c.showVersion, "version", false, "print the version and exit")

	fs.DurationVar(&c.requestTimeout, "request-timeout", 5*time.Second, "deadline of each request's context")
	fs.DurationVar(&c.readHeaderTimeout, "read-header-timeout", 5*time.Second, "time allowed to read a request's headers")
	// Equal by default: net/http then sets one read deadline per request
	// instead of two, and each costs a timer update (about 2% of a request).
	fs.DurationVar(&c.readTimeout, "read-timeout", 5*time.Second, "time allowed to read a whole request")
	fs.DurationVar(&c.writeTimeout, "write-timeout", 10*time.Second, "time allowed to write a response")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 2*time.Minute, "how long an idle keep-alive connection is kept")
	fs.IntVar(&c.maxHeaderBytes, "max-header-bytes", 64<<10, "largest request header accepted, in bytes")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long in-flight requests may take to finish on shutdown")
	fs.DurationVar(&c.shutdownDelay, "shutdown-delay", 0, "how long /readyz answers 503 before the listener closes on shutdown (lets a load balancer notice)")

	fs.Float64Var(&c.rateLimit, "rate-limit", 0, "events per second allowed per client IP on ingest (0 = no limit)")
	fs.IntVar(&c.rateBurst, "rate-burst", 50, "events a client IP may send at once above -rate-limit")
	fs.StringVar(&trusted, "trusted-proxies", "", "comma-separated CIDR list of proxies whose X-Forwarded-For is believed")

	fs.StringVar(&c.tlsCert, "tls-cert", "", "TLS certificate file (PEM); with -tls-key, serve HTTPS (TLS 1.2+, HTTP/2)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "TLS private key file (PEM)")

	fs.StringVar(&c.debugAddr, "debug-addr", "", "admin listen address for pprof (e.g. 127.0.0.1:6060); empty = off; never the public port")
	fs.StringVar(&c.accessLog, "access-log", "errors", "access lines: errors (4xx/5xx at info, the rest at debug; counts of all in /metrics) or all (every request at info)")

	fs.StringVar(&c.sites, "sites", "", "comma-separated hosts events are taken for (e.g. example.com,shop.example.com); others get 403; empty = every host")
	fs.StringVar(&c.corsOrigins, "cors-origins", "*", "origins whose pages may send events from the browser (comma-separated, or * for any)")
	fs.StringVar(&c.corsReadOrigins, "cors-read-origins", "", "origins whose pages may read counts from the browser (comma-separated, or *); empty = none but this service's own")
	fs.StringVar(&c.apiToken, "api-token", "", "when set, GET /api/v1/visitors and /api/v1/pages need Authorization: Bearer <token>; ingest stays open")
	fs.StringVar(&c.store, "store", "memory", "where counts live: memory (this process; see -data-dir) or redis (shared by every instance on one Redis)")
	fs.StringVar(&c.redisURL, "redis-url", "redis://127.0.0.1:6379/0", "with -store=redis: redis:// or rediss:// (TLS) URL; addr= parameters for a Cluster, master_name= for Sentinel")
	fs.StringVar(&c.redisPrefix, "redis-prefix", "tracker:", "with -store=redis: prefix of every key")
	fs.IntVar(&c.redisWait, "redis-wait-replicas", 0, "with -store=redis: replicas that must have an event before its 202 (WAIT); 0 = the master's word, which a failover can lose")
	fs.StringVar(&c.counting, "counting", "exact", "exact (exact until -memory-limit, then the largest pages are estimated), or approximate (every page estimated: 0.73% standard error in memory, 0.81% in Redis)")
	fs.Func("memory-limit", "memory store: bytes it may hold (e.g. 512MiB); past it the largest pages become estimates (8 KiB, 0.73%), then the longest idle pages go; default: GOMEMLIMIT when set, else none", func(v string) (err error) {
		c.memoryLimit, err = parseBytes(v)
		c.memoryLimitFrom = "-memory-limit"
		return err
	})
	c.retention = domain.DefaultRetention
	fs.Func("retention", "days of visits kept for time ranges, e.g. 400d (all-time counts are kept regardless) (default 400d)", func(v string) (err error) {
		c.retention, err = parseRetention(v)
		return err
	})
	fs.DurationVar(&c.pageTTL, "page-ttl", 0, "memory store: a page with no event for this long is removed (0 = kept forever)")
	fs.StringVar(&c.dataDir, "data-dir", "", "directory that keeps the counts across restarts (snapshots and a write-ahead log); empty = memory only")
	fs.DurationVar(&c.snapshotInterval, "snapshot-interval", time.Minute, "with -data-dir: how often the whole store is written to a snapshot (and on shutdown)")
	fs.Func("fsync", "with -data-dir: always (each event's 202 waits until it is on disk) or interval (a crash loses at most -fsync-interval) (default interval)", func(v string) (err error) {
		c.fsync, err = diskstore.ParseSyncMode(v)
		return err
	})
	fs.DurationVar(&c.fsyncInterval, "fsync-interval", time.Second, "with -data-dir and -fsync=interval: how often the log is synced to disk")

	fs.BoolVar(&c.policy.StripQuery, "url-strip-query", false, "page identity ignores the whole query string")
	fs.BoolVar(&c.policy.FoldTrailingSlash, "url-fold-trailing-slash", false, "page identity treats /a/ and /a as one page")

	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: tracker [flags]\n\nEvery flag can also be set by the environment variable TRACKER_<NAME>,\ne.g. -log-level by TRACKER_LOG_LEVEL; a flag given here wins.\n\nFlags:\n")
		fs.PrintDefaults()
	}

	// The default of -memory-limit, which TRACKER_MEMORY_LIMIT and the flag
	// override.
	if v := getenv("GOMEMLIMIT"); v != "" && v != "off" {
		n, err := parseBytes(v)
		if err != nil {
			return nil, fmt.Errorf("environment variable GOMEMLIMIT=%q: %v", v, err)
		}
		c.memoryLimit, c.memoryLimitFrom = n, "GOMEMLIMIT"
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v := getenv(name); v != "" && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("environment variable %s=%q: %v", name, v, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var err error
	if c.trustedProxies, err = web.ParsePrefixes(trusted); err != nil {
		return nil, fmt.Errorf("-trusted-proxies: %w", err)
	}
	if c.memoryLimitFrom == "GOMEMLIMIT" && c.store == "redis" {
		c.memoryLimit, c.memoryLimitFrom = 0, "" // the default is for the memory store alone
	}
	return &c, c.validate()
}

// envName is the environment variable of a flag: log-level → TRACKER_LOG_LEVEL.
func envName(flagName string) string {
	return "TRACKER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (c *config) validate() error {
	var errs []error
	if c.logFormat != "text" && c.logFormat != "json" {
		errs = append(errs, fmt.Errorf("-log-format must be text or json, not %q", c.logFormat))
	}
	if c.accessLog != "all" && c.accessLog != "errors" {
		errs = append(errs, fmt.Errorf("-access-log must be all or errors, not %q", c.accessLog))
	}
	if c.debugAddr != "" && c.debugAddr == c.addr && !strings.HasSuffix(c.addr, ":0") {
		errs = append(errs, errors.New("-debug-addr must not be the public -addr"))
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		errs = append(errs, errors.New("-tls-cert and -tls-key go together"))
	}
	switch {
	case c.store != "memory" && c.store != "redis":
		errs = append(errs, fmt.Errorf("-store must be memory or redis, not %q", c.store))
	case c.store == "redis" && c.dataDir != "":
		errs = append(errs, errors.New("-data-dir is for the memory store; Redis keeps its own data"))
	}
	switch {
	case c.redisWait < 0:
		errs = append(errs, errors.New("-redis-wait-replicas must not be negative"))
	case c.redisWait > 0 && c.store != "redis":
		errs = append(errs, errors.New("-redis-wait-replicas is for -store=redis"))
	}
	switch {
	case c.counting != "exact" && c.counting != "approximate":
		errs = append(errs, fmt.Errorf("-counting must be exact or approximate, not %q", c.counting))
	}
	switch {
	case c.memoryLimit < 0:
		errs = append(errs, errors.New("-memory-limit must not be negative"))
	case c.memoryLimit > 0 && c.store == "redis":
		errs = append(errs, errors.New("-memory-limit is for the memory store; bound Redis with its maxmemory"))
	}
	switch {
	case c.pageTTL < 0:
		errs = append(errs, errors.New("-page-ttl must not be negative"))
	case c.pageTTL > 0 && c.store == "redis":
		errs = append(errs, errors.New("-page-ttl is for the memory store; Redis keys can be given a TTL by Redis"))
	}
	if c.rateLimit < 0 {
		errs = append(errs, errors.New("-rate-limit must not be negative"))
	}
	for _, t := range []struct {
		name string
		d    time.Duration
	}{
		{"-request-timeout", c.requestTimeout}, {"-read-header-timeout", c.readHeaderTimeout},
		{"-read-timeout", c.readTimeout}, {"-write-timeout", c.writeTimeout},
		{"-idle-timeout", c.idleTimeout}, {"-shutdown-timeout", c.shutdownTimeout},
		{"-snapshot-interval", c.snapshotInterval}, {"-fsync-interval", c.fsyncInterval},
	} {
		if t.d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", t.name))
		}
	}
	if c.maxHeaderBytes <= 0 {
		errs = append(errs, errors.New("-max-header-bytes must be positive"))
	}
	return errors.Join(errs...)
}

// parseBytes reads a size in bytes: a whole number with an optional unit, B,
// KiB, MiB, GiB or TiB (powers of 1024, as in GOMEMLIMIT), or KB, MB, GB or
// TB (powers of 1000).
func parseBytes(v string) (int64, error) {
	units := []struct {
		suffix string
		size   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	num, size := strings.TrimSpace(v), int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, size = strings.TrimSpace(n), u.size
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/size {
		return 0, fmt.Errorf("%q is not a size in bytes (e.g. 512MiB)", v)
	}
	return n * size, nil
}

// parseRetention reads a number of days, written 400d or 400.
func parseRetention(v string) (domain.Retention, error) {
	n, err := strconv.Atoi(strings.TrimSuffix(v, "d"))
	if err != nil || n < 1 || n > 100*366 {
		return domain.Retention{}, fmt.Errorf("%q is not a number of days from 1 to 36600, such as 400d", v)
	}
	return domain.Retention{Days: n}, nil
}
