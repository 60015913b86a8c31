package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kela-hva/referrals/store"
)

// clientIndexKeyFile holds the key of the client search index (a keyed hash of identity codes)
// that --dev creates in the data directory.
const clientIndexKeyFile = "client-index.key"

// encryptionKeyFile is the keyring (store.Keyring) --dev creates in the data directory.
const encryptionKeyFile = "encryption-keys.json"

// cursorKeyFile holds the key that signs page cursors, so cursors stay valid across restarts.
const cursorKeyFile = "cursor.key"

// loadOrCreateSecret returns the 32-byte hex secret in dir/name, creating it (mode 0600) if absent.
func loadOrCreateSecret(dir, name string) ([]byte, error) {
	path := filepath.Join(dir, name)
	if b, err := os.ReadFile(path); err == nil {
		key, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(key) < 32 {
			return nil, fmt.Errorf("%s: want at least 32 bytes of hex", path)
		}
		return key, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return key, nil
}

// clientKeyFunc returns the keyed hash (HMAC-SHA-256) that indexes referrals by identity code,
// so the index holds no identity code in the clear.
func clientKeyFunc(key []byte) func(string) string {
	return func(personalID string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(strings.ToUpper(personalID)))
		return hex.EncodeToString(m.Sum(nil))
	}
}

// checkKeyConfig checks the key settings of c and reads the retention period (empty: the
// default). Without --dev both the encryption keyring and the client index key must be
// given: the service refuses to store client data unencrypted or to index identity codes
// under a key nobody manages.
func checkKeyConfig(c *config, retention string) error {
	if c.encryptionKeys != "" && c.encryptionKeysJSON != "" {
		return errors.New("give the encryption keyring as --encryption-keys (REFERRAL_ENCRYPTION_KEYS_FILE) or in REFERRAL_ENCRYPTION_KEYS, not both")
	}
	if c.clientIndexKey != "" && c.clientIndexKeyHex != "" {
		return errors.New("give the client index key as --client-index-key (REFERRAL_CLIENT_INDEX_KEY_FILE) or in REFERRAL_CLIENT_INDEX_KEY, not both")
	}
	if !c.dev && c.encryptionKeys == "" && c.encryptionKeysJSON == "" {
		return errors.New("without --dev, --encryption-keys FILE or REFERRAL_ENCRYPTION_KEYS is required (refusing to store client data unencrypted)")
	}
	if !c.dev && c.clientIndexKey == "" && c.clientIndexKeyHex == "" {
		return errors.New("without --dev, --client-index-key FILE or REFERRAL_CLIENT_INDEX_KEY is required (the key of the client search index)")
	}
	c.retention = store.DefaultRetention
	if retention != "" {
		d, err := store.ParseRetention(retention)
		if err != nil {
			return fmt.Errorf("--retention: %w", err)
		}
		c.retention = d
	}
	return nil
}

// encryptionKeyring returns the keyring that encrypts client data at rest: from the
// --encryption-keys file, from REFERRAL_ENCRYPTION_KEYS, or with --dev from the data
// directory, where the first start creates it (mode 0600).
func encryptionKeyring(c config) (*store.Keyring, error) {
	switch {
	case c.encryptionKeys != "":
		return store.LoadKeyring(c.encryptionKeys)
	case c.encryptionKeysJSON != "":
		k, err := store.ParseKeyring([]byte(c.encryptionKeysJSON))
		if err != nil {
			return nil, fmt.Errorf("REFERRAL_ENCRYPTION_KEYS: %w", err)
		}
		return k, nil
	case c.dev:
		path := filepath.Join(c.dataDir, encryptionKeyFile)
		k, err := store.CreateKeyringFile(path, "dev-1")
		if errors.Is(err, os.ErrExist) {
			return store.LoadKeyring(path)
		}
		return k, err
	}
	return nil, errors.New("no encryption keys configured")
}

// clientIndexKey returns the key of the client search index (clientKeyFunc): from the
// --client-index-key file, from REFERRAL_CLIENT_INDEX_KEY, or with --dev from the data
// directory, where the first start creates it (mode 0600).
//
// The key must never change while referrals are indexed under it: a new key finds none of
// the existing clients (search and the §11 extract would silently miss them). The store
// remembers the key's fingerprint and refuses another (store.DB.CheckClientIndexKey);
// changing it needs a reindex of every referral, which no tool does yet.
func clientIndexKey(c config) ([]byte, error) {
	parse := func(what, h string) ([]byte, error) {
		key, err := hex.DecodeString(strings.TrimSpace(h))
		if err != nil || len(key) < 32 {
			return nil, fmt.Errorf("%s: want at least 32 bytes as hex", what)
		}
		return key, nil
	}
	switch {
	case c.clientIndexKey != "":
		b, err := os.ReadFile(c.clientIndexKey)
		if err != nil {
			return nil, fmt.Errorf("--client-index-key: %w", err)
		}
		return parse(c.clientIndexKey, string(b))
	case c.clientIndexKeyHex != "":
		return parse("REFERRAL_CLIENT_INDEX_KEY", c.clientIndexKeyHex)
	case c.dev:
		return loadOrCreateSecret(c.dataDir, clientIndexKeyFile)
	}
	return nil, errors.New("no client index key configured")
}

// clientIndexKeyFingerprint identifies the client index key without revealing it.
func clientIndexKeyFingerprint(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("referrals client index key fingerprint v1"))
	return m.Sum(nil)
}
