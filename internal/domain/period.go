package domain

import (
	"iter"
	"time"
)

// Stores keep the time of a page view at the precision of a quarter of an
// hour: every UTC offset in use is a whole number of quarters, so every
// zone's midnight falls on a quarter's edge, and a day in any zone is a
// whole number of quarters.
const (
	QuarterSeconds = 15 * 60
	QuartersPerDay = 24 * 60 * 60 / QuarterSeconds
)

// Quarter is a quarter of an hour, counted from the Unix epoch: when a page
// view happened, at the precision stores keep. The zero Quarter stands for
// no time at all: a view with it counts for the all-time figures only, as
// the durable logs written before time ranges do.
type Quarter int64

// QuarterOf returns the quarter that t falls in.
func QuarterOf(t time.Time) Quarter { return Quarter(floorDiv(t.Unix(), QuarterSeconds)) }

// IsZero reports whether q is the zero Quarter, no time.
func (q Quarter) IsZero() bool { return q == 0 }

// Day returns the UTC day of q.
func (q Quarter) Day() Day { return Day(floorDiv(int64(q), QuartersPerDay)) }

// OfDay returns the index of q within its UTC day, 0 to QuartersPerDay-1.
func (q Quarter) OfDay() int { return int(int64(q) - int64(q.Day())*QuartersPerDay) }

// Time returns the instant q starts at.
func (q Quarter) Time() time.Time { return time.Unix(int64(q)*QuarterSeconds, 0).UTC() }

// Day is a UTC calendar day, counted from 1970-01-01, day 0.
type Day int32

// DayOf returns the UTC day of t.
func DayOf(t time.Time) Day { return Day(floorDiv(t.Unix(), 24*60*60)) }

// First returns the first quarter of d.
func (d Day) First() Quarter { return Quarter(int64(d) * QuartersPerDay) }

// String formats d as YYYY-MM-DD.
func (d Day) String() string { return d.First().Time().Format(time.DateOnly) }

// Period is the quarters from From up to To, To excluded.
type Period struct{ From, To Quarter }

// Span is a part of one UTC day: its quarters from From to To, To excluded,
// 0 ≤ From < To ≤ QuartersPerDay. A whole day is {Day, 0, QuartersPerDay}.
type Span struct {
	Day      Day
	From, To int
}

// Whole reports whether s is its whole day.
func (s Span) Whole() bool { return s.From == 0 && s.To == QuartersPerDay }

// Spans yields the UTC days p covers, in order, each with the part of it
// that p covers. An empty period yields nothing.
func (p Period) Spans() iter.Seq[Span] {
	return func(yield func(Span) bool) {
		for q := p.From; q < p.To; {
			d := q.Day()
			next := min(p.To, (d + 1).First())
			if !yield(Span{Day: d, From: q.OfDay(), To: q.OfDay() + int(next-q)}) {
				return
			}
			q = next
		}
	}
}

// Seen is when a visitor was seen on a UTC day: the first and the last
// quarter of that day with a view, each 0 to QuartersPerDay-1. That is all a
// store keeps of the times of one visitor on one page and day, and it is
// enough to tell whether the visitor was seen in any period: a period's part
// of a day is the whole day, or an end of it (from a zone's midnight on, or
// up to it), and a visitor was seen in the end from quarter f on exactly
// when its last quarter is at least f, in the start up to quarter t exactly
// when its first is before t.
type Seen struct{ First, Last uint8 }

// SeenAt returns the Seen of one view in quarter q of a day.
func SeenAt(q int) Seen { return Seen{First: uint8(q), Last: uint8(q)} }

// Merge returns the Seen of the views of s and o together.
func (s Seen) Merge(o Seen) Seen {
	return Seen{First: min(s.First, o.First), Last: max(s.Last, o.Last)}
}

// In reports whether a visitor seen as s was seen in the span's part of its
// day. For a part that touches neither end of the day (which no zone's day
// makes, short of a zone that moves from behind UTC to ahead of it on that
// very day), a visitor seen before and after the part and never in it is
// counted too.
func (s Seen) In(sp Span) bool { return int(s.Last) >= sp.From && int(s.First) < sp.To }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Bits packs s into 16 bits, First in the high byte, for stores that keep it
// in a table.
func (s Seen) Bits() uint16 { return uint16(s.First)<<8 | uint16(s.Last) }

// SeenFromBits unpacks what Bits packed.
func SeenFromBits(b uint16) Seen { return Seen{First: uint8(b >> 8), Last: uint8(b)} }

// Valid reports whether s is a Seen a day can have: First ≤ Last, both
// quarters of a day.
func (s Seen) Valid() bool { return s.First <= s.Last && int(s.Last) < QuartersPerDay }

// RangeCount is the distinct visitors of a page over periods: in each of
// them, and in all of them together, a visitor seen in several counted once.
type RangeCount struct {
	Total Count
	Each  []Count
}
