package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/internal/datadir"
	"github.com/kela-hva/referrals/store"
)

var hexKey = strings.Repeat("ab", 32)

func TestKeyConfig(t *testing.T) {
	prod := []string{"--jwt-public-key", "k.pem", "--jwt-issuer", "x"}
	keyringJSON := `{"active":"k1","keys":{"k1":"` + hexKey + `"}}`
	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // "" = accepted
	}{
		{"no encryption keys without --dev", append(prod, "--client-index-key", "i.key"), nil, "--encryption-keys"},
		{"no client index key without --dev", append(prod, "--encryption-keys", "k.json"), nil, "--client-index-key"},
		{"both from files", append(prod, "--encryption-keys", "k.json", "--client-index-key", "i.key"), nil, ""},
		{"both from the environment", prod, map[string]string{"REFERRAL_ENCRYPTION_KEYS": keyringJSON, "REFERRAL_CLIENT_INDEX_KEY": hexKey}, ""},
		{"keyring twice", append(prod, "--encryption-keys", "k.json", "--client-index-key", "i.key"), map[string]string{"REFERRAL_ENCRYPTION_KEYS": keyringJSON}, "not both"},
		{"index key twice", append(prod, "--encryption-keys", "k.json", "--client-index-key", "i.key"), map[string]string{"REFERRAL_CLIENT_INDEX_KEY": hexKey}, "not both"},
		{"--dev needs neither", []string{"--dev"}, nil, ""},
		{"bad retention", []string{"--dev", "--retention", "forever"}, nil, "--retention"},
		{"bad retention in the environment", []string{"--dev"}, map[string]string{"REFERRAL_RETENTION": "0d"}, "--retention"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if c.retention != store.DefaultRetention {
					t.Errorf("retention %v, want the default", c.retention)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want one naming %s", err, tc.wantErr)
			}
		})
	}
	c, err := parseConfig([]string{"--dev", "--retention", "365d"}, func(string) string { return "" }, io.Discard)
	if err != nil || c.retention != 365*24*3600e9 {
		t.Errorf("--retention 365d: %v, %v", c.retention, err)
	}
}

func TestDevKeysAreCreatedOnceWithMode0600(t *testing.T) {
	c := config{dev: true, dataDir: t.TempDir()}
	k1, err := encryptionKeyring(c)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := encryptionKeyring(c)
	if err != nil || k2.Active() != k1.Active() {
		t.Fatalf("second load: %v %v", k2, err)
	}
	i1, err := clientIndexKey(c)
	if err != nil {
		t.Fatal(err)
	}
	i2, err := clientIndexKey(c)
	if err != nil || !bytes.Equal(i1, i2) || len(i1) != 32 {
		t.Errorf("index key changed between starts")
	}
	for _, name := range []string{datadir.KeyringFile, datadir.ClientIndexKeyFile} {
		fi, err := os.Stat(filepath.Join(c.dataDir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", name, fi, err)
		}
	}
	// Outside --dev nothing is created.
	if _, err := encryptionKeyring(config{dataDir: t.TempDir()}); err == nil {
		t.Error("a keyring without --dev and without keys")
	}
	if _, err := clientIndexKey(config{dataDir: t.TempDir()}); err == nil {
		t.Error("an index key without --dev and without a key")
	}
}

func TestKeysFromFilesAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	idx := filepath.Join(dir, "index.key")
	if err := os.WriteFile(idx, []byte(hexKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := clientIndexKey(config{clientIndexKey: idx}); err != nil || len(k) != 32 {
		t.Errorf("from file: %v %v", k, err)
	}
	if k, err := clientIndexKey(config{clientIndexKeyHex: hexKey}); err != nil || len(k) != 32 {
		t.Errorf("from env: %v %v", k, err)
	}
	if _, err := clientIndexKey(config{clientIndexKeyHex: "abcd"}); err == nil || !strings.Contains(err.Error(), "REFERRAL_CLIENT_INDEX_KEY") {
		t.Errorf("short key: %v", err)
	}
	// 31 bytes is one short of the 256 bits the keyed hash of identity codes needs.
	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, []byte(hexKey[:62]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := clientIndexKey(config{clientIndexKey: short}); err == nil {
		t.Error("a 31-byte key from a file was accepted")
	}
	if _, err := clientIndexKey(config{clientIndexKeyHex: hexKey[:62]}); err == nil {
		t.Error("a 31-byte key from the environment was accepted")
	}
	if k, err := encryptionKeyring(config{encryptionKeysJSON: `{"active":"k1","keys":{"k1":"` + hexKey + `"}}`}); err != nil || k.Active() != "k1" {
		t.Errorf("keyring from env: %v %v", k, err)
	}
	_, err := encryptionKeyring(config{encryptionKeysJSON: `{"active":"k1","keys":{"k1":"` + hexKey[:60] + `"}}`})
	if err == nil || !strings.Contains(err.Error(), "REFERRAL_ENCRYPTION_KEYS") || strings.Contains(err.Error(), hexKey[:20]) {
		t.Errorf("bad keyring from env: %v", err)
	}
}

// TestServiceStoresNoClientDataInTheClear runs referrald --dev end to end: the keyring is
// created in the data dir, the bbolt file holds none of the client data, and a restart with
// another client index key is refused.
func TestServiceStoresNoClientDataInTheClear(t *testing.T) {
	dir := t.TempDir()
	s := startService(t, dir)
	kela := s.token("kela", domain.RoleKelaHandler)
	if status, body := s.do("POST", "/v1/referrals", kela, needJSON); status != 201 {
		t.Fatalf("create: %d %v", status, body)
	}
	if status, body := s.do("POST", "/v1/clients/search", kela, `{"personal_id":"131052-308T"}`); status != 200 || len(body["items"].([]any)) != 1 {
		t.Fatalf("search: %d %v", status, body)
	}
	s.stop()
	if fi, err := os.Stat(filepath.Join(dir, datadir.KeyringFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("keyring: %v %v", fi, err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "referrals.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"131052-308T", "Meikäläinen", "Released 2026-11-20", "+358401234567"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the database file holds %q in the clear", secret)
		}
	}
	env := func(k string) string {
		if k == "REFERRAL_CLIENT_INDEX_KEY" {
			return hexKey
		}
		return ""
	}
	err = run(context.Background(), []string{"--dev", "--data-dir", dir, "--addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0"}, env, io.Discard, io.Discard)
	if !errors.Is(err, store.ErrClientIndexKeyChanged) {
		t.Errorf("restart with another index key: %v, want ErrClientIndexKeyChanged", err)
	}
}

// TestKeyFilesReadableByOthersAreFound: the start-up warning names a key file the group or
// others may read, and not one only its owner reads.
func TestKeyFilesReadableByOthersAreFound(t *testing.T) {
	dir := t.TempDir()
	own, group, world := filepath.Join(dir, "own.key"), filepath.Join(dir, "group.key"), filepath.Join(dir, "world.key")
	for path, mode := range map[string]os.FileMode{own: 0o600, group: 0o640, world: 0o604} {
		if err := os.WriteFile(path, []byte(hexKey), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	got := readableByOthers(own, "", group, world, filepath.Join(dir, "missing.key"))
	if !slices.Equal(got, []string{group, world}) {
		t.Errorf("readable by others: %v, want %v", got, []string{group, world})
	}
}
