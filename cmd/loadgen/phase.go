package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Phase modes.
const (
	modeThroughput = "throughput" // closed loop: each connection sends as soon as it has its answer
	modeLatency    = "latency"    // open loop: each connection sends on a fixed schedule
	modeMemory     = "memory"     // closed loop over a fixed number of unique pairs
)

// stallTimeout ends a phase in which no answer came for that long: a server
// that hangs must fail the run, not hang it.
const stallTimeout = 10 * time.Second

// errStalled reports a phase in which the server stopped answering.
var errStalled = errors.New("no answer for " + stallTimeout.String())

// phase is one stretch of load on one server.
type phase struct {
	mode     string
	workload workload
	round    int // from 1, for the report
	server   *server
	warmup   time.Duration
	duration time.Duration
	rate     float64 // latency mode: requests per second offered over all connections
	pairs    int64   // memory mode: pairs to send
	seq      uint64  // distinct for every phase of a run: seeds its random choices
}

// label names the phase in progress lines.
func (p phase) label() string {
	return fmt.Sprintf("%-10s %-14s round %d  %-7s", p.mode, p.workload, p.round, p.server.name)
}

// runPhase runs p and returns its figures and its latency histogram.
func (lg *loadgen) runPhase(ctx context.Context, p phase) (phaseResult, *histogram, error) {
	cfg := lg.cfg
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	workers := make([]*worker, cfg.conns)
	defer func() {
		for _, w := range workers {
			if w != nil {
				w.c.nc.Close()
			}
		}
	}()
	for i := range workers {
		c, err := dial(p.server.addr)
		if err != nil {
			return phaseResult{}, nil, fmt.Errorf("%s: connecting: %w", p.label(), err)
		}
		path := pagePath
		if p.mode == modeMemory {
			path = memoryPath
		}
		g := newGenerator(p.workload, p.server.addr, cfg.pages, cfg.visitors, path, cfg.seed, p.seq<<16|uint64(i), i, cfg.conns)
		g.limit = p.pairs
		if p.mode != modeMemory {
			// Apart from the memory run's own pages, unique pairs of one
			// phase must differ from those of every other.
			g.base = int64(p.seq) << 40
		}
		workers[i] = &worker{addr: p.server.addr, want: p.workload.wantStatus(), gen: g, c: c, req: make([]byte, 0, 512)}
	}
	// A worker blocked on a server that will not answer is freed by its
	// deadline passing; this is how a phase ends early on Ctrl-C or a stall.
	stopInterrupt := context.AfterFunc(ctx, func() {
		for _, w := range workers {
			w.interrupt()
		}
	})
	defer stopInterrupt()

	start := time.Now()
	measureStart, end := start.Add(p.warmup), start.Add(p.warmup+p.duration)
	if p.mode == modeMemory {
		measureStart, end = start, start.Add(100*365*24*time.Hour)
	}
	lg.progress.linef("%s start: %s", p.label(), p.plan())

	cpu := lg.sampleCPU(ctx, p, measureStart, end)
	progressDone := lg.showProgress(ctx, cancel, p, workers)
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Go(func() {
			if p.mode == modeLatency {
				interval := float64(cfg.conns) / p.rate * 1e9
				w.openLoop(ctx, start, measureStart, end, float64(i)/p.rate*1e9, interval)
			} else {
				w.closedLoop(ctx, measureStart, end)
			}
		})
	}
	wg.Wait()
	finished := time.Now()
	cpu.end()
	err := context.Cause(ctx)
	cancel(nil)
	<-progressDone
	if err != nil {
		return phaseResult{}, nil, fmt.Errorf("%s: %w", p.label(), err)
	}
	if err := p.server.exited(); err != nil {
		return phaseResult{}, nil, err
	}

	res, hist := lg.summarize(p, workers)
	res.Seconds = p.duration.Seconds()
	if p.mode == modeMemory {
		res.Seconds = finished.Sub(start).Seconds()
	}
	res.ReqPerSec = float64(res.Requests) / res.Seconds
	cpu.finish(&res)
	lg.progress.linef("%s end:   %s", p.label(), res.summary())
	if res.Errors > 0 {
		lg.progress.linef("%s errors: %s; first: %s", p.label(), formatKinds(res.ErrorKinds), res.FirstError)
	}
	return res, hist, nil
}

// plan describes what a phase is about to do.
func (p phase) plan() string {
	switch p.mode {
	case modeMemory:
		return fmt.Sprintf("%d unique pairs, as fast as the tracker takes them", p.pairs)
	case modeLatency:
		return fmt.Sprintf("%.0f req/s offered, warm-up %v, measured %v", p.rate, p.warmup, p.duration)
	default:
		return fmt.Sprintf("warm-up %v, measured %v", p.warmup, p.duration)
	}
}

