package store

import (
	"bytes"
	"sync"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/domain"
)

// recordCache keeps referrals that list pages decoded, keyed by id together with the stored
// (sealed) bytes they were decoded from: a hit needs the bytes in the file to be the same,
// so a changed, re-encrypted or erased record is never served from the cache. An inbox shows
// the same referrals page after page, and decrypting and decoding 50 records was a quarter of
// a page's CPU. The referrals it returns are shared: read them, never change them.
//
// It holds decrypted client data in memory, as every request does while it runs; it is
// bounded (recordCacheMax records, a few MiB) and Forget drops a record when its personal
// data is erased.
type recordCache struct {
	mu      sync.Mutex
	max     int
	entries map[uuid.UUID]cachedRecord
	// floor is the id of the last transaction that erased a record: a read that began
	// before it may hold a record it erased, and stores nothing.
	floor int
}

type cachedRecord struct {
	stored []byte // a copy of the value in the file
	ref    *domain.Referral
}

// recordCacheMax bounds the cache: about 3 KiB a record.
const recordCacheMax = 4096

func newRecordCache(max int) *recordCache {
	return &recordCache{max: max, entries: make(map[uuid.UUID]cachedRecord)}
}

// load returns the referral with id as stored in tx (nil if there is none), decoding it only
// when the cache does not hold it for the same stored bytes.
func (c *recordCache) load(tx *bolt.Tx, id uuid.UUID) (*domain.Referral, error) {
	v := tx.Bucket(bucketReferrals).Get(id[:])
	if v == nil {
		return nil, nil
	}
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if ok && bytes.Equal(e.stored, v) {
		return e.ref, nil
	}
	r, err := decodeReferral(tx, id, v) // v, already read: no second lookup
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if tx.ID() < c.floor {
		return r, nil // an older snapshot than the last erasure: use it, do not keep it
	}
	if len(c.entries) >= c.max {
		n := 0
		for k := range c.entries { // map order is random: drop a quarter
			delete(c.entries, k)
			if n++; n >= c.max/4 {
				break
			}
		}
	}
	c.entries[id] = cachedRecord{stored: bytes.Clone(v), ref: r}
	return r, nil
}

// forget drops id's record, erased by the transaction txID, and keeps reads that began
// before it from storing what they read.
func (c *recordCache) forget(id uuid.UUID, txID int) {
	c.mu.Lock()
	delete(c.entries, id)
	c.floor = max(c.floor, txID)
	c.mu.Unlock()
}

// len returns how many records the cache holds.
func (c *recordCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
