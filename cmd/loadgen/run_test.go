package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/baseline"
)

// fakeTrackerFlag, among a test binary's arguments, makes it a stand-in for
// the tracker: the bare server plus /readyz, on the -addr loadgen gives it.
const fakeTrackerFlag = "-fake-tracker"

// TestMain lets the test binary serve as the servers loadgen starts: as the
// bare server when loadgen re-executes itself (os.Executable is the test
// binary), and as a fake tracker when a test points -tracker at it. The end
// to end tests then need no build.
func TestMain(m *testing.M) {
	args := os.Args[1:]
	switch {
	case len(args) == 2 && args[0] == "-serve-bare":
		os.Exit(serveChild(func(ctx context.Context) error {
			return run(ctx, args, os.Getenv, os.Stdout, os.Stderr)
		}))
	case slices.Contains(args, fakeTrackerFlag):
		os.Exit(serveChild(func(ctx context.Context) error { return serveFakeTracker(ctx, args) }))
	}
	// A binary built with -race sleeps a second before it exits, in case
	// another goroutine has a race to report; the servers need not, and the
	// tests stay quick. The setting is read at start, so it spares only them.
	os.Setenv("GORACE", strings.TrimSpace("atexit_sleep_ms=0 "+os.Getenv("GORACE")))
	os.Exit(m.Run())
}

// serveChild runs serve until SIGTERM, as main would, and returns an exit code.
func serveChild(serve func(context.Context) error) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

func serveFakeTracker(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fake-tracker", flag.ContinueOnError)
	addr := fs.String("addr", "", "")
	delay := fs.Duration("delay", 0, "time each API request takes")
	fs.Bool(strings.TrimPrefix(fakeTrackerFlag, "-"), true, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	bare := baseline.Handler()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(*delay)
		bare.ServeHTTP(w, r)
	})
	return serve(ctx, *addr, mux)
}

// runLoadgen runs loadgen against two bare servers (the second standing in
// for the tracker) with the given extra arguments, and returns the result
// file's content, the outputs and run's error.
func runLoadgen(t *testing.T, ctx context.Context, extra ...string) (*result, string, string, error) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "result.json")
	args := append([]string{"-quick", "-tracker", self, "-tracker-args", fakeTrackerFlag, "-out", out}, extra...)
	var stdout, stderr bytes.Buffer
	runErr := run(ctx, args, func(string) string { return "" }, &stdout, &stderr)
	var res *result
	if b, err := os.ReadFile(out); err == nil {
		res = new(result)
		if err := json.Unmarshal(b, res); err != nil {
			t.Fatalf("the result file does not parse: %v\n%s", err, b)
		}
	}
	return res, stdout.String(), stderr.String(), runErr
}

// The end to end tests are not parallel: they measure throughput, which
// other tests running at the same time would skew.

