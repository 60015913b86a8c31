package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/kela-hva/referrals/internal/datadir"
	"github.com/kela-hva/referrals/store"
)

// cmdRetention erases, with the service stopped, the personal data of referrals closed longer
// ago than the retention period (what referrald does online every hour). --dry-run only
// counts them.
func cmdRetention(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("retention", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", orDefault(getenv("REFERRAL_DATA_DIR"), "./data"), "data directory of a stopped referrald")
	keysFile := fs.String("encryption-keys", "", "keyring file (default: REFERRAL_ENCRYPTION_KEYS_FILE, REFERRAL_ENCRYPTION_KEYS, or DIR/"+datadir.KeyringFile+")")
	period := fs.String("retention", orDefault(getenv("REFERRAL_RETENTION"), "730d"), "how long after closure personal data is kept: days (730d) or a duration (REFERRAL_RETENTION)")
	nowFlag := fs.String("now", "", "business time to run at, RFC 3339 (default: now; for a data dir run with a dev clock)")
	dryRun := fs.Bool("dry-run", false, "only count what would be erased")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	retention, err := store.ParseRetention(*period)
	if err != nil {
		return fmt.Errorf("--retention: %w", err)
	}
	now := time.Now().UTC()
	if *nowFlag != "" {
		if now, err = time.Parse(time.RFC3339, *nowFlag); err != nil {
			return fmt.Errorf("--now: want an RFC 3339 time: %w", err)
		}
	}
	keys, _, err := keyringSource(*dataDir, *keysFile, getenv)
	if err != nil {
		return err
	}
	db, err := openOffline(*dataDir, keys)
	if err != nil {
		return err
	}
	defer db.Close()
	cutoff := now.Add(-retention)
	res, err := db.EraseClosedBefore(ctx, cutoff, now, *dryRun)
	if err != nil {
		return err
	}
	if *dryRun {
		fmt.Fprintf(stdout, "dry run: %d referrals closed before %s would be erased\n", res.Candidates, cutoff.Format(time.RFC3339))
		return nil
	}
	fmt.Fprintf(stdout, "erased %d referrals closed before %s and %d of their messages", res.Erased, cutoff.Format(time.RFC3339), res.Messages)
	if res.Backfilled > 0 {
		fmt.Fprintf(stdout, " (indexed %d closed referrals first)", res.Backfilled)
	}
	fmt.Fprintln(stdout)
	return nil
}
