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
// With a status filter it scans the organisation's status range of the index; without one it
// merges all its status ranges by id (a dozen at most). Either way it reads from just below
// f.After downwards, so a page reads O(Limit) records. The kind and urgency filters are
// checked against the index entries while scanning: only matching records are decoded, but
// the scan visits index entries until the page is full, O(entries up to the last match) when
// matches are rare.
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
	match := func(v []byte) bool { return matchIndexValue(v, f.Kind, f.Urgency) }
	if f.Status == "" {
		return db.page(dirPrefix(f.Org, dir), true, after, match, limit)
	}
	return db.page(statusPrefix(f.Org, dir, f.Status), false, after, match, limit)
}

// statusRanges returns the prefixes of the status ranges present under prefix (an
// organisation's direction), one seek each.
func statusRanges(tx *bolt.Tx, prefix []byte) [][]byte {
	var out [][]byte
	c := tx.Bucket(bucketIndex).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); {
		i := bytes.IndexByte(k[len(prefix):], 0)
		if i < 0 { // not an entry of a status range; none are written
			k, _ = c.Next()
			continue
		}
		status := bytes.Clone(k[:len(prefix)+i+1])
		out = append(out, status)
		k, _ = c.Seek(prefixEnd(status))
	}
	return out
}

// page reads up to limit referrals of the index entries under prefix that match, newest
// first, starting below after; Next is set when more may follow. With statuses, prefix is an
// organisation's direction and its status ranges are merged.
func (db *DB) page(prefix []byte, statuses bool, after *uuid.UUID, match func(v []byte) bool, limit int) (domain.Page, error) {
	page := domain.Page{Items: make([]*domain.Referral, 0, min(limit, 16))}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		prefixes := [][]byte{prefix}
		if statuses {
			prefixes = statusRanges(tx, prefix)
		}
		more, err := scanNewestFirst(tx, db.records.load, prefixes, after, match, limit,
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
		_, err := scanNewestFirst(tx, loadReferral, [][]byte{clientPrefix(key)}, nil, nil, -1,
			func(r *domain.Referral) { out = append(out, r) })
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scanNewestFirst walks the index entries prefix+id16 of every prefix, merged by id, from just
// below after (or from the newest) downwards, and calls emit with the referral of each entry
// whose value match accepts (nil accepts all), at most limit times (limit < 0: no limit), the
// referral decoded by load. It reports whether a further matching entry follows the last
// emitted one; that entry's record is not read.
func scanNewestFirst(tx *bolt.Tx, load func(*bolt.Tx, uuid.UUID) (*domain.Referral, error), prefixes [][]byte, after *uuid.UUID, match func(v []byte) bool,
	limit int, emit func(*domain.Referral)) (more bool, err error) {
	heads := make([]rangeCursor, len(prefixes))
	for i, p := range prefixes {
		heads[i] = rangeCursor{c: tx.Bucket(bucketIndex).Cursor(), prefix: p}
		heads[i].start(after)
	}
	n := 0
	var last []byte
	for {
		h := newestHead(heads)
		if h == nil {
			return false, nil
		}
		// An id in two ranges would be an index out of step with its record: show it once.
		if id := h.id(); !bytes.Equal(id, last) && (match == nil || match(h.v)) {
			if limit >= 0 && n == limit {
				return true, nil
			}
			r, err := load(tx, uuid.UUID(id))
			if err != nil {
				return false, err
			}
			if r == nil {
				return false, fmt.Errorf("store: index entry %x names a missing referral %s", h.k, uuid.UUID(id))
			}
			emit(r)
			n++
			last = id
		}
		h.next()
	}
}

// rangeCursor walks the entries prefix+id16 of one index range downwards; k is nil when the
// range is done.
type rangeCursor struct {
	c      *bolt.Cursor
	prefix []byte
	k, v   []byte
}

// start moves to the range's newest entry below after, or its newest when after is nil.
func (rc *rangeCursor) start(after *uuid.UUID) {
	var from []byte
	if after != nil {
		from = append(bytes.Clone(rc.prefix), after[:]...)
	} else {
		from = prefixEnd(rc.prefix)
	}
	var k, v []byte
	if from == nil {
		k, v = rc.c.Last()
	} else if k, _ = rc.c.Seek(from); k == nil {
		k, v = rc.c.Last()
	} else {
		k, v = rc.c.Prev()
	}
	rc.settle(k, v)
}

func (rc *rangeCursor) next() { rc.settle(rc.c.Prev()) }

// settle stops at the first entry of the range from k downwards, skipping keys of another
// shape (none are written).
func (rc *rangeCursor) settle(k, v []byte) {
	for ; k != nil && bytes.HasPrefix(k, rc.prefix); k, v = rc.c.Prev() {
		if len(k) == len(rc.prefix)+idLen {
			rc.k, rc.v = k, v
			return
		}
	}
	rc.k, rc.v = nil, nil
}

func (rc *rangeCursor) id() []byte { return rc.k[len(rc.prefix):] }

// newestHead returns the cursor whose entry has the greatest id, or nil when all are done.
func newestHead(heads []rangeCursor) *rangeCursor {
	var best *rangeCursor
	for i := range heads {
		if h := &heads[i]; h.k != nil && (best == nil || bytes.Compare(h.id(), best.id()) > 0) {
			best = h
		}
	}
	return best
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
