package diskstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/infra/memstore"
)

// day0 is the first day of the tests' views.
var day0 = domain.DayOf(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC))

// at returns quarter q of day0+d; q may run past the day.
func at(d, q int) domain.Quarter { return (day0 + domain.Day(d)).First() + domain.Quarter(q) }

// viewAt returns view(p, v) in quarter q.
func viewAt(tb testing.TB, p, v int, q domain.Quarter) domain.PageView {
	tb.Helper()
	pv := view(tb, p, v)
	pv.At = q
	return pv
}

func (s opened) recordAt(tb testing.TB, p, v int, q domain.Quarter) {
	tb.Helper()
	if err := s.Record(context.Background(), viewAt(tb, p, v, q)); err != nil {
		tb.Errorf("Record(page %d, visitor %d, quarter %d): %v", p, v, q, err)
	}
}

// rangePeriods are the periods the tests ask about: whole UTC days, days of
// zones behind and ahead of UTC (parts of two UTC days each), and the two
// ends of one day.
var rangePeriods = []domain.Period{
	{From: at(0, 0), To: at(3, 0)},   // three UTC days
	{From: at(0, 74), To: at(1, 74)}, // a day in Kolkata, UTC+05:30
	{From: at(1, 20), To: at(2, 20)}, // a day in New York, UTC-05:00
	{From: at(1, 0), To: at(1, 8)},   // the first two hours of day 1
	{From: at(1, 80), To: at(2, 0)},  // the last four hours of day 1
}

// ranges returns the range answer of pages 0 to n-1 over rangePeriods, and
// the pages with visitors in each period.
func (s opened) ranges(tb testing.TB, n int) string {
	tb.Helper()
	var out strings.Builder
	for p := range n {
		rc, err := s.Range(context.Background(), view(tb, p, 0).Page, rangePeriods)
		if err != nil {
			tb.Fatal(err)
		}
		fmt.Fprintf(&out, "page %d: %+v\n", p, rc)
	}
	for i, per := range rangePeriods {
		list, err := s.PagesIn(context.Background(), per)
		if err != nil {
			tb.Fatal(err)
		}
		slices.SortFunc(list, func(a, b domain.PageCount) int { return strings.Compare(a.URL, b.URL) })
		fmt.Fprintf(&out, "period %d: %v\n", i, list)
	}
	return out.String()
}

// fillDays records views of 3 pages over 4 days, at quarters spread over
// each day, part of the visitors twice a day; first is the first visitor.
func fillDays(tb testing.TB, s opened, first int) {
	tb.Helper()
	for v := first; v < first+200; v++ {
		for p := range 3 {
			d, q := (v+p)%4, (v*37+p*11)%domain.QuartersPerDay
			s.recordAt(tb, p, v, at(d, q))
			if v%3 == 0 {
				s.recordAt(tb, p, v, at(d, (q+50)%domain.QuartersPerDay))
			}
		}
	}
}

