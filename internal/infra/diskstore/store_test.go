package diskstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/infra/memstore"
)

// view returns the page view of visitor v on page p, both numbered.
func view(tb testing.TB, p, v int) domain.PageView {
	tb.Helper()
	page, err := domain.URLPolicy{}.Canonical(fmt.Sprintf("https://example.com/p/%d", p))
	if err != nil {
		tb.Fatal(err)
	}
	visitor, err := domain.ParseVisitorID(fmt.Sprintf("visitor-%d", v))
	if err != nil {
		tb.Fatal(err)
	}
	return domain.PageView{Page: page, Visitor: visitor}
}

// opened is a Store under test with the memory it fills and its log lines.
type opened struct {
	*Store
	mem  *memstore.Store
	logs *bytes.Buffer
}

func open(tb testing.TB, dir string, mode SyncMode) (opened, error) {
	tb.Helper()
	var logs bytes.Buffer
	mem := memstore.New()
	s, err := Open(Options{
		Dir: dir, Sync: mode, SyncInterval: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)),
	}, mem)
	return opened{Store: s, mem: mem, logs: &logs}, err
}

func mustOpen(tb testing.TB, dir string, mode SyncMode) opened {
	tb.Helper()
	s, err := open(tb, dir, mode)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return s
}

// syncWriter serializes writes to w, for a logger shared by goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

// crash stops s as a kill would: nothing buffered is written, no snapshot
// is taken, the files are closed as they are.
func (s opened) crash() {
	close(s.stop)
	<-s.done
	close(s.log.stop)
	<-s.log.done
	s.log.file.Close()
	s.lock.Close()
}

func (s opened) record(tb testing.TB, p, v int) {
	tb.Helper()
	if err := s.Record(context.Background(), view(tb, p, v)); err != nil {
		tb.Errorf("Record(page %d, visitor %d): %v", p, v, err) // not Fatal: writers are goroutines
	}
}

// counts returns the visitors of pages 0 to n-1.
func (s opened) counts(tb testing.TB, n int) []int64 {
	tb.Helper()
	out := make([]int64, n)
	for p := range out {
		c, err := s.Visitors(context.Background(), view(tb, p, 0).Page)
		if err != nil {
			tb.Fatal(err)
		}
		out[p] = c.Visitors
	}
	return out
}

// fill records visitors 0..n-1 on page p for each n in sizes, from 16
// goroutines (so that SyncAlways commits them in groups), and returns the
// counts.
func fill(tb testing.TB, s opened, sizes []int) []int64 {
	tb.Helper()
	const writers = 16
	want := make([]int64, len(sizes))
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for p, n := range sizes {
				for v := w; v < n; v += writers {
					s.record(tb, p, v)
					s.record(tb, p, v/2) // a repeat, not counted twice
				}
			}
		})
	}
	wg.Wait()
	for p, n := range sizes {
		want[p] = int64(n)
	}
	return want
}

func equal(a, b []int64) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

var sizes = []int{1, 10, 500, 5000} // the last page is striped in memory

func TestCloseAndReopen(t *testing.T) {
	t.Parallel()
	for _, mode := range []SyncMode{SyncAlways, SyncInterval} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := mustOpen(t, dir, mode)
			want := fill(t, s, sizes)
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := s.Record(context.Background(), view(t, 0, 0)); !errors.Is(err, domain.ErrUnavailable) {
				t.Errorf("Record after Close = %v, want ErrUnavailable", err)
			}
			// The snapshot holds everything; the log after it is empty.
			names := dirNames(t, dir)
			if !strings.Contains(names, snapshotName) || strings.Count(names, logPrefix) != 1 {
				t.Errorf("files after Close: %s; want the snapshot and one log", names)
			}
			r := mustOpen(t, dir, mode)
			defer r.Close()
			if got := r.counts(t, len(sizes)); !equal(got, want) {
				t.Errorf("counts after reopening = %v, want %v", got, want)
			}
			if st := r.mem.Stats(); st.Pairs != int64(sum(sizes)) {
				t.Errorf("%d pairs after reopening, want %d", st.Pairs, sum(sizes))
			}
		})
	}
}

func sum(xs []int) (n int) {
	for _, x := range xs {
		n += x
	}
	return n
}

func dirNames(tb testing.TB, dir string) string {
	tb.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

// TestCrashReplaysLog: with SyncAlways, every event Record returned for is
// read back after a crash, from a snapshot and the log after it.
func TestCrashReplaysLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustOpen(t, dir, SyncAlways)
	fill(t, s, sizes[:2])
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	want := fill(t, s, sizes)
	s.crash()

	r := mustOpen(t, dir, SyncAlways)
	defer r.Close()
	if got := r.counts(t, len(sizes)); !equal(got, want) {
		t.Errorf("counts after a crash = %v, want %v", got, want)
	}
}

