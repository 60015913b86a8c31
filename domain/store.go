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
	// Update runs fn in a write transaction and commits what it returns. fn may be called
	// more than once (group commit retries) and so must depend only on what it reads through
	// tx. An error from fn aborts the transaction and is returned as it is.
	Update(ctx context.Context, fn func(tx Tx) (*Change, error)) error
}

// Tx is what a command may read inside its write transaction.
type Tx interface {
	// Referral returns the referral with id, or ENotFound.
	Referral(id string) (*Referral, error)
	// Idempotency returns the record of an earlier create with the key, or nil.
	Idempotency(org OrgID, key string) (*IdempotencyRecord, error)
}

// Change is everything one command writes.
type Change struct {
	Referrals   []*Referral // inserted or replaced; indexes follow
	Timeline    []TimelineEntry
	Messages    []Message
	Events      []Event
	Idempotency *IdempotencyRecord
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
