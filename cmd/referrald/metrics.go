package main

import (
	"time"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/broker"
	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/store"
)

// watchMetrics registers the gauges read at scrape time: the outbox backlog and relay lag,
// the relay's health and the report aggregates' repair count.
func watchMetrics(m *api.Metrics, db *store.DB, relay *broker.Relay, clock domain.Clock) error {
	err := m.WatchOutbox(api.OutboxProbe{
		Backlog: db.OutboxLen,
		Oldest: func() (time.Time, bool, error) {
			es, err := db.PendingEvents(1)
			if err != nil || len(es) == 0 {
				return time.Time{}, false, err
			}
			return es[0].Event.Time, true, nil
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
