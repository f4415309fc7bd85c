package domain

import (
	"iter"
	"strconv"
	"strings"
	"time"
)

// Retention is how many days of visits the stores keep for time ranges.
// All-time counts are not affected by it.
type Retention struct{ Days int }

// Clock is what the dates and times of requests are checked against: the
// time now, and the retention of the stores.
type Clock struct {
	Retention Retention
	Now       func() time.Time
}

// DefaultRetention is the retention unless configured otherwise.
var DefaultRetention = Retention{Days: 400}

// Oldest returns the earliest instant a page view may have at now: r.Days
// days of 24 hours before (whatever now's zone does with its clocks, and
// cheaper to work out, on every event, than a calendar's days).
func (r Retention) Oldest(now time.Time) time.Time {
	return now.Add(-time.Duration(r.Days) * 24 * time.Hour)
}

// KeepFrom returns the first UTC day stores keep at now. It is two days
// earlier than the retention alone asks, so that the first day of a range
// at its start, in a zone ahead of UTC, still has all of its quarters.
func (r Retention) KeepFrom(now time.Time) Day { return DayOf(now) - Day(r.Days) - 1 }

// MaxFuture is how far ahead of the clock the time of a page view may be:
// clocks of browsers and servers are seldom further off.
const MaxFuture = 5 * time.Minute

// CheckTime checks that the time of a page view is neither in the future
// (past MaxFuture) nor older than r, and returns its Quarter. The error is
// a *FieldError for "time".
func (r Retention) CheckTime(t, now time.Time) (Quarter, error) {
	switch {
	case t.After(now.Add(MaxFuture)):
		return 0, &FieldError{Field: "time", Reason: "must not be more than 5 minutes in the future"}
	case t.Before(r.Oldest(now)):
		return 0, &FieldError{Field: "time", Reason: "must not be older than the retention of " + strconv.Itoa(r.Days) + " days"}
	}
	return QuarterOf(t), nil
}

// Date is a calendar date, without a zone: a day as a calendar shows it.
type Date struct{ t time.Time } // midnight UTC of the date

// ParseDate reads a date written YYYY-MM-DD. The error is a *FieldError
// for field.
func ParseDate(field, s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || len(s) != len(time.DateOnly) {
		return Date{}, &FieldError{Field: field, Reason: "must be a date written YYYY-MM-DD"}
	}
	return Date{t}, nil
}

// DateOf returns the date of t as the clocks of t's zone tell it.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
}

// String formats d as YYYY-MM-DD.
func (d Date) String() string { return d.t.Format(time.DateOnly) }

// AddDays returns the date n days after d.
func (d Date) AddDays(n int) Date { return Date{d.t.AddDate(0, 0, n)} }

// Before reports whether d is before o.
func (d Date) Before(o Date) bool { return d.t.Before(o.t) }

// daysUntil returns the number of days from d to o.
func (d Date) daysUntil(o Date) int { return int(o.t.Sub(d.t).Hours() / 24) }

// start returns the first instant of d in zone: its midnight, or the first
// instant after it where a clock change skips midnight.
func (d Date) start(zone *time.Location) time.Time {
	y, m, day := d.t.Date()
	t := time.Date(y, m, day, 0, 0, 0, 0, zone)
	if DateOf(t) != d { // midnight did not exist: Go moved back to the day before
		t = t.Add(time.Hour)
		t = time.Date(y, m, day, t.Hour(), 0, 0, 0, zone)
	}
	return t
}

// DateRange is the days from From to To, both included, as the clocks of
// Zone tell them.
type DateRange struct {
	From, To Date
	Zone     *time.Location
}

// Days returns the number of days of r.
func (r DateRange) Days() int { return r.From.daysUntil(r.To) + 1 }

// Period returns the quarters of r: from the start of From in Zone to the
// start of the day after To.
func (r DateRange) Period() Period {
	return Period{From: QuarterOf(r.From.start(r.Zone)), To: QuarterOf(r.To.AddDays(1).start(r.Zone))}
}

// Each yields every day of r, in order, with its quarters.
func (r DateRange) Each() iter.Seq2[Date, Period] {
	return func(yield func(Date, Period) bool) {
		start := QuarterOf(r.From.start(r.Zone))
		for d := r.From; !r.To.Before(d); d = d.AddDays(1) {
			end := QuarterOf(d.AddDays(1).start(r.Zone))
			if !yield(d, Period{From: start, To: end}) {
				return
			}
			start = end
		}
	}
}

// ParseDateRange reads the from, to and tz of a query, each possibly empty,
// under retention r at now: tz defaults to UTC, from to the first day r
// keeps, to to today, both in tz. The error is a *ValidationError naming
// the fields at fault.
func ParseDateRange(from, to, tz string, now time.Time, r Retention) (DateRange, error) {
	zone, zerr := parseZone(tz)
	if zerr != nil {
		return DateRange{}, Validate(zerr)
	}
	today := DateOf(now.In(zone))
	first := today.AddDays(1 - r.Days)
	rng := DateRange{From: first, To: today, Zone: zone}
	var ferr, terr error
	if from != "" {
		rng.From, ferr = ParseDate("from", from)
	}
	if to != "" {
		rng.To, terr = ParseDate("to", to)
	}
	if err := Validate(ferr, terr); err != nil {
		return DateRange{}, err
	}
	days := strconv.Itoa(r.Days)
	switch {
	case rng.To.Before(rng.From):
		return DateRange{}, Validate(&FieldError{Field: "from", Reason: "must not be after to"})
	case rng.From.Before(first):
		return DateRange{}, Validate(&FieldError{Field: "from", Reason: "must not be before " + first.String() +
			": days older than the retention of " + days + " days are not kept"})
	case rng.Days() > r.Days:
		return DateRange{}, Validate(&FieldError{Field: "to", Reason: "makes a range of " + strconv.Itoa(rng.Days()) +
			" days, longer than the retention of " + days + " days"})
	}
	for d := rng.From; !rng.To.AddDays(1).Before(d); d = d.AddDays(1) {
		if d.start(zone).Unix()%QuarterSeconds != 0 {
			return DateRange{}, Validate(&FieldError{Field: "tz", Reason: "has a UTC offset on " + d.String() +
				" that is not a whole number of quarter hours"})
		}
	}
	return rng, nil
}

// parseZone reads an IANA zone name; "" is UTC.
func parseZone(tz string) (*time.Location, error) {
	if tz == "" {
		return time.UTC, nil
	}
	bad := &FieldError{Field: "tz", Reason: "must be an IANA time zone name, such as Europe/Paris or UTC"}
	if tz == "Local" || strings.HasPrefix(tz, "/") || len(tz) > 64 {
		return nil, bad
	}
	zone, err := time.LoadLocation(tz)
	if err != nil {
		return nil, bad
	}
	return zone, nil
}
