package diskstore

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/webtracker/tracker/internal/domain"
)

// snapshotInfo describes a snapshot written or read.
type snapshotInfo struct {
	nextLog       uint64
	pages, pairs  int64
	days, triples int64 // day records and the visitors they hold
	bytes         int64
}

// walker is what a snapshot is written from, as memstore.Store walks
// itself, one page at a time: an exact page with its visitors or an
// estimated one with its sketch, then each of its days, with its visitors
// and when on that day each was seen, or, for an estimated page, with its
// visitors' keys. A page's record and its days are of one state: no
// conversion comes between them.
type walker interface {
	Dump(
		onPage func(page string, visitors []domain.VisitorID, sketch []byte) error,
		onDay func(page string, day domain.Day, visitors []domain.VisitorID, seen []domain.Seen) error,
		onEstimated func(page string, day domain.Day, secret uint64, keys []uint32, seen []domain.Seen) error,
	) error
}

// The kinds of record after a URL.
const (
	pageExact        = 0
	pageEstimated    = 1
	pageDay          = 2
	pageEstimatedDay = 3
)

// writeSnapshot writes every page, then every day of every page, that mem
// gives into dir's snapshot, atomically: a temporary file, synced, renamed
// over the old snapshot, and the directory synced. A failure leaves the old
// snapshot as it was.
func writeSnapshot(dir string, nextLog uint64, mem walker) (snapshotInfo, error) {
	info := snapshotInfo{nextLog: nextLog}
	tmp := filepath.Join(dir, snapshotName+tmpSuffix)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return info, err
	}
	defer func() {
		if f != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)

	b := append(make([]byte, 0, 1<<16), snapMagic...)
	b = binary.LittleEndian.AppendUint32(b, snapVersion)
	b = binary.LittleEndian.AppendUint64(b, nextLog)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	if _, err := w.Write(b); err != nil {
		return info, err
	}
	// Each page's days follow its record, in the same walk: it began after
	// the new log, so it holds every page and day the old logs hold.
	err = mem.Dump(func(page string, visitors []domain.VisitorID, sketch []byte) error {
		b = binary.AppendUvarint(b[:0], uint64(len(page)))
		b = append(b, page...)
		if sketch != nil {
			b = append(b, pageEstimated)
			b = binary.AppendUvarint(b, uint64(len(sketch)))
			b = append(b, sketch...)
			b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
			info.pages++
			_, err := w.Write(b)
			return err
		}
		b = append(b, pageExact)
		b = binary.AppendUvarint(b, uint64(len(visitors)))
		sum := crc32.Update(0, crcTable, b)
		if _, err := w.Write(b); err != nil {
			return err
		}
		for len(visitors) > 0 {
			chunk := visitors[:min(len(visitors), cap(b)/8)]
			visitors = visitors[len(chunk):]
			b = b[:0]
			for _, v := range chunk {
				b = binary.LittleEndian.AppendUint64(b, v.Hash())
			}
			sum = crc32.Update(sum, crcTable, b)
			if _, err := w.Write(b); err != nil {
				return err
			}
			info.pairs += int64(len(chunk))
		}
		info.pages++
		_, err := w.Write(binary.LittleEndian.AppendUint32(b[:0], sum))
		return err
	}, func(page string, day domain.Day, visitors []domain.VisitorID, seen []domain.Seen) error {
		var err error
		b, err = writeDay(w, b[:0], page, day, visitors, seen, &info)
		return err
	}, func(page string, day domain.Day, secret uint64, keys []uint32, seen []domain.Seen) error {
		var err error
		b, err = writeEstimatedDay(w, b[:0], page, day, secret, keys, seen, &info)
		return err
	})
	if err != nil {
		return info, err
	}
	b = append(b[:0], 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(info.pages))
	b = binary.LittleEndian.AppendUint64(b, uint64(info.pairs))
	b = binary.LittleEndian.AppendUint64(b, uint64(info.days))
	b = binary.LittleEndian.AppendUint64(b, uint64(info.triples))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	if _, err := w.Write(b); err != nil {
		return info, err
	}
	if err := w.Flush(); err != nil {
		return info, err
	}
	if err := f.Sync(); err != nil {
		return info, err
	}
	st, err := f.Stat()
	if err != nil {
		return info, err
	}
	info.bytes = st.Size()
	err = f.Close()
	f = nil
	if err != nil {
		os.Remove(tmp)
		return info, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, snapshotName)); err != nil {
		os.Remove(tmp)
		return info, err
	}
	return info, syncDir(dir)
}

