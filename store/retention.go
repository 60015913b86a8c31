package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/domain"
)

// Retention: the personal data of referrals closed longer ago than the retention period is
// erased (domain.EraseReferral, EraseMessage), the client index entry removed, and each
// erasure written to the access log in the same transaction. Candidates come from the
// closure index, so a run reads only what it erases:
//
//	closed        at id16                      → (empty)  a closed referral not yet erased
//	privacy_meta  "closed_index_v1"            → (empty)  the closure index is complete
//
// at is the closure time (Milestones.ClosedAt) as big-endian Unix nanoseconds. putReferral
// adds the entry when a referral closes; erasure removes it. A file written before the
// index existed is indexed once, by a full scan, on the first retention run (Open marks a
// file without referrals as complete, so new files never scan).

var (
	bucketClosed       = []byte("closed")
	metaClosedComplete = []byte("closed_index_v1")
)

// DefaultRetention is how long after closure a referral keeps its personal data: two years.
// This service is the channel between Kela and the county, not either one's client register
// (each keeps its own records under its own rules), so its copy is kept for as long as the
// handling may still be questioned: a complaint about an authority's conduct more than two
// years old is not investigated (Hallintolaki 434/2003 §53 b), and the access log that
// explains who used the data is kept at least two years (Act 703/2023). The figures and the
// events stay: they hold no personal data.
const DefaultRetention = 2 * 365 * 24 * time.Hour

// ParseRetention reads a retention period: a number of days ("730d") or a Go duration
// ("17520h"). It must be positive.
func ParseRetention(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n > 100*365 {
			return 0, fmt.Errorf("retention %q: want days such as 730d or a duration such as 17520h", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("retention %q: want days such as 730d or a duration such as 17520h", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("retention %q: must be positive", s)
	}
	return d, nil
}

// closedKey is the closure-index key of r, or nil if r is not closed.
func closedKey(r *domain.Referral, id uuid.UUID) []byte {
	if r == nil || r.Times.ClosedAt == nil {
		return nil
	}
	return append(atKey(*r.Times.ClosedAt), id[:]...)
}

// moveClosedIndex replaces old's closure-index entry by r's (putReferral).
func moveClosedIndex(tx *bolt.Tx, old, r *domain.Referral, id uuid.UUID) error {
	b := tx.Bucket(bucketClosed)
	if k := closedKey(old, id); k != nil {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("store: put referral %s: closure index: %w", id, err)
		}
	}
	if k := closedKey(r, id); k != nil {
		if err := b.Put(k, []byte{}); err != nil {
			return fmt.Errorf("store: put referral %s: closure index: %w", id, err)
		}
	}
	return nil
}

// markClosedIndexIfEmpty marks the closure index complete in a file without referrals.
func markClosedIndexIfEmpty(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketPrivacyMeta)
	if meta.Get(metaClosedComplete) != nil {
		return nil
	}
	if k, _ := tx.Bucket(bucketReferrals).Cursor().First(); k != nil {
		return nil
	}
	return meta.Put(metaClosedComplete, []byte{})
}

// loadRecord decodes the stored record of id, or nil.
func loadRecord(tx *bolt.Tx, id uuid.UUID) (*referralRecord, error) {
	v := tx.Bucket(bucketReferrals).Get(id[:])
	if v == nil {
		return nil, nil
	}
	v, err := openValue(tx, bucketReferrals, id[:], v)
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
	return &rec, nil
}

// backfillClosedIndex indexes every closed, unerased referral by a full scan, once. With
// write false it only returns the candidates closed before cutoff (for a dry run).
func backfillClosedIndex(tx *bolt.Tx, write bool, cutoff time.Time) (added int, candidates [][]byte, err error) {
	b := tx.Bucket(bucketClosed)
	var keys [][]byte
	c := tx.Bucket(bucketReferrals).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) != idLen {
			continue
		}
		id := uuid.UUID(k)
		rec, err := loadRecord(tx, id)
		if err != nil {
			return 0, nil, err
		}
		if rec == nil || rec.ErasedAt != nil {
			continue
		}
		if ck := closedKey(rec.Referral, id); ck != nil {
			keys = append(keys, ck)
			if !write && rec.Referral.Times.ClosedAt.Before(cutoff) {
				candidates = append(candidates, ck)
			}
		}
	}
	if !write {
		return 0, candidates, nil
	}
	for _, k := range keys {
		if b.Get(k) == nil {
			if err := b.Put(k, []byte{}); err != nil {
				return 0, nil, err
			}
			added++
		}
	}
	return added, nil, tx.Bucket(bucketPrivacyMeta).Put(metaClosedComplete, []byte{})
}

// RetentionResult counts what a retention run found and did.
type RetentionResult struct {
	// Candidates is the number of referrals closed before the cutoff that still held
	// personal data; a dry run stops there.
	Candidates int
	Erased     int // referrals erased
	Messages   int // messages erased
	// Backfilled is how many closed referrals the one-time full scan added to the index.
	Backfilled int
}

// RetentionBatch is how many referrals one retention transaction erases.
const RetentionBatch = 100

