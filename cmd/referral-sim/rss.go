package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// rssSample is the resident memory of the service process over a load run, in bytes.
type rssSample struct {
	start, end, peak, hwm int64
	err                   error
}

// rssWatch samples a process's resident memory every 200 ms from Linux's /proc.
type rssWatch struct {
	pid  int
	done chan struct{}
	wg   sync.WaitGroup

	mu sync.Mutex
	s  rssSample
}

func startRSSWatch(pid int) *rssWatch {
	w := &rssWatch{pid: pid, done: make(chan struct{})}
	w.s.start, _, w.s.err = readRSS(pid)
	w.s.peak = w.s.start
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-t.C:
				if rss, _, err := readRSS(pid); err == nil {
					w.mu.Lock()
					w.s.peak = max(w.s.peak, rss)
					w.mu.Unlock()
				}
			}
		}
	}()
	return w
}

func (w *rssWatch) stop() *rssSample {
	close(w.done)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.s
	if s.err == nil {
		s.end, s.hwm, s.err = readRSS(w.pid)
		s.peak = max(s.peak, s.end)
	}
	return &s
}

// readRSS returns VmRSS and VmHWM (the peak) of a process, in bytes.
func readRSS(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("pid %d: %s: %q", pid, name, val)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("pid %d: no VmRSS in /proc/%d/status", pid, pid)
	}
	return rss, hwm, sc.Err()
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// clockTicks is Linux's USER_HZ, the unit of the CPU times in /proc/<pid>/stat: 100 on every
// architecture Go supports on Linux.
const clockTicks = 100

// readCPU returns the user + system CPU time a process has used, from /proc/<pid>/stat.
func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time of pid %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("pid %d: malformed /proc stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 { // fields 3.. ; utime and stime are fields 14 and 15
		return 0, fmt.Errorf("pid %d: malformed /proc stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("pid %d: malformed /proc stat", pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// selfCPU returns the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
