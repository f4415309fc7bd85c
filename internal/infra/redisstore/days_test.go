package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/infra/memstore"
	"github.com/webtracker/tracker/internal/infra/redisstore"
	"github.com/webtracker/tracker/internal/infra/redisstore/redistest"
	"github.com/webtracker/tracker/internal/infra/storetest"
)

func utcDay(n int) time.Time { return time.Date(2026, 11, n, 0, 0, 0, 0, time.UTC) }

// zoneDays returns the periods of the days from from to to (of November
// 2026) in zone tz, one a day.
func zoneDays(t *testing.T, from, to int, tz string) []domain.Period {
	t.Helper()
	zone, err := time.LoadLocation(tz)
	if err != nil {
		t.Fatal(err)
	}
	var out []domain.Period
	for d := from; d <= to; d++ {
		start := time.Date(2026, 11, d, 0, 0, 0, 0, zone)
		out = append(out, domain.Period{From: domain.QuarterOf(start), To: domain.QuarterOf(start.AddDate(0, 0, 1))})
	}
	return out
}

func record(t *testing.T, s interface {
	Record(context.Context, domain.PageView) error
}, visitor, page string, at time.Time) {
	t.Helper()
	if err := s.Record(context.Background(), storetest.ViewAt(t, visitor, page, at)); err != nil {
		t.Fatal(err)
	}
}

// TestDayKeysAndScores checks the layout the package comment documents:
// per page and UTC day, in exact counting, two sorted sets of 8-byte
// hashes scored with the first and the last quarter of the day; in
// approximate counting a HyperLogLog of the day, of the hour and of the
// quarter. The page's URL is the hash tag of each.
func TestDayKeysAndScores(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	at := func(hhmm string) time.Time {
		tm, err := time.Parse(time.DateTime, "2026-11-12 "+hhmm+":00")
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	const raw = "HTTPS://Example.com:443/a"
	v := storetest.View(t, "alice", raw)
	member := string(binaryLE(v.Visitor.Hash()))

	exact := open(t, srv, redisstore.Exact)
	for _, hhmm := range []string{"12:00", "09:15", "17:45", "10:00"} {
		record(t, exact, "alice", raw, at(hhmm))
	}
	base := strings.ReplaceAll(t.Name(), "/", ":") + ":days:{https://example.com/a}:2026-11-12"
	for _, tc := range []struct {
		key   string
		score string
	}{{base + ":first", "37"}, {base + ":last", "71"}} { // 09:15 is quarter 37, 17:45 quarter 71
		if typ, err := srv.Do("TYPE", tc.key); err != nil || typ != "+zset" {
			t.Errorf("TYPE %s = %q, %v; want a sorted set", tc.key, typ, err)
		}
		if score, err := srv.Do("ZSCORE", tc.key, member); err != nil || score != tc.score {
			t.Errorf("ZSCORE %s of the 8-byte hash = %q, %v; want %s", tc.key, score, err, tc.score)
		}
	}

	approx := open(t, srv, redisstore.Approximate)
	record(t, approx, "alice", raw, at("09:15"))
	hll := strings.ReplaceAll(t.Name(), "/", ":") + ":hlldays:{https://example.com/a}:2026-11-12"
	for _, key := range []string{hll, hll + ":h09", hll + ":q37"} {
		if v, err := srv.Do("GET", key); err != nil || !strings.HasPrefix(v, "HYLL") {
			t.Errorf("GET %s: %d bytes, %v; want a HyperLogLog", key, len(v), err)
		}
	}
	for _, key := range []string{base + ":first", hll + ":q37"} {
		// Redis hashes what is between the first { and the next }.
		if _, rest, _ := strings.Cut(key, "{"); !strings.HasPrefix(rest, "https://example.com/a}") {
			t.Errorf("%s: the hash tag is not the page's URL", key)
		}
	}
	if _, err := exact.Range(ctx, v.Page, []domain.Period{{From: domain.QuarterOf(at("09:00")), To: domain.QuarterOf(at("09:15"))}}); err != nil {
		t.Fatal(err)
	}
}

func binaryLE(h uint64) []byte {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(h >> (8 * i))
	}
	return b
}

