package store

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
	"pgregory.net/rapid"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
)

var statsCal = calendar.New(calendar.Options{})

func statsHki(y int, m time.Month, d, h int) time.Time {
	return time.Date(y, m, d, h, 0, 0, 0, statsCal.Location()).UTC()
}

func statsPtr(t time.Time) *time.Time { return &t }

// statsReferral is a Kela → recipient social_work_need created at created, with a one-day
// acknowledgement and a seven-day response deadline as the policy would set them.
func statsReferral(recipient domain.OrgID, created time.Time, clientKey string) *domain.Referral {
	ack, respond := statsCal.Deadline(created, 1).UTC(), statsCal.Deadline(created, 7).UTC()
	return &domain.Referral{
		ID: uuid.Must(uuid.NewV7()).String(), Kind: domain.KindSocialWorkNeed, Direction: domain.KelaToCounty,
		Status: domain.StatusSent, Urgency: domain.Normal, Sender: domain.Kela, Recipient: recipient,
		CreatedAt: created, UpdatedAt: created, CreatedBy: "u", Version: 1, ClientKey: clientKey,
		Deadlines: domain.Deadlines{AcknowledgeBy: &ack, RespondBy: &respond},
		Client:    domain.Client{PersonalID: "010150-123N", Name: "Testi Testinen"},
	}
}

// statsNext returns a copy of r changed by edit at at, as a command would write it.
func statsNext(r *domain.Referral, at time.Time, edit func(*domain.Referral)) *domain.Referral {
	c := *r
	c.Version++
	c.UpdatedAt = at
	edit(&c)
	return &c
}

func statsPut(t *testing.T, db *DB, rs ...*domain.Referral) {
	t.Helper()
	err := db.Update(context.Background(), func(domain.Tx) (*domain.Change, error) {
		return &domain.Change{Referrals: rs}, nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// statsCells reads every cell of the months from..to for org ("" all), deep-copied.
func statsCells(t *testing.T, db *DB, from, to domain.Month, org domain.OrgID) []domain.ReportCell {
	t.Helper()
	var out []domain.ReportCell
	err := db.ReportCells(context.Background(), domain.ReportCellFilter{From: from, To: to, Org: org}, func(c *domain.ReportCell) error {
		cp := *c
		for i := range c.Hist {
			cp.Hist[i] = append([]domain.HistBin(nil), c.Hist[i]...)
		}
		cp.Due = append([]domain.DueBin(nil), c.Due...)
		out = append(out, cp)
		return nil
	})
	if err != nil {
		t.Fatalf("ReportCells: %v", err)
	}
	return out
}

var statsNov2026 = domain.MakeMonth(2026, time.November)

func TestCellEncodingRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var c domain.ReportCell
		for i := range c.Counts {
			c.Counts[i] = rapid.Int64Range(0, 1<<40).Draw(t, "count")
		}
		for i := range c.Hist {
			buckets := rapid.SliceOfNDistinct(rapid.IntRange(0, domain.NumDurationBuckets-1), 0, 50, rapid.ID[int]).Draw(t, "buckets")
			slices.Sort(buckets)
			for _, b := range buckets {
				c.Hist[i] = append(c.Hist[i], domain.HistBin{Bucket: b, Count: rapid.Int64Range(1, 1<<30).Draw(t, "n")})
			}
		}
		ats := rapid.SliceOfNDistinct(rapid.Int64Range(-1<<62, 1<<62), 0, 30, rapid.ID[int64]).Draw(t, "ats")
		slices.Sort(ats)
		for _, at := range ats {
			c.Due = append(c.Due, domain.DueBin{At: at, Count: rapid.Int64Range(1, 1000).Draw(t, "due")})
		}
		v := encodeCell(&c)
		var got domain.ReportCell
		got.Due = make([]domain.DueBin, 3) // reused slices are reset
		if err := decodeCell(v, &got); err != nil {
			t.Fatalf("decode: %v", err)
		}
		norm := func(c *domain.ReportCell) {
			for i := range c.Hist {
				if len(c.Hist[i]) == 0 {
					c.Hist[i] = nil
				}
			}
			if len(c.Due) == 0 {
				c.Due = nil
			}
		}
		norm(&c)
		norm(&got)
		if !reflect.DeepEqual(c, got) {
			t.Fatalf("round trip:\n%+v\n%+v", c, got)
		}
		if len(v) > 1 {
			if err := decodeCell(v[:len(v)-1], &got); err == nil {
				t.Fatalf("truncated cell decoded without error")
			}
		}
	})
	var c domain.ReportCell
	if err := decodeCell([]byte{9, 0}, &c); !errors.Is(err, errCellFormat) {
		t.Errorf("unknown format: %v", err)
	}
}

