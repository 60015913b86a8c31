package store

import (
	"bytes"
	"context"
	"fmt"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/domain"
)

// Page sizes of List.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// List returns one page of f.Org's referrals in f.Direction, newest first.
//
// Without a status filter it scans the organisation's direction index, with one the
// organisation's status index, from just below f.After downwards, so a page reads O(Limit)
// records. The kind and urgency filters are checked against the index entries while scanning:
// only matching records are decoded, but the scan visits index entries until the page is full,
// O(entries up to the last match) when matches are rare.
//
// Limit defaults to DefaultLimit and is capped at MaxLimit. Page.Next is the id of the last
// item when another matching referral follows, else "". It returns EMalformed for a missing
// organisation, an unknown direction or an After that is not a UUID.
func (db *DB) List(ctx context.Context, f domain.ListFilter) (domain.Page, error) {
	if err := ctx.Err(); err != nil {
		return domain.Page{}, err
	}
	dir, limit, after, err := pageParams(f)
	if err != nil {
		return domain.Page{}, err
	}
	if hasNUL(string(f.Status)) {
		return domain.Page{}, domain.Errorf(domain.EMalformed, "invalid status")
	}
	prefix := orgPrefix(f.Org, dir)
	if f.Status != "" {
		prefix = statusPrefix(f.Org, dir, f.Status)
	}

	return db.page(prefix, after, func(v []byte) bool { return matchIndexValue(v, f.Kind, f.Urgency) }, limit)
}

// page reads up to limit referrals of the index entries under prefix that match, newest
// first, starting below after; Next is set when more may follow.
func (db *DB) page(prefix []byte, after *uuid.UUID, match func(v []byte) bool, limit int) (domain.Page, error) {
	page := domain.Page{Items: make([]*domain.Referral, 0, min(limit, 16))}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		more, err := scanNewestFirst(tx, db.records.load, prefix, after, match, limit,
			func(r *domain.Referral) { page.Items = append(page.Items, r) })
		if more && len(page.Items) > 0 {
			page.Next = page.Items[len(page.Items)-1].ID
		}
		return err
	})
	if err != nil {
		return domain.Page{}, err
	}
	return page, nil
}

// ClientReferrals returns every referral whose ClientKey is key, newest first. An empty key
// matches nothing (referrals without a key are not indexed).
func (db *DB) ClientReferrals(ctx context.Context, key string) ([]*domain.Referral, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := []*domain.Referral{}
	if key == "" || hasNUL(key) {
		return out, nil
	}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		_, err := scanNewestFirst(tx, loadReferral, clientPrefix(key), nil, nil, -1,
			func(r *domain.Referral) { out = append(out, r) })
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scanNewestFirst walks the index entries prefix+id16 from just below after (or from the
// newest) downwards, and calls emit with the referral of each entry whose value match accepts
// (nil accepts all), at most limit times (limit < 0: no limit), the referral decoded by load. It reports whether a further
// matching entry follows the last emitted one; that entry's record is not read.
func scanNewestFirst(tx *bolt.Tx, load func(*bolt.Tx, uuid.UUID) (*domain.Referral, error), prefix []byte, after *uuid.UUID, match func(v []byte) bool,
	limit int, emit func(*domain.Referral)) (more bool, err error) {
	var start []byte
	if after != nil {
		start = append(bytes.Clone(prefix), after[:]...)
	} else {
		start = prefixEnd(prefix)
	}
	c := tx.Bucket(bucketIndex).Cursor()
	var k, v []byte
	if start == nil {
		k, v = c.Last()
	} else if k, _ = c.Seek(start); k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	n := 0
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
		if len(k) != len(prefix)+idLen || (match != nil && !match(v)) {
			continue
		}
		if limit >= 0 && n == limit {
			return true, nil
		}
		id := uuid.UUID(k[len(prefix):])
		r, err := load(tx, id)
		if err != nil {
			return false, err
		}
		if r == nil {
			return false, fmt.Errorf("store: index entry %x names a missing referral %s", k, id)
		}
		emit(r)
		n++
	}
	return false, nil
}

// pageParams reads what every paged list of an organisation needs from f: the index
// direction, the page size (DefaultLimit when unset, capped at MaxLimit) and the position
// after which the page starts. EMalformed for a missing organisation, an unknown direction or
// an After that is not a UUID.
func pageParams(f domain.ListFilter) (dir byte, limit int, after *uuid.UUID, err error) {
	switch f.Direction {
	case domain.Incoming:
		dir = dirIncoming
	case domain.Outgoing:
		dir = dirOutgoing
	default:
		return 0, 0, nil, domain.Errorf(domain.EMalformed, "invalid direction %q", f.Direction)
	}
	if f.Org == "" || hasNUL(string(f.Org)) {
		return 0, 0, nil, domain.Errorf(domain.EMalformed, "invalid organisation")
	}
	switch limit = f.Limit; {
	case limit <= 0:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}
	if f.After != "" {
		id, ok := parseID(f.After)
		if !ok {
			return 0, 0, nil, domain.Errorf(domain.EMalformed, "invalid cursor")
		}
		after = &id
	}
	return dir, limit, after, nil
}