// TestCanonicalURLsHaveNoBraces: the day keys put a page's URL in a hash
// tag, which is only the whole URL if no canonical URL holds a brace.
func TestCanonicalURLsHaveNoBraces(t *testing.T) {
	t.Parallel()
	for _, raw := range braceURLs {
		for _, p := range []domain.URLPolicy{{}, {StripQuery: true, FoldTrailingSlash: true}} {
			if u, err := p.Canonical(raw); err == nil && strings.ContainsAny(u.String(), "{}") {
				t.Errorf("Canonical(%q) = %q, with a brace", raw, u)
			}
		}
	}
}

// braceURLs put braces in every part of a URL, raw and escaped, on the
// fast path of Canonical and off it.
var braceURLs = []string{
	"https://example.com/{a}", "https://example.com/%7Ba%7D", "https://example.com/%7ba%7d",
	"https://example.com/a?{b}={c}", "https://example.com/a?b=%7B%7D", "https://example.com/a?b={&utm_source=x",
	"https://example.com/a#{frag}", "https://ex{am}ple.com/", "https://example.com:4{4}3/", "http://[::1{}]/",
	"http://[::1]/{}", "https://EXAMPLE.com/./{a}/../b}", "https://example.com/}", "https://example.com/?}",
	"https://{}/", "https://example.com/%7B", "https://example.com/a/{/", "https://example.com/{?a=1",
}

// FuzzCanonicalHasNoBraces: no canonical URL holds a brace, whatever the
// input.
func FuzzCanonicalHasNoBraces(f *testing.F) {
	for _, raw := range braceURLs {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if u, err := domain.ParsePageURL(raw); err == nil && strings.ContainsAny(u.String(), "{}") {
			t.Errorf("Canonical(%q) = %q, with a brace", raw, u)
		}
	})
}

// TestRetention: a day's keys expire at the end of the day, plus the
// retention, plus two days, so that Redis forgets old days by itself; a view
// of a day that has expired already counts for the all-time figures only,
// and the all-time keys never expire.
func TestRetention(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ret := domain.Retention{Days: 30}
	for _, mode := range []struct {
		name     string
		counting redisstore.Counting
		suffixes []string // of the day keys of a view at 00:00
		kind     string
	}{
		{"exact", redisstore.Exact, []string{":first", ":last"}, "days"},
		{"approximate", redisstore.Approximate, []string{"", ":h00", ":q00"}, "hlldays"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			s := openWith(t, srv, redisstore.Options{Counting: mode.counting, Retention: ret})
			prefix := strings.ReplaceAll(t.Name(), "/", ":") + ":"
			now := time.Now()
			today, keepFrom := domain.DayOf(now), ret.KeepFrom(now)
			page := storetest.Page(t, "https://example.com/r")
			dayKeys := func(d domain.Day) []string {
				var keys []string
				for _, suffix := range mode.suffixes {
					keys = append(keys, prefix+mode.kind+":{"+page.String()+"}:"+d.String()+suffix)
				}
				return keys
			}
			for _, tc := range []struct {
				name string
				day  domain.Day
				kept bool
			}{
				{"today", today, true},
				{"the first day retention keeps", keepFrom, true},
				{"a day later than retention keeps", keepFrom - 1, true}, // the slack of a day
				{"a day past the slack", keepFrom - 2, false},
			} {
				record(t, s, "v-"+tc.name, page.String(), tc.day.First().Time())
				for _, key := range dayKeys(tc.day) {
					at, err := srv.Int("EXPIRETIME", key)
					want := (tc.day + 1 + domain.Day(ret.Days) + 2).First().Time().Unix()
					if !tc.kept {
						want = -2 // no such key
					}
					if err != nil || at != want {
						t.Errorf("%s: EXPIRETIME %s = %d, %v; want %d", tc.name, key, at, err, want)
					}
				}
			}
			if at, err := srv.Int("EXPIRETIME", s.Key(page)); err != nil || at != -1 {
				t.Errorf("EXPIRETIME of the all-time key = %d, %v; want -1, none", at, err)
			}
			if c, err := s.Visitors(context.Background(), page); err != nil || c.Visitors != 4 {
				t.Errorf("all-time: %+v, %v; want 4 visitors, the expired day's among them", c, err)
			}
		})
	}
}

