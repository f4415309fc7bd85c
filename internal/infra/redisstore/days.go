package redisstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/webtracker/tracker/internal/domain"
)

// The time dimension: the keys of a page's UTC days, how a view goes into
// them, and the counts over periods they answer. The package comment has
// the layout.

// Range answers the distinct visitors of page in each period and in all of
// them together (estimates when counting is Approximate); a page never seen
// has 0 everywhere.
//
// In exact counting it runs one script, which reads the members of each
// period's part of each day it touches: Redis serves nothing else
// meanwhile, about a second per 800,000 (visitor, day) pairs read
// (BenchmarkRange), and past Redis's busy-reply-threshold (5s) other clients
// are answered BUSY, so callers cache what they show and pages that big
// count approximately. In approximate counting it is one PFCOUNT per period
// and one for all of them, in one pipeline, a few milliseconds.
func (s *Store) Range(ctx context.Context, page domain.PageURL, periods []domain.Period) (domain.RangeCount, error) {
	if page.IsZero() {
		return domain.RangeCount{}, fmt.Errorf("redisstore: count the visitors of a zero page: %w", domain.ErrInvalid)
	}
	out := domain.RangeCount{Total: s.count(0), Each: make([]domain.Count, len(periods))}
	for i := range out.Each {
		out.Each[i] = s.count(0)
	}
	if s.opts.Counting == Approximate {
		return out, s.rangeApprox(ctx, page, periods, &out)
	}
	keys, args := s.rangeArgs(page.String(), periods)
	if len(keys) == 0 {
		return out, nil // no period covers a quarter
	}
	var counts []int64
	err := s.query(ctx, "counting a range", func(ctx context.Context) error {
		var err error
		counts, err = s.rangeScript.RunRO(ctx, s.client, keys, args...).Int64Slice()
		return err
	})
	if err != nil {
		return domain.RangeCount{}, err
	}
	if len(counts) != len(periods)+1 {
		return domain.RangeCount{}, fmt.Errorf("redisstore: the range script answered %d counts for %d periods", len(counts), len(periods))
	}
	for i := range periods {
		out.Each[i] = s.count(counts[i])
	}
	out.Total = s.count(counts[len(periods)])
	return out, nil
}

// rangeScript is the source of the script that counts the distinct
// visitors of periods of one page, exactly. KEYS are the first and last
// sorted sets of each UTC day the periods touch, two by two; ARGV is the number of periods, then for each its number of
// spans, then for each span the number of its day in KEYS (1 for the first
// pair) and its quarters From and To. It answers the count of each period,
// then that of all of them together.
//
// A span's visitors are those of domain.Seen.In: whole day, every member;
// from quarter f on, those last seen at f or later; up to t, those first
// seen before t; otherwise both. A period of one span is counted without
// reading its members.
const rangeScript = `#!lua flags=no-writes
local whole = 96 -- domain.QuartersPerDay
local function members(d, from, to)
  local first, last = KEYS[2*d-1], KEYS[2*d]
  if from == 0 and to == whole then
    return redis.call('ZRANGE', last, 0, -1)
  elseif to == whole then
    return redis.call('ZRANGE', last, from, '+inf', 'BYSCORE')
  elseif from == 0 then
    return redis.call('ZRANGE', first, '-inf', '(' .. to, 'BYSCORE')
  end
  local before, out = {}, {}
  for _, m in ipairs(redis.call('ZRANGE', first, '-inf', '(' .. to, 'BYSCORE')) do
    before[m] = true
  end
  for _, m in ipairs(redis.call('ZRANGE', last, from, '+inf', 'BYSCORE')) do
    if before[m] then out[#out+1] = m end
  end
  return out
end
local function count(d, from, to)
  local first, last = KEYS[2*d-1], KEYS[2*d]
  if from == 0 and to == whole then
    return redis.call('ZCARD', last)
  elseif to == whole then
    return redis.call('ZCOUNT', last, from, '+inf')
  elseif from == 0 then
    return redis.call('ZCOUNT', first, '-inf', '(' .. to)
  end
  return #members(d, from, to)
end

local i, periods = 2, tonumber(ARGV[1])
-- seen[m] is the last period that counted m: one table tells both whether
-- m counts again for this period and whether it is new to the total.
local counts, seen, total = {}, {}, 0
for p = 1, periods do
  local spans = tonumber(ARGV[i])
  i = i + 1
  if periods == 1 and spans == 1 then
    counts[p] = count(tonumber(ARGV[i]), tonumber(ARGV[i+1]), tonumber(ARGV[i+2]))
    total = counts[p]
  else
    local n = 0
    for _ = 1, spans do
      for _, m in ipairs(members(tonumber(ARGV[i]), tonumber(ARGV[i+1]), tonumber(ARGV[i+2]))) do
        local last = seen[m]
        if last ~= p then
          if not last then total = total + 1 end
          seen[m], n = p, n + 1
        end
      end
      i = i + 3
    end
    counts[p] = n
  end
end
counts[periods+1] = total
return counts
`

