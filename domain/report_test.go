package domain_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
)

var reportCal = calendar.New(calendar.Options{})

// hki returns a Helsinki wall-clock time.
func hki(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, reportCal.Location())
}

func TestDurationBuckets(t *testing.T) {
	tests := []struct {
		d     time.Duration
		floor time.Duration
	}{
		{0, 0},
		{-time.Hour, 0},
		{4*time.Minute + 59*time.Second, 0},
		{5 * time.Minute, 5 * time.Minute},
		{20 * time.Hour, 20 * time.Hour},
		{23*time.Hour + 59*time.Minute, 23*time.Hour + 55*time.Minute},
		{24 * time.Hour, 24 * time.Hour},
		{24*time.Hour + 29*time.Minute, 24 * time.Hour},
		{43 * time.Hour, 43 * time.Hour},
		{188*time.Hour + 10*time.Minute, 188 * time.Hour},
		{239*time.Hour + 59*time.Minute, 239*time.Hour + 30*time.Minute},
		{240 * time.Hour, 240 * time.Hour},
		{288 * time.Hour, 288 * time.Hour},
		{290 * time.Hour, 288 * time.Hour},
		{2399 * time.Hour, 2394 * time.Hour},
		{2400 * time.Hour, 2400 * time.Hour},
		{100000 * time.Hour, 2400 * time.Hour},
	}
	for _, tt := range tests {
		b := domain.DurationBucket(tt.d)
		if b < 0 || b >= domain.NumDurationBuckets {
			t.Errorf("DurationBucket(%v) = %d, out of range", tt.d, b)
			continue
		}
		if got := domain.DurationBucketFloor(b); got != tt.floor {
			t.Errorf("floor of bucket of %v = %v, want %v", tt.d, got, tt.floor)
		}
	}
	if got := domain.DurationBucket(100000 * time.Hour); got != domain.NumDurationBuckets-1 {
		t.Errorf("long durations go to bucket %d, want the last (%d)", got, domain.NumDurationBuckets-1)
	}
	// Every bucket's floor lies in the bucket, and floors grow.
	for i := 0; i < domain.NumDurationBuckets; i++ {
		f := domain.DurationBucketFloor(i)
		if domain.DurationBucket(f) != i {
			t.Fatalf("bucket of floor(%d) = %d", i, domain.DurationBucket(f))
		}
		if i > 0 && f <= domain.DurationBucketFloor(i-1) {
			t.Fatalf("floor(%d) = %v is not above floor(%d)", i, f, i-1)
		}
	}
}

func TestMonthsAndHalfYears(t *testing.T) {
	loc := reportCal.Location()
	// 1 July 00:30 in Helsinki is still 30 June in UTC: the Helsinki date counts.
	if got := domain.MonthOf(time.Date(2026, 6, 30, 21, 30, 0, 0, time.UTC), loc); got.String() != "2026-07" {
		t.Errorf("MonthOf(2026-06-30T21:30Z) = %s, want 2026-07", got)
	}
	if got := domain.MonthOf(time.Date(2026, 6, 30, 20, 59, 0, 0, time.UTC), loc); got.String() != "2026-06" {
		t.Errorf("MonthOf(2026-06-30T20:59Z) = %s, want 2026-06", got)
	}
	if got := domain.MonthOf(time.Date(2026, 12, 31, 22, 0, 0, 0, time.UTC), loc); got.String() != "2027-01" {
		t.Errorf("MonthOf(2026-12-31T22:00Z) = %s, want 2027-01", got)
	}
	feb := domain.MakeMonth(2028, time.February)
	if feb.FirstDay() != "2028-02-01" || feb.LastDay() != "2028-02-29" || (feb+11).String() != "2029-01" {
		t.Errorf("February 2028: %s..%s, +11 = %s", feb.FirstDay(), feb.LastDay(), feb+11)
	}
	h, ok := domain.ParseHalfYear("2026H2")
	if !ok || h.From().FirstDay() != "2026-07-01" || h.To().LastDay() != "2026-12-31" || h.String() != "2026H2" {
		t.Errorf("ParseHalfYear(2026H2) = %+v %v", h, ok)
	}
	for _, bad := range []string{"", "2026", "2026H3", "2026h1", "26H1", "2026H12", "20x6H1"} {
		if _, ok := domain.ParseHalfYear(bad); ok {
			t.Errorf("ParseHalfYear(%q) accepted", bad)
		}
	}
	if h, ok := domain.HalfYearOf(domain.MakeMonth(2026, 1), domain.MakeMonth(2026, 6)); !ok || h.String() != "2026H1" {
		t.Errorf("HalfYearOf(Jan..Jun) = %v %v", h, ok)
	}
	for _, p := range [][2]domain.Month{
		{domain.MakeMonth(2026, 1), domain.MakeMonth(2026, 5)},
		{domain.MakeMonth(2026, 2), domain.MakeMonth(2026, 7)},
		{domain.MakeMonth(2026, 7), domain.MakeMonth(2027, 6)},
	} {
		if _, ok := domain.HalfYearOf(p[0], p[1]); ok {
			t.Errorf("HalfYearOf(%s..%s) accepted", p[0], p[1])
		}
	}
}

