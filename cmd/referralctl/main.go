// Command referralctl is the operator's tool for referrald: dev tokens, online and offline
// backups, and restoring a backup into a new data directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kela-hva/referrals/api"
	"github.com/kela-hva/referrals/domain"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "referralctl:", err)
		os.Exit(1)
	}
}

const usage = `usage: referralctl <command> [flags]

commands:
  token   print a dev token: token --data-dir DIR --org ORG --role ROLE [--role ROLE] [--sub ID] [--name NAME] [--ttl 8h]
  backup  copy the database: backup --to FILE (--url URL [--token TOKEN] [--tls-ca F --tls-cert F --tls-key F] | --data-dir DIR)
          online from a running referrald (a kela operator's token, REFERRAL_TOKEN), or
          offline from the data dir of a stopped one; the copy is checked before it is kept
  restore put a backup into a new data dir: restore --from FILE --data-dir NEWDIR [--keys-from OLDDIR]
  rotate-key  re-encrypt every record under the active key, service stopped:
          rotate-key --data-dir DIR [--encryption-keys FILE] [--new-key] [--batch 500]
  audit verify  check the access log's hash chain, service stopped:
          audit verify --data-dir DIR [--anchor SEQ:HASH]
  retention  erase personal data of referrals closed too long ago, service stopped:
          retention --data-dir DIR [--retention 730d] [--dry-run] [--encryption-keys FILE]
  compact  rewrite the database without its free pages, service stopped (needs disk for a copy):
          compact --data-dir DIR
  info    describe a data dir without changing it (layout, size, free pages, referrals, outbox,
          access log), service stopped: info --data-dir DIR
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	switch args[0] {
	case "token":
		return cmdToken(args[1:], getenv, stdout, stderr)
	case "backup":
		return cmdBackup(ctx, args[1:], getenv, stdout, stderr)
	case "restore":
		return cmdRestore(args[1:], stdout, stderr)
	case "rotate-key": // rotate.go
		return cmdRotateKey(ctx, args[1:], getenv, stdout, stderr)
	case "audit": // audit.go
		return cmdAudit(ctx, args[1:], getenv, stdout, stderr)
	case "retention": // retention.go
		return cmdRetention(ctx, args[1:], getenv, stdout, stderr)
	case "compact": // compact.go
		return cmdCompact(ctx, args[1:], stdout, stderr)
	case "info": // info.go
		return cmdInfo(args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// cmdToken prints a token signed with the dev key of a --dev data directory, and nothing else
// on stdout, so it can be captured: TOKEN=$(referralctl token …).
func cmdToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", orDefault(getenv("REFERRAL_DATA_DIR"), "./data"), "data directory of a referrald --dev")
	org := fs.String("org", "", "organisation id: kela or hva-NN")
	sub := fs.String("sub", "", "user id (default: dev-<org>-<role>)")
	name := fs.String("name", "", "user's name, recorded in the access log (default: Dev <org> <role>)")
	ttl := fs.Duration("ttl", 8*time.Hour, "validity")
	var roles multiFlag
	fs.Var(&roles, "role", "kela_handler, social_worker, supervisor, auditor or operator (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	reg := domain.DefaultRegistry()
	if _, ok := reg.Organisation(domain.OrgID(*org)); !ok {
		return fmt.Errorf("--org %q: not an organisation (kela, hva-01 … hva-21, hva-90)", *org)
	}
	if len(roles) == 0 {
		return errors.New("--role is required")
	}
	var rs []domain.Role
	for _, r := range roles {
		if !domain.Role(r).Valid() {
			return fmt.Errorf("--role %q: not a role", r)
		}
		rs = append(rs, domain.Role(r))
	}
	if *ttl <= 0 || *ttl > 7*24*time.Hour {
		return errors.New("--ttl must be positive and at most a week")
	}
	if *sub == "" {
		*sub = "dev-" + *org + "-" + string(rs[0])
	}
	if *name == "" {
		*name = "Dev " + *org + " " + string(rs[0])
	}
	key, err := api.ReadDevKey(*dataDir)
	if err != nil {
		return err
	}
	tok, err := api.MintToken(key, *sub, domain.OrgID(*org), rs, *name, time.Now(), *ttl)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
