package diskstore

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/webtracker/tracker/internal/domain"
)

// logReader reads the records of one log file in order.
type logReader struct {
	r       *bufio.Reader
	off     int64  // where the next record begins
	size    int64  // of the whole file
	version uint32 // of the file's format, from its header
	fixed   int64  // the bytes of a record's payload before its URL
	buf     []byte
}

// newLogReader checks the header of a log file of size bytes and returns a
// reader of its records. A header cut short is a torn tail: the crash came
// right after the file was made.
func newLogReader(r io.Reader, size int64) (*logReader, error) {
	lr := &logReader{r: bufio.NewReaderSize(r, 1<<16), size: size, buf: make([]byte, recordHeaderSize+maxPayload)}
	h := lr.buf[:logHeaderSize]
	if _, err := io.ReadFull(lr.r, h); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return lr, errTorn
		}
		return nil, err
	}
	if string(h[:len(logMagic)]) != logMagic {
		return nil, &CorruptError{Offset: 0, Reason: "not a log file (bad magic)"}
	}
	switch lr.version = binary.LittleEndian.Uint32(h[len(logMagic):]); lr.version {
	case 1:
		lr.fixed = recordFixedV1
	case logVersion:
		lr.fixed = recordFixed
	default:
		return nil, &CorruptError{Offset: int64(len(logMagic)),
			Reason: fmt.Sprintf("log format version %d, this program reads 1 and %d", lr.version, logVersion)}
	}
	lr.off = int64(logHeaderSize)
	return lr, nil
}

// next returns the next record: its page URL (valid until the next call),
// visitor hash and quarter (0 in a version 1 log). At the end of the file it returns io.EOF. A last record
// that runs past the end of the file, or whose checksum fails and that ends
// exactly at the end, or bad bytes followed by nothing but zeros, is a write
// a crash cut short: next returns errTorn, and the file's valid records end
// at lr.off. Any other bad record is a *CorruptError. (Only the newest log
// may be torn; the caller checks that.)
func (lr *logReader) next() (page []byte, hash uint64, q domain.Quarter, err error) {
	remaining := lr.size - lr.off
	if remaining == 0 {
		return nil, 0, 0, io.EOF
	}
	if remaining < recordHeaderSize {
		return nil, 0, 0, errTorn
	}
	head := lr.buf[:recordHeaderSize]
	if _, err := io.ReadFull(lr.r, head); err != nil {
		return nil, 0, 0, lr.readErr(err)
	}
	sum := binary.LittleEndian.Uint32(head)
	n := int64(binary.LittleEndian.Uint32(head[4:]))
	if n < lr.fixed || n > lr.fixed+domain.MaxURLBytes {
		// A write cut short leaves a prefix of what was written, whose
		// length field is whole and right; only zeros (a file system that
		// extended the file but not its data) can stand in for it.
		return nil, 0, 0, lr.bad(head, fmt.Sprintf("record length %d is out of range", n))
	}
	if lr.off+recordHeaderSize+n > lr.size {
		return nil, 0, 0, errTorn
	}
	payload := lr.buf[recordHeaderSize : recordHeaderSize+n]
	if _, err := io.ReadFull(lr.r, payload); err != nil {
		return nil, 0, 0, lr.readErr(err)
	}
	if crc32.Checksum(lr.buf[4:recordHeaderSize+n], crcTable) != sum {
		if lr.off+recordHeaderSize+n == lr.size {
			return nil, 0, 0, errTorn
		}
		return nil, 0, 0, lr.bad(lr.buf[:recordHeaderSize+n], "record checksum mismatch")
	}
	lr.off += recordHeaderSize + n
	if lr.fixed == recordFixed {
		q = domain.Quarter(binary.LittleEndian.Uint64(payload[8:]))
	}
	return payload[lr.fixed:], binary.LittleEndian.Uint64(payload), q, nil
}

// bad decides whether the bad record at lr.off, of which read was read, is a
// torn tail (zeros to the end of the file) or corruption.
func (lr *logReader) bad(read []byte, reason string) error {
	zeros := allZero(read)
	for zeros {
		b, err := lr.r.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		zeros = b == 0
	}
	if zeros {
		return errTorn
	}
	return &CorruptError{Offset: lr.off, Reason: reason}
}

// readErr turns a short read into errTorn: the file is shorter than its
// size said, so it was cut while being read, which only a crash explains.
func (lr *logReader) readErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errTorn
	}
	return err
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