// TestRangesSurviveCrash: the range answers and the pages of each period
// after a crash are the ones before it, whether the days come back from
// the log alone or from a snapshot and the log after it. The visitor
// "late" is seen early on day 1 before the snapshot and late that day
// after it: both ends of its day must come back, each from its own file.
func TestRangesSurviveCrash(t *testing.T) {
	t.Parallel()
	const late = 1000
	for _, snapshot := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshot=%v", snapshot), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := mustOpen(t, dir, SyncAlways)
			fillDays(t, s, 0)
			s.recordAt(t, 0, late, at(1, 2))
			if snapshot {
				if err := s.Snapshot(); err != nil {
					t.Fatal(err)
				}
			}
			fillDays(t, s, 100) // half of them seen before too, on the same days
			s.recordAt(t, 0, late, at(1, 90))
			s.record(t, 0, 2000) // no time: all-time only
			want, wantStats := s.ranges(t, 3), s.mem.Stats()
			if wantStats.Triples == 0 || !strings.Contains(want, "Visitors:") {
				t.Fatalf("nothing to compare: %s", want)
			}
			wantLate := domain.Seen{First: 2, Last: 90}
			if got, _ := seenOf(t, s, 0, late, 1); got != wantLate {
				t.Fatalf("before the crash, visitor late was seen %+v, want %+v", got, wantLate)
			}
			s.crash()

			r := mustOpen(t, dir, SyncAlways)
			defer r.Close()
			if got := r.ranges(t, 3); got != want {
				t.Errorf("after a crash:\n%s\nwant, as before it:\n%s", got, want)
			}
			if st := r.mem.Stats(); st.Triples != wantStats.Triples || st.Pairs != wantStats.Pairs {
				t.Errorf("%d pairs and %d (page, visitor, day) after a crash, want %d and %d",
					st.Pairs, st.Triples, wantStats.Pairs, wantStats.Triples)
			}
			if got, ok := seenOf(t, r, 0, late, 1); got != wantLate || !ok {
				t.Errorf("after the crash, visitor late was seen %+v (%v), want %+v", got, ok, wantLate)
			}
		})
	}
}