// EraseClosedBefore erases the personal data of every referral closed before cutoff: its
// record (domain.EraseReferral, with the erasure time), its client index entry and its
// messages' texts; timeline, events, idempotency records and the figures stay. Each erasure
// is appended to the access log (domain.ErasureEntry at now) in the same transaction, in
// batches of RetentionBatch. With dryRun nothing is written and only Candidates is counted.
// It is idempotent: an erased referral leaves the closure index.
func (db *DB) EraseClosedBefore(ctx context.Context, cutoff, now time.Time, dryRun bool) (RetentionResult, error) {
	var res RetentionResult
	end := atKey(cutoff)
	if dryRun {
		err := db.bolt.View(func(tx *bolt.Tx) error {
			if tx.Bucket(bucketPrivacyMeta).Get(metaClosedComplete) == nil {
				_, cands, err := backfillClosedIndex(tx, false, cutoff)
				res.Candidates = len(cands)
				return err
			}
			c := tx.Bucket(bucketClosed).Cursor()
			for k, _ := c.First(); k != nil && bytes.Compare(k[:8], end) < 0; k, _ = c.Next() {
				res.Candidates++
			}
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("store: retention: %w", err)
		}
		return res, nil
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketPrivacyMeta).Get(metaClosedComplete) != nil {
			return nil
		}
		n, _, err := backfillClosedIndex(tx, true, cutoff)
		res.Backfilled = n
		return err
	})
	if err != nil {
		return res, fmt.Errorf("store: retention: index closed referrals: %w", err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var batch RetentionResult
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			batch = RetentionResult{}
			var keys [][]byte
			c := tx.Bucket(bucketClosed).Cursor()
			for k, _ := c.First(); k != nil && len(keys) < RetentionBatch; k, _ = c.Next() {
				if len(k) != 8+idLen || bytes.Compare(k[:8], end) >= 0 {
					break
				}
				keys = append(keys, bytes.Clone(k))
			}
			var entries []domain.AuditEntry
			for _, k := range keys {
				e, msgs, err := eraseReferral(tx, uuid.UUID(k[8:]), k, now)
				if err != nil {
					return err
				}
				if e != nil {
					entries = append(entries, *e)
					batch.Erased++
					batch.Messages += msgs
					id, txID := uuid.UUID(k[8:]), tx.ID()
					tx.OnCommit(func() { db.records.forget(id, txID) }) // no decrypted copy outlives erasure
				}
			}
			batch.Candidates = len(keys)
			return appendAudit(tx, entries)
		})
		if err != nil {
			return res, fmt.Errorf("store: retention: %w", err)
		}
		res.Candidates += batch.Candidates
		res.Erased += batch.Erased
		res.Messages += batch.Messages
		if batch.Candidates < RetentionBatch {
			return res, nil
		}
	}
}

// eraseReferral erases one referral and its messages in tx and removes its closure-index
// entry ck. It returns the access-log entry of the erasure, or nil if the record is gone.
func eraseReferral(tx *bolt.Tx, id uuid.UUID, ck []byte, now time.Time) (*domain.AuditEntry, int, error) {
	if err := tx.Bucket(bucketClosed).Delete(ck); err != nil {
		return nil, 0, err
	}
	rec, err := loadRecord(tx, id)
	if err != nil || rec == nil {
		return nil, 0, err
	}
	r := rec.Referral
	entry := domain.ErasureEntry(r, now)
	idx := tx.Bucket(bucketIndex)
	for _, k := range indexKeys(r, id) {
		if err := idx.Delete(k); err != nil {
			return nil, 0, err
		}
	}
	clientKey := r.ClientKey
	domain.EraseReferral(r)
	iv := indexValue(r)
	for _, k := range indexKeys(r, id) { // without the client entry: ClientKey is gone
		if err := idx.Put(k, iv); err != nil {
			return nil, 0, err
		}
	}
	// The keyed client hash must not outlive the personal data: drop the client's bounce
	// counter once none of their referrals is left in the client index.
	if err := forgetClientBounces(tx, clientKey); err != nil {
		return nil, 0, err
	}
	at := now.UTC()
	v, err := json.Marshal(referralRecord{Referral: r, ErasedAt: &at})
	if err != nil {
		return nil, 0, err
	}
	if v, err = sealValue(tx, bucketReferrals, id[:], v); err != nil {
		return nil, 0, err
	}
	if err := tx.Bucket(bucketReferrals).Put(id[:], v); err != nil {
		return nil, 0, err
	}
	msgs, err := eraseMessages(tx, id)
	if err != nil {
		return nil, 0, fmt.Errorf("referral %s: %w", id, err)
	}
	return &entry, msgs, nil
}

// eraseMessages replaces the text of every message of the referral id.
func eraseMessages(tx *bolt.Tx, id uuid.UUID) (int, error) {
	b := tx.Bucket(bucketMessages)
	type kv struct{ k, v []byte }
	var todo []kv
	c := b.Cursor()
	for k, v := c.Seek(id[:]); k != nil && bytes.HasPrefix(k, id[:]); k, v = c.Next() {
		if len(k) != 2*idLen {
			continue
		}
		plain, err := openValue(tx, bucketMessages, k, v)
		if err != nil {
			return 0, fmt.Errorf("message %x: %w", k[idLen:], err)
		}
		var m domain.Message
		if err := json.Unmarshal(plain, &m); err != nil {
			return 0, fmt.Errorf("message %x: %w", k[idLen:], err)
		}
		domain.EraseMessage(&m)
		nv, err := json.Marshal(&m)
		if err != nil {
			return 0, err
		}
		if nv, err = sealValue(tx, bucketMessages, k, nv); err != nil {
			return 0, err
		}
		todo = append(todo, kv{bytes.Clone(k), nv})
	}
	for _, p := range todo { // after the walk: the cursor must not see the bucket change
		if err := b.Put(p.k, p.v); err != nil {
			return 0, err
		}
	}
	return len(todo), nil
}