// TestSnapshotDuringWrites takes snapshots while writers record, then
// crashes: an event that was acknowledged must survive whatever snapshot
// and log it ended up in.
func TestSnapshotDuringWrites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustOpen(t, dir, SyncAlways)
	const writers, perWriter, pages = 16, 750, 5
	var wg sync.WaitGroup
	var writing atomic.Int32
	writing.Store(writers)
	for w := range writers {
		wg.Go(func() {
			defer writing.Add(-1)
			for i := range perWriter {
				v := w*perWriter + i
				s.record(t, v%pages, v)
			}
		})
	}
	snapshots := 0
	for writing.Load() > 0 {
		if err := s.Snapshot(); err != nil {
			t.Fatal(err)
		}
		snapshots++
	}
	wg.Wait()
	s.crash()
	if snapshots < 2 {
		t.Logf("only %d snapshots during the writes", snapshots)
	}

	r := mustOpen(t, dir, SyncAlways)
	defer r.Close()
	for p, got := range r.counts(t, pages) {
		if want := int64(writers * perWriter / pages); got != want {
			t.Errorf("page %d: %d visitors after the crash, want %d", p, got, want)
		}
	}
}

// TestTornTail: a record cut short at the end of the log is dropped with a
// warning, the file is cut back, and everything before it is kept.
func TestTornTail(t *testing.T) {
	t.Parallel()
	record := appendRecord(nil, "https://example.com/p/99", 12345, 1_900_000)
	for name, tail := range map[string][]byte{
		"half a header":       record[:5],
		"header, no payload":  record[:recordHeaderSize],
		"half a payload":      record[:len(record)-3],
		"whole, bad checksum": append([]byte{record[0] ^ 1}, record[1:]...),
		"zeros":               make([]byte, 100),
		"zeros past a record": make([]byte, 3*maxPayload),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := mustOpen(t, dir, SyncAlways)
			want := fill(t, s, sizes[:3])
			s.crash()
			logFile := onlyLog(t, dir)
			whole := fileSize(t, logFile)
			appendFile(t, logFile, tail)

			r := mustOpen(t, dir, SyncAlways)
			if got := r.counts(t, 3); !equal(got, want) {
				t.Errorf("counts = %v, want %v", got, want)
			}
			if n, _ := r.Visitors(context.Background(), view(t, 99, 0).Page); n.Visitors != 0 {
				t.Error("the torn record was counted")
			}
			if !strings.Contains(r.logs.String(), "cut short") {
				t.Errorf("no warning logged; logs:\n%s", r.logs)
			}
			if got := fileSize(t, logFile); got != whole {
				t.Errorf("the log is %d bytes after recovery, want it cut back to %d", got, whole)
			}
			r.Close()
		})
	}
}

// TestCorruptLog: a bad record before the end of the log stops the start
// with an error naming the file and the offset.
func TestCorruptLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustOpen(t, dir, SyncAlways)
	fill(t, s, sizes[:3])
	s.crash()
	logFile := onlyLog(t, dir)
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	first := int64(logHeaderSize)
	second := first + recordHeaderSize + int64(binaryLen(b[first+4:]))
	b[second+recordHeaderSize+3] ^= 0x40 // in the second record's visitor hash
	writeFile(t, logFile, b)

	_, err = open(t, dir, SyncAlways)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.File != logFile || ce.Offset != second {
		t.Fatalf("Open = %v, want a *CorruptError at %s offset %d", err, logFile, second)
	}
}

// TestCorruptLogEnd: damage near the end of a log that no crash can
// explain stops the start too: a record length out of range followed by
// more records, and a cut record in a log that a newer one follows.
func TestCorruptLogEnd(t *testing.T) {
	t.Parallel()
	t.Run("length out of range before the last record", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s := mustOpen(t, dir, SyncAlways)
		fill(t, s, sizes[:2])
		s.crash()
		logFile := onlyLog(t, dir)
		b, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatal(err)
		}
		// The second-to-last record: walk the records to find it.
		var offs []int64
		for off := int64(logHeaderSize); off < int64(len(b)); off += recordHeaderSize + int64(binaryLen(b[off+4:])) {
			offs = append(offs, off)
		}
		bad := offs[len(offs)-2]
		b[bad+7] = 0x7f // its length is now far out of range
		writeFile(t, logFile, b)
		_, err = open(t, dir, SyncAlways)
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Offset != bad {
			t.Fatalf("Open = %v, want a *CorruptError at offset %d", err, bad)
		}
	})
	t.Run("cut record in an older log", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s := mustOpen(t, dir, SyncAlways)
		fill(t, s, sizes[:2])
		s.crash()
		older := onlyLog(t, dir)
		appendFile(t, older, appendRecord(nil, "https://example.com/p/9", 9, 0)[:12])
		writeFile(t, filepath.Join(dir, logName(1)), appendLogHeader(nil)) // a newer, empty log
		_, err := open(t, dir, SyncAlways)
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.File != older {
			t.Fatalf("Open = %v, want a *CorruptError of %s", err, older)
		}
	})
}

