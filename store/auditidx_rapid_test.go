package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/uuid"
	"pgregory.net/rapid"

	"github.com/kela-hva/referrals/domain"
)

// TestAuditQueriesAgainstAModel: whatever the history — list pages naming adjacent referrals
// (and ids that are not UUIDs), single reads, indexing passes of any size, pruning, restarts
// and a lost items file — a referral's log, paged at any size, and its extract hold exactly the
// entries that name it, in order, and the chain verifies.
func TestAuditQueriesAgainstAModel(t *testing.T) {
	ids := []string{
		"01a20650-0000-7000-8000-000000000001", "01a20650-0000-7000-8000-000000000002",
		"01a20650-0000-7000-8000-000000000003", "01a20650-0000-7000-8000-000000000004",
	}
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		dir, err := os.MkdirTemp("", "auditmodel")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "referrals.db")
		db, err := Open(path, Options{})
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { _ = db.Close() }()
		want := map[string][]uint64{}
		seq := uint64(0)
		steps := rapid.IntRange(1, 25).Draw(rt, "steps")
		for range steps {
			switch rapid.IntRange(0, 5).Draw(rt, "action") {
			case 0, 1: // a list page
				named := rapid.SliceOfN(rapid.SampledFrom(append(slices.Clone(ids), "not-a-uuid")), 1, 6).Draw(rt, "page")
				if err := db.AppendAudit(ctx, []domain.AuditEntry{pageEntry(int(seq), named...)}); err != nil {
					rt.Fatal(err)
				}
				seq++
				for _, id := range ids {
					if slices.Contains(named, id) {
						want[id] = append(want[id], seq)
					}
				}
			case 2: // a single read
				id := rapid.SampledFrom(ids).Draw(rt, "read")
				if err := db.AppendAudit(ctx, []domain.AuditEntry{entry("u1", domain.Kela, id, int(seq))}); err != nil {
					rt.Fatal(err)
				}
				seq++
				want[id] = append(want[id], seq)
			case 3: // an indexing pass
				if _, err := db.IndexAuditItems(ctx, rapid.IntRange(1, 4).Draw(rt, "max")); err != nil {
					rt.Fatal(err)
				}
			case 4:
				if err := db.pruneAuditMarks(nil); err != nil {
					rt.Fatal(err)
				}
			case 5: // a restart, perhaps without the items file
				if err := db.Close(); err != nil {
					rt.Fatal(err)
				}
				if rapid.Bool().Draw(rt, "lose items file") {
					if err := os.Remove(AuditItemsPath(path)); err != nil {
						rt.Fatal(err)
					}
				}
				if db, err = Open(path, Options{}); err != nil {
					rt.Fatal(err)
				}
			}
		}
		for _, id := range ids {
			exp := fmt.Sprint(want[id])
			if want[id] == nil {
				exp = "[]"
			}
			for limit := 1; limit <= 3; limit++ {
				if got := pagedSeqs(rt, db, id, limit); fmt.Sprint(got) != exp {
					rt.Fatalf("%s at limit %d: %v, want %s", id, limit, got, exp)
				}
			}
			ext, err := db.AuditOf(ctx, domain.ExtractFilter{Org: domain.Kela, ReferralIDs: []string{uuid.MustParse(id).String()}})
			if err != nil {
				rt.Fatal(err)
			}
			got := []uint64{}
			for _, e := range ext {
				got = append(got, e.Seq)
			}
			if fmt.Sprint(got) != exp {
				rt.Fatalf("%s extract: %v, want %s", id, got, exp)
			}
		}
		if _, err := db.VerifyAudit(ctx, nil); err != nil {
			rt.Fatal(err)
		}
	})
}
