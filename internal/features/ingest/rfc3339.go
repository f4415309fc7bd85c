package ingest

import "time"

// parseTime reads an RFC 3339 timestamp as time.Parse(time.RFC3339, …)
// does, with the same answer for every input. The forms sites send,
// 2026-12-01T09:30:00Z with an optional fraction of a second and any
// offset, are read here without the string time.Parse needs and its
// layout's walk: on every timed event that was a third of what the time
// costs the handler. Anything else goes to time.Parse, which accepts it or
// says why not.
func parseTime(b []byte) (time.Time, error) {
	if sec, nsec, ok := parseCommonTime(b); ok {
		return time.Unix(sec, int64(nsec)), nil
	}
	return time.Parse(time.RFC3339, string(b))
}

// parseCommonTime reads YYYY-MM-DDTHH:MM:SS[.F{1,9}](Z|±HH:MM) as Unix
// seconds and nanoseconds, or reports false for text of any other form
// or out of range (a 30th of February, an hour 24, a second 60), which
// time.Parse rejects or reads on its own.
func parseCommonTime(b []byte) (sec int64, nsec int32, ok bool) {
	if len(b) < len("2006-01-02T15:04:05Z") ||
		b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return 0, 0, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	second, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || second > 59 {
		return 0, 0, false
	}
	rest := b[19:]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && n <= 10 && '0' <= rest[n] && rest[n] <= '9' {
			n++
		}
		if n == 1 || n > 10 { // no digit, or more than nine
			return 0, 0, false
		}
		f, _ := digits(rest[1:n])
		for range 10 - n {
			f *= 10
		}
		nsec, rest = int32(f), rest[n:]
	}
	var offset int
	switch {
	case len(rest) == 1 && rest[0] == 'Z':
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, okh := digits(rest[1:3])
		om, okm := digits(rest[4:6])
		if !okh || !okm || oh > 23 || om > 59 {
			return 0, 0, false
		}
		if offset = (oh*60 + om) * 60; rest[0] == '-' {
			offset = -offset
		}
	default:
		return 0, 0, false
	}
	days := daysFromCivil(year, month, day)
	return days*86400 + int64(hour*3600+minute*60+second-offset), nsec, true
}

// digits reads b as a decimal number, reporting false if any byte is not a
// digit.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// daysIn returns the number of days of month in year, proleptic Gregorian.
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days from 1970-01-01 to the given date, by
// Howard Hinnant's algorithm, for years 0 to 9999.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := (y+400)/400 - 1 // floors for y = -1 (January 0000) too
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
