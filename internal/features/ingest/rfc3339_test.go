package ingest

import (
	"math/rand/v2"
	"testing"
	"time"
)

// sameAsTimeParse fails t unless parseTime answers s as time.Parse does:
// the same instant, or an error for both.
func sameAsTimeParse(t *testing.T, s string) {
	t.Helper()
	want, werr := time.Parse(time.RFC3339, s)
	got, gerr := parseTime([]byte(s))
	switch {
	case (werr == nil) != (gerr == nil):
		t.Fatalf("parseTime(%q) error %v, time.Parse error %v", s, gerr, werr)
	case werr == nil && !got.Equal(want):
		t.Fatalf("parseTime(%q) = %v, time.Parse = %v", s, got, want)
	}
}

func TestParseTimeAgreesWithTimeParse(t *testing.T) {
	for _, s := range []string{
		"2026-12-01T09:30:00Z",
		"2026-12-01T09:30:00.5Z",
		"2026-12-01T09:30:00.123456789Z",
		"2026-12-01T09:30:00.1234567891Z", // ten digits
		"2026-12-01T09:30:00.Z",
		"2026-11-30T23:59:59-05:00",
		"2026-12-01T00:00:00+14:00",
		"2026-12-01T00:00:00+23:59",
		"2026-12-01T00:00:00+24:00",
		"2026-12-01T00:00:00-00:00",
		"2026-12-01T00:00:00+05:60",
		"2026-12-01T00:00:00+0500",
		"2024-02-29T12:00:00Z",
		"2026-02-29T12:00:00Z",
		"2000-02-29T12:00:00Z",
		"1900-02-29T12:00:00Z",
		"2026-04-31T12:00:00Z",
		"2026-12-31T23:59:59Z",
		"2026-13-01T00:00:00Z",
		"2026-00-01T00:00:00Z",
		"2026-12-00T00:00:00Z",
		"2026-12-01T24:00:00Z",
		"2026-12-01T23:60:00Z",
		"2026-12-01T23:59:60Z",
		"0000-01-01T00:00:00Z",
		"0000-03-01T00:00:00Z",
		"9999-12-31T23:59:59.999999999Z",
		"1970-01-01T00:00:00Z",
		"1969-12-31T23:59:59Z",
		"2026-12-01t09:30:00Z",
		"2026-12-01T09:30:00z",
		"2026-12-01 09:30:00Z",
		"2026-12-01T09:30:00",
		"2026-12-01T09:30Z",
		"2026-12-01T09:30:00ZZ",
		"2026-12-01T09:30:00,5Z",
		"+2026-12-01T09:30:00Z",
		"2026-1-01T09:30:00Z",
		"2026-12-01T09:30:00+05:00:00",
		"",
		"yesterday",
	} {
		sameAsTimeParse(t, s)
	}
}

// TestParseTimeAgreesOnRandomTimes checks many times, each field drawn from
// beyond its range as well, and each with an offset or a fraction.
func TestParseTimeAgreesOnRandomTimes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	num := func(width, max int) string {
		s := ""
		for n := rng.IntN(max); width > 0; width-- {
			s = string(rune('0'+n%10)) + s
			n /= 10
		}
		return s
	}
	for range 200_000 {
		s := num(4, 10_000) + "-" + num(2, 14) + "-" + num(2, 33) + "T" +
			num(2, 26) + ":" + num(2, 62) + ":" + num(2, 62)
		if rng.IntN(3) == 0 {
			s += "." + num(1+rng.IntN(10), 1_000_000_000)
		}
		switch rng.IntN(3) {
		case 0:
			s += "Z"
		case 1:
			s += "+" + num(2, 26) + ":" + num(2, 62)
		default:
			s += "-" + num(2, 26) + ":" + num(2, 62)
		}
		sameAsTimeParse(t, s)
	}
}

// FuzzParseTime runs its seeds with go test; go test -fuzz FuzzParseTime
// searches further.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-12-01T09:30:00Z", "2026-11-30T23:59:59.25-05:00", "2024-02-29T23:59:59+14:00"} {
		f.Add(s)
	}
	f.Fuzz(sameAsTimeParse)
}

func BenchmarkParseTime(b *testing.B) {
	raw := []byte("2026-12-01T09:30:00Z")
	b.Run("parseTime", func(b *testing.B) {
		for b.Loop() {
			if _, err := parseTime(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("time.Parse", func(b *testing.B) {
		for b.Loop() {
			if _, err := time.Parse(time.RFC3339, string(raw)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