// writeDay writes the record of one page's day to w, using b (returned,
// possibly grown) as its buffer, and counts it in info. A day that would
// not read back (a zero visitor, a Seen no day has) fails the snapshot
// rather than make one that stops the next start; an empty day is left
// out, since it has nothing to keep.
func writeDay(w io.Writer, b []byte, page string, day domain.Day, visitors []domain.VisitorID, seen []domain.Seen, info *snapshotInfo) ([]byte, error) {
	if len(visitors) != len(seen) {
		return b, fmt.Errorf("day %v of %s: %d visitors and %d times", day, page, len(visitors), len(seen))
	}
	head := binary.LittleEndian.AppendUint32(nil, uint32(day))
	return writeDayRecord(w, b, page, pageDay, head, len(visitors), dayEntrySize, func(b []byte, i int) ([]byte, error) {
		if visitors[i].IsZero() || !seen[i].Valid() {
			return b, fmt.Errorf("day %v of %s: a zero visitor, or one seen at %v", day, page, seen[i])
		}
		b = binary.LittleEndian.AppendUint64(b, visitors[i].Hash())
		return binary.LittleEndian.AppendUint16(b, seen[i].Bits()), nil
	}, info)
}

// writeEstimatedDay is writeDay for a day of an estimated page: its
// visitors' keys under secret instead of their hashes.
func writeEstimatedDay(w io.Writer, b []byte, page string, day domain.Day, secret uint64, keys []uint32, seen []domain.Seen, info *snapshotInfo) ([]byte, error) {
	if len(keys) != len(seen) {
		return b, fmt.Errorf("estimated day %v of %s: %d keys and %d times", day, page, len(keys), len(seen))
	}
	head := binary.LittleEndian.AppendUint32(nil, uint32(day))
	head = binary.LittleEndian.AppendUint64(head, secret)
	return writeDayRecord(w, b, page, pageEstimatedDay, head, len(keys), estimatedEntrySize, func(b []byte, i int) ([]byte, error) {
		if keys[i] == math.MaxUint32 || !seen[i].Valid() {
			return b, fmt.Errorf("estimated day %v of %s: key %#x seen at %v", day, page, keys[i], seen[i])
		}
		b = binary.LittleEndian.AppendUint32(b, keys[i])
		return binary.LittleEndian.AppendUint16(b, seen[i].Bits()), nil
	}, info)
}

// writeDayRecord writes a record of kind for page: head, then n entries of
// size bytes that entry appends, in chunks of b; and counts it in info.
func writeDayRecord(w io.Writer, b []byte, page string, kind byte, head []byte, n, size int,
	entry func(b []byte, i int) ([]byte, error), info *snapshotInfo) ([]byte, error) {
	if n == 0 {
		return b, nil
	}
	b = binary.AppendUvarint(b[:0], uint64(len(page)))
	b = append(b, page...)
	b = append(b, kind)
	b = append(b, head...)
	b = binary.AppendUvarint(b, uint64(n))
	sum := crc32.Update(0, crcTable, b)
	if _, err := w.Write(b); err != nil {
		return b, err
	}
	step := max(1, cap(b)/size)
	for i := 0; i < n; i += step {
		b = b[:0]
		for j := i; j < min(i+step, n); j++ {
			var err error
			if b, err = entry(b, j); err != nil {
				return b, err
			}
		}
		sum = crc32.Update(sum, crcTable, b)
		if _, err := w.Write(b); err != nil {
			return b, err
		}
	}
	info.days++
	info.triples += int64(n)
	_, err := w.Write(binary.LittleEndian.AppendUint32(b[:0], sum))
	return b, err
}

