package domain

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Response-time figures (DOMAIN §7) are read from aggregates, never from the referrals
// themselves: the store keeps one cell per creation month × sender × recipient × kind ×
// urgency and changes it in the same transaction as every write of a referral of that cell.
// ComputeReportDelta says what one write changes; the store applies it; Reporter reads the
// cells of a period and turns them into figures.
//
// A referral belongs to the month (Europe/Helsinki) of its CreatedAt, i.e. when it arrived at
// the recipient. Everything that happens to it later counts in that month's cell, so the
// figures of a past period still grow while its referrals are being handled (a cohort view).

// ReportCalendar is what response-time figures need of the business-day calendar
// (*calendar.Calendar implements it).
type ReportCalendar interface {
	// BusinessDurationBetween returns how much of from..to falls on business days.
	BusinessDurationBetween(from, to time.Time) time.Duration
	// Location is the zone whose calendar dates count (Europe/Helsinki).
	Location() *time.Location
}

// Month is a calendar month, counted as year*12 + month-1 so months compare and subtract.
type Month int

// MakeMonth returns the month m of year y.
func MakeMonth(y int, m time.Month) Month { return Month(y*12 + int(m) - 1) }

// MonthOf returns the month of t's calendar date in loc.
func MonthOf(t time.Time, loc *time.Location) Month {
	y, m, _ := t.In(loc).Date()
	return MakeMonth(y, m)
}

// Year returns the month's year.
func (m Month) Year() int { return int(m) / 12 }

// Month returns the month of the year.
func (m Month) Month() time.Month { return time.Month(int(m)%12 + 1) }

// String returns the month as YYYY-MM.
func (m Month) String() string { return fmt.Sprintf("%04d-%02d", m.Year(), int(m.Month())) }

// FirstDay returns the first day of the month as YYYY-MM-DD.
func (m Month) FirstDay() string { return m.String() + "-01" }

// LastDay returns the last day of the month as YYYY-MM-DD.
func (m Month) LastDay() string {
	d := time.Date(m.Year(), m.Month()+1, 0, 12, 0, 0, 0, time.UTC)
	return d.Format(time.DateOnly)
}

// HalfYear is one of the two periods THL collects deadline compliance for (Jan–Jun, Jul–Dec).
type HalfYear struct {
	Year int
	Half int // 1 or 2
}

// ParseHalfYear reads "2026H1" or "2026H2"; ok is false for anything else.
func ParseHalfYear(s string) (HalfYear, bool) {
	if len(s) != 6 || s[4] != 'H' || (s[5] != '1' && s[5] != '2') {
		return HalfYear{}, false
	}
	y := 0
	for _, c := range s[:4] {
		if c < '0' || c > '9' {
			return HalfYear{}, false
		}
		y = y*10 + int(c-'0')
	}
	return HalfYear{Year: y, Half: int(s[5] - '0')}, true
}

// HalfYearOf returns the half-year whose months are exactly from..to, and false if from..to
// is not a half-year.
func HalfYearOf(from, to Month) (HalfYear, bool) {
	h := HalfYear{Year: from.Year(), Half: 1}
	if from.Month() == time.July {
		h.Half = 2
	}
	return h, h.From() == from && h.To() == to
}

// From returns the first month of the half-year.
func (h HalfYear) From() Month { return MakeMonth(h.Year, time.Month(6*(h.Half-1)+1)) }

// To returns the last month of the half-year.
func (h HalfYear) To() Month { return h.From() + 5 }

// String returns the half-year as 2026H2.
func (h HalfYear) String() string { return fmt.Sprintf("%04dH%d", h.Year, h.Half) }

// ReportCounter names one counter of an aggregate cell.
type ReportCounter int

