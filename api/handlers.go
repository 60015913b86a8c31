package api

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/kela-hva/referrals/domain"
	"github.com/labstack/echo/v4"
)

// auditAccess echoes a read or change of client data to the operational log: the user,
// organisation, action, referrals, purpose and request, never the client. The durable,
// hash-chained access log is written by the domain (changes) and logRead (reads), audit.go.
func auditAccess(audit *slog.Logger, c echo.Context, action string, ids ...string) {
	if len(ids) == 0 {
		return
	}
	a := actorOf(c)
	purpose := c.Request().Header.Get("X-Purpose")
	if !plainToken(purpose, 64) {
		purpose = ""
	}
	audit.LogAttrs(c.Request().Context(), slog.LevelInfo, "client data access",
		slog.String("audit", action), slog.String("user", a.UserID), slog.String("org", string(a.Org)),
		slog.Any("roles", a.Roles), slog.Any("referrals", ids), slog.String("purpose", purpose),
		slog.String("request_id", requestID(c)))
}

func handleHealthz() echo.HandlerFunc {
	return func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	}
}

func handleReadyz(ready Readiness) echo.HandlerFunc {
	return func(c echo.Context) error {
		if ready == nil {
			return c.JSON(http.StatusOK, map[string]any{"status": "ready", "checks": map[string]string{}})
		}
		status, checks := ready(c.Request().Context())
		code := http.StatusOK
		if status == Unavailable {
			code = http.StatusServiceUnavailable
		}
		return c.JSON(code, map[string]any{"status": status, "checks": checks})
	}
}

func handleSpec(spec []byte) echo.HandlerFunc {
	return func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/yaml", spec)
	}
}

func handleCreate(s *domain.Service, audit *slog.Logger) echo.HandlerFunc {
	return func(c echo.Context) error {
		var req domain.CreateRequest
		if err := decode(c, &req, false); err != nil {
			return err
		}
		r, created, err := s.Create(c.Request().Context(), actorOf(c), &req, c.Request().Header.Get("Idempotency-Key"))
		if err != nil {
			return err
		}
		auditAccess(audit, c, "create", r.ID)
		h := c.Response().Header()
		h.Set(echo.HeaderLocation, "/v1/referrals/"+r.ID)
		h.Set("ETag", etag(r))
		if !created {
			h.Set("Idempotent-Replayed", "true")
		}
		return c.JSON(http.StatusCreated, r)
	}
}

func handleGet(s *domain.Service, audit *slog.Logger) echo.HandlerFunc {
	return func(c echo.Context) error {
		r, err := s.Get(c.Request().Context(), actorOf(c), c.Param("id"))
		if err != nil {
			return err
		}
		if err := logRead(c, s, domain.AuditRead, r); err != nil { // audit.go: the access log
			return err
		}
		auditAccess(audit, c, "read", r.ID)
		c.Response().Header().Set("ETag", etag(r))
		return c.JSON(http.StatusOK, r)
	}
}

// listResponse is one page of referrals.
type listResponse struct {
	Items      []*domain.Referral `json:"items"`
	NextCursor string             `json:"next_cursor,omitempty"`
}

func handleList(s *domain.Service, audit *slog.Logger, cursors cursorCodec) echo.HandlerFunc {
	return func(c echo.Context) error {
		f, overdue, err := listFilter(c, cursors)
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		page, err := listPage(ctx, s, actorOf(c), f, overdue)
		if err != nil {
			return err
		}
		ids := make([]string, len(page.Items))
		for i, r := range page.Items {
			ids[i] = r.ID
		}
		if err := logRead(c, s, domain.AuditList, page.Items...); err != nil { // audit.go
			return err
		}
		auditAccess(audit, c, "list", ids...)
		if page.Items == nil {
			page.Items = []*domain.Referral{}
		}
		return c.JSON(http.StatusOK, listResponse{Items: page.Items, NextCursor: cursors.encode(actorOf(c).Org, f.Direction, page.Next)})
	}
}

// listPage reads one page of the caller's referrals; with overdue, of its overdue referrals,
// read from the overdue list: a referral is there once its overdue alert has fired and until
// the deadline is met, it closes or respond_by restarts (domain.Service.ListOverdue), so the
// list agrees with the overdue events.
func listPage(ctx context.Context, s *domain.Service, actor domain.Actor, f domain.ListFilter, overdue bool) (domain.Page, error) {
	if overdue {
		return s.ListOverdue(ctx, actor, f)
	}
	return s.List(ctx, actor, f)
}