// versions of one referral as a store would see it: each an edited copy of the one before.
type versions struct{ cur *domain.Referral }

func (v *versions) next(edit func(r *domain.Referral)) (old, r *domain.Referral) {
	old = v.cur
	c := *old
	c.Version++
	edit(&c)
	v.cur = &c
	return old, &c
}

func ptr(t time.Time) *time.Time { return &t }

// TestDeltaCountsEachMilestoneOnce follows one referral through many rewrites (messages,
// an info request and its answer) and sums the deltas: every milestone counts exactly once.
func TestDeltaCountsEachMilestoneOnce(t *testing.T) {
	created := hki(2026, 11, 2, 10, 0) // Monday
	first := &domain.Referral{ID: "r1", Kind: domain.KindSocialWorkNeed, Urgency: domain.Normal,
		Sender: domain.Kela, Recipient: "hva-90", Status: domain.StatusSent, CreatedAt: created, UpdatedAt: created,
		Version: 1, ClientKey: "k1",
		Deadlines: domain.Deadlines{AcknowledgeBy: ptr(hki(2026, 11, 3, 23, 59).Add(59 * time.Second)),
			RespondBy: ptr(hki(2026, 11, 11, 23, 59).Add(59 * time.Second))}}
	var sum domain.ReportDelta
	var obs [domain.NumReportDurations][]time.Duration
	add := func(old, r *domain.Referral) {
		d := domain.ComputeReportDelta(old, r, reportCal)
		again := domain.ComputeReportDelta(old, r, reportCal)
		if !reflect.DeepEqual(d, again) {
			t.Fatalf("delta is not deterministic: %+v vs %+v", d, again)
		}
		if d.Cell != domain.ReportCellOf(r, reportCal.Location()) {
			t.Fatalf("delta cell %+v", d.Cell)
		}
		for i, n := range d.Counts {
			sum.Counts[i] += n
		}
		for i, ok := range d.HasObserved {
			if ok {
				obs[i] = append(obs[i], d.Observed[i])
			}
		}
	}
	add(nil, first)
	v := &versions{cur: first}
	step := func(at time.Time, edit func(r *domain.Referral)) {
		old, r := v.next(func(r *domain.Referral) { r.UpdatedAt = at; edit(r) })
		add(old, r)
	}
	ack := hki(2026, 11, 3, 12, 0)
	step(ack, func(r *domain.Referral) { r.Status, r.Times.AcknowledgedAt = domain.StatusReceived, ptr(ack) })
	step(hki(2026, 11, 3, 13, 0), func(r *domain.Referral) { r.Messages++ }) // a message: nothing
	ask := hki(2026, 11, 4, 9, 0)
	step(ask, func(r *domain.Referral) {
		r.Status, r.ResumeStatus, r.Times.FirstResponseAt = domain.StatusInfoRequested, domain.StatusReceived, ptr(ask)
	})
	step(hki(2026, 11, 4, 15, 0), func(r *domain.Referral) { r.Status, r.ResumeStatus = domain.StatusReceived, "" })
	step(hki(2026, 11, 5, 10, 0), func(r *domain.Referral) { r.Status = domain.StatusInProgress }) // start
	ask2 := hki(2026, 11, 5, 11, 0)
	step(ask2, func(r *domain.Referral) {
		r.Status, r.ResumeStatus = domain.StatusInfoRequested, domain.StatusInProgress
	})
	step(hki(2026, 11, 5, 12, 0), func(r *domain.Referral) { r.Status, r.ResumeStatus = domain.StatusInProgress, "" })
	done := hki(2026, 11, 6, 10, 0)
	step(done, func(r *domain.Referral) { r.Status, r.Times.ClosedAt = domain.StatusCompleted, ptr(done) })
	same := *v.cur // rewriting the stored version changes nothing
	if d := domain.ComputeReportDelta(v.cur, &same, reportCal); !d.Empty() {
		t.Errorf("rewrite without change: delta %+v", d)
	}

	want := map[domain.ReportCounter]int64{domain.CountCreated: 1, domain.CountAcknowledged: 1, domain.CountResponded: 1,
		domain.CountCompleted: 1, domain.CountAckMet: 1, domain.CountRespondMet: 1, domain.CountCompletedInTime: 1}
	for c := domain.ReportCounter(0); c < domain.NumReportCounters; c++ {
		if sum.Counts[c] != want[c] {
			t.Errorf("counter %d = %d, want %d", c, sum.Counts[c], want[c])
		}
	}
	wantObs := [domain.NumReportDurations][]time.Duration{{26 * time.Hour}, {47 * time.Hour}, {96 * time.Hour}}
	for i := range obs {
		if len(obs[i]) != 1 || obs[i][0] != wantObs[i][0] {
			t.Errorf("durations %d observed %v, want %v", i, obs[i], wantObs[i])
		}
	}
}