// Counters of a cell. Each counts referrals, once per referral, when the fact first becomes
// true.
const (
	CountCreated      ReportCounter = iota
	CountAcknowledged               // AcknowledgedAt was set
	CountResponded                  // FirstResponseAt was set
	CountCompleted
	CountReturned
	CountForwarded
	CountWithdrawn
	CountAckMet     // acknowledged by acknowledge_by
	CountAckMissed  // acknowledged after acknowledge_by, or withdrawn unacknowledged after it
	CountRespondMet // respond_by clock stopped by the recipient in time (see respondStopped)
	// CountRespondMissed: the respond_by clock stopped late, or the referral was withdrawn
	// with the clock running after respond_by.
	CountRespondMissed
	// CountCompletedInTime: completed by respond_by (the THL §14 a/b/d figure).
	CountCompletedInTime
	// CountRepeatBounceClients: clients whose second bounce was this cell's referral. The
	// store sets it: it keeps the per-client bounce counter.
	CountRepeatBounceClients
	NumReportCounters
)

// ReportDuration names one response-time histogram of a cell.
type ReportDuration int

// Histograms of a cell, in business time from creation.
const (
	DurAcknowledge   ReportDuration = iota // to AcknowledgedAt
	DurFirstResponse                       // to FirstResponseAt
	DurCompletion                          // to ClosedAt of a completed referral
	NumReportDurations
)

// Duration buckets. Business time is counted in fixed buckets: 5 minutes below 24 business
// hours, 30 minutes from 24 to 240 hours, 6 hours from 240 to 2 400 hours, and one last bucket
// for everything longer. A percentile is the lower bound of the bucket that holds it, so it is
// exact for durations on bucket bounds and at most one bucket width low otherwise.
const (
	bucketStep1, bucketEnd1 = 5 * time.Minute, 24 * time.Hour
	bucketStep2, bucketEnd2 = 30 * time.Minute, 240 * time.Hour
	bucketStep3, bucketEnd3 = 6 * time.Hour, 2400 * time.Hour
	buckets1                = int(bucketEnd1 / bucketStep1)
	buckets2                = buckets1 + int((bucketEnd2-bucketEnd1)/bucketStep2)
	buckets3                = buckets2 + int((bucketEnd3-bucketEnd2)/bucketStep3)
	// NumDurationBuckets is the number of buckets, the last one open-ended.
	NumDurationBuckets = buckets3 + 1
)

// DurationBucket returns the bucket of a business duration; negative durations go to 0.
func DurationBucket(d time.Duration) int {
	switch {
	case d < 0:
		return 0
	case d < bucketEnd1:
		return int(d / bucketStep1)
	case d < bucketEnd2:
		return buckets1 + int((d-bucketEnd1)/bucketStep2)
	case d < bucketEnd3:
		return buckets2 + int((d-bucketEnd2)/bucketStep3)
	}
	return buckets3
}

// DurationBucketFloor returns the lower bound of bucket i.
func DurationBucketFloor(i int) time.Duration {
	switch {
	case i <= 0:
		return 0
	case i < buckets1:
		return time.Duration(i) * bucketStep1
	case i < buckets2:
		return bucketEnd1 + time.Duration(i-buckets1)*bucketStep2
	case i < buckets3:
		return bucketEnd2 + time.Duration(i-buckets2)*bucketStep3
	}
	return bucketEnd3
}

// ReportCellKey identifies one aggregate cell. Every part is fixed for the life of a referral.
type ReportCellKey struct {
	Month     Month
	Sender    OrgID
	Recipient OrgID
	Kind      Kind
	Urgency   Urgency
}

// ReportCellOf returns the cell r counts in.
func ReportCellOf(r *Referral, loc *time.Location) ReportCellKey {
	return ReportCellKey{Month: MonthOf(r.CreatedAt, loc), Sender: r.Sender, Recipient: r.Recipient,
		Kind: r.Kind, Urgency: r.Urgency}
}

// HistBin is one non-empty bucket of a duration histogram.
type HistBin struct {
	Bucket int
	Count  int64
}

// DueBin counts the open referrals of a cell that become overdue at one instant: the earliest
// of their open deadlines (see Referral.Overdue).
type DueBin struct {
	At    int64 // Unix nanoseconds
	Count int64
}

// ReportCell is one aggregate cell as the store reads it. Hist and Due are sorted by Bucket
// and At.
type ReportCell struct {
	ReportCellKey
	Counts [NumReportCounters]int64
	Hist   [NumReportDurations][]HistBin
	Due    []DueBin
}

