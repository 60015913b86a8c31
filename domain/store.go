package domain

import (
	"context"
	"time"
)

// Store keeps referrals durably. Every command is one Update: the referral, its timeline,
// messages, events (the outbox) and the idempotency key are written in one transaction.
type Store interface {
	// Referral returns the referral with id, or ENotFound.
	Referral(ctx context.Context, id string) (*Referral, error)
	// List returns one page of an organisation's referrals, newest first.
	List(ctx context.Context, f ListFilter) (Page, error)
	// Timeline returns every change of the referral, in order.
	Timeline(ctx context.Context, id string) ([]TimelineEntry, error)
	// Messages returns the referral's thread, oldest first.
	Messages(ctx context.Context, id string) ([]Message, error)
	// ClientReferrals returns the referrals whose ClientKey is key, newest first.
	ClientReferrals(ctx context.Context, key string) ([]*Referral, error)
	// AppendAudit appends entries to the access log in their own (group-committed)
	// transaction, setting their Seq and hash chain, and returns when they are durable.
	AppendAudit(ctx context.Context, entries []AuditEntry) error
	// Audit returns one page of the access log (AuditFilter).
	Audit(ctx context.Context, f AuditFilter) (AuditPage, error)
	// AuditOf returns the access-log entries of a client extract (ExtractFilter), in log order.
	AuditOf(ctx context.Context, f ExtractFilter) ([]AuditEntry, error)
	// Update runs fn in a write transaction and commits what it returns. fn may be called
	// more than once (group commit retries) and so must depend only on what it reads through
	// tx. An error from fn aborts the transaction and is returned as it is.
	Update(ctx context.Context, fn func(tx Tx) (*Change, error)) error
	// DueAlerts returns the deadline alerts f selects (a read-only look; see Tx.DueAlerts).
	DueAlerts(ctx context.Context, f DueFilter) ([]Alert, error)
	// ListOverdue returns one page of an organisation's referrals whose overdue alert has
	// fired for a deadline still unmet, newest first.
	ListOverdue(ctx context.Context, f ListFilter) (Page, error)
}

// Tx is what a command may read inside its write transaction.
type Tx interface {
	// Referral returns the referral with id, or ENotFound.
	Referral(id string) (*Referral, error)
	// Idempotency returns the record of an earlier create with the key, or nil.
	Idempotency(org OrgID, key string) (*IdempotencyRecord, error)
	// DueAlerts returns the alerts f selects that have not fired yet, in deadline order.
	DueAlerts(f DueFilter) ([]Alert, error)
}

// Change is everything one command writes.
type Change struct {
	Referrals   []*Referral // inserted or replaced; indexes follow
	Timeline    []TimelineEntry
	Messages    []Message
	Events      []Event
	Idempotency *IdempotencyRecord
	// Alerts are due deadline alerts the watcher handled (their events are in Events): each
	// leaves the due index and, unless Stale, is recorded as fired for its deadline value.
	Alerts []Alert
	// Audit is appended to the access log in the same transaction. Entries without a
	// Purpose or RequestID get those of the Update's context (WithAccess).
	Audit []AuditEntry
}

// IdempotencyRecord remembers which referral a create with an Idempotency-Key made, and a
// hash of its request so a reuse with another body is refused.
type IdempotencyRecord struct {
	Org         OrgID     `json:"org"`
	Key         string    `json:"key"`
	RequestHash string    `json:"request_hash"`
	ReferralID  string    `json:"referral_id"`
	CreatedAt   time.Time `json:"created_at"`
}

// Direction filters of a list, as the caller sees them.
const (
	Incoming = "incoming"
	Outgoing = "outgoing"
)

// ListFilter selects an organisation's referrals. Org and Direction are required.
type ListFilter struct {
	Org       OrgID
	Direction string // Incoming or Outgoing
	Status    Status
	Kind      Kind
	Urgency   Urgency
	// After is the id of the last item of the previous page; the page starts below it.
	After string
	Limit int
}

// Page is one page of a list. Next is the id to pass as After for the next page, "" at the end.
type Page struct {
	Items []*Referral
	Next  string
}

// Clock tells the service's business time. Tests and the dev clock inject their own.
type Clock interface {
	Now() time.Time
}

// ClockFunc adapts a function to Clock.
type ClockFunc func() time.Time

// Now calls f.
func (f ClockFunc) Now() time.Time { return f() }

// ReportStore keeps the response-time aggregates (see report.go) up to date in the same
// transaction as every referral write, and reads them without touching the referrals.
type ReportStore interface {
	// ReportCells calls fn with every aggregate cell of the months f.From..f.To that f selects,
	// in key order. The cell is only valid during the call (the store reuses it). An error
	// from fn stops the walk and is returned.
	ReportCells(ctx context.Context, f ReportCellFilter, fn func(*ReportCell) error) error
}

// ReportCellFilter selects aggregate cells: the months From..To (inclusive) and, unless Org is
// empty, only the cells where Org is the sender or the recipient.
type ReportCellFilter struct {
	From, To Month
	Org      OrgID
}