// TestCorruptSnapshot: a snapshot that does not read back as written stops
// the start, whether a byte changed or its end is missing.
func TestCorruptSnapshot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustOpen(t, dir, SyncAlways)
	fill(t, s, sizes)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(dir, snapshotName)
	good, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	flipped := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x10
		return b
	}
	for name, tt := range map[string]struct {
		content []byte
		reason  string
	}{
		"bad magic":         {flipped(0), "bad magic"},
		"header":            {flipped(12), "header checksum"},
		"visitor hash":      {flipped(len(good) / 2), "checksum mismatch"},
		"end record counts": {flipped(len(good) - 10), "end record checksum"},
		"truncated":         {good[:len(good)-snapEndSize-7], "do not fit"},
		"no end record":     {good[:len(good)-snapEndSize], "truncated"},
		"bytes after end":   {append(bytes.Clone(good), 0), "after the end record"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := t.TempDir()
			writeFile(t, filepath.Join(d, snapshotName), tt.content)
			_, err := open(t, d, SyncAlways)
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.File != filepath.Join(d, snapshotName) || !strings.Contains(ce.Reason, tt.reason) {
				t.Fatalf("Open = %v, want a *CorruptError of the snapshot: …%s", err, tt.reason)
			}
		})
	}
}

// TestGroupCommit: concurrent Records with SyncAlways share fsyncs. Each
// fsync is made to last 2 ms more, as on a real disk (a temporary
// directory's may take microseconds, and then a loaded machine's
// scheduler, not the log, decides how many writers meet in one).
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	var syncs atomic.Int64
	mem := memstore.New()
	slow := func(time.Duration) { syncs.Add(1); time.Sleep(2 * time.Millisecond) }
	s, err := Open(Options{Dir: t.TempDir(), Sync: SyncAlways, ObserveFsync: slow}, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const writers, each = 32, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.Record(context.Background(), view(t, 0, w*each+i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := syncs.Load(); n >= writers*each/2 {
		t.Errorf("%d fsyncs for %d events: the writers did not share them", n, writers*each)
	} else {
		t.Logf("%d fsyncs for %d events", n, writers*each)
	}
}

// TestLogFailure: once a write fails, Record answers ErrUnavailable and the
// store reports itself unhealthy.
func TestLogFailure(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, t.TempDir(), SyncAlways)
	s.record(t, 0, 0)
	s.log.fileMu.Lock()
	s.log.file.Close() // the next write fails
	s.log.fileMu.Unlock()
	if err := s.Record(context.Background(), view(t, 0, 1)); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Record = %v, want ErrUnavailable", err)
	}
	if s.Healthy() == nil {
		t.Error("Healthy = nil after a failed write")
	}
	if err := s.Record(context.Background(), view(t, 0, 2)); !errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("Record after the failure = %v, want ErrUnavailable", err)
	}
	s.crash()
}

func TestRecordWaitsWithinContext(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, t.TempDir(), SyncAlways)
	defer s.Close()
	s.log.fileMu.Lock() // holds the flusher up, as a slow disk would
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := s.Record(ctx, view(t, 0, 0))
	s.log.fileMu.Unlock()
	if !errors.Is(err, domain.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Record = %v, want ErrUnavailable after the deadline", err)
	}
}

func TestDirectoryIsLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustOpen(t, dir, SyncInterval)
	defer s.Close()
	if _, err := open(t, dir, SyncInterval); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("a second Open of one directory = %v, want it locked", err)
	}
}

// TestLeftoversAreRemoved: a snapshot's temporary file and logs the
// snapshot already holds, left by a crash, are deleted on start.
func TestLeftoversAreRemoved(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustOpen(t, dir, SyncAlways)
	want := fill(t, s, sizes[:2])
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, snapshotName+tmpSuffix), []byte("half a snapshot"))
	writeFile(t, filepath.Join(dir, logName(0)), []byte("an old log, held by the snapshot"))
	r := mustOpen(t, dir, SyncAlways)
	defer r.Close()
	if got := r.counts(t, 2); !equal(got, want) {
		t.Errorf("counts = %v, want %v", got, want)
	}
	if names := dirNames(t, dir); strings.Contains(names, tmpSuffix) || strings.Contains(names, logName(0)) {
		t.Errorf("leftovers still there: %s", names)
	}
}

