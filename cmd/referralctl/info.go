package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/kela-hva/referrals/store"
)

// cmdInfo describes a stopped service's data dir without changing it: the file's layout (and
// whether this binary reads it), its size and free pages, and how many referrals, outbox
// events and access-log entries it holds. It is what to run before starting another binary
// on a data dir.
func cmdInfo(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("info", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", orDefault(getenv("REFERRAL_DATA_DIR"), "./data"), "data directory of a stopped referrald")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	path, err := offlineDBPath(*dataDir)
	if err != nil {
		return err
	}
	f, err := store.DescribeFile(path, lockWait)
	if err != nil {
		return whileStopped(path, err)
	}
	fmt.Fprintf(stdout, "file:       %s, %d bytes in use (pages of %d bytes), %d free pages\n", path, f.Bytes, f.PageSize, f.FreePages)
	switch {
	case f.Layout > f.KnownLayout:
		fmt.Fprintf(stdout, "layout:     %d, written by a newer referrald: this binary reads layouts up to %d and will not open it\n", f.Layout, f.KnownLayout)
		return errors.New("the data dir needs a newer binary")
	case f.Layout == 0:
		fmt.Fprintf(stdout, "layout:     not marked (a file from before 23 Nov 2026, or never opened by referrald): this binary upgrades it at start\n")
	default:
		fmt.Fprintf(stdout, "layout:     %d (this binary reads layouts up to %d)\n", f.Layout, f.KnownLayout)
	}
	fmt.Fprintf(stdout, "referrals:  %d\n", f.Referrals)
	fmt.Fprintf(stdout, "outbox:     %d events (not yet delivered, or kept until NATS synced them)\n", f.Outbox)
	if f.AuditHead == 0 {
		fmt.Fprintf(stdout, "access log: empty\n")
	} else {
		fmt.Fprintf(stdout, "access log: %d entries, head %d:%s\n", f.AuditHead, f.AuditHead, f.AuditHash)
	}
	return nil
}
