package main

import (
	"time"

	"github.com/kela-hva/referrals/domain"
)

// devClock is the business clock of --dev-clock-start/--dev-clock-speed: it starts at start
// and runs speed times as fast as the machine's clock. It never touches authentication, which
// always uses the real time.
type devClock struct {
	start     time.Time
	realStart time.Time
	speed     float64
	real      func() time.Time
}

func (c devClock) Now() time.Time {
	elapsed := c.real().Sub(c.realStart)
	return c.start.Add(time.Duration(float64(elapsed) * c.speed)).UTC()
}

// businessClock returns the clock the service's business logic runs on, given the real one
// (time.Now).
func businessClock(cfg config, realNow func() time.Time) domain.Clock {
	if !cfg.dev || (cfg.devClockStart.IsZero() && cfg.devClockSpeed == 0) {
		return domain.ClockFunc(realNow)
	}
	c := devClock{start: cfg.devClockStart, realStart: realNow(), speed: cfg.devClockSpeed, real: realNow}
	if c.start.IsZero() {
		c.start = c.realStart
	}
	if c.speed == 0 {
		c.speed = 1
	}
	return c
}