func onlyLog(tb testing.TB, dir string) string {
	tb.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, logPrefix+"*"))
	if err != nil || len(matches) != 1 {
		tb.Fatalf("logs in %s: %v, %v; want one", dir, matches, err)
	}
	return matches[0]
}

func fileSize(tb testing.TB, path string) int64 {
	tb.Helper()
	st, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return st.Size()
}

func appendFile(tb testing.TB, path string, b []byte) {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		tb.Fatal(err)
	}
}

func writeFile(tb testing.TB, path string, b []byte) {
	tb.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// binaryLen reads a record's little-endian length field.
func binaryLen(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// gatedMemory holds each Record until the test opens the gate.
type gatedMemory struct {
	Memory
	entered chan struct{}
	gate    chan struct{}
}

func (m *gatedMemory) Record(ctx context.Context, v domain.PageView) error {
	m.entered <- struct{}{}
	<-m.gate
	return m.Memory.Record(ctx, v)
}

// TestSnapshotBetweenMemoryAndLog takes a snapshot while an event is on its
// way into memory: the event must not be lost with the log the snapshot
// replaces, which is why Record puts it in memory before the log.
func TestSnapshotBetweenMemoryAndLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mem := &gatedMemory{Memory: memstore.New(), entered: make(chan struct{}), gate: make(chan struct{})}
	s, err := Open(Options{Dir: dir, Sync: SyncAlways}, mem)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- s.Record(context.Background(), view(t, 0, 1)) }()
	<-mem.entered
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	close(mem.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	opened{Store: s}.crash()

	r := mustOpen(t, dir, SyncAlways)
	defer r.Close()
	if got := r.counts(t, 1); got[0] != 1 {
		t.Errorf("%d visitors after the crash, want the 1 acknowledged", got[0])
	}
}

// openMem opens dir as open does, into mem.
func openMem(tb testing.TB, dir string, mem *memstore.Store) opened {
	tb.Helper()
	var logs bytes.Buffer
	s, err := Open(Options{
		Dir: dir, Sync: SyncAlways, SyncInterval: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)),
	}, mem)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return opened{Store: s, mem: mem, logs: &logs}
}

// Under a memory limit, a page that became an estimate is written to the
// snapshot as its sketch; after a crash, the sketch and the log after it give
// back the same estimate, and the page is still one.
func TestEstimatedPagesSurviveCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	limit := memstore.Options{MemoryLimit: 48 << 10} // room for the small pages only
	s := openMem(t, dir, memstore.NewWith(limit))
	fill(t, s, sizes)
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	for v := range 1000 { // one writer: the log holds them in the order applied
		s.record(t, 3, 5000+v)
	}
	want := make([]domain.Count, len(sizes))
	for p := range sizes {
		want[p], _ = s.Visitors(context.Background(), view(t, p, 0).Page)
	}
	if want[3].Exact() {
		t.Fatalf("page 3: %+v, want an estimate: the test no longer tests sketches", want[3])
	}
	s.crash()

	r := openMem(t, dir, memstore.NewWith(limit))
	defer r.Close()
	for p := range sizes {
		if got, _ := r.Visitors(context.Background(), view(t, p, 0).Page); got != want[p] {
			t.Errorf("page %d after a crash: %+v, want %+v", p, got, want[p])
		}
	}
}

// A snapshot of format version 1, from before estimated pages, still reads.
func TestSnapshotVersion1(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	page := view(t, 0, 0).Page.String()
	b := append([]byte(snapMagic), 1, 0, 0, 0) // version 1
	b = binary.LittleEndian.AppendUint64(b, 1) // next log
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	rec := binary.AppendUvarint(nil, uint64(len(page)))
	rec = append(rec, page...)
	rec = binary.AppendUvarint(rec, 2) // two visitors, no kind byte
	rec = binary.LittleEndian.AppendUint64(rec, view(t, 0, 1).Visitor.Hash())
	rec = binary.LittleEndian.AppendUint64(rec, view(t, 0, 2).Visitor.Hash())
	rec = binary.LittleEndian.AppendUint32(rec, crc32.Checksum(rec, crcTable))
	end := append([]byte{0}, binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 1), 2)...)
	end = binary.LittleEndian.AppendUint32(end, crc32.Checksum(end, crcTable))
	writeFile(t, filepath.Join(dir, snapshotName), append(append(b, rec...), end...))

	s := mustOpen(t, dir, SyncAlways)
	defer s.Close()
	if got := s.counts(t, 1); got[0] != 2 {
		t.Errorf("page 0: %d visitors from a version 1 snapshot, want 2", got[0])
	}
}
