package main

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/kela-hva/referrals/domain/calendar"
)

// simClock maps the service's business time to the machine's real time: business time runs
// speed times as fast, from an anchor read off the service (a referral's created_at).
type simClock struct {
	bizAnchor  time.Time
	realAnchor time.Time
	speed      float64
}

// Now returns the current business time.
func (c *simClock) Now() time.Time {
	return c.bizAnchor.Add(time.Duration(float64(time.Since(c.realAnchor)) * c.speed))
}

// RealUntil returns how long to sleep in real time until business time t.
func (c *simClock) RealUntil(t time.Time) time.Duration {
	return time.Duration(float64(t.Sub(c.Now())) / c.speed)
}

// workday knows office hours: 08:00–16:00 Helsinki time on Finnish business days.
type workday struct {
	cal        *calendar.Calendar
	loc        *time.Location
	start, end int // hours
}

func newWorkday() workday {
	cal := calendar.New(calendar.Options{})
	return workday{cal: cal, loc: cal.Location(), start: 8, end: 16}
}

func (w workday) dayStart(t time.Time) time.Time {
	t = t.In(w.loc)
	return time.Date(t.Year(), t.Month(), t.Day(), w.start, 0, 0, 0, w.loc)
}

func (w workday) dayEnd(t time.Time) time.Time {
	t = t.In(w.loc)
	return time.Date(t.Year(), t.Month(), t.Day(), w.end, 0, 0, 0, w.loc)
}

// nextWork returns t if it is within office hours, else the start of the next office day.
func (w workday) nextWork(t time.Time) time.Time {
	for range 30 { // no stretch without business days is longer than a few days
		if w.cal.IsBusinessDay(t) {
			if t.Before(w.dayStart(t)) {
				return w.dayStart(t)
			}
			if t.Before(w.dayEnd(t)) {
				return t
			}
		}
		t = w.dayStart(t).AddDate(0, 0, 1)
	}
	return t
}

// addWork returns the time d of office hours after t.
func (w workday) addWork(t time.Time, d time.Duration) time.Time {
	t = w.nextWork(t)
	for {
		left := w.dayEnd(t).Sub(t)
		if d < left {
			return t.Add(d)
		}
		d -= left
		t = w.nextWork(w.dayStart(t).AddDate(0, 0, 1))
	}
}

// addBusinessDays returns a random office-hours moment n business days after t's date.
func (w workday) addBusinessDays(rng *rand.Rand, t time.Time, n int) time.Time {
	d := w.dayStart(t)
	for n > 0 {
		d = d.AddDate(0, 0, 1)
		if w.cal.IsBusinessDay(d) {
			n--
		}
	}
	return w.nextWork(d).Add(time.Duration(rng.Int64N(int64(time.Duration(w.end-w.start) * time.Hour))))
}

// between returns a random duration in [lo, hi).
func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}

// task is something a simulated person does at a business time.
type task struct {
	at  time.Time
	seq uint64
	run func(ctx context.Context)
}

type taskHeap []*task

func (h taskHeap) Len() int { return len(h) }
func (h taskHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h taskHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *taskHeap) Push(x any)   { *h = append(*h, x.(*task)) }
func (h *taskHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

// scheduler runs tasks when the business clock reaches them, a bounded number at a time.
type scheduler struct {
	mu       sync.Mutex
	h        taskHeap
	seq      uint64
	inflight int
	wake     chan struct{}
}

func newScheduler() *scheduler { return &scheduler{wake: make(chan struct{}, 1)} }

// At schedules fn for business time t. Tasks due at the same time run in the order given.
func (s *scheduler) At(t time.Time, fn func(ctx context.Context)) {
	s.mu.Lock()
	s.seq++
	heap.Push(&s.h, &task{at: t, seq: s.seq, run: fn})
	s.mu.Unlock()
	s.signal()
}

func (s *scheduler) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run runs tasks due before end as the clock reaches them, at most concurrency at once, until
// none is due before end and none is running, or ctx is done. It returns how many tasks were
// still scheduled (for after the end, or not started because ctx ended).
func (s *scheduler) Run(ctx context.Context, clock *simClock, end time.Time, concurrency int) int {
	sem := make(chan struct{}, max(concurrency, 1))
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		s.mu.Lock()
		if len(s.h) == 0 || !s.h[0].at.Before(end) {
			idle := s.inflight == 0
			s.mu.Unlock()
			if idle {
				break
			}
			select { // a running task may schedule an earlier one
			case <-s.wake:
			case <-ctx.Done():
			}
			continue
		}
		if d := clock.RealUntil(s.h[0].at); d > 0 {
			s.mu.Unlock()
			timer := time.NewTimer(d)
			select {
			case <-timer.C:
			case <-s.wake:
			case <-ctx.Done():
			}
			timer.Stop()
			continue
		}
		t := heap.Pop(&s.h).(*task)
		s.inflight++
		s.mu.Unlock()
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			s.mu.Lock()
			s.inflight--
			heap.Push(&s.h, t) // not started: it counts as still scheduled
			s.mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.run(ctx)
			<-sem
			s.mu.Lock()
			s.inflight--
			s.mu.Unlock()
			s.signal()
		}()
	}
	wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.h)
}