// summarize merges the workers' counts into the phase's figures.
func (lg *loadgen) summarize(p phase, workers []*worker) (phaseResult, *histogram) {
	res := phaseResult{
		Mode: p.mode, Workload: p.workload.String(), Server: p.server.name, Round: p.round,
		Conns: len(workers), OfferedPerSec: p.rate,
	}
	var hist, svc, late histogram
	kinds := map[string]int64{}
	for _, w := range workers {
		hist.merge(&w.hist)
		svc.merge(&w.svc)
		late.merge(&w.late)
		res.Requests += w.ok
		res.Unsent += w.unsent
		for status, n := range w.statuses {
			kinds["status "+strconv.Itoa(status)] += n
			res.Errors += n
		}
		if w.ioErrors > 0 {
			kinds["connection"] += w.ioErrors
			res.Errors += w.ioErrors
		}
		if res.FirstError == "" {
			res.FirstError = w.firstErr
		}
	}
	if len(kinds) > 0 {
		res.ErrorKinds = kinds
	}
	res.P50Us, res.P90Us, res.P99Us = micros(hist.quantile(0.5)), micros(hist.quantile(0.9)), micros(hist.quantile(0.99))
	res.P999Us, res.MaxUs = micros(hist.quantile(0.999)), micros(time.Duration(hist.max))
	if p.mode == modeLatency {
		res.ServiceP50Us, res.ServiceP99Us = micros(svc.quantile(0.5)), micros(svc.quantile(0.99))
		res.ClientLateP50Us, res.ClientLateP99Us = micros(late.quantile(0.5)), micros(late.quantile(0.99))
	}
	return res, &hist
}

// showProgress prints the phase's request rate every second until ctx is
// done, and cancels the phase if the server stops answering. The returned
// channel is closed once it has stopped printing.
func (lg *loadgen) showProgress(ctx context.Context, cancel context.CancelCauseFunc, p phase, workers []*worker) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last int64
		lastTime, lastChange := time.Now(), time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				var total int64
				for _, w := range workers {
					total += w.answered.Load()
				}
				lg.progress.livef("%s %8.0f req/s", p.label(), float64(total-last)/now.Sub(lastTime).Seconds())
				if total != last {
					lastChange = now
				} else if now.Sub(lastChange) > stallTimeout {
					cancel(errStalled)
				}
				last, lastTime = total, now
			}
		}
	}()
	return done
}

// worker drives one connection. Its counts are its own until the phase
// merges them, except answered, which the progress line reads.
type worker struct {
	addr string
	want int
	gen  *generator
	req  []byte

	mu sync.Mutex // guards c against interrupt
	c  *conn

	hist     histogram // closed loop: from send; open loop: from the scheduled send
	svc      histogram // open loop: from the actual send
	late     histogram // open loop: how late loadgen sent while the connection was free
	ok       int64     // measured answers with the expected status
	unsent   int64     // open loop: measured requests still unsent when the phase ended
	statuses map[int]int64
	ioErrors int64
	firstErr string

	_        [64]byte // keeps answered off the cache line of another worker's fields
	answered atomic.Int64
	_        [64]byte
}

// closedLoop sends a request as soon as the last one is answered, until end.
func (w *worker) closedLoop(ctx context.Context, measureStart, end time.Time) {
	for {
		sent := time.Now()
		if !sent.Before(end) {
			return
		}
		var more bool
		if w.req, more = w.gen.appendRequest(w.req[:0]); !more {
			return
		}
		resp, err := w.c.roundTrip(w.req)
		if err != nil {
			if !w.recover(ctx, err) {
				return
			}
			continue
		}
		answered := time.Now()
		w.answered.Add(1)
		if !sent.Before(measureStart) {
			w.count(resp, answered.Sub(sent), 0)
		}
		if resp.close && !w.redial(ctx) {
			return
		}
	}
}

// openLoop sends request k at start+offset+k·interval (nanoseconds) whether
// or not the server has kept up, and counts latency from that scheduled
// time: a server that stalls then makes every request due meanwhile late,
// where a closed loop would have politely waited and hidden the stall
// (coordinated omission).
func (w *worker) openLoop(ctx context.Context, start, measureStart, end time.Time, offset, interval float64) {
	dueAt := func(k int) time.Time { return start.Add(time.Duration(offset + float64(k)*interval)) }
	var lastAnswer time.Time
	for k := 0; ; k++ {
		due := dueAt(k)
		if !due.Before(end) {
			return
		}
		now := time.Now()
		if !now.Before(end) {
			// Behind schedule when the phase ends: what was not sent counts
			// with the wait it had had so far, a lower bound.
			for ; due.Before(end); k, due = k+1, dueAt(k+1) {
				if !due.Before(measureStart) {
					w.hist.record(now.Sub(due))
					w.unsent++
				}
			}
			return
		}
		// time.Sleep may wake late, up to a millisecond when the runtime
		// is idle (its poller waits in whole milliseconds) and more on a
		// busy machine: late records it, so the report can tell.
		if wait := due.Sub(now); wait > 0 {
			time.Sleep(wait)
		}
		if ctx.Err() != nil {
			return
		}
		w.req, _ = w.gen.appendRequest(w.req[:0])
		sent := time.Now()
		resp, err := w.c.roundTrip(w.req)
		if err != nil {
			if !w.recover(ctx, err) {
				return
			}
			continue
		}
		answered := time.Now()
		w.answered.Add(1)
		if !due.Before(measureStart) {
			w.count(resp, answered.Sub(due), answered.Sub(sent))
			// A request sent late although its connection was free was
			// held up by loadgen or the machine, not by the server.
			if lastAnswer.Before(due) {
				w.late.record(sent.Sub(due))
			}
		}
		lastAnswer = answered
		if resp.close && !w.redial(ctx) {
			return
		}
	}
}

