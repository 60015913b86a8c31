package store

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kela-hva/referrals/domain"
)

func openCommitter(t *testing.T, maxBatch int) (*bolt.DB, *committer) {
	return openObservedCommitter(t, maxBatch, nil)
}

// openObservedCommitter is openCommitter with an observer of the commits.
func openObservedCommitter(t *testing.T, maxBatch int, observe func(int, time.Duration, time.Duration)) (*bolt.DB, *committer) {
	t.Helper()
	bdb, err := bolt.Open(filepath.Join(t.TempDir(), "c.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newCommitter(bdb, 0, maxBatch, observe)
	t.Cleanup(func() { c.close(); bdb.Close() })
	if err := c.do(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		t.Fatal(err)
	}
	return bdb, c
}

// hold starts a write that blocks the committer until the returned func is called.
func hold(t *testing.T, c *committer) (release func()) {
	t.Helper()
	entered, gate := make(chan struct{}), make(chan struct{})
	go func() {
		_ = c.do(func(*bolt.Tx) error { close(entered); <-gate; return nil })
	}()
	<-entered
	return func() { close(gate) }
}

// waitQueued waits until n calls are queued behind the running transaction, failing the test
// after 10 seconds (a call that never queues).
func waitQueued(t *testing.T, c *committer, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(c.calls) < n {
		select {
		case <-c.done:
			t.Fatal("committer stopped")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued after 10 s, want %d", len(c.calls), n)
		}
		runtime.Gosched()
	}
}

// put returns a write of key that counts its runs, and its runs per transaction in seen.
func put(key string, seen *sync.Map, runs *atomic.Int32) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		runs.Add(1)
		n, _ := seen.LoadOrStore(tx, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		return tx.Bucket([]byte("b")).Put([]byte(key), []byte("v"))
	}
}

// countTx returns how many transactions ran and the most runs one of them held.
func countTx(m *sync.Map) (txs, largest int) {
	m.Range(func(_, v any) bool {
		txs++
		largest = max(largest, int(v.(*atomic.Int32).Load()))
		return true
	})
	return txs, largest
}

// TestCommitterBatchesWhatQueuedDuringACommit: the calls that arrive while a transaction runs
// all go into the next one (bbolt's Batch would cut them by its timer), up to the limit.
func TestCommitterBatchesWhatQueuedDuringACommit(t *testing.T) {
	for _, tc := range []struct {
		name       string
		calls, max int
	}{
		{"all in one", 50, 1000},
		{"split by the limit", 50, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bdb, c := openCommitter(t, tc.max)
			release := hold(t, c)
			var seen sync.Map
			var runs atomic.Int32
			var wg sync.WaitGroup
			for i := range tc.calls {
				wg.Go(func() {
					if err := c.do(put(string(rune('A'+i)), &seen, &runs)); err != nil {
						t.Error(err)
					}
				})
			}
			waitQueued(t, c, min(tc.calls, tc.max)) // the queue holds max calls; the rest wait to enter
			release()
			wg.Wait()
			txs, largest := countTx(&seen)
			if tc.calls <= tc.max && txs != 1 {
				t.Errorf("%d queued calls ran in %d transactions, want 1", tc.calls, txs)
			}
			if largest > tc.max || txs < (tc.calls+tc.max-1)/tc.max {
				t.Errorf("%d calls ran in %d transactions of at most %d, want none above the limit %d", tc.calls, txs, largest, tc.max)
			}
			if runs.Load() != int32(tc.calls) {
				t.Errorf("fns ran %d times, want %d", runs.Load(), tc.calls)
			}
			_ = bdb.View(func(tx *bolt.Tx) error {
				if n := tx.Bucket([]byte("b")).Stats().KeyN; n != tc.calls {
					t.Errorf("%d keys stored, want %d", n, tc.calls)
				}
				return nil
			})
		})
	}
}

