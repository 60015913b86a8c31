package datadir

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFileNamesOfExistingDataDirs pins the names: every data directory written so far uses
// them, so a rename would lose its database or keys.
func TestFileNamesOfExistingDataDirs(t *testing.T) {
	for got, want := range map[string]string{
		DBFile:             "referrals.db",
		KeyringFile:        "encryption-keys.json",
		ClientIndexKeyFile: "client-index.key",
		CursorKeyFile:      "cursor.key",
	} {
		if got != want {
			t.Errorf("file name %q, existing data directories use %q", got, want)
		}
	}
}

func TestSecretIsCreatedOnceWithMode0600(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateSecret(dir, "s.key")
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != 32 || bytes.Equal(k1, make([]byte, 32)) {
		t.Errorf("new secret %x, want 32 random bytes", k1)
	}
	fi, err := os.Stat(filepath.Join(dir, "s.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v, want mode 0600", fi, err)
	}
	k2, err := LoadOrCreateSecret(dir, "s.key")
	if err != nil || !bytes.Equal(k1, k2) {
		t.Errorf("second load %x (%v), want %x", k2, err, k1)
	}
	if other, err := LoadOrCreateSecret(dir, "other.key"); err != nil || bytes.Equal(other, k1) {
		t.Errorf("another file's secret %x (%v), want a new one", other, err)
	}
}

func TestSecretReadsAnOperatorsHexFile(t *testing.T) {
	dir := t.TempDir()
	want := bytes.Repeat([]byte{0xab}, 40) // longer than 32 bytes is accepted
	if err := os.WriteFile(filepath.Join(dir, "s.key"), []byte("  "+hex.EncodeToString(want)+"\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadOrCreateSecret(dir, "s.key"); err != nil || !bytes.Equal(got, want) {
		t.Errorf("got %x (%v), want %x", got, err, want)
	}
}

func TestSecretRefusesAFileThatIsNotAKey(t *testing.T) {
	for name, content := range map[string]string{
		"short":   strings.Repeat("ab", 31) + "\n",
		"not hex": strings.Repeat("zz", 32) + "\n",
		"empty":   "",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "s.key")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreateSecret(dir, "s.key")
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "at least 32 bytes") {
				t.Errorf("err = %v, want one naming %s", err, path)
			}
			if b, _ := os.ReadFile(path); string(b) != content {
				t.Errorf("the refused file was rewritten: %q", b)
			}
		})
	}
}

func TestKeyringIsCreatedOnceWithMode0600(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, KeyringFile)
	k1, err := LoadOrCreateKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("keyring file: %v %v, want mode 0600", fi, err)
	}
	written, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k1.Active() != devKeyID || k2.Active() != k1.Active() {
		t.Errorf("active keys %q then %q, want %q twice", k1.Active(), k2.Active(), devKeyID)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, written) {
		t.Error("the second load rewrote the keyring")
	}
}

func TestKeyringRefusesAnUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, KeyringFile)
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := LoadOrCreateKeyring(dir); err == nil {
		t.Errorf("a broken keyring file loaded: %v", k.IDs())
	}
	if b, _ := os.ReadFile(path); string(b) != "{" {
		t.Errorf("the broken keyring was replaced: %q", b)
	}
}

func TestClientKeyIsHMACOfTheUpperCasedIdentityCode(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("131052-308T"))
	want := hex.EncodeToString(m.Sum(nil))

	clientKey := ClientKey(key)
	for _, id := range []string{"131052-308T", "131052-308t"} {
		if got := clientKey(id); got != want {
			t.Errorf("ClientKey(%q) = %s, want %s", id, got, want)
		}
	}
	if clientKey("131052-308T") == ClientKey(bytes.Repeat([]byte{8}, 32))("131052-308T") {
		t.Error("two keys hash an identity code alike")
	}
	if clientKey("010101-123N") == want {
		t.Error("two identity codes hash alike")
	}
}

func TestFingerprintIdentifiesTheKeyWithoutBeingAClientKey(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("referrals client index key fingerprint v1"))
	if got := ClientIndexKeyFingerprint(key); !hmac.Equal(got, m.Sum(nil)) {
		t.Errorf("fingerprint %x, want the HMAC of the v1 label (stores record it)", got)
	}
	if bytes.Equal(ClientIndexKeyFingerprint(key), ClientIndexKeyFingerprint(bytes.Repeat([]byte{8}, 32))) {
		t.Error("two keys have one fingerprint")
	}
	fp := hex.EncodeToString(ClientIndexKeyFingerprint(key))
	if fp == ClientKey(key)("131052-308T") {
		t.Error("the fingerprint equals a client key")
	}
}