// TestRunBareAgainstBare measures a bare server against another: every
// figure must be there, and the ratios near 1.
func TestRunBareAgainstBare(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, stdout, stderr, err := runLoadgen(t, ctx, "-latency-duration", "200ms")
	if err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr)
	}
	if res == nil {
		t.Fatal("no result file")
	}
	if got := workloadNamesOf(res); !slices.Equal(got, []string{"ingest-uniform", "query"}) {
		t.Fatalf("workloads %v, want the default ingest-uniform and query", got)
	}
	for _, wr := range res.Workloads {
		if len(wr.Throughput) != 2 || len(wr.Rounds) != 1 {
			t.Fatalf("%s: %d phases in %d rounds, want 2 in 1 (-quick)", wr.Workload, len(wr.Throughput), len(wr.Rounds))
		}
		if wr.Latency == nil || len(wr.Latency.Phases) != 4 {
			t.Fatalf("%s: want 4 latency phases, got %+v", wr.Workload, wr.Latency)
		}
		for _, p := range append(slices.Clone(wr.Throughput), wr.Latency.Phases...) {
			if p.ReqPerSec <= 0 || p.Requests <= 0 || p.Errors != 0 || p.Conns != 4 {
				t.Errorf("%s %s %s: %.0f req/s, %d requests, %d errors (%s), %d conns; want some, no errors, 4 conns",
					p.Mode, wr.Workload, p.Server, p.ReqPerSec, p.Requests, p.Errors, p.FirstError, p.Conns)
			}
			if p.P50Us <= 0 || p.P99Us < p.P50Us || p.MaxUs < p.P99Us {
				t.Errorf("%s %s %s: p50 %v, p99 %v, max %v µs; want 0 < p50 ≤ p99 ≤ max", p.Mode, wr.Workload, p.Server, p.P50Us, p.P99Us, p.MaxUs)
			}
		}
		// The figures themselves are measured, not asserted: on a shared
		// machine, with other test packages running, any bound on them
		// would be a flaky test. What must hold is that they are there.
		if !(wr.MedianRatio > 0) || math.IsInf(wr.MedianRatio, 0) {
			t.Errorf("%s: req/s ratio %v, want a positive number", wr.Workload, wr.MedianRatio)
		}
		lr := wr.Latency
		if want := wr.BareMedianReqPerSec / 2; lr.OfferedPerSec != want {
			t.Errorf("%s: offered %.0f req/s, want half the bare rate, %.0f", wr.Workload, lr.OfferedPerSec, want)
		}
		if !(lr.P99Ratio > 0) || math.IsInf(lr.P99Ratio, 0) {
			t.Errorf("%s: p99 ratio %v, want a positive number", wr.Workload, lr.P99Ratio)
		}
	}
	if res.Tracker.PID <= 0 || res.Tracker.RSSEndBytes <= 0 || res.Machine.NumCPU <= 0 || res.Machine.GoVersion == "" {
		t.Errorf("tracker pid %d, RSS %d, machine %+v: want them all", res.Tracker.PID, res.Tracker.RSSEndBytes, res.Machine)
	}
	if res.Flags["conns"] != "4" || res.Flags["workloads"] != "ingest-uniform,query" {
		t.Errorf("flags %v: want the values used", res.Flags)
	}
	for _, want := range []string{"ingest-uniform", "query", "median", "p99 ratio"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the table has no %q:\n%s", want, stdout)
		}
	}
	for _, pid := range []int{res.Tracker.PID, res.Bare.PID} {
		if alive(pid) {
			t.Errorf("server pid %d still runs after run returned", pid)
		}
	}
}

// TestRunSlowTracker measures a fake tracker that takes 2ms per request
// against the bare server: the figures must show it slower, so that a ratio
// upside down or taken from the wrong server cannot pass for 1.
func TestRunSlowTracker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, _, stderr, err := runLoadgen(t, ctx, "-workloads", "query", "-latency-duration", "100ms",
		"-tracker-args", fakeTrackerFlag+" -delay 2ms")
	if err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr)
	}
	wr := res.Workloads[0]
	// 4 connections at 2ms each cannot pass 2000 req/s.
	// Only bounds that hold by construction, whatever else the machine is
	// doing: the tracker's own req/s and latency, and a ratio that is the
	// tracker's figure over the bare one (one round: the median is that).
	if wr.TrackerMedianReqPerSec > 2000 || wr.TrackerMedianReqPerSec <= 0 {
		t.Errorf("slow tracker: %.0f req/s; want some, at most 2000", wr.TrackerMedianReqPerSec)
	}
	if want := wr.TrackerMedianReqPerSec / wr.BareMedianReqPerSec; math.Abs(wr.MedianRatio-want) > 1e-9*want {
		t.Errorf("ratio %v, want tracker ÷ bare = %v", wr.MedianRatio, want)
	}
	if lr := wr.Latency; lr.TrackerP50Us < 2000 {
		t.Errorf("slow tracker: p50 %s; want over 2ms", fmtMicros(lr.TrackerP50Us))
	}
	if p := wr.Throughput[1]; p.Server != "tracker" || p.P50Us < 2000 {
		t.Errorf("throughput phase %s: p50 %s, want the tracker's, over 2ms", p.Server, fmtMicros(p.P50Us))
	}
}

