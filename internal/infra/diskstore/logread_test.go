package diskstore

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// readAll reads every record of a log file's bytes, and what ended it.
func readAll(b []byte) (recs []byte, end int64, err error) {
	lr, err := newLogReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, 0, err
	}
	recs = appendLogHeader(nil)
	for {
		page, hash, err := lr.next()
		if err != nil {
			return recs, lr.off, err
		}
		recs = appendRecord(recs, string(page), hash)
	}
}

func TestLogReader(t *testing.T) {
	t.Parallel()
	log := appendLogHeader(nil)
	log = appendRecord(log, "https://a.com/", 1)
	log = appendRecord(log, "https://b.com/x", 2)
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
		{"cut in the last record", log[:whole-2], whole - int64(len(appendRecord(nil, "https://b.com/x", 2))), errTorn},
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
}

// FuzzLogReader: on any bytes the reader never panics, and what it accepts
// is exactly what the records it returns encode to.
func FuzzLogReader(f *testing.F) {
	log := appendLogHeader(nil)
	for i, page := range []string{"https://a.com/", "https://example.com/p/1?x=1", ""} {
		log = appendRecord(log, page, uint64(i+1))
		f.Add(bytes.Clone(log))
	}
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
