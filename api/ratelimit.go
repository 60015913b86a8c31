package api

import (
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/kela-hva/referrals/domain"
	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// RateLimit is the per-organisation request budget: a token bucket refilled at PerSecond up
// to Burst. Zero PerSecond turns limiting off.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// eRateLimited is the problem code of 429 responses.
const eRateLimited domain.Code = "rate_limited"

// orgLimiter keeps one token bucket per organisation. Organisations are a closed set (Kela
// and 22 counties, checked at authentication), so the map cannot grow without bound.
type orgLimiter struct {
	cfg RateLimit
	now func() time.Time
	mu  sync.Mutex
	m   map[domain.OrgID]*rate.Limiter
}

func (l *orgLimiter) limiter(org domain.OrgID) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.m[org]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(l.cfg.PerSecond), max(l.cfg.Burst, 1))
		l.m[org] = lim
	}
	return lim
}

// rateLimit answers 429 with Retry-After when the caller's organisation has spent its budget.
// It runs after authentication, so the organisation is known and verified.
func rateLimit(cfg RateLimit, now func() time.Time) echo.MiddlewareFunc {
	if cfg.PerSecond <= 0 {
		return func(next echo.HandlerFunc) echo.HandlerFunc { return next }
	}
	if now == nil {
		now = time.Now
	}
	l := &orgLimiter{cfg: cfg, now: now, m: map[domain.OrgID]*rate.Limiter{}}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			lim := l.limiter(actorOf(c).Org)
			r := lim.ReserveN(l.now(), 1)
			if delay := r.DelayFrom(l.now()); delay > 0 {
				r.CancelAt(l.now())
				c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(delay.Seconds()))))
				return &domain.Error{Code: eRateLimited, Message: "your organisation's request rate is over its limit; retry after the given seconds"}
			}
			return next(c)
		}
	}
}
