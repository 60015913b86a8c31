package main

import (
	"math"
	"math/bits"
	"time"
)

// histogram is an HDR-style latency histogram: it counts values (nanoseconds) in buckets
// whose width is at most 1/128 of their lower bound, so a percentile it reports is at most
// 0.8 % above the true value (exact below 256 ns), in fixed memory (about 43 KiB) whatever
// the count. Values up to 2^48 ns (78 hours) are resolved; larger ones fall in the last
// bucket, but the maximum is kept exactly. The zero value is empty and ready to use; it is not
// safe for concurrent use (give each worker its own and merge).
type histogram struct {
	counts   [histBuckets]uint64
	n        uint64
	min, max int64
	sum      float64
}

const (
	histSubBits  = 7                // 128 sub-buckets per power of two
	histSub      = 1 << histSubBits // 128
	histExact    = 2 * histSub      // values below 256 are counted exactly
	histMaxShift = 40
	histBuckets  = histExact + histMaxShift*histSub
)

// histIndex returns the bucket of v.
func histIndex(v int64) int {
	if v < histExact {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - (histSubBits + 1) // >= 1
	if shift > histMaxShift {
		return histBuckets - 1
	}
	top := int(v >> shift) // 128..255
	return histExact + (shift-1)*histSub + (top - histSub)
}

// histUpper returns the largest value counted in bucket i.
func histUpper(i int) int64 {
	if i < histExact {
		return int64(i)
	}
	j := i - histExact
	shift := j/histSub + 1
	top := int64(j%histSub + histSub)
	return (top+1)<<shift - 1
}

// Record counts one value; negative values count as 0.
func (h *histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[histIndex(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds every value counted in o.
func (h *histogram) Merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count returns how many values were recorded.
func (h *histogram) Count() uint64 { return h.n }

// Max returns the largest value recorded, 0 if none.
func (h *histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the average value, 0 if none.
func (h *histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the value below or at which a share q (0..1) of the recorded values lie,
// as the upper end of its bucket (never above the maximum); 0 if nothing was recorded.
func (h *histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			if i == histBuckets-1 { // holds everything beyond the resolved range
				return time.Duration(h.max)
			}
			return time.Duration(max(min(histUpper(i), h.max), h.min))
		}
	}
	return time.Duration(h.max)
}
