package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
	"github.com/kela-hva/referrals/internal/datadir"
	"github.com/kela-hva/referrals/store"
)

// privacyRun runs referralctl with args and env (nil: empty).
func privacyRun(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errb)
	return out.String(), err
}

// seeded is a --dev-like data directory: a keyring file, and referrals written through the
// domain service at a business time, the first one completed.
type seeded struct {
	dir  string
	keys *store.Keyring
	ids  []string
}

const seedName = "Seppo Seedinen"

func seedDataDir(t *testing.T, n int, at time.Time) *seeded {
	t.Helper()
	s := &seeded{dir: t.TempDir()}
	var err error
	if s.keys, err = store.CreateKeyringFile(filepath.Join(s.dir, datadir.KeyringFile), "dev-1"); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(s.dir, datadir.DBFile), store.Options{MaxBatchDelay: time.Millisecond, Keys: s.keys})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc := &domain.Service{
		Store: db, Registry: domain.DefaultRegistry(),
		Clock:  domain.ClockFunc(func() time.Time { return at }),
		Policy: domain.NewDeadlinePolicy(calendar.New(calendar.Options{})),
		ClientKey: func(pid string) string {
			h := sha256.Sum256([]byte("seed:" + pid))
			return hex.EncodeToString(h[:])
		},
	}
	kela := domain.Actor{UserID: "k", Org: domain.Kela, Roles: []domain.Role{domain.RoleKelaHandler}}
	hki := domain.Actor{UserID: "h", Org: "hva-90", Roles: []domain.Role{domain.RoleSocialWorker}}
	ctx := context.Background()
	for i := range n {
		r, _, err := svc.Create(ctx, kela, &domain.CreateRequest{
			Kind: domain.KindSocialWorkNeed, Urgency: domain.Normal,
			Client:         &domain.Client{PersonalID: "131052-308T", Name: seedName, HomeMunicipality: "091"},
			SocialWorkNeed: &domain.SocialWorkNeed{NeedFlags: []string{"other"}, Consent: "given", Description: "seed"},
		}, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := svc.AddMessage(ctx, kela, r.ID, "a message", 0); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if _, err := svc.Act(ctx, hki, r.ID, domain.Command{Action: domain.ActionReturn, Reason: "not_our_client", Text: "x"}); err != nil {
				t.Fatal(err)
			}
		}
		s.ids = append(s.ids, r.ID)
	}
	return s
}