// ReportDelta is what one write of a referral changes in its cell.
type ReportDelta struct {
	Cell   ReportCellKey
	Counts [NumReportCounters]int64
	// Observed holds the business durations of the milestones reached by this write, where
	// HasObserved is set.
	Observed    [NumReportDurations]time.Duration
	HasObserved [NumReportDurations]bool
	// DueRemoved and DueAdded move the referral in the overdue histogram: the old version's
	// earliest open deadline leaves the old version's cell (DueCell), the new one's enters Cell.
	DueRemoved, DueAdded *time.Time
	DueCell              ReportCellKey
	// Bounced is set when this write returned or forwarded the referral; the store counts it
	// on the client (ClientKey) and sets CountRepeatBounceClients on the second one.
	Bounced   bool
	ClientKey string
}

// Empty reports whether the delta changes nothing.
func (d *ReportDelta) Empty() bool {
	if d.DueRemoved != nil || d.DueAdded != nil || d.Bounced {
		return false
	}
	for _, n := range d.Counts {
		if n != 0 {
			return false
		}
	}
	for _, h := range d.HasObserved {
		if h {
			return false
		}
	}
	return true
}

// ComputeReportDelta returns what writing r over old (nil for a new referral) changes in the
// aggregates. It compares the two versions, so a milestone counts once however often the
// referral is rewritten, and it is a pure function of its inputs, so running it again in a
// retried transaction gives the same delta.
//
// When old is nil and r is already past some milestones (rebuilding aggregates from stored
// referrals), they count as happening at r.UpdatedAt where the record keeps no time of its
// own (the start of a social-work-need assessment, a withdrawal).
func ComputeReportDelta(old, r *Referral, cal ReportCalendar) ReportDelta {
	loc := cal.Location()
	d := ReportDelta{Cell: ReportCellOf(r, loc), ClientKey: r.ClientKey}
	prev := old
	if prev == nil {
		prev = &Referral{}
		d.Counts[CountCreated] = 1
	} else {
		d.DueCell = ReportCellOf(old, loc)
	}
	at := r.UpdatedAt
	dl := r.Deadlines

	if prev.Times.AcknowledgedAt == nil && r.Times.AcknowledgedAt != nil {
		ack := *r.Times.AcknowledgedAt
		d.Counts[CountAcknowledged] = 1
		d.observe(DurAcknowledge, cal.BusinessDurationBetween(r.CreatedAt, ack))
		if dl.AcknowledgeBy != nil {
			if ack.After(*dl.AcknowledgeBy) {
				d.Counts[CountAckMissed] = 1
			} else {
				d.Counts[CountAckMet] = 1
			}
		}
	}
	if prev.Times.FirstResponseAt == nil && r.Times.FirstResponseAt != nil {
		d.Counts[CountResponded] = 1
		d.observe(DurFirstResponse, cal.BusinessDurationBetween(r.CreatedAt, *r.Times.FirstResponseAt))
	}
	if !respondStopped(prev) && respondStopped(r) && dl.RespondBy != nil {
		if at.After(*dl.RespondBy) {
			d.Counts[CountRespondMissed] = 1
		} else {
			d.Counts[CountRespondMet] = 1
		}
	}
	if prev.Status != r.Status {
		switch r.Status {
		case StatusCompleted:
			closed := at
			if r.Times.ClosedAt != nil {
				closed = *r.Times.ClosedAt
			}
			d.Counts[CountCompleted] = 1
			d.observe(DurCompletion, cal.BusinessDurationBetween(r.CreatedAt, closed))
			if dl.RespondBy != nil && !closed.After(*dl.RespondBy) {
				d.Counts[CountCompletedInTime] = 1
			}
		case StatusReturned:
			d.Counts[CountReturned] = 1
			d.Bounced = true
		case StatusForwarded:
			d.Counts[CountForwarded] = 1
			d.Bounced = true
		case StatusWithdrawn:
			d.Counts[CountWithdrawn] = 1
			// A withdrawal stops the clocks; one that had already run out is a miss. The
			// respond_by clock does not run while the sender owes an answer.
			if r.Times.AcknowledgedAt == nil && dl.AcknowledgeBy != nil && at.After(*dl.AcknowledgeBy) {
				d.Counts[CountAckMissed]++
			}
			if !respondStopped(prev) && prev.Status != StatusInfoRequested && dl.RespondBy != nil && at.After(*dl.RespondBy) {
				d.Counts[CountRespondMissed]++
			}
		}
	}

	var oldDue, newDue time.Time
	oldOK := false
	if old != nil {
		oldDue, oldOK = overdueFrom(old)
	}
	newDue, newOK := overdueFrom(r)
	if oldOK != newOK || !oldDue.Equal(newDue) || (oldOK && d.DueCell != d.Cell) {
		if oldOK {
			d.DueRemoved = &oldDue
		}
		if newOK {
			d.DueAdded = &newDue
		}
	}
	return d
}

