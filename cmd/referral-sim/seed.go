package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/kela-hva/referrals/domain"
	"github.com/kela-hva/referrals/domain/calendar"
	"github.com/kela-hva/referrals/internal/datadir"
	"github.com/kela-hva/referrals/store"
)

// seedConfig is what the bulk loader can be told.
type seedConfig struct {
	dataDir    string
	count      int
	seed       uint64
	workers    int
	keepEvents bool
	check      bool
}

func parseSeedFlags(args []string, getenv func(string) string, stderr io.Writer) (seedConfig, error) {
	var c seedConfig
	fs := flag.NewFlagSet("referral-sim seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.dataDir, "data-dir", orDefault(getenv("REFERRAL_DATA_DIR"), "./data"), "data directory of a stopped referrald (REFERRAL_DATA_DIR)")
	fs.IntVar(&c.count, "count", 10_000, "how many referrals to add")
	fs.Uint64Var(&c.seed, "seed", 1, "random seed of the referrals' content")
	fs.IntVar(&c.workers, "workers", 512, "concurrent writers: bbolt's group commit puts their writes into shared transactions")
	fs.BoolVar(&c.keepEvents, "keep-events", false, "keep the seeded referrals' events in the outbox (by default they are dropped, so the next start does not publish them all)")
	fs.BoolVar(&c.check, "check", false, "run bbolt's consistency check afterwards (reads every page)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case c.count < 1 || c.count > 20_000_000:
		return c, errors.New("--count must be 1–20000000")
	case c.workers < 1 || c.workers > 10_000:
		return c, errors.New("--workers must be 1–10000")
	}
	return c, nil
}

// seedClock is one writer's business clock: set before each command, so the seeded history
// spreads over the past year.
type seedClock struct{ now time.Time }

func (c *seedClock) Now() time.Time { return c.now }

// runSeed adds referrals to a stopped referrald --dev's bbolt file through domain.Service and
// under the data directory's keys, so every record (encrypted), index entry, timeline entry,
// deadline and report aggregate is what the service itself would write.
// Kela sends them (social-work needs and handoffs, clients weighted by population); most were
// closed months ago, the rest arrived in the last hours and are open: 10 % sent, 5 % received,
// 10 % in progress, 5 % returned, 70 % completed.
func runSeed(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseSeedFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return err
	}
	// The data directory's own keys, created as referrald --dev would: seeded referrals must
	// be written under them, or the service could not read them or find their clients.
	keyring, err := datadir.LoadOrCreateKeyring(cfg.dataDir)
	if err != nil {
		return err
	}
	indexKey, err := datadir.LoadOrCreateSecret(cfg.dataDir, datadir.ClientIndexKeyFile)
	if err != nil {
		return err
	}
	path := filepath.Join(cfg.dataDir, datadir.DBFile)
	db, err := store.Open(path, store.Options{MaxBatchDelay: 20 * time.Millisecond, MaxBatchSize: 2000, Timeout: time.Second, Keys: keyring})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("%s is in use: stop referrald before seeding", path)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.CheckClientIndexKey(datadir.ClientIndexKeyFingerprint(indexKey)); err != nil {
		return err
	}
	reg := domain.DefaultRegistry()
	policy := domain.NewDeadlinePolicy(calendar.New(calendar.Options{}))
	munis := newMunicipalityPicker(reg, nil)
	work := newWorkday()
	kela := domain.Actor{UserID: "seed-kela", Name: "Seeded Handler", Org: domain.Kela, Roles: []domain.Role{domain.RoleKelaHandler}}

	began := time.Now()
	var next, done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range cfg.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clock := &seedClock{}
			svc := &domain.Service{Store: db, Registry: reg, Clock: clock, Policy: policy, ClientKey: datadir.ClientKey(indexKey)}
			for wctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(cfg.count) {
					return
				}
				if err := seedOne(wctx, svc, clock, work, munis, kela, mrand.New(mrand.NewPCG(cfg.seed, uint64(i))), began); err != nil {
					fail(fmt.Errorf("referral %d: %w", i, err))
					cancel()
					return
				}
				done.Add(1)
			}
		}()
	}
	finished := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-finished:
				return
			case <-t.C:
				n := done.Load()
				fmt.Fprintf(stdout, "seeded %d/%d (%.0f/s)\n", n, cfg.count, float64(n)/time.Since(began).Seconds())
			}
		}
	}()
	wg.Wait()
	close(finished)
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted after %d referrals: %w", done.Load(), err)
	}
	took := time.Since(began)
	dropped := 0
	if !cfg.keepEvents {
		if dropped, err = dropOutbox(db); err != nil {
			return err
		}
	}
	if cfg.check {
		if err := db.Check(); err != nil {
			return err
		}
	}
	size := int64(0)
	if fi, err := os.Stat(path); err == nil {
		size = fi.Size()
	}
	fmt.Fprintf(stdout, "seeded %d referrals into %s in %s (%.0f/s); file %s; %d outbox events dropped\n",
		cfg.count, path, took.Round(time.Millisecond), float64(cfg.count)/took.Seconds(), mib(size), dropped)
	return nil
}

