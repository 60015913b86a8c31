package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/internal/datadir"
)

// TestCompactKeepsEverythingAndShrinks: after many commits the compacted file is smaller,
// passes its check and still holds every referral, index entry, idempotency record and
// outbox entry; a running service's file is refused.
func TestCompactKeepsEverythingAndShrinks(t *testing.T) {
	f := newFixture(t)
	svc := service(f.db)
	ctx := context.Background()
	// Churn in other registers (Tampere, another client): each create is its own commit.
	other := strings.NewReplacer(`"091"`, `"837"`, "131052-308T", "010101A123N").Replace(needJSON)
	for i := range 300 {
		var req domain.CreateRequest
		if err := json.Unmarshal([]byte(other), &req); err != nil {
			t.Fatal(err)
		}
		if _, _, err := svc.Create(ctx, kelaHandler, &req, "churn-"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if f.outbox, _ = f.db.PendingEvents(1000); len(f.outbox) != 309 {
		t.Fatalf("outbox %d, want 309", len(f.outbox))
	}
	var out, errb bytes.Buffer
	err := run(ctx, []string{"compact", "--data-dir", f.dir}, os.Getenv, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "stop referrald") {
		t.Fatalf("compact of an open database: %v, want a refusal", err)
	}
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(f.dir, datadir.DBFile)
	before, _ := os.Stat(path)
	// Up to the swap the original stays locked: a referrald started then waits instead of
	// writing to a file about to be replaced.
	swapped, synced := false, 0
	syncCopy = func(db *bolt.DB) error { synced++; return db.Sync() }
	t.Cleanup(func() { syncCopy = (*bolt.DB).Sync })
	beforeSwap = func(p string) {
		swapped = true
		if synced != 1 {
			t.Errorf("the copy was synced %d times before the swap, want once", synced)
		}
		if db, err := bolt.Open(p, 0o600, &bolt.Options{Timeout: 100 * time.Millisecond}); err == nil {
			db.Close()
			t.Error("the original could be opened for writing just before the swap")
		}
	}
	t.Cleanup(func() { beforeSwap = func(string) {} })
	if err := run(ctx, []string{"compact", "--data-dir", f.dir}, os.Getenv, &out, &errb); err != nil {
		t.Fatalf("compact: %v\n%s", err, errb.String())
	}
	if !swapped {
		t.Error("compact did not reach the swap")
	}
	after, _ := os.Stat(path)
	if after.Size() >= before.Size() {
		t.Errorf("compacted file %d bytes, original %d", after.Size(), before.Size())
	} else {
		t.Logf("compacted %d → %d bytes", before.Size(), after.Size())
	}
	if !strings.Contains(out.String(), "consistency check ok") {
		t.Errorf("output %q", out.String())
	}
	if leftovers, _ := filepath.Glob(path + ".*"); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
	f.checkRestored(t, f.dir)
}

// TestSameKeyCountsTellsACopyThatLostOrGainedKeys: compact's last check before it replaces
// the file — a bucket with fewer or more keys in the copy, or one missing or extra, fails it.
func TestSameKeyCountsTellsACopyThatLostOrGainedKeys(t *testing.T) {
	open := func(buckets map[string]int) *bolt.DB {
		t.Helper()
		db, err := bolt.Open(filepath.Join(t.TempDir(), "c.db"), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		err = db.Update(func(tx *bolt.Tx) error {
			for name, n := range buckets {
				b, err := tx.CreateBucket([]byte(name))
				if err != nil {
					return err
				}
				for i := range n {
					if err := b.Put([]byte{byte(i)}, []byte("v")); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	orig := open(map[string]int{"a": 3, "b": 1})
	if err := sameKeyCounts(orig, open(map[string]int{"a": 3, "b": 1})); err != nil {
		t.Errorf("an equal copy: %v", err)
	}
	for name, copied := range map[string]map[string]int{
		"a key lost":     {"a": 2, "b": 1},
		"a key gained":   {"a": 4, "b": 1},
		"a bucket lost":  {"a": 3},
		"a bucket extra": {"a": 3, "b": 1, "c": 0},
	} {
		if err := sameKeyCounts(orig, open(copied)); err == nil {
			t.Errorf("%s: the copy passed", name)
		}
	}
}
