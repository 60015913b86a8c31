package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// intervalSample is one --interval line: the interval's answers and latency, and the
// service's own figures at its end (-1 when unknown).
type intervalSample struct {
	at               time.Duration // since measuring began
	ok, errs         int64
	p50, p99         time.Duration
	goroutines, heap float64
	rss              float64
}

// intervalReporter prints a line per interval while a phase runs, so a soak run shows whether
// latency, goroutines or memory drift.
type intervalReporter struct {
	done    chan struct{}
	wg      sync.WaitGroup
	samples []intervalSample
}

func startIntervals(ctx context.Context, out io.Writer, t *target, workers []*worker, every time.Duration, measureFrom time.Time, rss *rssWatch) *intervalReporter {
	r := &intervalReporter{done: make(chan struct{})}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		// Intervals start when measuring does: warm-up requests are not recorded anyway.
		wait := time.NewTimer(time.Until(measureFrom))
		defer wait.Stop()
		select {
		case <-r.done:
			return
		case <-ctx.Done():
			return
		case <-wait.C:
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-r.done:
				return
			case <-ctx.Done():
				return
			case now := <-tick.C:
				var h histogram
				var errs int64
				for _, w := range workers {
					w.imu.Lock()
					h.Merge(&w.ihist)
					errs += w.ierrs
					w.ihist, w.ierrs = histogram{}, 0
					w.imu.Unlock()
				}
				s := intervalSample{at: now.Sub(measureFrom).Round(time.Second), ok: int64(h.Count()), errs: errs,
					p50: h.Quantile(0.5), p99: h.Quantile(0.99), goroutines: -1, heap: -1, rss: -1}
				if t.auth != nil { // the service; the yardstick has no /metrics
					m := scrapeMetrics(context.WithoutCancel(ctx), t.client, t.base) // also after the last request
					s.goroutines, s.heap, s.rss = m["go_goroutines"], m["go_memstats_heap_inuse_bytes"], m["process_resident_memory_bytes"]
				}
				if rss != nil {
					if v, _, err := readRSS(rss.pid); err == nil {
						s.rss = float64(v)
					}
				}
				r.samples = append(r.samples, s)
				fmt.Fprintf(out, "  %6s  ok/s %8.1f  p50 %9s  p99 %9s  errors %d%s\n", "+"+s.at.String(),
					float64(s.ok)/every.Seconds(), ms(s.p50), ms(s.p99), s.errs, s.serviceFigures())
			}
		}
	}()
	return r
}

func (r *intervalReporter) stop() {
	close(r.done)
	r.wg.Wait()
}

func (s intervalSample) serviceFigures() string {
	var b strings.Builder
	if s.goroutines >= 0 {
		fmt.Fprintf(&b, "  goroutines %.0f", s.goroutines)
	}
	if s.heap >= 0 {
		fmt.Fprintf(&b, "  heap %s", mib(int64(s.heap)))
	}
	if s.rss >= 0 {
		fmt.Fprintf(&b, "  rss %s", mib(int64(s.rss)))
	}
	return b.String()
}

// scrapeMetrics reads the service's goroutines, heap in use and resident memory from the
// Prometheus text exposition at base/metrics; each is -1 when it cannot be read.
func scrapeMetrics(ctx context.Context, client *http.Client, base string) map[string]float64 {
	m := map[string]float64{"go_goroutines": -1, "go_memstats_heap_inuse_bytes": -1, "process_resident_memory_bytes": -1}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/metrics", nil)
	if err != nil {
		return m
	}
	resp, err := client.Do(req)
	if err != nil {
		return m
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if _, want := m[f[0]]; want {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				m[f[0]] = v
			}
		}
	}
	return m
}

// driftLine compares the first interval after warm-up with the last: what a soak run checks.
func driftLine(samples []intervalSample) string {
	if len(samples) < 2 {
		return ""
	}
	a, b := samples[0], samples[len(samples)-1]
	line := fmt.Sprintf("drift, first interval → last: p99 %s → %s", ms(a.p99), ms(b.p99))
	if a.goroutines >= 0 && b.goroutines >= 0 {
		line += fmt.Sprintf(", goroutines %.0f → %.0f", a.goroutines, b.goroutines)
	}
	if a.heap >= 0 && b.heap >= 0 {
		line += fmt.Sprintf(", heap %s → %s", mib(int64(a.heap)), mib(int64(b.heap)))
	}
	if a.rss >= 0 && b.rss >= 0 {
		line += fmt.Sprintf(", rss %s → %s", mib(int64(a.rss)), mib(int64(b.rss)))
	}
	return line
}
