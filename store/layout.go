package store

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The data file records the version of its layout, so that a binary never serves a file laid
// out by a newer one: it would read what it does not know wrongly and write what the newer
// one does not expect (lists missing referrals, say), with nothing in the logs.
//
//	store_meta  "layout" → big-endian uint64
//
// Layouts:
//
//	1  before 23 Nov 2026: the index held an "o" (every status) entry per party (keys.go).
//	   Files of this layout carry no marker; binaries of it do not read one.
//	2  the index without the "o" entries: a list without a status merges the status ranges.
//
// Open refuses a file whose layout is newer than layoutVersion before it writes anything, and
// marks older and new files with it. (Open's upgrade steps run at every start, so one that a
// crash interrupted after the marker was written is finished at the next.) Raise layoutVersion when a change makes
// the binaries before it misread the file, and say in the README's Upgrading section how to go
// back (a backup from before the upgrade).
const layoutVersion = 2

var (
	bucketStoreMeta = []byte("store_meta")
	layoutKey       = []byte("layout")
)

// LayoutError is Open's error for a data file written by a newer binary.
type LayoutError struct {
	Path  string
	Have  uint64 // the file's layout
	Known uint64 // the newest layout this binary reads
}

func (e *LayoutError) Error() string {
	return fmt.Sprintf("store: %s has data layout %d, written by a newer referrald; this binary reads layouts up to %d: "+
		"run the newer binary, or restore the backup taken before the upgrade into a new data dir", e.Path, e.Have, e.Known)
}

// fileLayout returns the layout tx's file records; 0 for a file without a marker (a new file,
// or one of layout 1).
func fileLayout(tx *bolt.Tx) (uint64, error) {
	b := tx.Bucket(bucketStoreMeta)
	if b == nil {
		return 0, nil
	}
	v := b.Get(layoutKey)
	switch {
	case v == nil:
		return 0, nil
	case len(v) != 8:
		return 0, fmt.Errorf("store: the layout marker is %d bytes, not 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// checkLayout returns a *LayoutError if tx's file has a layout newer than this binary's.
func checkLayout(tx *bolt.Tx, path string) error {
	have, err := fileLayout(tx)
	if err != nil {
		return err
	}
	if have > layoutVersion {
		return &LayoutError{Path: path, Have: have, Known: layoutVersion}
	}
	return nil
}

// markLayout records layoutVersion in tx's file, unless it is recorded already.
func markLayout(tx *bolt.Tx) error {
	b, err := tx.CreateBucketIfNotExists(bucketStoreMeta)
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketStoreMeta, err)
	}
	if have, err := fileLayout(tx); err != nil || have == layoutVersion {
		return err
	}
	return b.Put(layoutKey, binary.BigEndian.AppendUint64(nil, layoutVersion))
}

// FileFacts is what DescribeFile tells of a data file, for an operator choosing a binary or
// checking a data dir.
type FileFacts struct {
	Layout      uint64 // the file's layout; 0 before the marker (layout 1, or a file Open never marked)
	KnownLayout uint64 // the newest layout this binary reads
	Bytes       int64  // the size of the pages in use
	PageSize    int
	FreePages   int    // free pages bbolt lists (compact when they are many)
	Referrals   int    // referral records
	Outbox      int    // events in the outbox: not yet delivered, or kept until NATS synced them
	AuditHead   uint64 // entries in the access log (the head's sequence number)
	AuditHash   string // hex SHA-256 of the head entry
}

// DescribeFile opens the data file at path read-only (waiting up to timeout for a running
// service's lock, which it then does not get: stop the service) and describes it. It writes
// nothing, and describes a file of a newer layout too (only its layout is then certain).
func DescribeFile(path string, timeout time.Duration) (FileFacts, error) {
	f := FileFacts{KnownLayout: layoutVersion}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	// PreLoadFreelist: a read-only open does not read the free list otherwise.
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout, PreLoadFreelist: true})
	if err != nil {
		return f, fmt.Errorf("store: open %s: %w", path, err)
	}
	defer bdb.Close()
	f.PageSize, f.FreePages = bdb.Info().PageSize, bdb.Stats().FreePageN
	err = bdb.View(func(tx *bolt.Tx) error {
		var err error
		if f.Layout, err = fileLayout(tx); err != nil {
			return err
		}
		f.Bytes = tx.Size()
		count := func(name []byte) int {
			if b := tx.Bucket(name); b != nil {
				return b.Stats().KeyN
			}
			return 0
		}
		f.Referrals, f.Outbox = count(bucketReferrals), count(bucketOutbox)
		if meta := tx.Bucket(bucketPrivacyMeta); meta != nil {
			seq, hash := readHead(meta)
			f.AuditHead, f.AuditHash = seq, hex.EncodeToString(hash)
		}
		return nil
	})
	if err != nil {
		return f, fmt.Errorf("store: describe %s: %w", path, err)
	}
	return f, nil
}
