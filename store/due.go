package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/domain"
)

// Deadline alerts (domain/watch.go): what the watcher still has to fire, what it has fired,
// and the overdue list. Their buckets and keys:
//
//	due       type D8 id16 which        → 0x01
//	fired     id16 which type D8        → 0x01
//	watching  id16                      → the referral's open deadlines: per which (ack,
//	                                      respond) a presence byte and D8
//	index     "v" org 0x00 dir 0x00 id16 → kind 0x00 urgency 0x00 status (the overdue list)
//
// type is 'w' (deadline_warning) or 'o' (overdue); which is 'a' (acknowledge_by) or 'r'
// (respond_by); D8 is the deadline's value, Unix nanoseconds as a big-endian uint64 with the
// sign bit flipped, so keys sort by time. The due index is ordered by deadline rather than by
// firing time: an overdue alert fires when the deadline has passed, and the watcher turns
// "warnings due now" into a deadline horizon (DeadlinePolicy.WarningHorizon), so the store
// needs no knowledge of the warning lead or the calendar, and a changed lead applies to the
// deadlines already waiting.
//
// syncAlerts keeps the entries of a referral in step with it in every transaction that writes
// the referral: due entries for each open deadline's alerts that have not fired for its
// current value, none for a met, moved or closed deadline (watching remembers the values
// entered, so the previous version need not be decoded); overdue-list entries, in the
// sender's outgoing and the recipient's incoming direction, while an open deadline's overdue
// alert has fired. A closed referral loses all of them, its fired markers included.
var (
	bucketDue      = []byte("due")
	bucketFired    = []byte("fired")
	bucketWatching = []byte("watching")

	alertBuckets = [][]byte{bucketDue, bucketFired, bucketWatching}
)

const (
	alertWarning = 'w'
	alertOverdue = 'o'
	whichAck     = 'a'
	whichRespond = 'r'

	dueKeyLen   = 1 + 8 + idLen + 1
	firedKeyLen = idLen + 1 + 1 + 8
	watchLen    = 2 * 9
)

var (
	alertTypes = [2]byte{alertWarning, alertOverdue}
	whiches    = [2]byte{whichAck, whichRespond}
	marker     = []byte{1}
)

// timeKey encodes t so that byte order is time order (before and after 1970).
func timeKey(t time.Time) uint64 { return uint64(t.UnixNano()) ^ (1 << 63) }

func keyTime(k uint64) time.Time { return time.Unix(0, int64(k^(1<<63))).UTC() }

func dueKey(typ byte, by uint64, id uuid.UUID, which byte) []byte {
	k := make([]byte, 0, dueKeyLen)
	k = append(k, typ)
	k = binary.BigEndian.AppendUint64(k, by)
	k = append(k, id[:]...)
	return append(k, which)
}

func firedKey(id uuid.UUID, which, typ byte, by uint64) []byte {
	k := make([]byte, 0, firedKeyLen)
	k = append(append(k, id[:]...), which, typ)
	return binary.BigEndian.AppendUint64(k, by)
}

// overduePrefix is the prefix of an organisation's overdue-list entries in one direction.
func overduePrefix(org domain.OrgID, dir byte) []byte {
	k := make([]byte, 0, 1+len(org)+3+idLen)
	k = append(k, 'v')
	k = append(k, org...)
	return append(k, 0, dir, 0)
}

func overdueValue(r *domain.Referral) []byte {
	return append(append(indexValue(r), 0), r.Status...)
}

// matchOverdue reports whether an overdue-list value matches f's kind, urgency and status.
func matchOverdue(f domain.ListFilter) func(v []byte) bool {
	return func(v []byte) bool {
		parts := bytes.SplitN(v, []byte{0}, 3)
		if len(parts) != 3 {
			return false
		}
		return (f.Kind == "" || string(parts[0]) == string(f.Kind)) &&
			(f.Urgency == "" || string(parts[1]) == string(f.Urgency)) &&
			(f.Status == "" || string(parts[2]) == string(f.Status))
	}
}

func whichOf(name string) (byte, bool) {
	switch name {
	case domain.DeadlineAcknowledge:
		return whichAck, true
	case domain.DeadlineRespond:
		return whichRespond, true
	}
	return 0, false
}

func whichName(w byte) string {
	if w == whichAck {
		return domain.DeadlineAcknowledge
	}
	return domain.DeadlineRespond
}

func alertTypeOf(t domain.EventType) (byte, bool) {
	switch t {
	case domain.EventDeadlineWarning:
		return alertWarning, true
	case domain.EventOverdue:
		return alertOverdue, true
	}
	return 0, false
}

