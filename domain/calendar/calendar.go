package calendar

import (
	"math/bits"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	_ "time/tzdata" // Europe/Helsinki must load on hosts without a zoneinfo database.

	"github.com/rickar/cal/v2"
	"github.com/rickar/cal/v2/fi"
)

// zoneName is the IANA zone in which all Finnish deadlines are reckoned.
const zoneName = "Europe/Helsinki"

// helsinki is loaded once per process. With time/tzdata embedded the load
// cannot fail for a valid zone name, so New never has to report an error.
var helsinki = mustLoadHelsinki()

func mustLoadHelsinki() *time.Location {
	loc, err := time.LoadLocation(zoneName)
	if err != nil {
		// Unreachable: time/tzdata is linked in and the name is valid.
		panic("calendar: loading " + zoneName + " despite embedded time/tzdata: " + err.Error())
	}
	return loc
}

// Options configures a Calendar. The zero value gives the default rules.
type Options struct {
	// CountEvesAsBusinessDays makes Midsummer Eve (juhannusaatto, the Friday
	// between 19 and 25 June) and Christmas Eve (jouluaatto, 24 December)
	// business days when they fall on a weekday: they count inside deadline
	// periods and business time. A deadline still never ends on one (Act
	// 150/1930 §5; see Deadline). The default, false, treats both eves as
	// non-business days.
	CountEvesAsBusinessDays bool
}

// Calendar answers business-day questions in Europe/Helsinki time. It is
// immutable after New and safe for concurrent use. The zero value is ready to
// use and behaves like New(Options{}).
type Calendar struct {
	opts Options
}

// New returns a Calendar with the given options. It never panics and does no
// I/O; the Helsinki location is loaded once per process and per-year holiday
// tables are built lazily and shared between calendars with equal options.
func New(opts Options) *Calendar {
	return &Calendar{opts: opts}
}

// Location returns the Europe/Helsinki location in which dates are judged
// and deadlines are expressed.
func (c *Calendar) Location() *time.Location {
	return helsinki
}

// IsBusinessDay reports whether the Helsinki calendar date of t is a business
// day: Monday to Friday and neither a public holiday nor (unless
// CountEvesAsBusinessDays is set) Midsummer Eve or Christmas Eve. The time of
// day of t is irrelevant apart from deciding its Helsinki date.
func (c *Calendar) IsBusinessDay(t time.Time) bool {
	y, d := civil(t)
	return !c.table().get(y).isOff(d)
}

// HolidayName returns the Finnish name of the holiday falling on the Helsinki
// calendar date of t (e.g. "Pitkäperjantai", "Juhannusaatto") and true, or
// "" and false if there is none. Only days that are holidays under this
// calendar's options are reported: eves are reported only when they are
// non-business days, and plain weekends are never reported. Holidays that
// always fall on a weekend (Easter Day, Midsummer Day, All Saints' Day,
// Pentecost) are reported. If two holidays coincide (Vappu and Ascension Day
// in 2008) their names are joined with ", ".
func (c *Calendar) HolidayName(t time.Time) (string, bool) {
	y, d := civil(t)
	return c.table().get(y).holidayName(d)
}

// Deadline returns the end (23:59:59.000000000 Helsinki time) of the n-th
// business day after the Helsinki date of from. The arrival day itself is
// never counted, even if it is a business day (Act 150/1930 §2), so with
// n == 1 the result is the end of the first business day after arrival.
//
// For n == 0 ("same day" urgent deadlines) it returns the end of the arrival
// day if that is a business day, else the end of the next business day.
// Negative n is treated as 0. The result is in the Helsinki location.
//
// A deadline never ends on Midsummer Eve or Christmas Eve: Act 150/1930 §5
// moves a deadline that falls on one to the next business day. With
// CountEvesAsBusinessDays the eves count inside the period (that is what the
// law leaves open), and a deadline that would end on one is moved so.
func (c *Calendar) Deadline(from time.Time, n int) time.Time {
	tab := c.table()
	y, d := civil(from)
	yi := tab.get(y)
	if n <= 0 {
		for yi.isOff(d) {
			y, d, yi = tab.next(y, d, yi)
		}
	} else {
		for n > 0 {
			y, d, yi = tab.next(y, d, yi)
			if !yi.isOff(d) {
				n--
			}
		}
	}
	if c.opts.CountEvesAsBusinessDays {
		// §5: off the eve, by the default table, where the eves are off.
		end := &tables[0]
		for eyi := end.get(y); eyi.isOff(d); {
			y, d, eyi = end.next(y, d, eyi)
		}
	}
	return time.Date(y, time.January, d+1, 23, 59, 59, 0, helsinki)
}

