package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
	"github.com/kela-hva/referrals/internal/testkit"
)

// testClock is the business clock of these tests: it moves only when told.
type testClock = testkit.Clock

// serviceOn is the real domain service on db, on a clock starting Mon 23 Nov 2026 09:12.
func serviceOn(db *DB) (*domain.Service, *testClock) {
	clock := testkit.NewClock(time.Date(2026, 11, 23, 9, 12, 44, 0, time.UTC))
	return &domain.Service{
		Store: db, Registry: domain.DefaultRegistry(), Clock: clock,
		Policy: domain.NewDeadlinePolicy(calendar.New(calendar.Options{})),
		ClientKey: func(pid string) string {
			s := sha256.Sum256([]byte("test-index-key:" + strings.ToUpper(pid)))
			return hex.EncodeToString(s[:])
		},
	}, clock
}

var (
	kelaHandler = domain.Actor{UserID: "k-1", Name: "Kaisa Kela", Org: domain.Kela, Roles: []domain.Role{domain.RoleKelaHandler}}
	hkiWorker   = domain.Actor{UserID: "h-1", Name: "Heikki Helsinki", Org: "hva-90", Roles: []domain.Role{domain.RoleSocialWorker}}
)

// Client data of the grep test: identity code, name, phone and every kind of free text.
const (
	secretPID         = "131052-308T"
	secretName        = "Matti Meikalainen"
	secretPhone       = "+358401234567"
	secretDescription = "Vapautunut vankilasta, ei osoitetta"
	secretQuestion    = "Onko asiakkaalla puhelinta"
	secretAnswer      = "Asuu ystavan luona Kalliossa"
	secretOutcome     = "Palvelutarpeen arviointi aloitettu"
)

var secrets = []string{secretPID, secretName, secretPhone, secretDescription, secretQuestion, secretAnswer, secretOutcome}

func needRequest(pid, name string) *domain.CreateRequest {
	f := false
	return &domain.CreateRequest{
		Kind: domain.KindSocialWorkNeed, Urgency: domain.Normal, KelaCaseRef: "TO-2026-0012345",
		Client: &domain.Client{PersonalID: pid, Name: name, HomeMunicipality: "091", Language: "fi",
			Phone: secretPhone, CanUseEServices: &f},
		SocialWorkNeed: &domain.SocialWorkNeed{NeedFlags: []string{"housing_risk"}, Consent: "given",
			Description: secretDescription},
	}
}

// writeThroughService creates a referral with every kind of client data through the real
// service: create, question, answer, completion with text. It returns the referral id.
func writeThroughService(t *testing.T, svc *domain.Service) string {
	t.Helper()
	ctx := context.Background()
	r, _, err := svc.Create(ctx, kelaHandler, needRequest(secretPID, secretName), "")
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := svc.Act(ctx, hkiWorker, r.ID, domain.Command{Action: domain.ActionReceive}); err != nil {
		t.Fatalf("receive: %v", err)
	}
	if _, err := svc.Act(ctx, hkiWorker, r.ID, domain.Command{Action: domain.ActionRequestInfo, Question: secretQuestion}); err != nil {
		t.Fatalf("request info: %v", err)
	}
	if _, _, err := svc.AddMessage(ctx, kelaHandler, r.ID, secretAnswer, 0); err != nil {
		t.Fatalf("answer: %v", err)
	}
	if _, err := svc.Act(ctx, hkiWorker, r.ID, domain.Command{Action: domain.ActionComplete, Outcome: "assessment_started", Text: secretOutcome}); err != nil {
		t.Fatalf("complete: %v", err)
	}
	return r.ID
}

