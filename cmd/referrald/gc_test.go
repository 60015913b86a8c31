package main

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestTuneGCLeavesWhatTheEnvironmentSets(t *testing.T) {
	oldPercent, oldLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(oldPercent); debug.SetMemoryLimit(oldLimit) })

	env := map[string]string{"GOGC": "150", "GOMEMLIMIT": "1GiB"}
	debug.SetGCPercent(150)
	debug.SetMemoryLimit(1 << 30)
	if p, l := tuneGC(func(k string) string { return env[k] }); p != -1 || l != 0 {
		t.Errorf("with GOGC and GOMEMLIMIT set, tuneGC set %d, %d", p, l)
	}
	if got := debug.SetGCPercent(150); got != 150 {
		t.Errorf("GC percent %d, want the environment's 150", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Errorf("memory limit %d, want the environment's 1 GiB", got)
	}

	if p, l := tuneGC(func(string) string { return "" }); p != gcPercent || l != gcMemoryLimit {
		t.Errorf("tuneGC = %d, %d, want %d, %d", p, l, gcPercent, gcMemoryLimit)
	}
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("GC percent %d, want %d", got, gcPercent)
	}
	if got := debug.SetMemoryLimit(-1); got != gcMemoryLimit {
		t.Errorf("memory limit %d, want %d", got, gcMemoryLimit)
	}
}

func TestTuneProcsRaisesOneToTwoUnlessTheEnvironmentSets(t *testing.T) {
	old := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })

	if set := tuneProcs(func(k string) string { return map[string]string{"GOMAXPROCS": "1"}[k] }); set != 0 || runtime.GOMAXPROCS(0) != 1 {
		t.Errorf("with GOMAXPROCS=1 in the environment: set %d, now %d; want it left at 1", set, runtime.GOMAXPROCS(0))
	}
	if set := tuneProcs(func(string) string { return "" }); set != minProcs || runtime.GOMAXPROCS(0) != minProcs {
		t.Errorf("one P: set %d, now %d; want %d", set, runtime.GOMAXPROCS(0), minProcs)
	}
	runtime.GOMAXPROCS(4)
	if set := tuneProcs(func(string) string { return "" }); set != 0 || runtime.GOMAXPROCS(0) != 4 {
		t.Errorf("four Ps: set %d, now %d; want them left", set, runtime.GOMAXPROCS(0))
	}
}
