package diskstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/webtracker/tracker/internal/domain"
)

// The files of a data directory:
//
//	snapshot                 the newest snapshot, replaced atomically
//	log-<16 hex digits>      the write-ahead logs, numbered in the order written
//	LOCK                     held by the process that uses the directory
//
// Every integer is little-endian. Every checksum is CRC-32C (Castagnoli).
//
// A log file is a header, then records appended one after another:
//
//	header   "WTRKLOG\x00" | version uint32
//	record   crc uint32 | length uint32 | visitor hash uint64 | quarter int64 | page URL (length-16 bytes)
//
// A record's crc covers its length and everything after it. A page URL is
// canonical when written and at most domain.MaxURLBytes long. The quarter
// is the event's domain.Quarter, 0 for an event that counts for the
// all-time figures only. Version 1 logs, written before time ranges, have
// no quarter (the URL is length-8 bytes): their events count all-time only.
// A log is written in one version from its header on; a process writes
// version 2 only, and reads both.
//
// A snapshot file is a header, one record per page and one per (page, UTC
// day), and an end record:
//
//	header   "WTRKSNAP" | version uint32 | next log uint64 | crc uint32 of the 20 bytes before
//	page     URL length uvarint (> 0) | URL | kind byte | body | crc uint32
//	  exact      kind 0 | visitors uvarint | visitors × hash uint64
//	  estimated  kind 1 | sketch length uvarint | sketch (as memstore marshals it)
//	  day        kind 2 | day int32 | visitors uvarint (> 0) | visitors × (hash uint64 | seen uint16)
//	  est. day   kind 3 | day int32 | secret uint64 | visitors uvarint (> 0) | visitors × (key uint32 | seen uint16)
//	end      0x00 | pages uint64 | pairs uint64 | days uint64 | triples uint64 | crc uint32 of the 33 bytes before
//
// A record's crc covers the whole record before it. pages counts the exact
// and estimated page records, pairs the hashes of exact pages, days the day
// records and triples the visitors of day records. A day record holds the
// visitors of one page on one UTC day (domain.Day, days since 1970-01-01)
// and when on that day each was seen (domain.Seen.Bits: the first quarter
// of the day in the high byte, the last in the low); it adds to the day
// only, never to the page's all-time visitors, which its page record holds.
// Writers put each page's day records right after its page record
// (earlier writers put every page record before all day records), but
// readers take them in any order: a page may have days and no page record
// (it was made during the snapshot, and the log after it holds its
// events), or a page record and no days.
//
// An estimated day record is a day of an estimated page, whose visitors
// are not kept, only a 32-bit key of each under the page's secret (see
// memstore.Store.Dump). It counts in days and triples as a day
// record does. It must come after its page's record, which it adds to:
// one that does not (or whose secret is not its page's days') is left
// out, and the page's ranges are then refused, never wrong.
//
// Version 3 snapshots, written before estimated days, have no estimated
// day records: an estimated page read from one has no days.
//
// Version 2 snapshots, written before time ranges, have no day records and
// an end record without days and triples (0x00 | pages | pairs | crc of the
// 17 bytes before). Version 1 snapshots, written before estimated pages,
// have that end record too and no kind byte: every page is exact. The next
// log is the first log the snapshot does not hold: recovery replays it and
// every later one. Anything after the end record is corruption.
const (
	snapshotName = "snapshot"
	lockName     = "LOCK"
	logPrefix    = "log-"
	tmpSuffix    = ".tmp"

	// logVersion is the version of the log format written, which reads
	// version 1 logs too; snapVersion of the snapshot format written, which
	// reads versions 1 to 3 too.
	logVersion  = 2
	snapVersion = 4
	// maxSketch bounds the length of a sketch read from a snapshot.
	maxSketch = 64 << 10

	logMagic         = "WTRKLOG\x00"
	logHeaderSize    = len(logMagic) + 4
	recordHeaderSize = 8
	// recordFixed is the part of a record's payload before its URL: the
	// visitor hash and the quarter (the hash alone in version 1).
	recordFixed   = 8 + 8
	recordFixedV1 = 8
	// maxPayload bounds a record's length: a hash, a quarter and the
	// longest URL.
	maxPayload = recordFixed + domain.MaxURLBytes

	snapMagic      = "WTRKSNAP"
	snapHeaderSize = len(snapMagic) + 4 + 8 + 4
	snapEndSize    = 1 + 4*8 + 4
	snapEndSizeV2  = 1 + 2*8 + 4
	// dayEntrySize is the bytes of one visitor of a day record,
	// estimatedEntrySize of an estimated day record.
	dayEntrySize       = 8 + 2
	estimatedEntrySize = 4 + 2
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// logName is the file name of log number seq; names sort in number order.
func logName(seq uint64) string { return fmt.Sprintf("%s%016x", logPrefix, seq) }

// parseLogName returns the number of a log file name, or false for any other
// name.
func parseLogName(name string) (uint64, bool) {
	var seq uint64
	if len(name) != len(logPrefix)+16 {
		return 0, false
	}
	if _, err := fmt.Sscanf(name, logPrefix+"%016x", &seq); err != nil || logName(seq) != name {
		return 0, false
	}
	return seq, true
}

// appendLogHeader appends the header of a log file to b.
func appendLogHeader(b []byte) []byte {
	b = append(b, logMagic...)
	return binary.LittleEndian.AppendUint32(b, logVersion)
}

// appendRecord appends the log record of one page view, seen in quarter q,
// to b.
func appendRecord(b []byte, page string, hash uint64, q domain.Quarter) []byte {
	start := len(b)
	b = binary.LittleEndian.AppendUint32(b, 0) // the crc, set below
	b = binary.LittleEndian.AppendUint32(b, uint32(recordFixed+len(page)))
	b = binary.LittleEndian.AppendUint64(b, hash)
	b = binary.LittleEndian.AppendUint64(b, uint64(q))
	b = append(b, page...)
	binary.LittleEndian.PutUint32(b[start:], crc32.Checksum(b[start+4:], crcTable))
	return b
}

// CorruptError is a file of the data directory that cannot be read as
// written. Recovery stops at one rather than start without the data it
// holds.
type CorruptError struct {
	File   string // the file's path
	Offset int64  // where the bad bytes begin
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s is corrupt at offset %d: %s", e.File, e.Offset, e.Reason)
}

// errTorn marks a log whose last record was cut short by a crash.
var errTorn = errors.New("torn tail")