// watchState is a referral's open deadlines as the due index holds them: [0] acknowledge_by,
// [1] respond_by.
type watchState [2]struct {
	open bool
	by   uint64
}

func watchOf(r *domain.Referral) watchState {
	var w watchState
	for _, d := range r.OpenDeadlines() {
		i := 0
		if d.Name == domain.DeadlineRespond {
			i = 1
		}
		w[i].open, w[i].by = true, timeKey(d.By)
	}
	return w
}

func decodeWatch(v []byte) (watchState, error) {
	var w watchState
	if v == nil {
		return w, nil
	}
	if len(v) != watchLen {
		return w, fmt.Errorf("malformed watch state of %d bytes", len(v))
	}
	for i := range w {
		w[i].open, w[i].by = v[i*9] == 1, binary.BigEndian.Uint64(v[i*9+1:])
	}
	return w, nil
}

func (w watchState) encode() []byte {
	v := make([]byte, 0, watchLen)
	for _, s := range w {
		b := byte(0)
		if s.open {
			b = 1
		}
		v = binary.BigEndian.AppendUint64(append(v, b), s.by)
	}
	return v
}

// openAlertBuckets creates the alert buckets. When they are new in a file that already holds
// referrals (written before the watcher existed), it derives every referral's entries once,
// so deadlines already waiting are watched too: O(referrals), at the first start only.
func openAlertBuckets(tx *bolt.Tx) error {
	backfill := tx.Bucket(bucketWatching) == nil
	for _, name := range alertBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	if !backfill {
		return nil
	}
	return tx.Bucket(bucketReferrals).ForEach(func(k, _ []byte) error {
		if len(k) != idLen {
			return nil
		}
		r, err := loadReferral(tx, uuid.UUID(k))
		if err != nil || r == nil {
			return err
		}
		return syncAlerts(tx, r)
	})
}

// syncAlerts brings r's due entries, overdue-list entries and watch state in step with r (see
// the layout above). It runs after every put of r, in the same transaction.
func syncAlerts(tx *bolt.Tx, r *domain.Referral) error {
	id, ok := parseID(r.ID)
	if !ok {
		return fmt.Errorf("store: sync alerts %q: id is not a UUID", r.ID)
	}
	due, fired, watching := tx.Bucket(bucketDue), tx.Bucket(bucketFired), tx.Bucket(bucketWatching)
	prev, err := decodeWatch(watching.Get(id[:]))
	if err != nil {
		return fmt.Errorf("store: sync alerts %s: %w", r.ID, err)
	}
	cur := watchOf(r)
	listed := false
	for i, which := range whiches {
		if p := prev[i]; p.open && (!cur[i].open || p.by != cur[i].by) {
			for _, typ := range alertTypes {
				if err := due.Delete(dueKey(typ, p.by, id, which)); err != nil {
					return fmt.Errorf("store: sync alerts %s: %w", r.ID, err)
				}
			}
		}
		if !cur[i].open {
			continue
		}
		for _, typ := range alertTypes {
			if fired.Get(firedKey(id, which, typ, cur[i].by)) != nil {
				listed = listed || typ == alertOverdue
				continue
			}
			if err := due.Put(dueKey(typ, cur[i].by, id, which), marker); err != nil {
				return fmt.Errorf("store: sync alerts %s: %w", r.ID, err)
			}
		}
	}
	idx := tx.Bucket(bucketIndex)
	for _, k := range [][]byte{withID(overduePrefix(r.Recipient, dirIncoming), id), withID(overduePrefix(r.Sender, dirOutgoing), id)} {
		if listed {
			err = idx.Put(k, overdueValue(r))
		} else {
			err = idx.Delete(k)
		}
		if err != nil {
			return fmt.Errorf("store: sync alerts %s: overdue list: %w", r.ID, err)
		}
	}
	if !cur[0].open && !cur[1].open {
		err = watching.Delete(id[:])
	} else if cur != prev {
		err = watching.Put(id[:], cur.encode())
	}
	if err != nil {
		return fmt.Errorf("store: sync alerts %s: %w", r.ID, err)
	}
	if r.Status.Terminal() {
		// A closed referral never reopens: its fired markers have done their work.
		c := fired.Cursor()
		for k, _ := c.Seek(id[:]); k != nil && bytes.HasPrefix(k, id[:]); k, _ = c.Seek(id[:]) {
			if err := c.Delete(); err != nil {
				return fmt.Errorf("store: sync alerts %s: %w", r.ID, err)
			}
		}
	}
	return nil
}