// TestOneRoundTripPerView: a view with a time goes out as one pipeline with
// its all-time write, its day's writes and their expiries.
func TestOneRoundTripPerView(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	for _, mode := range []struct {
		name     string
		counting redisstore.Counting
		want     string
	}{
		{"exact", redisstore.Exact, "sadd zadd zadd expireat expireat"},
		{"approximate", redisstore.Approximate, "pfadd pfadd pfadd pfadd expireat expireat expireat"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			s := open(t, srv, mode.counting)
			h := &pipelines{}
			redisstore.AddHook(s, h)
			record(t, s, "v", "https://example.com/rt", time.Now())
			var ours []string
			for _, p := range h.seen() {
				if strings.Contains(p, "add") {
					ours = append(ours, p)
				}
			}
			if len(ours) != 1 || ours[0] != mode.want {
				t.Errorf("pipelines with writes: %q, want one: %q", ours, mode.want)
			}
		})
	}
}

// pipelines is a go-redis hook that notes the commands of every pipeline.
type pipelines struct {
	mu  sync.Mutex
	all []string
}

func (p *pipelines) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (p *pipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (p *pipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		names := make([]string, len(cmds))
		for i, c := range cmds {
			names[i] = strings.ToLower(c.Name())
		}
		p.mu.Lock()
		p.all = append(p.all, strings.Join(names, " "))
		p.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (p *pipelines) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.all)
}

