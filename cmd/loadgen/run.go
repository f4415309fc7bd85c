package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// run is the whole program: it reads its flags from args, runs the
// measurements and writes the report, stopping both servers whatever
// happens. getenv is not read today; run takes it so that every command of
// the repository has the same shape and can run inside a test.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	// The baseline is loadgen itself, started again in this hidden mode;
	// it is not in -h because only loadgen has a use for it.
	if len(args) == 2 && args[0] == "-serve-bare" {
		return serveBare(ctx, args[1])
	}
	cfg, err := parseConfig(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding loadgen's own binary for the bare server: %w", err)
	}
	if _, err := os.Stat(cfg.trackerPath); err != nil {
		return fmt.Errorf("the tracker binary: %w (run make build, or set -tracker)", err)
	}

	progress := newProgress(stderr)
	res := newResult(cfg)
	if cfg.redis {
		redis, err := startRedis(ctx, progress)
		if err != nil {
			return err
		}
		defer redis.stop()
		for i, a := range cfg.trackerArgs {
			cfg.trackerArgs[i] = strings.ReplaceAll(a, "{redis-url}", "redis://"+redis.addr)
		}
	}
	// The baseline is called bare in the result either way.
	bareSpec := serverSpec{
		name: "bare", path: self, readyPath: bareReadyPath,
		args: func(addr string) []string { return []string{"-serve-bare", addr} },
	}
	if cfg.baseline == "tracker" {
		path := cmp.Or(cfg.baselinePath, cfg.trackerPath)
		bareSpec = serverSpec{
			name: "bare", path: path, readyPath: trackerReadyPath,
			args: func(addr string) []string { return []string{"-addr", addr} },
		}
	}
	bare, err := startServer(ctx, bareSpec, progress)
	if err != nil {
		return err
	}
	defer bare.stop()
	tracker, err := startServer(ctx, serverSpec{
		name: "tracker", path: cfg.trackerPath, readyPath: trackerReadyPath,
		args: func(addr string) []string { return append([]string{"-addr", addr}, cfg.trackerArgs...) },
	}, progress)
	if err != nil {
		return err
	}
	defer tracker.stop()
	progress.linef("bare pid %d at %s; tracker pid %d at %s", bare.pid, bare.addr, tracker.pid, tracker.addr)
	res.Bare = serverInfo{Path: bare.cmd.Path, Args: bare.cmd.Args[1:], Addr: bare.addr, PID: bare.pid}
	res.Tracker = serverInfo{Path: cfg.trackerPath, Args: tracker.cmd.Args[1:], Addr: tracker.addr, PID: tracker.pid}

	lg := &loadgen{cfg: cfg, progress: progress, bare: bare, tracker: tracker}
	for _, w := range cfg.workloads {
		wr, err := lg.throughput(ctx, w)
		if err != nil {
			return err
		}
		if cfg.latencyDuration > 0 {
			if wr.Latency, err = lg.latency(ctx, w, wr.BareMedianReqPerSec/2); err != nil {
				return err
			}
		}
		res.Workloads = append(res.Workloads, *wr)
	}
	var memErr error
	if cfg.memoryPairs > 0 {
		if res.Memory, err = lg.memory(ctx); err != nil {
			return err
		}
		memErr = res.Memory.checkErr()
	}
	res.Tracker.RSSEndBytes, _ = procStatusBytes(tracker.pid, "VmRSS")
	res.Tracker.RSSPeakBytes, _ = procStatusBytes(tracker.pid, "VmHWM")
	res.finish()

	if err := writeJSON(cfg.out, res); err != nil {
		return err
	}
	printTable(stdout, res)
	progress.linef("every figure is in %s", cfg.out)
	return memErr
}

// loadgen is one run's state, shared by its measurements.
type loadgen struct {
	cfg      *config
	progress *progress
	bare     *server
	tracker  *server
	seq      uint64 // phases started so far; only run's goroutine touches it
}

