// Package store keeps referrals in a bbolt file. It implements domain.Store and holds the
// event outbox that broker's relay drains to JetStream.
//
// Every domain command is one bbolt write transaction: the referral, its index entries,
// timeline, messages, idempotency record and events are committed together or not at all.
// Writes go through the store's group commit (commit.go), so concurrent commands share a
// transaction and an fsync.
// The bucket and key layouts are described in keys.go.
package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/domain"
)

// DefaultTimeout is how long Open waits for the file lock when Options.Timeout is zero.
const DefaultTimeout = 2 * time.Second

// Options tune Open. The zero value is usable.
type Options struct {
	// MaxBatchDelay and MaxBatchSize tune group commit (commit.go). A transaction takes every
	// write that queued while the previous one committed, at most MaxBatchSize (zero: 1000).
	// MaxBatchDelay is how long a writer that finds the store idle waits for company before
	// committing; zero commits at once. The delay is what a lone writer pays for every
	// command; under load the store is never idle and nobody waits for it.
	MaxBatchDelay time.Duration
	MaxBatchSize  int
	// Timeout is how long Open waits for the file lock another process holds; zero means
	// DefaultTimeout.
	Timeout time.Duration
	// Keys encrypt referral records and messages at rest (crypt.go). nil stores plaintext:
	// for tests and tools only; referrald refuses to run without keys.
	Keys *Keyring
	// Calendar measures business time for the response-time aggregates (stats.go); nil
	// means the default Finnish calendar.
	Calendar domain.ReportCalendar
	// Observer hears the milestones of every commit (stats.go), e.g. metrics; nil: none.
	Observer StatsObserver

	// mmapSize is bbolt's InitialMmapSize, for tests that write while holding a read
	// transaction: a write that has to grow the mapping waits for every reader to finish.
	mmapSize int
}

// DB is the bbolt store. It is safe for concurrent use.
type DB struct {
	bolt      *bolt.DB
	group     *committer // commit.go: every write of the store's callers goes through it
	committed chan struct{}
	keys      *Keyring     // nil: plaintext
	stats     *statsState  // stats.go: response-time aggregates
	records   *recordCache // reccache.go: decoded referrals of list pages
	items     *auditItems  // auditidx.go: list pages' "r" keys, in a file of their own

	legacyDropped  int           // index entries of the old layout Open deleted (keys.go)
	legacyDropTook time.Duration // and how long that took
}

// LegacyIndexDropped returns how many index entries of the layout before 23 Nov 2026 Open
// deleted, once, and how long it took (0, 0 for a file without any).
func (db *DB) LegacyIndexDropped() (int, time.Duration) { return db.legacyDropped, db.legacyDropTook }

var _ domain.Store = (*DB)(nil)

// openLocked opens the bbolt file at path with opts and returns it locked, making sure the
// file it locked is still the one at path. bbolt opens the file, then waits for its lock; if
// the file was replaced meanwhile (referralctl compact renames the compacted copy over the
// original while holding the original's lock), the lock then taken is the old, unlinked
// file's, and every write to it would vanish at the next start. Such an open is retried on
// the file now at path.
func openLocked(path string, opts *bolt.Options) (*bolt.DB, error) {
	for attempt := 0; ; attempt++ {
		var f *os.File
		o := *opts
		open := o.OpenFile
		if open == nil {
			open = os.OpenFile
		}
		o.OpenFile = func(name string, flag int, mode os.FileMode) (*os.File, error) {
			var err error
			f, err = open(name, flag, mode)
			return f, err
		}
		bdb, err := bolt.Open(path, 0o600, &o)
		if err != nil {
			return nil, err
		}
		held, herr := f.Stat()
		now, nerr := os.Stat(path)
		if herr == nil && nerr == nil && os.SameFile(held, now) {
			return bdb, nil
		}
		_ = bdb.Close()
		if attempt == 2 {
			return nil, fmt.Errorf("the file was replaced while this process waited for it, %d times", attempt+1)
		}
	}
}

// Open opens or creates the bbolt file at path (mode 0600) and creates the buckets. It
// returns an error wrapping bbolt's errors.ErrTimeout if another process holds the file
// longer than opts.Timeout, and a *LayoutError, having written nothing, if a newer binary laid
// the file out (layout.go).
func Open(path string, opts Options) (*DB, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	// NoSync stays off: a command is durable when Update returns.
	bdb, err := openLocked(path, &bolt.Options{Timeout: timeout, FreelistType: bolt.FreelistArrayType, InitialMmapSize: opts.mmapSize})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if opts.Keys != nil {
		keyrings.Store(bdb, opts.Keys) // crypt.go; before anything below reads a record
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		if err := checkLayout(tx, path); err != nil { // layout.go: before anything is written
			return err
		}
		if err := markLayout(tx); err != nil {
			return err
		}
		for _, name := range buckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		if err := openPrivacyBuckets(tx); err != nil { // audit.go, retention.go
			return err
		}
		return openAlertBuckets(tx) // due.go
	})
	if le, ok := errors.AsType[*LayoutError](err); ok {
		keyrings.Delete(bdb)
		_ = bdb.Close()
		return nil, le // names the path already
	}
	if err != nil {
		keyrings.Delete(bdb)
		_ = bdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	t0 := time.Now()
	dropped, err := dropLegacyOrgIndex(bdb) // keys.go
	if err != nil {
		keyrings.Delete(bdb)
		_ = bdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	var observeCommit func(int, time.Duration, time.Duration)
	if co, ok := opts.Observer.(CommitObserver); ok {
		observeCommit = co.ObserveCommit
	}
	db := &DB{bolt: bdb, group: newCommitter(bdb, opts.MaxBatchDelay, opts.MaxBatchSize, observeCommit),
		committed: make(chan struct{}, 1), keys: opts.Keys, stats: newStatsState(opts), records: newRecordCache(recordCacheMax)}
	if dropped > 0 {
		db.legacyDropped, db.legacyDropTook = dropped, time.Since(t0)
	}
	if err := db.initStats(); err != nil { // stats.go: after the keyring, as it may read referrals
		_ = db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := db.openAuditItems(path, timeout); err != nil { // auditidx.go
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// Close waits for running transactions and closes the file. The Committed channel is not
// closed.
func (db *DB) Close() error {
	defer keyrings.Delete(db.bolt)
	db.group.close() // queued writes commit first
	var ierr error
	if db.items != nil {
		ierr = db.items.bolt.Close()
	}
	if err := errors.Join(db.bolt.Close(), ierr); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Check runs bbolt's consistency check of the whole file, and of the access log's items file,
// in read transactions and returns the first problem found, or nil. It reads every page: an
// operations tool, not a request path.
func (db *DB) Check() error {
	if err := checkFile(db.bolt); err != nil {
		return err
	}
	if db.items != nil {
		return checkFile(db.items.bolt)
	}
	return nil
}

func checkFile(bdb *bolt.DB) error {
	err := bdb.View(func(tx *bolt.Tx) error {
		var first error
		// Drain the channel: the checker goroutine uses tx until it closes it.
		for err := range tx.Check() {
			if first == nil {
				first = err
			}
		}
		return first
	})
	if err != nil {
		return fmt.Errorf("store: check: %w", err)
	}
	return nil
}

// Backup writes a consistent copy of the whole database to w while other transactions go on,
// and returns the number of bytes written. The copy is a bbolt file that Open accepts.
func (db *DB) Backup(w io.Writer) (int64, error) {
	var n int64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store: backup: %w", err)
	}
	return n, nil
}