// seedOne creates one referral and moves it along its drawn path.
func seedOne(ctx context.Context, svc *domain.Service, clock *seedClock, work workday, munis *municipalityPicker, kela domain.Actor, rng *mrand.Rand, now time.Time) error {
	path := rng.IntN(100)
	open := path < 25
	var created time.Time
	if open {
		created = now.Add(-between(rng, 0, 4*time.Hour))
	} else {
		created = work.nextWork(now.AddDate(0, 0, -7-rng.IntN(358)).Add(between(rng, 0, 24*time.Hour)))
	}
	p := newPerson(rng, munis.Pick(rng), created)
	kind := domain.KindSocialWorkNeed
	if rng.IntN(100) < 40 {
		kind = domain.KindSupplementarySupportHandoff
	}
	urgency := domain.Normal
	if rng.IntN(100) < 12 {
		urgency = domain.Urgent
	}
	clock.now = created
	r, _, err := svc.Create(ctx, kela, newKelaRequest(rng, kind, urgency, p, created), "")
	if err != nil {
		return err
	}
	worker := domain.Actor{UserID: "seed-" + string(r.Recipient), Org: r.Recipient, Roles: []domain.Role{domain.RoleSocialWorker}}
	var steps []domain.Command
	switch {
	case path < 10: // sent
	case path < 15:
		steps = []domain.Command{{Action: domain.ActionReceive}}
	case path < 25:
		steps = []domain.Command{{Action: domain.ActionReceive}, {Action: domain.ActionStart}}
	case path < 30:
		steps = []domain.Command{{Action: domain.ActionReceive}, {Action: domain.ActionReturn, Reason: "insufficient_information", Text: "Palautetaan."}}
	default:
		done := domain.Command{Action: domain.ActionComplete, Outcome: "assessment_started", Feedback: "useful"}
		if kind == domain.KindSupplementarySupportHandoff {
			done = domain.Command{Action: domain.ActionComplete, Outcome: "decided", Decision: "granted"}
		}
		steps = []domain.Command{{Action: domain.ActionReceive}, {Action: domain.ActionStart}, done}
	}
	at := created
	for _, c := range steps {
		if open {
			at = at.Add(between(rng, time.Minute, 10*time.Minute))
		} else {
			at = work.addWork(at, between(rng, 30*time.Minute, 16*time.Hour))
		}
		if c.Action == domain.ActionComplete && c.Outcome == "decided" {
			c.DecisionDate = at.In(work.loc).Format(time.DateOnly)
		}
		clock.now = at
		if _, err := svc.Act(ctx, worker, r.ID, c); err != nil {
			return fmt.Errorf("%s: %w", c.Action, err)
		}
	}
	return nil
}

// dropOutbox removes every pending event and returns how many.
func dropOutbox(db *store.DB) (int, error) {
	n := 0
	for {
		batch, err := db.PendingEvents(10_000)
		if err != nil {
			return n, err
		}
		if len(batch) == 0 {
			return n, nil
		}
		seqs := make([]uint64, len(batch))
		for i, e := range batch {
			seqs[i] = e.Seq
		}
		if err := db.DeleteEvents(seqs); err != nil {
			return n, err
		}
		n += len(batch)
	}
}
