package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamName is the JetStream stream that holds referral events.
const StreamName = "REFERRALS"

// StreamSubject is the subject filter of the stream: every event subject
// (referrals.v1.<sender>.<recipient>.<type>, see domain.Event.Subject).
const StreamSubject = "referrals.v1.>"

// DefaultDuplicates is the stream's default deduplication window on Nats-Msg-Id.
const DefaultDuplicates = 2 * time.Minute

// StreamOptions are the tunable settings of the REFERRALS stream.
type StreamOptions struct {
	// MaxAge drops messages older than this; 0 keeps them forever.
	MaxAge time.Duration
	// Duplicates is the window in which a repeated Nats-Msg-Id is dropped; 0 means
	// DefaultDuplicates. It may not exceed a non-zero MaxAge.
	Duplicates time.Duration
	// Replicas is how many servers of a cluster hold the stream (1, 3 or 5). 0 creates the
	// stream with one and leaves an existing stream's as it is, so that a stream an operator
	// replicated is not set back to one on every start.
	Replicas int
}

// CheckKeepFor returns an error if keep, a relay's KeepFor (RelayOptions), does not fit the
// stream's duplicate window dup (StreamOptions.Duplicates; 0 means DefaultDuplicates). After
// a restart the relay publishes the entries it kept again, and only the duplicate window,
// counted from their first publish, stops the stream from storing them twice. The relay
// keeps an entry up to 1¼ keep, so keep may be at most half the window: the other half is
// the time a restart (or a stop) may take. A negative keep is an error too.
func CheckKeepFor(keep, dup time.Duration) error {
	if dup <= 0 {
		dup = DefaultDuplicates
	}
	switch {
	case keep < 0:
		return fmt.Errorf("broker: keep delivered events for %s: negative", keep)
	case keep > dup/2:
		return fmt.Errorf("broker: keep delivered events for %s: more than half the stream's duplicate window of %s, "+
			"so events republished after a restart could be stored twice", keep, dup)
	}
	return nil
}

// StreamConfig returns the configuration EnsureStream applies for opts.
func StreamConfig(opts StreamOptions) jetstream.StreamConfig {
	dup := opts.Duplicates
	if dup <= 0 {
		dup = DefaultDuplicates
	}
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Referral change events (CloudEvents 1.0 JSON), one subject per sender, recipient and type.",
		Subjects:    []string{StreamSubject},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		MaxAge:      opts.MaxAge,
		Duplicates:  dup,
		Replicas:    max(opts.Replicas, 1),
	}
}

// EnsureStream creates the REFERRALS stream, or updates it to the configuration of opts if it
// exists; calling it again with the same options changes nothing. It returns an error if
// opts are inconsistent (Duplicates longer than MaxAge) or the server refuses the
// configuration, e.g. when an existing stream uses memory storage, which cannot be changed.
func EnsureStream(ctx context.Context, js jetstream.JetStream, opts StreamOptions) (jetstream.Stream, error) {
	cfg := StreamConfig(opts)
	if cfg.MaxAge < 0 {
		return nil, fmt.Errorf("broker: ensure stream %s: negative MaxAge %s", StreamName, cfg.MaxAge)
	}
	if cfg.MaxAge > 0 && cfg.Duplicates > cfg.MaxAge {
		return nil, fmt.Errorf("broker: ensure stream %s: duplicate window %s exceeds MaxAge %s",
			StreamName, cfg.Duplicates, cfg.MaxAge)
	}
	if opts.Replicas < 0 || opts.Replicas > 5 {
		return nil, fmt.Errorf("broker: ensure stream %s: %d replicas: want 1 to 5, or 0 to keep the stream's", StreamName, opts.Replicas)
	}
	if opts.Replicas == 0 {
		switch s, err := js.Stream(ctx, StreamName); {
		case err == nil:
			cfg.Replicas = max(s.CachedInfo().Config.Replicas, 1)
		case !errors.Is(err, jetstream.ErrStreamNotFound):
			return nil, fmt.Errorf("broker: ensure stream %s: %w", StreamName, err)
		}
	}
	s, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("broker: ensure stream %s: %w", StreamName, err)
	}
	return s, nil
}
