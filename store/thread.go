package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/domain"
)

// Timeline returns every change of the referral, in Seq order, or ENotFound.
func (db *DB) Timeline(ctx context.Context, id string) ([]domain.TimelineEntry, error) {
	out := []domain.TimelineEntry{}
	err := db.children(ctx, id, bucketTimeline, idLen+8, func(_ *bolt.Tx, _, v []byte) error {
		var e domain.TimelineEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("store: get timeline %s: %w", id, err)
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Messages returns the referral's thread, oldest first (message ids are UUIDv7), or ENotFound.
func (db *DB) Messages(ctx context.Context, id string) ([]domain.Message, error) {
	out := []domain.Message{}
	err := db.children(ctx, id, bucketMessages, 2*idLen, func(tx *bolt.Tx, k, v []byte) error {
		v, err := openValue(tx, bucketMessages, k, v) // crypt.go
		if err != nil {
			return fmt.Errorf("store: get messages %s: %w", id, err)
		}
		var m domain.Message
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("store: get messages %s: %w", id, err)
		}
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// children calls fn, in key order, with the key and value of every key of bucket that is the
// referral's id16 followed by keyLen-16 more bytes. It returns ENotFound if there is no such
// referral.
func (db *DB) children(ctx context.Context, id string, bucket []byte, keyLen int, fn func(tx *bolt.Tx, k, v []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	uid, ok := parseID(id)
	if !ok {
		return notFound(id)
	}
	return db.bolt.View(func(tx *bolt.Tx) error {
		if !referralExists(tx, uid) {
			return notFound(id)
		}
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.Seek(uid[:]); k != nil && bytes.HasPrefix(k, uid[:]); k, v = c.Next() {
			if len(k) != keyLen {
				continue
			}
			if err := fn(tx, k, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// putTimeline stores one timeline entry under its referral id and Seq.
func putTimeline(tx *bolt.Tx, e *domain.TimelineEntry) error {
	id, ok := parseID(e.ReferralID)
	if !ok {
		return fmt.Errorf("store: put timeline %q: referral id is not a UUID", e.ReferralID)
	}
	if e.Seq < 0 {
		return fmt.Errorf("store: put timeline %s: negative seq %d", e.ReferralID, e.Seq)
	}
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("store: put timeline %s/%d: %w", e.ReferralID, e.Seq, err)
	}
	if err := tx.Bucket(bucketTimeline).Put(timelineKey(id, e.Seq), v); err != nil {
		return fmt.Errorf("store: put timeline %s/%d: %w", e.ReferralID, e.Seq, err)
	}
	return nil
}

// putMessage stores one message under its referral id and its own id.
func putMessage(tx *bolt.Tx, m *domain.Message) error {
	rid, ok := parseID(m.ReferralID)
	if !ok {
		return fmt.Errorf("store: put message %q: referral id is not a UUID", m.ReferralID)
	}
	mid, ok := parseID(m.ID)
	if !ok {
		return fmt.Errorf("store: put message %q: id is not a UUID", m.ID)
	}
	v, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("store: put message %s: %w", m.ID, err)
	}
	key := messageKey(rid, mid)
	if v, err = sealValue(tx, bucketMessages, key, v); err != nil { // crypt.go
		return fmt.Errorf("store: put message %s: %w", m.ID, err)
	}
	if err := tx.Bucket(bucketMessages).Put(key, v); err != nil {
		return fmt.Errorf("store: put message %s: %w", m.ID, err)
	}
	return nil
}

// referralExists reports whether a referral with id is stored.
func referralExists(tx *bolt.Tx, id uuid.UUID) bool {
	return tx.Bucket(bucketReferrals).Get(id[:]) != nil
}
