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
)

// clientIndexKeyFile holds the key of the client search index (a keyed hash of identity codes).
const clientIndexKeyFile = "client-index.key"

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
