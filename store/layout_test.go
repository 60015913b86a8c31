package store

import (
	"context"
	"encoding/binary"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/internal/testkit"
)

// rawLayout reads the layout marker of the closed file at path with bbolt itself; ok is false
// when there is none.
func rawLayout(t *testing.T, path string) (layout uint64, ok bool) {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	err = bdb.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketStoreMeta); b != nil {
			if v := b.Get(layoutKey); len(v) == 8 {
				layout, ok = binary.BigEndian.Uint64(v), true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return layout, ok
}

// setLayout replaces the layout marker of the closed file at path with v (nil: no marker).
func setLayout(t *testing.T, path string, v []byte) {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		if v == nil {
			return tx.DeleteBucket(bucketStoreMeta)
		}
		b, err := tx.CreateBucketIfNotExists(bucketStoreMeta)
		if err != nil {
			return err
		}
		return b.Put(layoutKey, v)
	})
	if err2 := bdb.Close(); err == nil {
		err = err2
	}
	if err != nil {
		t.Fatal(err)
	}
}

func openClose(t *testing.T, path string) error {
	t.Helper()
	db, err := Open(path, Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	return db.Close()
}

// TestLayoutMarker: Open marks new files and files from before the marker with its layout,
// and refuses a file a newer binary laid out — naming both layouts and what to do — before it
// writes anything: the data dir stays byte for byte the same, and the read-only audit
// verification refuses it too. A damaged marker is an error, not a guess.
func TestLayoutMarker(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "referrals.db")
	if err := openClose(t, path); err != nil {
		t.Fatal(err)
	}
	if got, ok := rawLayout(t, path); !ok || got != layoutVersion {
		t.Fatalf("new file: layout %d (marked %v), want %d", got, ok, layoutVersion)
	}

	setLayout(t, path, nil) // as a file of layout 1 is
	if err := openClose(t, path); err != nil {
		t.Fatal(err)
	}
	if got, ok := rawLayout(t, path); !ok || got != layoutVersion {
		t.Fatalf("file without a marker: layout %d (marked %v) after Open, want %d", got, ok, layoutVersion)
	}

	// A file an older binary marked is raised to this binary's layout (so that the older
	// binary then refuses what this one changed).
	setLayout(t, path, binary.BigEndian.AppendUint64(nil, layoutVersion-1))
	if err := openClose(t, path); err != nil {
		t.Fatal(err)
	}
	if got, ok := rawLayout(t, path); !ok || got != layoutVersion {
		t.Fatalf("file marked %d: layout %d (marked %v) after Open, want %d", layoutVersion-1, got, ok, layoutVersion)
	}

	setLayout(t, path, binary.BigEndian.AppendUint64(nil, layoutVersion+1))
	before := testkit.Files(t, dir)
	err := openClose(t, path)
	le, ok := errors.AsType[*LayoutError](err)
	if !ok {
		t.Fatalf("Open of a newer layout: %v, want a *LayoutError", err)
	}
	if le.Have != layoutVersion+1 || le.Known != layoutVersion || le.Path != path {
		t.Errorf("LayoutError = %+v", le)
	}
	for _, want := range []string{"newer referrald", "backup"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	sameFiles(t, "Open of a newer layout", before, testkit.Files(t, dir))
	_, _, err = VerifyAuditFile(context.Background(), path, nil, time.Second)
	if _, ok := errors.AsType[*LayoutError](err); !ok {
		t.Errorf("VerifyAuditFile of a newer layout: %v, want a *LayoutError", err)
	}

	setLayout(t, path, []byte{2})
	before = testkit.Files(t, dir)
	if err := openClose(t, path); err == nil || !strings.Contains(err.Error(), "layout marker") {
		t.Errorf("Open with a damaged marker: %v, want an error naming the marker", err)
	}
	sameFiles(t, "Open with a damaged marker", before, testkit.Files(t, dir))
}
