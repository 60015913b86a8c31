package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
)

// dueEntry is one decoded key of the due bucket.
type dueEntry struct {
	typ   byte
	by    time.Time
	id    string
	which byte
}

func (e dueEntry) String() string {
	return fmt.Sprintf("%c %c %s %s", e.typ, e.which, e.by.Format(time.RFC3339), e.id[len(e.id)-4:])
}

// dueIn returns the due bucket in key order.
func dueIn(t testing.TB, db *DB) []dueEntry {
	t.Helper()
	var out []dueEntry
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDue).ForEach(func(k, _ []byte) error {
			if len(k) != dueKeyLen {
				t.Errorf("due key %x has length %d", k, len(k))
				return nil
			}
			out = append(out, dueEntry{k[0], keyTime(binary.BigEndian.Uint64(k[1:9])), uuid.UUID(k[9:25]).String(), k[25]})
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// bucketLen counts the keys of a bucket (prefix != nil: those with the prefix).
func bucketLen(t testing.TB, db *DB, name []byte, prefix []byte) int {
	t.Helper()
	n := 0
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(name).Cursor()
		for k, _ := c.Seek(prefix); k != nil && (prefix == nil || string(k[:min(len(k), len(prefix))]) == string(prefix)); k, _ = c.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var (
	ackAt  = time.Date(2026, 3, 3, 21, 59, 59, 0, time.UTC)
	respAt = time.Date(2026, 3, 11, 21, 59, 59, 0, time.UTC)
)

func withDeadlines(r *domain.Referral) {
	a, s := ackAt, respAt
	r.Deadlines = domain.Deadlines{AcknowledgeBy: &a, RespondBy: &s, Basis: "test"}
}

func TestAlertEntriesFollowTheReferral(t *testing.T) {
	db := MustOpen(t)
	r := newReferral(orgKela, orgHelsin, withDeadlines)
	mustCreate(t, db, r)
	want := []dueEntry{
		{alertOverdue, ackAt, r.ID, whichAck}, {alertOverdue, respAt, r.ID, whichRespond},
		{alertWarning, ackAt, r.ID, whichAck}, {alertWarning, respAt, r.ID, whichRespond},
	}
	if got := dueIn(t, db); !slices.Equal(got, want) {
		t.Fatalf("after create: due %v, want %v", got, want)
	}

	// Acknowledged: acknowledge_by is met, its entries go.
	acked := *r
	now := ackAt.Add(-time.Hour)
	acked.Status, acked.Times.AcknowledgedAt = domain.StatusReceived, &now
	mustPut(t, db, &domain.Change{Referrals: []*domain.Referral{&acked}})
	want = []dueEntry{{alertOverdue, respAt, r.ID, whichRespond}, {alertWarning, respAt, r.ID, whichRespond}}
	if got := dueIn(t, db); !slices.Equal(got, want) {
		t.Fatalf("after acknowledging: due %v, want %v", got, want)
	}

	// Waiting for information pauses respond_by: nothing due, no watch state.
	asked := acked
	asked.Status, asked.ResumeStatus = domain.StatusInfoRequested, domain.StatusReceived
	mustPut(t, db, &domain.Change{Referrals: []*domain.Referral{&asked}})
	if got := dueIn(t, db); len(got) != 0 {
		t.Fatalf("info requested: due %v, want none", got)
	}
	if n := bucketLen(t, db, bucketWatching, nil); n != 0 {
		t.Errorf("info requested: %d watch states, want 0", n)
	}

	// The answer moves respond_by: entries for the new value only.
	answered := acked
	moved := respAt.Add(7 * 24 * time.Hour)
	answered.Deadlines.RespondBy = &moved
	mustPut(t, db, &domain.Change{Referrals: []*domain.Referral{&answered}})
	want = []dueEntry{{alertOverdue, moved, r.ID, whichRespond}, {alertWarning, moved, r.ID, whichRespond}}
	if got := dueIn(t, db); !slices.Equal(got, want) {
		t.Fatalf("after the answer: due %v, want %v", got, want)
	}

	// Closed: nothing left of it.
	closed := answered
	closed.Status = domain.StatusCompleted
	mustPut(t, db, &domain.Change{Referrals: []*domain.Referral{&closed}})
	if got := dueIn(t, db); len(got) != 0 {
		t.Errorf("closed: due %v, want none", got)
	}
	if n := bucketLen(t, db, bucketWatching, nil); n != 0 {
		t.Errorf("closed: %d watch states, want 0", n)
	}
}

func TestSettledAlertsAreRecordedOnceAndListOverdue(t *testing.T) {
	db := MustOpen(t)
	ctx := context.Background()
	r := newReferral(orgKela, orgHelsin, withDeadlines)
	mustCreate(t, db, r)
	fire := func(typ domain.EventType, deadline string, by time.Time, stale bool) {
		t.Helper()
		mustPut(t, db, &domain.Change{Alerts: []domain.Alert{{ReferralID: r.ID, Type: typ, Deadline: deadline, By: by, Stale: stale}}})
	}
	fire(domain.EventDeadlineWarning, domain.DeadlineAcknowledge, ackAt, false)
	fire(domain.EventOverdue, domain.DeadlineAcknowledge, ackAt, false)
	want := []dueEntry{{alertOverdue, respAt, r.ID, whichRespond}, {alertWarning, respAt, r.ID, whichRespond}}
	if got := dueIn(t, db); !slices.Equal(got, want) {
		t.Fatalf("after firing acknowledge_by: due %v, want %v", got, want)
	}
	for _, l := range []domain.ListFilter{
		{Org: orgHelsin, Direction: domain.Incoming}, {Org: orgKela, Direction: domain.Outgoing},
		{Org: orgHelsin, Direction: domain.Incoming, Status: domain.StatusSent, Kind: domain.KindSocialWorkNeed, Urgency: domain.Normal},
	} {
		p, err := db.ListOverdue(ctx, l)
		if err != nil || !slices.Equal(ids(p.Items), []string{r.ID}) {
			t.Errorf("ListOverdue(%+v) = %v, %v; want the referral", l, ids(p.Items), err)
		}
	}
	for _, l := range []domain.ListFilter{
		{Org: orgKela, Direction: domain.Incoming}, {Org: orgHelsin, Direction: domain.Outgoing},
		{Org: orgHelsin, Direction: domain.Incoming, Status: domain.StatusReceived},
		{Org: orgHelsin, Direction: domain.Incoming, Urgency: domain.Urgent},
	} {
		if p, err := db.ListOverdue(ctx, l); err != nil || len(p.Items) != 0 {
			t.Errorf("ListOverdue(%+v) = %v, %v; want none", l, ids(p.Items), err)
		}
	}

	// Saving the referral again does not re-arm what fired for the same value.
	again := *r
	again.Version, again.Messages = 2, 1
	mustPut(t, db, &domain.Change{Referrals: []*domain.Referral{&again}})
	if got := dueIn(t, db); !slices.Equal(got, want) {
		t.Errorf("after a re-save: due %v, want %v", got, want)
	}
	// The list entry follows the status.
	moved := again
	moved.Status = domain.StatusReceived // acknowledge_by stays unmet: AcknowledgedAt is not set
	mustPut(t, db, &domain.Change{Referrals: []*domain.Referral{&moved}})
	if p, _ := db.ListOverdue(ctx, domain.ListFilter{Org: orgHelsin, Direction: domain.Incoming, Status: domain.StatusReceived}); len(p.Items) != 1 {
		t.Errorf("status filter after a status change: %v", ids(p.Items))
	}

	// A stale entry is dropped without a marker; sync puts it back if the referral wants it.
	fire(domain.EventDeadlineWarning, domain.DeadlineRespond, respAt, true)
	if got := dueIn(t, db); !slices.Equal(got, want) {
		t.Errorf("after a stale settle of a wanted entry: due %v, want %v", got, want)
	}

	id, _ := parseID(r.ID)
	if n := bucketLen(t, db, bucketFired, id[:]); n != 2 {
		t.Errorf("%d fired markers, want 2", n)
	}
	closed := moved
	closed.Status = domain.StatusWithdrawn
	mustPut(t, db, &domain.Change{Referrals: []*domain.Referral{&closed}})
	if n := bucketLen(t, db, bucketFired, id[:]); n != 0 {
		t.Errorf("closed: %d fired markers left", n)
	}
	if n := bucketLen(t, db, bucketIndex, []byte("v")); n != 0 {
		t.Errorf("closed: %d overdue-list entries left", n)
	}
	if got := dueIn(t, db); len(got) != 0 {
		t.Errorf("closed: due %v", got)
	}
}

func TestDueAlertsReadsOnlyWhatIsDue(t *testing.T) {
	db := MustOpen(t)
	ctx := context.Background()
	var rs []*domain.Referral
	for i := range 5 {
		rs = append(rs, newReferral(orgKela, orgHelsin, func(r *domain.Referral) {
			a := ackAt.Add(time.Duration(i) * time.Hour)
			r.Deadlines = domain.Deadlines{AcknowledgeBy: &a}
		}))
	}
	mustCreate(t, db, rs...)
	at := func(i int) time.Time { return ackAt.Add(time.Duration(i) * time.Hour) }
	tests := []struct {
		name     string
		f        domain.DueFilter
		warnings []int // referrals whose warning is returned
		overdue  []int
	}{
		{"warnings are inclusive, overdue exclusive", domain.DueFilter{WarnBy: at(1), OverdueBefore: at(1), Max: 10}, []int{0, 1}, []int{0}},
		{"zero WarnBy: no warnings", domain.DueFilter{OverdueBefore: at(4).Add(time.Second), Max: 10}, nil, []int{0, 1, 2, 3, 4}},
		{"Max applies to each kind", domain.DueFilter{WarnBy: at(9), OverdueBefore: at(9), Max: 2}, []int{0, 1}, []int{0, 1}},
		{"Max 0 means 1", domain.DueFilter{WarnBy: at(9), OverdueBefore: at(9)}, []int{0}, []int{0}},
		{"nothing due yet", domain.DueFilter{WarnBy: at(0).Add(-time.Nanosecond), OverdueBefore: at(0), Max: 10}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.DueAlerts(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var want []domain.Alert
			for _, i := range tt.warnings {
				want = append(want, domain.Alert{ReferralID: rs[i].ID, Type: domain.EventDeadlineWarning, Deadline: domain.DeadlineAcknowledge, By: at(i)})
			}
			for _, i := range tt.overdue {
				want = append(want, domain.Alert{ReferralID: rs[i].ID, Type: domain.EventOverdue, Deadline: domain.DeadlineAcknowledge, By: at(i)})
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("DueAlerts = %+v\nwant %+v", got, want)
			}
		})
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := db.DueAlerts(cancelled, domain.DueFilter{OverdueBefore: at(9)}); err == nil {
		t.Error("DueAlerts with a cancelled context succeeded")
	}
}

func TestTimeKeysSortByTime(t *testing.T) {
	times := []time.Time{
		time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC), time.Unix(0, 0), time.Unix(0, 1),
		time.Date(2026, 11, 24, 21, 59, 59, 0, time.UTC), time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i, tm := range times {
		if back := keyTime(timeKey(tm)); !back.Equal(tm) {
			t.Errorf("round trip of %s = %s", tm, back)
		}
		if i > 0 && timeKey(times[i-1]) >= timeKey(tm) {
			t.Errorf("key of %s does not sort before %s", times[i-1], tm)
		}
	}
}

// TestOpenWatchesReferralsOfAnOlderFile: a file written before the alert buckets existed gets
// the entries of its referrals at the first open.
func TestOpenWatchesReferralsOfAnOlderFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	open, closed := newReferral(orgKela, orgHelsin, withDeadlines), newReferral(orgKela, orgHelsin, withDeadlines)
	closed.Status = domain.StatusWithdrawn
	mustCreate(t, db, open, closed)
	err = db.bolt.Update(func(tx *bolt.Tx) error { // back to the older layout
		for _, name := range alertBuckets {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpenPath(t, path, Options{})
	got := dueIn(t, db)
	if len(got) != 4 {
		t.Fatalf("due after the upgrade: %v, want the open referral's 4 entries", got)
	}
	for _, e := range got {
		if e.id != open.ID {
			t.Errorf("entry of %s, want only %s", e.id, open.ID)
		}
	}
}

func TestListOverdueRefusesBadFilters(t *testing.T) {
	db := MustOpen(t)
	ctx := context.Background()
	for _, f := range []domain.ListFilter{
		{Org: orgHelsin, Direction: "sideways"},
		{Org: "", Direction: domain.Incoming},
		{Org: "a\x00b", Direction: domain.Incoming},
		{Org: orgHelsin, Direction: domain.Incoming, After: "not-a-uuid"},
	} {
		if _, err := db.ListOverdue(ctx, f); domain.ErrorCode(err) != domain.EMalformed {
			t.Errorf("ListOverdue(%+v) = %v, want EMalformed", f, err)
		}
	}
}

// BenchmarkFireDue measures one watcher step that fires the alerts of 10 due referrals among
// 10,000 and among 100,000 waiting ones (step: FireDue with its write transaction and fsync),
// and the read of the due index alone (read). Both read the due index from its start, so
// their cost follows the due alerts, not the referrals stored: the 100,000 runs report their
// time as a multiple of the 10,000 ones (x_vs_10k, about 1).
func BenchmarkFireDue(b *testing.B) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	future := time.Date(2027, 6, 1, 20, 59, 59, 0, time.UTC)
	past := time.Date(2026, 5, 29, 20, 59, 59, 0, time.UTC)
	policy := domain.NewDeadlinePolicy(calendar.New(calendar.Options{}))
	warnBy, _ := policy.WarningHorizon(now)
	put := func(db *DB, rs []*domain.Referral) {
		if err := db.Update(context.Background(), func(domain.Tx) (*domain.Change, error) {
			return &domain.Change{Referrals: rs}, nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	referrals := func(n int, by time.Time) []*domain.Referral {
		rs := make([]*domain.Referral, n)
		for i := range rs {
			rs[i] = newReferral(orgKela, orgHelsin, func(r *domain.Referral) {
				a, s := by, by.Add(24*time.Hour)
				r.Deadlines = domain.Deadlines{AcknowledgeBy: &a, RespondBy: &s}
			})
		}
		return rs
	}
	base := map[string]float64{}
	ratio := func(b *testing.B, name string, n int) {
		perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		if n == 10_000 {
			base[name] = perOp
		} else if base[name] > 0 {
			b.ReportMetric(perOp/base[name], "x_vs_10k")
		}
	}
	for _, n := range []int{10_000, 100_000} {
		db := openBench(b, 10*time.Microsecond)
		for done := 0; done < n; done += 5000 {
			put(db, referrals(min(5000, n-done), future))
		}
		svc := &domain.Service{Store: db, Policy: policy}
		b.Run(fmt.Sprintf("step/stored=%d/due=10", n), func(b *testing.B) {
			fired := 0
			for range b.N {
				b.StopTimer()
				put(db, referrals(10, past))
				b.StartTimer()
				alerts, err := svc.FireDue(context.Background(), now, 100)
				if err != nil {
					b.Fatal(err)
				}
				fired += len(alerts)
			}
			if fired != 40*b.N { // each due referral: warning and overdue of both deadlines
				b.Fatalf("fired %d alerts in %d steps, want %d", fired, b.N, 40*b.N)
			}
			ratio(b, "step", n)
		})
		put(db, referrals(10, past))
		b.Run(fmt.Sprintf("read/stored=%d/due=10", n), func(b *testing.B) {
			for range b.N {
				due, err := db.DueAlerts(context.Background(), domain.DueFilter{WarnBy: warnBy, OverdueBefore: now, Max: 100})
				if err != nil || len(due) != 40 {
					b.Fatalf("DueAlerts = %d alerts, %v; want 40", len(due), err)
				}
			}
			ratio(b, "read", n)
		})
	}
}