func TestDeltaWithdrawAndBounce(t *testing.T) {
	created := hki(2026, 11, 11, 10, 0) // Wednesday
	base := &domain.Referral{ID: "r2", Kind: domain.KindDecisionReviewRequest, Urgency: domain.Urgent,
		Sender: "hva-90", Recipient: domain.Kela, Status: domain.StatusSent, CreatedAt: created, UpdatedAt: created,
		ClientKey: "k2", Deadlines: domain.Deadlines{AcknowledgeBy: ptr(hki(2026, 11, 12, 23, 0)), RespondBy: ptr(hki(2026, 11, 12, 23, 0))}}
	tests := []struct {
		name   string
		at     time.Time
		status domain.Status
		want   map[domain.ReportCounter]int64
		bounce bool
	}{
		{"withdrawn late", hki(2026, 11, 13, 10, 0), domain.StatusWithdrawn,
			map[domain.ReportCounter]int64{domain.CountWithdrawn: 1, domain.CountAckMissed: 1, domain.CountRespondMissed: 1}, false},
		{"withdrawn in time", hki(2026, 11, 12, 10, 0), domain.StatusWithdrawn,
			map[domain.ReportCounter]int64{domain.CountWithdrawn: 1}, false},
		{"returned", hki(2026, 11, 12, 10, 0), domain.StatusReturned,
			map[domain.ReportCounter]int64{domain.CountReturned: 1, domain.CountAcknowledged: 1, domain.CountResponded: 1,
				domain.CountAckMet: 1, domain.CountRespondMet: 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &versions{cur: base}
			old, r := v.next(func(r *domain.Referral) {
				r.Status, r.UpdatedAt, r.Times.ClosedAt = tt.status, tt.at, ptr(tt.at)
				if tt.status != domain.StatusWithdrawn {
					r.Times.AcknowledgedAt, r.Times.FirstResponseAt = ptr(tt.at), ptr(tt.at)
				}
			})
			d := domain.ComputeReportDelta(old, r, reportCal)
			for c := domain.ReportCounter(0); c < domain.NumReportCounters; c++ {
				if d.Counts[c] != tt.want[c] {
					t.Errorf("counter %d = %d, want %d", c, d.Counts[c], tt.want[c])
				}
			}
			if d.Bounced != tt.bounce || d.ClientKey != "k2" {
				t.Errorf("Bounced = %v (%q), want %v", d.Bounced, d.ClientKey, tt.bounce)
			}
			// It was open with a deadline: it leaves the overdue histogram.
			if d.DueRemoved == nil || !d.DueRemoved.Equal(*base.Deadlines.AcknowledgeBy) || d.DueAdded != nil {
				t.Errorf("due moves %v -> %v", d.DueRemoved, d.DueAdded)
			}
		})
	}
}

