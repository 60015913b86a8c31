package domain

// Status is the state of a referral (DOMAIN §6).
type Status string

// States.
const (
	StatusSent          Status = "sent"
	StatusReceived      Status = "received"
	StatusInProgress    Status = "in_progress"
	StatusInfoRequested Status = "info_requested"
	StatusCompleted     Status = "completed"
	StatusReturned      Status = "returned"
	StatusWithdrawn     Status = "withdrawn"
	StatusForwarded     Status = "forwarded"
)

// Statuses lists every state.
var Statuses = []Status{StatusSent, StatusReceived, StatusInProgress, StatusInfoRequested,
	StatusCompleted, StatusReturned, StatusWithdrawn, StatusForwarded}

// Valid reports whether s is a known state.
func (s Status) Valid() bool {
	for _, x := range Statuses {
		if x == s {
			return true
		}
	}
	return false
}

// Terminal reports whether no further transition is possible from s.
func (s Status) Terminal() bool {
	switch s {
	case StatusCompleted, StatusReturned, StatusWithdrawn, StatusForwarded:
		return true
	}
	return false
}

// Bounce reports whether reaching s passes the client on ("pompottelu").
func (s Status) Bounce() bool { return s == StatusReturned || s == StatusForwarded }

// Action is something a party does to a referral.
type Action string

// Actions. ActionCreate and ActionMessage appear only in timelines; ActionAnswer is the
// sender's message to an info_requested referral.
const (
	ActionCreate      Action = "create"
	ActionReceive     Action = "receive"
	ActionStart       Action = "start"
	ActionRequestInfo Action = "request_info"
	ActionAnswer      Action = "answer"
	ActionComplete    Action = "complete"
	ActionReturn      Action = "return"
	ActionWithdraw    Action = "withdraw"
	ActionForward     Action = "forward"
	ActionMessage     Action = "message"
)

// Side is the part an organisation plays in one referral.
type Side string

// Sides.
const (
	SenderSide    Side = "sender"
	RecipientSide Side = "recipient"
)

// transition is one row of the lifecycle table.
type transition struct {
	from   []Status
	to     Status // "" for ActionAnswer: back to ResumeStatus
	side   Side
	county bool // only a county recipient may do it (forward)
}

// lifecycle is the table of DOMAIN §6. It is the single source of truth for who may move a
// referral from which state to which.
var lifecycle = map[Action]transition{
	ActionReceive:     {from: []Status{StatusSent}, to: StatusReceived, side: RecipientSide},
	ActionStart:       {from: []Status{StatusReceived}, to: StatusInProgress, side: RecipientSide},
	ActionRequestInfo: {from: []Status{StatusSent, StatusReceived, StatusInProgress}, to: StatusInfoRequested, side: RecipientSide},
	ActionAnswer:      {from: []Status{StatusInfoRequested}, side: SenderSide},
	ActionComplete:    {from: []Status{StatusReceived, StatusInProgress}, to: StatusCompleted, side: RecipientSide},
	ActionReturn:      {from: []Status{StatusSent, StatusReceived}, to: StatusReturned, side: RecipientSide},
	ActionWithdraw:    {from: []Status{StatusSent, StatusReceived, StatusInfoRequested}, to: StatusWithdrawn, side: SenderSide},
	ActionForward:     {from: []Status{StatusSent, StatusReceived}, to: StatusForwarded, side: RecipientSide, county: true},
}

// transitionActions is the order in which allowed actions are listed.
var transitionActions = []Action{ActionReceive, ActionStart, ActionRequestInfo, ActionAnswer,
	ActionComplete, ActionReturn, ActionWithdraw, ActionForward}

// TransitionActions returns every action that changes a referral's state.
func TransitionActions() []Action { return append([]Action(nil), transitionActions...) }

// Allowed returns the state-changing actions the party on side may take on r now. A sender's
// answer to an info request is taken by posting a message, so ActionAnswer is listed for it.
func (r *Referral) Allowed(side Side) []Action {
	var out []Action
	for _, a := range transitionActions {
		if _, err := r.next(a, side); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// next returns the state action leads to from r's state when taken by side, or an
// EConflict error listing what side may do instead.
func (r *Referral) next(a Action, side Side) (Status, error) {
	t, ok := lifecycle[a]
	if !ok {
		return "", Errorf(EInvalid, "unknown action %q", a)
	}
	if t.side != side || (t.county && !r.Recipient.IsCounty()) {
		return "", &Error{Code: EConflict, Message: "the " + string(side) + " may not " + actionVerb(a) + " this referral"}
	}
	for _, from := range t.from {
		if from == r.Status {
			if a == ActionAnswer {
				return r.ResumeStatus, nil
			}
			return t.to, nil
		}
	}
	return "", &Error{Code: EConflict, Message: "cannot " + actionVerb(a) + " a referral in state " + string(r.Status)}
}

// Next returns the state action a leads to when taken by side, or an EConflict *Error whose
// Allowed field lists the actions side may take instead.
func (r *Referral) Next(a Action, side Side) (Status, error) {
	to, err := r.next(a, side)
	if e, ok := err.(*Error); ok && e.Code == EConflict {
		e.Allowed = r.Allowed(side)
		if e.Allowed == nil {
			e.Allowed = []Action{}
		}
	}
	return to, err
}

func actionVerb(a Action) string {
	switch a {
	case ActionRequestInfo:
		return "request information on"
	case ActionAnswer:
		return "answer an information request on"
	}
	return string(a)
}

// Role is what a user may do within their organisation.
type Role string

// Roles carried in the token.
const (
	RoleKelaHandler  Role = "kela_handler"
	RoleSocialWorker Role = "social_worker"
	RoleSupervisor   Role = "supervisor"
	RoleAuditor      Role = "auditor"
	// RoleOperator runs the service: backups and other administration. It gives no access to
	// referrals through the case API; the HTTP layer decides which organisation's operators
	// may do what (see api/admin.go).
	RoleOperator Role = "operator"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	switch r {
	case RoleKelaHandler, RoleSocialWorker, RoleSupervisor, RoleAuditor, RoleOperator:
		return true
	}
	return false
}

// Actor is the authenticated user a command or query is made for.
type Actor struct {
	UserID string
	Name   string
	Org    OrgID
	Roles  []Role
}

// Has reports whether the actor holds role.
func (a Actor) Has(role Role) bool {
	for _, r := range a.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// CaseRole returns the role with which the actor handles referrals for its organisation:
// kela_handler at Kela, social_worker in a county. ok is false if the actor has not got it.
func (a Actor) CaseRole() (Role, bool) {
	want := RoleSocialWorker
	if a.Org.IsKela() {
		want = RoleKelaHandler
	}
	return want, a.Has(want)
}

// CanRead reports whether the actor may read referrals of its organisation.
func (a Actor) CanRead() bool {
	_, handler := a.CaseRole()
	return handler || a.Has(RoleSupervisor)
}