func mustKeyring(t testing.TB, active string, ids ...string) *Keyring {
	t.Helper()
	keys := map[string][]byte{}
	for _, id := range ids {
		k := sha256.Sum256([]byte("test key " + id))
		keys[id] = k[:]
	}
	kr, err := NewKeyring(active, keys)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// TestRawFileHoldsNoClientData writes client data through the real service and greps the
// raw bbolt file. Without keys (the control) every string is there, which shows the grep
// works; with keys none is.
func TestRawFileHoldsNoClientData(t *testing.T) {
	for _, tc := range []struct {
		name      string
		keys      *Keyring
		wantFound bool
	}{
		{"encrypted", mustKeyring(t, "k1", "k1"), false},
		{"control without keys", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "referrals.db")
			db, err := Open(path, Options{MaxBatchDelay: time.Millisecond, Keys: tc.keys})
			if err != nil {
				t.Fatal(err)
			}
			svc, _ := serviceOn(db)
			id := writeThroughService(t, svc)
			// Everything still reads back and the client is found by identity code.
			ms, err := db.Messages(context.Background(), id)
			if err != nil || len(ms) != 2 || ms[1].Text != secretAnswer {
				t.Errorf("messages = %+v, %v", ms, err)
			}
			found, err := svc.SearchClient(context.Background(), hkiWorker, secretPID)
			if err != nil || len(found) != 1 || found[0].Client.Name != secretName || found[0].Outcome.Text != secretOutcome {
				t.Errorf("search = %+v, %v", found, err)
			}
			if err := db.Check(); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range secrets {
				if got := bytes.Contains(raw, []byte(s)); got != tc.wantFound {
					t.Errorf("raw file contains %q: %v, want %v", s, got, tc.wantFound)
				}
			}
		})
	}
}

func TestSealedValuesAreBoundToTheirPlace(t *testing.T) {
	db := mustOpenPath(t, filepath.Join(t.TempDir(), "referrals.db"), Options{MaxBatchDelay: time.Millisecond, Keys: mustKeyring(t, "k1", "k1")})
	a, b := newReferral(orgKela, orgHelsin), newReferral(orgKela, orgHelsin)
	mustCreate(t, db, a, b)
	// Copy a's sealed record over b's: it must not open as b.
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		ida, _ := parseID(a.ID)
		idb, _ := parseID(b.ID)
		bk := tx.Bucket(bucketReferrals)
		return bk.Put(idb[:], bytes.Clone(bk.Get(ida[:])))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Referral(context.Background(), b.ID); !errors.Is(err, ErrDecrypt) {
		t.Errorf("swapped record: err = %v, want ErrDecrypt", err)
	}
	if got := mustReferral(t, db, a.ID); got.Client.Name != a.Client.Name {
		t.Errorf("a = %+v", got.Client)
	}
	// A sealed value cut short (its header names a key, the rest is missing) is a damaged
	// value, not a plaintext one: ErrNotEncrypted would send the operator to rotate-key.
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		idb, _ := parseID(b.ID)
		return tx.Bucket(bucketReferrals).Put(idb[:], []byte{sealedVersion, 2, 'k', '1'})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Referral(context.Background(), b.ID); !errors.Is(err, ErrDecrypt) {
		t.Errorf("truncated sealed record: err = %v, want ErrDecrypt", err)
	}
}

