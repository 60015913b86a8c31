package main

import (
	"encoding/binary"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/internal/datadir"
	"github.com/kela-hva/referrals/internal/testkit"
	"github.com/kela-hva/referrals/store"
)

// flipAuditByte flips one byte in the body of access-log entry seq, straight in the file.
func flipAuditByte(t *testing.T, dir string, seq uint64) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, datadir.DBFile), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		k := binary.BigEndian.AppendUint64(nil, seq)
		v := append([]byte(nil), b.Get(k)...)
		i := strings.Index(string(v), `"action":"`) + len(`"action":"`)
		v[i] ^= 0x20 // change the action's first letter's case: still JSON, another action
		return b.Put(k, v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAuditVerifyCommand(t *testing.T) {
	s := seedDataDir(t, 2, time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	before := testkit.Files(t, s.dir)
	out, err := privacyRun(t, nil, "audit", "verify", "--data-dir", s.dir)
	// Two creates, two messages, one return.
	if err != nil || !strings.HasPrefix(out, "access log intact: 5 entries, head 5:") || strings.Contains(out, "not checked") {
		t.Fatalf("untouched: %v\n%s", err, out)
	}
	if after := testkit.Files(t, s.dir); !maps.Equal(before, after) {
		t.Errorf("verify changed the data dir: %d files before, %d after, or their bytes", len(before), len(after))
	}
	head := strings.TrimSpace(strings.TrimPrefix(out, "access log intact: 5 entries, head "))
	// Without the derived items file: verified, said, not recreated.
	items := store.AuditItemsPath(filepath.Join(s.dir, datadir.DBFile))
	if err := os.Remove(items); err != nil {
		t.Fatal(err)
	}
	if out, err := privacyRun(t, nil, "audit", "verify", "--data-dir", s.dir); err != nil || !strings.Contains(out, "not checked") {
		t.Errorf("without the items file: %v\n%s", err, out)
	}
	if _, err := os.Stat(items); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("verify recreated the items file: %v", err)
	}
	if out, err := privacyRun(t, nil, "audit", "verify", "--data-dir", s.dir, "--anchor", head); err != nil {
		t.Errorf("anchored at the head: %v\n%s", err, out)
	}
	// An anchor the log does not match — a log rewritten and chained anew, or cut short
	// before the anchored entry — fails, whatever the chain says of itself.
	seq, _, _ := strings.Cut(head, ":")
	for _, anchor := range []string{seq + ":" + strings.Repeat("0", 64), "9:" + strings.Repeat("0", 64)} {
		out, err := privacyRun(t, nil, "audit", "verify", "--data-dir", s.dir, "--anchor", anchor)
		if err == nil || !strings.Contains(err.Error(), "anchor") || strings.Contains(out, "intact") {
			t.Errorf("--anchor %s the log does not match: %v\n%s", anchor, err, out)
		}
	}
	flipAuditByte(t, s.dir, 3)
	_, err = privacyRun(t, nil, "audit", "verify", "--data-dir", s.dir)
	if err == nil || !strings.Contains(err.Error(), "broken at seq 3") {
		t.Errorf("after flipping a byte of entry 3: %v, want broken at seq 3", err)
	}
	for _, bad := range []string{"5", "x:y", "0:" + strings.Repeat("a", 64), "5:abc"} {
		if _, err := privacyRun(t, nil, "audit", "verify", "--data-dir", s.dir, "--anchor", bad); err == nil || !strings.Contains(err.Error(), "--anchor") {
			t.Errorf("--anchor %q: %v", bad, err)
		}
	}
	if _, err := privacyRun(t, nil, "audit", "check", "--data-dir", s.dir); err == nil {
		t.Error("unknown audit subcommand accepted")
	}
}