func (d *ReportDelta) observe(k ReportDuration, v time.Duration) {
	d.Observed[k], d.HasObserved[k] = v, true
}

// respondStopped reports whether the recipient has stopped r's respond_by clock: a
// social-work-need notification when the service-need assessment starts (in_progress, also
// while asking the sender for information after starting), every kind when the recipient
// completes, returns or forwards it. A withdrawal is the sender's and does not count.
func respondStopped(r *Referral) bool {
	switch r.Status {
	case StatusCompleted, StatusReturned, StatusForwarded:
		return true
	case StatusInProgress:
		return r.Kind == KindSocialWorkNeed
	case StatusInfoRequested:
		return r.Kind == KindSocialWorkNeed && r.ResumeStatus == StatusInProgress
	}
	return false
}

// overdueFrom returns the instant after which r is overdue (Referral.Overdue), and false if
// no open deadline can make it overdue. It asks Overdue itself just after each deadline, so
// it follows whatever rule Overdue applies.
func overdueFrom(r *Referral) (time.Time, bool) {
	var cands []time.Time
	for _, t := range []*time.Time{r.Deadlines.AcknowledgeBy, r.Deadlines.RespondBy, r.Deadlines.KelaHandoffBy} {
		if t != nil {
			cands = append(cands, *t)
		}
	}
	slices.SortFunc(cands, func(a, b time.Time) int { return a.Compare(b) })
	for _, c := range cands {
		if r.Overdue(c.Add(time.Nanosecond)) {
			return c, true
		}
	}
	return time.Time{}, false
}

// ---- reading the aggregates ----

// ReportDimension is one way of grouping the response-time figures.
type ReportDimension string

// Dimensions. Organisation is the recipient: the organisation whose response is measured.
const (
	ByKind         ReportDimension = "kind"
	ByUrgency      ReportDimension = "urgency"
	ByMonth        ReportDimension = "month"
	ByOrganisation ReportDimension = "organisation"
)

// ReportDimensions lists every dimension.
var ReportDimensions = []ReportDimension{ByKind, ByUrgency, ByMonth, ByOrganisation}

// Valid reports whether d is a known dimension.
func (d ReportDimension) Valid() bool { return slices.Contains(ReportDimensions, d) }

// ReportQuery selects the response-time figures of the months From..To (inclusive), grouped
// by GroupBy (none: only the total).
type ReportQuery struct {
	From, To Month
	GroupBy  []ReportDimension
}

// Reporter answers the response-time report from the store's aggregates.
type Reporter struct {
	Store ReportStore
	// Clock is the business clock: open_overdue counts deadlines passed by its now.
	Clock    Clock
	Registry *Registry
}

// PeriodBasis says which date places a referral in a period.
const PeriodBasis = "created_at"

// ReportScope returns the organisation whose figures the actor may read: "" for all (Kela's
// supervisors), its own for a county's supervisor. EForbidden for every other role.
func ReportScope(actor Actor) (OrgID, error) {
	if !actor.Has(RoleSupervisor) {
		return "", Errorf(EForbidden, "only supervisors may read response-time reports")
	}
	if actor.Org.IsKela() {
		return "", nil
	}
	return actor.Org, nil
}