// TestDeltaAtTheDeadlineInstantAndWithdrawalWhileAsked: an acknowledgement and a completion
// at the deadline's very instant are in time (as Referral.Overdue has it); a withdrawal while
// the recipient waits for the sender's answer charges the recipient no miss, however late.
func TestDeltaAtTheDeadlineInstantAndWithdrawalWhileAsked(t *testing.T) {
	created := hki(2026, 11, 11, 10, 0)
	by := hki(2026, 11, 12, 23, 59).Add(59 * time.Second)
	base := &domain.Referral{ID: "r3", Kind: domain.KindDecisionReviewRequest, Urgency: domain.Urgent,
		Sender: "hva-90", Recipient: domain.Kela, Status: domain.StatusSent, CreatedAt: created, UpdatedAt: created,
		ClientKey: "k3", Deadlines: domain.Deadlines{AcknowledgeBy: ptr(by), RespondBy: ptr(by)}}
	check := func(what string, old, r *domain.Referral, want map[domain.ReportCounter]int64) {
		t.Helper()
		d := domain.ComputeReportDelta(old, r, reportCal)
		for c := domain.ReportCounter(0); c < domain.NumReportCounters; c++ {
			if d.Counts[c] != want[c] {
				t.Errorf("%s: counter %d = %d, want %d", what, c, d.Counts[c], want[c])
			}
		}
	}
	v := &versions{cur: base}
	old, r := v.next(func(r *domain.Referral) {
		r.Status, r.UpdatedAt, r.Times.AcknowledgedAt = domain.StatusReceived, by, ptr(by)
	})
	check("acknowledged at the instant", old, r, map[domain.ReportCounter]int64{domain.CountAcknowledged: 1, domain.CountAckMet: 1})
	received := v.cur
	old, r = v.next(func(r *domain.Referral) {
		r.Status, r.UpdatedAt, r.Times.FirstResponseAt, r.Times.ClosedAt = domain.StatusCompleted, by, ptr(by), ptr(by)
	})
	check("completed at the instant", old, r, map[domain.ReportCounter]int64{domain.CountResponded: 1, domain.CountRespondMet: 1,
		domain.CountCompleted: 1, domain.CountCompletedInTime: 1})

	late := by.Add(3 * 24 * time.Hour)
	v = &versions{cur: received}
	old, r = v.next(func(r *domain.Referral) { r.Status, r.UpdatedAt = domain.StatusWithdrawn, late })
	check("withdrawn late while received", old, r, map[domain.ReportCounter]int64{domain.CountWithdrawn: 1, domain.CountRespondMissed: 1})
	v = &versions{cur: received}
	ask := hki(2026, 11, 12, 9, 0)
	v.next(func(r *domain.Referral) {
		r.Status, r.ResumeStatus, r.UpdatedAt, r.Times.FirstResponseAt = domain.StatusInfoRequested, domain.StatusReceived, ask, ptr(ask)
	})
	old, r = v.next(func(r *domain.Referral) { r.Status, r.UpdatedAt = domain.StatusWithdrawn, late })
	check("withdrawn late while the sender owed an answer", old, r, map[domain.ReportCounter]int64{domain.CountWithdrawn: 1})
}

// TestOverdueFromFollowsOverdue checks that the overdue histogram's instant agrees with
// Referral.Overdue for arbitrary referrals and times: open_overdue in the report counts the
// same referrals as ?overdue=true.
func TestOverdueFromFollowsOverdue(t *testing.T) {
	base := hki(2026, 11, 2, 10, 0)
	rapid.Check(t, func(t *rapid.T) {
		hours := func(label string) time.Time {
			return base.Add(time.Duration(rapid.IntRange(0, 400).Draw(t, label)) * time.Hour)
		}
		maybe := func(label string) *time.Time {
			if rapid.Bool().Draw(t, label+"?") {
				return ptr(hours(label))
			}
			return nil
		}
		r := &domain.Referral{ID: "r", Kind: rapid.SampledFrom(domain.Kinds).Draw(t, "kind"),
			Urgency: domain.Normal, Sender: domain.Kela, Recipient: "hva-90",
			Status:       rapid.SampledFrom(domain.Statuses).Draw(t, "status"),
			ResumeStatus: rapid.SampledFrom([]domain.Status{"", domain.StatusReceived, domain.StatusInProgress}).Draw(t, "resume"),
			CreatedAt:    base, UpdatedAt: base,
			Deadlines: domain.Deadlines{AcknowledgeBy: maybe("ack_by"), RespondBy: maybe("respond_by"), KelaHandoffBy: maybe("handoff_by")},
			Times:     domain.Milestones{AcknowledgedAt: maybe("ack_at")}}
		d := domain.ComputeReportDelta(nil, r, reportCal)
		for i := 0; i < 20; i++ {
			now := hours("now").Add(time.Duration(rapid.IntRange(-1, 1).Draw(t, "ns")))
			inHist := d.DueAdded != nil && now.After(*d.DueAdded)
			if got := r.Overdue(now); got != inHist {
				t.Fatalf("Overdue(%v) = %v, histogram says %v (due %v)", now, got, inHist, d.DueAdded)
			}
		}
	})
}

