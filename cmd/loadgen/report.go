package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// result is everything a run measured, as written to the -out file.
type result struct {
	Started   time.Time         `json:"started"`
	Seconds   float64           `json:"seconds"`
	Machine   machine           `json:"machine"`
	Flags     map[string]string `json:"flags"`
	Tracker   serverInfo        `json:"tracker"`
	Bare      serverInfo        `json:"bare"`
	Workloads []workloadResult  `json:"workloads"`
	Memory    *memoryResult     `json:"memory,omitempty"`
}

// machine is what a reader needs to compare runs on different machines.
type machine struct {
	GoVersion      string  `json:"go_version"`
	GOOS           string  `json:"goos"`
	GOARCH         string  `json:"goarch"`
	NumCPU         int     `json:"num_cpu"`
	GOMAXPROCS     int     `json:"gomaxprocs"`
	CPUModel       string  `json:"cpu_model"`
	LoadAvgAtStart float64 `json:"loadavg_1m_at_start"`
	LoadAvgAtEnd   float64 `json:"loadavg_1m_at_end"`
}

// serverInfo says which server was measured and, for the tracker, its
// resident memory at the end of the run.
type serverInfo struct {
	Path         string   `json:"path"`
	Args         []string `json:"args"`
	Addr         string   `json:"addr"`
	PID          int      `json:"pid"`
	RSSEndBytes  int64    `json:"rss_end_bytes,omitempty"`
	RSSPeakBytes int64    `json:"rss_peak_bytes,omitempty"`
}

// workloadResult is one workload's throughput rounds and latency phases.
type workloadResult struct {
	Workload   string         `json:"workload"`
	Throughput []phaseResult  `json:"throughput_phases"`
	Rounds     []roundResult  `json:"rounds"`
	Latency    *latencyResult `json:"latency,omitempty"`
	// Medians over the rounds; the ratios are tracker ÷ bare.
	BareMedianReqPerSec    float64 `json:"bare_median_req_per_s"`
	TrackerMedianReqPerSec float64 `json:"tracker_median_req_per_s"`
	MedianRatio            float64 `json:"median_req_per_s_ratio"`
	MinRatio               float64 `json:"min_req_per_s_ratio"`
	MaxRatio               float64 `json:"max_req_per_s_ratio"`
	MedianCPUPerReqRatio   float64 `json:"median_cpu_per_req_ratio,omitempty"`
}

// roundResult is one A/B round: the two servers measured back to back.
type roundResult struct {
	Round            int     `json:"round"`
	First            string  `json:"first"`
	BareReqPerSec    float64 `json:"bare_req_per_s"`
	TrackerReqPerSec float64 `json:"tracker_req_per_s"`
	// Server CPU time per answer, where /proc tells it.
	BareCPUUsPerReq    float64 `json:"bare_cpu_us_per_req,omitempty"`
	TrackerCPUUsPerReq float64 `json:"tracker_cpu_us_per_req,omitempty"`
	// Tracker ÷ bare, computed by summarize.
	ReqPerSecRatio float64 `json:"req_per_s_ratio"`
	CPUPerReqRatio float64 `json:"cpu_per_req_ratio,omitempty"`
}

// latencyResult is the open-loop comparison at one offered rate; the
// percentiles merge both phases of each server.
type latencyResult struct {
	OfferedPerSec float64       `json:"offered_req_per_s"`
	Phases        []phaseResult `json:"phases"`
	BareP50Us     float64       `json:"bare_p50_us"`
	BareP99Us     float64       `json:"bare_p99_us"`
	TrackerP50Us  float64       `json:"tracker_p50_us"`
	TrackerP99Us  float64       `json:"tracker_p99_us"`
	P99Ratio      float64       `json:"p99_ratio"`
	// The lower p99 of each server's two phases, and their ratio: one
	// stall of the machine in one phase moves it less than the merged one.
	BareBestP99Us    float64 `json:"bare_best_p99_us"`
	TrackerBestP99Us float64 `json:"tracker_best_p99_us"`
	BestP99Ratio     float64 `json:"best_p99_ratio"`
}

