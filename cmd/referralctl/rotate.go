package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	berrors "go.etcd.io/bbolt/errors"

	"github.com/kela-hva/referrals/internal/datadir"
	"github.com/kela-hva/referrals/store"
)

// keyringSource finds the encryption keyring of a data directory: the --encryption-keys
// file, else REFERRAL_ENCRYPTION_KEYS_FILE, else the JSON in REFERRAL_ENCRYPTION_KEYS, else
// DIR/encryption-keys.json (a --dev data directory). path is "" for a keyring from the
// environment.
func keyringSource(dataDir, file string, getenv func(string) string) (k *store.Keyring, path string, err error) {
	if file == "" {
		file = getenv("REFERRAL_ENCRYPTION_KEYS_FILE")
	}
	if file == "" {
		if js := getenv("REFERRAL_ENCRYPTION_KEYS"); js != "" {
			k, err := store.ParseKeyring([]byte(js))
			if err != nil {
				return nil, "", fmt.Errorf("REFERRAL_ENCRYPTION_KEYS: %w", err)
			}
			return k, "", nil
		}
		file = filepath.Join(dataDir, datadir.KeyringFile)
	}
	k, err = store.LoadKeyring(file)
	if err != nil {
		return nil, "", fmt.Errorf("encryption keys: %w (give --encryption-keys FILE or REFERRAL_ENCRYPTION_KEYS)", err)
	}
	return k, file, nil
}

// openOffline opens the store of a stopped referrald. The bbolt file lock makes sure the
// service is not running: Open fails after lockWait if it is. A missing database is an error,
// not a new empty one.
func openOffline(dataDir string, keys *store.Keyring) (*store.DB, error) {
	path, err := offlineDBPath(dataDir)
	if err != nil {
		return nil, err
	}
	db, err := store.Open(path, store.Options{Keys: keys, Timeout: lockWait})
	return db, whileStopped(path, err)
}

// offlineDBPath returns the database of dataDir, which must exist: an offline command does
// not create a new empty one.
func offlineDBPath(dataDir string) (string, error) {
	path := filepath.Join(dataDir, datadir.DBFile)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("no database in %s: %w", dataDir, err)
	}
	return path, nil
}

// whileStopped returns err, or, when it is the lock timeout of a running referrald holding
// path, an error that says to stop it first.
func whileStopped(path string, err error) error {
	if errors.Is(err, berrors.ErrTimeout) {
		return fmt.Errorf("%s is locked: stop referrald first", path)
	}
	return err
}

// cmdRotateKey re-encrypts every record under the active key, with the service stopped.
// With --new-key it first adds a new random key to the keyring file and makes it active.
// It is resumable and idempotent: run it again after an interruption; records already under
// the active key are left alone. Old keys stay in the file until you remove them, which is
// safe once the key usage it prints shows none of their records.
func cmdRotateKey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rotate-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", orDefault(getenv("REFERRAL_DATA_DIR"), "./data"), "data directory of a stopped referrald")
	keysFile := fs.String("encryption-keys", "", "keyring file (default: REFERRAL_ENCRYPTION_KEYS_FILE, REFERRAL_ENCRYPTION_KEYS, or DIR/"+datadir.KeyringFile+")")
	newKey := fs.Bool("new-key", false, "add a new random key to the keyring file and make it active first")
	batch := fs.Int("batch", store.DefaultRotateBatch, "records re-encrypted per transaction")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	keys, path, err := keyringSource(*dataDir, *keysFile, getenv)
	if err != nil {
		return err
	}
	db, err := openOffline(*dataDir, keys)
	if err != nil {
		return err
	}
	if *newKey {
		if path == "" {
			db.Close()
			return errors.New("--new-key needs a keyring file (--encryption-keys FILE); with REFERRAL_ENCRYPTION_KEYS add the key yourself and make it active")
		}
		// The store is locked by now, so no referrald runs with the old file meanwhile.
		db.Close()
		if keys, err = store.AddKeyToFile(path, store.NewKeyID(time.Now())); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added key %s to %s and made it active\n", keys.Active(), path)
		if db, err = openOffline(*dataDir, keys); err != nil {
			return err
		}
	}
	defer db.Close()
	res, err := db.Reencrypt(ctx, *batch, nil)
	fmt.Fprintf(stdout, "re-encrypted %d records under %s (%d already were) in %d batches\n", res.Rewritten, keys.Active(), res.Current, res.Batches)
	if err != nil {
		return fmt.Errorf("rotate-key stopped (run it again to resume): %w", err)
	}
	usage, err := db.KeyUsage()
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(usage))
	for id := range usage {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		name := id
		if name == "" {
			name = "(plaintext)"
		}
		fmt.Fprintf(stdout, "key %s: %d records\n", name, usage[id])
	}
	if len(usage) > 1 || (len(usage) == 1 && usage[keys.Active()] == 0) {
		return errors.New("some records are not under the active key")
	}
	return nil
}