// memCells is a ReportStore over cells in memory, for the Reporter's own logic.
type memCells []domain.ReportCell

func (m memCells) ReportCells(_ context.Context, f domain.ReportCellFilter, fn func(*domain.ReportCell) error) error {
	for i := range m {
		c := m[i]
		if c.Month < f.From || c.Month > f.To || (f.Org != "" && c.Sender != f.Org && c.Recipient != f.Org) {
			continue
		}
		if err := fn(&c); err != nil {
			return err
		}
	}
	return nil
}

func TestReportScopeByRole(t *testing.T) {
	tests := []struct {
		actor domain.Actor
		scope domain.OrgID
		code  domain.Code
	}{
		{domain.Actor{Org: domain.Kela, Roles: []domain.Role{domain.RoleSupervisor}}, "", ""},
		{domain.Actor{Org: "hva-08", Roles: []domain.Role{domain.RoleSocialWorker, domain.RoleSupervisor}}, "hva-08", ""},
		{domain.Actor{Org: "hva-08", Roles: []domain.Role{domain.RoleSocialWorker}}, "", domain.EForbidden},
		{domain.Actor{Org: domain.Kela, Roles: []domain.Role{domain.RoleKelaHandler}}, "", domain.EForbidden},
		{domain.Actor{Org: domain.Kela, Roles: []domain.Role{domain.RoleAuditor}}, "", domain.EForbidden},
		{domain.Actor{Org: "hva-90"}, "", domain.EForbidden},
	}
	for _, tt := range tests {
		scope, err := domain.ReportScope(tt.actor)
		if scope != tt.scope || (tt.code == "" && err != nil) || (tt.code != "" && domain.ErrorCode(err) != tt.code) {
			t.Errorf("ReportScope(%v %v) = %q, %v; want %q, %q", tt.actor.Org, tt.actor.Roles, scope, err, tt.scope, tt.code)
		}
	}
}

