package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kela-hva/referrals/domain"
)

// MustOpen opens a store on a new file in t.TempDir(). Cleanup checks the file's consistency
// and closes it; a test that closes the store itself skips the check.
func MustOpen(t testing.TB) *DB {
	t.Helper()
	return mustOpenPath(t, filepath.Join(t.TempDir(), "referrals.db"), Options{MaxBatchDelay: time.Millisecond})
}

func mustOpenPath(t testing.TB, path string, opts Options) *DB {
	t.Helper()
	db, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Check(); err != nil && !errors.Is(err, berrors.ErrDatabaseNotOpen) {
			t.Errorf("Check: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

var (
	orgKela   = domain.Kela
	orgHelsin = domain.OrgID("hva-90")
	orgVantaa = domain.OrgID("hva-91")
)

// newReferral returns a valid-looking referral from sender to recipient with a fresh UUIDv7
// id, so referrals made later sort later.
func newReferral(sender, recipient domain.OrgID, mods ...func(*domain.Referral)) *domain.Referral {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	ack := now.Add(24 * time.Hour)
	r := &domain.Referral{
		ID:        uuid.Must(uuid.NewV7()).String(),
		Kind:      domain.KindSocialWorkNeed,
		Direction: domain.KelaToCounty,
		Status:    domain.StatusSent,
		Urgency:   domain.Normal,
		Sender:    sender,
		Recipient: recipient,
		CreatedAt: now,
		CreatedBy: "tester-1",
		UpdatedAt: now,
		Version:   1,
		Deadlines: domain.Deadlines{AcknowledgeBy: &ack, Basis: "test"},
		Client:    domain.Client{PersonalID: "010150-123N", Name: "Testi Testinen"},
		SocialWorkNeed: &domain.SocialWorkNeed{
			NeedFlags: []string{"other"}, Consent: "given", Description: "fake",
		},
		Timeline:  1,
		ClientKey: "client-key-a",
	}
	for _, m := range mods {
		m(r)
	}
	return r
}

func created(r *domain.Referral) (domain.TimelineEntry, domain.Event) {
	return domain.TimelineEntry{ReferralID: r.ID, Seq: 1, At: r.CreatedAt, Action: domain.ActionCreate,
			To: r.Status, ActorID: r.CreatedBy, ActorOrg: r.Sender},
		domain.Event{ID: uuid.Must(uuid.NewV7()).String(), Type: domain.EventCreated, ReferralID: r.ID,
			Sender: r.Sender, Recipient: r.Recipient, Time: r.CreatedAt, Kind: r.Kind, Urgency: r.Urgency,
			Status: r.Status}
}

// mustCreate stores the referrals in one Update, each with its first timeline entry and a
// created event.
func mustCreate(t testing.TB, db *DB, rs ...*domain.Referral) {
	t.Helper()
	ch := &domain.Change{Referrals: rs}
	for _, r := range rs {
		te, ev := created(r)
		ch.Timeline = append(ch.Timeline, te)
		ch.Events = append(ch.Events, ev)
	}
	if err := db.Update(context.Background(), func(domain.Tx) (*domain.Change, error) { return ch, nil }); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// mustPut stores one change.
func mustPut(t testing.TB, db *DB, ch *domain.Change) {
	t.Helper()
	if err := db.Update(context.Background(), func(domain.Tx) (*domain.Change, error) { return ch, nil }); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func mustReferral(t testing.TB, db *DB, id string) *domain.Referral {
	t.Helper()
	r, err := db.Referral(context.Background(), id)
	if err != nil {
		t.Fatalf("Referral(%s): %v", id, err)
	}
	return r
}

// indexKeysIn returns every key of the index bucket, as strings for easy comparison.
func indexKeysIn(t testing.TB, db *DB) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIndex).ForEach(func(k, _ []byte) error {
			keys[string(k)] = true
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func wantCode(t testing.TB, err error, code domain.Code) {
	t.Helper()
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != code {
		t.Fatalf("error = %v, want a *domain.Error with code %s", err, code)
	}
}

func TestOpen(t *testing.T) {
	t.Run("creates the file with mode 0600 and every bucket", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "r.db")
		db := mustOpenPath(t, path, Options{})
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
		}
		err = db.bolt.View(func(tx *bolt.Tx) error {
			for _, b := range buckets {
				if tx.Bucket(b) == nil {
					t.Errorf("bucket %s missing", b)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if db.bolt.NoSync {
			t.Error("NoSync is on")
		}
	})
	t.Run("applies batch options and defaults", func(t *testing.T) {
		db := mustOpenPath(t, filepath.Join(t.TempDir(), "r.db"), Options{MaxBatchDelay: 3 * time.Millisecond, MaxBatchSize: 7})
		if db.group.delay != 3*time.Millisecond || db.group.max != 7 {
			t.Errorf("batch = %v/%d, want 3ms/7", db.group.delay, db.group.max)
		}
		def := mustOpenPath(t, filepath.Join(t.TempDir(), "r.db"), Options{})
		if def.group.delay != 0 || def.group.max != defaultMaxBatch {
			t.Errorf("default batch = %v/%d, want 0/%d", def.group.delay, def.group.max, defaultMaxBatch)
		}
	})
	t.Run("times out when the file is locked", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "r.db")
		mustOpenPath(t, path, Options{})
		start := time.Now()
		db2, err := Open(path, Options{Timeout: 100 * time.Millisecond})
		if err == nil {
			db2.Close()
			t.Fatal("second Open succeeded while the file is locked")
		}
		if !errors.Is(err, berrors.ErrTimeout) {
			t.Errorf("error = %v, want ErrTimeout", err)
		}
		// bbolt retries every 50ms and stops one retry short of the timeout.
		if d := time.Since(start); d > time.Second {
			t.Errorf("gave up after %v; Options.Timeout is 100ms", d)
		}
	})
	t.Run("refuses a file that is not bbolt", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "r.db")
		if err := os.WriteFile(path, bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
			t.Fatal(err)
		}
		if db, err := Open(path, Options{}); err == nil {
			db.Close()
			t.Fatal("Open accepted garbage")
		}
	})
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	db := mustOpenPath(t, path, Options{})
	r := newReferral(orgKela, orgHelsin)
	te, ev := created(r)
	idem := &domain.IdempotencyRecord{Org: orgKela, Key: "k-1", RequestHash: "h", ReferralID: r.ID,
		CreatedAt: r.CreatedAt}
	mustPut(t, db, &domain.Change{Referrals: []*domain.Referral{r}, Timeline: []domain.TimelineEntry{te},
		Events: []domain.Event{ev}, Idempotency: idem})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = mustOpenPath(t, path, Options{})
	ctx := context.Background()
	if got := mustReferral(t, db, r.ID); !reflect.DeepEqual(got, r) {
		t.Errorf("referral after reopen = %+v, want %+v", got, r)
	}
	page, err := db.List(ctx, domain.ListFilter{Org: orgHelsin, Direction: domain.Incoming, Status: domain.StatusSent})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != r.ID {
		t.Errorf("List after reopen = %+v, %v; want the referral", page, err)
	}
	crs, err := db.ClientReferrals(ctx, r.ClientKey)
	if err != nil || len(crs) != 1 {
		t.Errorf("ClientReferrals after reopen = %d, %v; want 1", len(crs), err)
	}
	tl, err := db.Timeline(ctx, r.ID)
	if err != nil || len(tl) != 1 || tl[0].Action != domain.ActionCreate {
		t.Errorf("Timeline after reopen = %+v, %v", tl, err)
	}
	err = db.Update(ctx, func(tx domain.Tx) (*domain.Change, error) {
		got, err := tx.Idempotency(orgKela, "k-1")
		if err != nil || got == nil || !reflect.DeepEqual(*got, *idem) {
			t.Errorf("Idempotency after reopen = %+v, %v; want %+v", got, err, idem)
		}
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pending, err := db.PendingEvents(10)
	if err != nil || len(pending) != 1 || pending[0].Event.ID != ev.ID {
		t.Errorf("PendingEvents after reopen = %+v, %v", pending, err)
	}
	// The outbox sequence continues after a reopen: no seq is reused.
	_, ev2 := created(r)
	mustPut(t, db, &domain.Change{Events: []domain.Event{ev2}})
	pending, _ = db.PendingEvents(10)
	if len(pending) != 2 || pending[1].Seq <= pending[0].Seq {
		t.Errorf("seqs after reopen = %+v, want increasing", pending)
	}
}

func TestBackup(t *testing.T) {
	db := MustOpen(t)
	var rs []*domain.Referral
	for range 30 {
		rs = append(rs, newReferral(orgKela, orgHelsin))
	}
	mustCreate(t, db, rs...)

	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	n, err := db.Backup(f)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); n == 0 || fi.Size() != n {
		t.Errorf("Backup reported %d bytes, file has %d", n, fi.Size())
	}
	// Writes after the backup are not in it.
	mustCreate(t, db, newReferral(orgKela, orgHelsin))

	bak := mustOpenPath(t, path, Options{})
	if err := bak.Check(); err != nil {
		t.Fatalf("backup Check: %v", err)
	}
	ctx := context.Background()
	page, err := bak.List(ctx, domain.ListFilter{Org: orgHelsin, Direction: domain.Incoming, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != len(rs) {
		t.Fatalf("backup lists %d referrals, want %d", len(page.Items), len(rs))
	}
	for i, r := range page.Items {
		if want := rs[len(rs)-1-i]; !reflect.DeepEqual(r, want) {
			t.Errorf("backup item %d = %+v, want %+v", i, r, want)
		}
	}
	pending, err := bak.PendingEvents(100)
	if err != nil || len(pending) != len(rs) {
		t.Errorf("backup outbox = %d, %v; want %d", len(pending), err, len(rs))
	}
}

func TestCheckReportsCorruption(t *testing.T) {
	// A Check that always passes would make every MustOpen cleanup meaningless.
	db := MustOpen(t)
	for range 30 {
		mustCreate(t, db, newReferral(orgKela, orgHelsin))
	}
	if err := db.Check(); err != nil {
		t.Fatalf("Check on a sound file: %v", err)
	}
	var root uint64
	db.bolt.View(func(tx *bolt.Tx) error {
		root = uint64(tx.Bucket(bucketReferrals).Root())
		return nil
	})
	if root == 0 {
		t.Fatal("referrals bucket is inline; write more referrals")
	}
	path, pageSize := db.bolt.Path(), int64(db.bolt.Info().PageSize)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Clear the page-type flags (after the 8-byte page id) of the bucket's root page.
	if _, err := f.WriteAt([]byte{0, 0}, int64(root)*pageSize+8); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db2.Close()
	if err := db2.Check(); err == nil {
		t.Error("Check found nothing in a corrupted file")
	}
}

// TestOpenWaitingWhileTheFileIsReplacedOpensTheNewFile: a referrald started while referralctl
// compact runs opens the file and waits for its lock; compact renames the compacted copy over
// it and then lets go. The waiting Open must end up on the file now at the path — not on the
// old, unlinked one, where every write would vanish at the next start.
func TestOpenWaitingWhileTheFileIsReplacedOpensTheNewFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "referrals.db")
	first := mustOpenPath(t, path, Options{})
	mustCreate(t, first, newReferral(orgKela, orgHelsin))
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	copyFile(t, path, path+".copy")                                      // the "compacted" copy
	holder, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true}) // compact's hold on the original
	if err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{})
	var once sync.Once
	type result struct {
		db  *bolt.DB
		err error
	}
	done := make(chan result, 1)
	go func() {
		db, err := openLocked(path, &bolt.Options{Timeout: 10 * time.Second, OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, mode)
			once.Do(func() { close(opened) }) // the first open: the original, then it waits
			return f, err
		}})
		done <- result{db, err}
	}()
	<-opened
	if err := os.Rename(path+".copy", path); err != nil {
		t.Fatal(err)
	}
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := r.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("written-after-the-swap"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.db.Close(); err != nil {
		t.Fatal(err)
	}
	check, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	_ = check.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("written-after-the-swap")); b == nil || b.Get([]byte("k")) == nil {
			t.Error("the write of the Open that waited through the swap is not in the file at the path")
		}
		return nil
	})
}
