package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/internal/datadir"
	"github.com/kela-hva/referrals/store"
)

// lockWait is how long an offline backup or a check waits for the database's file lock. A
// running referrald holds it for its whole life, so a short wait is enough to tell.
const lockWait = time.Second

// cmdBackup writes a consistent copy of the database to a new file: online from a running
// referrald (GET /v1/admin/backup, with a kela operator's token), or offline from the data dir
// of a stopped one. The copy goes to a temporary file next to the target, must pass bbolt's
// consistency check (and, online, match the server's checksum trailer), and only then gets
// its name; an existing file is never overwritten.
func cmdBackup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	to := fs.String("to", "", "file to write the backup to; must not exist yet")
	url := fs.String("url", getenv("REFERRAL_URL"), "base URL of a running referrald, e.g. http://127.0.0.1:8080: online backup (REFERRAL_URL)")
	token := fs.String("token", getenv("REFERRAL_TOKEN"), "bearer token with the operator role of kela, for --url (REFERRAL_TOKEN)")
	dataDir := fs.String("data-dir", "", "data directory of a stopped referrald: offline backup")
	timeout := fs.Duration("timeout", time.Hour, "give up an online backup after this long")
	caFile := fs.String("tls-ca", getenv("REFERRAL_TLS_CA"), "PEM CA bundle that signs the service's certificate, for an https --url (REFERRAL_TLS_CA)")
	certFile := fs.String("tls-cert", getenv("REFERRAL_TLS_CLIENT_CERT"), "PEM client certificate, when the service requires mutual TLS (REFERRAL_TLS_CLIENT_CERT)")
	keyFile := fs.String("tls-key", getenv("REFERRAL_TLS_CLIENT_KEY"), "PEM key of --tls-cert (REFERRAL_TLS_CLIENT_KEY)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("backup: unexpected arguments %v", fs.Args())
	case *to == "":
		return errors.New("backup: --to FILE is required")
	case (*url == "") == (*dataDir == ""):
		return errors.New("backup: give either --url (online, from a running referrald) or --data-dir (offline, from a stopped one)")
	case *url != "" && *token == "":
		return errors.New("backup: --url needs --token (or REFERRAL_TOKEN): a token with the operator role of kela")
	}
	if _, err := os.Lstat(*to); err == nil {
		return fmt.Errorf("backup: %s already exists; choose a new file", *to)
	}
	client, err := httpClient(*caFile, *certFile, *keyFile)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}

	tmp, err := os.CreateTemp(filepath.Dir(*to), filepath.Base(*to)+".*.partial")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	var n int64
	var sum string
	if *url != "" {
		cctx, cancel := context.WithTimeout(ctx, *timeout)
		n, sum, err = fetchBackup(cctx, client, *url, *token, tmp)
		cancel()
	} else {
		n, sum, err = copyOffline(*dataDir, tmp)
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	st, err := checkDB(tmp.Name())
	if err != nil {
		return fmt.Errorf("backup: the copy fails its check, not kept: %w", err)
	}
	if err := placeNew(tmp.Name(), *to); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	keep = true
	_, err = fmt.Fprintf(stdout, "backup %s: %d bytes, sha256 %s, consistency check ok, %s\n", *to, n, sum, st)
	return err
}

