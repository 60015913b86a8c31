package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/kela-hva/referrals/domain"
)

// loadDeadlineConfig reads the --deadlines-config file, or returns the defaults of DOMAIN §7
// when path is empty. The error names the file and every field at fault.
func loadDeadlineConfig(path string) (domain.DeadlineConfig, error) {
	if path == "" {
		return domain.DefaultDeadlineConfig(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return domain.DeadlineConfig{}, fmt.Errorf("--deadlines-config: %w", err)
	}
	c, err := domain.ParseDeadlineConfig(data)
	if err != nil {
		var de *domain.Error
		if errors.As(err, &de) && len(de.Fields) > 0 {
			parts := make([]string, len(de.Fields))
			for i, f := range de.Fields {
				parts[i] = f.Pointer + ": " + f.Detail
			}
			return domain.DeadlineConfig{}, fmt.Errorf("--deadlines-config %s: %s: %s", path, de.Message, strings.Join(parts, "; "))
		}
		if errors.As(err, &de) {
			return domain.DeadlineConfig{}, fmt.Errorf("--deadlines-config %s: %s", path, de.Message)
		}
		return domain.DeadlineConfig{}, fmt.Errorf("--deadlines-config %s: %w", path, err)
	}
	return c, nil
}

// watchBatch is how many alerts one watcher transaction fires.
const watchBatch = 200

// runWatcher is the deadline watcher: every interval of real time it reads the business clock
// (so a fast dev clock fires in time) and fires every alert due by then, in batches, until
// ctx is done. It starts with a step, so alerts that fell due while the service was down go
// out at once. Failures are logged and retried at the next tick; the store keeps the due
// alerts, so none is lost.
func runWatcher(ctx context.Context, svc *domain.Service, clock domain.Clock, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	log.Info("deadline watcher started", "interval", interval.String(), "warning_lead", svc.Policy.WarningLead.String())
	for {
		for {
			fired, err := svc.FireDue(ctx, clock.Now(), watchBatch)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("deadline watcher: firing failed, retrying at the next tick", "err", err)
				}
				break
			}
			if n := len(fired); n > 0 {
				log.Debug("deadline watcher fired alerts", "alerts", n)
			}
			if len(fired) < watchBatch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
