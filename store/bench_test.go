package store

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kela-hva/referrals/domain"
)

// batchDelays are the group-commit delays compared: bbolt's default and two shorter ones.
var batchDelays = []time.Duration{10 * time.Millisecond, 2 * time.Millisecond, time.Millisecond}

// createOnce writes what a create command writes: a referral with its index entries, one
// timeline entry and one event. It records the bbolt transaction it ran in, so the benchmark
// can report how many creates shared a commit.
func createOnce(b *testing.B, db *DB, txs *sync.Map) {
	r := newReferral(orgKela, orgHelsin)
	te, ev := created(r)
	err := db.Update(context.Background(), func(tx domain.Tx) (*domain.Change, error) {
		txs.Store(tx.(txView).tx, true)
		return &domain.Change{Referrals: []*domain.Referral{r}, Timeline: []domain.TimelineEntry{te},
			Events: []domain.Event{ev}}, nil
	})
	if err != nil {
		b.Error(err)
	}
}

func openBench(b *testing.B, delay time.Duration) *DB {
	db, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{MaxBatchDelay: delay})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// BenchmarkCreate is one caller creating referrals back to back: every create waits out the
// batch delay alone, so this measures the latency a lone writer pays.
func BenchmarkCreate(b *testing.B) {
	for _, d := range batchDelays {
		b.Run(fmt.Sprintf("delay=%v", d), func(b *testing.B) {
			db := openBench(b, d)
			var txs sync.Map
			for b.Loop() {
				createOnce(b, db, &txs)
			}
			report(b, &txs)
		})
	}
}

// BenchmarkCreateParallel is about 64 concurrent callers: the throughput group commit gives.
func BenchmarkCreateParallel(b *testing.B) {
	const callers = 64
	procs := runtime.GOMAXPROCS(0)
	for _, d := range batchDelays {
		b.Run(fmt.Sprintf("delay=%v", d), func(b *testing.B) {
			db := openBench(b, d)
			var txs sync.Map
			b.SetParallelism((callers + procs - 1) / procs)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					createOnce(b, db, &txs)
				}
			})
			report(b, &txs)
		})
	}
}

// report adds creates per second and creates per commit (bbolt transaction) to the results.
func report(b *testing.B, txs *sync.Map) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
	commits := 0
	txs.Range(func(_, _ any) bool { commits++; return true })
	if commits > 0 {
		b.ReportMetric(float64(b.N)/float64(commits), "creates/commit")
	}
}
