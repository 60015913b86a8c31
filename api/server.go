// Package api is the HTTP adapter of the referral service: Echo routes, authentication,
// request decoding and validation, and RFC 9457 problem responses.
package api

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/kela-hva/referrals/domain"
	"github.com/labstack/echo/v4"
)

// RequestValidator checks a request against the OpenAPI contract (openapi.Validator).
type RequestValidator interface {
	ValidateRequest(ctx context.Context, r *http.Request, routePath string, pathParams map[string]string, body []byte) error
}

// Readiness reports whether the service can take traffic: "ready", "degraded" (serving, but
// e.g. events wait in the outbox while NATS is away) or "unavailable", and each check by name.
type Readiness func(ctx context.Context) (status string, checks map[string]string)

// Readiness states.
const (
	Ready       = "ready"
	Degraded    = "degraded"
	Unavailable = "unavailable"
)

// Deps are everything the HTTP layer needs. Service, Auth and Logger are required.
type Deps struct {
	Service   *domain.Service
	Auth      *Authenticator
	Validator RequestValidator // nil: only the strict decoder checks bodies
	Logger    *slog.Logger
	// Audit receives one record per read or change of client data (no personal data in it).
	Audit    *slog.Logger
	Ready    Readiness
	Spec     []byte // served at /openapi.yaml
	Registry *domain.Registry
	// RequireClientCert turns on mutual TLS checks: every /v1 request must come with a
	// verified client certificate naming the token's organisation (see CertOrgURIPrefix).
	RequireClientCert bool
	// RateLimit is each organisation's request budget; zero means unlimited.
	RateLimit RateLimit
	// CursorKey signs page cursors; nil means a random key per process.
	CursorKey []byte
	// BodyLimit is the largest request body accepted, in bytes; 0 means 1 MiB.
	BodyLimit int64
	// Reports answers GET /v1/reports/response-times; nil means one on Service.Store when
	// it keeps report aggregates (domain.ReportStore).
	Reports *domain.Reporter
	// Metrics is served at /metrics and measures every request; nil means a fresh registry.
	Metrics *Metrics
	// Backup streams a consistent copy of the database for GET /v1/admin/backup
	// (store.DB.Backup); nil answers that route with 500.
	Backup BackupFunc
}

// DefaultBodyLimit is the default request body limit.
const DefaultBodyLimit = 1 << 20

// NewServer returns the HTTP handler of the service with every route of routes.go.
func NewServer(d Deps) *echo.Echo {
	if d.BodyLimit <= 0 {
		d.BodyLimit = DefaultBodyLimit
	}
	if d.Audit == nil {
		d.Audit = d.Logger
	}
	if d.Registry == nil {
		d.Registry = d.Service.Registry
	}
	if rs, ok := d.Service.Store.(domain.ReportStore); ok && d.Reports == nil {
		d.Reports = &domain.Reporter{Store: rs, Clock: d.Service.Clock, Registry: d.Registry}
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics()
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(d.Logger)
	e.Use(requestIDMiddleware, httpMetrics(d.Metrics), accessLog(d.Logger), recoverMiddleware(d.Logger), securityHeaders)
	addRoutes(e, d)
	return e
}