// ResponseTimeReport is the report of DOMAIN §7 for one period.
type ResponseTimeReport struct {
	From        string            `json:"from"`
	To          string            `json:"to"`
	GroupBy     []ReportDimension `json:"group_by"`
	Scope       string            `json:"scope"` // "all" or the organisation
	PeriodBasis string            `json:"period_basis"`
	AsOf        time.Time         `json:"as_of"`
	Total       ReportFigures     `json:"total"`
	Groups      []ReportGroup     `json:"groups"`
}

// ReportGroup is the figures of one group; only the dimensions grouped by are set.
type ReportGroup struct {
	Month        string        `json:"month,omitempty"`
	Organisation OrgID         `json:"organisation,omitempty"`
	Kind         Kind          `json:"kind,omitempty"`
	Urgency      Urgency       `json:"urgency,omitempty"`
	Figures      ReportFigures `json:"figures"`
}

// ReportFigures are the figures of a set of referrals.
type ReportFigures struct {
	Counts              ReportCounts    `json:"counts"`
	TimeToAcknowledge   DurationFigures `json:"time_to_acknowledge"`
	TimeToFirstResponse DurationFigures `json:"time_to_first_response"`
	TimeToCompletion    DurationFigures `json:"time_to_completion"`
	WithinDeadline      WithinDeadline  `json:"within_deadline"`
	// OpenOverdue counts the referrals that are open and past a deadline now.
	OpenOverdue int64         `json:"open_overdue"`
	Bounces     BounceFigures `json:"bounces"`
}

// ReportCounts count referrals by what happened to them.
type ReportCounts struct {
	Created      int64 `json:"created"`
	Acknowledged int64 `json:"acknowledged"`
	Responded    int64 `json:"responded"`
	Completed    int64 `json:"completed"`
	Returned     int64 `json:"returned"`
	Forwarded    int64 `json:"forwarded"`
	Withdrawn    int64 `json:"withdrawn"`
}

// DurationFigures are the nearest-rank median and 90th percentile of one response time;
// nil without observations.
type DurationFigures struct {
	Count int64         `json:"count"`
	P50   *BusinessTime `json:"p50"`
	P90   *BusinessTime `json:"p90"`
}

// BusinessTime is a duration on business days only, in hours and in days of 24 business
// hours, rounded to two decimals.
type BusinessTime struct {
	Hours float64 `json:"business_hours"`
	Days  float64 `json:"business_days"`
}

// WithinDeadline is the share of referrals whose deadline clock stopped in time.
type WithinDeadline struct {
	AcknowledgeBy DeadlineFigures `json:"acknowledge_by"`
	RespondBy     DeadlineFigures `json:"respond_by"`
}

// DeadlineFigures count stopped clocks that met and missed a deadline; Share is
// met/(met+missed), rounded to four decimals, nil when both are 0.
type DeadlineFigures struct {
	Met    int64    `json:"met"`
	Missed int64    `json:"missed"`
	Share  *float64 `json:"share"`
}

// BounceFigures count referrals that passed the client on (returned + forwarded) and the
// clients passed on more than once.
type BounceFigures struct {
	Total int64 `json:"total"`
	// ClientsBouncedMoreThanOnce counts clients whose second bounce (across all
	// organisations) was one of these referrals: each client once, in one group.
	ClientsBouncedMoreThanOnce int64 `json:"clients_bounced_more_than_once"`
}

