package main

import (
	"encoding/binary"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/internal/datadir"
	"github.com/kela-hva/referrals/internal/testkit"
)

// TestInfoDescribesADataDirWithoutChangingIt: info reads the layout, the counts and the
// access log's head of a stopped service's data dir, changes no byte of it, and says so
// (failing) when a newer binary laid it out.
func TestInfoDescribesADataDirWithoutChangingIt(t *testing.T) {
	s := seedDataDir(t, 2, time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	before := testkit.Files(t, s.dir)
	out, _, err := ctl(t, "info", "--data-dir", s.dir)
	if err != nil {
		t.Fatalf("info: %v\n%s", err, out)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^file: .*referrals\.db, [0-9]+ bytes in use \(pages of [0-9]+ bytes\), [0-9]+ free pages$`),
		regexp.MustCompile(`(?m)^layout:     2 \(this binary reads layouts up to 2\)$`),
		regexp.MustCompile(`(?m)^referrals:  2$`),
		regexp.MustCompile(`(?m)^outbox:     [1-9][0-9]* events`),
		regexp.MustCompile(`(?m)^access log: 5 entries, head 5:[0-9a-f]{64}$`), // two creates, two messages, one return
	} {
		if !want.MatchString(out) {
			t.Errorf("info lacks %s:\n%s", want, out)
		}
	}
	if after := testkit.Files(t, s.dir); !maps.Equal(before, after) {
		t.Error("info changed the data dir")
	}
	// The free pages are bbolt's list (a read-only open does not load it unless asked: it
	// said 0): the seeded file was written in several commits, so some pages are free.
	var used, pageSize, free int
	if m := regexp.MustCompile(`([0-9]+) bytes in use \(pages of ([0-9]+) bytes\), ([0-9]+) free pages`).FindStringSubmatch(out); m != nil {
		fmt.Sscan(m[1]+" "+m[2]+" "+m[3], &used, &pageSize, &free)
	}
	if free == 0 || pageSize == 0 || free >= used/pageSize {
		t.Errorf("free pages %d of %d: want some, fewer than the file's", free, used/max(pageSize, 1))
	}

	// A layout from the future: described, refused, unchanged.
	bdb, err := bolt.Open(filepath.Join(s.dir, datadir.DBFile), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("store_meta")).Put([]byte("layout"), binary.BigEndian.AppendUint64(nil, 3))
	})
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	before = testkit.Files(t, s.dir)
	out, _, err = ctl(t, "info", "--data-dir", s.dir)
	if err == nil || !strings.Contains(out, "layout:     3, written by a newer referrald: this binary reads layouts up to 2") {
		t.Errorf("info of a newer layout: %v\n%s", err, out)
	}
	if after := testkit.Files(t, s.dir); !maps.Equal(before, after) {
		t.Error("info changed the data dir of a newer layout")
	}

	if _, _, err := ctl(t, "info", "--data-dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), "no database") {
		t.Errorf("info of an empty dir: %v", err)
	}
}