// TestRunMemoryCheck runs the memory run alone against the fake tracker,
// which answers 42 visitors for any page: with one page, 42 pairs make the
// check pass and 41 make it fail.
func TestRunMemoryCheck(t *testing.T) {
	for _, tt := range []struct {
		pairs   int
		wantErr bool
	}{{42, false}, {41, true}} {
		t.Run(strconv.Itoa(tt.pairs), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, stdout, stderr, err := runLoadgen(t, ctx, "-workloads", "", "-pages", "1", "-memory-pairs", strconv.Itoa(tt.pairs))
			if (err != nil) != tt.wantErr {
				t.Fatalf("run: %v, want an error: %v\nstderr:\n%s", err, tt.wantErr, stderr)
			}
			if tt.wantErr && !strings.Contains(err.Error(), "has 42 visitors, want 41") {
				t.Errorf("error %q does not say which count is wrong", err)
			}
			if res == nil || res.Memory == nil {
				t.Fatal("no memory result")
			}
			m := res.Memory
			if m.Pairs != int64(tt.pairs) || m.Phase.Requests != int64(tt.pairs) || m.RSSAfterBytes <= 0 || len(m.Checks) != 1 {
				t.Errorf("memory result %+v: want %d pairs answered, an RSS and one check", m, tt.pairs)
			}
			if len(res.Workloads) != 0 {
				t.Errorf("%d workloads ran, want none", len(res.Workloads))
			}
			if !strings.Contains(stdout, "bytes per pair") {
				t.Errorf("the table has no memory line:\n%s", stdout)
			}
		})
	}
}

// TestRunStopsServersWhenCancelled interrupts a run, as Ctrl-C does, and
// checks that it ends soon and leaves no server behind.
func TestRunStopsServersWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(time.Second, cancel)
	start := time.Now()
	_, _, stderr, err := runLoadgen(t, ctx, "-duration", "10s")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v, want context.Canceled\nstderr:\n%s", err, stderr)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("run took %v to return after being cancelled at 1s", took)
	}
	pids := regexp.MustCompile(`pid (\d+)`).FindAllStringSubmatch(stderr, -1)
	if len(pids) != 2 {
		t.Fatalf("want the pids of both servers on stderr:\n%s", stderr)
	}
	for _, m := range pids {
		if pid, _ := strconv.Atoi(m[1]); alive(pid) {
			t.Errorf("server pid %d still runs after run returned", pid)
		}
	}
}

// TestRunFailsWhenTrackerCannotStart checks that a tracker that exits at
// once fails the run with its reason rather than a timeout.
func TestRunFailsWhenTrackerCannotStart(t *testing.T) {
	t.Parallel()
	_, _, _, err := runLoadgen(t, context.Background(), "-tracker-args", fakeTrackerFlag+" -no-such-flag")
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Fatalf("run: %v, want an error saying the tracker exited", err)
	}
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		check   func(*config) bool
		wantErr bool
	}{
		{nil, func(c *config) bool {
			return c.conns == 32 && c.rounds == 5 && c.duration == 3*time.Second && c.warmup == time.Second &&
				c.workloads.String() == "ingest-uniform,query" && len(c.trackerArgs) == 0 && c.baseline == "bare"
		}, false},
		{[]string{"-baseline", "tracker"}, func(c *config) bool { return c.baseline == "tracker" }, false},
		{[]string{"-baseline", "nginx"}, nil, true},
		{[]string{"-quick"}, func(c *config) bool {
			return c.conns == 4 && c.rounds == 1 && c.duration == 300*time.Millisecond && c.warmup == 100*time.Millisecond &&
				c.latencyDuration == 300*time.Millisecond && c.flags["conns"] == "4"
		}, false},
		{[]string{"-quick", "-conns", "8"}, func(c *config) bool { return c.conns == 8 && c.rounds == 1 }, false},
		{[]string{"-workload", "ingest-hot"}, func(c *config) bool { return c.workloads.String() == "ingest-hot" }, false},
		{[]string{"-workloads", "nope"}, nil, true},
		{[]string{"-conns", "0"}, nil, true},
		{[]string{"-duration", "0s"}, nil, true},
		{[]string{"extra"}, nil, true},
	}
	for _, tt := range tests {
		c, err := parseConfig(tt.args, new(bytes.Buffer))
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: error %v, want one: %v", tt.args, err, tt.wantErr)
			continue
		}
		if err == nil && !tt.check(c) {
			t.Errorf("%q: unexpected config %+v", tt.args, c)
		}
	}
}

func workloadNamesOf(r *result) []string {
	var names []string
	for _, w := range r.Workloads {
		names = append(names, w.Workload)
	}
	return names
}

// alive reports whether process pid exists; the servers are reaped by run,
// so not even a zombie should remain.
func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}
