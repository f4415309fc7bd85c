package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// sender posts events over its own keep-alive client and keeps which ones
// were acknowledged with a 202, per page.
type sender struct {
	base   string
	client *http.Client
	mu     sync.Mutex
	acked  map[string][]string // page → visitors answered 202
	sent   map[string]int      // page → events sent
	// onStatus, if set, sees every answer.
	onStatus func(*http.Response)
}

func newSender(base string) *sender {
	return &sender{base: base, client: &http.Client{Timeout: 5 * time.Second},
		acked: map[string][]string{}, sent: map[string]int{}}
}

// send posts one event and reports whether it was acknowledged; an error
// (the server is gone) is not.
func (s *sender) send(visitor, page string) bool {
	body, _ := json.Marshal(map[string]string{"visitor_id": visitor, "url": page})
	s.mu.Lock()
	s.sent[page]++
	s.mu.Unlock()
	resp, err := s.client.Post(s.base+"/api/v1/events", "application/json", strings.NewReader(string(body)))
	if err != nil {
		return false
	}
	resp.Body.Close()
	if s.onStatus != nil {
		s.onStatus(resp)
	}
	if resp.StatusCode != http.StatusAccepted {
		return false
	}
	s.mu.Lock()
	s.acked[page] = append(s.acked[page], visitor)
	s.mu.Unlock()
	return true
}

// load sends events of new visitors on pages from writers goroutines until
// stop is closed or the server stops answering.
func (s *sender) load(writers int, pages []string, prefix string, stop <-chan struct{}) {
	s.run(writers, pages, prefix, stop, true)
}

// loadThrough is load that goes on through failed answers, until stop.
func (s *sender) loadThrough(writers int, pages []string, prefix string, stop <-chan struct{}) {
	s.run(writers, pages, prefix, stop, false)
}

func (s *sender) run(writers int, pages []string, prefix string, stop <-chan struct{}, stopOnFailure bool) {
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if !s.send(fmt.Sprintf("%s-%d-%d", prefix, w, i), pages[i%len(pages)]) && i > 0 && stopOnFailure {
					return
				}
			}
		})
	}
	wg.Wait()
}

// checkAcked checks against a restarted tracker that every acknowledged
// event is counted: each page counts at least its acknowledged visitors and
// at most the events sent to it, and sending the acknowledged ones again
// changes no count (a lost one would be counted anew).
//
// s holds the acknowledged events that must survive; every sender's events
// count in the bound.
func checkAcked(t *testing.T, in *instance, s *sender, senders ...*sender) {
	t.Helper()
	before := map[string]int64{}
	for page, acked := range s.acked {
		_, n := in.visitors(t, page)
		sent := 0
		for _, o := range append(senders, s) {
			sent += o.sent[page]
		}
		if n < int64(len(acked)) || n > int64(sent) {
			t.Errorf("%s: %d visitors after the restart; %d were acknowledged, %d sent", page, n, len(acked), sent)
		}
		before[page] = n
	}
	for page, acked := range s.acked {
		for _, v := range acked {
			if status := in.post(t, v, page); status != http.StatusAccepted {
				t.Fatalf("posting again: %d", status)
			}
		}
		if _, n := in.visitors(t, page); n != before[page] {
			t.Errorf("%s: sending the acknowledged visitors again took the count from %d to %d: %d were lost",
				page, before[page], n, n-before[page])
		}
	}
}

var durablePages = []string{"https://shop.example.com/", "https://shop.example.com/cart", "https://blog.example.com/post"}

// TestKillUnderLoadFsyncAlways kills a real tracker process with SIGKILL
// while events pour in: after a restart, every event that got a 202 is
// counted.
func TestKillUnderLoadFsyncAlways(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := startMain(t, "-data-dir", dir, "-fsync", "always", "-snapshot-interval", "200ms")
	s := newSender(c.base)
	stop := make(chan struct{})
	loaded := make(chan struct{})
	go func() { s.load(8, durablePages, "v", stop); close(loaded) }()
	time.Sleep(700 * time.Millisecond) // a few snapshots happen meanwhile
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
	close(stop)
	<-loaded
	total := 0
	for _, a := range s.acked {
		total += len(a)
	}
	if total < 100 {
		t.Fatalf("only %d events acknowledged before the kill; the test proves little", total)
	}
	t.Logf("%d events acknowledged before SIGKILL", total)

	checkAcked(t, start(t, nil, "-data-dir", dir), s)
}

