package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/domain"
)

// seedReportYear fills the aggregates of db as a year of n referrals would have: each one
// created at a random moment of 2026 and taken through a random lifecycle, every version
// folded in with domain.ComputeReportDelta (the write path's own delta) through the in-memory
// builder that the rebuild at Open uses. The referral records themselves are not written: the
// report never reads them. It returns the number of cells.
func seedReportYear(tb testing.TB, db *DB, n int) int {
	tb.Helper()
	rng := rand.New(rand.NewPCG(2026, 11))
	counties := make([]domain.OrgID, 0, 22)
	for i := 1; i <= 21; i++ {
		counties = append(counties, domain.OrgID(fmt.Sprintf("hva-%02d", i)))
	}
	counties = append(counties, "hva-90")
	toCounty := []domain.Kind{domain.KindSocialWorkNeed, domain.KindSocialWorkNeed, domain.KindSupplementarySupportHandoff,
		domain.KindSupplementarySupportHandoff, domain.KindJointMeetingRequest}
	toKela := []domain.Kind{domain.KindSocialWorkStatement, domain.KindDecisionReviewRequest, domain.KindDirectPaymentRequest,
		domain.KindContactPersonRequest, domain.KindJointMeetingRequest}
	policy := domain.NewDeadlinePolicy(statsCal)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, statsCal.Location())
	year := time.Date(2027, 1, 1, 0, 0, 0, 0, statsCal.Location()).Sub(start)
	b := newStatsBuilder(statsCal)
	clients := n * 2 / 3
	for i := 0; i < n; i++ {
		created := start.Add(time.Duration(rng.Int64N(int64(year)))).UTC()
		county := counties[rng.IntN(len(counties))]
		r := &domain.Referral{ID: uuid.Nil.String(), Status: domain.StatusSent, Urgency: domain.Normal,
			CreatedAt: created, UpdatedAt: created, Version: 1, ClientKey: fmt.Sprintf("client-%d", rng.IntN(clients))}
		if rng.IntN(10) < 7 {
			r.Sender, r.Recipient, r.Kind = domain.Kela, county, toCounty[rng.IntN(len(toCounty))]
		} else {
			r.Sender, r.Recipient, r.Kind = county, domain.Kela, toKela[rng.IntN(len(toKela))]
		}
		if rng.IntN(10) == 0 {
			r.Urgency = domain.Urgent
		}
		policy.Assign(r, created)
		b.add(nil, r)

		step := func(hours int, edit func(r *domain.Referral, at time.Time)) {
			at := r.UpdatedAt.Add(time.Duration(1+rng.IntN(hours)) * time.Hour)
			next := *r
			next.Version++
			next.UpdatedAt = at
			edit(&next, at)
			b.add(r, &next)
			r = &next
		}
		closeAs := func(s domain.Status) func(r *domain.Referral, at time.Time) {
			return func(r *domain.Referral, at time.Time) {
				r.Status, r.Times.ClosedAt = s, &at
				if r.Times.FirstResponseAt == nil && s != domain.StatusWithdrawn {
					r.Times.FirstResponseAt = &at
				}
			}
		}
		switch p := rng.IntN(100); {
		case p < 3: // withdrawn before anyone looked
			step(100, closeAs(domain.StatusWithdrawn))
			continue
		case p < 6: // still waiting, soon overdue
			continue
		}
		step(60, func(r *domain.Referral, at time.Time) { r.Status, r.Times.AcknowledgedAt = domain.StatusReceived, &at })
		switch p := rng.IntN(100); {
		case p < 5:
			step(48, closeAs(domain.StatusReturned))
		case p < 8 && r.Recipient.IsCounty():
			step(48, closeAs(domain.StatusForwarded))
		case p < 15: // in progress, maybe overdue
			step(100, func(r *domain.Referral, at time.Time) {
				r.Status, r.Times.FirstResponseAt = domain.StatusInProgress, &at
			})
		default:
			if rng.IntN(4) == 0 {
				step(72, func(r *domain.Referral, at time.Time) {
					r.Status, r.Times.FirstResponseAt = domain.StatusInProgress, &at
				})
			}
			step(300, closeAs(domain.StatusCompleted))
		}
	}
	if err := db.bolt.Update(b.write); err != nil {
		tb.Fatal(err)
	}
	if b.clamped != 0 {
		tb.Fatalf("seeding clamped %d counts", b.clamped)
	}
	return len(b.cells)
}

// BenchmarkResponseTimeReport times a whole year's report over the aggregates of 1 million
// referrals (about a Finnish year's volume many times over), read from a real bbolt file.
// The report reads the year's cells (months × sender × recipient × kind × urgency), never the
// referrals, so its cost follows the number of cells, not of referrals.
func BenchmarkResponseTimeReport(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "report.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	t0 := time.Now()
	cells := seedReportYear(b, db, 1_000_000)
	b.Logf("seeded 1,000,000 referrals into %d cells in %v", cells, time.Since(t0).Round(time.Millisecond))
	var size int64
	_ = db.bolt.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	b.Logf("database %d MiB", size>>20)

	rp := &domain.Reporter{Store: db, Registry: domain.DefaultRegistry(),
		Clock: domain.ClockFunc(func() time.Time { return time.Date(2027, 1, 15, 10, 0, 0, 0, time.UTC) })}
	kela := domain.Actor{UserID: "s", Org: domain.Kela, Roles: []domain.Role{domain.RoleSupervisor}}
	county := domain.Actor{UserID: "s", Org: "hva-90", Roles: []domain.Role{domain.RoleSupervisor}}
	y2026 := domain.ReportQuery{From: domain.MakeMonth(2026, time.January), To: domain.MakeMonth(2026, time.December)}
	ctx := context.Background()
	for _, bc := range []struct {
		name  string
		actor domain.Actor
		dims  []domain.ReportDimension
	}{
		{"year/kela/total", kela, nil},
		{"year/kela/by-organisation", kela, []domain.ReportDimension{domain.ByOrganisation}},
		{"year/kela/by-month-organisation-kind-urgency", kela, domain.ReportDimensions},
		{"year/county/by-month", county, []domain.ReportDimension{domain.ByMonth}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q := y2026
			q.GroupBy = bc.dims
			var created int64
			b.ReportAllocs()
			for b.Loop() {
				rep, err := rp.ResponseTimes(ctx, bc.actor, q)
				if err != nil {
					b.Fatal(err)
				}
				created = rep.Total.Counts.Created
			}
			if bc.actor.Org.IsKela() && created != 1_000_000 {
				b.Fatalf("the report counts %d referrals, want 1000000", created)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e6/float64(b.N), "ms/report")
		})
	}
	b.Run("half-year/kela/thl", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := rp.THL(ctx, kela, domain.HalfYear{Year: 2026, Half: 2}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