// newPhase returns a phase of the run with the run's durations and a fresh
// sequence number.
func (lg *loadgen) newPhase(mode string, w workload, round int, s *server) phase {
	lg.seq++
	return phase{mode: mode, workload: w, round: round, server: s, warmup: lg.cfg.warmup, duration: lg.cfg.duration, seq: lg.seq}
}

// throughput runs the A/B rounds of w at full speed. The order alternates
// from round to round so that a drift of the machine (another job starting,
// the tracker's store growing) weighs on both servers alike.
func (lg *loadgen) throughput(ctx context.Context, w workload) (*workloadResult, error) {
	wr := &workloadResult{Workload: w.String()}
	for round := 1; round <= lg.cfg.rounds; round++ {
		order := []*server{lg.bare, lg.tracker}
		if round%2 == 0 {
			slices.Reverse(order)
		}
		var bare, tracker phaseResult
		for _, s := range order {
			r, _, err := lg.runPhase(ctx, lg.newPhase(modeThroughput, w, round, s))
			if err != nil {
				return nil, err
			}
			r.First = s == order[0]
			wr.Throughput = append(wr.Throughput, r)
			if s == lg.bare {
				bare = r
			} else {
				tracker = r
			}
		}
		wr.Rounds = append(wr.Rounds, roundResult{
			Round:              round,
			First:              order[0].name,
			BareReqPerSec:      bare.ReqPerSec,
			TrackerReqPerSec:   tracker.ReqPerSec,
			BareCPUUsPerReq:    bare.ServerCPUUsPerReq,
			TrackerCPUUsPerReq: tracker.ServerCPUUsPerReq,
		})
	}
	wr.summarize()
	lg.progress.linef("%s: tracker ÷ bare req/s, median of %d rounds: %.3f (min %.3f, max %.3f)",
		w, len(wr.Rounds), wr.MedianRatio, wr.MinRatio, wr.MaxRatio)
	return wr, nil
}

// latency offers both servers the same fixed load, open loop, twice each
// (bare, tracker, tracker, bare), and compares their tail latency.
func (lg *loadgen) latency(ctx context.Context, w workload, rate float64) (*latencyResult, error) {
	if rate <= 0 {
		return nil, fmt.Errorf("latency of %s: the bare server's rate is %.0f req/s, nothing to offer", w, rate)
	}
	lr := &latencyResult{OfferedPerSec: rate}
	hists := map[*server]*histogram{lg.bare: {}, lg.tracker: {}}
	for i, s := range []*server{lg.bare, lg.tracker, lg.tracker, lg.bare} {
		p := lg.newPhase(modeLatency, w, i/2+1, s)
		p.duration, p.rate = lg.cfg.latencyDuration, rate
		r, h, err := lg.runPhase(ctx, p)
		if err != nil {
			return nil, err
		}
		lr.Phases = append(lr.Phases, r)
		hists[s].merge(h)
	}
	b, t := hists[lg.bare], hists[lg.tracker]
	lr.BareP50Us, lr.BareP99Us = micros(b.quantile(0.5)), micros(b.quantile(0.99))
	lr.TrackerP50Us, lr.TrackerP99Us = micros(t.quantile(0.5)), micros(t.quantile(0.99))
	lr.P99Ratio = ratio(lr.TrackerP99Us, lr.BareP99Us)
	for _, r := range lr.Phases {
		best := &lr.BareBestP99Us
		if r.Server == lg.tracker.name {
			best = &lr.TrackerBestP99Us
		}
		if *best == 0 || r.P99Us < *best {
			*best = r.P99Us
		}
	}
	lr.BestP99Ratio = ratio(lr.TrackerBestP99Us, lr.BareBestP99Us)
	lg.progress.linef("%s at %.0f req/s: p99 bare %s, tracker %s, ratio %.2f",
		w, rate, fmtMicros(lr.BareP99Us), fmtMicros(lr.TrackerP99Us), lr.P99Ratio)
	return lr, nil
}