// open opens the seeded store with keys (its own when nil).
func (s *seeded) open(t *testing.T, keys *store.Keyring) *store.DB {
	t.Helper()
	if keys == nil {
		keys = s.keys
	}
	db, err := store.Open(filepath.Join(s.dir, datadir.DBFile), store.Options{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestRotateKeyReencryptsEverythingUnderANewKey(t *testing.T) {
	s := seedDataDir(t, 3, time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	out, err := privacyRun(t, nil, "rotate-key", "--data-dir", s.dir, "--new-key", "--batch", "2")
	if err != nil {
		t.Fatalf("rotate-key: %v\n%s", err, out)
	}
	keys, err := store.LoadKeyring(filepath.Join(s.dir, datadir.KeyringFile))
	if err != nil {
		t.Fatal(err)
	}
	if keys.Active() == "dev-1" || len(keys.IDs()) != 2 {
		t.Fatalf("keyring after --new-key: active %s ids %v", keys.Active(), keys.IDs())
	}
	if !strings.Contains(out, "re-encrypted 6 records") || !strings.Contains(out, "key "+keys.Active()+": 6 records") || strings.Contains(out, "key dev-1") {
		t.Errorf("output:\n%s", out)
	}
	// Idempotent: a second run has nothing to do.
	out, err = privacyRun(t, nil, "rotate-key", "--data-dir", s.dir)
	if err != nil || !strings.Contains(out, "re-encrypted 0 records") {
		t.Errorf("second run: %v\n%s", err, out)
	}
	db := s.open(t, keys)
	for _, id := range s.ids {
		r, err := db.Referral(context.Background(), id)
		if err != nil || r.Client.Name != seedName {
			t.Errorf("%s after rotation: %v %v", id, r, err)
		}
	}
	usage, err := db.KeyUsage()
	if err != nil || usage["dev-1"] != 0 || usage[keys.Active()] != 6 {
		t.Errorf("usage = %v, %v", usage, err)
	}
}

func TestRotateKeyRefusals(t *testing.T) {
	s := seedDataDir(t, 1, time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	t.Run("service running", func(t *testing.T) {
		db := s.open(t, nil)
		_, err := privacyRun(t, nil, "rotate-key", "--data-dir", s.dir)
		db.Close()
		if err == nil || !strings.Contains(err.Error(), "stop referrald") {
			t.Errorf("err = %v, want a refusal naming the running service", err)
		}
	})
	t.Run("no keys", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, datadir.DBFile), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := privacyRun(t, nil, "rotate-key", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "encryption keys") {
			t.Errorf("err = %v, want one about encryption keys", err)
		}
	})
	t.Run("wrong key under the same id", func(t *testing.T) {
		wrong := filepath.Join(t.TempDir(), "wrong.json")
		if _, err := store.CreateKeyringFile(wrong, "dev-1"); err != nil {
			t.Fatal(err)
		}
		_, err := privacyRun(t, nil, "rotate-key", "--data-dir", s.dir, "--encryption-keys", wrong, "--new-key")
		if err == nil || !strings.Contains(err.Error(), "cannot be decrypted") {
			t.Errorf("err = %v, want a decryption error", err)
		}
		// Nothing was rewritten: the right key still opens everything.
		if r, err := s.open(t, nil).Referral(context.Background(), s.ids[0]); err != nil || r.Client.Name != seedName {
			t.Errorf("after the failed rotation: %v %v", r, err)
		}
	})
	t.Run("new key needs a file", func(t *testing.T) {
		js, err := os.ReadFile(filepath.Join(s.dir, datadir.KeyringFile))
		if err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"REFERRAL_ENCRYPTION_KEYS": string(js)}
		_, err = privacyRun(t, env, "rotate-key", "--data-dir", s.dir, "--encryption-keys", "", "--new-key")
		if err == nil || !strings.Contains(err.Error(), "--new-key needs a keyring file") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("no database", func(t *testing.T) {
		if _, err := privacyRun(t, nil, "rotate-key", "--data-dir", t.TempDir()); err == nil {
			t.Error("rotate-key on an empty directory succeeded")
		}
	})
}

// TestRotateKeyFindsTheKeyringWhereTheServiceDoes: a keyring kept outside the data dir,
// named by REFERRAL_ENCRYPTION_KEYS_FILE as for referrald, is the one rotated — not a
// leftover dev keyring in the data dir.
func TestRotateKeyFindsTheKeyringWhereTheServiceDoes(t *testing.T) {
	s := seedDataDir(t, 1, time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	outside := filepath.Join(t.TempDir(), "keys.json")
	if err := os.Rename(filepath.Join(s.dir, datadir.KeyringFile), outside); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateKeyringFile(filepath.Join(s.dir, datadir.KeyringFile), "leftover"); err != nil {
		t.Fatal(err)
	}
	out, err := privacyRun(t, map[string]string{"REFERRAL_ENCRYPTION_KEYS_FILE": outside}, "rotate-key", "--data-dir", s.dir, "--new-key")
	if err != nil {
		t.Fatalf("rotate-key: %v\n%s", err, out)
	}
	keys, err := store.LoadKeyring(outside)
	if err != nil || len(keys.IDs()) != 2 || keys.Active() == "dev-1" {
		t.Fatalf("the keyring named by the environment after --new-key: %v, %v", keys, err)
	}
	if left, err := store.LoadKeyring(filepath.Join(s.dir, datadir.KeyringFile)); err != nil || len(left.IDs()) != 1 {
		t.Errorf("the leftover keyring changed: %v, %v", left, err)
	}
	if usage, err := s.open(t, keys).KeyUsage(); err != nil || usage[keys.Active()] != 2 {
		t.Errorf("usage = %v, %v; want both records under the new key", usage, err)
	}
}
