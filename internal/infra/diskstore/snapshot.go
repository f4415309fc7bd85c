package diskstore

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/webtracker/tracker/internal/domain"
)

// snapshotInfo describes a snapshot written or read.
type snapshotInfo struct {
	nextLog      uint64
	pages, pairs int64
	bytes        int64
}

// eachFunc walks a store's pages, as memstore.Store.Each does: an exact
// page with its visitors, an estimated one with its sketch.
type eachFunc func(fn func(page string, visitors []domain.VisitorID, sketch []byte) error) error

// The kinds of page record.
const (
	pageExact     = 0
	pageEstimated = 1
)

// writeSnapshot writes every page that each gives into dir's snapshot,
// atomically: a temporary file, synced, renamed over the old snapshot, and
// the directory synced. A failure leaves the old snapshot as it was.
func writeSnapshot(dir string, nextLog uint64, each eachFunc) (snapshotInfo, error) {
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
	err = each(func(page string, visitors []domain.VisitorID, sketch []byte) error {
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
	})
	if err != nil {
		return info, err
	}
	b = append(b[:0], 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(info.pages))
	b = binary.LittleEndian.AppendUint64(b, uint64(info.pairs))
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

// loader is what a snapshot or a log is read into.
type loader interface {
	Record(ctx context.Context, v domain.PageView) error
	RecordAll(ctx context.Context, page domain.PageURL, visitors []domain.VisitorID) error
	RestoreSketch(ctx context.Context, page domain.PageURL, sketch []byte) error
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
	if version != 1 && version != snapVersion {
		return r.corrupt(int64(len(snapMagic)), "snapshot format version %d, this program reads 1 and %d", version, snapVersion)
	}
	info.nextLog = binary.LittleEndian.Uint64(head[len(snapMagic)+4:])
	if err := r.check(0, "header"); err != nil {
		return err
	}

	ctx := context.Background()
	buf := make([]byte, 1<<16)
	visitors := make([]domain.VisitorID, 0, len(buf)/8)
	for {
		start := r.off
		n, err := r.uvarint()
		if err != nil {
			return err
		}
		if n == 0 {
			return r.end(start, info)
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
		switch kind {
		case pageExact:
		case pageEstimated:
			if err := r.sketch(start, page, buf, mem); err != nil {
				return err
			}
			info.pages++
			continue
		default:
			return r.corrupt(start, "page record of unknown kind %d", kind)
		}
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
			if err := mem.RecordAll(ctx, page, visitors); err != nil {
				return err
			}
			info.pairs += int64(len(visitors))
		}
		if err := r.check(start, "page record"); err != nil {
			return err
		}
		info.pages++
	}
}

// sketch reads the rest of an estimated page's record, which began at
// start, into mem, using buf.
func (r *snapReader) sketch(start int64, page domain.PageURL, buf []byte, mem loader) error {
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
	return nil
}

// end reads the end record, which must match what was read and be last.
func (r *snapReader) end(start int64, info *snapshotInfo) error {
	var b [16]byte
	if err := r.full(b[:]); err != nil {
		return err
	}
	if err := r.check(start, "end record"); err != nil {
		return err
	}
	pages, pairs := binary.LittleEndian.Uint64(b[:]), binary.LittleEndian.Uint64(b[8:])
	if pages != uint64(info.pages) || pairs != uint64(info.pairs) {
		return r.corrupt(start, "the end record counts %d pages and %d visitors, the file holds %d and %d",
			pages, pairs, info.pages, info.pairs)
	}
	if r.off != r.size {
		return r.corrupt(r.off, "%d bytes after the end record", r.size-r.off)
	}
	return nil
}
