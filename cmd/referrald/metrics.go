package main

import (
	"time"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/store"
)

// watchMetrics registers the gauges read at scrape time: the outbox backlog, kept entries and relay lag,
// the relay's health and the report aggregates' repair count.
func watchMetrics(m *api.Metrics, db *store.DB, relay *broker.Relay, clock domain.Clock) error {
	err := m.WatchOutbox(api.OutboxProbe{
		// Delivered events the outbox keeps (--outbox-keep) are not backlog.
		Backlog: func() (int, error) {
			waiting, _, err := relay.Backlog()
			return waiting, err
		},
		Kept: func() (int, error) { return relay.Kept(), nil }, // no second walk of the outbox
		Oldest: func() (time.Time, bool, error) {
			en, ok, err := relay.OldestWaiting()
			return en.Event.Time, ok, err
		},
		Now: clock.Now,
		Relay: func() api.RelayHealth {
			st := relay.Status()
			return api.RelayHealth{Healthy: st.Healthy, LastSuccess: st.LastSuccess, Published: st.Published, Failures: st.Failures}
		},
	})
	if err != nil {
		return err
	}
	if err := m.WatchStore(func() api.StoreCounters {
		s := db.CommitStats()
		pending, _ := db.AuditItemsPending()
		return api.StoreCounters{Commits: s.Commits, Writes: s.Writes, Pages: s.Pages, AuditPending: pending, FreePages: s.FreePages}
	}); err != nil {
		return err
	}
	return m.WatchAggregates(db.StatsInconsistencies)
}