func listFilter(c echo.Context, cursors cursorCodec) (domain.ListFilter, bool, error) {
	q := c.QueryParams()
	var v domain.Violations
	f := domain.ListFilter{Direction: domain.Incoming, Limit: 50}
	switch d := q.Get("direction"); d {
	case "", domain.Incoming:
	case domain.Outgoing:
		f.Direction = d
	default:
		v.Add("", "query parameter direction: must be incoming or outgoing")
	}
	if st := q.Get("status"); st != "" {
		if f.Status = domain.Status(st); !f.Status.Valid() {
			v.Add("", "query parameter status: unknown state")
		}
	}
	if k := q.Get("kind"); k != "" {
		if f.Kind = domain.Kind(k); !f.Kind.Valid() {
			v.Add("", "query parameter kind: unknown kind")
		}
	}
	if u := q.Get("urgency"); u != "" {
		if f.Urgency = domain.Urgency(u); !f.Urgency.Valid() {
			v.Add("", "query parameter urgency: must be normal or urgent")
		}
	}
	overdue := false
	switch q.Get("overdue") {
	case "", "false":
	case "true":
		overdue = true
	default:
		v.Add("", "query parameter overdue: must be true or false")
	}
	if n, ok := queryLimit(q, &v); ok {
		f.Limit = n
	}
	if len(v) > 0 {
		return f, false, &domain.Error{Code: domain.EMalformed, Message: "the query is invalid", Fields: v}
	}
	after, err := cursors.decode(actorOf(c).Org, f.Direction, q.Get("cursor"))
	f.After = after
	return f, overdue, err
}

// Bodies of the transitions; each refuses fields that are not its own.
type (
	emptyBody       struct{}
	requestInfoBody struct {
		Question string `json:"question"`
	}
	completeBody struct {
		Outcome      string `json:"outcome"`
		Feedback     string `json:"feedback,omitempty"`
		Decision     string `json:"decision,omitempty"`
		DecisionDate string `json:"decision_date,omitempty"`
		Text         string `json:"text,omitempty"`
	}
	reasonBody struct {
		Reason string `json:"reason"`
		Text   string `json:"text,omitempty"`
	}
	forwardBody struct {
		ToMunicipality string `json:"to_municipality"`
		Text           string `json:"text,omitempty"`
	}
)

// command decodes the body of a transition into a domain command.
func command(c echo.Context, a domain.Action) (domain.Command, error) {
	cmd := domain.Command{Action: a}
	var err error
	switch a {
	case domain.ActionReceive, domain.ActionStart:
		err = decode(c, &emptyBody{}, true)
	case domain.ActionRequestInfo:
		var b requestInfoBody
		err = decode(c, &b, false)
		cmd.Question = b.Question
	case domain.ActionComplete:
		var b completeBody
		err = decode(c, &b, false)
		cmd.Outcome, cmd.Feedback, cmd.Decision, cmd.DecisionDate, cmd.Text = b.Outcome, b.Feedback, b.Decision, b.DecisionDate, b.Text
	case domain.ActionReturn, domain.ActionWithdraw:
		var b reasonBody
		err = decode(c, &b, false)
		cmd.Reason, cmd.Text = b.Reason, b.Text
	case domain.ActionForward:
		var b forwardBody
		err = decode(c, &b, false)
		cmd.ToMunicipality, cmd.Text = b.ToMunicipality, b.Text
	}
	if err != nil {
		return cmd, err
	}
	cmd.IfVersion, err = ifMatch(c)
	return cmd, err
}

func handleTransition(s *domain.Service, audit *slog.Logger, a domain.Action) echo.HandlerFunc {
	return func(c echo.Context) error {
		cmd, err := command(c, a)
		if err != nil {
			return err
		}
		r, err := s.Act(c.Request().Context(), actorOf(c), c.Param("id"), cmd)
		if err != nil {
			return err
		}
		return answerChanged(c, audit, string(a), r)
	}
}

