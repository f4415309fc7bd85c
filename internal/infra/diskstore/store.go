// Package diskstore makes an in-memory store durable on local disk, with no
// database server: every accepted event is appended to a write-ahead log
// before it is acknowledged, and the whole store is written to a snapshot
// every few minutes and on shutdown, after which the logs it holds are
// deleted. On start, the newest snapshot is loaded and the logs after it are
// replayed.
//
// Recording is idempotent per (page, visitor), which keeps the scheme
// simple: an event may be both in a snapshot and in a log replayed over it.
// A page view is put in memory first and in the log second, and a snapshot
// starts a new log before it walks the memory; so every event of a log that
// a snapshot replaces was in memory before the walk began, and is in the
// snapshot. That holds for the time dimension too: memory records an
// event's day in the same call as its all-time visitor, before the log has
// it, and the snapshot's walk over the days (after its walk over the pages)
// begins after the new log, like the walk over the pages. Recording a day
// is idempotent per (page, visitor, day) as well: the first and last
// quarters seen merge, so a view both in a snapshot and a log is one view.
//
// What is on disk is the canonical page URL and the fixed-seed visitor hash
// (domain.VisitorID.Hash), which mean the same in every process. The file
// formats are described in format.go.
package diskstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/webtracker/tracker/internal/domain"
)

// Memory is the in-memory store made durable (memstore.Store).
type Memory interface {
	Record(ctx context.Context, v domain.PageView) error
	RecordAll(ctx context.Context, page domain.PageURL, visitors []domain.VisitorID) error
	RecordDay(ctx context.Context, page domain.PageURL, day domain.Day, visitors []domain.VisitorID, seen []domain.Seen) error
	Visitors(ctx context.Context, page domain.PageURL) (domain.Count, error)
	Range(ctx context.Context, page domain.PageURL, periods []domain.Period) (domain.RangeCount, error)
	PagesIn(ctx context.Context, p domain.Period) ([]domain.PageCount, error)
	RestoreSketch(ctx context.Context, page domain.PageURL, sketch []byte) error
	RecordEstimatedDay(ctx context.Context, page domain.PageURL, day domain.Day, secret uint64, keys []uint32, seen []domain.Seen) error
	Pages(ctx context.Context) ([]domain.PageCount, error)
	walker
}

// Options configure a Store.
type Options struct {
	Dir              string        // created if missing
	Sync             SyncMode      // when the log is forced to disk
	SyncInterval     time.Duration // for SyncInterval
	SnapshotInterval time.Duration // 0: only on Close
	// Policy makes the URLs read back canonical, under today's rules.
	Policy domain.URLPolicy
	Logger *slog.Logger
	// ObserveFsync, if set, is given the duration of every log sync.
	ObserveFsync func(time.Duration)
}

// Stats describe the files, for metrics.
type Stats struct {
	LogBytes         int64         // of the current log, written or buffered
	SnapshotBytes    int64         // of the newest snapshot
	SnapshotDuration time.Duration // of the newest snapshot
	Snapshots        int64         // written by this process
	SnapshotErrors   int64         // failed in this process
	RecoveryDuration time.Duration // of the start
}

// Store is a Memory whose Record is durable. Its methods are safe for
// concurrent use.
type Store struct {
	mem    Memory
	opts   Options
	logger *slog.Logger
	lock   *os.File
	log    *logWriter

	snapMu sync.Mutex // one snapshot at a time
	seq    uint64     // the current log's number; guarded by snapMu

	statsMu sync.Mutex
	stats   Stats

	stop chan struct{} // ends the snapshot loop
	done chan struct{} // closed when it has ended
}

// Open recovers the data in opts.Dir into mem, which must be empty, and
// returns the Store that keeps it durable from then on. A snapshot or log
// that cannot be read as written stops it with a *CorruptError naming the
// file and offset; a log cut short by a crash is cut back to its last whole
// record, with a warning. The caller must Close the Store.
func Open(opts Options, mem Memory) (*Store, error) {
	start := time.Now()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = time.Second
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	lock, err := lockFile(filepath.Join(opts.Dir, lockName))
	if err != nil {
		return nil, err
	}
	s := &Store{mem: mem, opts: opts, logger: opts.Logger, lock: lock,
		stop: make(chan struct{}), done: make(chan struct{})}
	if err := s.recover(); err != nil {
		lock.Close()
		return nil, err
	}
	f, size, err := createLog(opts.Dir, s.seq)
	if err != nil {
		lock.Close()
		return nil, err
	}
	s.log = newLogWriter(f, size, opts.Sync, opts.SyncInterval, opts.ObserveFsync)
	s.stats.RecoveryDuration = time.Since(start)
	go s.snapshotLoop()
	return s, nil
}

