// Package datadir names the files of a data directory and the key material referrald --dev
// keeps there. The service and the tools that read or write the same directory (referralctl,
// referral-sim seed) share it, so they agree on every file name and on how the client index
// key hashes identity codes: a copy that drifted would write records the service cannot
// decrypt, or index clients under hashes its search never asks for.
//
// The names and the hash construction are part of every existing data directory: changing
// one makes those directories unreadable or their clients unfindable.
package datadir

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

// The files of a data directory.
const (
	// DBFile is the bbolt database (store.Open).
	DBFile = "referrals.db"
	// KeyringFile is the keyring (store.Keyring) that encrypts client data at rest; referrald
	// --dev creates it (LoadOrCreateKeyring), otherwise the operator gives one.
	KeyringFile = "encryption-keys.json"
	// ClientIndexKeyFile holds the key of the client search index (ClientKey); referrald
	// --dev creates it, otherwise the operator gives one.
	ClientIndexKeyFile = "client-index.key"
	// CursorKeyFile holds the key that signs page cursors, so cursors stay valid across
	// restarts. referrald creates it in every mode.
	CursorKeyFile = "cursor.key"
)

// devKeyID is the id of the one key in a keyring LoadOrCreateKeyring creates.
const devKeyID = "dev-1"

// LoadOrCreateSecret returns the secret in dir/name, written as hex, creating it (32 random
// bytes, mode 0600) if the file does not exist. It returns an error naming the file if the
// file holds anything but at least 32 bytes of hex, or cannot be read or written.
func LoadOrCreateSecret(dir, name string) ([]byte, error) {
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

// LoadOrCreateKeyring returns the keyring in dir/KeyringFile, creating it (one random key,
// mode 0600) if the file does not exist, as referrald --dev does. It returns the errors of
// store.LoadKeyring and store.CreateKeyringFile.
func LoadOrCreateKeyring(dir string) (*store.Keyring, error) {
	path := filepath.Join(dir, KeyringFile)
	k, err := store.CreateKeyringFile(path, devKeyID)
	if errors.Is(err, os.ErrExist) {
		return store.LoadKeyring(path)
	}
	return k, err
}

// ClientKey returns the keyed hash (HMAC-SHA-256 under key, as hex) that indexes referrals
// by identity code (domain.Service.ClientKey), so the index holds no identity code in the
// clear. The identity code is upper-cased first, so it matches however its letters were typed.
func ClientKey(key []byte) func(personalID string) string {
	return func(personalID string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(strings.ToUpper(personalID)))
		return hex.EncodeToString(m.Sum(nil))
	}
}

// ClientIndexKeyFingerprint identifies the client index key without revealing it: the store
// keeps it and refuses another key (store.DB.CheckClientIndexKey).
func ClientIndexKeyFingerprint(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("referrals client index key fingerprint v1"))
	return m.Sum(nil)
}
