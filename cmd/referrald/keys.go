package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/kela-hva/referrals/internal/datadir"
	"github.com/kela-hva/referrals/store"
)

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
		return datadir.LoadOrCreateKeyring(c.dataDir)
	}
	return nil, errors.New("no encryption keys configured")
}

// clientIndexKey returns the key of the client search index (datadir.ClientKey): from the
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
		return datadir.LoadOrCreateSecret(c.dataDir, datadir.ClientIndexKeyFile)
	}
	return nil, errors.New("no client index key configured")
}

// readableByOthers returns those of paths (empty ones skipped) whose mode lets the group or
// others read them: a key file the service's user alone should read. Unreadable files are
// left to the code that loads them.
func readableByOthers(paths ...string) []string {
	var open []string
	for _, p := range paths {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o044 != 0 {
			open = append(open, p)
		}
	}
	return open
}