// TestKillFsyncInterval: with -fsync=interval, events acknowledged more than
// an interval before a SIGKILL are counted after the restart; only the last
// interval's may be missing.
func TestKillFsyncInterval(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := startMain(t, "-data-dir", dir, "-fsync", "interval", "-fsync-interval", "50ms")
	early := newSender(c.base)
	for i := range 300 {
		early.send(fmt.Sprintf("early-%d", i), durablePages[i%len(durablePages)])
	}
	time.Sleep(300 * time.Millisecond) // several intervals
	late := newSender(c.base)
	lateStop := make(chan struct{})
	loaded := make(chan struct{})
	go func() { late.load(4, durablePages, "late", lateStop); close(loaded) }()
	time.Sleep(100 * time.Millisecond)
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
	close(lateStop)
	<-loaded

	checkAcked(t, start(t, nil, "-data-dir", dir), early, late)
}

// TestRestartKeepsCounts: a graceful stop writes a snapshot, and the next
// start reads the same counts, through the real run.
func TestRestartKeepsCounts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := start(t, nil, "-data-dir", dir)
	for i := range 50 {
		if status := in.post(t, fmt.Sprintf("visitor-%d", i%20), durablePages[i%2]); status != http.StatusAccepted {
			t.Fatalf("post: %d", status)
		}
	}
	want := map[string]int64{}
	for _, p := range durablePages {
		_, want[p] = in.visitors(t, p)
	}
	in.stop()
	<-in.done
	if in.err != nil {
		t.Fatalf("run: %v", in.err)
	}
	if len(in.logs.matching("snapshot written")) == 0 {
		t.Errorf("no snapshot on shutdown; logs:\n%s", in.logs)
	}

	again := start(t, nil, "-data-dir", dir)
	for _, p := range durablePages {
		if _, n := again.visitors(t, p); n != want[p] {
			t.Errorf("%s: %d visitors after the restart, want %d", p, n, want[p])
		}
	}
	if line := again.logs.matching("recovered"); len(line) != 1 || line[0]["visitors"].(float64) != 20 {
		t.Errorf("recovered lines %v, want one with 20 visitors", line)
	}
}

// TestRestartDropsDaysPastRetention: the days a restart brings back from
// disk that a shorter -retention no longer keeps go at once, not an hour
// later, and their page's all-time count stays.
func TestRestartDropsDaysPastRetention(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := start(t, nil, "-data-dir", dir, "-retention", "30")
	page := durablePages[0]
	for i, days := range []int{10, 9, 0} {
		body := fmt.Sprintf(`{"visitor_id":"v%d","url":%q,"time":%q}`, i, page, time.Now().AddDate(0, 0, -days).UTC().Format(time.RFC3339))
		if status, _, resp := in.do(t, "POST", "/api/v1/events", "application/json", body); status != http.StatusAccepted {
			t.Fatalf("post %s: %d %s", body, status, resp)
		}
	}
	in.stop()
	<-in.done

	again := start(t, nil, "-data-dir", dir, "-retention", "5")
	select {
	case line := <-again.logs.waitFor("days past the retention dropped"):
		if line["days"].(float64) != 2 {
			t.Errorf("dropped %v days at start, want 2 (10 and 9 days ago); logs:\n%s", line["days"], again.logs)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no days dropped at start; logs:\n%s", again.logs)
	}
	if _, n := again.visitors(t, page); n != 3 {
		t.Errorf("%d visitors all-time after the restart, want 3", n)
	}
}

// TestCorruptDataStopsStart: a data directory that cannot be read stops
// the start with an error naming the file, rather than start empty.
func TestCorruptDataStopsStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := start(t, nil, "-data-dir", dir)
	in.post(t, "v1", durablePages[0])
	in.stop()
	<-in.done
	snap := dir + "/snapshot"
	b, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(snap, b, 0o644); err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), []string{"-addr", "127.0.0.1:0", "-data-dir", dir}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), snap) || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("run = %v, want an error naming the corrupt %s", err, snap)
	}
}

