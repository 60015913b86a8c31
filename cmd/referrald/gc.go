package main

import (
	"runtime"
	"runtime/debug"
)

// Garbage-collector settings used unless GOGC or GOMEMLIMIT say otherwise. The service's live
// heap is small (tens of MiB) and its requests allocate a lot, so with Go's default (collect
// when the heap doubles) the collector ran ~20 % of an inbox page's CPU. Collecting at 5× the
// live heap takes most of that away; the soft limit keeps the heap well under the 500 MiB the
// service may use, the collector working harder as it is approached.
const (
	gcPercent     = 400
	gcMemoryLimit = 384 << 20
)

// tuneGC applies the settings above where the environment sets none, and returns what it set
// (for the start-up log): -1 / 0 where it left Go's own.
func tuneGC(getenv func(string) string) (percent int, limit int64) {
	percent, limit = -1, 0
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
		percent = gcPercent
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(gcMemoryLimit)
		limit = gcMemoryLimit
	}
	return percent, limit
}

// minProcs is the fewest Ps the service runs with unless GOMAXPROCS says otherwise. Go sets
// GOMAXPROCS from the CPU limit of the container, 1 for a one-CPU container; with one P a
// commit's fsync holds the only P until the runtime's monitor hands it on (up to 10 ms), and
// everything waits behind it: measured on one core, 508 creates/s with p99 0.75–2.4 s at one
// P against 3,182/s with p99 42 ms at two. A second P lets requests run during the fsync; the
// kernel still holds the process to its CPU limit.
const minProcs = 2

// tuneProcs raises GOMAXPROCS to minProcs when the environment does not set it, and returns
// the value it set, or 0 if it left Go's own.
func tuneProcs(getenv func(string) string) int {
	if getenv("GOMAXPROCS") != "" || runtime.GOMAXPROCS(0) >= minProcs {
		return 0
	}
	runtime.GOMAXPROCS(minProcs)
	return minProcs
}