// fetchBackup streams GET <base>/v1/admin/backup into w and returns its length and SHA-256.
// It returns an error for a refusal (with the server's problem detail), a cut body, or a body
// that does not match the server's Backup-Sha256 and Backup-Bytes trailers.
func fetchBackup(ctx context.Context, client *http.Client, base, token string, w io.Writer) (int64, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/v1/admin/backup", nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var p api.Problem
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &p) == nil && p.Detail != "" {
			return 0, "", fmt.Errorf("the service answered %d: %s", resp.StatusCode, p.Detail)
		}
		return 0, "", fmt.Errorf("the service answered %s", resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), resp.Body)
	if err != nil {
		return n, "", fmt.Errorf("the copy was cut after %d bytes: %w", n, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	want := resp.Trailer.Get(api.TrailerBackupSHA256)
	switch {
	case want == "":
		return n, sum, errors.New("the response has no " + api.TrailerBackupSHA256 + " trailer: the copy may be incomplete")
	case want != sum:
		return n, sum, fmt.Errorf("the copy hashes to %s, the service sent %s", sum, want)
	case resp.Trailer.Get(api.TrailerBackupBytes) != strconv.FormatInt(n, 10):
		return n, sum, fmt.Errorf("the copy has %d bytes, the service sent %s", n, resp.Trailer.Get(api.TrailerBackupBytes))
	}
	return n, sum, nil
}

// httpClient returns a client that trusts caFile (system roots when empty) and presents the
// client certificate certFile/keyFile when given. No overall timeout: a large backup takes
// long; the context bounds it.
func httpClient(caFile, certFile, keyFile string) (*http.Client, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return &http.Client{}, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca %s: no PEM certificate", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, Proxy: http.ProxyFromEnvironment}}, nil
}

// copyOffline copies dataDir's database into w with bbolt's tx.WriteTo, opening it read-only.
// It returns an error if there is no database or referrald holds it (is running).
func copyOffline(dataDir string, w io.Writer) (int64, string, error) {
	path := filepath.Join(dataDir, datadir.DBFile)
	db, err := openReadOnly(path)
	if errors.Is(err, berrors.ErrTimeout) {
		return 0, "", fmt.Errorf("%s is locked: referrald is running; take an online backup with --url and --token", path)
	}
	if err != nil {
		return 0, "", err
	}
	defer db.Close()
	h := sha256.New()
	var n int64
	err = db.View(func(tx *bolt.Tx) error {
		n, err = tx.WriteTo(io.MultiWriter(w, h))
		return err
	})
	if err != nil {
		return n, "", fmt.Errorf("copy %s: %w", path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// openReadOnly opens an existing bbolt file without writing to it (a shared lock, so it waits
// for a writer such as referrald, for lockWait at most).
func openReadOnly(path string) (*bolt.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no database: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockWait})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// dbStats are what checkDB counts, to show the operator what a copy holds.
type dbStats struct{ referrals, outbox int }

func (s dbStats) String() string {
	return fmt.Sprintf("%d referrals, %d undelivered events in the outbox", s.referrals, s.outbox)
}

// checkDB runs bbolt's consistency check on the file at path and counts its referrals and
// outbox entries (the store's "referrals" and "outbox" buckets). It returns the first
// problem the check finds.
func checkDB(path string) (dbStats, error) {
	var st dbStats
	db, err := openReadOnly(path)
	if err != nil {
		return st, err
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var first error
		for err := range tx.Check() { // drain: the checker uses tx until it closes the channel
			if first == nil {
				first = err
			}
		}
		if first != nil {
			return first
		}
		if b := tx.Bucket([]byte("referrals")); b != nil {
			st.referrals = b.Stats().KeyN
		}
		if b := tx.Bucket([]byte("outbox")); b != nil {
			st.outbox = b.Stats().KeyN
		}
		return nil
	})
	return st, err
}

// placeNew gives the finished file tmp the name dst without replacing an existing dst (a hard
// link fails if dst exists), and syncs the directory so the name survives a crash.
func placeNew(tmp, dst string) error {
	if err := os.Link(tmp, dst); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s appeared meanwhile; not overwritten", dst)
		}
		return err
	}
	if err := os.Remove(tmp); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// writeFileSync creates path (mode 0600, failing if it exists) with b, synced to disk.
func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// cmdRestore puts a backup into a new data directory: it refuses one that already has a
// database, copies the backup next to its place, checks the copy and only then names it
// referrals.db. With --keys-from it also copies the old data dir's other top-level files (the
// keys: client-index.key, cursor.key, encryption keys, the dev signing key), never
// overwriting; without them client search cannot find restored clients and encrypted records
// cannot be read.
func cmdRestore(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "backup file")
	dataDir := fs.String("data-dir", "", "new data directory; must not hold a referrals.db")
	keysFrom := fs.String("keys-from", "", "old data directory whose key files to copy over")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("restore: unexpected arguments %v", fs.Args())
	case *from == "" || *dataDir == "":
		return errors.New("restore: --from FILE and --data-dir NEWDIR are required")
	}
	target := filepath.Join(*dataDir, datadir.DBFile)
	if _, err := os.Lstat(target); err == nil {
		return fmt.Errorf("restore: %s already exists; restore into a new data directory (or move the old database away first)", target)
	}
	src, err := os.Open(*from)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer src.Close()
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	tmp, err := os.CreateTemp(*dataDir, datadir.DBFile+".*.restoring")
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, src)
	if err == nil {
		err = errors.Join(tmp.Sync(), tmp.Close())
	}
	if err != nil {
		return fmt.Errorf("restore: copy %s: %w", *from, err)
	}
	st, err := checkDB(tmp.Name())
	if err != nil {
		return fmt.Errorf("restore: %s fails its check, nothing restored: %w", *from, err)
	}
	if err := placeNew(tmp.Name(), target); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	keep = true
	fmt.Fprintf(stdout, "restored %s (%d bytes) to %s: consistency check ok, %s\n", *from, n, target, st)
	if st.outbox > 0 {
		fmt.Fprintln(stdout, "the outbox events are published when referrald starts on this data dir; consumers skip any they already have by event id")
	}
	if *keysFrom != "" {
		copied, err := copyKeys(*keysFrom, *dataDir)
		if err != nil {
			return fmt.Errorf("restore: keys: %w", err)
		}
		fmt.Fprintf(stdout, "copied from %s: %s\n", *keysFrom, strings.Join(copied, ", "))
	}
	if keys, _ := filepath.Glob(filepath.Join(*dataDir, "*.key")); len(keys) == 0 {
		fmt.Fprintf(stderr, "warning: %s has no key files: copy them from the old data dir (--keys-from), or client search will not find restored clients and encrypted records will not open\n", *dataDir)
	}
	return nil
}

// copyKeys copies the regular files at the top of from, except the database and its
// temporaries, into to, skipping any that exist there. It returns the names copied.
func copyKeys(from, to string) ([]string, error) {
	entries, err := os.ReadDir(from)
	if err != nil {
		return nil, err
	}
	var copied []string
	for _, e := range entries {
		name := e.Name()
		// The database, its temporaries and its access-log items file (rebuilt from the
		// restored log at start) are not keys.
		if !e.Type().IsRegular() || strings.HasPrefix(name, datadir.DBFile) || name == filepath.Base(store.AuditItemsPath(datadir.DBFile)) {
			continue
		}
		if _, err := os.Lstat(filepath.Join(to, name)); err == nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			return copied, err
		}
		if err := writeFileSync(filepath.Join(to, name), b); err != nil {
			return copied, err
		}
		copied = append(copied, name)
	}
	if len(copied) > 0 {
		if err := syncDir(to); err != nil {
			return copied, err
		}
	}
	return copied, nil
}