// answerChanged answers a change of a referral (a transition or a message) with the updated
// referral: 200, its ETag, and the access echoed to the operational log as action. The
// change's durable access-log entry was written by the domain with the change itself.
func answerChanged(c echo.Context, audit *slog.Logger, action string, r *domain.Referral) error {
	auditAccess(audit, c, action, r.ID)
	c.Response().Header().Set("ETag", etag(r))
	return c.JSON(http.StatusOK, r)
}

type messageBody struct {
	Text string `json:"text"`
}

// itemsResponse wraps a list that is not paged.
type itemsResponse[T any] struct {
	Items []T `json:"items"`
}

func handleAddMessage(s *domain.Service, audit *slog.Logger) echo.HandlerFunc {
	return func(c echo.Context) error {
		var b messageBody
		if err := decode(c, &b, false); err != nil {
			return err
		}
		version, err := ifMatch(c)
		if err != nil {
			return err
		}
		// Like a transition, a message answers with the updated referral (DOMAIN §9): the
		// sender's answer to an info request moves it back and restarts respond_by.
		_, r, err := s.AddMessage(c.Request().Context(), actorOf(c), c.Param("id"), b.Text, version)
		if err != nil {
			return err
		}
		return answerChanged(c, audit, "message", r)
	}
}

func handleMessages(s *domain.Service, audit *slog.Logger) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, actor := c.Request().Context(), actorOf(c)
		// The referral names the parties and the legal basis for the access log.
		r, err := s.Get(ctx, actor, c.Param("id"))
		if err != nil {
			return err
		}
		ms, err := s.Messages(ctx, actor, r.ID)
		if err != nil {
			return err
		}
		if err := logRead(c, s, domain.AuditReadMessages, r); err != nil { // audit.go
			return err
		}
		auditAccess(audit, c, "read_messages", c.Param("id"))
		if ms == nil {
			ms = []domain.Message{}
		}
		return c.JSON(http.StatusOK, itemsResponse[domain.Message]{Items: ms})
	}
}

func handleTimeline(s *domain.Service, audit *slog.Logger) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, actor := c.Request().Context(), actorOf(c)
		r, err := s.Get(ctx, actor, c.Param("id")) // for the access log, as in handleMessages
		if err != nil {
			return err
		}
		tl, err := s.Timeline(ctx, actor, r.ID)
		if err != nil {
			return err
		}
		if err := logRead(c, s, domain.AuditReadTimeline, r); err != nil { // audit.go
			return err
		}
		auditAccess(audit, c, "read_timeline", c.Param("id"))
		if tl == nil {
			tl = []domain.TimelineEntry{}
		}
		return c.JSON(http.StatusOK, itemsResponse[domain.TimelineEntry]{Items: tl})
	}
}

type clientSearchBody struct {
	PersonalID string `json:"personal_id"`
}

type clientSearchResponse struct {
	Items []*domain.Referral `json:"items"`
	// Bounces is how many of the client's referrals were returned or forwarded.
	Bounces int `json:"bounces"`
}

func handleClientSearch(s *domain.Service, audit *slog.Logger) echo.HandlerFunc {
	return func(c echo.Context) error {
		var b clientSearchBody
		if err := decode(c, &b, false); err != nil {
			return err
		}
		rs, err := s.SearchClient(c.Request().Context(), actorOf(c), b.PersonalID)
		if err != nil {
			return err
		}
		out := clientSearchResponse{Items: rs}
		ids := make([]string, len(rs))
		for i, r := range rs {
			ids[i] = r.ID
			if r.Status.Bounce() {
				out.Bounces++
			}
		}
		if err := s.LogClientSearch(c.Request().Context(), actorOf(c), b.PersonalID, rs); err != nil { // audit.go
			return err
		}
		auditAccess(audit, c, "client_search", ids...)
		return c.JSON(http.StatusOK, out)
	}
}

func handleOrganisations(reg *domain.Registry) echo.HandlerFunc {
	return func(c echo.Context) error {
		return c.JSON(http.StatusOK, itemsResponse[domain.Organisation]{Items: reg.Organisations()})
	}
}

func handleMunicipalities(reg *domain.Registry) echo.HandlerFunc {
	return func(c echo.Context) error {
		return c.JSON(http.StatusOK, itemsResponse[domain.Municipality]{Items: reg.Municipalities()})
	}
}
