package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/kela-hva/referrals/domain"
	"github.com/labstack/echo/v4"
)

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type      string              `json:"type"`
	Title     string              `json:"title"`
	Status    int                 `json:"status"`
	Detail    string              `json:"detail,omitempty"`
	Instance  string              `json:"instance,omitempty"`
	RequestID string              `json:"request_id,omitempty"`
	Errors    []domain.FieldError `json:"errors,omitempty"`
	Allowed   *[]domain.Action    `json:"allowed,omitempty"` // set on 409, even when empty
}

// Extra problem codes of the HTTP layer; the domain's codes cover the rest.
const (
	eTooLarge    domain.Code = "payload_too_large"
	eUnsupported domain.Code = "unsupported_media_type"
	eRouteless   domain.Code = "no_route"
	eMethod      domain.Code = "method_not_allowed"
)

// problemStatus is the one table from error codes to HTTP statuses and titles.
var problemStatus = map[domain.Code]struct {
	status int
	title  string
}{
	domain.EMalformed:    {http.StatusBadRequest, "Malformed request"},
	domain.EUnauthorized: {http.StatusUnauthorized, "Authentication required"},
	domain.EForbidden:    {http.StatusForbidden, "Forbidden"},
	domain.ENotFound:     {http.StatusNotFound, "Not found"},
	eRouteless:           {http.StatusNotFound, "Not found"},
	eMethod:              {http.StatusMethodNotAllowed, "Method not allowed"},
	domain.EConflict:     {http.StatusConflict, "Not allowed in the current state"},
	domain.EPrecondition: {http.StatusPreconditionFailed, "Precondition failed"},
	eTooLarge:            {http.StatusRequestEntityTooLarge, "Request body too large"},
	eUnsupported:         {http.StatusUnsupportedMediaType, "Unsupported media type"},
	eRateLimited:         {http.StatusTooManyRequests, "Too many requests"},
	domain.EInvalid:      {http.StatusUnprocessableEntity, "Validation failed"},
	domain.EInternal:     {http.StatusInternalServerError, "Internal error"},
}

// statusClientClosedRequest is recorded (access log, metrics) when the client disconnected
// before the response; nginx's 499.
const statusClientClosedRequest = 499

// problemTypeBase prefixes problem type URIs; the last segment is the code.
const problemTypeBase = "https://referrals.example.fi/problems/"

// errorHandler renders every error as application/problem+json. Domain errors keep their
// message; anything else is logged and shown as "internal error".
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		var de *domain.Error
		var he *echo.HTTPError
		switch {
		case errors.As(err, &de):
		case errors.As(err, &he):
			de = fromHTTPError(he)
		case errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil:
			// The client went away before the answer: nothing to answer, nothing broken. A
			// command that had committed stays committed (and its retry is idempotent).
			log.InfoContext(c.Request().Context(), "client closed the request", "request_id", requestID(c), "route", c.Path())
			c.Response().WriteHeader(statusClientClosedRequest)
			return
		default:
			log.ErrorContext(c.Request().Context(), "internal error", "err", err, "request_id", requestID(c), "route", c.Path())
			de = &domain.Error{Code: domain.EInternal, Message: "internal error"}
		}
		entry, ok := problemStatus[de.Code]
		if !ok {
			entry = problemStatus[domain.EInternal]
		}
		p := Problem{
			Type: problemTypeBase + string(de.Code), Title: entry.title, Status: entry.status,
			Detail: de.Message, Instance: c.Request().URL.Path, RequestID: requestID(c),
			Errors: de.Fields,
		}
		if de.Code == domain.EConflict {
			allowed := append([]domain.Action{}, de.Allowed...)
			p.Allowed = &allowed
		}
		h := c.Response().Header()
		h.Set(echo.HeaderContentType, "application/problem+json")
		if entry.status == http.StatusUnauthorized {
			h.Set("WWW-Authenticate", `Bearer realm="referrals"`)
		}
		if c.Request().Method == http.MethodHead {
			c.Response().WriteHeader(entry.status)
			return
		}
		c.Response().WriteHeader(entry.status)
		if err := json.NewEncoder(c.Response()).Encode(p); err != nil {
			log.WarnContext(c.Request().Context(), "write problem", "err", err, "request_id", requestID(c))
		}
	}
}

// fromHTTPError translates Echo's own errors (unknown route, wrong method, body limit).
func fromHTTPError(he *echo.HTTPError) *domain.Error {
	switch he.Code {
	case http.StatusNotFound:
		return &domain.Error{Code: eRouteless, Message: "no such resource"}
	case http.StatusMethodNotAllowed:
		return &domain.Error{Code: eMethod, Message: "method not allowed on this resource"}
	case http.StatusRequestEntityTooLarge:
		return &domain.Error{Code: eTooLarge, Message: "request body is over the limit"}
	case http.StatusUnsupportedMediaType:
		return &domain.Error{Code: eUnsupported, Message: "use Content-Type: application/json"}
	case http.StatusUnauthorized:
		return &domain.Error{Code: domain.EUnauthorized, Message: "authentication required"}
	case http.StatusBadRequest:
		return &domain.Error{Code: domain.EMalformed, Message: "malformed request"}
	}
	return &domain.Error{Code: domain.EInternal, Message: "internal error"}
}
