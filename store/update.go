package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/kela-hva/referrals/domain"
)

// Update runs fn in a write transaction and commits the Change it returns: referrals with
// their index entries, timeline entries, messages, the idempotency record and the events,
// which go to the outbox in commit order.
//
// Update goes through group commit (commit.go): concurrent calls share one transaction and
// one fsync, and return when it is durable. Within a batch, fn sees what the calls before it
// wrote. If writing one call's Change fails, the batch is rolled back and the others run
// again, so fn may be called more than once; the Tx it is given is valid only until it
// returns.
//
// An error from fn is returned as it is and nothing of the call is written; the other calls
// of its batch are not disturbed. Update returns ctx.Err() if ctx is done before fn runs.
// Other errors are the store's own (wrapped with the operation, not *domain.Error), and
// nothing of the call is written.
func (db *DB) Update(ctx context.Context, fn func(tx domain.Tx) (*domain.Change, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// fnErr is the outcome of fn's last run. A failed fn has written nothing, so its run
	// returns nil to the batch: failing it would roll back and rerun the whole batch for
	// nothing. do returns after the last run (its result crosses a channel), so reading fnErr
	// afterwards is race-free.
	var fnErr error
	err := db.group.do(func(btx *bolt.Tx) error {
		fnErr = nil
		// A request that gave up while waiting for its batch does not commit.
		if err := ctx.Err(); err != nil {
			fnErr = err
			return nil
		}
		ch, err := fn(txView{btx})
		if err != nil {
			fnErr = err
			return nil
		}
		stampAccess(ctx, ch) // audit.go: the request's purpose and id on its log entries
		if err := db.write(btx, ch); err != nil {
			// Part of ch may be written: the transaction must not commit.
			return &writeError{err}
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err == nil {
		return nil
	}
	if we, ok := errors.AsType[*writeError](err); ok {
		return we.err
	}
	return fmt.Errorf("store: update: %w", err) // bbolt's own: commit, closed database
}

// setFill sets the page fill of the buckets whose keys mostly grow (a UUIDv7 first, or a
// sequence within a prefix) for the transaction: bbolt's default of 0.5 splits pages in half,
// so appending leaves every page half empty and a commit writes twice the pages. A little
// room stays for records that grow when updated. The index and the due index, where
// inserts land anywhere, keep the default.
func setFill(tx *bolt.Tx) {
	tx.Bucket(bucketReferrals).FillPercent = 0.9
	tx.Bucket(bucketTimeline).FillPercent = 0.9
	tx.Bucket(bucketWatching).FillPercent = 0.9
	tx.Bucket(bucketAuditIndex).FillPercent = appendOnlyFill
}

// observeAlerts tells an AlertObserver, once tx commits, of the warning and overdue events
// of the alerts ch fires.
func (db *DB) observeAlerts(tx *bolt.Tx, ch *domain.Change) {
	ao, ok := db.stats.observer.(AlertObserver)
	if !ok || len(ch.Alerts) == 0 {
		return
	}
	var fired []domain.Event
	for _, e := range ch.Events {
		if e.Type == domain.EventDeadlineWarning || e.Type == domain.EventOverdue {
			fired = append(fired, e)
		}
	}
	if len(fired) > 0 {
		tx.OnCommit(func() { ao.ObserveAlerts(fired) })
	}
}

// writeError carries a write error, already wrapped with its operation, through the batch.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// txView is the domain's read view of a write transaction.
type txView struct{ tx *bolt.Tx }

// Referral returns the referral with id as the transaction sees it, or ENotFound.
func (t txView) Referral(id string) (*domain.Referral, error) { return getReferral(t.tx, id) }

// Idempotency returns the record stored for org and key, or nil.
func (t txView) Idempotency(org domain.OrgID, key string) (*domain.IdempotencyRecord, error) {
	if hasNUL(string(org)) {
		return nil, nil
	}
	v := t.tx.Bucket(bucketIdempotency).Get(idempotencyKey(org, key))
	if v == nil {
		return nil, nil
	}
	var rec domain.IdempotencyRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("store: get idempotency record %s: %w", org, err)
	}
	return &rec, nil
}

// write stores everything ch holds in tx. A nil Change writes nothing.
func (db *DB) write(tx *bolt.Tx, ch *domain.Change) error {
	if ch == nil {
		return nil
	}
	setFill(tx)
	if err := db.updateStats(tx, ch.Referrals); err != nil { // stats.go: report aggregates, old vs new
		return err
	}
	for _, r := range ch.Referrals {
		if err := putReferral(tx, r); err != nil {
			return err
		}
		if err := syncAlerts(tx, r); err != nil { // due.go: deadline alerts follow the referral
			return err
		}
	}
	if err := settleAlerts(tx, ch.Alerts); err != nil {
		return err
	}
	db.observeAlerts(tx, ch)
	for i := range ch.Timeline {
		if err := putTimeline(tx, &ch.Timeline[i]); err != nil {
			return err
		}
	}
	for i := range ch.Messages {
		if err := putMessage(tx, &ch.Messages[i]); err != nil {
			return err
		}
	}
	if err := appendAudit(tx, ch.Audit); err != nil { // audit.go: the access log
		return err
	}
	if rec := ch.Idempotency; rec != nil {
		if rec.Org == "" || hasNUL(string(rec.Org)) {
			return fmt.Errorf("store: put idempotency record %q: invalid organisation", rec.Org)
		}
		v, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("store: put idempotency record %s: %w", rec.Org, err)
		}
		if err := tx.Bucket(bucketIdempotency).Put(idempotencyKey(rec.Org, rec.Key), v); err != nil {
			return fmt.Errorf("store: put idempotency record %s: %w", rec.Org, err)
		}
	}
	if len(ch.Events) > 0 {
		if err := putEvents(tx, ch.Events); err != nil {
			return err
		}
		// Runs only if this transaction commits; a rolled-back batch attempt registers nothing.
		tx.OnCommit(db.signalCommitted)
	}
	return nil
}