// TestAggregatesFollowWrites writes one referral's versions and reads its cell after each.
func TestAggregatesFollowWrites(t *testing.T) {
	db := MustOpen(t)
	created := statsHki(2026, 11, 2, 10) // Monday
	r1 := statsReferral("hva-90", created, "client-a")
	statsPut(t, db, r1)
	cells := statsCells(t, db, statsNov2026, statsNov2026, "")
	if len(cells) != 1 || cells[0].Counts[domain.CountCreated] != 1 ||
		!reflect.DeepEqual(cells[0].Due, []domain.DueBin{{At: r1.Deadlines.AcknowledgeBy.UnixNano(), Count: 1}}) {
		t.Fatalf("after create: %+v", cells)
	}
	ack := statsHki(2026, 11, 3, 12)
	r2 := statsNext(r1, ack, func(r *domain.Referral) { r.Status, r.Times.AcknowledgedAt = domain.StatusReceived, statsPtr(ack) })
	statsPut(t, db, r2)
	statsPut(t, db, statsNext(r2, ack.Add(time.Hour), func(r *domain.Referral) { r.Messages++ })) // nothing to count
	c := statsCells(t, db, statsNov2026, statsNov2026, "")[0]
	wantAck := []domain.HistBin{{Bucket: domain.DurationBucket(26 * time.Hour), Count: 1}}
	if c.Counts[domain.CountAcknowledged] != 1 || c.Counts[domain.CountAckMet] != 1 || !reflect.DeepEqual(c.Hist[domain.DurAcknowledge], wantAck) ||
		!reflect.DeepEqual(c.Due, []domain.DueBin{{At: r1.Deadlines.RespondBy.UnixNano(), Count: 1}}) {
		t.Fatalf("after receive: %+v", c)
	}
	// The cell key: month, sender, recipient, kind, urgency; only this one.
	if c.ReportCellKey != (domain.ReportCellKey{Month: statsNov2026, Sender: domain.Kela, Recipient: "hva-90", Kind: domain.KindSocialWorkNeed, Urgency: domain.Normal}) {
		t.Errorf("cell key %+v", c.ReportCellKey)
	}
	if got := statsCells(t, db, statsNov2026+1, statsNov2026+3, ""); len(got) != 0 {
		t.Errorf("later months: %+v", got)
	}
	if got := statsCells(t, db, statsNov2026, statsNov2026, "hva-08"); len(got) != 0 {
		t.Errorf("another county sees %+v", got)
	}
	if got := statsCells(t, db, statsNov2026, statsNov2026, domain.Kela); len(got) != 1 {
		t.Errorf("the sender sees %d cells", len(got))
	}
	if n := db.StatsInconsistencies(); n != 0 {
		t.Errorf("StatsInconsistencies = %d", n)
	}
}

// TestBouncesPerClient counts a client's second bounce once, on the referral that made it.
func TestBouncesPerClient(t *testing.T) {
	db := MustOpen(t)
	at := statsHki(2026, 11, 2, 10)
	var refs []*domain.Referral
	for i, client := range []string{"client-x", "client-x", "client-x", "client-y"} {
		r := statsReferral("hva-90", at.Add(time.Duration(i)*time.Hour), client)
		statsPut(t, db, r)
		refs = append(refs, r)
	}
	back := statsHki(2026, 11, 3, 10)
	for _, r := range refs {
		statsPut(t, db, statsNext(r, back, func(r *domain.Referral) {
			r.Status, r.Times.AcknowledgedAt, r.Times.FirstResponseAt, r.Times.ClosedAt = domain.StatusReturned, statsPtr(back), statsPtr(back), statsPtr(back)
		}))
	}
	c := statsCells(t, db, statsNov2026, statsNov2026, "")[0]
	if c.Counts[domain.CountReturned] != 4 || c.Counts[domain.CountRepeatBounceClients] != 1 || len(c.Due) != 0 {
		t.Errorf("returned %d, clients bounced more than once %d, due %v", c.Counts[domain.CountReturned], c.Counts[domain.CountRepeatBounceClients], c.Due)
	}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketStatsClients)
		if x, y := b.Get([]byte("client-x")), b.Get([]byte("client-y")); len(x) != 1 || x[0] != 3 || len(y) != 1 || y[0] != 1 {
			t.Errorf("client counters x=%v y=%v", x, y)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// countingObserver records the deltas it hears.
type countingObserver struct {
	mu     sync.Mutex
	deltas []domain.ReportDelta
}

func (o *countingObserver) ObserveMilestones(ds []domain.ReportDelta) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.deltas = append(o.deltas, ds...)
}

