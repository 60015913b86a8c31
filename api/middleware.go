package api

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/kela-hva/referrals/domain"
	"github.com/labstack/echo/v4"
)

const (
	ctxActor     = "actor"
	ctxBody      = "body"
	ctxRequestID = "request_id"
)

// requestIDMiddleware gives every request an id (the caller's X-Request-Id if it is short and
// plain, else a new one) and echoes it in the response.
func requestIDMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !plainToken(id, 64) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Set(ctxRequestID, id)
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

func requestID(c echo.Context) string {
	id, _ := c.Get(ctxRequestID).(string)
	return id
}

// plainToken reports whether s is 1..max characters of [A-Za-z0-9._-].
func plainToken(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '_' || ch == '-') {
			return false
		}
	}
	return true
}

// recoverMiddleware turns a panic into a logged internal error instead of a dropped connection.
func recoverMiddleware(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					if r == http.ErrAbortHandler {
						panic(r)
					}
					log.Error("panic", "panic", fmt.Sprint(r), "stack", string(debug.Stack()), "request_id", requestID(c), "route", c.Path())
					err = errors.New("panic recovered")
				}
			}()
			return next(c)
		}
	}
}

// accessLog writes one JSON line per request: the route template (never the raw URL, whose
// query could carry anything), status, duration, request id and the caller's organisation.
func accessLog(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			attrs := []any{"method", c.Request().Method, "route", c.Path(), "status", c.Response().Status,
				"duration_ms", float64(time.Since(start).Microseconds()) / 1000, "request_id", requestID(c)}
			if a, ok := c.Get(ctxActor).(domain.Actor); ok {
				attrs = append(attrs, "org", a.Org, "user", a.UserID)
			}
			log.Info("request", attrs...)
			return nil
		}
	}
}

// securityHeaders sets headers that keep browsers and caches away from client data.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		return next(c)
	}
}

// authenticate requires a valid bearer token and puts the actor in the context. With mtls,
// the verified client certificate must name the token's organisation too.
func authenticate(a *Authenticator, mtls bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			actor, err := a.Authenticate(c.Request().Header.Get(echo.HeaderAuthorization))
			if err != nil {
				return err
			}
			if mtls {
				if err := checkClientCert(c.Request(), actor); err != nil {
					return err
				}
			}
			c.Set(ctxActor, actor)
			return next(c)
		}
	}
}

func actorOf(c echo.Context) domain.Actor {
	a, _ := c.Get(ctxActor).(domain.Actor)
	return a
}

// validate reads a request body up to limit (413 beyond), requires JSON for a non-empty body
// (415 otherwise) and checks the request against the OpenAPI contract.
func validate(v RequestValidator, limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			var body []byte
			if req.Method == http.MethodPost {
				if req.ContentLength > limit {
					return &domain.Error{Code: eTooLarge, Message: fmt.Sprintf("request body is over the limit of %d bytes", limit)}
				}
				var err error
				body, err = io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, limit))
				if err != nil {
					var mbe *http.MaxBytesError
					if errors.As(err, &mbe) {
						return &domain.Error{Code: eTooLarge, Message: fmt.Sprintf("request body is over the limit of %d bytes", limit)}
					}
					return domain.Errorf(domain.EMalformed, "could not read the request body")
				}
				if len(bytes.TrimSpace(body)) > 0 {
					mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
					if err != nil || mt != echo.MIMEApplicationJSON {
						return &domain.Error{Code: eUnsupported, Message: "send the body as Content-Type: application/json"}
					}
				}
				req.Body = io.NopCloser(bytes.NewReader(body))
				c.Set(ctxBody, body)
			}
			if v != nil {
				params := map[string]string{}
				for i, name := range c.ParamNames() {
					params[name] = c.ParamValues()[i]
				}
				if err := v.ValidateRequest(req.Context(), req, c.Path(), params, body); err != nil {
					return err
				}
				req.Body = io.NopCloser(bytes.NewReader(body))
			}
			return next(c)
		}
	}
}