// BusinessDaysBetween returns the number of business days whose Helsinki date
// is strictly after the Helsinki date of from and on or before the Helsinki
// date of to, i.e. how many business days of a deadline period had been used
// up by to. It returns 0 if to's date is on or before from's date. For n >= 1,
// BusinessDaysBetween(from, Deadline(from, n)) == n, unless CountEvesAsBusinessDays
// moved the deadline off an eve (then n + 1: the eve counted).
func (c *Calendar) BusinessDaysBetween(from, to time.Time) int {
	y0, d0 := civil(from)
	y1, d1 := civil(to)
	if !dayBefore(y0, d0, y1, d1) {
		return 0
	}
	tab := c.table()
	y0, d0, _ = tab.next(y0, d0, tab.get(y0))
	return tab.countBusiness(y0, d0, y1, d1)
}

// BusinessDurationBetween returns how much of the interval from..to falls on
// business days, judged by Helsinki calendar dates: each business day
// contributes the part of it (from its Helsinki midnight to the next) that
// lies inside the interval, and non-business days contribute nothing. It
// returns 0 if to is not after from. It is meant for response-time figures
// (p50/p90) in business time.
//
// Finnish daylight-saving changes happen on Sundays, so every business day is
// exactly 24 hours long.
func (c *Calendar) BusinessDurationBetween(from, to time.Time) time.Duration {
	if !to.After(from) {
		return 0
	}
	tab := c.table()
	y0, d0 := civil(from)
	y1, d1 := civil(to)
	yi0 := tab.get(y0)
	if y0 == y1 && d0 == d1 {
		if yi0.isOff(d0) {
			return 0
		}
		return to.Sub(from)
	}

	var total time.Duration
	ny, nd, _ := tab.next(y0, d0, yi0)
	if !yi0.isOff(d0) {
		total += startOfDay(ny, nd).Sub(from)
	}
	if !tab.get(y1).isOff(d1) {
		total += to.Sub(startOfDay(y1, d1))
	}
	// Whole days strictly between the two dates.
	py, pd := prevDay(y1, d1)
	if !dayBefore(py, pd, ny, nd) {
		total += time.Duration(tab.countBusiness(ny, nd, py, pd)) * 24 * time.Hour
	}
	return total
}

func (c *Calendar) table() *yearTable {
	if c.opts.CountEvesAsBusinessDays {
		return &tables[1]
	}
	return &tables[0]
}

// ---- per-year tables ----

const (
	cacheFirstYear = 1900
	cacheYears     = 500 // 1900..2399 are cached; other years are computed per call.
)

// yearTable caches yearInfo for one set of holiday rules. Entries are built
// lazily and published with a compare-and-swap, so lookups are lock-free and
// allocation-free once a year has been built.
type yearTable struct {
	rules []*cal.Holiday
	years [cacheYears]atomic.Pointer[yearInfo]
}

// tables[0]: eves are non-business days (default); tables[1]: eves are
// business days.
var tables [2]yearTable

func init() {
	tables[0].rules = holidayRules(false)
	tables[1].rules = holidayRules(true)
}

// holidayRules returns the fi public holidays plus, unless evesAreBusiness,
// Midsummer Eve and Christmas Eve. The eves are handled explicitly, by
// identity, because fi lists both in fi.Holidays but with different
// observance types (Juhannusaatto as public, Jouluaatto as "other").
func holidayRules(evesAreBusiness bool) []*cal.Holiday {
	var out []*cal.Holiday
	for _, h := range fi.Holidays {
		if h == fi.Juhannusaatto || h == fi.Jouluaatto {
			continue
		}
		if h.Type != cal.ObservancePublic {
			continue
		}
		out = append(out, h)
	}
	if !evesAreBusiness {
		out = append(out, fi.Juhannusaatto, fi.Jouluaatto)
	}
	return out
}

func (t *yearTable) get(y int) *yearInfo {
	i := y - cacheFirstYear
	if i < 0 || i >= cacheYears {
		return buildYear(y, t.rules)
	}
	if yi := t.years[i].Load(); yi != nil {
		return yi
	}
	yi := buildYear(y, t.rules)
	if t.years[i].CompareAndSwap(nil, yi) {
		return yi
	}
	return t.years[i].Load()
}

