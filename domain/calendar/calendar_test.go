package calendar_test

import (
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rickar/cal/v2/fi"

	"github.com/kela-hva/referrals/domain/calendar"
)

var hki = calendar.New(calendar.Options{}).Location()

// at returns the instant of the given Helsinki wall-clock time.
func at(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, hki)
}

// noon returns Helsinki noon of the given date.
func noon(y int, m time.Month, d int) time.Time { return at(y, m, d, 12, 0) }

func mustParse(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return v
}

func TestLocationIsHelsinki(t *testing.T) {
	c := calendar.New(calendar.Options{})
	if got := c.Location().String(); got != "Europe/Helsinki" {
		t.Fatalf("Location() = %q, want Europe/Helsinki", got)
	}
	_, winter := time.Date(2026, 1, 15, 12, 0, 0, 0, c.Location()).Zone()
	_, summer := time.Date(2026, 7, 15, 12, 0, 0, 0, c.Location()).Zone()
	if winter != 2*3600 || summer != 3*3600 {
		t.Fatalf("offsets winter=%d summer=%d, want 7200 and 10800", winter, summer)
	}
}

func TestKnownNonBusinessDays(t *testing.T) {
	def := calendar.New(calendar.Options{})
	eves := calendar.New(calendar.Options{CountEvesAsBusinessDays: true})
	tests := []struct {
		name          string
		date          time.Time
		wantName      string
		businessIfEve bool // business day when CountEvesAsBusinessDays
	}{
		{"good friday 2026", noon(2026, 4, 3), "Pitkäperjantai", false},
		{"easter monday 2026", noon(2026, 4, 6), "Toinen pääsiäispäivä", false},
		{"may day 2026", noon(2026, 5, 1), "Vappu", false},
		{"ascension 2026", noon(2026, 5, 14), "Helatorstai", false},
		{"midsummer eve 2026", noon(2026, 6, 19), "Juhannusaatto", true},
		{"midsummer day 2026 (saturday)", noon(2026, 6, 20), "Juhannuspäivä", false},
		{"all saints 2026 (saturday)", noon(2026, 10, 31), "Pyhäinpäivä", false},
		{"independence day 2026 (sunday)", noon(2026, 12, 6), "Itsenäisyyspäivä", false},
		{"independence day 2027 (monday)", noon(2027, 12, 6), "Itsenäisyyspäivä", false},
		{"christmas eve 2026", noon(2026, 12, 24), "Jouluaatto", true},
		{"christmas day 2026", noon(2026, 12, 25), "Joulupäivä", false},
		{"boxing day 2026 (saturday)", noon(2026, 12, 26), "Tapaninpäivä", false},
		{"new year 2027", noon(2027, 1, 1), "Uudenvuodenpäivä", false},
		{"epiphany 2027", noon(2027, 1, 6), "Loppiainen", false},
		{"good friday 2027", noon(2027, 3, 26), "Pitkäperjantai", false},
		{"easter day 2027 (sunday)", noon(2027, 3, 28), "Pääsiäispäivä", false},
		{"easter monday 2027", noon(2027, 3, 29), "Toinen pääsiäispäivä", false},
		{"midsummer eve 2027", noon(2027, 6, 25), "Juhannusaatto", true},
		{"christmas eve 2027 (friday)", noon(2027, 12, 24), "Jouluaatto", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if def.IsBusinessDay(tc.date) {
				t.Errorf("default: IsBusinessDay(%s) = true, want false", tc.date.Format(time.DateOnly))
			}
			if name, ok := def.HolidayName(tc.date); !ok || name != tc.wantName {
				t.Errorf("default: HolidayName = %q, %v; want %q, true", name, ok, tc.wantName)
			}
			if got := eves.IsBusinessDay(tc.date); got != tc.businessIfEve {
				t.Errorf("eves as business days: IsBusinessDay = %v, want %v", got, tc.businessIfEve)
			}
			name, ok := eves.HolidayName(tc.date)
			if tc.businessIfEve && ok {
				t.Errorf("eves as business days: HolidayName = %q, true; want none", name)
			}
			if !tc.businessIfEve && (!ok || name != tc.wantName) {
				t.Errorf("eves as business days: HolidayName = %q, %v; want %q, true", name, ok, tc.wantName)
			}
		})
	}
}

