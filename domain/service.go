package domain

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Service is the application: it checks who may do what, applies the lifecycle and writes
// each command as one store transaction. It does no I/O of its own.
type Service struct {
	Store    Store
	Registry *Registry
	Clock    Clock
	Policy   *DeadlinePolicy
	// ClientKey maps an identity code to the keyed hash the client index uses.
	ClientKey func(personalID string) string
	// NewID returns a new time-ordered id (UUIDv7); nil means uuid.NewV7.
	NewID func() string
}

func (s *Service) newID() string {
	if s.NewID != nil {
		return s.NewID()
	}
	return uuid.Must(uuid.NewV7()).String()
}

// Command is a state-changing action on a referral with its input.
type Command struct {
	Action Action
	// IfVersion, when not 0, must equal the referral's version (If-Match) or EPrecondition.
	IfVersion      int
	Question       string // request_info
	Outcome        string // complete
	Feedback       string // complete, social_work_need
	Decision       string // complete, supplementary_support_handoff
	DecisionDate   string // complete, supplementary_support_handoff
	Reason         string // return, withdraw
	Text           string // complete, return, withdraw, forward
	ToMunicipality string // forward
}

// Create makes a referral from the actor's organisation. With an idempotency key, a repeat of
// the same request returns the referral the first one made (created false); the key reused
// with another request is EInvalid. Returns EForbidden if the actor's role may not send this
// kind, EInvalid with every field at fault.
func (s *Service) Create(ctx context.Context, actor Actor, req *CreateRequest, idemKey string) (ref *Referral, created bool, err error) {
	if _, ok := actor.CaseRole(); !ok {
		return nil, false, Errorf(EForbidden, "only Kela handlers and social workers send referrals")
	}
	recipient, err := s.validateCreate(actor.Org, req)
	if err != nil {
		return nil, false, err
	}
	if len(idemKey) > 128 {
		return nil, false, &Error{Code: EInvalid, Message: "Idempotency-Key must be at most 128 characters"}
	}
	hash := requestHash(req)
	err = s.Store.Update(ctx, func(tx Tx) (*Change, error) {
		now := s.Clock.Now().UTC()
		if idemKey != "" {
			rec, err := tx.Idempotency(actor.Org, idemKey)
			if err != nil {
				return nil, err
			}
			if rec != nil {
				if rec.RequestHash != hash {
					return nil, &Error{Code: EInvalid, Message: "Idempotency-Key was already used with a different request"}
				}
				if ref, err = tx.Referral(rec.ReferralID); err != nil {
					return nil, err
				}
				created = false
				// The replay shows the referral again: an access to log, not a change.
				e := newEntry(actor, AuditCreateReplay, ref, now)
				e.Disclosure = disclosure(ref, actor.Org, false)
				return &Change{Audit: []AuditEntry{e}}, nil
			}
		}
		r := &Referral{
			ID: s.newID(), Kind: req.Kind, Urgency: req.Urgency, Status: StatusSent,
			Sender: actor.Org, Recipient: recipient, KelaCaseRef: req.KelaCaseRef,
			CreatedAt: now, UpdatedAt: now, CreatedBy: actor.UserID, Version: 1,
			Client: *req.Client, SocialWorkNeed: req.SocialWorkNeed, SupplementarySupport: req.SupplementarySupport,
			ToKela: req.ToKela, DirectPayment: req.DirectPayment, JointMeeting: req.JointMeeting,
			ClientKey: s.ClientKey(req.Client.PersonalID),
		}
		r.Direction = KelaToCounty
		if actor.Org.IsCounty() {
			r.Direction = CountyToKela
		}
		s.Policy.Assign(r, now)
		ch := &Change{Referrals: []*Referral{r}}
		s.record(ch, r, actor, ActionCreate, "", "", "", now)
		ch.Events = append(ch.Events, newEvent(s.newID(), EventCreated, r, now))
		if idemKey != "" {
			ch.Idempotency = &IdempotencyRecord{Org: actor.Org, Key: idemKey, RequestHash: hash, ReferralID: r.ID, CreatedAt: now}
		}
		ref, created = r, true
		return ch, nil
	})
	if err != nil {
		return nil, false, err
	}
	return ref, created, nil
}

func requestHash(req *CreateRequest) string {
	b, _ := json.Marshal(req) // a struct of strings, slices and pointers cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// record appends the timeline entry and the access-log entry of one change to ch and counts
// it on r.
func (s *Service) record(ch *Change, r *Referral, actor Actor, a Action, from Status, reason, related string, at time.Time) {
	r.Timeline++
	role, _ := actor.CaseRole()
	ch.Timeline = append(ch.Timeline, TimelineEntry{
		ReferralID: r.ID, Seq: r.Timeline, At: at, Action: a, From: from, To: r.Status,
		ActorID: actor.UserID, ActorOrg: actor.Org, ActorRole: role, Reason: reason, Related: related,
	})
	ch.Audit = append(ch.Audit, changeEntry(r, actor, a, at))
}

// visible loads a referral the actor may read: ENotFound for another organisation's
// referral, so its existence is not revealed.
func visible(r *Referral, err error, actor Actor) (*Referral, Side, error) {
	if err != nil {
		return nil, "", err
	}
	side, ok := r.SideOf(actor.Org)
	if !ok {
		return nil, "", Errorf(ENotFound, "referral not found")
	}
	return r, side, nil
}

// Get returns one referral the actor's organisation sent or received. ENotFound otherwise.
func (s *Service) Get(ctx context.Context, actor Actor, id string) (*Referral, error) {
	if !actor.CanRead() {
		return nil, Errorf(EForbidden, "your role may not read referrals")
	}
	r, err := s.Store.Referral(ctx, id)
	r, _, err = visible(r, err, actor)
	return r, err
}

// List returns one page of the actor's organisation's referrals.
func (s *Service) List(ctx context.Context, actor Actor, f ListFilter) (Page, error) {
	if !actor.CanRead() {
		return Page{}, Errorf(EForbidden, "your role may not read referrals")
	}
	f.Org = actor.Org
	return s.Store.List(ctx, f)
}

// Timeline returns every change of a referral the actor may read.
func (s *Service) Timeline(ctx context.Context, actor Actor, id string) ([]TimelineEntry, error) {
	if _, err := s.Get(ctx, actor, id); err != nil {
		return nil, err
	}
	return s.Store.Timeline(ctx, id)
}

// Messages returns the thread of a referral the actor may read.
func (s *Service) Messages(ctx context.Context, actor Actor, id string) ([]Message, error) {
	if _, err := s.Get(ctx, actor, id); err != nil {
		return nil, err
	}
	return s.Store.Messages(ctx, id)
}

// SearchClient returns the referrals about the person with the identity code that the actor's
// organisation sent or received. EInvalid if the code is not valid.
func (s *Service) SearchClient(ctx context.Context, actor Actor, personalID string) ([]*Referral, error) {
	if !actor.CanRead() {
		return nil, Errorf(EForbidden, "your role may not read referrals")
	}
	if err := CheckPersonalID(personalID); err != nil {
		var v Violations
		v.Add("/personal_id", "is not a valid Finnish personal identity code: %s", err.Error())
		return nil, v.Err("the search is invalid")
	}
	all, err := s.Store.ClientReferrals(ctx, s.ClientKey(personalID))
	if err != nil {
		return nil, err
	}
	out := []*Referral{}
	for _, r := range all {
		if _, ok := r.SideOf(actor.Org); ok {
			out = append(out, r)
		}
	}
	return out, nil
}