// TestReadmeDurability runs the README's durability walkthrough line by
// line: the tracker started as printed (on a free port, in a new
// directory), the events sent, the process killed with SIGKILL, started
// again, and the count compared with the one printed.
func TestReadmeDurability(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var c *child
	client := &http.Client{Timeout: 10 * time.Second}
	lines := readmeBlock(t, "## Durability")
	curls := 0
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case l == "$ make build": // the test binary is the tracker
		case strings.HasPrefix(l, "$ bin/tracker ") && strings.HasSuffix(l, " &"):
			args := strings.Fields(strings.TrimSuffix(strings.TrimPrefix(l, "$ bin/tracker "), " &"))
			c = startMainIn(t, dir, args...)
		case l == "$ kill -9 %1":
			if err := c.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = c.cmd.Wait()
		case strings.HasPrefix(l, "$ curl "):
			ex := readmeExamples(lines[i:min(i+2, len(lines))])[0]
			ex.check(t, client, map[string]string{"localhost:8080": strings.TrimPrefix(c.base, "http://")})
			curls++
		case strings.HasPrefix(l, "$ "):
			t.Fatalf("the README's walkthrough has a line this test cannot run: %s", l)
		}
	}
	if curls < 3 || c == nil {
		t.Fatalf("the README's durability walkthrough has %d curl lines and no tracker start", curls)
	}
}

// TestShutdownReportsStoreFailure: when the last snapshot cannot be
// written, run says so rather than exit as if all were kept.
func TestShutdownReportsStoreFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir() + "/data"
	ctx, cancel := context.WithCancel(context.Background())
	logs := newLogWatcher()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-log-format", "json", "-data-dir", dir},
			func(string) string { return "" }, io.Discard, logs)
	}()
	select {
	case <-logs.waitFor("listening"):
	case err := <-done:
		t.Fatalf("run returned before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no listening line")
	}
	if err := os.RemoveAll(dir); err != nil { // the disk is gone
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "snapshot") {
		t.Errorf("run = %v, want the failed snapshot reported", err)
	}
}

// TestRangesSurviveKill: range answers (a range, a daily series in a zone,
// a ranking) read before a SIGKILL of the real process are the same after
// the restart, with events both in a snapshot and only in the log.
func TestRangesSurviveKill(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := startMain(t, "-data-dir", dir, "-fsync", "always", "-snapshot-interval", "200ms")
	client := &http.Client{Timeout: 10 * time.Second}
	day := time.Now().UTC().AddDate(0, 0, -6).Truncate(24 * time.Hour)
	post := func(i int) {
		at := day.Add(time.Duration((i+i/30)%6)*24*time.Hour + time.Duration(i%24)*time.Hour + 30*time.Minute)
		body := fmt.Sprintf(`{"visitor_id":"v%d","url":%q,"time":%q}`, i%30, durablePages[i%2], at.Format(time.RFC3339))
		resp, err := client.Post(c.base+"/api/v1/events", "application/json", strings.NewReader(body))
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("post %s: %v %v", body, resp, err)
		}
		resp.Body.Close()
	}
	for i := range 120 {
		post(i)
	}
	time.Sleep(500 * time.Millisecond) // a snapshot holds these
	for i := 120; i < 200; i++ {
		post(i) // these are in the log alone
	}
	from, to := day.Format(time.DateOnly), day.AddDate(0, 0, 5).Format(time.DateOnly)
	paths := []string{
		"/api/v1/visitors?url=" + url.QueryEscape(durablePages[0]) + "&from=" + from + "&to=" + to,
		"/api/v1/visitors/daily?url=" + url.QueryEscape(durablePages[1]) + "&from=" + from + "&to=" + to + "&tz=Asia/Kolkata",
		"/api/v1/pages?from=" + from + "&to=" + to + "&tz=America/New_York",
	}
	get := func(base, path string) string {
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	var before []string
	for _, p := range paths {
		before = append(before, get(c.base, p))
	}
	if !strings.Contains(before[0], `"visitors":15,`) {
		t.Errorf("range before the kill: %s, want 15 visitors", before[0])
	}
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
	again := start(t, nil, "-data-dir", dir)
	for i, p := range paths {
		if got := get(again.base, p); got != before[i] {
			t.Errorf("GET %s after SIGKILL:\n got  %s\n before %s", p, got, before[i])
		}
	}
}
