package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kela-hva/referrals/domain"
	"github.com/labstack/echo/v4"
)

// PurposeHeader carries why the caller uses client data: one of domain.Purposes. It is
// required on every operation that returns client data and is written to the access log.
const PurposeHeader = "X-Purpose"

// requirePurpose refuses a request without a known X-Purpose (400, naming the header) and
// puts the purpose and request id in the request context for the access log
// (domain.WithAccess). Routes that return client data use it.
func requirePurpose(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := domain.Purpose(c.Request().Header.Get(PurposeHeader))
		switch {
		case p == "":
			return purposeError("is required")
		case !p.Valid():
			codes := make([]string, len(domain.Purposes))
			for i, x := range domain.Purposes {
				codes[i] = string(x)
			}
			return purposeError("must be one of " + strings.Join(codes, ", "))
		}
		req := c.Request()
		c.SetRequest(req.WithContext(domain.WithAccess(req.Context(), domain.Access{Purpose: p, RequestID: requestID(c)})))
		return next(c)
	}
}

func purposeError(reason string) error {
	return &domain.Error{Code: domain.EMalformed, Message: "state why you use client data in the X-Purpose header",
		Fields: []domain.FieldError{{Pointer: "", Detail: "header parameter X-Purpose: " + reason}}}
}

// logRead writes the access-log entries of showing refs to the caller; handlers call it
// before writing the response, and an error stops the response.
func logRead(c echo.Context, s *domain.Service, action domain.AuditAction, refs ...*domain.Referral) error {
	return s.LogAccess(c.Request().Context(), actorOf(c), action, refs...)
}

// auditView returns entries as auditors see them: without the keyed client hash, which
// only the service needs.
func auditView(in []domain.AuditEntry) []domain.AuditEntry {
	out := make([]domain.AuditEntry, len(in))
	for i, e := range in {
		e.ClientKey = ""
		out[i] = e
	}
	return out
}

// auditPageResponse is one page of the access log.
type auditPageResponse struct {
	Items      []domain.AuditEntry `json:"items"`
	NextCursor string              `json:"next_cursor,omitempty"`
}

func handleAudit(s *domain.Service, cursors cursorCodec) echo.HandlerFunc {
	return func(c echo.Context) error {
		f, err := auditFilter(c)
		if err != nil {
			return err
		}
		org, query := actorOf(c).Org, auditQuery(f)
		if f.After, err = cursors.decodeAudit(org, query, f.After); err != nil {
			return err
		}
		page, err := s.AuditLog(c.Request().Context(), actorOf(c), f)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, auditPageResponse{Items: auditView(page.Items), NextCursor: cursors.encodeAudit(org, query, page.Next)})
	}
}

// auditQuery names what an access-log query pages through, for its cursors: a referral's
// entries, a user's, or the organisation's.
func auditQuery(f domain.AuditFilter) string {
	switch {
	case f.ReferralID != "":
		return "r\x00" + f.ReferralID
	case f.UserID != "":
		return "u\x00" + f.UserID
	}
	return "o"
}

// auditFilter reads GET /v1/audit's query: referral or user (not both), from, to, cursor,
// limit.
func auditFilter(c echo.Context) (domain.AuditFilter, error) {
	q := c.QueryParams()
	var v domain.Violations
	f := domain.AuditFilter{ReferralID: q.Get("referral"), UserID: q.Get("user"), After: q.Get("cursor")}
	if f.ReferralID != "" && f.UserID != "" {
		v.Add("", "query parameters referral and user: give one, not both")
	}
	if id, err := uuid.Parse(f.ReferralID); err == nil && len(f.ReferralID) == 36 {
		f.ReferralID = id.String() // the canonical lowercase form the log stores
	}
	if len(f.UserID) > 128 || strings.IndexByte(f.UserID, 0) >= 0 {
		v.Add("", "query parameter user: must be a user id of at most 128 characters")
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		name, dst := p.name, p.dst
		if s := q.Get(name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				v.Add("", "query parameter %s: must be an RFC 3339 date-time", name)
			}
			*dst = t
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		v.Add("", "query parameters from and to: from must be before to")
	}
	if n, ok := queryLimit(q, &v); ok {
		f.Limit = n
	}
	if len(v) > 0 {
		return f, &domain.Error{Code: domain.EMalformed, Message: "the query is invalid", Fields: v}
	}
	return f, nil
}

type clientExtractBody struct {
	PersonalID string `json:"personal_id"`
}

// clientExtractResponse is a client's access-log extract (Act 703/2023 §11).
type clientExtractResponse struct {
	// Referrals are the client's referrals the auditor's organisation is party to.
	Referrals []string            `json:"referrals"`
	Items     []domain.AuditEntry `json:"items"`
}

func handleClientExtract(s *domain.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		var b clientExtractBody
		if err := decode(c, &b, false); err != nil {
			return err
		}
		ex, err := s.ClientExtract(c.Request().Context(), actorOf(c), b.PersonalID)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, clientExtractResponse{Referrals: ex.Referrals, Items: auditView(ex.Entries)})
	}
}