// loader is what a snapshot or a log is read into.
type loader interface {
	Record(ctx context.Context, v domain.PageView) error
	RecordAll(ctx context.Context, page domain.PageURL, visitors []domain.VisitorID) error
	RecordDay(ctx context.Context, page domain.PageURL, day domain.Day, visitors []domain.VisitorID, seen []domain.Seen) error
	RestoreSketch(ctx context.Context, page domain.PageURL, sketch []byte) error
	RecordEstimatedDay(ctx context.Context, page domain.PageURL, day domain.Day, secret uint64, keys []uint32, seen []domain.Seen) error
}

// readSnapshot reads the snapshot at path into mem, each page's URL made
// canonical again under policy (so a page identity rule turned on since
// merges the pages it now makes one). Anything that does not read back as
// written is a *CorruptError naming the file and the offset.
func readSnapshot(path string, policy domain.URLPolicy, mem loader) (snapshotInfo, error) {
	var info snapshotInfo
	f, err := os.Open(path)
	if err != nil {
		return info, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return info, err
	}
	info.bytes = st.Size()
	r := &snapReader{r: bufio.NewReaderSize(f, 1<<20), size: st.Size()}
	err = r.read(&info, policy, mem)
	var ce *CorruptError
	if errors.As(err, &ce) {
		ce.File = path
	}
	return info, err
}

// snapReader reads a snapshot, keeping count of the offset.
type snapReader struct {
	r    *bufio.Reader
	off  int64
	size int64
	sum  uint32 // the running checksum of the record being read
}

