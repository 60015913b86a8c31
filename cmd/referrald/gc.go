package main

import (
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