// settleAlerts records the alerts the watcher handled: each leaves the due index, a fired one
// gets its marker, and each referral's entries are synced again (an overdue alert puts it on
// the overdue list).
func settleAlerts(tx *bolt.Tx, alerts []domain.Alert) error {
	due, fired := tx.Bucket(bucketDue), tx.Bucket(bucketFired)
	var synced []uuid.UUID
	for _, a := range alerts {
		id, ok := parseID(a.ReferralID)
		which, okW := whichOf(a.Deadline)
		typ, okT := alertTypeOf(a.Type)
		if !ok || !okW || !okT {
			return fmt.Errorf("store: settle alert %q %s %s: invalid", a.ReferralID, a.Type, a.Deadline)
		}
		by := timeKey(a.By)
		if err := due.Delete(dueKey(typ, by, id, which)); err != nil {
			return fmt.Errorf("store: settle alert %s: %w", a.ReferralID, err)
		}
		if !a.Stale {
			if err := fired.Put(firedKey(id, which, typ, by), marker); err != nil {
				return fmt.Errorf("store: settle alert %s: %w", a.ReferralID, err)
			}
		}
		seen := false
		for _, s := range synced {
			seen = seen || s == id
		}
		if !seen {
			synced = append(synced, id)
		}
	}
	for _, id := range synced {
		r, err := loadReferral(tx, id)
		if err != nil {
			return err
		}
		if r == nil {
			continue
		}
		if err := syncAlerts(tx, r); err != nil {
			return err
		}
	}
	return nil
}

// dueAlerts reads the due index: warnings of deadlines at or before f.WarnBy (none if it is
// zero), then overdue alerts of deadlines before f.OverdueBefore, at most f.Max (at least 1)
// of each. It reads only the entries it returns, plus one, however many referrals there are.
func dueAlerts(tx *bolt.Tx, f domain.DueFilter) ([]domain.Alert, error) {
	limit := max(f.Max, 1)
	var out []domain.Alert
	c := tx.Bucket(bucketDue).Cursor()
	scan := func(typ byte, last uint64, inclusive bool) error {
		n := 0
		for k, _ := c.Seek([]byte{typ}); k != nil && k[0] == typ && n < limit; k, _ = c.Next() {
			if len(k) != dueKeyLen {
				return fmt.Errorf("store: due alerts: malformed key %x", k)
			}
			by := binary.BigEndian.Uint64(k[1:9])
			if by > last || (by == last && !inclusive) {
				break
			}
			a := domain.Alert{ReferralID: uuid.UUID(k[9 : 9+idLen]).String(), Deadline: whichName(k[dueKeyLen-1]),
				By: keyTime(by), Type: domain.EventDeadlineWarning}
			if typ == alertOverdue {
				a.Type = domain.EventOverdue
			}
			out = append(out, a)
			n++
		}
		return nil
	}
	if !f.WarnBy.IsZero() {
		if err := scan(alertWarning, timeKey(f.WarnBy), true); err != nil {
			return nil, err
		}
	}
	if !f.OverdueBefore.IsZero() {
		if err := scan(alertOverdue, timeKey(f.OverdueBefore), false); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DueAlerts returns the alerts f selects that have not fired yet (warnings first, then
// overdue alerts, each in deadline order), in a read transaction. The watcher uses it to see
// whether a write transaction is needed at all.
func (db *DB) DueAlerts(ctx context.Context, f domain.DueFilter) ([]domain.Alert, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []domain.Alert
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		out, err = dueAlerts(tx, f)
		return err
	})
	return out, err
}

// DueAlerts returns the alerts f selects that have not fired yet as the write transaction
// sees them.
func (t txView) DueAlerts(f domain.DueFilter) ([]domain.Alert, error) { return dueAlerts(t.tx, f) }

// ListOverdue returns one page of f.Org's overdue referrals in f.Direction, newest first:
// those whose overdue alert has fired for a deadline still unmet. Kind, urgency and status
// filters are checked against the list's entries, so only matching records are decoded.
// Paging, limits and errors are as List's.
func (db *DB) ListOverdue(ctx context.Context, f domain.ListFilter) (domain.Page, error) {
	if err := ctx.Err(); err != nil {
		return domain.Page{}, err
	}
	dir, limit, after, err := pageParams(f)
	if err != nil {
		return domain.Page{}, err
	}
	return db.page(overduePrefix(f.Org, dir), false, after, matchOverdue(f), limit)
}
