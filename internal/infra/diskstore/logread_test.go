package diskstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"testing"

	"github.com/webtracker/tracker/internal/domain"
)

// readAll reads every record of a log file's bytes, and what ended it: recs
// is what the records read encode to, in the file's version.
func readAll(b []byte) (recs []byte, end int64, err error) {
	recs, end, _, err = readQuarters(b)
	return recs, end, err
}

// readQuarters is readAll that also returns the quarter of each record.
func readQuarters(b []byte) (recs []byte, end int64, qs []domain.Quarter, err error) {
	lr, err := newLogReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, 0, nil, err
	}
	if lr.version == 1 {
		recs = appendLogHeaderV1(nil)
	} else {
		recs = appendLogHeader(nil)
	}
	for {
		page, hash, q, err := lr.next()
		if err != nil {
			return recs, lr.off, qs, err
		}
		qs = append(qs, q)
		if lr.version == 1 {
			recs = appendRecordV1(recs, string(page), hash)
		} else {
			recs = appendRecord(recs, string(page), hash, q)
		}
	}
}

// appendLogHeaderV1 appends the header of a version 1 log, as written
// before time ranges.
func appendLogHeaderV1(b []byte) []byte {
	b = append(b, logMagic...)
	return binary.LittleEndian.AppendUint32(b, 1)
}

// appendRecordV1 appends a version 1 log record: no quarter.
func appendRecordV1(b []byte, page string, hash uint64) []byte {
	start := len(b)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(8+len(page)))
	b = binary.LittleEndian.AppendUint64(b, hash)
	b = append(b, page...)
	binary.LittleEndian.PutUint32(b[start:], crc32.Checksum(b[start+4:], crcTable))
	return b
}

func TestLogReader(t *testing.T) {
	t.Parallel()
	log := appendLogHeader(nil)
	log = appendRecord(log, "https://a.com/", 1, 2_000_000)
	log = appendRecord(log, "https://b.com/x", 2, 0)
	whole := int64(len(log))
	for _, tt := range []struct {
		name    string
		b       []byte
		wantEnd int64
		want    error // io.EOF, errTorn, or a *CorruptError
	}{
		{"whole", log, whole, io.EOF},
		{"empty file", nil, 0, errTorn},
		{"header only", log[:logHeaderSize], int64(logHeaderSize), io.EOF},
		{"cut in the last record", log[:whole-2], whole - int64(len(appendRecord(nil, "https://b.com/x", 2, 0))), errTorn},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, end, err := readAll(tt.b)
			if !errors.Is(err, tt.want) || end != tt.wantEnd {
				t.Errorf("readAll = end %d, %v; want end %d, %v", end, err, tt.wantEnd, tt.want)
			}
		})
	}
	bad := bytes.Clone(log)
	bad[0] = 'X'
	var ce *CorruptError
	if _, _, err := readAll(bad); !errors.As(err, &ce) || ce.Offset != 0 {
		t.Errorf("bad magic: %v, want a *CorruptError at 0", err)
	}
	future := bytes.Clone(log)
	future[len(logMagic)] = logVersion + 1
	if _, _, err := readAll(future); !errors.As(err, &ce) || ce.Offset != int64(len(logMagic)) {
		t.Errorf("version %d: %v, want a *CorruptError at %d", logVersion+1, err, len(logMagic))
	}
}

// TestLogReaderVersions: a version 2 record gives back its quarter,
// negative ones too; a version 1 log reads with no quarter, a URL shorter
// than a quarter included.
func TestLogReaderVersions(t *testing.T) {
	t.Parallel()
	v2 := appendLogHeader(nil)
	v2 = appendRecord(v2, "https://a.com/", 1, 1_900_000)
	v2 = appendRecord(v2, "https://a.com/", 2, -5)
	v2 = appendRecord(v2, "https://a.com/", 3, 0)
	v1 := appendLogHeaderV1(nil)
	v1 = appendRecordV1(v1, "https://a.com/", 1)
	v1 = appendRecordV1(v1, "x", 2)
	for _, tt := range []struct {
		name string
		b    []byte
		want []domain.Quarter
	}{
		{"version 2", v2, []domain.Quarter{1_900_000, -5, 0}},
		{"version 1", v1, []domain.Quarter{0, 0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			recs, end, qs, err := readQuarters(tt.b)
			if !errors.Is(err, io.EOF) || end != int64(len(tt.b)) || !bytes.Equal(recs, tt.b) {
				t.Fatalf("readQuarters = end %d of %d, %v; want every record read back as written", end, len(tt.b), err)
			}
			if fmt.Sprint(qs) != fmt.Sprint(tt.want) {
				t.Errorf("quarters %v, want %v", qs, tt.want)
			}
		})
	}
}

// FuzzLogReader: on any bytes the reader never panics, and what it accepts
// is exactly what the records it returns encode to.
func FuzzLogReader(f *testing.F) {
	log := appendLogHeader(nil)
	for i, page := range []string{"https://a.com/", "https://example.com/p/1?x=1", ""} {
		log = appendRecord(log, page, uint64(i+1), domain.Quarter(i*1000))
		f.Add(bytes.Clone(log))
	}
	f.Add(appendRecordV1(appendLogHeaderV1(nil), "https://a.com/", 1))
	f.Add(log[:len(log)-3])
	f.Add(append(bytes.Clone(log), make([]byte, 20)...))
	f.Add(append(bytes.Clone(log), 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff))
	f.Add([]byte(logMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, end, err := readAll(b)
		var ce *CorruptError
		switch {
		case errors.As(err, &ce):
			if ce.Offset < 0 || ce.Offset > int64(len(b)) {
				t.Fatalf("corrupt at offset %d of a %d-byte file", ce.Offset, len(b))
			}
		case errors.Is(err, io.EOF), errors.Is(err, errTorn) && recs != nil:
			if end > int64(len(b)) || !bytes.Equal(recs, b[:end]) {
				t.Fatalf("the records read do not encode to the %d bytes accepted", end)
			}
			if errors.Is(err, io.EOF) && end != int64(len(b)) {
				t.Fatalf("end of file at %d of %d bytes", end, len(b))
			}
		case errors.Is(err, errTorn): // a header cut short
			if len(b) >= logHeaderSize {
				t.Fatalf("a whole header is called torn")
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}