// recover loads the snapshot and replays the logs after it, deletes the
// files it has no use for, and sets s.seq to the number of the next log.
func (s *Store) recover() error {
	dir := s.opts.Dir
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var logs []uint64
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, tmpSuffix) {
			// A snapshot a crash interrupted: never renamed, never used.
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return err
			}
		}
		if seq, ok := parseLogName(name); ok {
			logs = append(logs, seq)
		}
	}
	slices.Sort(logs)

	var snap snapshotInfo
	path := filepath.Join(dir, snapshotName)
	snap, err = readSnapshot(path, s.opts.Policy, s.mem)
	switch {
	case errors.Is(err, os.ErrNotExist):
		snap = snapshotInfo{}
	case err != nil:
		return fmt.Errorf("reading the snapshot: %w", err)
	default:
		s.logger.Info("snapshot loaded", "file", path, "pages", snap.pages, "visitors", snap.pairs,
			"days", snap.days, "day_visitors", snap.triples, "bytes", snap.bytes)
		s.stats.SnapshotBytes = snap.bytes
	}
	s.seq = snap.nextLog
	for i, seq := range logs {
		file := filepath.Join(dir, logName(seq))
		if seq < snap.nextLog {
			// Held by the snapshot; a crash came before it was deleted.
			if err := os.Remove(file); err != nil {
				return err
			}
			continue
		}
		if err := s.replay(file, i == len(logs)-1); err != nil {
			return err
		}
		s.seq = seq + 1
	}
	return nil
}

// replay reads one log into memory, and cuts a torn tail off the newest
// log. An older log was synced whole before the next one began (and a torn
// tail was cut at the start after its crash), so a bad end there is
// corruption.
func (s *Store) replay(file string, newest bool) error {
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	var records int64
	lr, err := newLogReader(f, st.Size())
	for err == nil {
		var page []byte
		var hash uint64
		var q domain.Quarter
		page, hash, q, err = lr.next()
		if err != nil {
			break
		}
		if err = s.replayRecord(page, hash, q); err != nil {
			err = &CorruptError{Offset: lr.off, Reason: err.Error()}
			break
		}
		records++
	}
	var ce *CorruptError
	switch {
	case errors.Is(err, io.EOF):
	case errors.Is(err, errTorn) && !newest:
		return fmt.Errorf("replaying the log: %w", &CorruptError{File: file, Offset: lr.off,
			Reason: "a record is cut short, but a newer log follows, so this one was complete once"})
	case errors.Is(err, errTorn):
		s.logger.Warn("the log ends in a record cut short by a crash; cutting it off",
			"file", file, "offset", lr.off, "bytes_dropped", st.Size()-lr.off)
		if err := f.Truncate(lr.off); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
	case errors.As(err, &ce):
		ce.File = file
		return fmt.Errorf("replaying the log: %w", err)
	default:
		return fmt.Errorf("replaying the log %s: %w", file, err)
	}
	s.logger.Info("log replayed", "file", file, "records", records)
	return nil
}

// replayRecord records one page view read from a log, in quarter q (0 for
// a version 1 log's, which count all-time only).
func (s *Store) replayRecord(page []byte, hash uint64, q domain.Quarter) error {
	u, err := s.opts.Policy.Canonical(string(page))
	if err != nil {
		return fmt.Errorf("page URL: %v", err)
	}
	v, err := domain.VisitorFromHash(hash)
	if err != nil {
		return err
	}
	return s.mem.Record(context.Background(), domain.PageView{Page: u, Visitor: v, At: q})
}