// TestInstancesAgreeWithMemory: two stores on one server, each given half
// of the views, answer every range and ranking alike, and as the memory
// store does with all the views: the day keys are the server's, not an
// instance's, and the script counts as domain.Seen.In does, periods of odd
// quarters included.
func TestInstancesAgreeWithMemory(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	prefix := strings.ReplaceAll(t.Name(), "/", ":") + ":"
	opts := redisstore.Options{Prefix: prefix, Retention: domain.Retention{Days: 3660}}
	a, b := openWith(t, srv, opts), openWith(t, srv, opts)
	mem := memstore.New()
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(3, 4))
	pages := []string{"https://example.com/", "https://example.com/b", "https://example.com/c?x=1"}
	for i := range 1500 {
		v := storetest.ViewAt(t, "v"+strconv.Itoa(rnd.IntN(150)), pages[rnd.IntN(len(pages))],
			utcDay(3).Add(time.Duration(rnd.Int64N(int64(9*24*time.Hour)))))
		for _, s := range []interface {
			Record(context.Context, domain.PageView) error
		}{[]*redisstore.Store{a, b}[i%2], mem} {
			if err := s.Record(ctx, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	var cases [][]domain.Period
	for _, tz := range []string{"UTC", "Asia/Kathmandu", "America/St_Johns", "Pacific/Kiritimati"} {
		cases = append(cases, zoneDays(t, 2, 13, tz))
	}
	for range 40 { // odd periods: any quarters, some within a day, some over days
		from := domain.QuarterOf(utcDay(2)) + domain.Quarter(rnd.IntN(11*domain.QuartersPerDay))
		var ps []domain.Period
		for range 1 + rnd.IntN(3) {
			ps = append(ps, domain.Period{From: from, To: from + domain.Quarter(1+rnd.IntN(3*domain.QuartersPerDay))})
			from += domain.Quarter(rnd.IntN(2 * domain.QuartersPerDay))
		}
		cases = append(cases, ps)
	}
	for _, periods := range cases {
		for _, page := range pages {
			want, err := mem.Range(ctx, storetest.Page(t, page), periods)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range []*redisstore.Store{a, b} {
				got, err := s.Range(ctx, storetest.Page(t, page), periods)
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("instance %d, %s over %v: %+v, want %+v", i, page, periods, got, want)
				}
			}
		}
		for _, p := range periods {
			want, _ := mem.PagesIn(ctx, p)
			for i, s := range []*redisstore.Store{a, b} {
				got, err := s.PagesIn(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				if sorted(got) != sorted(want) {
					t.Errorf("instance %d, PagesIn(%v) = %s, want %s", i, p, sorted(got), sorted(want))
				}
			}
		}
	}
}

func sorted(list []domain.PageCount) string {
	list = slices.Clone(list)
	slices.SortFunc(list, func(a, b domain.PageCount) int { return strings.Compare(a.URL, b.URL) })
	return fmt.Sprint(list)
}

// TestApproximateRanges: with HyperLogLogs, the counts of days in zones
// whose days start on the hour, the half hour and the quarter, of odd
// periods and of their union are within a few standard errors of the
// truth, flagged as estimates, and a visitor seen on several days counts
// once in the total; two instances answer alike.
func TestApproximateRanges(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	prefix := strings.ReplaceAll(t.Name(), "/", ":") + ":"
	opts := redisstore.Options{Prefix: prefix, Counting: redisstore.Approximate, Retention: domain.Retention{Days: 3660}}
	a, b := openWith(t, srv, opts), openWith(t, srv, opts)
	const page, visitors = "https://example.com/big", 4000
	type view struct {
		visitor string
		at      time.Time
	}
	rnd := rand.New(rand.NewPCG(5, 6))
	var views []view
	for v := range visitors { // each on 1 to 4 of 8 days, once or twice a day
		for _, d := range rnd.Perm(8)[:1+rnd.IntN(4)] {
			for range 1 + rnd.IntN(2) {
				views = append(views, view{fmt.Sprintf("v%d", v), utcDay(2 + d).Add(time.Duration(rnd.Int64N(int64(24 * time.Hour))))})
			}
		}
	}
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := w; i < len(views); i += 32 {
				s := []*redisstore.Store{a, b}[i%2]
				if err := s.Record(context.Background(), storetest.ViewAt(t, views[i].visitor, page, views[i].at)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	truth := func(p domain.Period) int64 {
		seen := map[string]bool{}
		for _, v := range views {
			if q := domain.QuarterOf(v.at); q >= p.From && q < p.To {
				seen[v.visitor] = true
			}
		}
		return int64(len(seen))
	}
	check := func(what string, c domain.Count, want int64) {
		t.Helper()
		if c.RelativeError != redisstore.HLLRelativeError {
			t.Errorf("%s: %+v, not flagged as an estimate of the HyperLogLog's error", what, c)
		}
		if rel := math.Abs(float64(c.Visitors-want)) / float64(want); rel > 4*redisstore.HLLRelativeError {
			t.Errorf("%s: estimate %d of %d: %.2f%% off, more than 4 standard errors", what, c.Visitors, want, 100*rel)
		}
	}
	odd := func(fromDay, fromQ, toDay, toQ int) domain.Period {
		return domain.Period{From: domain.QuarterOf(utcDay(fromDay)) + domain.Quarter(fromQ), To: domain.QuarterOf(utcDay(toDay)) + domain.Quarter(toQ)}
	}
	cases := map[string][]domain.Period{
		"06:30 on the 3rd to 08:15 on the 5th":          {odd(3, 26, 5, 33)},
		"10:45 to 11:00 on the 4th, one quarter":        {odd(4, 43, 4, 44)},
		"05:15 to 19:30 on the 6th, within a day":       {odd(6, 21, 6, 78)},
		"the 2nd to the 9th, whole days":                {odd(2, 0, 10, 0)},
		"overlapping odd periods":                       {odd(3, 26, 5, 33), odd(4, 1, 7, 90), odd(8, 50, 8, 51)},
		"the 3rd to the 8th in Asia/Kolkata, daily":     zoneDays(t, 3, 8, "Asia/Kolkata"),
		"the 3rd to the 8th in Asia/Kathmandu, daily":   zoneDays(t, 3, 8, "Asia/Kathmandu"),
		"the 3rd to the 8th in America/New_York, daily": zoneDays(t, 3, 8, "America/New_York"),
	}
	for name, periods := range cases {
		got, err := a.Range(context.Background(), storetest.Page(t, page), periods)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Each) != len(periods) {
			t.Fatalf("%s: %d counts for %d periods", name, len(got.Each), len(periods))
		}
		var sum, wantSum int64
		all := map[string]bool{}
		for i, p := range periods {
			check(fmt.Sprintf("%s, period %d", name, i), got.Each[i], truth(p))
			sum, wantSum = sum+got.Each[i].Visitors, wantSum+truth(p)
			for _, v := range views {
				if q := domain.QuarterOf(v.at); q >= p.From && q < p.To {
					all[v.visitor] = true
				}
			}
		}
		check(name+", all together", got.Total, int64(len(all)))
		if len(periods) > 3 && float64(wantSum) < 1.5*float64(len(all)) {
			t.Fatalf("%s: the data has too few visitors on several days to tell a union from a sum", name)
		}
		if other, err := b.Range(context.Background(), storetest.Page(t, page), periods); err != nil || fmt.Sprint(other) != fmt.Sprint(got) {
			t.Errorf("%s: the other instance answers %+v, %v; want %+v", name, other, err, got)
		}
	}
	p := odd(3, 26, 5, 33)
	list, err := a.PagesIn(context.Background(), p)
	if err != nil || len(list) != 1 || list[0].URL != page {
		t.Fatalf("PagesIn = %+v, %v; want the one page", list, err)
	}
	check("PagesIn", list[0].Count, truth(p))
}

// TestApproximateBounds: the estimates keep the semantics of the exact
// counts, which a HyperLogLog of a few visitors answers exactly: a period
// starts and ends on its quarters, whole days, hours or quarters alike,
// and a view without time counts for the all-time figures only.
func TestApproximateBounds(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := open(t, srv, redisstore.Approximate)
	const page = "https://example.com/b"
	start := utcDay(10).Add(6*time.Hour + 30*time.Minute)
	record(t, s, "first", page, start)
	record(t, s, "last", page, start.Add(26*time.Hour-time.Second))
	record(t, s, "before", page, start.Add(-time.Second))
	record(t, s, "after", page, start.Add(26*time.Hour))
	if err := s.Record(context.Background(), storetest.View(t, "timeless", page)); err != nil {
		t.Fatal(err)
	}
	p := domain.Period{From: domain.QuarterOf(start), To: domain.QuarterOf(start.Add(26 * time.Hour))}
	whole := domain.Period{From: domain.QuarterOf(utcDay(10)), To: domain.QuarterOf(utcDay(12))}
	got, err := s.Range(context.Background(), storetest.Page(t, page), []domain.Period{p, whole})
	if err != nil {
		t.Fatal(err)
	}
	if got.Each[0].Visitors != 2 || got.Each[1].Visitors != 4 || got.Total.Visitors != 4 {
		t.Errorf("Range = %+v; want 2 (first, last) from 06:30 on the 10th to 08:30 on the 11th, 4 over both days", got)
	}
}

// TestRangeWhileRedisDown: with Redis gone, Range and PagesIn fail with
// ErrUnavailable, at once once the store knows; once Redis is back, they
// answer again.
func TestRangeWhileRedisDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	exact, approx := open(t, srv, redisstore.Exact), open(t, srv, redisstore.Approximate)
	ctx := context.Background()
	const page = "https://example.com/down"
	p := domain.Period{From: domain.QuarterOf(utcDay(3)), To: domain.QuarterOf(utcDay(4))}
	for _, s := range []*redisstore.Store{exact, approx} {
		record(t, s, "before", page, utcDay(3).Add(time.Hour))
	}
	srv.Kill()
	for i, s := range []*redisstore.Store{exact, approx} {
		if _, err := s.Range(ctx, storetest.Page(t, page), []domain.Period{p}); !errors.Is(err, domain.ErrUnavailable) {
			t.Errorf("store %d: Range with Redis down = %v, want ErrUnavailable", i, err)
		}
		if _, err := s.PagesIn(ctx, p); !errors.Is(err, domain.ErrUnavailable) {
			t.Errorf("store %d: PagesIn with Redis down = %v, want ErrUnavailable", i, err)
		}
		waitFor(t, "unhealthy", func() bool { return s.Healthy() != nil })
		begin := time.Now()
		if _, err := s.Range(ctx, storetest.Page(t, page), []domain.Period{p}); !errors.Is(err, domain.ErrUnavailable) || time.Since(begin) > 100*time.Millisecond {
			t.Errorf("store %d: Range once unhealthy = %v after %v, want ErrUnavailable at once", i, err, time.Since(begin))
		}
	}
	srv.Restart()
	for i, s := range []*redisstore.Store{exact, approx} {
		waitFor(t, "healthy again", func() bool { return s.Healthy() == nil })
		got, err := s.Range(ctx, storetest.Page(t, page), []domain.Period{p})
		if err != nil || got.Total.Visitors != 1 {
			t.Errorf("store %d: Range after Redis came back = %+v, %v; want 1", i, got, err)
		}
	}
}

// TestRangeDeadline: a request's deadline bounds its wait for a range,
// though go-redis would wait for a busy server's reply.
func TestRangeDeadline(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, "--enable-debug-command", "yes")
	s := open(t, srv, redisstore.Exact)
	const page = "https://example.com/slow"
	record(t, s, "v", page, utcDay(3))
	busy := make(chan error, 1)
	go func() { _, err := srv.Do("DEBUG", "SLEEP", "1.5"); busy <- err }()
	time.Sleep(200 * time.Millisecond) // for the server to be asleep
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	begin := time.Now()
	p := domain.Period{From: domain.QuarterOf(utcDay(3)), To: domain.QuarterOf(utcDay(4))}
	_, err := s.Range(ctx, storetest.Page(t, page), []domain.Period{p})
	if elapsed := time.Since(begin); !errors.Is(err, domain.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || elapsed > 700*time.Millisecond {
		t.Errorf("Range with a 200ms deadline on a busy server = %v after %v; want ErrUnavailable and the deadline, at once", err, elapsed)
	}
	if err := <-busy; err != nil {
		t.Fatalf("DEBUG SLEEP: %v", err)
	}
}

// TestForeignDayKeyIsNotAnOutage: a day key of another type fails the
// requests of that page and day (a 500), and leaves Redis healthy.
func TestForeignDayKeyIsNotAnOutage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := open(t, srv, redisstore.Exact)
	const page = "https://example.com/taken"
	key := strings.ReplaceAll(t.Name(), "/", ":") + ":days:{" + page + "}:2026-11-03:last"
	if reply, err := srv.Do("SET", key, "not a sorted set"); err != nil || reply != "+OK" {
		t.Fatalf("SET: %q, %v", reply, err)
	}
	err := s.Record(context.Background(), storetest.ViewAt(t, "v", page, utcDay(3)))
	if err == nil || errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("Record on a foreign day key = %v, want an error that is not ErrUnavailable", err)
	}
	p := domain.Period{From: domain.QuarterOf(utcDay(3)), To: domain.QuarterOf(utcDay(4))}
	_, err = s.Range(context.Background(), storetest.Page(t, page), []domain.Period{p})
	if err == nil || errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("Range over a foreign day key = %v, want an error that is not ErrUnavailable", err)
	}
	if err := s.Healthy(); err != nil {
		t.Errorf("Healthy = %v after a foreign day key", err)
	}
}