// rangeArgs returns the KEYS and ARGV of rangeScript for periods of page.
// It has no keys when no period covers a quarter.
func (s *Store) rangeArgs(url string, periods []domain.Period) (keys []string, args []any) {
	days := map[domain.Day]int{} // the number of each day's pair in keys
	args = append(args, len(periods))
	for _, p := range periods {
		at := len(args)
		args = append(args, 0)
		for sp := range p.Spans() {
			d, ok := days[sp.Day]
			if !ok {
				base := s.dayBase(url, sp.Day)
				keys = append(keys, base+":first", base+":last")
				d = len(keys) / 2
				days[sp.Day] = d
			}
			args = append(args, d, sp.From, sp.To)
			args[at] = args[at].(int) + 1
		}
	}
	return keys, args
}

// rangeApprox answers Range in approximate counting into out.
func (s *Store) rangeApprox(ctx context.Context, page domain.PageURL, periods []domain.Period, out *domain.RangeCount) error {
	each := make([][]string, len(periods))
	for i, p := range periods {
		each[i] = s.hllKeys(page.String(), p)
	}
	// All periods together are counted over the keys of their union, not
	// over all of their keys, which for the days of a zone other than UTC
	// would be many more: the union of every day is one period.
	var all []string
	for _, p := range union(periods) {
		all = append(all, s.hllKeys(page.String(), p)...)
	}
	if len(all) == 0 {
		return nil
	}
	cmds := make([]*redis.IntCmd, len(periods))
	var total *redis.IntCmd
	err := s.query(ctx, "counting a range", func(ctx context.Context) error {
		pipe := s.client.Pipeline()
		for i, keys := range each {
			if len(keys) > 0 {
				cmds[i] = pipe.PFCount(ctx, keys...)
			}
		}
		if len(periods) > 1 {
			total = pipe.PFCount(ctx, all...)
		}
		_, err := pipe.Exec(ctx)
		return err
	})
	if err != nil {
		return err
	}
	for i, cmd := range cmds {
		if cmd != nil {
			out.Each[i] = s.count(cmd.Val())
		}
	}
	if total != nil {
		out.Total = s.count(total.Val())
	} else {
		out.Total = out.Each[0]
	}
	return nil
}

// union returns the periods that cover the quarters of periods, in order,
// none touching another.
func union(periods []domain.Period) []domain.Period {
	var out []domain.Period
	for _, p := range periods {
		if p.From < p.To {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b domain.Period) int { return cmp.Compare(a.From, b.From) })
	n := 0
	for _, p := range out {
		if n > 0 && p.From <= out[n-1].To {
			out[n-1].To = max(out[n-1].To, p.To)
			continue
		}
		out[n] = p
		n++
	}
	return out[:n]
}

// hllKeys returns the fewest day, hour and quarter HyperLogLogs of page
// whose union is its visitors in p: the day's key for a whole UTC day, the
// hours' keys for whole hours, the quarters' keys for the rest.
func (s *Store) hllKeys(url string, p domain.Period) []string {
	const perHour = domain.QuartersPerDay / 24
	var keys []string
	for sp := range p.Spans() {
		base := s.dayBase(url, sp.Day)
		if sp.Whole() {
			keys = append(keys, base)
			continue
		}
		for q := sp.From; q < sp.To; {
			if q%perHour == 0 && q+perHour <= sp.To {
				keys = append(keys, hourKey(base, q/perHour))
				q += perHour
				continue
			}
			keys = append(keys, quarterKey(base, q))
			q++
		}
	}
	return keys
}

