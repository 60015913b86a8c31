package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/domain"
)

// Buckets and their keys. id16 is the 16 raw bytes of a UUIDv7, so keys holding it sort by
// creation time; seq is a big-endian uint64; 0x00 separates variable-length parts, which
// therefore may not contain 0x00 (writes refuse them).
//
//	referrals    id16                                  → referralRecord (JSON)
//	index        "s" org 0x00 dir 0x00 status 0x00 id16 → kind 0x00 urgency
//	             "c" clientKey 0x00 id16               → kind 0x00 urgency
//	             "v" org 0x00 dir 0x00 id16            → kind 0x00 urgency 0x00 status (overdue list, due.go)
//	timeline     id16 seq                              → domain.TimelineEntry (JSON)
//	messages     id16 messageID16                      → domain.Message (JSON)
//	idempotency  org 0x00 key                          → domain.IdempotencyRecord (JSON)
//	outbox       seq (bucket.NextSequence)             → domain.Event (JSON)
//
// The deadline watcher's buckets (due, fired, watching) are laid out in due.go, the report
// aggregates (stats, stats_clients, stats_meta) in stats.go, the access log and its indexes in
// audit.go, the closure index of the retention job in retention.go, the file's layout version
// (store_meta) in layout.go. Record and message values are sealed with AES-256-GCM when a
// keyring is configured (crypt.go).
//
// dir is 'i' in the recipient's entries (incoming) and 'o' in the sender's (outgoing). The
// index values let List filter by kind and urgency without decoding records. A list without a
// status filter merges the organisation's status ranges (list.go). Files written before
// 23 Nov 2026 also held "o" org 0x00 dir 0x00 id16 entries (every status in one range): two
// more inserts per create, 12–19 % of the pages a create writes; Open deletes them
// (dropLegacyOrgIndex).
var (
	bucketReferrals   = []byte("referrals")
	bucketIndex       = []byte("index")
	bucketTimeline    = []byte("timeline")
	bucketMessages    = []byte("messages")
	bucketIdempotency = []byte("idempotency")
	bucketOutbox      = []byte("outbox")

	buckets = [][]byte{bucketReferrals, bucketIndex, bucketTimeline, bucketMessages,
		bucketIdempotency, bucketOutbox}
)

const (
	dirIncoming = 'i'
	dirOutgoing = 'o'
	idLen       = 16
)

// errNUL is returned when a key part that is separated by 0x00 contains 0x00.
var errNUL = errors.New("key part contains a NUL byte")

// parseID returns the raw bytes of a canonical 36-character UUID string.
func parseID(s string) (uuid.UUID, bool) {
	if len(s) != 36 {
		return uuid.UUID{}, false
	}
	u, err := uuid.Parse(s)
	return u, err == nil
}

func hasNUL(s string) bool { return strings.IndexByte(s, 0) >= 0 }

// dirPrefix is the prefix of an organisation's index entries in one direction, every status.
func dirPrefix(org domain.OrgID, dir byte) []byte {
	k := make([]byte, 0, 1+len(org)+3+32+idLen)
	k = append(k, 's')
	k = append(k, org...)
	return append(k, 0, dir, 0)
}

// statusPrefix is the prefix of an organisation's index entries in one direction and state.
func statusPrefix(org domain.OrgID, dir byte, status domain.Status) []byte {
	return append(append(dirPrefix(org, dir), status...), 0)
}

// clientPrefix is the prefix of a client's index entries.
func clientPrefix(clientKey string) []byte {
	k := make([]byte, 0, 1+len(clientKey)+1+idLen)
	k = append(k, 'c')
	k = append(k, clientKey...)
	return append(k, 0)
}

// withID returns prefix followed by id. It may reuse prefix's spare capacity, so callers pass
// a prefix they do not use again.
func withID(prefix []byte, id uuid.UUID) []byte { return append(prefix, id[:]...) }

// indexKeys returns every index key of the referral r with id.
func indexKeys(r *domain.Referral, id uuid.UUID) [][]byte {
	keys := [][]byte{
		withID(statusPrefix(r.Recipient, dirIncoming, r.Status), id),
		withID(statusPrefix(r.Sender, dirOutgoing, r.Status), id),
	}
	if r.ClientKey != "" {
		keys = append(keys, withID(clientPrefix(r.ClientKey), id))
	}
	return keys
}

// indexValue is the value of r's index entries: its kind and urgency, for filtering.
func indexValue(r *domain.Referral) []byte {
	v := make([]byte, 0, len(r.Kind)+1+len(r.Urgency))
	v = append(v, r.Kind...)
	v = append(v, 0)
	return append(v, r.Urgency...)
}

// matchIndexValue reports whether an index value matches the kind and urgency filters; an
// empty filter matches anything.
func matchIndexValue(v []byte, kind domain.Kind, urgency domain.Urgency) bool {
	if kind == "" && urgency == "" {
		return true
	}
	i := bytes.IndexByte(v, 0)
	if i < 0 {
		return false
	}
	return (kind == "" || string(v[:i]) == string(kind)) &&
		(urgency == "" || string(v[i+1:]) == string(urgency))
}

// seqKey is a big-endian uint64, so keys sort numerically.
func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq) }

// timelineKey is id16 followed by the entry's big-endian seq.
func timelineKey(id uuid.UUID, seq int) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, idLen+8), id[:]...), uint64(seq))
}

// messageKey is the referral's id16 followed by the message's id16.
func messageKey(referral, message uuid.UUID) []byte {
	return append(append(make([]byte, 0, 2*idLen), referral[:]...), message[:]...)
}

// idempotencyKey is org 0x00 key.
func idempotencyKey(org domain.OrgID, key string) []byte {
	k := make([]byte, 0, len(org)+1+len(key))
	k = append(k, org...)
	k = append(k, 0)
	return append(k, key...)
}

// prefixEnd returns the smallest key greater than every key with prefix, or nil if there is
// none (prefix is all 0xFF).
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xFF {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// legacyOrgIndex starts the index entries of the old layout: "o" org 0x00 dir 0x00 id16.
const legacyOrgIndex = 'o'

// legacyDropBatch is how many old entries one transaction deletes: a 1 M-referral file holds
// 2 M, too many dirty pages for one transaction's memory.
const legacyDropBatch = 50_000

// dropLegacyOrgIndex deletes the index's "o" entries, written before 23 Nov 2026, and returns
// how many it deleted. A file without any costs one read transaction, no commit.
func dropLegacyOrgIndex(bdb *bolt.DB) (int, error) {
	total := 0
	for {
		var keys [][]byte
		collect := func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketIndex).Cursor()
			for k, _ := c.Seek([]byte{legacyOrgIndex}); k != nil && k[0] == legacyOrgIndex && len(keys) < legacyDropBatch; k, _ = c.Next() {
				keys = append(keys, bytes.Clone(k))
			}
			return nil
		}
		if err := bdb.View(collect); err != nil {
			return total, err
		}
		if len(keys) == 0 {
			return total, nil
		}
		err := bdb.Update(func(tx *bolt.Tx) error {
			idx := tx.Bucket(bucketIndex)
			for _, k := range keys {
				if err := idx.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("drop the old organisation index: %w", err)
		}
		total += len(keys)
	}
}
