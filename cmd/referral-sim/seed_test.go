package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/internal/datadir"
	"github.com/kela-hva/referrals/store"
)

func TestSeedWritesReferralsTheServiceCanRead(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"seed", "--data-dir", dir, "--count", "400", "--seed", "9", "--check"}, noEnv, &out, io.Discard); err != nil {
		t.Fatalf("seed: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "seeded 400 referrals") {
		t.Errorf("output: %s", out.String())
	}
	for _, f := range []string{datadir.KeyringFile, datadir.ClientIndexKeyFile} {
		if !fileExists(filepath.Join(dir, f)) {
			t.Errorf("%s not created as referrald --dev would", f)
		}
	}
	// Open it as the service does: with the data directory's keyring and index key.
	keyring, err := datadir.LoadOrCreateKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	indexKey, err := datadir.LoadOrCreateSecret(dir, datadir.ClientIndexKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(dir, "referrals.db"), store.Options{Keys: keyring})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.CheckClientIndexKey(datadir.ClientIndexKeyFingerprint(indexKey)); err != nil {
		t.Fatal(err)
	}
	s := &stack{db: db}
	refs := s.referrals(t)
	if len(refs) != 400 {
		t.Fatalf("%d referrals, want 400", len(refs))
	}
	states := map[domain.Status]int{}
	for _, r := range refs {
		states[r.Status]++
	}
	for _, st := range []domain.Status{domain.StatusSent, domain.StatusReceived, domain.StatusInProgress, domain.StatusReturned, domain.StatusCompleted} {
		if states[st] == 0 {
			t.Errorf("no referral %s: %v", st, states)
		}
	}
	if states[domain.StatusCompleted] < len(refs)/2 {
		t.Errorf("states %v: want most closed", states)
	}
	// Client search finds a seeded client under the service's index key.
	found, err := db.ClientReferrals(context.Background(), datadir.ClientKey(indexKey)(refs[0].Client.PersonalID))
	if err != nil || len(found) == 0 {
		t.Errorf("client search: %d found, %v", len(found), err)
	}
	// Helsinki's inbox of sent referrals is there, newest first.
	p, err := db.List(context.Background(), domain.ListFilter{Org: "hva-90", Direction: domain.Incoming, Status: domain.StatusSent, Limit: 50})
	if err != nil || len(p.Items) == 0 {
		t.Errorf("Helsinki's inbox: %d, %v", len(p.Items), err)
	}
	if n, err := db.OutboxLen(); err != nil || n != 0 {
		t.Errorf("outbox holds %d events (%v), want them dropped", n, err)
	}
}

func TestSeedRefusesAServiceThatIsRunning(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "referrals.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	err = run(context.Background(), []string{"seed", "--data-dir", dir, "--count", "10"}, noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "stop referrald") {
		t.Errorf("seeding a file in use: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("gave up only after %s", time.Since(start))
	}
}
