package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/internal/datadir"
)

// cmdCompact rewrites a stopped referrald's database without its free pages. bbolt never
// returns space to the file system and keeps the list of its free pages in every commit: after
// a bulk load or a large erasure that list can run to megabytes, written again with each
// commit. The copy goes to a temporary file in the data directory, must pass bbolt's
// consistency check and hold as many keys in every bucket as the original, and only then
// replaces it. Needs free disk space for the copy.
func cmdCompact(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("compact", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "data directory of a stopped referrald")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *dataDir == "" {
		return errors.New("compact: --data-dir DIR is required (and nothing else)")
	}
	path := filepath.Join(*dataDir, datadir.DBFile)
	before, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("compact: no database: %w", err)
	}
	start := time.Now()
	tmp, src, err := compactTo(ctx, path)
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	// The original stays open (locked) until the copy has replaced it: a referrald started
	// meanwhile waits instead of writing to a file about to be swapped out, and then opens
	// the copy (store.Open checks that the file it locked is the one at the path).
	defer src.Close()
	keep := false
	defer func() {
		if !keep {
			os.Remove(tmp)
		}
	}()
	st, err := checkDB(tmp)
	if err != nil {
		return fmt.Errorf("compact: the copy fails its check, the original is kept: %w", err)
	}
	beforeSwap(path)
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	keep = true
	if err := syncDir(*dataDir); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	after, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "compacted %s: %d → %d bytes in %s, consistency check ok, %s\n",
		path, before.Size(), after.Size(), time.Since(start).Round(time.Second), st)
	return err
}

// syncCopy makes the compacted copy durable; tests count its calls.
var syncCopy = (*bolt.DB).Sync

// beforeSwap is called just before the compacted copy replaces the file at path; tests set
// it to look at the original then.
var beforeSwap = func(path string) {}

// compactTo copies the database at path into a new file next to it and returns the new
// file's name and the original, still open: it is held read-only (a running referrald holds
// it exclusively, so this fails then, and referrald cannot start while it is held). The
// caller closes it once done with the copy. The copy is synced, and holds as many keys in
// each top-level bucket as the original.
func compactTo(ctx context.Context, path string) (string, *bolt.DB, error) {
	src, err := openReadOnly(path)
	if err != nil {
		return "", nil, whileStopped(path, err)
	}
	name, err := compactFrom(ctx, src, path)
	if err != nil {
		src.Close()
		return "", nil, err
	}
	return name, src, nil
}

func compactFrom(ctx context.Context, src *bolt.DB, path string) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.compact")
	if err != nil {
		return "", err
	}
	name := f.Name()
	f.Close()
	ok := false
	defer func() {
		if !ok {
			os.Remove(name)
		}
	}()
	dst, err := bolt.Open(name, 0o600, &bolt.Options{NoSync: true, Timeout: lockWait})
	if err != nil {
		return "", err
	}
	err = bolt.Compact(dst, src, 64<<20)
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = syncCopy(dst) // NoSync above: the copy must be on disk before it replaces the original
	}
	if err == nil {
		err = sameKeyCounts(src, dst)
	}
	if err := errors.Join(err, dst.Close()); err != nil {
		return "", err
	}
	ok = true
	return name, nil
}

// sameKeyCounts returns an error unless every top-level bucket of a has as many keys as b's.
func sameKeyCounts(a, b *bolt.DB) error {
	counts := func(db *bolt.DB) (map[string]int, error) {
		m := map[string]int{}
		err := db.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
				m[string(name)] = bk.Stats().KeyN
				return nil
			})
		})
		return m, err
	}
	ca, err := counts(a)
	if err != nil {
		return err
	}
	cb, err := counts(b)
	if err != nil {
		return err
	}
	for name, n := range ca {
		if cb[name] != n {
			return fmt.Errorf("bucket %s: %d keys in the copy, %d in the original", name, cb[name], n)
		}
	}
	if len(ca) != len(cb) {
		return fmt.Errorf("the copy has %d buckets, the original %d", len(cb), len(ca))
	}
	return nil
}
