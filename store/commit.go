package store

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// committer is the store's group commit: one goroutine runs queued writes together in one
// bbolt transaction and one fsync, and answers each call when the transaction is durable.
//
// Unlike bbolt's DB.Batch, whose batch is closed when its timer fires and then waits for the
// write lock, the committer forms a batch only when it is free to run it: every call that
// queued while the previous transaction was committing goes into the next one. Under load the
// batch grows with the wait, so the fsyncs and the pages written per call fall as the load
// rises; a lone call is committed at once. When the committer was idle it may linger up to
// delay for company (Options.MaxBatchDelay; zero: not at all).
//
// The semantics are DB.Batch's: a call's fn may run more than once, and sees what the calls
// before it in the batch wrote; if one fn returns an error (or panics), the transaction is
// rolled back, the others run again without it, and it runs again alone in its own
// transaction, whose outcome is its result.
type committer struct {
	bolt    *bolt.DB
	delay   time.Duration
	max     int
	observe func(writes int, took, disk time.Duration) // after each commit; nil: none

	calls chan *writeCall
	// Counters of committed transactions and of the calls they carried.
	commits, written atomic.Uint64
	mu               sync.RWMutex // held shared while a call is queued; exclusively by close
	shut             bool
	stop             chan struct{}
	done             chan struct{}
}

type writeCall struct {
	fn  func(*bolt.Tx) error
	err chan error // buffered: the committer never blocks on an answer
}

// errTrySolo tells a call to run again alone: its fn failed in a shared transaction.
var errTrySolo = errors.New("store: run the write alone")

// defaultMaxBatch is the most calls one transaction takes when Options.MaxBatchSize is zero.
const defaultMaxBatch = 1000

func newCommitter(db *bolt.DB, delay time.Duration, maxBatch int, observe func(writes int, took, disk time.Duration)) *committer {
	if maxBatch <= 0 {
		maxBatch = defaultMaxBatch
	}
	c := &committer{bolt: db, delay: delay, max: maxBatch, observe: observe, calls: make(chan *writeCall, maxBatch),
		stop: make(chan struct{}), done: make(chan struct{})}
	go c.loop()
	return c
}

// do runs fn in a shared write transaction and returns when that transaction has committed
// (nil) or failed. After close it returns bbolt's ErrDatabaseNotOpen without running fn.
func (c *committer) do(fn func(*bolt.Tx) error) error {
	call := &writeCall{fn: fn, err: make(chan error, 1)}
	c.mu.RLock()
	if c.shut {
		c.mu.RUnlock()
		return berrors.ErrDatabaseNotOpen
	}
	c.calls <- call // the loop runs until close, which waits for this lock
	c.mu.RUnlock()
	err := <-call.err
	if errors.Is(err, errTrySolo) {
		return c.bolt.Update(fn)
	}
	return err
}

// close lets the queued calls commit, refuses new ones and stops the loop.
func (c *committer) close() {
	c.mu.Lock()
	if !c.shut {
		c.shut = true
		close(c.stop)
	}
	c.mu.Unlock()
	<-c.done
}

func (c *committer) loop() {
	defer close(c.done)
	batch := make([]*writeCall, 0, c.max)
	for {
		var first *writeCall
		idle := false
		select {
		case first = <-c.calls: // queued during the last commit: no waiting
		default:
			idle = true
			select {
			case first = <-c.calls:
			case <-c.stop:
				// close holds the lock: nothing more is queued. Commit what is.
				for {
					batch = c.gather(batch[:0])
					if len(batch) == 0 {
						return
					}
					c.commit(batch)
				}
			}
		}
		batch = c.gather(append(batch[:0], first))
		if idle && c.delay > 0 && len(batch) < c.max {
			batch = c.linger(batch)
		}
		c.commit(batch)
		clear(batch) // drop the calls' closures until the slots are reused
	}
}

// gather appends the calls already queued, up to the batch limit, without waiting.
func (c *committer) gather(batch []*writeCall) []*writeCall {
	for len(batch) < c.max {
		select {
		case call := <-c.calls:
			batch = append(batch, call)
		default:
			return batch
		}
	}
	return batch
}

// linger waits up to delay for more calls, until the batch is full.
func (c *committer) linger(batch []*writeCall) []*writeCall {
	t := time.NewTimer(c.delay)
	defer t.Stop()
	for len(batch) < c.max {
		select {
		case call := <-c.calls:
			batch = append(batch, call)
		case <-t.C:
			return batch
		case <-c.stop:
			return batch
		}
	}
	return batch
}

// commit runs the batch in one transaction and answers every call. A call whose fn fails is
// told to run alone and the rest run again without it.
func (c *committer) commit(batch []*writeCall) {
	for len(batch) > 0 {
		failed := -1
		var done *bolt.Tx
		t0 := time.Now()
		err := c.bolt.Update(func(tx *bolt.Tx) error {
			done = tx
			for i, call := range batch {
				if err := safelyCall(call.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			batch[failed].err <- errTrySolo
			batch = append(batch[:failed], batch[failed+1:]...)
			continue
		}
		if err == nil {
			c.commits.Add(1)
			c.written.Add(uint64(len(batch)))
			if c.observe != nil {
				took := time.Since(t0)
				st := done.Stats() // the transaction is closed: its stats no longer change
				c.observe(len(batch), took, st.GetWriteTime())
			}
		}
		for _, call := range batch {
			call.err <- err
		}
		return
	}
}

// safelyCall runs fn, turning a panic into an error so that the committer survives it; the
// call then runs alone in its caller's goroutine, where the panic happens again.
func safelyCall(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store: write panicked: %v", p)
		}
	}()
	return fn(tx)
}

// CommitStats are counters of the store's writes since Open.
type CommitStats struct {
	Commits uint64 // group-commit transactions committed
	Writes  uint64 // writes they carried: Commits/Writes is the batch size
	Pages   uint64 // page writes of all write transactions (a value spanning pages is one write)
	// FreePages is how many pages of the file are free: bbolt rewrites their list with every
	// commit, so a large number slows every write (referralctl compact removes them).
	FreePages int
}

// CommitStats returns the store's write counters.
func (db *DB) CommitStats() CommitStats {
	st := db.bolt.Stats()
	return CommitStats{Commits: db.group.commits.Load(), Writes: db.group.written.Load(),
		Pages: uint64(st.TxStats.GetWrite()), FreePages: st.FreePageN}
}