// phaseResult is the figures of one phase. Requests and the latencies count
// answers with the expected status only, sent within the measured window.
type phaseResult struct {
	Mode          string  `json:"mode"`
	Workload      string  `json:"workload"`
	Server        string  `json:"server"`
	Round         int     `json:"round"`
	First         bool    `json:"first,omitempty"`
	Conns         int     `json:"conns"`
	OfferedPerSec float64 `json:"offered_req_per_s,omitempty"`
	Seconds       float64 `json:"seconds"`
	Requests      int64   `json:"requests"`
	ReqPerSec     float64 `json:"req_per_s"`
	// Latency: from the send in a closed loop, from the scheduled send in
	// an open loop; Service* are from the actual send in an open loop, so
	// the difference is time spent waiting on loadgen's side.
	P50Us        float64 `json:"p50_us"`
	P90Us        float64 `json:"p90_us"`
	P99Us        float64 `json:"p99_us"`
	P999Us       float64 `json:"p999_us"`
	MaxUs        float64 `json:"max_us"`
	ServiceP50Us float64 `json:"service_p50_us,omitempty"`
	ServiceP99Us float64 `json:"service_p99_us,omitempty"`
	// Open loop: how late loadgen sent requests whose connection was free.
	// High, it says the machine or loadgen, not the server, made the tail.
	ClientLateP50Us float64 `json:"client_late_p50_us,omitempty"`
	ClientLateP99Us float64 `json:"client_late_p99_us,omitempty"`
	Unsent          int64   `json:"unsent,omitempty"`
	// CPU time of the server under load and of loadgen, per answer and in
	// cores busy over the window (Linux, at 10ms resolution).
	ServerCPUUsPerReq float64          `json:"server_cpu_us_per_req,omitempty"`
	ClientCPUUsPerReq float64          `json:"client_cpu_us_per_req,omitempty"`
	ServerCores       float64          `json:"server_cores,omitempty"`
	ClientCores       float64          `json:"client_cores,omitempty"`
	Errors            int64            `json:"errors"`
	ErrorKinds        map[string]int64 `json:"error_kinds,omitempty"`
	FirstError        string           `json:"first_error,omitempty"`
}

// memoryResult is the memory run: growth of the tracker's resident memory
// per unique pair, and the counts of a few pages.
type memoryResult struct {
	Pairs          int64       `json:"pairs"`
	Pages          int         `json:"pages"`
	Phase          phaseResult `json:"phase"`
	RSSBeforeBytes int64       `json:"rss_before_bytes"`
	RSSAfterBytes  int64       `json:"rss_after_bytes"`
	BytesPerPair   float64     `json:"bytes_per_pair"`
	Checks         []pageCheck `json:"checks"`
}

// pageCheck is one page's count as the tracker answered it and as it must be.
type pageCheck struct {
	URL  string `json:"url"`
	Want int64  `json:"want"`
	Got  count  `json:"got"`
}

// count is an answer of GET /api/v1/visitors: an exact count, or an
// estimate with its relative standard error (under -memory-limit).
type count struct {
	Visitors      int64   `json:"visitors"`
	Exact         bool    `json:"exact"`
	RelativeError float64 `json:"relative_error,omitempty"`
}

// right reports whether c is want: exactly, or for an estimate within 4 of
// its standard errors.
func (c count) right(want int64) bool {
	if c.Exact {
		return c.Visitors == want
	}
	return math.Abs(float64(c.Visitors-want)) <= 4*c.RelativeError*float64(want)
}

// checkErr reports the pages whose count is wrong.
func (m *memoryResult) checkErr() error {
	var wrong []string
	for _, c := range m.Checks {
		switch {
		case c.Got.right(c.Want):
		case c.Got.Exact:
			wrong = append(wrong, fmt.Sprintf("%s has %d visitors, want %d", c.URL, c.Got.Visitors, c.Want))
		default:
			wrong = append(wrong, fmt.Sprintf("%s has an estimate of %d visitors (±%.2f%%), want %d",
				c.URL, c.Got.Visitors, 100*c.Got.RelativeError, c.Want))
		}
	}
	if len(wrong) > 0 {
		return fmt.Errorf("memory run: wrong counts: %s", strings.Join(wrong, "; "))
	}
	return nil
}

// checkSummary says in a few words whether the counts were right.
func (m *memoryResult) checkSummary() string {
	if err := m.checkErr(); err != nil {
		return "COUNTS WRONG"
	}
	estimated := 0
	for _, c := range m.Checks {
		if !c.Got.Exact {
			estimated++
		}
	}
	if estimated == 0 {
		return fmt.Sprintf("counts of %d pages exact", len(m.Checks))
	}
	return fmt.Sprintf("counts of %d pages right (%d estimated, within 4 standard errors)", len(m.Checks), estimated)
}

func newResult(cfg *config) *result {
	r := &result{
		Started: time.Now(),
		Flags:   cfg.flags,
		Machine: machine{
			GoVersion:  runtime.Version(),
			GOOS:       runtime.GOOS,
			GOARCH:     runtime.GOARCH,
			NumCPU:     runtime.NumCPU(),
			GOMAXPROCS: runtime.GOMAXPROCS(0),
			CPUModel:   cpuModel(),
		},
		Workloads: []workloadResult{},
	}
	r.Machine.LoadAvgAtStart = loadAvg()
	return r
}

