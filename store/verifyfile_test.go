package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/internal/testkit"
)

// sameFiles reports the files of a directory listing (testkit.Files) that changed.
func sameFiles(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	if len(before) != len(after) {
		t.Errorf("%s: %d files before, %d after", what, len(before), len(after))
	}
	for name, b := range before {
		if after[name] != b {
			t.Errorf("%s: %s changed", what, name)
		}
	}
}

// TestVerifyAuditFileWritesNothing: the read-only verification checks the same things as
// VerifyAudit — pages in the items file included while that file belongs to the log — and
// leaves every file of the data dir as it was: without the items file it checks the rest,
// says so, and creates nothing. It waits for a running service's lock like Open.
func TestVerifyAuditFileWritesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "referrals.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, db, 3) // seq 1–3
	a, b := uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()
	for i, e := range []domain.AuditEntry{pageEntry(10, a, b), pageEntry(11, b)} { // seq 4, 5
		if err := db.AppendAudit(ctx, []domain.AuditEntry{e}); err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
	}
	if n, err := db.IndexAuditItems(ctx, 0); err != nil || n != 2 {
		t.Fatalf("IndexAuditItems = %d, %v", n, err)
	}
	if err := db.AppendAudit(ctx, []domain.AuditEntry{pageEntry(12, a)}); err != nil { // seq 6, pending
		t.Fatal(err)
	}
	// With the store open, its lock holds the verification off.
	if _, _, err := VerifyAuditFile(ctx, path, nil, 50*time.Millisecond); !errors.Is(err, berrors.ErrTimeout) {
		t.Errorf("with the store open: %v, want a lock timeout", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	before := testkit.Files(t, dir)
	head, checked, err := VerifyAuditFile(ctx, path, nil, time.Second)
	if err != nil || head.Seq != 6 || !checked {
		t.Fatalf("VerifyAuditFile = %+v, items checked %v, %v; want head 6, items checked", head, checked, err)
	}
	if _, _, err := VerifyAuditFile(ctx, path, &head, time.Second); err != nil {
		t.Errorf("anchored at the head: %v", err)
	}
	sameFiles(t, "verified", before, testkit.Files(t, dir))

	// An items file of another log (a restore elsewhere) is not used, and breaks nothing.
	ipath := AuditItemsPath(path)
	ours, err := os.ReadFile(ipath)
	if err != nil {
		t.Fatal(err)
	}
	otherPath := filepath.Join(t.TempDir(), "referrals.db")
	other := mustOpenPath(t, otherPath, Options{})
	mustAppend(t, other, 5)
	if err := other.AppendAudit(ctx, []domain.AuditEntry{pageEntry(13, b)}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.IndexAuditItems(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	copyFile(t, AuditItemsPath(otherPath), ipath)
	if h, checked, err := VerifyAuditFile(ctx, path, nil, time.Second); err != nil || h != head || checked {
		t.Errorf("with another log's items file: %+v, items checked %v, %v; want head %+v, not checked", h, checked, err, head)
	}
	if err := os.WriteFile(ipath, []byte(ours), 0o600); err != nil {
		t.Fatal(err)
	}

	// A page past the indexed ones without its pending mark is found, with the items file
	// and without.
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var mark []byte
	if err := bdb.Update(func(tx *bolt.Tx) error {
		mark = bytes.Clone(tx.Bucket(bucketAuditPending).Get(seqKey(6)))
		return tx.Bucket(bucketAuditPending).Delete(seqKey(6))
	}); err != nil || mark == nil {
		t.Fatalf("delete the mark of page 6 (%x): %v", mark, err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
	_, _, err = VerifyAuditFile(ctx, path, nil, time.Second)
	wantChainError(t, err, 6)
	if err := os.Rename(ipath, ipath+".away"); err != nil {
		t.Fatal(err)
	}
	_, _, err = VerifyAuditFile(ctx, path, nil, time.Second)
	wantChainError(t, err, 6)
	if err := os.Rename(ipath+".away", ipath); err != nil {
		t.Fatal(err)
	}
	if bdb, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketAuditPending).Put(seqKey(6), mark) }); err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}

	// A page missing from the items file is found, as VerifyAudit finds it.
	db = mustOpenPath(t, path, Options{})
	dropPosting(t, db, b, 5)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, _, err = VerifyAuditFile(ctx, path, nil, time.Second)
	wantChainError(t, err, 5)

	// Without the items file: the rest is checked, nothing is created.
	if err := os.Remove(AuditItemsPath(path)); err != nil {
		t.Fatal(err)
	}
	before = testkit.Files(t, dir)
	head2, checked, err := VerifyAuditFile(ctx, path, nil, time.Second)
	if err != nil || head2 != head || checked {
		t.Fatalf("without the items file: %+v, items checked %v, %v; want head %+v, not checked", head2, checked, err, head)
	}
	sameFiles(t, "verified without the items file", before, testkit.Files(t, dir))

	// An altered entry is found without the items file too.
	bdb, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(tx *bolt.Tx) error {
		k := seqKey(2)
		v := []byte(string(tx.Bucket(bucketAudit).Get(k)))
		v[0] ^= 1
		return tx.Bucket(bucketAudit).Put(k, v)
	}); err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
	_, _, err = VerifyAuditFile(ctx, path, nil, time.Second)
	wantChainError(t, err, 2)

	if _, _, err := VerifyAuditFile(ctx, filepath.Join(dir, "nothing.db"), nil, time.Second); err == nil {
		t.Error("a missing file verified")
	}
	if _, err := os.Stat(filepath.Join(dir, "nothing.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("verifying a missing file created it: %v", err)
	}
}
