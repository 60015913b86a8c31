package store

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Encryption at rest. Every value of the referrals bucket (the record: client block, texts
// and all) and of the messages bucket is sealed whole with AES-256-GCM:
//
//	0x01 | len(keyID) | keyID | nonce (12) | ciphertext | tag (16)
//
// The additional authenticated data is the header (version, key id) followed by the bucket
// name, 0x00 and the record's key, so a value moved to another record, bucket or key id does
// not open. Nonces are random: with at most 2^32 values sealed under one key the chance of a
// repeat stays negligible — rotate keys (referralctl rotate-key) long before that.
//
// Timeline entries, index entries, idempotency records, outbox events and the access log hold
// no client data or free text (codes, ids, times, keyed hashes) and are not encrypted.
//
// A store opened without a Keyring reads and writes plaintext JSON (tests and tools only:
// referrald refuses to start without keys outside --dev, and --dev creates one). A store with
// a Keyring refuses plaintext records; `referralctl rotate-key` encrypts them.

const (
	sealedVersion = 0x01
	nonceLen      = 12
	keyLen        = 32
	maxKeyIDLen   = 64
)

// Errors of opening a sealed value. They are wrapped with the record's bucket and key (ids,
// never content).
var (
	// ErrUnknownKey: the value was sealed under a key id the keyring does not hold.
	ErrUnknownKey = errors.New("encrypted under a key that is not configured")
	// ErrDecrypt: the key id is known but the value does not open: a wrong key under that id,
	// or the value or its place was tampered with.
	ErrDecrypt = errors.New("cannot be decrypted: wrong key or tampered record")
	// ErrNotEncrypted: a plaintext record in a store that has keys.
	ErrNotEncrypted = errors.New("record is not encrypted (run referralctl rotate-key to encrypt it)")
	// ErrNoKeys: an encrypted record in a store opened without keys.
	ErrNoKeys = errors.New("record is encrypted but no encryption keys are configured")
)

// Keyring holds the AES-256-GCM keys of a store: every key it can open, and the active one
// that new values are sealed under. It is safe for concurrent use.
type Keyring struct {
	active string
	aeads  map[string]cipher.AEAD
}

// NewKeyring returns a keyring of keys (id → 32 bytes) sealing under active. Key ids are
// 1–64 characters of [A-Za-z0-9._-]. Returns an error for a missing active key, a bad id or
// a key that is not 32 bytes.
func NewKeyring(active string, keys map[string][]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("store: keyring: no keys")
	}
	k := &Keyring{active: active, aeads: make(map[string]cipher.AEAD, len(keys))}
	for id, key := range keys {
		if !validKeyID(id) {
			return nil, fmt.Errorf("store: keyring: key id %q: want 1–%d characters of [A-Za-z0-9._-]", id, maxKeyIDLen)
		}
		if len(key) != keyLen {
			return nil, fmt.Errorf("store: keyring: key %s: want %d bytes, got %d", id, keyLen, len(key))
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("store: keyring: key %s: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("store: keyring: key %s: %w", id, err)
		}
		k.aeads[id] = aead
	}
	if _, ok := k.aeads[active]; !ok {
		return nil, fmt.Errorf("store: keyring: active key %q is not among the keys", active)
	}
	return k, nil
}

// Active returns the id of the key new values are sealed under.
func (k *Keyring) Active() string { return k.active }

// IDs returns the ids of every key, sorted.
func (k *Keyring) IDs() []string {
	ids := make([]string, 0, len(k.aeads))
	for id := range k.aeads {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func validKeyID(id string) bool {
	if id == "" || len(id) > maxKeyIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// keyFile is the JSON form of a keyring: {"active": "k2", "keys": {"k1": "<64 hex>", …}}.
type keyFile struct {
	Active string            `json:"active"`
	Keys   map[string]string `json:"keys"`
}

// ParseKeyring reads a keyring from its JSON form. Errors never quote key material.
func ParseKeyring(data []byte) (*Keyring, error) {
	var f keyFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, errors.New(`store: keyring: want JSON {"active": "<id>", "keys": {"<id>": "<64 hex digits>"}}`)
	}
	keys := make(map[string][]byte, len(f.Keys))
	for id, h := range f.Keys {
		b, err := hex.DecodeString(h)
		if err != nil {
			return nil, fmt.Errorf("store: keyring: key %q is not hex", id)
		}
		keys[id] = b
	}
	return NewKeyring(f.Active, keys)
}

// LoadKeyring reads a keyring file (ParseKeyring).
func LoadKeyring(path string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("store: read keyring: %w", err)
	}
	k, err := ParseKeyring(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// CreateKeyringFile writes a new keyring file at path (mode 0600) with one random key, id,
// active. It refuses to overwrite an existing file (os.ErrExist).
func CreateKeyringFile(path, id string) (*Keyring, error) {
	f := keyFile{Active: id, Keys: map[string]string{}}
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	f.Keys[id] = hex.EncodeToString(key)
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: create keyring: %w", err)
	}
	if _, err := out.Write(append(b, '\n')); err != nil {
		out.Close()
		return nil, fmt.Errorf("store: write keyring: %w", err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return nil, fmt.Errorf("store: sync keyring: %w", err)
	}
	if err := out.Close(); err != nil {
		return nil, fmt.Errorf("store: close keyring: %w", err)
	}
	return ParseKeyring(b)
}

// AddKeyToFile adds a new random key with id to the keyring file at path and makes it the
// active one, keeping every old key so existing records still open. The file is replaced
// atomically (temporary file in the same directory, fsync, rename) with mode 0600. Returns
// an error if id is already in the file.
func AddKeyToFile(path, id string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("store: read keyring: %w", err)
	}
	if _, err := ParseKeyring(b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var f keyFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, dup := f.Keys[id]; dup {
		return nil, fmt.Errorf("store: keyring %s already has a key %q", path, id)
	}
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	f.Keys[id], f.Active = hex.EncodeToString(key), id
	nb, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	k, err := ParseKeyring(nb)
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keyring-*")
	if err != nil {
		return nil, fmt.Errorf("store: write keyring: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("store: write keyring: %w", err)
	}
	if _, err := tmp.Write(append(nb, '\n')); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("store: write keyring: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("store: sync keyring: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("store: write keyring: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("store: replace keyring: %w", err)
	}
	return k, nil
}

// NewKeyID returns a key id for a key made at t: "k" and the UTC time, e.g. k20261123T091244Z.
func NewKeyID(t time.Time) string { return "k" + t.UTC().Format("20060102T150405Z") }

func newKey() ([]byte, error) {
	key := make([]byte, keyLen)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("store: generate key: %w", err)
	}
	return key, nil
}

// header returns the sealed-value header for key id.
func header(id string) []byte {
	h := make([]byte, 0, 2+len(id))
	h = append(h, sealedVersion, byte(len(id)))
	return append(h, id...)
}

// aad is the additional authenticated data of a value: its header, bucket and key.
func aad(hdr, bucket, key []byte) []byte {
	a := make([]byte, 0, len(hdr)+len(bucket)+1+len(key))
	a = append(a, hdr...)
	a = append(a, bucket...)
	a = append(a, 0)
	return append(a, key...)
}

// seal encrypts plaintext for bucket/key under the active key.
func (k *Keyring) seal(bucket, key, plaintext []byte) ([]byte, error) {
	aead := k.aeads[k.active]
	hdr := header(k.active)
	out := make([]byte, len(hdr), len(hdr)+nonceLen+len(plaintext)+aead.Overhead())
	copy(out, hdr)
	nonce := out[len(hdr) : len(hdr)+nonceLen]
	out = out[:len(hdr)+nonceLen]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return aead.Seal(out, nonce, plaintext, aad(hdr, bucket, key)), nil
}

// sealedKeyID returns the key id of a sealed value, and false for anything else.
func sealedKeyID(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != sealedVersion {
		return "", false
	}
	n := int(v[1])
	if n == 0 || len(v) < 2+n+nonceLen {
		return "", false
	}
	return string(v[2 : 2+n]), true
}

// open decrypts a sealed value stored at bucket/key.
func (k *Keyring) open(bucket, key, v []byte) ([]byte, error) {
	id, ok := sealedKeyID(v)
	if !ok {
		if len(v) > 0 && v[0] == sealedVersion {
			return nil, ErrDecrypt
		}
		return nil, ErrNotEncrypted
	}
	aead := k.aeads[id]
	if aead == nil {
		return nil, fmt.Errorf("%w (key id %q)", ErrUnknownKey, id)
	}
	hdrLen := 2 + len(id)
	nonce := v[hdrLen : hdrLen+nonceLen]
	plain, err := aead.Open(nil, nonce, v[hdrLen+nonceLen:], aad(v[:hdrLen], bucket, key))
	if err != nil {
		return nil, fmt.Errorf("%w (key id %q)", ErrDecrypt, id)
	}
	return plain, nil
}

// keyrings maps each open bbolt file to its keyring. The record helpers (putReferral,
// loadReferral, putMessage, …) take only a *bolt.Tx; looking the keyring up by the tx's DB
// keeps their signatures, and so every caller, unchanged. Open registers, Close removes.
var keyrings sync.Map // *bolt.DB → *Keyring

func keyringOf(tx *bolt.Tx) *Keyring {
	k, _ := keyrings.Load(tx.DB())
	kr, _ := k.(*Keyring)
	return kr
}

// sealValue returns what to store for plaintext at bucket/key: sealed under the store's
// active key, or the plaintext itself in a store without keys.
func sealValue(tx *bolt.Tx, bucket, key, plaintext []byte) ([]byte, error) {
	k := keyringOf(tx)
	if k == nil {
		return plaintext, nil
	}
	return k.seal(bucket, key, plaintext)
}

// openValue returns the plaintext of the value v stored at bucket/key.
func openValue(tx *bolt.Tx, bucket, key, v []byte) ([]byte, error) {
	k := keyringOf(tx)
	if k == nil {
		if len(v) > 0 && v[0] == sealedVersion {
			return nil, ErrNoKeys
		}
		return v, nil
	}
	return k.open(bucket, key, v)
}

// sealedBuckets are the buckets whose values are sealed.
var sealedBuckets = [][]byte{bucketReferrals, bucketMessages}

// KeyUsage counts the sealed buckets' values by the key id they are sealed under; plaintext
// values count under "" . It reads every value: an operations tool, not a request path.
func (db *DB) KeyUsage() (map[string]int, error) {
	usage := map[string]int{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for _, name := range sealedBuckets {
			err := tx.Bucket(name).ForEach(func(_, v []byte) error {
				id, _ := sealedKeyID(v)
				usage[id]++
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: key usage: %w", err)
	}
	return usage, nil
}

// RotateResult counts what Reencrypt did.
type RotateResult struct {
	Rewritten int // values re-sealed under the active key (plaintext ones included)
	Current   int // values already under the active key, left alone
	Batches   int // write transactions committed
}

// DefaultRotateBatch is how many values Reencrypt re-seals per transaction by default.
const DefaultRotateBatch = 500

// Reencrypt re-seals every value of the sealed buckets that is not under the keyring's
// active key (or is plaintext) under it, batch values per write transaction. It is
// idempotent and resumable: values already under the active key are skipped, so after an
// interruption a second run finishes the job. Each value is opened first, so a value no
// configured key opens stops the run with an error naming its bucket and key (committed
// batches stay). Values already under the active key id are not opened: a wrong key under
// that id shows on reading, not here. progress, if not nil, is called after each batch. It
// needs a store opened with a Keyring.
func (db *DB) Reencrypt(ctx context.Context, batch int, progress func(RotateResult)) (RotateResult, error) {
	var res RotateResult
	kr := db.keys
	if kr == nil {
		return res, errors.New("store: reencrypt: the store was opened without encryption keys")
	}
	if batch <= 0 {
		batch = DefaultRotateBatch
	}
	for _, name := range sealedBuckets {
		var from []byte // the first key not yet looked at
		for {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			var done bool
			err := db.bolt.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket(name)
				type kv struct{ k, v []byte }
				var todo []kv
				current := 0
				c := b.Cursor()
				k, v := c.First()
				if from != nil {
					k, v = c.Seek(from)
				}
				for ; k != nil && len(todo) < batch; k, v = c.Next() {
					if id, ok := sealedKeyID(v); ok && id == kr.Active() {
						current++
						continue
					}
					plain, err := openAny(kr, name, k, v)
					if err != nil {
						return fmt.Errorf("store: reencrypt %s/%x: %w", name, k, err)
					}
					sealed, err := kr.seal(name, k, plain)
					if err != nil {
						return fmt.Errorf("store: reencrypt %s/%x: %w", name, k, err)
					}
					todo = append(todo, kv{bytes.Clone(k), sealed})
				}
				if k == nil {
					done = true
				} else {
					from = bytes.Clone(k)
				}
				// Put after the walk: a cursor must not see its bucket change under it.
				for _, p := range todo {
					if err := b.Put(p.k, p.v); err != nil {
						return fmt.Errorf("store: reencrypt %s/%x: %w", name, p.k, err)
					}
				}
				res.Rewritten += len(todo)
				res.Current += current
				return nil
			})
			if err != nil {
				return res, err
			}
			res.Batches++
			if progress != nil {
				progress(res)
			}
			if done {
				break
			}
		}
	}
	return res, nil
}

// openAny opens a sealed value under any configured key, or returns a plaintext JSON value
// as it is (the migration of records written before encryption).
func openAny(kr *Keyring, bucket, key, v []byte) ([]byte, error) {
	if _, ok := sealedKeyID(v); !ok && len(v) > 0 && v[0] == '{' {
		return v, nil
	}
	return kr.open(bucket, key, v)
}

var metaClientIndexKey = []byte("client_index_key_fingerprint")

// ErrClientIndexKeyChanged: the client index key is not the one the referrals were indexed with.
var ErrClientIndexKeyChanged = errors.New("store: the client index key differs from the one this file's client index was built with; restore the old key (a new key would find none of the existing clients)")

// CheckClientIndexKey compares fingerprint (a value derived from the client index key that
// does not reveal it) with the one recorded in the file, recording it on first use. It
// returns ErrClientIndexKeyChanged if they differ: a changed key would leave every existing
// client unreachable by search and by the §11 extract.
func (db *DB) CheckClientIndexKey(fingerprint []byte) error {
	if len(fingerprint) == 0 {
		return errors.New("store: empty client index key fingerprint")
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketPrivacyMeta)
		old := meta.Get(metaClientIndexKey)
		if old == nil {
			return meta.Put(metaClientIndexKey, fingerprint)
		}
		if !bytes.Equal(old, fingerprint) {
			return ErrClientIndexKeyChanged
		}
		return nil
	})
	if errors.Is(err, ErrClientIndexKeyChanged) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: check client index key: %w", err)
	}
	return nil
}