// memory sends -memory-pairs unique pairs to the tracker, reports its
// resident memory growth per pair, and checks the counts of a few pages,
// which the round-robin spread of the pairs makes known exactly.
func (lg *loadgen) memory(ctx context.Context) (*memoryResult, error) {
	cfg := lg.cfg
	m := &memoryResult{Pairs: cfg.memoryPairs, Pages: cfg.pages}
	var err error
	if m.RSSBeforeBytes, err = lg.settledRSS(ctx); err != nil {
		return nil, err
	}
	p := lg.newPhase(modeMemory, workloadUnique, 1, lg.tracker)
	p.pairs = cfg.memoryPairs
	if m.Phase, _, err = lg.runPhase(ctx, p); err != nil {
		return nil, err
	}
	if m.RSSAfterBytes, err = lg.settledRSS(ctx); err != nil {
		return nil, err
	}
	m.BytesPerPair = float64(m.RSSAfterBytes-m.RSSBeforeBytes) / float64(m.Pairs)

	for _, page := range checkedPages(cfg.memoryPairs, int64(cfg.pages)) {
		want := cfg.memoryPairs / int64(cfg.pages)
		if page < cfg.memoryPairs%int64(cfg.pages) {
			want++
		}
		page := pageOrigin + memoryPath + strconv.FormatInt(page, 10)
		got, err := lg.visitorsOf(page)
		if err != nil {
			return nil, fmt.Errorf("checking the count of %s: %w", page, err)
		}
		m.Checks = append(m.Checks, pageCheck{URL: page, Want: want, Got: got})
	}
	lg.progress.linef("memory: %d pairs, RSS %s → %s, %.1f bytes per pair; %s",
		m.Pairs, fmtBytes(m.RSSBeforeBytes), fmtBytes(m.RSSAfterBytes), m.BytesPerPair, m.checkSummary())
	return m, nil
}

// settledRSS waits cfg.settle, then reads the tracker's resident memory.
func (lg *loadgen) settledRSS(ctx context.Context) (int64, error) {
	if !sleepUntil(ctx, time.Now().Add(lg.cfg.settle)) {
		return 0, ctx.Err()
	}
	return procStatusBytes(lg.tracker.pid, "VmRSS")
}

// visitorsOf asks the tracker for the visitors of page.
func (lg *loadgen) visitorsOf(page string) (count, error) {
	status, body, err := get(lg.tracker.addr, "/api/v1/visitors?url="+url.QueryEscape(page))
	if err != nil {
		return count{}, err
	}
	if status != 200 {
		return count{}, fmt.Errorf("status %d: %s", status, body)
	}
	var answer struct {
		Visitors      *int64  `json:"visitors"`
		Exact         *bool   `json:"exact"` // absent: exact
		RelativeError float64 `json:"relative_error"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || answer.Visitors == nil {
		return count{}, fmt.Errorf("answer %q has no visitors count", body)
	}
	exact := answer.Exact == nil || *answer.Exact
	return count{Visitors: *answer.Visitors, Exact: exact, RelativeError: answer.RelativeError}, nil
}

// checkedPages picks a handful of pages whose counts tell the most: the
// first and last, the middle, and the two either side of the boundary
// where the round-robin spread gives one pair fewer.
func checkedPages(pairs, pages int64) []int64 {
	var out []int64
	for _, p := range []int64{0, 1, pages / 2, pairs%pages - 1, pairs % pages, pages - 1} {
		if p >= 0 && p < pages && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// ratio returns a ÷ b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// progress writes progress lines to stderr. On a terminal the live request
// rate overwrites itself; elsewhere, as in a log file, each is a line. The
// servers' output goes through it too, so that lines never interleave.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	terminal bool
	pending  bool // a live line is on the terminal, without its newline
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

// linef writes a line that stays.
func (p *progress) linef(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLive()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// livef writes a line that the next one replaces on a terminal.
func (p *progress) livef(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.terminal {
		fmt.Fprintf(p.w, format+"\n", args...)
		return
	}
	fmt.Fprintf(p.w, "\r\033[K"+format, args...)
	p.pending = true
}

// Write passes a server's output through.
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLive()
	return p.w.Write(b)
}

func (p *progress) clearLive() {
	if p.pending {
		fmt.Fprint(p.w, "\r\033[K")
		p.pending = false
	}
}