// TestCommitterFailureRunsAlone: a failing fn rolls its batch back; the others commit once in
// a rerun, and the failing call gets its own error from a run alone. A panic does the same
// and reaches the caller, not the committer.
func TestCommitterFailureRunsAlone(t *testing.T) {
	var observed []int // batch sizes of the commits observed; only the committer appends
	bdb, c := openObservedCommitter(t, 0, func(writes int, took, disk time.Duration) {
		if took <= 0 || disk <= 0 || disk > took {
			t.Errorf("commit of %d observed as %v, of it %v on disk", writes, took, disk)
		}
		observed = append(observed, writes)
	})
	release := hold(t, c)
	boom := errors.New("boom")
	var seen sync.Map
	var runs atomic.Int32
	var failRuns atomic.Int32
	var wg sync.WaitGroup
	errs := make([]error, 6)
	var panicked atomic.Value
	for i := range 6 {
		wg.Go(func() {
			switch i {
			case 2:
				errs[i] = c.do(func(tx *bolt.Tx) error {
					failRuns.Add(1)
					_ = tx.Bucket([]byte("b")).Put([]byte("bad"), []byte("v"))
					return boom
				})
			case 4:
				defer func() { panicked.Store(recover()) }()
				errs[i] = c.do(func(*bolt.Tx) error { panic("kaboom") })
			default:
				errs[i] = c.do(put(string(rune('a'+i)), &seen, &runs))
			}
		})
	}
	waitQueued(t, c, 6)
	release()
	wg.Wait()
	if !errors.Is(errs[2], boom) {
		t.Errorf("failing call: %v, want its own error", errs[2])
	}
	if failRuns.Load() != 2 {
		t.Errorf("failing fn ran %d times, want 2 (in the batch, then alone)", failRuns.Load())
	}
	if p := panicked.Load(); p != "kaboom" {
		t.Errorf("panic reached the caller as %v, want kaboom", p)
	}
	for _, i := range []int{0, 1, 3, 5} {
		if errs[i] != nil {
			t.Errorf("call %d: %v", i, errs[i])
		}
	}
	_ = bdb.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("b"))
		if b.Get([]byte("bad")) != nil {
			t.Error("the failed call's write was committed")
		}
		if n := b.Stats().KeyN; n != 4 {
			t.Errorf("%d keys, want the 4 good calls'", n)
		}
		return nil
	})
	// The committer survived the panic.
	if err := c.do(put("after", &seen, &runs)); err != nil {
		t.Errorf("write after the panic: %v", err)
	}
	// Only durable commits are observed: the bucket's, the hold's, the four good calls'
	// rerun and the last write's; not the rolled-back batch of six, nor the failing calls
	// run alone. (c.do returned, so the observer ran before: it runs before the answers.)
	if want := []int{1, 1, 4, 1}; !slices.Equal(observed, want) {
		t.Errorf("commits observed with %v writes, want %v", observed, want)
	}
}

// TestCommitterClose: calls queued before close commit; calls after it are refused.
func TestCommitterClose(t *testing.T) {
	bdb, c := openCommitter(t, 0)
	release := hold(t, c)
	var seen sync.Map
	var runs atomic.Int32
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			if err := c.do(put(string(rune('a'+i)), &seen, &runs)); err != nil {
				t.Errorf("queued call %d: %v", i, err)
			}
		})
	}
	waitQueued(t, c, 5)
	closed := make(chan struct{})
	go func() { c.close(); close(closed) }()
	release()
	<-closed
	wg.Wait()
	if err := c.do(put("late", &seen, &runs)); !errors.Is(err, berrors.ErrDatabaseNotOpen) {
		t.Errorf("call after close: %v, want ErrDatabaseNotOpen", err)
	}
	_ = bdb.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket([]byte("b")).Stats().KeyN; n != 5 {
			t.Errorf("%d keys, want the 5 queued calls'", n)
		}
		return nil
	})
}

// TestCommitStats: the counters follow the writes: one commit per lone write, the pages they
// wrote, and the free pages copy-on-write leaves behind.
func TestCommitStats(t *testing.T) {
	db := MustOpen(t)
	before := db.CommitStats()
	for range 20 {
		createOnceT(t, db)
	}
	after := db.CommitStats()
	if got := after.Writes - before.Writes; got != 20 {
		t.Errorf("writes counted %d, want 20", got)
	}
	if got := after.Commits - before.Commits; got != 20 {
		t.Errorf("commits counted %d, want 20 (one writer at a time, no delay)", got)
	}
	if after.Pages <= before.Pages {
		t.Errorf("pages written %d → %d", before.Pages, after.Pages)
	}
	// Dropping a large bucket frees its pages: the gauge sees them.
	big := make([]byte, 3000)
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("scratch"))
		for i := 0; err == nil && i < 200; i++ {
			err = b.Put([]byte{byte(i)}, big)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("scratch")) }); err != nil {
		t.Fatal(err)
	}
	createOnceT(t, db) // a later commit releases the pages the drop freed
	if free := db.CommitStats().FreePages; free < 150 {
		t.Errorf("%d free pages after dropping ~200 pages of data, want at least 150", free)
	}
}

func createOnceT(t *testing.T, db *DB) {
	t.Helper()
	r := newReferral(orgKela, orgHelsin)
	if err := db.Update(context.Background(), func(domain.Tx) (*domain.Change, error) {
		return &domain.Change{Referrals: []*domain.Referral{r}}, nil
	}); err != nil {
		t.Fatal(err)
	}
}