// TestAggregatesSurviveBatchRetries runs creates in one group commit with a write that fails
// last: bbolt rolls the batch back and runs the others again. Each create counts once, and the
// observer hears each once, after the commit.
func TestAggregatesSurviveBatchRetries(t *testing.T) {
	obs := &countingObserver{}
	db := mustOpenPath(t, filepath.Join(t.TempDir(), "r.db"), Options{MaxBatchSize: 1000, Observer: obs})
	const n = 8
	runs := make([]atomic.Int32, n)
	var wg sync.WaitGroup
	// The good writes, then the failing one, queue behind a held transaction, so all nine
	// form the next batch in that order, whatever the scheduler does (commit_test.go).
	release := hold(t, db.group)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := statsReferral("hva-90", statsHki(2026, 11, 2, 10), "")
			err := db.Update(context.Background(), func(domain.Tx) (*domain.Change, error) {
				runs[i].Add(1)
				return &domain.Change{Referrals: []*domain.Referral{r}}, nil
			})
			if err != nil {
				t.Errorf("create %d: %v", i, err)
			}
		}()
	}
	waitQueued(t, db.group, n)
	bad := statsReferral("hva-90", statsHki(2026, 11, 2, 10), "")
	bad.ID = "not-a-uuid"
	badErr := make(chan error, 1)
	go func() {
		badErr <- db.Update(context.Background(), func(domain.Tx) (*domain.Change, error) {
			return &domain.Change{Referrals: []*domain.Referral{bad}}, nil
		})
	}()
	waitQueued(t, db.group, n+1)
	release()
	if err := <-badErr; err == nil {
		t.Error("the bad write succeeded")
	}
	wg.Wait()
	retried := false
	for i := range runs {
		retried = retried || runs[i].Load() > 1
	}
	if !retried {
		t.Fatal("no create ran twice: the batch was not retried, so this test proves nothing")
	}
	c := statsCells(t, db, statsNov2026, statsNov2026, "")
	if len(c) != 1 || c[0].Counts[domain.CountCreated] != n || c[0].Due[0].Count != n {
		t.Errorf("cells %+v, want %d created", c, n)
	}
	obs.mu.Lock()
	heard := len(obs.deltas)
	obs.mu.Unlock()
	if heard != n {
		t.Errorf("observer heard %d deltas, want %d", heard, n)
	}
}

// TestRebuildOnOpen clears the aggregates' version and reopens: Open rebuilds the same cells
// from the referrals.
func TestRebuildOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	db, err := Open(path, Options{MaxBatchDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	at := statsHki(2026, 11, 6, 15) // Friday
	a := statsReferral("hva-90", at, "client-z")
	b := statsReferral("hva-08", at.Add(time.Hour), "client-z")
	c := statsReferral("hva-08", statsHki(2026, 12, 1, 10), "")
	statsPut(t, db, a, b, c)
	mon := statsHki(2026, 11, 9, 11)
	statsPut(t, db,
		statsNext(a, mon, func(r *domain.Referral) {
			r.Status, r.Times.AcknowledgedAt, r.Times.FirstResponseAt, r.Times.ClosedAt = domain.StatusReturned, statsPtr(mon), statsPtr(mon), statsPtr(mon)
		}),
		statsNext(b, mon, func(r *domain.Referral) {
			r.Status, r.Times.AcknowledgedAt, r.Times.FirstResponseAt, r.Times.ClosedAt = domain.StatusCompleted, statsPtr(mon), statsPtr(mon), statsPtr(mon)
		}))
	// Another client returned three times: one client bounced more than once, live and rebuilt.
	for i := range 3 {
		y := statsReferral("hva-90", at.Add(time.Duration(i+2)*time.Hour), "client-y")
		statsPut(t, db, y)
		statsPut(t, db, statsNext(y, mon, func(r *domain.Referral) {
			r.Status, r.Times.AcknowledgedAt, r.Times.FirstResponseAt, r.Times.ClosedAt = domain.StatusReturned, statsPtr(mon), statsPtr(mon), statsPtr(mon)
		}))
	}
	before := statsCells(t, db, statsNov2026, statsNov2026+1, "")
	if len(before) != 3 {
		t.Fatalf("%d cells before", len(before))
	}
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketStatsMeta).Delete(statsVersionKey) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpenPath(t, path, Options{})
	after := statsCells(t, db, statsNov2026, statsNov2026+1, "")
	if !reflect.DeepEqual(before, after) {
		t.Errorf("rebuilt cells differ:\nbefore %+v\nafter  %+v", before, after)
	}
	// The client's counter was rebuilt too: their next bounce is their second.
	next := statsReferral("hva-90", statsHki(2026, 11, 10, 10), "client-z")
	statsPut(t, db, next)
	noon := statsHki(2026, 11, 10, 12)
	statsPut(t, db, statsNext(next, noon, func(r *domain.Referral) {
		r.Status, r.Times.AcknowledgedAt, r.Times.FirstResponseAt, r.Times.ClosedAt = domain.StatusReturned, statsPtr(noon), statsPtr(noon), statsPtr(noon)
	}))
	var repeat int64
	for _, c := range statsCells(t, db, statsNov2026, statsNov2026, "") {
		repeat += c.Counts[domain.CountRepeatBounceClients]
	}
	if repeat != 2 {
		t.Errorf("clients bounced more than once = %d, want 2 (client-y, and client-z now)", repeat)
	}
}