// PagesIn lists every page with visitors in p, and their distinct visitors
// in p (estimates when counting is Approximate), in no particular order.
// It scans the day keys of the prefix (on every master of a Cluster) for
// the pages with keys on the days p touches, then counts each as Range
// does, a pipeline of counts per batch of pages. It costs a pass over the
// keyspace and a count per page: callers cache it.
func (s *Store) PagesIn(ctx context.Context, p domain.Period) ([]domain.PageCount, error) {
	days := map[string]bool{}
	var dates []string
	for sp := range p.Spans() {
		days[sp.Day.String()] = true
		dates = append(dates, sp.Day.String())
	}
	if len(dates) == 0 {
		return nil, nil
	}
	var out []domain.PageCount
	err := s.query(ctx, "listing the pages of a period", func(ctx context.Context) error {
		if s.opts.Counting == Exact {
			// Once for the pipelines of counts below, which cannot fall
			// back to EVAL one by one.
			if err := s.rangeScript.Load(ctx, s.client).Err(); err != nil {
				return err
			}
		}
		var (
			mu    sync.Mutex
			pages = map[string]bool{} // SCAN may give a key twice
		)
		scan := func(ctx context.Context, c redis.UniversalClient) error {
			var batch []string
			iter := c.Scan(ctx, 0, s.dayPattern(dates[0], dates[len(dates)-1]), 1000).Iterator()
			for iter.Next(ctx) {
				url, ok := s.pageOfDayKey(iter.Val(), days)
				if !ok {
					continue
				}
				mu.Lock()
				isNew := !pages[url]
				pages[url] = true
				mu.Unlock()
				if !isNew {
					continue
				}
				if batch = append(batch, url); len(batch) == 500 {
					if err := s.countPages(ctx, batch, p, &mu, &out); err != nil {
						return err
					}
					batch = batch[:0]
				}
			}
			if err := iter.Err(); err != nil {
				return err
			}
			return s.countPages(ctx, batch, p, &mu, &out)
		}
		if cc, ok := s.client.(*redis.ClusterClient); ok {
			return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
		}
		return scan(ctx, s.client)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// countPages counts the visitors of pages in p, in one pipeline through the
// store's client (which finds each page's node on a Cluster), and appends
// those with any to out, under mu.
func (s *Store) countPages(ctx context.Context, pages []string, p domain.Period, mu *sync.Mutex, out *[]domain.PageCount) error {
	if len(pages) == 0 {
		return nil
	}
	pipe := s.client.Pipeline()
	type counted interface{ Err() error }
	cmds := make([]counted, len(pages))
	for i, url := range pages {
		if s.opts.Counting == Approximate {
			cmds[i] = pipe.PFCount(ctx, s.hllKeys(url, p)...)
		} else {
			keys, args := s.rangeArgs(url, []domain.Period{p})
			cmds[i] = s.rangeScript.EvalShaRO(ctx, pipe, keys, args...)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	for i, url := range pages {
		var n int64
		switch cmd := cmds[i].(type) {
		case *redis.IntCmd:
			n = cmd.Val()
		case *redis.Cmd:
			counts, err := cmd.Int64Slice()
			if err != nil || len(counts) != 2 {
				return fmt.Errorf("the range script answered %v, %v", counts, err)
			}
			n = counts[0]
		}
		if n > 0 {
			*out = append(*out, domain.PageCount{URL: url, Count: s.count(n)})
		}
	}
	return nil
}

// dayPattern is the SCAN pattern of the keys pageOfDayKey takes, one per
// page and day, from the date first to last: their dates share a
// beginning, often the month. A URL has no brace, so "*}" ends at its end.
func (s *Store) dayPattern(first, last string) string {
	n := 0
	for n < len(first) && n < len(last) && first[n] == last[n] {
		n++
	}
	suffix := ":last"
	if s.opts.Counting == Approximate {
		suffix = "" // the whole day's HyperLogLog
	}
	return escapeGlob(s.dayKeyPrefix()+"{") + "*}:" + escapeGlob(first[:n]) + strings.Repeat("?", len(first)-n) + suffix
}

// pageOfDayKey returns the page URL of a day key that PagesIn scanned,
// for one key per page and day (the last set, or the day's HyperLogLog) of
// one of days.
func (s *Store) pageOfDayKey(key string, days map[string]bool) (string, bool) {
	rest, ok := strings.CutPrefix(key, s.dayKeyPrefix()+"{")
	if !ok {
		return "", false
	}
	url, rest, ok := strings.Cut(rest, "}:") // a canonical URL has no brace
	if !ok || len(rest) < len(time.DateOnly) || !days[rest[:len(time.DateOnly)]] {
		return "", false
	}
	switch kind := rest[len(time.DateOnly):]; {
	case s.opts.Counting == Approximate && kind == "", s.opts.Counting == Exact && kind == ":last":
		return url, true
	}
	return "", false
}

// dayOf returns what a view of page at q writes to its day, or nothing if
// the day has expired at now.
func (s *Store) dayOf(page domain.PageURL, q domain.Quarter, now time.Time) dayAdd {
	d := q.Day()
	expireAt := s.expireAt(d)
	if !now.Before(expireAt) {
		return dayAdd{}
	}
	add := dayAdd{quarter: q.OfDay(), expireAt: expireAt.Unix()}
	base := s.dayBase(page.String(), d)
	if s.opts.Counting == Approximate {
		add.keys = [3]string{base, hourKey(base, add.quarter/(domain.QuartersPerDay/24)), quarterKey(base, add.quarter)}
	} else {
		add.keys = [3]string{base + ":first", base + ":last"}
	}
	return add
}

// appendDay queues the writes of one view's day and their expiries.
func (s *Store) appendDay(ctx context.Context, pipe redis.Pipeliner, cmds []redis.Cmder, member string, day dayAdd) []redis.Cmder {
	if s.opts.Counting == Approximate {
		for _, k := range day.keys {
			cmds = append(cmds, pipe.PFAdd(ctx, k, member))
		}
	} else {
		z := redis.Z{Score: float64(day.quarter), Member: member}
		cmds = append(cmds, pipe.ZAddLT(ctx, day.keys[0], z), pipe.ZAddGT(ctx, day.keys[1], z))
	}
	for _, k := range day.keys {
		if k != "" {
			// NX: the first view of the day sets it, and the others write
			// nothing, to the append-only file or to replicas.
			cmds = append(cmds, pipe.Do(ctx, "expireat", k, day.expireAt, "nx"))
		}
	}
	return cmds
}

// expireAt is when the keys of day d expire: at the end of the day, plus
// the retention, plus two days.
func (s *Store) expireAt(d domain.Day) time.Time {
	return (d + 1 + domain.Day(s.opts.Retention.Days) + 2).First().Time()
}

// dayKeyPrefix is the part of every day key before the page's hash tag. The
// counting modes have their own, as for the all-time keys.
func (s *Store) dayKeyPrefix() string {
	if s.opts.Counting == Approximate {
		return s.opts.Prefix + "hlldays:"
	}
	return s.opts.Prefix + "days:"
}

// dayBase is the beginning of the keys of the page of canonical URL url on
// day d: of its two sorted sets, or of its HyperLogLogs, where it is the key
// of the whole day's.
func (s *Store) dayBase(url string, d domain.Day) string {
	return s.dayKeyPrefix() + "{" + url + "}:" + d.String()
}

// hourKey is the HyperLogLog of hour h of the day of base.
func hourKey(base string, h int) string { return base + ":h" + twoDigits(h) }

// quarterKey is the HyperLogLog of quarter q of the day of base.
func quarterKey(base string, q int) string { return base + ":q" + twoDigits(q) }

func twoDigits(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}

// query runs fn, reads outside the pipelines, and waits for it no longer
// than ctx: go-redis bounds the wait for a reply by its read timeout, not
// by ctx, which it uses only to get a connection. fn's goroutine ends when
// its last command has returned, a read timeout at most after ctx is done;
// what it writes is read only when query returns nil. While the server is
// known to be unreachable it fails at once, as do does.
func (s *Store) query(ctx context.Context, what string, fn func(context.Context) error) error {
	if err := s.Healthy(); err != nil {
		return fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: redis: %s: %w", domain.ErrUnavailable, what, err)
	}
	done := make(chan error, 1) // buffered, so that fn's goroutine never waits for this one
	go func() { done <- fn(ctx) }()
	select {
	case err := <-done:
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil: // cut short: the cause is ctx, not Redis
		case wrongType(err):
			return fmt.Errorf("redis answered %q %s", err, what) // a 500: a foreign key in our prefix
		default:
			s.lost(err)
			return fmt.Errorf("%w: redis: %s: %v", domain.ErrUnavailable, what, err)
		}
	case <-ctx.Done():
	}
	return fmt.Errorf("%w: redis: %s: %w", domain.ErrUnavailable, what, ctx.Err())
}