// createLog creates log number seq with its header, synced with its
// directory entry.
func createLog(dir string, seq uint64) (*os.File, int64, error) {
	f, err := os.OpenFile(filepath.Join(dir, logName(seq)), os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, 0, err
	}
	h := appendLogHeader(nil)
	if _, err := f.Write(h); err != nil {
		f.Close()
		return nil, 0, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, 0, err
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, int64(len(h)), nil
}

// syncDir makes the directory's entries (a new or renamed file) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Record puts the page view in memory, then in the log. With SyncAlways it
// returns once the log is on disk. An event the log could not take, or
// whose sync failed or outlasted ctx, is an error that matches
// domain.ErrUnavailable: it may be counted, but was not made durable.
func (s *Store) Record(ctx context.Context, v domain.PageView) error {
	if err := s.mem.Record(ctx, v); err != nil {
		return err
	}
	b, err := s.log.append(v.Page.String(), v.Visitor.Hash(), v.At)
	if err != nil {
		return fmt.Errorf("%w: %v", domain.ErrUnavailable, err)
	}
	if s.opts.Sync != SyncAlways {
		return nil
	}
	select {
	case <-b.done:
		if b.err != nil {
			return fmt.Errorf("%w: %v", domain.ErrUnavailable, b.err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for the log to reach the disk: %w", domain.ErrUnavailable, ctx.Err())
	}
}

// Visitors answers from memory.
func (s *Store) Visitors(ctx context.Context, page domain.PageURL) (domain.Count, error) {
	return s.mem.Visitors(ctx, page)
}

// Pages lists every page and its count, from memory.
func (s *Store) Pages(ctx context.Context) ([]domain.PageCount, error) { return s.mem.Pages(ctx) }

// Range answers the distinct visitors of page in each period and in all of
// them together, from memory.
func (s *Store) Range(ctx context.Context, page domain.PageURL, periods []domain.Period) (domain.RangeCount, error) {
	return s.mem.Range(ctx, page, periods)
}

// PagesIn lists every page with visitors in p and their distinct visitors
// in p, from memory.
func (s *Store) PagesIn(ctx context.Context, p domain.Period) ([]domain.PageCount, error) {
	return s.mem.PagesIn(ctx, p)
}

// Healthy reports the error that stopped the log, if any: the store then
// takes no more events until restarted.
func (s *Store) Healthy() error { return s.log.failed() }

// Stats reports the sizes and durations of the files.
func (s *Store) Stats() Stats {
	s.statsMu.Lock()
	st := s.stats
	s.statsMu.Unlock()
	st.LogBytes = s.log.size()
	return st
}

// Snapshot writes the store to the snapshot file and deletes the logs it
// replaces. Ingest goes on meanwhile: records go to a new log from the
// moment it begins.
func (s *Store) Snapshot() error {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	start := time.Now()
	info, err := s.snapshot()
	d := time.Since(start)
	s.statsMu.Lock()
	if err != nil {
		s.stats.SnapshotErrors++
	} else {
		s.stats.Snapshots++
		s.stats.SnapshotBytes, s.stats.SnapshotDuration = info.bytes, d
	}
	s.statsMu.Unlock()
	if err != nil {
		return fmt.Errorf("writing a snapshot: %w", err)
	}
	s.logger.Info("snapshot written", "pages", info.pages, "visitors", info.pairs,
		"days", info.days, "day_visitors", info.triples, "bytes", info.bytes, "duration", d)
	return nil
}

func (s *Store) snapshot() (snapshotInfo, error) {
	next := s.seq + 1
	f, size, err := createLog(s.opts.Dir, next)
	if err != nil {
		return snapshotInfo{}, err
	}
	if err := s.log.rotate(f, size); err != nil {
		f.Close()
		return snapshotInfo{}, err
	}
	old := s.seq
	s.seq = next
	info, err := writeSnapshot(s.opts.Dir, next, s.mem)
	if err != nil {
		// The old snapshot and every log since still hold everything.
		return info, err
	}
	for seq := old; ; seq-- {
		err := os.Remove(filepath.Join(s.opts.Dir, logName(seq)))
		if errors.Is(err, os.ErrNotExist) || seq == 0 {
			break
		}
		if err != nil {
			return info, err
		}
	}
	return info, nil
}

// snapshotLoop writes a snapshot every SnapshotInterval until Close.
func (s *Store) snapshotLoop() {
	defer close(s.done)
	if s.opts.SnapshotInterval <= 0 {
		<-s.stop
		return
	}
	tick := time.NewTicker(s.opts.SnapshotInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if err := s.Snapshot(); err != nil {
				s.logger.Error("snapshot failed; the logs are kept", "err", err)
			}
		case <-s.stop:
			return
		}
	}
}

// Close writes a last snapshot, closes the log and releases the directory.
// Call it once nothing records any more; a later Record fails.
func (s *Store) Close() error {
	close(s.stop)
	<-s.done
	// If the snapshot fails, the logs still hold everything.
	return errors.Join(s.Snapshot(), s.log.close(), s.lock.Close())
}
