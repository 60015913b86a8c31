// Package calendar is a pure (no I/O) Finnish business-day calendar used to
// compute statutory deadlines and to measure lateness and response times.
//
// Rules implemented:
//
//   - All dates are calendar dates in Europe/Helsinki time; the Helsinki date
//     of an instant is what counts, never its UTC date.
//   - A business day is Monday to Friday, excluding Finnish public holidays
//     (from github.com/rickar/cal/v2/fi). By default Midsummer Eve
//     (juhannusaatto, the Friday between 19 and 25 June) and Christmas Eve
//     (jouluaatto, 24 December) are non-business days too; set
//     Options.CountEvesAsBusinessDays to count them as business days inside
//     a period; a deadline still never ends on one (Act 150/1930 §5 moves it
//     to the next business day).
//   - The day of arrival is not counted (Act 150/1930 §2): business day 1 is
//     the first business day after the arrival date.
//   - A deadline ends at the end of its last day, 23:59:59 Helsinki time
//     (zero nanoseconds).
//
// Holiday rules are the current ones for every year; historical variations
// (e.g. Epiphany and Ascension Day moved to Saturdays in 1973–1990) are not
// modelled.
//
// The Europe/Helsinki zone comes from the embedded time/tzdata, so the package
// works on machines without a system time zone database. A Calendar is safe
// for concurrent use; per-year holiday tables are built lazily and shared.
package calendar