// TestPercentilesNearestRank checks p50/p90 over 200 observations split over two cells (the
// accumulator's sorted list), and over eight (it switches to its dense array on the way).
func TestPercentilesNearestRank(t *testing.T) {
	nov := domain.MakeMonth(2026, time.November)
	key := domain.ReportCellKey{Month: nov, Sender: domain.Kela, Recipient: "hva-90", Kind: domain.KindSocialWorkNeed, Urgency: domain.Normal}
	// 200 observations: 1..200 hours. Nearest rank: p50 = the 100th = 100 h, p90 = the 180th.
	var a, b domain.ReportCell
	a.ReportCellKey, b.ReportCellKey = key, key
	b.Urgency = domain.Urgent
	for h := 1; h <= 200; h++ {
		c := &a
		if h%2 == 0 {
			c = &b
		}
		c.Hist[domain.DurAcknowledge] = append(c.Hist[domain.DurAcknowledge],
			domain.HistBin{Bucket: domain.DurationBucket(time.Duration(h) * time.Hour), Count: 1})
		c.Counts[domain.CountAcknowledged]++
	}
	rp := &domain.Reporter{Store: memCells{a, b}, Clock: domain.ClockFunc(func() time.Time { return hki(2026, 12, 1, 0, 0) })}
	kelaSuper := domain.Actor{Org: domain.Kela, Roles: []domain.Role{domain.RoleSupervisor}}
	got, err := rp.ResponseTimes(context.Background(), kelaSuper, domain.ReportQuery{From: nov, To: nov, GroupBy: []domain.ReportDimension{domain.ByUrgency}})
	if err != nil {
		t.Fatal(err)
	}
	ack := got.Total.TimeToAcknowledge
	if ack.Count != 200 || *ack.P50 != (domain.BusinessTime{Hours: 100, Days: 4.17}) || *ack.P90 != (domain.BusinessTime{Hours: 180, Days: 7.5}) {
		t.Errorf("total: count %d p50 %+v p90 %+v", ack.Count, *ack.P50, *ack.P90)
	}
	// Odd hours 1..199 (normal): the 50th is 99 h, the 90th 179 h; even (urgent): 100 h, 180 h.
	if len(got.Groups) != 2 || got.Groups[0].Urgency != domain.Normal || got.Groups[1].Urgency != domain.Urgent {
		t.Fatalf("groups %+v", got.Groups)
	}
	for i, want := range [][2]float64{{99, 179}, {100, 180}} {
		f := got.Groups[i].Figures.TimeToAcknowledge
		if f.Count != 100 || f.P50.Hours != want[0] || f.P90.Hours != want[1] {
			t.Errorf("group %s: count %d p50 %v p90 %v, want %v", got.Groups[i].Urgency, f.Count, f.P50.Hours, f.P90.Hours, want)
		}
	}
	if got.Total.TimeToCompletion.Count != 0 || got.Total.TimeToCompletion.P50 != nil || got.Total.WithinDeadline.RespondBy.Share != nil {
		t.Errorf("empty figures should be null: %+v", got.Total)
	}
	// The same 200 observations over eight cells (eight counties): the total merges more
	// cells than its sorted list takes and switches to its dense array — with every
	// observation gathered before the switch.
	var spread memCells
	for i := range 8 {
		c := domain.ReportCell{ReportCellKey: key}
		c.Recipient = domain.OrgID(fmt.Sprintf("hva-%02d", i+1))
		for h := i + 1; h <= 200; h += 8 {
			c.Hist[domain.DurAcknowledge] = append(c.Hist[domain.DurAcknowledge],
				domain.HistBin{Bucket: domain.DurationBucket(time.Duration(h) * time.Hour), Count: 1})
			c.Counts[domain.CountAcknowledged]++
		}
		spread = append(spread, c)
	}
	rp = &domain.Reporter{Store: spread, Clock: rp.Clock}
	got, err = rp.ResponseTimes(context.Background(), kelaSuper, domain.ReportQuery{From: nov, To: nov})
	if err != nil {
		t.Fatal(err)
	}
	if ack := got.Total.TimeToAcknowledge; ack.Count != 200 || ack.P50.Hours != 100 || ack.P90.Hours != 180 {
		t.Errorf("over eight cells: count %d p50 %v p90 %v, want 200, 100 h, 180 h", ack.Count, ack.P50.Hours, ack.P90.Hours)
	}
	_, err = rp.ResponseTimes(context.Background(), kelaSuper, domain.ReportQuery{From: nov, To: nov - 1})
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.EMalformed {
		t.Errorf("to before from: %v, want malformed", err)
	}
}

// TestOpenOverdueAtTheDeadlineInstant: the report counts a referral as overdue only after its
// deadline's instant, as Referral.Overdue and ?overdue=true do — not at it.
func TestOpenOverdueAtTheDeadlineInstant(t *testing.T) {
	nov := domain.MakeMonth(2026, time.November)
	by := hki(2026, 11, 24, 23, 59).Add(59 * time.Second)
	cell := domain.ReportCell{ReportCellKey: domain.ReportCellKey{Month: nov, Sender: domain.Kela, Recipient: "hva-90",
		Kind: domain.KindSocialWorkNeed, Urgency: domain.Normal}, Due: []domain.DueBin{{At: by.UnixNano(), Count: 1}}}
	cell.Counts[domain.CountCreated] = 1
	kelaSuper := domain.Actor{Org: domain.Kela, Roles: []domain.Role{domain.RoleSupervisor}}
	for _, tc := range []struct {
		now  time.Time
		want int64
	}{{by, 0}, {by.Add(time.Nanosecond), 1}} {
		rp := &domain.Reporter{Store: memCells{cell}, Clock: domain.ClockFunc(func() time.Time { return tc.now })}
		got, err := rp.ResponseTimes(context.Background(), kelaSuper, domain.ReportQuery{From: nov, To: nov})
		if err != nil {
			t.Fatal(err)
		}
		if got.Total.OpenOverdue != tc.want {
			t.Errorf("at %v: open_overdue %d, want %d", tc.now, got.Total.OpenOverdue, tc.want)
		}
	}
}
