package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kela-hva/referrals/store"
)

// cmdAudit runs the access-log subcommands; today: verify.
func cmdAudit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return errors.New("usage: referralctl audit verify --data-dir DIR [--anchor SEQ:HASH]")
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", orDefault(getenv("REFERRAL_DATA_DIR"), "./data"), "data directory of a stopped referrald")
	anchorFlag := fs.String("anchor", "", `a head recorded earlier ("seq:hash", e.g. from referrald's "audit head" log line): that entry must still have that hash`)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var anchor *store.AuditHead
	if *anchorFlag != "" {
		seq, hash, ok := strings.Cut(*anchorFlag, ":")
		n, err := strconv.ParseUint(seq, 10, 64)
		if !ok || err != nil || n == 0 || len(hash) != 64 {
			return errors.New(`--anchor: want "seq:hash" with the hash as 64 hex digits`)
		}
		anchor = &store.AuditHead{Seq: n, Hash: strings.ToLower(hash)}
	}
	// The access log is not encrypted (it holds no client data): no keys are needed. The
	// files are opened read-only: a data dir kept as evidence is not changed.
	path, err := offlineDBPath(*dataDir)
	if err != nil {
		return err
	}
	head, itemsChecked, err := store.VerifyAuditFile(ctx, path, anchor, lockWait)
	if err != nil {
		return whileStopped(path, err)
	}
	fmt.Fprintf(stdout, "access log intact: %d entries, head %d:%s\n", head.Seq, head.Seq, head.Hash)
	if !itemsChecked {
		fmt.Fprintf(stdout, "list pages indexed in %s not checked against it: the file is missing or from another copy of the log (derived data: referrald rebuilds it at start)\n",
			filepath.Base(store.AuditItemsPath(path)))
	}
	return nil
}