func TestCellKeys(t *testing.T) {
	k := domain.ReportCellKey{Month: domain.MakeMonth(2026, time.January), Sender: "hva-90", Recipient: domain.Kela,
		Kind: domain.KindDecisionReviewRequest, Urgency: domain.Urgent}
	b, err := cellKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if string(b[:6]) != "202601" {
		t.Errorf("month prefix %q", b[:6])
	}
	parts, ok := splitCellKey(b)
	var got domain.ReportCellKey
	if !ok || parseCellKey(parts, &got) != nil || got != k {
		t.Errorf("round trip %+v", got)
	}
	k.Kind = "bad\x00kind"
	if _, err := cellKey(k); !errors.Is(err, errNUL) {
		t.Errorf("NUL in a key part: %v", err)
	}
	if _, ok := splitCellKey([]byte("202601\x00a\x00b")); ok {
		t.Error("short key accepted")
	}
}

// TestForgetClientBounces drops a client's counter only when none of their referrals is
// left in the client index.
func TestForgetClientBounces(t *testing.T) {
	db := MustOpen(t)
	back := statsHki(2026, 11, 3, 10)
	var r *domain.Referral
	// Two clients with a bounce each; the other's index entry sorts after this one's, so
	// finding "an entry after the prefix" is not mistaken for finding this client's.
	for _, key := range []string{"client-q", "client-z"} {
		rk := statsReferral("hva-90", statsHki(2026, 11, 2, 10), key)
		statsPut(t, db, rk)
		statsPut(t, db, statsNext(rk, back, func(r *domain.Referral) {
			r.Status, r.Times.AcknowledgedAt, r.Times.FirstResponseAt, r.Times.ClosedAt = domain.StatusReturned, statsPtr(back), statsPtr(back), statsPtr(back)
		}))
		if r == nil {
			r = rk
		}
	}
	counterOf := func(key string) []byte {
		var v []byte
		_ = db.bolt.View(func(tx *bolt.Tx) error {
			v = append(v, tx.Bucket(bucketStatsClients).Get([]byte(key))...)
			return nil
		})
		return v
	}
	counter := func() []byte { return counterOf("client-q") }
	forget := func() {
		t.Helper()
		if err := db.bolt.Update(func(tx *bolt.Tx) error { return forgetClientBounces(tx, "client-q") }); err != nil {
			t.Fatal(err)
		}
	}
	forget()
	if len(counter()) == 0 {
		t.Fatal("the counter went while the client's referral is still indexed")
	}
	id, _ := parseID(r.ID)
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketIndex).Delete(withID(clientPrefix("client-q"), id)) }); err != nil {
		t.Fatal(err)
	}
	forget()
	if v := counter(); len(v) != 0 {
		t.Errorf("counter %v left after the client's last index entry went", v)
	}
	if len(counterOf("client-z")) == 0 {
		t.Error("the other client's counter went too")
	}
}

// TestReportCellsScopedToAnOrganisation: an organisation's cells are those it sent and those
// it received; a county that only receives still gets its own, and no one else's.
func TestReportCellsScopedToAnOrganisation(t *testing.T) {
	db := MustOpen(t)
	at := statsHki(2026, 11, 6, 15)
	statsPut(t, db, statsReferral("hva-90", at, ""), statsReferral("hva-08", at, ""))
	for _, tc := range []struct {
		org        domain.OrgID
		recipients []domain.OrgID
	}{
		{domain.Kela, []domain.OrgID{"hva-08", "hva-90"}}, // the sender of both
		{"hva-90", []domain.OrgID{"hva-90"}},              // receives only
		{"hva-01", nil},                                   // neither
	} {
		var got []domain.OrgID
		for _, c := range statsCells(t, db, statsNov2026, statsNov2026, tc.org) {
			got = append(got, c.Recipient)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.recipients) {
			t.Errorf("%s's cells: recipients %v, want %v", tc.org, got, tc.recipients)
		}
	}
}