// next returns the day after (y, d) together with its year's info.
func (t *yearTable) next(y, d int, yi *yearInfo) (int, int, *yearInfo) {
	d++
	if d >= yi.days {
		y++
		return y, 0, t.get(y)
	}
	return y, d, yi
}

// countBusiness counts business days in the inclusive range (y0,d0)..(y1,d1).
func (t *yearTable) countBusiness(y0, d0, y1, d1 int) int {
	n := 0
	for y := y0; y <= y1; y++ {
		yi := t.get(y)
		lo, hi := 0, yi.days-1
		if y == y0 {
			lo = d0
		}
		if y == y1 {
			hi = d1
		}
		if lo > hi {
			continue
		}
		n += hi - lo + 1 - countSet(&yi.off, lo, hi)
	}
	return n
}

// yearInfo describes one calendar year. Days are 0-based days of the year.
type yearInfo struct {
	days     int       // 365 or 366
	off      [6]uint64 // bit d set: day d is not a business day
	holidays []holiday // sorted by day
}

type holiday struct {
	day  int
	name string
}

func (yi *yearInfo) isOff(d int) bool {
	return yi.off[d>>6]&(1<<(d&63)) != 0
}

func (yi *yearInfo) holidayName(d int) (string, bool) {
	for _, h := range yi.holidays {
		if h.day == d {
			return h.name, true
		}
		if h.day > d {
			break
		}
	}
	return "", false
}

func buildYear(y int, rules []*cal.Holiday) *yearInfo {
	yi := &yearInfo{days: 365}
	if isLeap(y) {
		yi.days = 366
	}
	wd := int(time.Date(y, time.January, 1, 12, 0, 0, 0, time.UTC).Weekday())
	for d := 0; d < yi.days; d++ {
		if w := (wd + d) % 7; w == int(time.Saturday) || w == int(time.Sunday) {
			yi.off[d>>6] |= 1 << (d & 63)
		}
	}
	for _, r := range rules {
		_, obs := r.Calc(y)
		if obs.IsZero() {
			continue
		}
		oy, om, od := obs.Date()
		if oy != y {
			continue
		}
		d := yearDay(y, om, od)
		yi.off[d>>6] |= 1 << (d & 63)
		yi.holidays = append(yi.holidays, holiday{day: d, name: r.Name})
	}
	sort.SliceStable(yi.holidays, func(i, j int) bool { return yi.holidays[i].day < yi.holidays[j].day })
	// Merge coinciding holidays into one entry.
	merged := yi.holidays[:0]
	for _, h := range yi.holidays {
		if k := len(merged) - 1; k >= 0 && merged[k].day == h.day {
			merged[k].name = strings.Join([]string{merged[k].name, h.name}, ", ")
			continue
		}
		merged = append(merged, h)
	}
	yi.holidays = merged
	return yi
}

// countSet counts set bits of b in the inclusive bit range lo..hi.
func countSet(b *[6]uint64, lo, hi int) int {
	n := 0
	for w := lo >> 6; w <= hi>>6; w++ {
		word := b[w]
		if w == lo>>6 {
			word &= ^uint64(0) << (lo & 63)
		}
		if w == hi>>6 {
			word &= ^uint64(0) >> (63 - hi&63)
		}
		n += bits.OnesCount64(word)
	}
	return n
}

// ---- civil date helpers ----

var daysBeforeMonth = [...]int{0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334}

func isLeap(y int) bool {
	return y%4 == 0 && (y%100 != 0 || y%400 == 0)
}

// yearDay returns the 0-based day of the year of y-m-d.
func yearDay(y int, m time.Month, d int) int {
	yd := daysBeforeMonth[m-1] + d - 1
	if m > time.February && isLeap(y) {
		yd++
	}
	return yd
}

// civil returns the Helsinki year and 0-based day of the year of t.
func civil(t time.Time) (year, day int) {
	y, m, d := t.In(helsinki).Date()
	return y, yearDay(y, m, d)
}

func dayBefore(y0, d0, y1, d1 int) bool {
	return y0 < y1 || (y0 == y1 && d0 < d1)
}

func prevDay(y, d int) (int, int) {
	if d > 0 {
		return y, d - 1
	}
	y--
	if isLeap(y) {
		return y, 365
	}
	return y, 364
}

// startOfDay returns Helsinki midnight at the start of day d of year y.
// Finnish DST changes happen at 03:00/04:00, so midnight always exists.
func startOfDay(y, d int) time.Time {
	return time.Date(y, time.January, d+1, 0, 0, 0, 0, helsinki)
}