func (r *snapReader) corrupt(off int64, format string, args ...any) error {
	return &CorruptError{Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// full reads exactly len(b) bytes into b and adds them to the checksum.
func (r *snapReader) full(b []byte) error {
	n, err := io.ReadFull(r.r, b)
	r.sum = crc32.Update(r.sum, crcTable, b[:n])
	r.off += int64(n)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return r.corrupt(r.off, "the file ends in the middle of a record (truncated)")
	}
	return err
}

// uvarint reads an unsigned varint and adds its bytes to the checksum.
func (r *snapReader) uvarint() (uint64, error) {
	var b [binary.MaxVarintLen64]byte
	for i := range b {
		if err := r.full(b[i : i+1]); err != nil {
			return 0, err
		}
		if b[i] < 0x80 {
			v, n := binary.Uvarint(b[:i+1])
			if n <= 0 {
				return 0, r.corrupt(r.off-int64(i+1), "bad varint")
			}
			return v, nil
		}
	}
	return 0, r.corrupt(r.off-binary.MaxVarintLen64, "varint too long")
}

// check reads a stored checksum and compares it with the running one.
func (r *snapReader) check(start int64, what string) error {
	want := r.sum
	var b [4]byte
	if err := r.full(b[:]); err != nil {
		return err
	}
	if binary.LittleEndian.Uint32(b[:]) != want {
		return r.corrupt(start, "%s checksum mismatch", what)
	}
	r.sum = 0
	return nil
}

func (r *snapReader) read(info *snapshotInfo, policy domain.URLPolicy, mem loader) error {
	head := make([]byte, snapHeaderSize-4)
	if err := r.full(head); err != nil {
		return err
	}
	if string(head[:len(snapMagic)]) != snapMagic {
		return r.corrupt(0, "not a snapshot (bad magic)")
	}
	version := binary.LittleEndian.Uint32(head[len(snapMagic):])
	if version < 1 || version > snapVersion {
		return r.corrupt(int64(len(snapMagic)), "snapshot format version %d, this program reads 1 to %d", version, snapVersion)
	}
	info.nextLog = binary.LittleEndian.Uint64(head[len(snapMagic)+4:])
	if err := r.check(0, "header"); err != nil {
		return err
	}

	buf := make([]byte, 1<<16)
	visitors := make([]domain.VisitorID, 0, len(buf)/8)
	seen := make([]domain.Seen, 0, len(buf)/dayEntrySize)
	for {
		start := r.off
		n, err := r.uvarint()
		if err != nil {
			return err
		}
		if n == 0 {
			return r.end(start, version, info)
		}
		if n > domain.MaxURLBytes {
			return r.corrupt(start, "page URL length %d is out of range", n)
		}
		if err := r.full(buf[:n]); err != nil {
			return err
		}
		page, err := policy.Canonical(string(buf[:n]))
		if err != nil {
			return r.corrupt(start, "page URL: %v", err)
		}
		kind := byte(pageExact)
		if version > 1 {
			var k [1]byte
			if err := r.full(k[:]); err != nil {
				return err
			}
			kind = k[0]
		}
		switch {
		case kind == pageExact:
			err = r.exact(start, page, buf, visitors, mem, info)
		case kind == pageEstimated:
			err = r.sketch(start, page, buf, mem, info)
		case kind == pageDay && version >= 3:
			err = r.day(start, page, buf, visitors, seen, mem, info)
		case kind == pageEstimatedDay && version >= 4:
			err = r.estimatedDay(start, page, buf, seen, mem, info)
		default:
			return r.corrupt(start, "record of unknown kind %d in a version %d snapshot", kind, version)
		}
		if err != nil {
			return err
		}
	}
}

// exact reads the rest of an exact page's record, which began at start,
// into mem, using buf and visitors.
func (r *snapReader) exact(start int64, page domain.PageURL, buf []byte, visitors []domain.VisitorID, mem loader, info *snapshotInfo) error {
	count, err := r.uvarint()
	if err != nil {
		return err
	}
	if count > uint64(r.size-r.off)/8 {
		return r.corrupt(start, "%d visitors do not fit in the rest of the file", count)
	}
	for count > 0 {
		chunk := buf[:8*min(count, uint64(len(buf)/8))]
		if err := r.full(chunk); err != nil {
			return err
		}
		count -= uint64(len(chunk) / 8)
		visitors = visitors[:0]
		for i := 0; i < len(chunk); i += 8 {
			v, err := domain.VisitorFromHash(binary.LittleEndian.Uint64(chunk[i:]))
			if err != nil {
				return r.corrupt(r.off-int64(len(chunk)-i), "visitor hash 0")
			}
			visitors = append(visitors, v)
		}
		if err := mem.RecordAll(context.Background(), page, visitors); err != nil {
			return err
		}
		info.pairs += int64(len(visitors))
	}
	if err := r.check(start, "page record"); err != nil {
		return err
	}
	info.pages++
	return nil
}

// day reads the rest of a day record, which began at start, into mem,
// using buf, visitors and seen. Each visitor and its Seen are checked as
// read, so that a bad one is named by its offset.
func (r *snapReader) day(start int64, page domain.PageURL, buf []byte, visitors []domain.VisitorID, seen []domain.Seen, mem loader, info *snapshotInfo) error {
	var d [4]byte
	if err := r.full(d[:]); err != nil {
		return err
	}
	day := domain.Day(int32(binary.LittleEndian.Uint32(d[:])))
	return r.entries(start, buf, dayEntrySize, info, func(chunk []byte, off int64) error {
		visitors, seen = visitors[:0], seen[:0]
		for i := 0; i < len(chunk); i += dayEntrySize {
			v, err := domain.VisitorFromHash(binary.LittleEndian.Uint64(chunk[i:]))
			if err != nil {
				return r.corrupt(off+int64(i), "visitor hash 0")
			}
			sn, err := r.seen(off+int64(i), binary.LittleEndian.Uint16(chunk[i+8:]))
			if err != nil {
				return err
			}
			visitors, seen = append(visitors, v), append(seen, sn)
		}
		return mem.RecordDay(context.Background(), page, day, visitors, seen)
	})
}

// estimatedDay reads the rest of an estimated day record, which began at
// start, into mem, using buf and seen, checking each entry as day does.
func (r *snapReader) estimatedDay(start int64, page domain.PageURL, buf []byte, seen []domain.Seen, mem loader, info *snapshotInfo) error {
	var d [12]byte
	if err := r.full(d[:]); err != nil {
		return err
	}
	day, secret := domain.Day(int32(binary.LittleEndian.Uint32(d[:]))), binary.LittleEndian.Uint64(d[4:])
	keys := make([]uint32, 0, len(buf)/estimatedEntrySize)
	return r.entries(start, buf, estimatedEntrySize, info, func(chunk []byte, off int64) error {
		keys, seen = keys[:0], seen[:0]
		for i := 0; i < len(chunk); i += estimatedEntrySize {
			k := binary.LittleEndian.Uint32(chunk[i:])
			if k == math.MaxUint32 {
				return r.corrupt(off+int64(i), "key %#x, which no day holds", k)
			}
			sn, err := r.seen(off+int64(i), binary.LittleEndian.Uint16(chunk[i+4:]))
			if err != nil {
				return err
			}
			keys, seen = append(keys, k), append(seen, sn)
		}
		return mem.RecordEstimatedDay(context.Background(), page, day, secret, keys, seen)
	})
}

// seen returns the Seen of bits, read at off, or a *CorruptError if no day
// has it.
func (r *snapReader) seen(off int64, bits uint16) (domain.Seen, error) {
	sn := domain.SeenFromBits(bits)
	if !sn.Valid() {
		return sn, r.corrupt(off, "a visitor seen from quarter %d to %d of a day", sn.First, sn.Last)
	}
	return sn, nil
}

// entries reads the rest of a day record, which began at start: its count
// of entries, then the entries of size bytes, in chunks of buf that add
// takes with the offset of the chunk, then the checksum; and counts the
// record in info. An error of add that matches domain.ErrInvalid makes the
// record corrupt.
func (r *snapReader) entries(start int64, buf []byte, size int, info *snapshotInfo, add func(chunk []byte, off int64) error) error {
	count, err := r.uvarint()
	if err != nil {
		return err
	}
	switch {
	case count == 0:
		return r.corrupt(start, "a day record with no visitors")
	case count > uint64(r.size-r.off)/uint64(size):
		return r.corrupt(start, "%d visitors of a day do not fit in the rest of the file", count)
	}
	for count > 0 {
		chunk := buf[:size*int(min(count, uint64(len(buf)/size)))]
		if err := r.full(chunk); err != nil {
			return err
		}
		count -= uint64(len(chunk) / size)
		if err := add(chunk, r.off-int64(len(chunk))); err != nil {
			if errors.Is(err, domain.ErrInvalid) {
				return r.corrupt(start, "%v", err)
			}
			return err
		}
		info.triples += int64(len(chunk) / size)
	}
	if err := r.check(start, "day record"); err != nil {
		return err
	}
	info.days++
	return nil
}

// sketch reads the rest of an estimated page's record, which began at
// start, into mem, using buf, and counts it in info.
func (r *snapReader) sketch(start int64, page domain.PageURL, buf []byte, mem loader, info *snapshotInfo) error {
	n, err := r.uvarint()
	if err != nil {
		return err
	}
	if n > maxSketch || n > uint64(len(buf)) {
		return r.corrupt(start, "sketch length %d is out of range", n)
	}
	if err := r.full(buf[:n]); err != nil {
		return err
	}
	// The checksum first: a sketch that fails it is corrupt, not invalid.
	data := buf[:n]
	if err := r.check(start, "page record"); err != nil {
		return err
	}
	if err := mem.RestoreSketch(context.Background(), page, data); err != nil {
		if errors.Is(err, domain.ErrInvalid) {
			return r.corrupt(start, "%v", err)
		}
		return err
	}
	info.pages++
	return nil
}

// end reads the end record of a snapshot of version, which must match what
// was read and be last.
func (r *snapReader) end(start int64, version uint32, info *snapshotInfo) error {
	var b [32]byte
	counts := b[:snapEndSize-5]
	if version < 3 {
		counts = b[:snapEndSizeV2-5]
	}
	if err := r.full(counts); err != nil {
		return err
	}
	if err := r.check(start, "end record"); err != nil {
		return err
	}
	pages, pairs := binary.LittleEndian.Uint64(b[:]), binary.LittleEndian.Uint64(b[8:])
	days, triples := binary.LittleEndian.Uint64(b[16:]), binary.LittleEndian.Uint64(b[24:])
	if pages != uint64(info.pages) || pairs != uint64(info.pairs) {
		return r.corrupt(start, "the end record counts %d pages and %d visitors, the file holds %d and %d",
			pages, pairs, info.pages, info.pairs)
	}
	if days != uint64(info.days) || triples != uint64(info.triples) {
		return r.corrupt(start, "the end record counts %d days and %d visitors of days, the file holds %d and %d",
			days, triples, info.days, info.triples)
	}
	if r.off != r.size {
		return r.corrupt(r.off, "%d bytes after the end record", r.size-r.off)
	}
	return nil
}
