package visitors

import (
	"net/http"
	"strconv"

	"github.com/webtracker/tracker/internal/domain"
	"github.com/webtracker/tracker/internal/web"
)

// MaxDailyDays bounds the days of one daily series; DefaultDailyDays is the
// length of a series without from.
const (
	MaxDailyDays     = 366
	DefaultDailyDays = 30
)

// DailyResponse is the answer of the daily series: the distinct visitors of
// each day, and of the whole range, where a visitor of several days counts
// once (so the total is not the sum of the days).
type DailyResponse struct {
	URL           string  `json:"url"`
	From          string  `json:"from"`
	To            string  `json:"to"`
	TZ            string  `json:"tz"`
	Visitors      int64   `json:"visitors"`
	Exact         bool    `json:"exact"`
	RelativeError float64 `json:"relative_error,omitempty"`
	Days          []Day   `json:"days"`
}

// Day is one day of a daily series.
type Day struct {
	Date     string `json:"date"`
	Visitors int64  `json:"visitors"`
}

// Daily answers 200 with a DailyResponse for the url, from, to and tz of
// the query, or a problem for a bad one. Without from, the series is the
// DefaultDailyDays days up to to (today by default), from the first day
// kept at the earliest.
func Daily(rc RangeCounter, policy domain.URLPolicy, clock domain.Clock) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := readQuery(r.URL.RawQuery)
		var page domain.PageURL
		if err == nil {
			page, err = q.page(policy)
		}
		var rng domain.DateRange
		if err == nil {
			rng, err = q.dailyDates(clock)
		}
		if err != nil {
			web.Error(w, r, err)
			return
		}
		var (
			periods []domain.Period
			dates   []string
		)
		for d, p := range rng.Each() {
			periods = append(periods, p)
			dates = append(dates, d.String())
		}
		got, err := rc.Range(r.Context(), page, periods)
		if err != nil {
			web.Error(w, r, err)
			return
		}
		resp := DailyResponse{URL: page.String(), From: rng.From.String(), To: rng.To.String(), TZ: rng.Zone.String(),
			Visitors: got.Total.Visitors, Exact: got.Total.Exact(), RelativeError: got.Total.RelativeError,
			Days: make([]Day, len(dates))}
		for i, date := range dates {
			resp.Days[i] = Day{Date: date, Visitors: got.Each[i].Visitors}
		}
		w.Header()["Cache-Control"] = noStore
		web.WriteJSON(w, r, http.StatusOK, resp)
	})
}

// dailyDates returns the days of a daily series: as dates reads them, but
// from defaults to DefaultDailyDays before to, and at most MaxDailyDays.
func (q query) dailyDates(clock domain.Clock) (domain.DateRange, error) {
	if !q.given[1] {
		to, err := q.dates(clock) // to, or today, with its zone
		if err != nil {
			return domain.DateRange{}, err
		}
		from := to.To.AddDays(1 - DefaultDailyDays)
		if from.Before(to.From) {
			from = to.From
		}
		q.from, q.given[1] = from.String(), true
	}
	rng, err := q.dates(clock)
	if err == nil && rng.Days() > MaxDailyDays {
		err = domain.Validate(&domain.FieldError{Field: "to", Reason: "makes a series of " + strconv.Itoa(rng.Days()) +
			" days; a daily series has at most " + strconv.Itoa(MaxDailyDays)})
	}
	return rng, err
}
