package diskstore

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/webtracker/tracker/internal/domain"
)

// SyncMode says when the log is forced to disk.
type SyncMode int

const (
	// SyncInterval hands events to the operating system within
	// writeEvery (a write, which the 202 does not wait for) and syncs the
	// log every interval: the process dying loses at most the last
	// writeEvery of events, a crash of the machine the last interval.
	SyncInterval SyncMode = iota
	// SyncAlways makes every Record wait until its event is on disk. One
	// fsync covers every event waiting for it (group commit).
	SyncAlways
)

// ParseSyncMode reads "always" or "interval".
func ParseSyncMode(s string) (SyncMode, error) {
	switch s {
	case "always":
		return SyncAlways, nil
	case "interval":
		return SyncInterval, nil
	}
	return 0, fmt.Errorf("fsync mode %q: want always or interval", s)
}

func (m SyncMode) String() string {
	if m == SyncAlways {
		return "always"
	}
	return "interval"
}

// writeEvery is the longest an event waits in memory for its write with
// SyncInterval. Writing less often than every event spares a system call
// and a wake-up per event under load.
const writeEvery = 10 * time.Millisecond

// logWriter appends records to the current log file. Appends only copy into
// a buffer under a mutex and wake the flusher, one goroutine that writes the
// buffer out (and syncs it, for SyncAlways); while it writes, the next
// events gather in the buffer, so that under load one write and one fsync
// cover many events.
type logWriter struct {
	mode     SyncMode
	interval time.Duration
	observe  func(fsync time.Duration) // for metrics; may be nil

	mu    sync.Mutex
	buf   []byte // records not yet handed to the flusher
	batch *batch // what the records in buf wait for
	err   error  // the first write or sync error: the log takes no more
	bytes int64  // of the current file, written or buffered

	fileMu sync.Mutex // held while the file is written, synced or switched
	file   *os.File
	spare  []byte // the flusher's last buffer, for reuse

	kick chan struct{} // wakes the flusher; buffered
	stop chan struct{}
	done chan struct{} // closed when the flusher has returned
}

// batch is the records of one flush; done is closed once they are written
// (and synced, for SyncAlways), err set before.
type batch struct {
	done chan struct{}
	err  error
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// newLogWriter starts writing to file, whose header is written and synced,
// and starts the flusher. size is the file's size.
func newLogWriter(file *os.File, size int64, mode SyncMode, interval time.Duration, observe func(time.Duration)) *logWriter {
	l := &logWriter{
		mode: mode, interval: interval, observe: observe,
		batch: newBatch(), bytes: size, file: file,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go l.flusher()
	return l
}

// append adds the record of one page view, seen in quarter q, and returns
// the batch it belongs to; with SyncAlways the caller waits for it. It fails
// once a write or sync has failed: what the log holds after that is unknown.
func (l *logWriter) append(page string, hash uint64, q domain.Quarter) (*batch, error) {
	l.mu.Lock()
	if l.err != nil {
		err := l.err
		l.mu.Unlock()
		return nil, err
	}
	n := len(l.buf)
	l.buf = appendRecord(l.buf, page, hash, q)
	l.bytes += int64(len(l.buf) - n)
	b := l.batch
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default: // the flusher is already woken, and will take this record
	}
	return b, nil
}

// flusher writes the buffer out when kicked, and syncs it every interval
// (SyncInterval) or at once (SyncAlways).
func (l *logWriter) flusher() {
	defer close(l.done)
	tick := time.NewTicker(l.interval)
	defer tick.Stop()
	for {
		select {
		case <-l.kick:
			if l.mode == SyncAlways {
				l.flush(true)
				continue
			}
			// The first event after a quiet spell is written at once; those
			// behind it gather for writeEvery.
			l.flush(false)
			select {
			case <-time.After(writeEvery):
			case <-l.stop:
				return
			}
		case <-tick.C:
			l.flush(true)
		case <-l.stop:
			return
		}
	}
}

// flush writes what is buffered, syncs it if sync is set, and tells its
// batch. The file lock keeps a rotation from switching files in between.
func (l *logWriter) flush(sync bool) {
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	l.flushLocked(sync, nil)
}

// flushLocked is flush with the file lock held. It returns the log's error.
// If then is not nil, it becomes the log's error in the very step that takes
// the buffer, so that no append can slip in behind the last flush (close).
func (l *logWriter) flushLocked(sync bool, then error) error {
	l.mu.Lock()
	buf, b, failed := l.buf, l.batch, l.err
	l.buf, l.batch = l.spare[:0], newBatch()
	if then != nil && failed == nil {
		l.err = then
	}
	l.mu.Unlock()

	err := failed
	if err == nil && len(buf) > 0 {
		_, err = l.file.Write(buf)
	}
	if err == nil && sync {
		start := time.Now()
		err = syncData(l.file)
		if l.observe != nil {
			l.observe(time.Since(start))
		}
	}
	if err != nil && failed == nil {
		err = fmt.Errorf("writing the log %s: %w", l.file.Name(), err)
		l.mu.Lock()
		l.err = err
		l.mu.Unlock()
	}
	b.err = err
	close(b.done)
	l.spare = buf
	return err
}

// rotate writes and syncs what is buffered to the current file, closes it,
// and makes next the file later records go to. Every record appended before
// rotate began is in the old file when it returns.
func (l *logWriter) rotate(next *os.File, size int64) error {
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	if err := l.flushLocked(true, nil); err != nil {
		return err
	}
	l.mu.Lock()
	l.bytes = size
	l.mu.Unlock()
	old := l.file
	l.file = next
	return old.Close()
}

// size returns the bytes of the current file, written or buffered.
func (l *logWriter) size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bytes
}

// failed returns the error that stopped the log, if any.
func (l *logWriter) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// errClosed is what appends get once the log is closed.
var errClosed = errors.New("the log is closed")

// close stops the flusher, writes and syncs what is left, and closes the
// file. Later appends fail.
func (l *logWriter) close() error {
	close(l.stop)
	<-l.done
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	err := l.flushLocked(true, errClosed)
	if cerr := l.file.Close(); err == nil {
		err = cerr
	}
	return err
}
