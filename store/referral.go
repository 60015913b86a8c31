package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/domain"
)

// referralRecord is how a referral is stored. domain.Referral hides ClientKey from JSON so it
// never leaves the service; the store keeps it beside the referral.
type referralRecord struct {
	ClientKey string           `json:"client_key,omitempty"`
	Referral  *domain.Referral `json:"referral"`
	// ErasedAt is when the retention job erased the referral's personal data (retention.go).
	ErasedAt *time.Time `json:"erased_at,omitempty"`
}

// Referral returns the referral with id, or ENotFound (also for an id that is not a UUID).
func (db *DB) Referral(ctx context.Context, id string) (*domain.Referral, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var r *domain.Referral
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		r, err = getReferral(tx, id)
		return err
	})
	return r, err
}

// getReferral returns the referral with id, or ENotFound.
func getReferral(tx *bolt.Tx, id string) (*domain.Referral, error) {
	uid, ok := parseID(id)
	if !ok {
		return nil, notFound(id)
	}
	r, err := loadReferral(tx, uid)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, notFound(id)
	}
	return r, nil
}

func notFound(id string) error { return domain.Errorf(domain.ENotFound, "referral %s not found", id) }

// loadReferral decodes the referral with id, or returns nil if there is none. The result is
// the caller's own copy.
func loadReferral(tx *bolt.Tx, id uuid.UUID) (*domain.Referral, error) {
	v := tx.Bucket(bucketReferrals).Get(id[:])
	if v == nil {
		return nil, nil
	}
	return decodeReferral(tx, id, v)
}

// decodeReferral opens and decodes v, the stored value of the referral with id.
func decodeReferral(tx *bolt.Tx, id uuid.UUID, v []byte) (*domain.Referral, error) {
	v, err := openValue(tx, bucketReferrals, id[:], v) // crypt.go
	if err != nil {
		return nil, fmt.Errorf("store: get referral %s: %w", id, err)
	}
	var rec referralRecord
	if err := json.Unmarshal(v, &rec); err != nil || rec.Referral == nil {
		if err == nil {
			err = errors.New("record without referral")
		}
		return nil, fmt.Errorf("store: get referral %s: %w", id, err)
	}
	rec.Referral.ClientKey = rec.ClientKey
	return rec.Referral, nil
}

// putReferral inserts or replaces r and moves its index entries: the entries of the stored
// version, read in the same transaction, are deleted before the new ones are written.
func putReferral(tx *bolt.Tx, r *domain.Referral) error {
	if r == nil {
		return errors.New("store: put referral: nil referral")
	}
	id, ok := parseID(r.ID)
	if !ok {
		return fmt.Errorf("store: put referral %q: id is not a UUID", r.ID)
	}
	for _, s := range []string{string(r.Sender), string(r.Recipient), string(r.Status), r.ClientKey} {
		if hasNUL(s) {
			return fmt.Errorf("store: put referral %s: %w", r.ID, errNUL)
		}
	}
	old, err := loadReferral(tx, id)
	if err != nil {
		return err
	}
	idx := tx.Bucket(bucketIndex)
	keys, iv := indexKeys(r, id), indexValue(r)
	if old != nil {
		// Entries that stay as they are (most of them on a transition) are not touched:
		// rewriting one dirties its page for nothing.
		same := bytes.Equal(indexValue(old), iv)
		kept := keys[:0:0]
		for _, k := range indexKeys(old, id) {
			if same && slices.ContainsFunc(keys, func(nk []byte) bool { return bytes.Equal(nk, k) }) {
				kept = append(kept, k)
				continue
			}
			if err := idx.Delete(k); err != nil {
				return fmt.Errorf("store: put referral %s: delete index entry: %w", r.ID, err)
			}
		}
		keys = slices.DeleteFunc(keys, func(k []byte) bool {
			return slices.ContainsFunc(kept, func(o []byte) bool { return bytes.Equal(o, k) })
		})
	}
	v, err := json.Marshal(referralRecord{ClientKey: r.ClientKey, Referral: r})
	if err != nil {
		return fmt.Errorf("store: put referral %s: %w", r.ID, err)
	}
	if v, err = sealValue(tx, bucketReferrals, id[:], v); err != nil { // crypt.go
		return fmt.Errorf("store: put referral %s: %w", r.ID, err)
	}
	if err := moveClosedIndex(tx, old, r, id); err != nil { // retention.go
		return err
	}
	if err := tx.Bucket(bucketReferrals).Put(id[:], v); err != nil {
		return fmt.Errorf("store: put referral %s: %w", r.ID, err)
	}
	for _, k := range keys {
		if err := idx.Put(k, iv); err != nil {
			return fmt.Errorf("store: put referral %s: index: %w", r.ID, err)
		}
	}
	return nil
}
