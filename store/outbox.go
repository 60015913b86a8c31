package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/domain"
)

// DefaultPendingMax is how many events PendingEvents returns when asked for limit <= 0.
const DefaultPendingMax = 100

// putEvents appends events to the outbox. Keys come from the bucket's sequence, which grows
// only in committed transactions, so key order is commit order, and the events of one
// referral, whose commands are serialised by the write lock, are in the order they happened.
func putEvents(tx *bolt.Tx, events []domain.Event) error {
	b := tx.Bucket(bucketOutbox)
	b.FillPercent = appendOnlyFill // appended on increasing sequence numbers
	for i := range events {
		e := &events[i]
		seq, err := b.NextSequence()
		if err != nil {
			return fmt.Errorf("store: put event %s: %w", e.ID, err)
		}
		v, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("store: put event %s: %w", e.ID, err)
		}
		if err := b.Put(seqKey(seq), v); err != nil {
			return fmt.Errorf("store: put event %s: %w", e.ID, err)
		}
	}
	return nil
}

// PendingEvents returns up to limit undelivered events, oldest first by Seq (commit order).
// limit <= 0 means DefaultPendingMax. Events stay pending until DeleteEvents removes them, so a
// relay that dies between publishing and deleting publishes them again (at least once).
func (db *DB) PendingEvents(limit int) ([]domain.OutboxEntry, error) {
	return db.PendingEventsAfter(0, limit)
}

// PendingEventsAfter is PendingEvents from the first entry whose Seq is greater than after: a
// relay that keeps delivered entries for a while (broker.RelayOptions.KeepFor) reads on from
// the last one it handled instead of reading them again. Seqs start at 1, so after 0 reads
// from the oldest entry. Commits make their entries visible in Seq order (one writer), so no
// entry can appear later below a Seq already read.
func (db *DB) PendingEventsAfter(after uint64, limit int) ([]domain.OutboxEntry, error) {
	if limit <= 0 {
		limit = DefaultPendingMax
	}
	if after == math.MaxUint64 {
		return nil, nil
	}
	var out []domain.OutboxEntry
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			if len(k) != 8 {
				return fmt.Errorf("store: pending events: malformed key %x", k)
			}
			e := domain.OutboxEntry{Seq: binary.BigEndian.Uint64(k)}
			if err := json.Unmarshal(v, &e.Event); err != nil {
				return fmt.Errorf("store: pending event %d: %w", e.Seq, err)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteEvents removes delivered events from the outbox. Seqs that are not there are ignored,
// so a repeated delete is harmless. It shares group commit with Update.
func (db *DB) DeleteEvents(seqs []uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	err := db.group.do(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		for _, seq := range seqs {
			if err := b.Delete(seqKey(seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: delete events: %w", err)
	}
	return nil
}

// OutboxLen returns the number of undelivered events. It walks the outbox's pages (not its
// values): cheap while the relay keeps up, O(backlog) when it does not.
func (db *DB) OutboxLen() (int, error) {
	var n int
	err := db.bolt.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketOutbox).Stats().KeyN
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: outbox length: %w", err)
	}
	return n, nil
}

// Committed returns a channel that receives a value after a commit that added events to the
// outbox. It has a buffer of one and the store never blocks on it, so several commits may
// yield one signal: on a signal the relay reads PendingEventsAfter until it has seen everything. The
// channel is never closed.
func (db *DB) Committed() <-chan struct{} { return db.committed }

func (db *DB) signalCommitted() {
	select {
	case db.committed <- struct{}{}:
	default:
	}
}

// appendOnlyFill is the page fill of buckets written only at the end of their key space
// (the access log, the outbox). bbolt's default of 0.5 leaves such pages half empty forever.
const appendOnlyFill = 0.95