// finish records the end of the run.
func (r *result) finish() {
	r.Seconds = time.Since(r.Started).Seconds()
	r.Machine.LoadAvgAtEnd = loadAvg()
}

// summarize computes each round's ratios, then the medians over the rounds.
// The median, not the mean, because one round disturbed by another job must
// not move the figure.
func (wr *workloadResult) summarize() {
	var bare, tracker, ratios, cpu []float64
	for i := range wr.Rounds {
		r := &wr.Rounds[i]
		r.ReqPerSecRatio = ratio(r.TrackerReqPerSec, r.BareReqPerSec)
		r.CPUPerReqRatio = ratio(r.TrackerCPUUsPerReq, r.BareCPUUsPerReq)
		bare = append(bare, r.BareReqPerSec)
		tracker = append(tracker, r.TrackerReqPerSec)
		ratios = append(ratios, r.ReqPerSecRatio)
		if r.CPUPerReqRatio > 0 {
			cpu = append(cpu, r.CPUPerReqRatio)
		}
	}
	wr.BareMedianReqPerSec, wr.TrackerMedianReqPerSec = median(bare), median(tracker)
	wr.MedianRatio, wr.MedianCPUPerReqRatio = median(ratios), median(cpu)
	if len(ratios) > 0 {
		wr.MinRatio, wr.MaxRatio = slices.Min(ratios), slices.Max(ratios)
	}
}

// median returns the median of xs, 0 if empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// writeJSON writes r to path, indented for people to read and diff.
func writeJSON(path string, r *result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the result: %w", err)
	}
	return nil
}

// printTable writes the human summary of r.
func printTable(w io.Writer, r *result) {
	m := r.Machine
	f := r.Flags
	against := "bare net/http"
	if f["baseline"] == "tracker" {
		against = "the memory-only tracker (columns marked bare)"
		if f["baseline-tracker"] != "" {
			against = "the tracker " + f["baseline-tracker"] + " (columns marked bare)"
		}
	}
	fmt.Fprintf(w, "tracker vs %s on loopback, %s\n", against, r.Started.Format(time.DateTime))
	fmt.Fprintf(w, "machine: %d CPUs (%s), GOMAXPROCS %d, %s, load %.2f at start, %.2f at end\n",
		m.NumCPU, m.CPUModel, m.GOMAXPROCS, m.GoVersion, m.LoadAvgAtStart, m.LoadAvgAtEnd)
	fmt.Fprintf(w, "tracker: %s %s\n", r.Tracker.Path, strings.Join(r.Tracker.Args, " "))
	fmt.Fprintf(w, "baseline: %s %s\n", r.Bare.Path, strings.Join(r.Bare.Args, " "))
	if len(r.Workloads) > 0 {
		fmt.Fprintf(w, "load: %s conns, %s rounds of %s (+%s warm-up) per server; latency %s × 2 per server\n",
			f["conns"], f["rounds"], f["duration"], f["warmup"], f["latency-duration"])
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if len(r.Workloads) > 0 {
		fmt.Fprintln(tw, "throughput\tround\tfirst\tbare req/s\tp50\tp99\tcpu/req\ttracker req/s\tp50\tp99\tcpu/req\terrors b/t\tratio\t")
		for _, wr := range r.Workloads {
			for i, rd := range wr.Rounds {
				b, t := wr.Throughput[2*i], wr.Throughput[2*i+1]
				if b.Server != "bare" {
					b, t = t, b
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%d/%d\t%.3f\t\n",
					wr.Workload, rd.Round, rd.First,
					b.ReqPerSec, fmtMicros(b.P50Us), fmtMicros(b.P99Us), fmtMicros(b.ServerCPUUsPerReq),
					t.ReqPerSec, fmtMicros(t.P50Us), fmtMicros(t.P99Us), fmtMicros(t.ServerCPUUsPerReq),
					b.Errors, t.Errors, rd.ReqPerSecRatio)
			}
			fmt.Fprintf(tw, "%s\tmedian\t\t%.0f\t\t\t\t%.0f\t\t\t\t\t%.3f\t\n",
				wr.Workload, wr.BareMedianReqPerSec, wr.TrackerMedianReqPerSec, wr.MedianRatio)
			fmt.Fprintf(tw, "\tmin–max\t\t\t\t\t\t\t\t\t\t\t%.3f–%.3f\t\n", wr.MinRatio, wr.MaxRatio)
			fmt.Fprintf(tw, "\tcpu/req ratio\t\t\t\t\t\t\t\t\t\t\t%.3f\t\n", wr.MedianCPUPerReqRatio)
		}
		tw.Flush()
		fmt.Fprintln(w)

		if f["latency-duration"] != "0s" {
			printLatency(tw, r)
			tw.Flush()
			fmt.Fprintln(w)
		}
	}
	if mr := r.Memory; mr != nil {
		fmt.Fprintf(w, "memory: %d unique pairs over %d pages at %.0f pairs/s, RSS %s → %s: %.1f bytes per pair; %s\n",
			mr.Pairs, mr.Pages, mr.Phase.ReqPerSec, fmtBytes(mr.RSSBeforeBytes), fmtBytes(mr.RSSAfterBytes),
			mr.BytesPerPair, mr.checkSummary())
	}
	fmt.Fprintf(w, "tracker RSS at the end: %s (peak %s)\n", fmtBytes(r.Tracker.RSSEndBytes), fmtBytes(r.Tracker.RSSPeakBytes))
}

// printLatency writes the open-loop latency table of r's workloads.
func printLatency(tw *tabwriter.Writer, r *result) {
	fmt.Fprintln(tw, "latency (open loop)\toffered req/s\tbare p50\tp99\ttracker p50\tp99\tp99 ratio\tbest-run p99 b/t\tratio\tunsent b/t\tloadgen late p99\t")
	for _, wr := range r.Workloads {
		if lr := wr.Latency; lr != nil {
			var unsentB, unsentT int64
			var late float64
			for _, p := range lr.Phases {
				late = max(late, p.ClientLateP99Us)
				if p.Server == "bare" {
					unsentB += p.Unsent
				} else {
					unsentT += p.Unsent
				}
			}
			fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%.2f\t%s/%s\t%.2f\t%d/%d\t%s\t\n", wr.Workload, lr.OfferedPerSec,
				fmtMicros(lr.BareP50Us), fmtMicros(lr.BareP99Us), fmtMicros(lr.TrackerP50Us), fmtMicros(lr.TrackerP99Us),
				lr.P99Ratio, fmtMicros(lr.BareBestP99Us), fmtMicros(lr.TrackerBestP99Us), lr.BestP99Ratio, unsentB, unsentT, fmtMicros(late))
		}
	}
}