// count records one measured answer.
func (w *worker) count(resp response, latency, service time.Duration) {
	if resp.status != w.want {
		if w.statuses == nil {
			w.statuses = map[int]int64{}
		}
		w.statuses[resp.status]++
		if w.firstErr == "" {
			w.firstErr = fmt.Sprintf("status %d: %.200s", resp.status, w.c.body)
		}
		return
	}
	w.ok++
	w.hist.record(latency)
	if service > 0 {
		w.svc.record(service)
	}
}

// recover counts a failed exchange and reconnects. It reports false when
// the worker should stop: the phase is over, or the server is unreachable.
func (w *worker) recover(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	w.ioErrors++
	if w.firstErr == "" {
		w.firstErr = err.Error()
	}
	return w.redial(ctx)
}

// redial replaces the worker's connection, after a failure or a
// Connection: close.
func (w *worker) redial(ctx context.Context) bool {
	c, err := dial(w.addr)
	if err != nil {
		w.ioErrors++
		if w.firstErr == "" {
			w.firstErr = err.Error()
		}
		return false
	}
	w.mu.Lock()
	old := w.c
	w.c = c
	w.mu.Unlock()
	old.nc.Close()
	// An interrupt that came while dialing found the old connection.
	if ctx.Err() != nil {
		w.interrupt()
		return false
	}
	return true
}

// interrupt makes the worker's blocked read or write return at once.
func (w *worker) interrupt() {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.c.nc.SetDeadline(time.Unix(1, 0))
}

// cpuSampler reads the CPU time of the server under load and of loadgen
// itself at the start and end of a phase's measured window, so that each
// request's CPU cost can be reported: on a shared machine it varies less
// than the request rate does.
type cpuSampler struct {
	pid            int
	server0, self0 time.Duration
	server1, self1 time.Duration
	ok             bool
	measured       chan struct{} // closed once the end sample is taken
	fixedWindow    bool          // false: sampled when the phase starts and finishes
}

// sampleCPU starts sampling for p: at measureStart and end, or for the
// memory mode at once and when the phase finishes.
func (lg *loadgen) sampleCPU(ctx context.Context, p phase, measureStart, end time.Time) *cpuSampler {
	s := &cpuSampler{pid: p.server.pid, measured: make(chan struct{}), fixedWindow: p.mode != modeMemory}
	if !s.fixedWindow {
		s.server0, s.self0, s.ok = cpuTimes(s.pid)
		close(s.measured)
		return s
	}
	go func() {
		defer close(s.measured)
		if !sleepUntil(ctx, measureStart) {
			return
		}
		server0, self0, ok0 := cpuTimes(s.pid)
		if !sleepUntil(ctx, end) {
			return
		}
		server1, self1, ok1 := cpuTimes(s.pid)
		s.server0, s.self0, s.server1, s.self1, s.ok = server0, self0, server1, self1, ok0 && ok1
	}()
	return s
}

// end takes the end sample of a phase whose workers have all stopped. A
// fixed window's is due at its end, when the workers stop too: end waits
// for it, and must come before the phase is cancelled, which would make
// the sampler give up.
func (s *cpuSampler) end() {
	if s.fixedWindow {
		<-s.measured
		return
	}
	server1, self1, ok := cpuTimes(s.pid)
	s.server1, s.self1, s.ok = server1, self1, s.ok && ok
}

// finish adds the CPU figures to res.
func (s *cpuSampler) finish(res *phaseResult) {
	if !s.ok || res.Requests == 0 {
		return
	}
	n := float64(res.Requests)
	res.ServerCPUUsPerReq = micros(s.server1-s.server0) / n
	res.ClientCPUUsPerReq = micros(s.self1-s.self0) / n
	res.ServerCores = (s.server1 - s.server0).Seconds() / res.Seconds
	res.ClientCores = (s.self1 - s.self0).Seconds() / res.Seconds
}

// sleepUntil waits until t; it reports false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// formatKinds lists error kinds and counts, most frequent first.
func formatKinds(kinds map[string]int64) string {
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return kinds[names[i]] > kinds[names[j]] })
	s := ""
	for i, k := range names {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s ×%d", k, kinds[k])
	}
	return s
}

// micros converts a duration to microseconds.
func micros(d time.Duration) float64 { return float64(d) / 1e3 }