func TestOrdinaryDays(t *testing.T) {
	c := calendar.New(calendar.Options{})
	tests := []struct {
		name     string
		date     time.Time
		business bool
	}{
		{"monday", noon(2026, 11, 23), true},
		{"wednesday", noon(2026, 11, 25), true},
		{"friday", noon(2026, 11, 27), true},
		{"thursday before good friday", noon(2026, 4, 2), true},
		{"tuesday after easter monday", noon(2026, 4, 7), true},
		{"day after boxing day is sunday, monday 28 dec", noon(2026, 12, 28), true},
		{"new year's eve is a business day", noon(2026, 12, 31), true},
		{"saturday", noon(2026, 11, 21), false},
		{"sunday", noon(2026, 11, 22), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.IsBusinessDay(tc.date); got != tc.business {
				t.Errorf("IsBusinessDay(%s) = %v, want %v", tc.date.Format(time.DateOnly), got, tc.business)
			}
			if name, ok := c.HolidayName(tc.date); ok {
				t.Errorf("HolidayName(%s) = %q, true; want none", tc.date.Format(time.DateOnly), name)
			}
		})
	}
}

func TestIsBusinessDayUsesHelsinkiDate(t *testing.T) {
	c := calendar.New(calendar.Options{})
	tests := []struct {
		name string
		in   string
		want bool
	}{
		// 22:30Z on Sunday 22 Nov is 00:30 on Monday 23 Nov in Helsinki.
		{"utc sunday, helsinki monday", "2026-11-22T22:30:00Z", true},
		// 22:30Z on Friday 20 Nov is 00:30 on Saturday 21 Nov in Helsinki.
		{"utc friday, helsinki saturday", "2026-11-20T22:30:00Z", false},
		// 21:30Z on Thursday 30 Apr is 00:30 on Friday 1 May (Vappu) in Helsinki (EEST).
		{"utc day before vappu, helsinki vappu", "2026-04-30T21:30:00Z", false},
		{"same instant in another zone", "2026-11-22T23:30:00+01:00", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.IsBusinessDay(mustParse(t, tc.in)); got != tc.want {
				t.Errorf("IsBusinessDay(%s) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestHolidayNamesForWholeYear2026(t *testing.T) {
	all := map[string]string{
		"2026-01-01": "Uudenvuodenpäivä",
		"2026-01-06": "Loppiainen",
		"2026-04-03": "Pitkäperjantai",
		"2026-04-05": "Pääsiäispäivä",
		"2026-04-06": "Toinen pääsiäispäivä",
		"2026-05-01": "Vappu",
		"2026-05-14": "Helatorstai",
		"2026-05-24": "Helluntaipäivä",
		"2026-06-19": "Juhannusaatto",
		"2026-06-20": "Juhannuspäivä",
		"2026-10-31": "Pyhäinpäivä",
		"2026-12-06": "Itsenäisyyspäivä",
		"2026-12-24": "Jouluaatto",
		"2026-12-25": "Joulupäivä",
		"2026-12-26": "Tapaninpäivä",
	}
	withoutEves := map[string]string{}
	for k, v := range all {
		if k != "2026-06-19" && k != "2026-12-24" {
			withoutEves[k] = v
		}
	}
	tests := []struct {
		name string
		opts calendar.Options
		want map[string]string
	}{
		{"default includes eves", calendar.Options{}, all},
		{"eves as business days excludes eves", calendar.Options{CountEvesAsBusinessDays: true}, withoutEves},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := calendar.New(tc.opts)
			got := map[string]string{}
			for d := noon(2026, 1, 1); d.Year() == 2026; d = d.AddDate(0, 0, 1) {
				if name, ok := c.HolidayName(d); ok {
					got[d.Format(time.DateOnly)] = name
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("got %d holidays, want %d: %v", len(got), len(tc.want), got)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s: got %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestCoincidingHolidaysAreJoined(t *testing.T) {
	// Easter 2008 was 23 March, so Ascension Day fell on 1 May (Vappu).
	c := calendar.New(calendar.Options{})
	name, ok := c.HolidayName(noon(2008, 5, 1))
	if !ok || !strings.Contains(name, "Vappu") || !strings.Contains(name, "Helatorstai") {
		t.Fatalf("HolidayName(2008-05-01) = %q, %v; want both Vappu and Helatorstai", name, ok)
	}
	if c.IsBusinessDay(noon(2008, 5, 1)) {
		t.Fatal("2008-05-01 must not be a business day")
	}
}

// The eves come from the fi package; make sure its rules give the statutory
// dates (Midsummer Eve: the Friday between 19 and 25 June; Christmas Eve:
// 24 December) so that the eve setting acts on the right days.
func TestFiEveRulesGiveExpectedDates(t *testing.T) {
	for y := 1990; y <= 2100; y++ {
		_, mid := fi.Juhannusaatto.Calc(y)
		if mid.Month() != time.June || mid.Day() < 19 || mid.Day() > 25 || mid.Weekday() != time.Friday || mid.Year() != y {
			t.Errorf("%d: Juhannusaatto = %s, want a Friday 19..25 June", y, mid.Format(time.DateOnly))
		}
		_, xmas := fi.Jouluaatto.Calc(y)
		if xmas.Month() != time.December || xmas.Day() != 24 || xmas.Year() != y {
			t.Errorf("%d: Jouluaatto = %s, want 24 December", y, xmas.Format(time.DateOnly))
		}
	}
}

// On weekdays, IsBusinessDay is exactly "no holiday name"; weekends are never
// business days.
func TestHolidayNameAgreesWithIsBusinessDay(t *testing.T) {
	for _, opts := range []calendar.Options{{}, {CountEvesAsBusinessDays: true}} {
		c := calendar.New(opts)
		for d := noon(2020, 1, 1); d.Year() < 2036; d = d.AddDate(0, 0, 1) {
			_, isHoliday := c.HolidayName(d)
			business := c.IsBusinessDay(d)
			switch d.Weekday() {
			case time.Saturday, time.Sunday:
				if business {
					t.Fatalf("%+v: weekend %s reported as business day", opts, d.Format(time.DateOnly))
				}
			default:
				if business == isHoliday {
					t.Fatalf("%+v: %s business=%v holiday=%v", opts, d.Format(time.DateOnly), business, isHoliday)
				}
			}
		}
	}
}

func TestDeadline(t *testing.T) {
	tests := []struct {
		name string
		eves bool // CountEvesAsBusinessDays
		from string
		n    int
		want string // RFC 3339 in UTC
	}{
		// Ordinary weeks.
		{"monday arrival, day 1 is tuesday", false, "2026-11-23T09:12:00Z", 1, "2026-11-24T21:59:59Z"},
		{"monday arrival, 7 days skips weekend", false, "2026-11-23T09:12:00Z", 7, "2026-12-02T21:59:59Z"},
		{"friday arrival, day 1 is monday", false, "2026-11-20T10:00:00Z", 1, "2026-11-23T21:59:59Z"},

		// Helsinki date counts, not the UTC date.
		{"late evening helsinki, same utc date", false, "2026-11-23T23:30:00+02:00", 1, "2026-11-24T21:59:59Z"},
		{"just after helsinki midnight, utc date is previous sunday", false, "2026-11-23T00:30:00+02:00", 1, "2026-11-24T21:59:59Z"},
		{"utc monday evening is helsinki tuesday", false, "2026-11-23T22:30:00Z", 1, "2026-11-25T21:59:59Z"},
		{"utc thursday evening is helsinki friday", false, "2026-11-19T22:30:00Z", 1, "2026-11-23T21:59:59Z"},

		// Arrival on a weekend or holiday.
		{"saturday arrival, day 1 is monday", false, "2026-11-21T10:00:00+02:00", 1, "2026-11-23T21:59:59Z"},
		{"saturday arrival, 7 days", false, "2026-11-21T10:00:00+02:00", 7, "2026-12-01T21:59:59Z"},
		{"sunday arrival, day 1 is monday", false, "2026-11-22T10:00:00+02:00", 1, "2026-11-23T21:59:59Z"},
		{"good friday arrival skips easter monday", false, "2026-04-03T10:00:00+03:00", 1, "2026-04-07T20:59:59Z"},
		{"christmas day arrival", false, "2026-12-25T10:00:00+02:00", 1, "2026-12-28T21:59:59Z"},

		// Other 2026 holidays.
		{"day before vappu", false, "2026-04-30T10:00:00+03:00", 1, "2026-05-04T20:59:59Z"},
		{"day before ascension", false, "2026-05-13T10:00:00+03:00", 1, "2026-05-15T20:59:59Z"},

		// Christmas 2026 - New Year - Epiphany 2027.
		{"wed 23 dec, day 1 is mon 28 dec", false, "2026-12-23T10:00:00+02:00", 1, "2026-12-28T21:59:59Z"},
		{"wed 23 dec, 7 days skips new year and epiphany", false, "2026-12-23T10:00:00+02:00", 7, "2027-01-07T21:59:59Z"},
		{"wed 23 dec, eves counted: day 1 is christmas eve, moved to mon 28 dec (§5)", true, "2026-12-23T10:00:00+02:00", 1, "2026-12-28T21:59:59Z"},
		{"wed 23 dec, eves counted: day 2 is mon 28 dec too", true, "2026-12-23T10:00:00+02:00", 2, "2026-12-28T21:59:59Z"},
		{"wed 23 dec, eves counted: 7 days", true, "2026-12-23T10:00:00+02:00", 7, "2027-01-05T21:59:59Z"},
		{"new year's eve, day 1 skips new year", false, "2026-12-31T10:00:00+02:00", 1, "2027-01-04T21:59:59Z"},
		{"new year's eve, 3 days skips epiphany", false, "2026-12-31T10:00:00+02:00", 3, "2027-01-07T21:59:59Z"},
		{"tue 5 jan, day 1 skips epiphany", false, "2027-01-05T10:00:00+02:00", 1, "2027-01-07T21:59:59Z"},

		// Midsummer 2026 (eve Fri 19 June; summer time, +03).
		{"thu before midsummer, day 1 is monday", false, "2026-06-18T10:00:00+03:00", 1, "2026-06-22T20:59:59Z"},
		{"thu before midsummer, 7 days", false, "2026-06-18T10:00:00+03:00", 7, "2026-06-30T20:59:59Z"},
		{"thu before midsummer, eves counted: day 1 is the eve, moved to monday (§5)", true, "2026-06-18T10:00:00+03:00", 1, "2026-06-22T20:59:59Z"},
		{"thu before midsummer, eves counted: 7 days", true, "2026-06-18T10:00:00+03:00", 7, "2026-06-29T20:59:59Z"},

		// Easter 2027 and the DST change on Sunday 28 March 2027.
		{"wed before easter 2027, still winter time", false, "2027-03-24T10:00:00+02:00", 1, "2027-03-25T21:59:59Z"},
		{"thu before easter 2027, day 1 is tuesday in summer time", false, "2027-03-25T10:00:00+02:00", 1, "2027-03-30T20:59:59Z"},
		{"thu before easter 2027, 7 days", false, "2027-03-25T10:00:00+02:00", 7, "2027-04-07T20:59:59Z"},

		// n == 0: same day if business day, else next business day.
		{"n=0 on business day is same day", false, "2026-11-23T09:12:00Z", 0, "2026-11-23T21:59:59Z"},
		{"n=0 late evening helsinki is same helsinki day", false, "2026-11-23T21:59:00Z", 0, "2026-11-23T21:59:59Z"},
		{"n=0 on saturday is monday", false, "2026-11-21T10:00:00+02:00", 0, "2026-11-23T21:59:59Z"},
		{"n=0 on good friday is tuesday after easter", false, "2026-04-03T10:00:00+03:00", 0, "2026-04-07T20:59:59Z"},
		{"n=0 on christmas eve by default is mon 28 dec", false, "2026-12-24T10:00:00+02:00", 0, "2026-12-28T21:59:59Z"},
		{"n=0 on christmas eve when eves counted moves to mon 28 dec (§5)", true, "2026-12-24T10:00:00+02:00", 0, "2026-12-28T21:59:59Z"},
		{"n=0 on midsummer eve by default is monday", false, "2026-06-19T10:00:00+03:00", 0, "2026-06-22T20:59:59Z"},
		{"negative n behaves like 0", false, "2026-11-21T10:00:00+02:00", -3, "2026-11-23T21:59:59Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := calendar.New(calendar.Options{CountEvesAsBusinessDays: tc.eves})
			from := mustParse(t, tc.from)
			want := mustParse(t, tc.want)
			got := c.Deadline(from, tc.n)
			if !got.Equal(want) {
				t.Fatalf("Deadline(%s, %d) = %s (%s UTC), want %s", tc.from, tc.n,
					got.Format(time.RFC3339), got.UTC().Format(time.RFC3339), tc.want)
			}
			if got.Location() != c.Location() {
				t.Errorf("result location = %v, want Europe/Helsinki", got.Location())
			}
			if h, m, s := got.Clock(); h != 23 || m != 59 || s != 59 || got.Nanosecond() != 0 {
				t.Errorf("result %s is not 23:59:59.000 Helsinki", got.Format(time.RFC3339Nano))
			}
		})
	}
}

func TestDeadlineOffsetSwitchesAtDST(t *testing.T) {
	c := calendar.New(calendar.Options{})
	before := c.Deadline(mustParse(t, "2027-03-24T10:00:00+02:00"), 1) // Thu 25 March
	after := c.Deadline(mustParse(t, "2027-03-25T10:00:00+02:00"), 1)  // Tue 30 March
	if _, off := before.Zone(); off != 2*3600 {
		t.Errorf("deadline %s: offset %d, want +02:00", before.Format(time.RFC3339), off)
	}
	if _, off := after.Zone(); off != 3*3600 {
		t.Errorf("deadline %s: offset %d, want +03:00", after.Format(time.RFC3339), off)
	}
	if got := after.Format(time.RFC3339); got != "2027-03-30T23:59:59+03:00" {
		t.Errorf("deadline = %s, want 2027-03-30T23:59:59+03:00", got)
	}
}

// For every arrival day over several years and n = 0..25, the deadline is a
// business day and never an eve (Act 150/1930 §5), is not before the arrival
// date, and exactly n business days lie between arrival and deadline (for
// n = 0: none, or the deadline is the arrival day itself) — one more when the
// eves are counted and the n-th day was an eve, moved to the next business day.
func TestDeadlineInvariants(t *testing.T) {
	def := calendar.New(calendar.Options{})
	for _, opts := range []calendar.Options{{}, {CountEvesAsBusinessDays: true}} {
		c := calendar.New(opts)
		moved := 0
		for from := at(2025, 12, 1, 9, 30); from.Year() < 2029; from = from.AddDate(0, 0, 1) {
			for n := 0; n <= 25; n++ {
				dl := c.Deadline(from, n)
				if !c.IsBusinessDay(dl) || !def.IsBusinessDay(dl) {
					t.Fatalf("%+v Deadline(%s,%d)=%s is not a business day, or is an eve", opts, from.Format(time.DateOnly), n, dl)
				}
				got := c.BusinessDaysBetween(from, dl)
				want := n
				if n == 0 && c.IsBusinessDay(from) {
					want = 0
				} else if n == 0 {
					want = 1
				}
				if opts.CountEvesAsBusinessDays && got == want+1 && offEve(c, def, from, dl, want) {
					want++
					moved++
				}
				if got != want {
					t.Fatalf("%+v BusinessDaysBetween(%s, Deadline(.,%d)=%s) = %d, want %d",
						opts, from.Format(time.DateOnly), n, dl.Format(time.DateOnly), got, want)
				}
				// Strictly increasing in n, except that n = 0 and n = 1
				// coincide when the arrival day is not a business day, and
				// n - 1 and n when n - 1 ended on an eve and was moved onto
				// day n.
				if n > 0 {
					prev := c.Deadline(from, n-1)
					same := n == 1 && !c.IsBusinessDay(from) || c.BusinessDaysBetween(from, prev) == n
					if same != dl.Equal(prev) || dl.Before(prev) {
						t.Fatalf("%+v Deadline(%s, %d) = %s, Deadline(., %d) = %s", opts,
							from.Format(time.DateOnly), n, dl.Format(time.DateOnly), n-1, prev.Format(time.DateOnly))
					}
				}
			}
		}
		if opts.CountEvesAsBusinessDays && moved == 0 {
			t.Error("no deadline was moved off an eve: the check above proved nothing")
		}
	}
}

// offEve reports whether the business day (by c) before dl is an eve (not a
// business day by def) and the k-th business day after from: the deadline
// ended on it and Act 150/1930 §5 moved it to dl.
func offEve(c, def *calendar.Calendar, from, dl time.Time, k int) bool {
	prev := dl.AddDate(0, 0, -1)
	for !c.IsBusinessDay(prev) {
		prev = prev.AddDate(0, 0, -1)
	}
	return !def.IsBusinessDay(prev) && c.BusinessDaysBetween(from, prev) == k
}

func TestBusinessDaysBetween(t *testing.T) {
	tests := []struct {
		name     string
		eves     bool
		from, to time.Time
		want     int
	}{
		{"same day", false, at(2026, 11, 23, 8, 0), at(2026, 11, 23, 20, 0), 0},
		{"to before from", false, noon(2026, 11, 25), noon(2026, 11, 23), 0},
		{"next day", false, noon(2026, 11, 23), noon(2026, 11, 24), 1},
		{"next day by minutes across helsinki midnight", false, at(2026, 11, 23, 23, 50), at(2026, 11, 24, 0, 10), 1},
		{"friday to monday over weekend", false, noon(2026, 11, 20), noon(2026, 11, 23), 1},
		{"friday to sunday", false, noon(2026, 11, 20), noon(2026, 11, 22), 0},
		{"saturday to monday", false, noon(2026, 11, 21), noon(2026, 11, 23), 1},
		{"monday to monday", false, noon(2026, 11, 23), noon(2026, 11, 30), 5},
		{"over easter 2026", false, noon(2026, 4, 2), noon(2026, 4, 7), 1},
		{"over christmas to mon 28 dec", false, noon(2026, 12, 23), noon(2026, 12, 28), 1},
		{"over christmas to mon 28 dec, eves counted", true, noon(2026, 12, 23), noon(2026, 12, 28), 2},
		{"christmas to epiphany+1", false, noon(2026, 12, 23), noon(2027, 1, 7), 7},
		{"christmas to epiphany+1, eves counted", true, noon(2026, 12, 23), noon(2027, 1, 7), 8},
		// 2026: 261 weekdays; weekday holidays 1.1, 6.1, 3.4, 6.4, 1.5, 14.5,
		// 25.12 plus eves 19.6 and 24.12.
		{"whole year 2026", false, noon(2025, 12, 31), noon(2026, 12, 31), 252},
		{"whole year 2026, eves counted", true, noon(2025, 12, 31), noon(2026, 12, 31), 254},
		{"late by 2 business days after deadline", false, mustParseNoT("2026-12-02T21:59:59Z"), mustParseNoT("2026-12-04T08:00:00Z"), 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := calendar.New(calendar.Options{CountEvesAsBusinessDays: tc.eves})
			if got := c.BusinessDaysBetween(tc.from, tc.to); got != tc.want {
				t.Fatalf("BusinessDaysBetween(%s, %s) = %d, want %d",
					tc.from.Format(time.RFC3339), tc.to.Format(time.RFC3339), got, tc.want)
			}
		})
	}
}

func mustParseNoT(s string) time.Time {
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return v
}

// naiveBusinessDays counts day by day using IsBusinessDay.
func naiveBusinessDays(c *calendar.Calendar, from, to time.Time) int {
	fy, fm, fd := from.In(hki).Date()
	ty, tm, td := to.In(hki).Date()
	end := time.Date(ty, tm, td, 12, 0, 0, 0, hki)
	n := 0
	for d := time.Date(fy, fm, fd+1, 12, 0, 0, 0, hki); !d.After(end); d = d.AddDate(0, 0, 1) {
		if c.IsBusinessDay(d) {
			n++
		}
	}
	return n
}

// naiveBusinessDuration sums, day by day, the overlap of [from, to) with
// each business day's [midnight, next midnight).
func naiveBusinessDuration(c *calendar.Calendar, from, to time.Time) time.Duration {
	if !to.After(from) {
		return 0
	}
	y, m, d := from.In(hki).Date()
	var total time.Duration
	for day := time.Date(y, m, d, 0, 0, 0, 0, hki); day.Before(to); {
		next := time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, hki)
		if c.IsBusinessDay(day) {
			lo, hi := day, next
			if from.After(lo) {
				lo = from
			}
			if to.Before(hi) {
				hi = to
			}
			if hi.After(lo) {
				total += hi.Sub(lo)
			}
		}
		day = next
	}
	return total
}

func TestBetweenMatchesNaiveCount(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := at(2018, 1, 1, 0, 0)
	span := int64(16 * 365 * 24 * time.Hour)
	for _, opts := range []calendar.Options{{}, {CountEvesAsBusinessDays: true}} {
		c := calendar.New(opts)
		for i := 0; i < 3000; i++ {
			from := base.Add(time.Duration(rng.Int64N(span))).Truncate(time.Minute)
			// Mostly short ranges, some spanning years.
			var length time.Duration
			switch i % 3 {
			case 0:
				length = time.Duration(rng.Int64N(int64(72 * time.Hour)))
			case 1:
				length = time.Duration(rng.Int64N(int64(60 * 24 * time.Hour)))
			default:
				length = time.Duration(rng.Int64N(int64(3 * 365 * 24 * time.Hour)))
			}
			to := from.Add(length)
			if got, want := c.BusinessDaysBetween(from, to), naiveBusinessDays(c, from, to); got != want {
				t.Fatalf("%+v BusinessDaysBetween(%s, %s) = %d, naive %d", opts, from, to, got, want)
			}
			if got, want := c.BusinessDurationBetween(from, to), naiveBusinessDuration(c, from, to); got != want {
				t.Fatalf("%+v BusinessDurationBetween(%s, %s) = %s, naive %s", opts, from, to, got, want)
			}
		}
	}
}

func TestBusinessDurationBetween(t *testing.T) {
	tests := []struct {
		name     string
		eves     bool
		from, to time.Time
		want     time.Duration
	}{
		{"to equals from", false, noon(2026, 11, 23), noon(2026, 11, 23), 0},
		{"to before from", false, noon(2026, 11, 24), noon(2026, 11, 23), 0},
		{"within one business day", false, at(2026, 11, 23, 9, 0), at(2026, 11, 23, 17, 0), 8 * time.Hour},
		{"within a saturday", false, at(2026, 11, 21, 9, 0), at(2026, 11, 21, 17, 0), 0},
		{"within a holiday", false, at(2026, 5, 14, 9, 0), at(2026, 5, 14, 17, 0), 0},
		{"across helsinki midnight between business days", false, at(2026, 11, 23, 23, 30), at(2026, 11, 24, 0, 30), time.Hour},
		{"next business day", false, at(2026, 11, 23, 10, 0), at(2026, 11, 24, 9, 0), 23 * time.Hour},
		{"friday afternoon to monday morning over weekend", false, at(2026, 11, 20, 15, 0), at(2026, 11, 23, 9, 0), 18 * time.Hour},
		{"saturday to monday", false, at(2026, 11, 21, 10, 0), at(2026, 11, 23, 10, 0), 10 * time.Hour},
		{"saturday to sunday", false, at(2026, 11, 21, 10, 0), at(2026, 11, 22, 10, 0), 0},
		{"whole week monday to monday", false, at(2026, 11, 23, 0, 0), at(2026, 11, 30, 0, 0), 5 * 24 * time.Hour},
		{"over christmas", false, at(2026, 12, 23, 12, 0), at(2026, 12, 28, 12, 0), 24 * time.Hour},
		{"over christmas, eves counted", true, at(2026, 12, 23, 12, 0), at(2026, 12, 28, 12, 0), 48 * time.Hour},
		{"over easter 2027 and dst change", false, at(2027, 3, 25, 12, 0), at(2027, 3, 30, 12, 0), 24 * time.Hour},
		{"business week spanning dst change", false, at(2027, 3, 22, 0, 0), at(2027, 4, 5, 0, 0), 8 * 24 * time.Hour},
		{"from utc instants, helsinki dates count", false, mustParseNoT("2026-11-20T21:30:00Z"), mustParseNoT("2026-11-22T22:30:00Z"), time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := calendar.New(calendar.Options{CountEvesAsBusinessDays: tc.eves})
			if got := c.BusinessDurationBetween(tc.from, tc.to); got != tc.want {
				t.Fatalf("BusinessDurationBetween(%s, %s) = %s, want %s",
					tc.from.Format(time.RFC3339), tc.to.Format(time.RFC3339), got, tc.want)
			}
		})
	}
}

// BusinessDurationBetween counts whole business days as 24h. That holds only
// if no DST change falls on a business day; check it over a long range.
func TestBusinessDaysAreAlways24Hours(t *testing.T) {
	c := calendar.New(calendar.Options{CountEvesAsBusinessDays: true})
	for d := at(1990, 1, 1, 0, 0); d.Year() < 2100; {
		next := time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, hki)
		if c.IsBusinessDay(d) && next.Sub(d) != 24*time.Hour {
			t.Fatalf("business day %s is %s long", d.Format(time.DateOnly), next.Sub(d))
		}
		d = next
	}
}

func TestZeroValueCalendarUsesDefaults(t *testing.T) {
	var zero calendar.Calendar
	def := calendar.New(calendar.Options{})
	from := noon(2026, 12, 23)
	if got, want := zero.Deadline(from, 7), def.Deadline(from, 7); !got.Equal(want) {
		t.Fatalf("zero value Deadline = %s, want %s", got, want)
	}
	if zero.IsBusinessDay(noon(2026, 6, 19)) {
		t.Fatal("zero value treats Midsummer Eve as a business day")
	}
}

func TestYearsOutsideCache(t *testing.T) {
	c := calendar.New(calendar.Options{})
	// Beyond the cached range (1900..2399): 2451-12-25 is a Monday; Easter 2500 is 18 April.
	if c.IsBusinessDay(noon(2451, 12, 25)) {
		t.Error("2451-12-25 should be a holiday")
	}
	if name, ok := c.HolidayName(noon(2500, 4, 16)); !ok || name != "Pitkäperjantai" {
		t.Errorf("2500-04-16: HolidayName = %q, %v; want Pitkäperjantai", name, ok)
	}
	// Friday 1899-12-29 to Tuesday 1900-01-02: New Year 1900 (Monday) is a holiday.
	if got := c.BusinessDaysBetween(noon(1899, 12, 29), noon(1900, 1, 2)); got != 1 {
		t.Errorf("BusinessDaysBetween across 1899/1900 = %d, want 1", got)
	}
}

func TestConcurrentDeadlines(t *testing.T) {
	cals := []*calendar.Calendar{
		calendar.New(calendar.Options{}),
		calendar.New(calendar.Options{CountEvesAsBusinessDays: true}),
	}
	const workers = 8
	years := []int{2030, 2031, 2150, 2151, 2152, 2300, 2301, 2399, 2400, 1950}
	results := make([][]time.Time, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			var out []time.Time
			// Each worker walks the years in a different order so that
			// several goroutines race to build the same year tables.
			for i := range years {
				y := years[(i+w)%len(years)]
				c := cals[w%2]
				for d := noon(y, 1, 1); d.Year() == y; d = d.AddDate(0, 0, 3) {
					out = append(out, c.Deadline(d, 1+d.YearDay()%10))
					c.BusinessDaysBetween(d, d.AddDate(0, 1, 0))
					c.BusinessDurationBetween(d, d.AddDate(0, 0, 9))
					c.HolidayName(d)
				}
			}
			results[w] = out
		})
	}
	wg.Wait()

	// Recompute sequentially (tables are now cached) and compare.
	for w := 0; w < workers; w++ {
		var want []time.Time
		for i := range years {
			y := years[(i+w)%len(years)]
			c := cals[w%2]
			for d := noon(y, 1, 1); d.Year() == y; d = d.AddDate(0, 0, 3) {
				want = append(want, c.Deadline(d, 1+d.YearDay()%10))
			}
		}
		if len(want) != len(results[w]) {
			t.Fatalf("worker %d: %d results, want %d", w, len(results[w]), len(want))
		}
		for i := range want {
			if !want[i].Equal(results[w][i]) {
				t.Fatalf("worker %d result %d: %s, want %s", w, i, results[w][i], want[i])
			}
		}
	}
}

func BenchmarkDeadline(b *testing.B) {
	c := calendar.New(calendar.Options{})
	from := mustParseNoT("2026-12-23T09:12:00Z")
	b.ReportAllocs()
	for b.Loop() {
		_ = c.Deadline(from, 7)
	}
}

func BenchmarkBusinessDaysBetween(b *testing.B) {
	c := calendar.New(calendar.Options{})
	from := mustParseNoT("2026-01-15T09:12:00Z")
	to := mustParseNoT("2026-12-23T09:12:00Z")
	b.ReportAllocs()
	for b.Loop() {
		_ = c.BusinessDaysBetween(from, to)
	}
}

func BenchmarkBusinessDurationBetween(b *testing.B) {
	c := calendar.New(calendar.Options{})
	from := mustParseNoT("2026-12-18T09:12:00Z")
	to := mustParseNoT("2027-01-08T15:40:00Z")
	b.ReportAllocs()
	for b.Loop() {
		_ = c.BusinessDurationBetween(from, to)
	}
}