// fmtMicros formats microseconds with a unit that keeps three digits.
func fmtMicros(us float64) string {
	switch {
	case us == 0:
		return "-"
	case us < 10:
		return fmt.Sprintf("%.2fµs", us)
	case us < 1000:
		return fmt.Sprintf("%.0fµs", us)
	case us < 1e6:
		return fmt.Sprintf("%.2fms", us/1e3)
	default:
		return fmt.Sprintf("%.2fs", us/1e6)
	}
}

// fmtBytes formats a byte count in MiB.
func fmtBytes(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// procStatusBytes returns a "kB" field of /proc/PID/status, such as VmRSS,
// in bytes.
func procStatusBytes(pid int, field string) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status: %s: %w", pid, field, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// cpuTimes returns the user+system CPU time of process pid and of loadgen;
// ok is false where /proc cannot tell.
func cpuTimes(pid int) (server, self time.Duration, ok bool) {
	server, err1 := procCPU(strconv.Itoa(pid))
	self, err2 := procCPU("self")
	return server, self, err1 == nil && err2 == nil
}

// procCPU reads utime+stime from /proc/<pid>/stat. Those count clock ticks
// of USER_HZ, 100 per second on every Linux that Go runs on.
func procCPU(pid string) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: count the fields
	// from the last ")", where field 3 (state) begins.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(b)) {
		if name, value, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "unknown"
}

// loadAvg returns the one-minute load average, which says how noisy the
// machine was; 0 where /proc cannot tell.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(fields[0], 64)
	return v
}

// summary is a phase's figures on one line.
func (r phaseResult) summary() string {
	s := fmt.Sprintf("%8.0f req/s  p50 %s  p99 %s  errors %d", r.ReqPerSec, fmtMicros(r.P50Us), fmtMicros(r.P99Us), r.Errors)
	if r.ServerCPUUsPerReq > 0 {
		s += fmt.Sprintf("  cpu/req server %s client %s", fmtMicros(r.ServerCPUUsPerReq), fmtMicros(r.ClientCPUUsPerReq))
	}
	if r.Mode == modeLatency {
		s += fmt.Sprintf("  service p99 %s  loadgen late p99 %s", fmtMicros(r.ServiceP99Us), fmtMicros(r.ClientLateP99Us))
	}
	if r.Unsent > 0 {
		s += fmt.Sprintf("  unsent %d", r.Unsent)
	}
	return s
}
