package store

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kela-hva/referrals/domain"
)

func TestIdempotencyRoundTrip(t *testing.T) {
	db := MustOpen(t)
	ctx := context.Background()
	r := newReferral(orgKela, orgHelsin)
	rec := &domain.IdempotencyRecord{Org: orgKela, Key: "create-1", RequestHash: "sha256:aa", ReferralID: r.ID,
		CreatedAt: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	mustPut(t, db, &domain.Change{Referrals: []*domain.Referral{r}, Idempotency: rec})

	tests := []struct {
		name string
		org  domain.OrgID
		key  string
		want *domain.IdempotencyRecord
	}{
		{"same org and key", orgKela, "create-1", rec},
		{"same key, other org", orgHelsin, "create-1", nil},
		{"other key", orgKela, "create-2", nil},
		{"key is not a prefix match", orgKela, "create-", nil},
		{"org and key boundary is unambiguous", "kel", "a\x00create-1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := db.Update(ctx, func(tx domain.Tx) (*domain.Change, error) {
				got, err := tx.Idempotency(tt.org, tt.key)
				if err != nil {
					return nil, err
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("Idempotency(%q, %q) = %+v, want %+v", tt.org, tt.key, got, tt.want)
				}
				return nil, nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestUpdateTxReadsItsOwnTransaction(t *testing.T) {
	db := MustOpen(t)
	ctx := context.Background()
	r := newReferral(orgKela, orgHelsin)
	mustCreate(t, db, r)
	// Read-modify-write through tx: 20 concurrent increments must all land.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			err := db.Update(ctx, func(tx domain.Tx) (*domain.Change, error) {
				cur, err := tx.Referral(r.ID)
				if err != nil {
					return nil, err
				}
				cur.Version++
				return &domain.Change{Referrals: []*domain.Referral{cur}}, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := mustReferral(t, db, r.ID).Version; got != 21 {
		t.Errorf("Version = %d after 20 increments from 1, want 21", got)
	}
	err := db.Update(ctx, func(tx domain.Tx) (*domain.Change, error) {
		_, err := tx.Referral("not-a-uuid")
		wantCode(t, err, domain.ENotFound)
		_, err = tx.Referral(newReferral(orgKela, orgHelsin).ID)
		wantCode(t, err, domain.ENotFound)
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot is everything a test can see of the store's contents.
type snapshot struct {
	Index   map[string]bool
	Outbox  []domain.OutboxEntry
	Listing []string
}

func takeSnapshot(t *testing.T, db *DB) snapshot {
	t.Helper()
	out, err := db.PendingEvents(1000)
	if err != nil {
		t.Fatal(err)
	}
	p, err := db.List(context.Background(), domain.ListFilter{Org: orgHelsin, Direction: domain.Incoming, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{indexKeysIn(t, db), out, ids(p.Items)}
}

func TestUpdateFailureWritesNothing(t *testing.T) {
	domainErr := domain.Errorf(domain.EConflict, "cannot receive a referral in state completed")
	tests := []struct {
		name string
		fn   func(existing *domain.Referral) func(domain.Tx) (*domain.Change, error)
		// check inspects the error Update returned.
		check func(t *testing.T, err error)
	}{
		{
			name: "domain error from fn is returned unchanged, its change ignored",
			fn: func(existing *domain.Referral) func(domain.Tx) (*domain.Change, error) {
				return func(tx domain.Tx) (*domain.Change, error) {
					r := newReferral(orgKela, orgHelsin)
					te, ev := created(r)
					return &domain.Change{Referrals: []*domain.Referral{r}, Timeline: []domain.TimelineEntry{te},
						Events: []domain.Event{ev}}, domainErr
				}
			},
			check: func(t *testing.T, err error) {
				if err != domainErr { //nolint:errorlint // identity is the point
					t.Errorf("error = %#v, want the very *domain.Error fn returned", err)
				}
			},
		},
		{
			name: "store error midway rolls back what was written before it",
			fn: func(existing *domain.Referral) func(domain.Tx) (*domain.Change, error) {
				return func(tx domain.Tx) (*domain.Change, error) {
					good := newReferral(orgKela, orgHelsin)
					moved := *existing
					moved.Status = domain.StatusReceived
					bad := newReferral(orgKela, orgHelsin, func(r *domain.Referral) { r.ID = "not-a-uuid" })
					_, ev := created(good)
					return &domain.Change{Referrals: []*domain.Referral{good, &moved, bad}, Events: []domain.Event{ev}}, nil
				}
			},
			check: func(t *testing.T, err error) {
				if err == nil || domain.ErrorCode(err) != domain.EInternal || !strings.HasPrefix(err.Error(), "store: put referral") {
					t.Errorf("error = %v, want an internal store error naming the operation", err)
				}
			},
		},
		{
			name: "a message with a bad id after good writes rolls everything back",
			fn: func(existing *domain.Referral) func(domain.Tx) (*domain.Change, error) {
				return func(tx domain.Tx) (*domain.Change, error) {
					moved := *existing
					moved.Status = domain.StatusInProgress
					_, ev := created(existing)
					return &domain.Change{Referrals: []*domain.Referral{&moved}, Events: []domain.Event{ev},
						Messages: []domain.Message{{ID: "x", ReferralID: existing.ID}}}, nil
				}
			},
			check: func(t *testing.T, err error) {
				if err == nil || !strings.Contains(err.Error(), "store: put message") {
					t.Errorf("error = %v, want a put message error", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := MustOpen(t)
			existing := newReferral(orgKela, orgHelsin)
			mustCreate(t, db, existing)
			before := takeSnapshot(t, db)
			select { // drain the create's signal
			case <-db.Committed():
			default:
				t.Fatal("Committed not signalled for the create")
			}

			err := db.Update(context.Background(), tt.fn(existing))
			tt.check(t, err)
			if after := takeSnapshot(t, db); !reflect.DeepEqual(after, before) {
				t.Errorf("store changed by a failed Update:\nbefore %+v\nafter  %+v", before, after)
			}
			if got := mustReferral(t, db, existing.ID); got.Status != domain.StatusSent {
				t.Errorf("existing referral's status = %s, want it untouched", got.Status)
			}
			select {
			case <-db.Committed():
				t.Error("Committed signalled for a failed Update")
			default:
			}
		})
	}
}

func TestUpdateFailureInsideABatch(t *testing.T) {
	// With group commit, calls share a transaction. A call whose fn fails must not disturb
	// the others; a call whose write fails makes bbolt roll the batch back and rerun the
	// others, whose writes must then land exactly once.
	const (
		good = iota
		domainFails
		writeFails
	)
	tests := []struct {
		name    string
		mix     []int // what call i does: mix[i%len(mix)]
		maxRuns int   // upper bound on fn runs over 16 calls; 0 means no bound
	}{
		{"domain errors: every fn runs once", []int{domainFails, good, good, good}, 16},
		{"write errors: the others rerun and land once", []int{writeFails, good, good, good}, 0},
		{"both", []int{domainFails, writeFails, good, good}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := mustOpenPath(t, t.TempDir()+"/r.db", Options{MaxBatchDelay: 20 * time.Millisecond})
			ctx := context.Background()
			domainErr := domain.Errorf(domain.EForbidden, "nope")
			var wg sync.WaitGroup
			var runs atomic.Int64
			var wantGood int
			for i := range 16 {
				what := tt.mix[i%len(tt.mix)]
				if what == good {
					wantGood++
				}
				wg.Go(func() {
					r := newReferral(orgKela, orgHelsin)
					err := db.Update(ctx, func(domain.Tx) (*domain.Change, error) {
						runs.Add(1)
						_, ev := created(r)
						ch := &domain.Change{Referrals: []*domain.Referral{r}, Events: []domain.Event{ev}}
						switch what {
						case domainFails:
							return ch, domainErr
						case writeFails:
							bad := newReferral(orgKela, orgHelsin, func(r *domain.Referral) { r.ID = "bad" })
							ch.Referrals = append(ch.Referrals, bad)
						}
						return ch, nil
					})
					switch what {
					case domainFails:
						if err != domainErr { //nolint:errorlint // identity is the point
							t.Errorf("failing fn: Update = %v, want its own error", err)
						}
					case writeFails:
						if err == nil || !strings.HasPrefix(err.Error(), "store: put referral") {
							t.Errorf("failing write: Update = %v, want a put referral error", err)
						}
					default:
						if err != nil {
							t.Errorf("good call: Update = %v", err)
						}
					}
				})
			}
			wg.Wait()
			p, err := db.List(ctx, domain.ListFilter{Org: orgHelsin, Direction: domain.Incoming})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Items) != wantGood {
				t.Errorf("stored %d referrals, want %d", len(p.Items), wantGood)
			}
			if n, _ := db.OutboxLen(); n != wantGood {
				t.Errorf("outbox has %d events, want %d (each good call's once)", n, wantGood)
			}
			if tt.maxRuns > 0 && runs.Load() > int64(tt.maxRuns) {
				t.Errorf("fn ran %d times for 16 calls: a domain error made the batch rerun", runs.Load())
			}
		})
	}
}

func TestUpdateHonoursContext(t *testing.T) {
	db := MustOpen(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	err := db.Update(ctx, func(domain.Tx) (*domain.Change, error) {
		called = true
		return &domain.Change{Referrals: []*domain.Referral{newReferral(orgKela, orgHelsin)}}, nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
	if called {
		t.Error("fn ran with a cancelled context")
	}
	if _, err := db.Referral(ctx, newReferral(orgKela, orgHelsin).ID); !errors.Is(err, context.Canceled) {
		t.Errorf("Referral with a cancelled context: %v", err)
	}
	if keys := indexKeysIn(t, db); len(keys) != 0 {
		t.Errorf("index has %d entries, want none", len(keys))
	}
}

// TestUpdateGivenUpWhileQueuedDoesNotCommit: a request whose context ends while its write
// waits behind another commit gets the context's error, and nothing of it is written — its
// caller has been told it failed, so a retry without an idempotency key must not find a
// duplicate.
func TestUpdateGivenUpWhileQueuedDoesNotCommit(t *testing.T) {
	db := MustOpen(t)
	release := hold(t, db.group)
	ctx, cancel := context.WithCancel(context.Background())
	r := newReferral(orgKela, orgHelsin)
	called := false // read after Update returned
	done := make(chan error, 1)
	go func() {
		done <- db.Update(ctx, func(domain.Tx) (*domain.Change, error) {
			called = true
			return &domain.Change{Referrals: []*domain.Referral{r}}, nil
		})
	}()
	waitQueued(t, db.group, 1)
	cancel()
	release()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
	if called {
		t.Error("fn ran for a request that had given up")
	}
	if _, err := db.Referral(context.Background(), r.ID); domain.ErrorCode(err) != domain.ENotFound {
		t.Errorf("the referral was written: %v", err)
	}
	if keys := indexKeysIn(t, db); len(keys) != 0 {
		t.Errorf("index has %d entries, want none", len(keys))
	}
}

func TestUpdateNilChangeWritesNothing(t *testing.T) {
	db := MustOpen(t)
	if err := db.Update(context.Background(), func(domain.Tx) (*domain.Change, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-db.Committed():
		t.Error("Committed signalled without events")
	default:
	}
}

func TestConcurrentReadersAndWriters(t *testing.T) {
	db := MustOpen(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	const writers, perWriter = 8, 15
	for range writers {
		wg.Go(func() {
			for range perWriter {
				r := newReferral(orgKela, orgHelsin)
				mustCreateErr(t, db, r)
				err := db.Update(ctx, func(tx domain.Tx) (*domain.Change, error) {
					cur, err := tx.Referral(r.ID)
					if err != nil {
						return nil, err
					}
					cur.Status = domain.StatusReceived
					cur.Version++
					return &domain.Change{Referrals: []*domain.Referral{cur}, Timeline: []domain.TimelineEntry{{
						ReferralID: r.ID, Seq: 2, Action: domain.ActionReceive, From: domain.StatusSent, To: domain.StatusReceived}}}, nil
				})
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				p, err := db.List(ctx, domain.ListFilter{Org: orgHelsin, Direction: domain.Incoming, Limit: 20})
				if err != nil {
					t.Error(err)
					return
				}
				for _, r := range p.Items {
					if _, err := db.Timeline(ctx, r.ID); err != nil {
						t.Error(err)
						return
					}
				}
				if _, err := db.PendingEvents(10); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()

	p, err := db.List(ctx, domain.ListFilter{Org: orgHelsin, Direction: domain.Incoming, Status: domain.StatusReceived, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != writers*perWriter {
		t.Errorf("%d received referrals, want %d", len(p.Items), writers*perWriter)
	}
	p, _ = db.List(ctx, domain.ListFilter{Org: orgHelsin, Direction: domain.Incoming, Status: domain.StatusSent})
	if len(p.Items) != 0 {
		t.Errorf("%d referrals left in the sent index, want 0", len(p.Items))
	}
}

// mustCreateErr is mustCreate for goroutines other than the test's: it reports with Error.
func mustCreateErr(t *testing.T, db *DB, r *domain.Referral) {
	te, ev := created(r)
	err := db.Update(context.Background(), func(domain.Tx) (*domain.Change, error) {
		return &domain.Change{Referrals: []*domain.Referral{r}, Timeline: []domain.TimelineEntry{te},
			Events: []domain.Event{ev}}, nil
	})
	if err != nil {
		t.Error(err)
	}
}