// ResponseTimes returns the figures of the months q.From..q.To grouped by q.GroupBy, for the
// organisations the actor may see: every organisation for a Kela supervisor, else the
// referrals the actor's county sent or received. EForbidden for roles other than supervisor,
// EMalformed for a bad query.
func (rp *Reporter) ResponseTimes(ctx context.Context, actor Actor, q ReportQuery) (*ResponseTimeReport, error) {
	scope, err := ReportScope(actor)
	if err != nil {
		return nil, err
	}
	if err := q.check(); err != nil {
		return nil, err
	}
	now := rp.Clock.Now()
	total := &figuresAcc{}
	groups := map[groupKey]*figuresAcc{}
	grouped := len(q.GroupBy) > 0
	err = rp.Store.ReportCells(ctx, ReportCellFilter{From: q.From, To: q.To, Org: scope}, func(c *ReportCell) error {
		overdue := openOverdue(c, now)
		total.add(c, overdue)
		if grouped {
			k := groupOf(c, q.GroupBy)
			g := groups[k]
			if g == nil {
				g = &figuresAcc{}
				groups[k] = g
			}
			g.add(c, overdue)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := &ResponseTimeReport{
		From: q.From.FirstDay(), To: q.To.LastDay(), GroupBy: append([]ReportDimension{}, q.GroupBy...),
		Scope: "all", PeriodBasis: PeriodBasis, AsOf: now.UTC(), Total: total.figures(),
		Groups: []ReportGroup{},
	}
	if scope != "" {
		out.Scope = string(scope)
	}
	if len(q.GroupBy) > 0 {
		keys := make([]groupKey, 0, len(groups))
		for k := range groups {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
		for _, k := range keys {
			g := ReportGroup{Organisation: k.org, Kind: k.kind, Urgency: k.urgency, Figures: groups[k].figures()}
			if k.hasMonth {
				g.Month = k.month.String()
			}
			out.Groups = append(out.Groups, g)
		}
	}
	return out, nil
}

func (q ReportQuery) check() error {
	var v Violations
	if q.To < q.From {
		v.Add("", "query parameter to: must not be before from")
	}
	seen := map[ReportDimension]bool{}
	for _, d := range q.GroupBy {
		if !d.Valid() {
			v.Add("", "query parameter group_by: must be kind, urgency, month or organisation")
		} else if seen[d] {
			v.Add("", "query parameter group_by: %s is given twice", d)
		}
		seen[d] = true
	}
	if len(v) > 0 {
		return &Error{Code: EMalformed, Message: "the query is invalid", Fields: v}
	}
	return nil
}

// groupKey is the value of each grouped dimension; the others stay zero.
type groupKey struct {
	month    Month
	hasMonth bool
	org      OrgID
	kind     Kind
	urgency  Urgency
}

func groupOf(c *ReportCell, dims []ReportDimension) groupKey {
	var k groupKey
	for _, d := range dims {
		switch d {
		case ByMonth:
			k.month, k.hasMonth = c.Month, true
		case ByOrganisation:
			k.org = c.Recipient
		case ByKind:
			k.kind = c.Kind
		case ByUrgency:
			k.urgency = c.Urgency
		}
	}
	return k
}

func (a groupKey) less(b groupKey) bool {
	if a.month != b.month {
		return a.month < b.month
	}
	if a.org != b.org {
		return a.org < b.org
	}
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	return a.urgency < b.urgency
}

// openOverdue counts the cell's open referrals past their earliest open deadline at now.
func openOverdue(c *ReportCell, now time.Time) int64 {
	limit := now.UnixNano()
	var n int64
	for _, b := range c.Due {
		if b.At >= limit {
			break
		}
		n += b.Count
	}
	return n
}

// figuresAcc sums cells.
type figuresAcc struct {
	counts  [NumReportCounters]int64
	hist    [NumReportDurations]histAcc
	overdue int64
}

func (a *figuresAcc) add(c *ReportCell, overdue int64) {
	for i, n := range c.Counts {
		a.counts[i] += n
	}
	for i := range c.Hist {
		a.hist[i].add(c.Hist[i])
	}
	a.overdue += overdue
}

func (a *figuresAcc) figures() ReportFigures {
	n := &a.counts
	return ReportFigures{
		Counts: ReportCounts{Created: n[CountCreated], Acknowledged: n[CountAcknowledged], Responded: n[CountResponded],
			Completed: n[CountCompleted], Returned: n[CountReturned], Forwarded: n[CountForwarded], Withdrawn: n[CountWithdrawn]},
		TimeToAcknowledge:   a.hist[DurAcknowledge].figures(),
		TimeToFirstResponse: a.hist[DurFirstResponse].figures(),
		TimeToCompletion:    a.hist[DurCompletion].figures(),
		WithinDeadline: WithinDeadline{
			AcknowledgeBy: deadlineFigures(n[CountAckMet], n[CountAckMissed]),
			RespondBy:     deadlineFigures(n[CountRespondMet], n[CountRespondMissed]),
		},
		OpenOverdue: a.overdue,
		Bounces:     BounceFigures{Total: n[CountReturned] + n[CountForwarded], ClientsBouncedMoreThanOnce: n[CountRepeatBounceClients]},
	}
}

func deadlineFigures(met, missed int64) DeadlineFigures {
	return DeadlineFigures{Met: met, Missed: missed, Share: share(met, met+missed)}
}

func share(part, whole int64) *float64 {
	if whole == 0 {
		return nil
	}
	s := math.Round(float64(part)/float64(whole)*1e4) / 1e4
	return &s
}

// histAcc merges sparse histograms. A group that gets few cells keeps a sorted list of bins
// (a copy of its first cell, then merges); one that gets many, or many bins, turns into an
// array of every bucket: small groups stay small, big ones stay fast.
type histAcc struct {
	n      int64
	bins   []HistBin // sorted by Bucket, while dense is nil
	merges int
	dense  []int64
}

const (
	denseAfterMerges = 4
	denseAfterBins   = 256
)

func (h *histAcc) add(src []HistBin) {
	if len(src) == 0 {
		return
	}
	for _, b := range src {
		h.n += b.Count
	}
	switch {
	case h.dense != nil:
	case len(h.bins) == 0:
		h.bins = append(h.bins[:0], src...)
		return
	case h.merges < denseAfterMerges && len(h.bins)+len(src) <= denseAfterBins:
		h.bins = mergeBins(h.bins, src)
		h.merges++
		return
	default:
		h.dense = make([]int64, NumDurationBuckets)
		for _, b := range h.bins {
			h.dense[clampBucket(b.Bucket)] += b.Count
		}
		h.bins = nil
	}
	for _, b := range src {
		h.dense[clampBucket(b.Bucket)] += b.Count
	}
}

// mergeBins returns the sorted union of two sorted bin lists, adding counts of equal buckets.
func mergeBins(a, b []HistBin) []HistBin {
	out := make([]HistBin, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i].Bucket < b[j].Bucket:
			out = append(out, a[i])
			i++
		case a[i].Bucket > b[j].Bucket:
			out = append(out, b[j])
			j++
		default:
			out = append(out, HistBin{Bucket: a[i].Bucket, Count: a[i].Count + b[j].Count})
			i, j = i+1, j+1
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

func clampBucket(b int) int { return min(max(b, 0), NumDurationBuckets-1) }

// percentiles returns the lower bounds of the buckets holding the nearest-rank p-th
// percentiles (ps ascending): for each, the smallest bucket with at least ceil(p·n/100)
// observations at or below it.
func (h *histAcc) percentiles(ps ...int64) []time.Duration {
	out := make([]time.Duration, len(ps))
	k := 0
	var cum int64
	visit := func(bucket int, c int64) bool {
		cum += c
		for k < len(ps) && c > 0 && cum >= (ps[k]*h.n+99)/100 {
			out[k] = DurationBucketFloor(bucket)
			k++
		}
		return k == len(ps)
	}
	if h.dense != nil {
		for i, c := range h.dense {
			if visit(i, c) {
				break
			}
		}
	} else {
		for _, b := range h.bins {
			if visit(clampBucket(b.Bucket), b.Count) {
				break
			}
		}
	}
	return out
}

func (h *histAcc) figures() DurationFigures {
	f := DurationFigures{Count: h.n}
	if h.n > 0 {
		p := h.percentiles(50, 90)
		f.P50, f.P90 = businessTime(p[0]), businessTime(p[1])
	}
	return f
}

func businessTime(d time.Duration) *BusinessTime {
	return &BusinessTime{Hours: round2(d.Hours()), Days: round2(d.Hours() / 24)}
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// ---- THL half-year figures (Toimeentulotukilaki §27 c) ----

// THLBasis is the legal basis of the THL figures.
const THLBasis = "Toimeentulotukilaki 1412/1997 §27 c"

// THLReport is the half-year deadline compliance THL collects from the counties and Kela:
// §14 a (normal: a county's supplementary_support_handoff decided, or Kela's answer to a
// county → Kela kind, within 7 business days), §14 b (the same kinds, urgent: by the next
// business day) and §14 d (joint_meeting_request: the meeting within 7 business days), per
// organisation that had to meet the deadline (the recipient).
// It holds counts only.
type THLReport struct {
	Period        string            `json:"period"`
	From          string            `json:"from"`
	To            string            `json:"to"`
	Basis         string            `json:"basis"`
	PeriodBasis   string            `json:"period_basis"`
	Organisations []THLOrganisation `json:"organisations"`
}

// THLOrganisation is one organisation's half-year figures.
type THLOrganisation struct {
	Organisation OrgID     `json:"organisation"`
	Section14a   THLFigure `json:"section_14a"`
	Section14b   THLFigure `json:"section_14b"`
	Section14d   THLFigure `json:"section_14d"`
}

// THLFigure counts the referrals handled (completed) and those handled by their respond_by
// deadline; Share is within/handled, rounded to four decimals, nil when none was handled.
type THLFigure struct {
	Handled        int64    `json:"handled"`
	WithinDeadline int64    `json:"within_deadline"`
	Share          *float64 `json:"share"`
}

// THL returns the §27 c figures of half-year h: one row per organisation for a Kela
// supervisor (every organisation of the registry, zeros included), the county's own row for a
// county supervisor. EForbidden for roles other than supervisor.
func (rp *Reporter) THL(ctx context.Context, actor Actor, h HalfYear) (*THLReport, error) {
	scope, err := ReportScope(actor)
	if err != nil {
		return nil, err
	}
	type sums struct{ a, b, d THLFigure }
	rows := map[OrgID]*sums{}
	var orgs []OrgID
	if scope != "" {
		orgs = []OrgID{scope}
	} else {
		for _, o := range rp.Registry.Organisations() {
			orgs = append(orgs, o.ID)
		}
	}
	for _, o := range orgs {
		rows[o] = &sums{}
	}
	err = rp.Store.ReportCells(ctx, ReportCellFilter{From: h.From(), To: h.To(), Org: scope}, func(c *ReportCell) error {
		row := rows[c.Recipient]
		if row == nil {
			return nil // another organisation's deadline (a county's joint meeting request to Kela)
		}
		// §14 a and §14 b bind the county deciding a handed-off application and Kela
		// answering a county's request (DOMAIN §7: "county → Kela kinds … 7 business days
		// (§14 a); urgent: next business day (§14 b)").
		section14ab := c.Kind == KindSupplementarySupportHandoff || c.Kind.ToKela()
		var f *THLFigure
		switch {
		case section14ab && c.Urgency == Normal:
			f = &row.a
		case section14ab && c.Urgency == Urgent:
			f = &row.b
		case c.Kind == KindJointMeetingRequest:
			f = &row.d
		default:
			return nil
		}
		f.Handled += c.Counts[CountCompleted]
		f.WithinDeadline += c.Counts[CountCompletedInTime]
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := &THLReport{Period: h.String(), From: h.From().FirstDay(), To: h.To().LastDay(), Basis: THLBasis,
		PeriodBasis: PeriodBasis, Organisations: []THLOrganisation{}}
	slices.SortFunc(orgs, func(a, b OrgID) int { return strings.Compare(string(a), string(b)) })
	for _, o := range orgs {
		s := rows[o]
		for _, f := range []*THLFigure{&s.a, &s.b, &s.d} {
			f.Share = share(f.WithinDeadline, f.Handled)
		}
		out.Organisations = append(out.Organisations, THLOrganisation{Organisation: o, Section14a: s.a, Section14b: s.b, Section14d: s.d})
	}
	return out, nil
}