// TestWrongOrMissingKeyIsAClearError reopens an encrypted file with a wrong key under the same
// id, without the key id, and without any keys: each is a named error, never garbage.
func TestWrongOrMissingKeyIsAClearError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "referrals.db")
	db, err := Open(path, Options{Keys: mustKeyring(t, "k1", "k1")})
	if err != nil {
		t.Fatal(err)
	}
	r := newReferral(orgKela, orgHelsin)
	mustCreate(t, db, r)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	other := sha256.Sum256([]byte("another key"))
	wrong, err := NewKeyring("k1", map[string][]byte{"k1": other[:]})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		keys *Keyring
		want error
	}{
		{"wrong key under the same id", wrong, ErrDecrypt},
		{"key id not configured", mustKeyring(t, "k2", "k2"), ErrUnknownKey},
		{"no keys at all", nil, ErrNoKeys},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := mustOpenPath(t, path, Options{Keys: tc.keys})
			_, err := db.Referral(context.Background(), r.ID)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), r.ID) {
				t.Errorf("error %q does not name the record", err)
			}
			if _, err := db.ClientReferrals(context.Background(), r.ClientKey); !errors.Is(err, tc.want) {
				t.Errorf("client search: err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestPlaintextRecordInAnEncryptedStoreIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "referrals.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := newReferral(orgKela, orgHelsin)
	mustCreate(t, db, r)
	db.Close()
	enc := mustOpenPath(t, path, Options{Keys: mustKeyring(t, "k1", "k1")})
	if _, err := enc.Referral(context.Background(), r.ID); !errors.Is(err, ErrNotEncrypted) {
		t.Errorf("err = %v, want ErrNotEncrypted", err)
	}
}

func TestParseKeyring(t *testing.T) {
	good := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, json string
		ok         bool
	}{
		{"two keys", `{"active":"k2","keys":{"k1":"` + good + `","k2":"` + good + `"}}`, true},
		{"active missing", `{"active":"k3","keys":{"k1":"` + good + `"}}`, false},
		{"short key", `{"active":"k1","keys":{"k1":"abcd"}}`, false},
		{"not hex", `{"active":"k1","keys":{"k1":"` + strings.Repeat("zz", 32) + `"}}`, false},
		{"bad id", `{"active":"k 1","keys":{"k 1":"` + good + `"}}`, false},
		{"unknown field", `{"active":"k1","keys":{"k1":"` + good + `"},"extra":1}`, false},
		{"no keys", `{"active":"k1","keys":{}}`, false},
		// AES-256 only: 16 and 24 bytes would make AES-128 and AES-192 keys.
		{"a 16-byte key", `{"active":"k1","keys":{"k1":"` + strings.Repeat("ab", 16) + `"}}`, false},
		{"a 24-byte key", `{"active":"k1","keys":{"k1":"` + strings.Repeat("ab", 24) + `"}}`, false},
		{"longest id", `{"active":"` + strings.Repeat("k", maxKeyIDLen) + `","keys":{"` + strings.Repeat("k", maxKeyIDLen) + `":"` + good + `"}}`, true},
		{"id too long", `{"active":"` + strings.Repeat("k", maxKeyIDLen+1) + `","keys":{"` + strings.Repeat("k", maxKeyIDLen+1) + `":"` + good + `"}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKeyring([]byte(tc.json))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
			if err != nil && strings.Contains(err.Error(), "abab") {
				t.Errorf("error quotes key material: %v", err)
			}
		})
	}
}

func TestKeyringFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	k1, err := CreateKeyringFile(path, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if _, err := CreateKeyringFile(path, "k1"); !errors.Is(err, os.ErrExist) {
		t.Errorf("second create: %v, want ErrExist", err)
	}
	k2, err := AddKeyToFile(path, "k2")
	if err != nil {
		t.Fatal(err)
	}
	if k2.Active() != "k2" || strings.Join(k2.IDs(), ",") != "k1,k2" || k1.Active() != "k1" {
		t.Errorf("after add: active %s ids %v", k2.Active(), k2.IDs())
	}
	if _, err := AddKeyToFile(path, "k2"); err == nil {
		t.Error("adding an existing id succeeded")
	}
	loaded, err := LoadKeyring(path)
	if err != nil || loaded.Active() != "k2" {
		t.Fatalf("reload: %v %v", loaded, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after add = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	// The old key in the rewritten file is the same key: a value sealed by k1 opens.
	v, err := k1.seal(bucketReferrals, []byte("id"), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := loaded.open(bucketReferrals, []byte("id"), v); err != nil || string(p) != "x" {
		t.Errorf("k1 value under the new file: %q %v", p, err)
	}
}

// TestRotation writes under k1, adds k2 and re-encrypts in small batches with an
// interruption: afterwards every record opens, none is left under k1 (so k1 can go), a second
// run changes nothing, and a keyring without k2 cannot read the file.
func TestRotation(t *testing.T) {
	dir := t.TempDir()
	path, keysPath := filepath.Join(dir, "referrals.db"), filepath.Join(dir, "keys.json")
	k1, err := CreateKeyringFile(keysPath, "k1")
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, Options{MaxBatchDelay: time.Millisecond, Keys: k1})
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := serviceOn(db)
	var ids []string
	for range 3 {
		ids = append(ids, writeThroughService(t, svc)) // each: a referral and two messages
	}
	db.Close()
	// A record written before encryption is encrypted by the rotation too.
	plain, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	legacy := newReferral(orgKela, orgHelsin)
	if err := plain.Update(context.Background(), func(domain.Tx) (*domain.Change, error) {
		return &domain.Change{Referrals: []*domain.Referral{legacy}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	plain.Close()

	k2, err := AddKeyToFile(keysPath, "k2")
	if err != nil {
		t.Fatal(err)
	}
	db = mustOpenPath(t, path, Options{Keys: k2})
	usage, err := db.KeyUsage()
	if err != nil || usage["k1"] != 9 || usage[""] != 1 {
		t.Fatalf("usage before = %v, %v; want 9 under k1 and 1 plaintext", usage, err)
	}
	// Interrupted after the first batch of 2.
	ctx, cancel := context.WithCancel(context.Background())
	res, err := db.Reencrypt(ctx, 2, func(RotateResult) { cancel() })
	if !errors.Is(err, context.Canceled) || res.Rewritten != 2 {
		t.Fatalf("interrupted run: %+v, %v; want 2 rewritten and context.Canceled", res, err)
	}
	res, err = db.Reencrypt(context.Background(), 2, nil)
	if err != nil || res.Rewritten != 8 || res.Current != 2 {
		t.Fatalf("resumed run: %+v, %v; want 8 rewritten, 2 already current", res, err)
	}
	if usage, _ := db.KeyUsage(); len(usage) != 1 || usage["k2"] != 10 {
		t.Errorf("usage after = %v, want all 10 under k2", usage)
	}
	if res, err := db.Reencrypt(context.Background(), 2, nil); err != nil || res.Rewritten != 0 {
		t.Errorf("second run: %+v, %v; want nothing to do", res, err)
	}
	for _, id := range append(ids, legacy.ID) {
		r := mustReferral(t, db, id)
		if id != legacy.ID {
			if r.Client.Name != secretName {
				t.Errorf("%s after rotation: name %q", id, r.Client.Name)
			}
			if ms, err := db.Messages(context.Background(), id); err != nil || len(ms) != 2 || ms[0].Text != secretQuestion {
				t.Errorf("%s messages after rotation: %+v, %v", id, ms, err)
			}
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Only k2 is needed now; k1 alone opens nothing.
	only2, err := NewKeyring("k2", map[string][]byte{"k2": keyBytes(t, keysPath, "k2")})
	if err != nil {
		t.Fatal(err)
	}
	db2 := mustOpenPath(t, path, Options{Keys: only2})
	if r := mustReferral(t, db2, ids[0]); r.Client.PersonalID != secretPID {
		t.Errorf("with k2 only: %+v", r.Client)
	}
	db2.Close()
	db1 := mustOpenPath(t, path, Options{Keys: k1})
	if _, err := db1.Referral(context.Background(), ids[0]); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("with k1 only: err = %v, want ErrUnknownKey", err)
	}
}

// keyBytes reads one key of a keyring file.
func keyBytes(t *testing.T, path, id string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f keyFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	k, err := hex.DecodeString(f.Keys[id])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestReencryptNeedsKeys(t *testing.T) {
	db := MustOpen(t)
	if _, err := db.Reencrypt(context.Background(), 0, nil); err == nil {
		t.Error("Reencrypt without keys succeeded")
	}
}

func TestClientIndexKeyFingerprintIsKept(t *testing.T) {
	db := MustOpen(t)
	if err := db.CheckClientIndexKey([]byte("fp-1")); err != nil {
		t.Fatal(err)
	}
	if err := db.CheckClientIndexKey([]byte("fp-1")); err != nil {
		t.Errorf("same key again: %v", err)
	}
	if err := db.CheckClientIndexKey([]byte("fp-2")); !errors.Is(err, ErrClientIndexKeyChanged) {
		t.Errorf("another key: %v, want ErrClientIndexKeyChanged", err)
	}
}
