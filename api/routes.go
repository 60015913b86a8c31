package api

import (
	"github.com/kela-hva/referrals/domain"
	"github.com/labstack/echo/v4"
)

// addRoutes lists the whole HTTP surface in one place.
func addRoutes(e *echo.Echo, d Deps) {
	e.GET("/healthz", handleHealthz())
	e.GET("/readyz", handleReadyz(d.Ready))
	e.GET("/openapi.yaml", handleSpec(d.Spec))
	e.GET("/metrics", handleMetrics(d.Metrics)) // unauthenticated: restrict it at the network edge

	v1 := e.Group("/v1", authenticate(d.Auth, d.RequireClientCert), rateLimit(d.RateLimit, nil), validate(d.Validator, d.BodyLimit))
	// Every operation that returns client data requires X-Purpose (requirePurpose, audit.go).
	purpose := requirePurpose
	cursors := newCursorCodec(d.CursorKey) // lists' and the access log's page cursors
	v1.POST("/referrals", handleCreate(d.Service, d.Audit), purpose)
	v1.GET("/referrals", handleList(d.Service, d.Audit, cursors), purpose)
	v1.GET("/referrals/:id", handleGet(d.Service, d.Audit), purpose)
	v1.POST("/referrals/:id/receive", handleTransition(d.Service, d.Audit, domain.ActionReceive), purpose)
	v1.POST("/referrals/:id/start", handleTransition(d.Service, d.Audit, domain.ActionStart), purpose)
	v1.POST("/referrals/:id/request-info", handleTransition(d.Service, d.Audit, domain.ActionRequestInfo), purpose)
	v1.POST("/referrals/:id/complete", handleTransition(d.Service, d.Audit, domain.ActionComplete), purpose)
	v1.POST("/referrals/:id/return", handleTransition(d.Service, d.Audit, domain.ActionReturn), purpose)
	v1.POST("/referrals/:id/withdraw", handleTransition(d.Service, d.Audit, domain.ActionWithdraw), purpose)
	v1.POST("/referrals/:id/forward", handleTransition(d.Service, d.Audit, domain.ActionForward), purpose)
	v1.POST("/referrals/:id/messages", handleAddMessage(d.Service, d.Audit), purpose)
	v1.GET("/referrals/:id/messages", handleMessages(d.Service, d.Audit), purpose)
	v1.GET("/referrals/:id/timeline", handleTimeline(d.Service, d.Audit), purpose)
	v1.POST("/clients/search", handleClientSearch(d.Service, d.Audit), purpose)
	v1.GET("/audit", handleAudit(d.Service, cursors), purpose)
	v1.POST("/audit/client-extract", handleClientExtract(d.Service), purpose)
	v1.GET("/reports/response-times", handleReport(d.Reports))
	v1.GET("/organisations", handleOrganisations(d.Registry))
	v1.GET("/municipalities", handleMunicipalities(d.Registry))
	v1.GET("/admin/backup", handleBackup(d.Service, d.Backup, d.Logger, d.Audit))
}