// seenOf returns when visitor v of page p was seen on day0+d, as the
// memory of s holds it, and whether it was.
func seenOf(tb testing.TB, s opened, p, v, d int) (domain.Seen, bool) {
	tb.Helper()
	pv := view(tb, p, v)
	var seen domain.Seen
	var found bool
	err := s.mem.EachDay(func(page string, day domain.Day, vs []domain.VisitorID, sn []domain.Seen) error {
		if page != pv.Page.String() || day != day0+domain.Day(d) {
			return nil
		}
		for i, x := range vs {
			if x == pv.Visitor {
				seen, found = sn[i], true
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return seen, found
}

// TestTornTailKeepsDays: a version 2 record cut short at the end of the
// log, of a page and day the log has views of, is cut off, and the views
// before it keep their days and times.
func TestTornTailKeepsDays(t *testing.T) {
	t.Parallel()
	record := appendRecord(nil, view(t, 1, 0).Page.String(), view(t, 1, 999).Visitor.Hash(), at(1, 40))
	for name, tail := range map[string][]byte{
		"cut in the quarter":  record[:recordHeaderSize+8+3],
		"cut in the URL":      record[:len(record)-3],
		"whole, bad checksum": append([]byte{record[0] ^ 1}, record[1:]...),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := mustOpen(t, dir, SyncAlways)
			fillDays(t, s, 0)
			want, wantTriples := s.ranges(t, 3), s.mem.Stats().Triples
			s.crash()
			logFile := onlyLog(t, dir)
			whole := fileSize(t, logFile)
			appendFile(t, logFile, tail)

			r := mustOpen(t, dir, SyncAlways)
			defer r.Close()
			if got := r.ranges(t, 3); got != want {
				t.Errorf("after cutting a torn record:\n%s\nwant:\n%s", got, want)
			}
			if st := r.mem.Stats(); st.Triples != wantTriples {
				t.Errorf("%d (page, visitor, day) after cutting a torn record, want %d", st.Triples, wantTriples)
			}
			if _, ok := seenOf(t, r, 1, 999, 1); ok {
				t.Error("the torn record's visitor is in its day")
			}
			if !strings.Contains(r.logs.String(), "cut short") || fileSize(t, logFile) != whole {
				t.Errorf("the log is %d bytes, want it cut back to %d with a warning; logs:\n%s", fileSize(t, logFile), whole, r.logs)
			}
		})
	}
}

// TestOldFormats: a version 2 snapshot and a version 1 log after it, as
// written before time ranges, are read: their counts are kept and they have
// no days. The events recorded after that go to a version 2 log, which is
// replayed after the version 1 log; a snapshot then holds them all.
func TestOldFormats(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	hash := func(v int) uint64 { return view(t, 0, v).Visitor.Hash() }
	page0, page1 := view(t, 0, 0).Page.String(), view(t, 1, 0).Page.String()
	exact := binary.AppendUvarint(nil, uint64(len(page0)))
	exact = append(exact, page0...)
	exact = append(exact, pageExact)
	exact = binary.AppendUvarint(exact, 2)
	exact = binary.LittleEndian.AppendUint64(exact, hash(1))
	exact = binary.LittleEndian.AppendUint64(exact, hash(2))
	exact = binary.LittleEndian.AppendUint32(exact, crc32.Checksum(exact, crcTable))
	writeFile(t, filepath.Join(dir, snapshotName), snapFile(2, 1, [][]byte{exact}, 1, 2))
	log := appendLogHeaderV1(nil)
	log = appendRecordV1(log, page0, hash(2)) // in the snapshot too
	log = appendRecordV1(log, page0, hash(3))
	log = appendRecordV1(log, page1, hash(1))
	writeFile(t, filepath.Join(dir, logName(1)), log)

	whole := []domain.Period{{From: at(-30000, 0), To: at(30000, 0)}} // 1888 to 2108
	check := func(s opened, wantPairs, wantTriples int64, wantRange string) {
		t.Helper()
		if got := s.counts(t, 2); !equal(got, []int64{3, 1}) {
			t.Errorf("counts = %v, want [3 1]", got)
		}
		if st := s.mem.Stats(); st.Pairs != wantPairs || st.Triples != wantTriples {
			t.Errorf("%d pairs and %d (page, visitor, day), want %d and %d", st.Pairs, st.Triples, wantPairs, wantTriples)
		}
		rc, err := s.Range(context.Background(), view(t, 0, 0).Page, whole)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(rc.Each[0].Visitors, rc.Total.Visitors); got != wantRange {
			t.Errorf("page 0 over two centuries: %s visitors, want %s", got, wantRange)
		}
	}
	s := mustOpen(t, dir, SyncAlways)
	check(s, 4, 0, "0 0")
	s.recordAt(t, 0, 3, at(0, 10)) // counted all-time already: only its day is new
	s.crash()

	r := mustOpen(t, dir, SyncAlways)
	check(r, 4, 1, "1 1")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r = mustOpen(t, dir, SyncAlways) // from a version 3 snapshot
	defer r.Close()
	check(r, 4, 1, "1 1")
}

// snapFile returns a snapshot of version: its header, records (each whole)
// and an end record with counts (pages and pairs, then for version 3 days
// and triples).
func snapFile(version uint32, nextLog uint64, records [][]byte, counts ...uint64) []byte {
	b := append([]byte(snapMagic), byte(version), 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, nextLog)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	for _, r := range records {
		b = append(b, r...)
	}
	end := []byte{0}
	for _, n := range counts {
		end = binary.LittleEndian.AppendUint64(end, n)
	}
	end = binary.LittleEndian.AppendUint32(end, crc32.Checksum(end, crcTable))
	return append(b, end...)
}

// dayEntry is one visitor of a day record, as written.
type dayEntry struct {
	hash uint64
	seen uint16
}

// dayRecord returns the day record of page on day with count as its
// number of visitors and entries after it, its crc right, and where the
// entries begin in it.
func dayRecord(page string, day domain.Day, count uint64, entries ...dayEntry) (rec []byte, entriesAt int) {
	rec = binary.AppendUvarint(nil, uint64(len(page)))
	rec = append(rec, page...)
	rec = append(rec, pageDay)
	rec = binary.LittleEndian.AppendUint32(rec, uint32(day))
	rec = binary.AppendUvarint(rec, count)
	entriesAt = len(rec)
	for _, e := range entries {
		rec = binary.LittleEndian.AppendUint64(rec, e.hash)
		rec = binary.LittleEndian.AppendUint16(rec, e.seen)
	}
	return binary.LittleEndian.AppendUint32(rec, crc32.Checksum(rec, crcTable)), entriesAt
}

// TestCorruptDayRecord: a day record that does not read back as written
// stops the start with a *CorruptError naming the snapshot and the offset
// of the bad record, or of the bad visitor in it. The well-formed snapshot
// the cases are made from reads.
func TestCorruptDayRecord(t *testing.T) {
	t.Parallel()
	page := view(t, 0, 0).Page.String()
	alice, bob := view(t, 0, 1).Visitor.Hash(), view(t, 0, 2).Visitor.Hash()
	ok := domain.Seen{First: 4, Last: 90}.Bits()
	// A day record after another, so that offsets are not those of the first record.
	first, _ := dayRecord(page, day0, 1, dayEntry{alice, ok})
	at0 := int64(snapHeaderSize + len(first))
	day := func(count uint64, entries ...dayEntry) (snap []byte, entriesAt int64) {
		rec, n := dayRecord(page, day0+1, count, entries...)
		return snapFile(snapVersion, 0, [][]byte{first, rec}, 0, 0, 2, 1+count), at0 + int64(n)
	}
	good, _ := day(2, dayEntry{alice, ok}, dayEntry{bob, domain.SeenAt(7).Bits()})
	t.Run("well formed", func(t *testing.T) {
		t.Parallel()
		d := t.TempDir()
		writeFile(t, filepath.Join(d, snapshotName), good)
		s := mustOpen(t, d, SyncAlways)
		defer s.Close()
		rc, err := s.Range(context.Background(), view(t, 0, 0).Page, []domain.Period{
			{From: at(0, 0), To: at(2, 0)}, {From: at(1, 0), To: at(1, 5)}, {From: at(1, 5), To: at(2, 0)},
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(rc.Total.Visitors, rc.Each[0].Visitors, rc.Each[1].Visitors, rc.Each[2].Visitors); got != "2 2 1 2" {
			t.Errorf("total and each period: %s visitors, want 2 2 1 2", got)
		}
		// A visitor of a day is a visitor of the page: a snapshot always has
		// it in the page's record too, and it counts once.
		if got := s.counts(t, 1); got[0] != 2 {
			t.Errorf("%d all-time visitors from day records alone, want 2", got[0])
		}
	})

	badSeen, badSeenAt := day(2, dayEntry{alice, ok}, dayEntry{bob, domain.Seen{First: 10, Last: 5}.Bits()})
	pastDay, pastDayAt := day(2, dayEntry{alice, ok}, dayEntry{bob, domain.Seen{First: 3, Last: domain.QuartersPerDay}.Bits()})
	zero, zeroAt := day(2, dayEntry{alice, ok}, dayEntry{0, ok})
	empty, _ := day(0)
	tooMany, _ := day(1000, dayEntry{alice, ok})
	flipped := bytes.Clone(good)
	flipped[len(flipped)-snapEndSize-1] ^= 1 // the day record's crc
	counts := bytes.Clone(good[:len(good)-snapEndSize])
	counts = append(counts, snapFile(snapVersion, 0, nil, 0, 0, 3, 3)[snapHeaderSize:]...)
	inV2 := snapFile(2, 0, [][]byte{first}, 0, 0)
	for name, tt := range map[string]struct {
		content []byte
		offset  int64
		reason  string
	}{
		"first after last":          {badSeen, badSeenAt + dayEntrySize, "seen from quarter 10 to 5"},
		"last past the day":         {pastDay, pastDayAt + dayEntrySize, "seen from quarter 3 to 96"},
		"visitor hash 0":            {zero, zeroAt + dayEntrySize, "visitor hash 0"},
		"no visitors":               {empty, at0, "no visitors"},
		"more visitors than fit":    {tooMany, at0, "do not fit"},
		"checksum":                  {flipped, at0, "day record checksum mismatch"},
		"end record counts":         {counts, int64(len(good) - snapEndSize), "counts 3 days"},
		"cut in a day record":       {good[:at0+20], -1, "truncated"},
		"day in a version 2 file":   {inV2, int64(snapHeaderSize), "unknown kind 2"},
		"end record of version two": {snapFile(snapVersion, 0, [][]byte{first}, 0, 0), -1, "truncated"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := t.TempDir()
			file := filepath.Join(d, snapshotName)
			writeFile(t, file, tt.content)
			_, err := open(t, d, SyncAlways)
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.File != file || !strings.Contains(ce.Reason, tt.reason) ||
				(tt.offset >= 0 && ce.Offset != tt.offset) {
				t.Fatalf("Open = %v, want a *CorruptError of %s at offset %d: …%s", err, file, tt.offset, tt.reason)
			}
		})
	}
}

// TestEstimatedDaysSurviveCrash: under a memory limit, a page whose days
// became estimated keeps them through a crash, from a snapshot (its
// estimated day records) and the log after it: the same (page, visitor,
// day) come back, under the same keys, and each range is an estimate of
// the right count; the exact pages beside it answer exactly as before.
// A page whose estimated days were given up stays without days.
func TestEstimatedDaysSurviveCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	limit := memstore.Options{MemoryLimit: 160 << 10}
	s := openMem(t, dir, memstore.NewWith(limit))
	truth := map[int][]domain.Quarter{} // page 0's visitors' quarters
	send := func(v int, q domain.Quarter) {
		s.recordAt(t, 0, v, q)
		truth[v] = append(truth[v], q)
	}
	for v := range 6000 {
		send(v, at(v%3, v%domain.QuartersPerDay))
		send(v, at(1+v%3, (v*7)%domain.QuartersPerDay))
	}
	fillDays(t, s, 0)
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	for v := 3000; v < 7000; v++ { // half of them seen before
		send(v, at(2, v%domain.QuartersPerDay))
	}
	st := s.mem.Stats()
	if st.Conversions != 1 || st.DaysGivenUp != 0 {
		t.Fatalf("Stats() = %+v: want page 0 converted, its days kept; the test no longer tests estimated days", st)
	}
	count := func(p domain.Period) int64 {
		var n int64
		for _, qs := range truth {
			if slices.ContainsFunc(qs, func(q domain.Quarter) bool { return q >= p.From && q < p.To }) {
				n++
			}
		}
		return n
	}
	exactPages := func(s opened) string { // pages 1 and 2, whose days are exact
		var out strings.Builder
		for p := 1; p < 3; p++ {
			rc, err := s.Range(context.Background(), view(t, p, 0).Page, rangePeriods)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&out, "page %d: %+v\n", p, rc)
		}
		return out.String()
	}
	want := exactPages(s)
	s.crash()

	r := openMem(t, dir, memstore.NewWith(limit))
	defer r.Close()
	if got := r.mem.Stats(); got.Triples != st.Triples || got.Estimated != 1 {
		t.Errorf("after a crash: %d (page, visitor, day), %d estimated pages; want %d and 1", got.Triples, got.Estimated, st.Triples)
	}
	rc, err := r.Range(context.Background(), view(t, 0, 0).Page, rangePeriods)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range rangePeriods {
		got, want := rc.Each[i], count(p)
		if got.Exact() || math.Abs(float64(got.Visitors-want)) > 4*memstore.SketchRelativeError*float64(want)+1 {
			t.Errorf("page 0, %+v, after a crash: %+v, want an estimate of %d", p, got, want)
		}
	}
	if got := exactPages(r); got != want {
		t.Errorf("the exact pages after a crash:\n%s\nwant, as before it:\n%s", got, want)
	}
}

// TestDaysGivenUpStayGone: a page whose estimated days were given up
// under the limit has no days after a restart either (its snapshot record
// is its sketch alone), rather than the days its later views bring.
func TestDaysGivenUpStayGone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	limit := memstore.Options{MemoryLimit: 64 << 10}
	s := openMem(t, dir, memstore.NewWith(limit))
	for v := range 3000 {
		for d := range 4 {
			s.recordAt(t, 0, v, at(d, 40))
		}
	}
	if st := s.mem.Stats(); st.DaysGivenUp != 1 {
		t.Fatalf("Stats() = %+v: want page 0's days given up", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r := openMem(t, dir, memstore.NewWith(limit))
	defer r.Close()
	r.recordAt(t, 0, 5000, at(5, 40))
	if _, err := r.Range(context.Background(), view(t, 0, 0).Page, rangePeriods); !errors.Is(err, domain.ErrNoDays) {
		t.Errorf("a range of the page after a restart: %v, want ErrNoDays", err)
	}
}

// TestCorruptEstimatedDayRecord: an estimated day record with a key no day
// holds, or in a version 3 snapshot, stops the start with a *CorruptError;
// the well-formed one reads, and gives its page its day.
func TestCorruptEstimatedDayRecord(t *testing.T) {
	t.Parallel()
	mem := memstore.NewWith(memstore.Options{Approximate: true})
	page := view(t, 0, 0).Page
	if err := mem.Record(context.Background(), viewAt(t, 0, 1, at(0, 4))); err != nil {
		t.Fatal(err)
	}
	var sketch []byte
	_ = mem.Each(func(_ string, _ []domain.VisitorID, sk []byte) error { sketch = slices.Clone(sk); return nil })
	pageRec := binary.AppendUvarint(nil, uint64(len(page.String())))
	pageRec = append(pageRec, page.String()...)
	pageRec = append(pageRec, pageEstimated)
	pageRec = binary.AppendUvarint(pageRec, uint64(len(sketch)))
	pageRec = append(pageRec, sketch...)
	pageRec = binary.LittleEndian.AppendUint32(pageRec, crc32.Checksum(pageRec, crcTable))
	estDay := func(key uint32) []byte {
		rec := binary.AppendUvarint(nil, uint64(len(page.String())))
		rec = append(rec, page.String()...)
		rec = append(rec, pageEstimatedDay)
		rec = binary.LittleEndian.AppendUint32(rec, uint32(day0))
		rec = binary.LittleEndian.AppendUint64(rec, 42)
		rec = binary.AppendUvarint(rec, 1)
		rec = binary.LittleEndian.AppendUint32(rec, key)
		rec = binary.LittleEndian.AppendUint16(rec, domain.SeenAt(4).Bits())
		return binary.LittleEndian.AppendUint32(rec, crc32.Checksum(rec, crcTable))
	}
	t.Run("well formed", func(t *testing.T) {
		t.Parallel()
		d := t.TempDir()
		writeFile(t, filepath.Join(d, snapshotName), snapFile(snapVersion, 0, [][]byte{pageRec, estDay(7)}, 1, 0, 1, 1))
		s := mustOpen(t, d, SyncAlways)
		defer s.Close()
		rc, err := s.Range(context.Background(), page, []domain.Period{{From: at(0, 0), To: at(1, 0)}, {From: at(0, 5), To: at(1, 0)}})
		if err != nil || rc.Each[0].Visitors != 1 || rc.Each[1].Visitors != 0 {
			t.Errorf("the restored day: %+v, %v; want 1 visitor, seen in quarter 4 only", rc, err)
		}
	})
	for name, tt := range map[string]struct {
		content []byte
		reason  string
	}{
		"key MaxUint32":       {snapFile(snapVersion, 0, [][]byte{pageRec, estDay(math.MaxUint32)}, 1, 0, 1, 1), "no day holds"},
		"in a version 3 file": {snapFile(3, 0, [][]byte{pageRec, estDay(7)}, 1, 0, 1, 1), "unknown kind 3"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := t.TempDir()
			writeFile(t, filepath.Join(d, snapshotName), tt.content)
			_, err := open(t, d, SyncAlways)
			var ce *CorruptError
			if !errors.As(err, &ce) || !strings.Contains(ce.Reason, tt.reason) {
				t.Fatalf("Open = %v, want a *CorruptError: …%s", err, tt.reason)
			}
		})
	}
}
