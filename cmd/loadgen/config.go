package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// config is everything loadgen can be told on its command line.
type config struct {
	trackerPath     string
	trackerArgs     []string
	baseline        string
	baselinePath    string
	redis           bool
	workloads       workloadList
	visitors        int
	pages           int
	conns           int
	rounds          int
	duration        time.Duration
	warmup          time.Duration
	latencyDuration time.Duration
	memoryPairs     int64
	seed            uint64
	out             string
	quick           bool

	// settle is how long the tracker is left alone before its memory is
	// read, so that a collection or a page fault in flight is not counted.
	settle time.Duration

	// flags is the final value of every flag, for the result file.
	flags map[string]string
}

// parseConfig reads the flags in args. -quick sets short phases for tests,
// but a flag given explicitly on the command line still wins over it.
func parseConfig(args []string, stdout io.Writer) (*config, error) {
	c := config{workloads: workloadList{workloadIngestUniform, workloadQuery}, settle: time.Second}
	var trackerArgs string
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: loadgen [flags]\n\n"+
			"Measures the tracker against a bare net/http server on loopback; every figure is a\n"+
			"ratio to the bare server measured in the same run.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.trackerPath, "tracker", "bin/tracker", "path of the tracker binary (make build)")
	fs.StringVar(&trackerArgs, "tracker-args", "", "more arguments for the tracker, split on spaces (-addr is set by loadgen); none by default, so that the tracker runs in its default configuration")
	fs.StringVar(&c.baselinePath, "baseline-tracker", "", "with -baseline tracker: the binary of the baseline tracker, e.g. one built from an earlier commit (default: the -tracker binary)")
	fs.StringVar(&c.baseline, "baseline", "bare", "what the tracker is measured against: bare (a bare net/http handler) or tracker (the tracker binary in its default, memory-only configuration, to measure what -tracker-args cost)")
	fs.BoolVar(&c.redis, "redis", false, "start a redis-server (from PATH) on a free loopback port for the run, without persistence; {redis-url} in -tracker-args becomes its URL")
	fs.Var(&c.workloads, "workloads", "comma-separated workloads: "+strings.Join(workloadNames(), ", ")+`; "" runs none`)
	fs.Var(&c.workloads, "workload", "same as -workloads")
	fs.IntVar(&c.visitors, "visitors", 1_000_000, "distinct visitors the ingest workloads draw from")
	fs.IntVar(&c.pages, "pages", 1000, "distinct pages the workloads draw from")
	fs.IntVar(&c.conns, "conns", 32, "keep-alive connections, the same for both servers")
	fs.IntVar(&c.rounds, "rounds", 5, "A/B rounds per workload (bare, tracker; the order alternates)")
	fs.DurationVar(&c.duration, "duration", 3*time.Second, "measured time of each throughput phase")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "unmeasured time before each phase")
	fs.DurationVar(&c.latencyDuration, "latency-duration", 3*time.Second, "measured time of each open-loop latency phase (0 skips them)")
	fs.Int64Var(&c.memoryPairs, "memory-pairs", 0, "send this many unique (page, visitor) pairs last and report the tracker's memory per pair (0 skips)")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the random page and visitor choices")
	fs.StringVar(&c.out, "out", "loadgen-result.json", "file to write every figure to, as JSON")
	fs.BoolVar(&c.quick, "quick", false, "for tests: 1 round, 300ms phases, 100ms warmup, 4 conns")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.quick {
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		quick := map[string]string{"rounds": "1", "duration": "300ms", "latency-duration": "300ms", "warmup": "100ms", "conns": "4"}
		for name, value := range quick {
			if !given[name] {
				if err := fs.Set(name, value); err != nil {
					return nil, err
				}
			}
		}
		c.settle = 100 * time.Millisecond
	}
	c.trackerArgs = strings.Fields(trackerArgs)
	c.flags = map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { c.flags[f.Name] = f.Value.String() })
	return &c, c.validate()
}

// validate rejects settings that would make a run meaningless rather than
// let it report figures of nothing.
func (c *config) validate() error {
	var errs []error
	if c.visitors < 1 || c.pages < 1 || c.conns < 1 {
		errs = append(errs, errors.New("-visitors, -pages and -conns must be at least 1"))
	}
	if len(c.workloads) > 0 && c.rounds < 1 {
		errs = append(errs, errors.New("-rounds must be at least 1"))
	}
	if c.duration <= 0 || c.warmup < 0 || c.latencyDuration < 0 {
		errs = append(errs, errors.New("-duration must be positive, -warmup and -latency-duration not negative"))
	}
	if c.baseline != "bare" && c.baseline != "tracker" {
		errs = append(errs, fmt.Errorf("-baseline must be bare or tracker, not %q", c.baseline))
	}
	if c.memoryPairs < 0 {
		errs = append(errs, errors.New("-memory-pairs must not be negative"))
	}
	return errors.Join(errs...)
}
